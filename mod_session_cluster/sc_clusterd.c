/* sc_clusterd.c - the node's network daemon: its lifecycle (see
 * sc_clusterd.h, and sc_cd.h for its parts).
 *
 * In the parent: fork clusterd for each generation, start it again when it
 * dies (with a back-off). In clusterd: drop privileges, start one link per
 * other member (sc_link), the acceptor (sc_cd_peers.c) and the dispatcher
 * (sc_cd_chan.c), join (sc_cd_watch.c), then run the watch loop and the
 * store's sweep on the main thread until SIGTERM, and stop in order.
 * Threads: one acceptor with one thread per inbound peer connection; one
 * link per member; the dispatcher and the fetch pool; resync tasks; the main
 * thread. Blocking sockets with timeouts keep each loop simple and bounded.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_signal.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_thread_pool.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <ap_mpm.h>
#include <mpm_common.h>

#include "sc_module.h"
#include "sc_apply.h"
#include "sc_cd.h"
#include "sc_clusterd.h"
#include "sc_mcast.h"

APLOG_USE_MODULE(session_cluster);

/* ---- the daemon process ---------------------------------------------------- */

/* httpd's parent handlers must not run here. The generation's end sends
 * SIGTERM (and SIGKILL some 3 s later): it is blocked in every thread (they
 * inherit the mask) and taken by the main thread's sigtimedwait, which then
 * stops clusterd in order (stop_in_order). */
static void reset_signals(void)
{
    static const int sigs[] = { SIGTERM, SIGHUP, SIGINT, SIGUSR1, SIGWINCH };
    sigset_t term;
    unsigned i;

    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        apr_signal(sigs[i], SIG_DFL);
    apr_signal(SIGPIPE, SIG_IGN);
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_SETMASK, &term, NULL);
}

/* Wait `t` for SIGTERM; 1 when it came. */
static int term_requested(apr_interval_time_t t)
{
    struct timespec ts;
    sigset_t term;

    ts.tv_sec = (time_t)apr_time_sec(t);
    ts.tv_nsec = (long)apr_time_usec(t) * 1000;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    return sigtimedwait(&term, NULL, &ts) == SIGTERM;
}

apr_status_t sc_cd_thread_check(sc_daemon *d, apr_status_t rv)
{
    if (rv != APR_SUCCESS)
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, d->s, "clusterd: cannot start "
                     "a thread");
    return rv;
}

static apr_status_t start_thread(sc_daemon *d, apr_thread_start_t fn, void *arg,
                                 apr_pool_t *p)
{
    apr_thread_t *t;
    return sc_cd_thread_check(d, apr_thread_create(&t, NULL, fn, arg, p));
}

/* ---- the daemon process ------------------------------------------------------ */

/* Link member m, whose state is slot i, and publish the link. */
static apr_status_t add_link(sc_daemon *d, const sc_member *m, int i,
                             apr_pool_t *p)
{
    sc_link *l = sc_link_create(d->node, d->s, m, sc_node_slot(d->node, i),
                                sc_apply_current, p);
    apr_status_t rv;

    if (!l)
        return APR_ENOMEM;
    if ((rv = sc_cd_thread_check(d, sc_link_start(l, p))) != APR_SUCCESS)
        return rv;
    d->links[sc_cd_link_count(d)] = l;
    apr_atomic_inc32(&d->nlinks);
    return APR_SUCCESS;
}

/* A member multicast made known (slot i): link it at its ClusterListen. */
static apr_status_t add_learnt_link(void *baton, int i)
{
    sc_daemon *d = baton;
    const sc_member_state *slot = sc_node_slot(d->node, i);
    sc_member *m = apr_pcalloc(d->learnt_pool, sizeof(*m));

    if (sc_cd_link_count(d) >= SC_MAX_MEMBERS)
        return APR_ENOSPC;
    m->route = apr_pstrdup(d->learnt_pool, slot->route);
    if (sc_addr_parse(d->learnt_pool, slot->addr, &m->addr) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, d->s, "clusterd: member %s "
                     "announces '%s', not a host:port", m->route, slot->addr);
        return APR_EINVAL;
    }
    return add_link(d, m, i, d->learnt_pool);
}

/* The configured members, and those multicast made known before this
 * clusterd (a graceful restart keeps them); then multicast for more. */
static void start_links(sc_daemon *d, apr_pool_t *p)
{
    const apr_array_header_t *ms = d->node->conf->members;
    int i, n = sc_node_slot_count(d->node);

    apr_pool_create(&d->learnt_pool, p);
    for (i = 0; i < n; i++) {
        const sc_member_state *slot = sc_node_slot(d->node, i);
        apr_status_t rv = APR_SUCCESS;
        if (i < ms->nelts) {
            const sc_member *m = &APR_ARRAY_IDX(ms, i, sc_member);
            if (!sc_node_is_self(d->node, m))
                rv = add_link(d, m, i, p);
        }
        else if (slot->learnt && *slot->route)
            rv = add_learnt_link(d, i);
        if (rv != APR_SUCCESS)
            exit(APEXIT_CHILDFATAL);
    }
    if (d->node->conf->multicast
        && sc_cd_thread_check(d, sc_mcast_start(d->node, d->s, add_learnt_link, d,
                                                p)) != APR_SUCCESS)
        exit(APEXIT_CHILDFATAL);
}

/* ---- an orderly stop -------------------------------------------------------- */

/* Every restart ends this clusterd (SIGTERM) and starts another. Children
 * of the old generation are still saving meanwhile: a change the
 * dispatcher took dies with this process unless it goes out first (a
 * waiting child would be answered 503 for a change the members may well
 * have applied; an async one would reach nobody). So: stop taking (what is
 * still in the channel waits there for the next clusterd, and its waiter
 * with it), then wait until every change taken has been answered and every
 * link has nothing left to send or hear back, at most SC_STOP_WAIT: past
 * that the children have given up waiting anyway, and httpd's parent
 * sends SIGKILL about a second later. */
#define SC_STOP_WAIT SC_REPLICATION_WAIT
#define SC_STOP_POLL apr_time_from_msec(2)

static int settled(sc_daemon *d, int *unsettled_links)
{
    int i, n = 0;
    for (i = 0; i < sc_cd_link_count(d); i++)
        n += !sc_link_settled(sc_cd_link_at(d, i));
    *unsettled_links = n;
    return !apr_atomic_read32(&d->dispatching) && !sc_chan_owed(d->node->chan)
           && !n;
}

static void stop_in_order(sc_daemon *d)
{
    apr_time_t start = apr_time_now();
    int links = 0, done;

    sc_chan_stop(d->node->chan);
    while (!(done = settled(d, &links)) && apr_time_now() - start < SC_STOP_WAIT)
        apr_sleep(SC_STOP_POLL);
    if (done)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, d->s, "clusterd: stopping: every "
                     "change taken was answered and sent in %" APR_TIME_T_FMT
                     " ms; what children post from now on waits for the next "
                     "clusterd", apr_time_as_msec(apr_time_now() - start));
    else
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, d->s, "clusterd: stopping "
                     "after %" APR_TIME_T_FMT " ms with %d change(s) unanswered "
                     "and %d member link(s) still sending: members that missed "
                     "them catch up with each session's next change or when "
                     "they merge", apr_time_as_msec(apr_time_now() - start),
                     sc_chan_owed(d->node->chan), links);
    exit(0);
}

static void daemon_main(apr_pool_t *p, server_rec *s)
{
    sc_daemon *d = apr_pcalloc(p, sizeof(*d));
    pid_t parent = getppid();
    apr_pool_t *scratch;

    reset_signals();
    d->node = sc_node_get();
    d->s = s;
    d->started = apr_time_now();
    if (ap_run_drop_privileges(p, s) != OK) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "clusterd: cannot drop "
                     "privileges");
        exit(APEXIT_CHILDFATAL);
    }
    sc_node_child_init(p, s);
    if (!d->node->store || !d->node->chan)
        exit(APEXIT_CHILDFATAL);
    start_links(d, p);          /* before anything that looks links up */
    if (sc_cd_thread_check(d, sc_gate_create(&d->gate, p)) != APR_SUCCESS
        || sc_cd_thread_check(d, sc_ratelog_create(&d->refusals,
                              SC_REFUSED_BUSY + 1, SC_RATELOG_EVERY, p))
           != APR_SUCCESS
        || sc_cd_thread_check(d, sc_ratelog_create(&d->misses, 1,
                              SC_RATELOG_EVERY, p)) != APR_SUCCESS
        || sc_cd_thread_check(d, sc_misses_create(&d->nowhere, p)) != APR_SUCCESS
        || sc_cd_thread_check(d, apr_threadattr_create(&d->detached, p))
           != APR_SUCCESS
        || sc_cd_thread_check(d, apr_threadattr_detach_set(d->detached, 1))
           != APR_SUCCESS
        || sc_cd_thread_check(d, apr_thread_pool_create(&d->resync_tasks, 1,
                              SC_MAX_RESYNC, p)) != APR_SUCCESS
        || sc_cd_thread_check(d, apr_thread_pool_create(&d->fetch_tasks, 1,
                              SC_MAX_FETCHES, p)) != APR_SUCCESS
        || start_thread(d, sc_cd_acceptor_main, d, p) != APR_SUCCESS
        || (apr_atomic_set32(&d->dispatching, 1),
            start_thread(d, sc_cd_dispatcher_main, d, p)) != APR_SUCCESS)
        exit(APEXIT_CHILDFATAL);
    /* tasks wait on the network: start a thread for each queued one at once
     * (the default waits until several are queued) */
    apr_thread_pool_threshold_set(d->resync_tasks, 0);
    apr_thread_pool_threshold_set(d->fetch_tasks, 0);
    d->node->state->clusterd_beat = (apr_uint32_t)apr_time_sec(apr_time_now());
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "clusterd: route %s listening on "
                 "%s, %d other member(s)", d->node->conf->route,
                 d->node->conf->listen.text, sc_cd_link_count(d));
    if (!d->node->state->ready)
        sc_cd_join(d, p);
    /* watch members, sweep the store; leave when the parent is gone */
    apr_pool_create(&scratch, p);
    apr_pool_tag(scratch, "clusterd-watch");
    sc_cd_watch_start(d, scratch);
    while (getppid() == parent) {
        d->node->state->clusterd_beat = (apr_uint32_t)apr_time_sec(apr_time_now());
        sc_cd_watch(d, scratch);
        sc_node_sweep(d->node, s, 0);
        if (term_requested(SC_WATCH_EVERY))
            stop_in_order(d);
    }
    exit(0);
}

/* ---- lifecycle in the parent ----------------------------------------------- */

static apr_pool_t *sc_generation_pool;
static server_rec *sc_generation_server;

/* A clusterd that dies right after start (bad config on disk, no memory)
 * must not be forked in a tight loop: at most SC_RESPAWN_BURST starts per
 * SC_RESPAWN_WINDOW. */
#define SC_RESPAWN_BURST   10
#define SC_RESPAWN_WINDOW  apr_time_from_sec(60)
static apr_time_t sc_window_start;
static int sc_window_spawns;

static int respawn_allowed(void)
{
    apr_time_t now = apr_time_now();
    if (now - sc_window_start > SC_RESPAWN_WINDOW) {
        sc_window_start = now;
        sc_window_spawns = 0;
    }
    return ++sc_window_spawns <= SC_RESPAWN_BURST;
}

static apr_status_t spawn(apr_proc_t *proc);

static void on_daemon_event(int reason, void *data, apr_wait_t status)
{
    apr_proc_t *proc = data;
    int mpm_state = AP_MPMQ_STOPPING;
    (void)status;

    switch (reason) {
    case APR_OC_REASON_DEATH:
    case APR_OC_REASON_LOST:
        apr_proc_other_child_unregister(data);
        ap_mpm_query(AP_MPMQ_MPM_STATE, &mpm_state);
        if (mpm_state == AP_MPMQ_STOPPING)
            break;
        if (!respawn_allowed()) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, sc_generation_server,
                         "clusterd died %d times within %" APR_TIME_T_FMT " s; "
                         "not starting it again until the next restart",
                         SC_RESPAWN_BURST, apr_time_sec(SC_RESPAWN_WINDOW));
            break;
        }
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, sc_generation_server,
                     "clusterd (pid %" APR_PID_T_FMT ") died; starting it again",
                     proc->pid);
        spawn(proc);
        break;
    case APR_OC_REASON_RESTART:
        apr_proc_other_child_unregister(data);
        break;
    case APR_OC_REASON_UNREGISTER:
        /* the generation ends: pconf's cleanup also reaps it */
        kill(proc->pid, SIGTERM);
        break;
    }
}

static apr_status_t spawn(apr_proc_t *proc)
{
    sc_node *node = sc_node_get();
    apr_status_t rv = apr_proc_fork(proc, sc_generation_pool);

    if (rv == APR_INCHILD)
        daemon_main(sc_generation_pool, sc_generation_server);  /* no return */
    if (rv != APR_INPARENT) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, sc_generation_server,
                     "cannot fork clusterd");
        return rv;
    }
    node->state->clusterd_pid = (apr_uint32_t)proc->pid;
    apr_atomic_inc32(&node->state->clusterd_starts);
    apr_pool_note_subprocess(sc_generation_pool, proc, APR_KILL_AFTER_TIMEOUT);
    apr_proc_other_child_register(proc, on_daemon_event, proc, NULL,
                                  sc_generation_pool);
    return APR_SUCCESS;
}

int sc_clusterd_start(apr_pool_t *pconf, server_rec *s)
{
    apr_proc_t *proc = apr_pcalloc(pconf, sizeof(*proc));

    sc_generation_pool = pconf;
    sc_generation_server = s;
    return spawn(proc) == APR_SUCCESS ? OK : !OK;
}
