/* sc_clusterd.c - the node's network daemon (see sc_clusterd.h).
 *
 * Threads: one acceptor on ClusterListen (a gate per source address first:
 * sc_gate) with one thread per inbound peer connection; one link per other
 * member (sc_link); the dispatcher, which takes the children's changes from
 * the channel (sc_chan) and queues them on the links without ever waiting
 * for a member (their answers reach the waiting child from the link
 * threads), and hands fetches to a small pool of fetch threads; and the main
 * thread (state transfer, then watching members and sweeping the store).
 * Blocking sockets with timeouts keep each loop simple and bounded.
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
#include "sc_transfer.h"
#include "sc_clusterd.h"
#include "sc_gate.h"
#include "sc_id.h"
#include "sc_link.h"
#include "sc_mcast.h"
#include "sc_node.h"
#include "sc_peer.h"
#include "sc_misses.h"
#include "sc_ratelog.h"

APLOG_USE_MODULE(session_cluster);

/* authenticated inbound connections beyond this are closed at once (the
 * gate bounds those still handshaking) */
#define SC_MAX_INBOUND(nmembers) (2 * (nmembers) + 8)
/* merges with members back from down, at once */
#define SC_MAX_RESYNC SC_MAX_MEMBERS
/* fetches for the children under way at once (more wait their turn) */
#define SC_MAX_FETCHES 16
/* how often the main thread looks at members, and the dispatcher idles */
#define SC_WATCH_EVERY apr_time_from_msec(100)

typedef struct {
    sc_node *node;
    server_rec *s;
    volatile apr_uint32_t inbound;
    /* one link per other member: configured ones first, then the ones
     * multicast makes known (appended by its receiver thread, published by
     * the count, never removed) */
    sc_link *links[SC_MAX_MEMBERS];
    volatile apr_uint32_t nlinks;
    volatile apr_uint32_t resyncing[SC_MAX_MEMBERS];   /* a pull under way */
    apr_pool_t *learnt_pool;            /* the receiver thread's, for links */
    apr_time_t started;
    apr_threadattr_t *detached;         /* one thread per peer connection */
    apr_thread_pool_t *resync_tasks;    /* merges with members back up */
    apr_thread_pool_t *fetch_tasks;     /* fetches for the children */
    sc_gate *gate;                      /* handshakes per source address */
    int gate_told;                      /* member slots the gate knows */
    sc_ratelog *refusals;               /* one line per kind of refusal */
    sc_ratelog *misses;                 /* fetches that found nothing */
    sc_misses *nowhere;                 /* ids recently found nowhere */
    volatile apr_uint32_t dispatching;  /* 0 once the dispatcher stopped */
    apr_uint32_t unbacked_seen;         /* the node's unbacked_writes when
                                           the last placement pass began */
} sc_daemon;

typedef struct {
    sc_daemon *d;
    apr_socket_t *sock;
    apr_pool_t *pool;
    apr_time_t accepted;
    int ticket;             /* the gate's, while the peer handshakes */
} sc_conn;                  /* an accepted connection, owned by its task */

/* what refused_peer() logs beyond sc_peer_fail: the gate said no */
#define SC_REFUSED_BUSY SC_PEER_FAILS_

static int link_count(sc_daemon *d)
{
    return (int)apr_atomic_read32(&d->nlinks);
}

static sc_link *link_at(sc_daemon *d, int i)
{
    return d->links[i];
}

/* ---- inbound peers --------------------------------------------------------- */

static void drop(sc_conn *in, const char *remote, const char *why,
                 apr_status_t rv, int level)
{
    ap_log_error(APLOG_MARK, level, rv, in->d->s, "clusterd: dropping connection "
                 "from %s: %s", remote, why);
}

static apr_status_t answer(sc_peer *c, int type, int status, apr_pool_t *p)
{
    sc_msg_ack ack = { c->wire.rx_counter, status };
    apr_size_t len;
    char *buf;
    apr_status_t rv = sc_msg_ack_encode(p, &ack, &buf, &len);
    return rv == APR_SUCCESS ? sc_peer_send(c, type, buf, len, p) : rv;
}

static void resync_with(sc_daemon *d, int i, int ask_back);

/* Inbound traffic from a member is proof of life as good as a pong. */
static void heard_from(sc_daemon *d, const char *route)
{
    int i;
    for (i = 0; i < link_count(d); i++) {
        sc_link *l = link_at(d, i);
        if (!strcmp(sc_link_route(l), route))
            sc_link_heard(l);
    }
}

/* A member asks for a session it was sent to serve: the data, its
 * tombstone, where it lives (a proxy here), or NOTFOUND. */
static apr_status_t answer_fetch(sc_daemon *d, sc_peer *c, const char *payload,
                                 apr_size_t len, apr_pool_t *p)
{
    const char *id, *out;
    apr_size_t out_len;
    sc_session s;
    int type;

    if (sc_msg_id_decode(p, payload, len, &id) != APR_SUCCESS)
        return APR_EINVAL;
    if (sc_store_get(d->node->store, id, apr_time_now(), p, &s) != APR_SUCCESS
        || sc_apply_describe(p, &s, &type, &out, &out_len) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, d->s, "clusterd: %s asked for "
                     "session %s: not here", c->wire.peer, sc_id_digest(p, id));
        return answer(c, SC_MSG_ACK, SC_ACK_NOTFOUND, p);
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, d->s, "clusterd: %s asked for "
                 "session %s: sending its %s", c->wire.peer, sc_id_digest(p, id),
                 type == SC_MSG_SESSION ? "data" : type == SC_MSG_LOCATION
                 ? "location" : "tombstone");
    return sc_peer_send(c, type, out, out_len, p);
}

/* Several changes in one frame: each applied in order, then one
 * BATCH_APPLIED with their statuses (which also says they were received:
 * no ACK of its own, one write per batch). */
static apr_status_t apply_batch(sc_daemon *d, sc_peer *c, const char *payload,
                                apr_size_t len, apr_pool_t *p, const char **why)
{
    sc_msg_batch_applied applied;
    sc_msg_change *changes;
    apr_size_t out_len;
    char *out;
    int i;
    apr_status_t rv;

    *why = "undecodable batch; nothing applied";
    if (sc_msg_batch_decode(p, payload, len, &changes, &applied.n) != APR_SUCCESS)
        return APR_EINVAL;
    applied.counter = c->wire.rx_counter;
    applied.status = apr_palloc(p, applied.n);
    for (i = 0; i < applied.n; i++) {
        int status = sc_apply_frame(d->node, changes[i].type, changes[i].data,
                                    changes[i].len, c->wire.peer, p);
        if (status == SC_ACK_REFUSED) {
            *why = "undecodable change in a batch; the rest not applied";
            return APR_EGENERAL;
        }
        applied.status[i] = (unsigned char)status;
    }
    ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, d->s, "clusterd: batch of %d "
                 "changes from %s applied", applied.n, c->wire.peer);
    *why = "cannot answer a batch";
    if ((rv = sc_msg_batch_applied_encode(p, &applied, &out, &out_len))
        != APR_SUCCESS)
        return rv;
    return sc_peer_send(c, SC_MSG_BATCH_APPLIED, out, out_len, p);
}

/* One frame from a member. Returns non-APR_SUCCESS to drop the connection. */
static apr_status_t dispatch(sc_conn *in, sc_peer *c, int type,
                             const char *payload, apr_size_t len, apr_pool_t *p,
                             const char **why)
{
    sc_daemon *d = in->d;
    apr_uint32_t sent;
    apr_status_t rv;
    int status;

    switch (type) {
    case SC_MSG_PING:
        *why = "cannot answer ping";
        return sc_peer_send(c, SC_MSG_PONG, payload, len, p);
    case SC_MSG_SESSION:
    case SC_MSG_DELTA:
    case SC_MSG_INVALIDATE:
    case SC_MSG_LOCATION:
        *why = "cannot acknowledge";
        if ((rv = answer(c, SC_MSG_ACK, SC_ACK_OK, p)) != APR_SUCCESS)
            return rv;
        status = sc_apply_frame(d->node, type, payload, len, c->wire.peer, p);
        if (status == SC_ACK_REFUSED) {
            *why = "undecodable change; nothing applied";
            return APR_EGENERAL;
        }
        ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, d->s, "clusterd: %s frame from "
                     "%s applied with status %d", type == SC_MSG_DELTA ? "delta"
                     : type == SC_MSG_SESSION ? "session" : type == SC_MSG_LOCATION
                     ? "location" : "invalidate", c->wire.peer, status);
        return answer(c, SC_MSG_APPLIED, status, p);
    case SC_MSG_BATCH:
        return apply_batch(d, c, payload, len, p, why);
    case SC_MSG_FETCH:
        *why = "undecodable fetch, or cannot answer it";
        return answer_fetch(d, c, payload, len, p);
    case SC_MSG_MERGE_REQ: {
        int i;
        *why = "a merge request with a payload";
        if (len)
            return APR_EINVAL;
        for (i = 0; i < link_count(d); i++)
            if (!strcmp(sc_link_route(link_at(d, i)), c->wire.peer))
                resync_with(d, i, 0);
        return APR_SUCCESS;
    }
    case SC_MSG_STATE_REQ: {
        /* the member counts as up before the snapshot is taken, so every
         * change made after it is queued for the member as well */
        apr_time_t start = apr_time_now();
        rv = sc_transfer_send(d->node, c, p, &sent);
        ap_log_error(APLOG_MARK, APLOG_INFO, rv, d->s, "clusterd: sent %u "
                     "sessions to %s in %" APR_TIME_T_FMT " ms", sent,
                     c->wire.peer, apr_time_as_msec(apr_time_now() - start));
        *why = "state transfer failed";
        return rv;
    }
    }
    *why = apr_psprintf(p, "unexpected frame type %d from %s", type, c->wire.peer);
    return APR_EGENERAL;
}

static void serve_frames(sc_conn *in, sc_peer *c)
{
    apr_pool_t *scratch;
    apr_status_t rv;

    apr_pool_create(&scratch, in->pool);
    apr_socket_timeout_set(c->sock, SC_PEER_IDLE);
    for (;;) {
        const char *payload, *why;
        apr_size_t len;
        int type;

        apr_pool_clear(scratch);
        rv = sc_peer_recv(c, scratch, &type, &payload, &len, &why);
        if (rv == APR_SUCCESS) {
            heard_from(in->d, c->wire.peer);
            rv = dispatch(in, c, type, payload, len, scratch, &why);
        }
        if (rv != APR_SUCCESS) {
            int quiet = APR_STATUS_IS_EOF(rv) || APR_STATUS_IS_TIMEUP(rv)
                        || APR_STATUS_IS_ECONNRESET(rv);
            drop(in, c->remote, why, rv, quiet ? APLOG_DEBUG : APLOG_WARNING);
            return;
        }
    }
}

/* A connection that did not become a member's link: one line per kind
 * at most every SC_RATELOG_EVERY, naming the address and the reason, so
 * strangers' noise never floods the log. Keys and managers that differ are
 * configuration errors; the rest is warned about. */
static void refused_peer(sc_daemon *d, const char *remote, int kind,
                         const char *why)
{
    static const char *const what[SC_REFUSED_BUSY + 1] = {
        [SC_PEER_UNREACHABLE] = "connection lost during the handshake",
        [SC_PEER_TIMEOUT] = "too slow",
        [SC_PEER_TOO_BIG] = "oversized handshake",
        [SC_PEER_AUTH] = "authentication failed",
        [SC_PEER_ROUTE] = "not the member it claims",
        [SC_PEER_MANAGER] = "another ClusterManager",
        [SC_PEER_LOOPBACK] = "not from loopback",
        [SC_PEER_NOT_TLS] = "not TLS",
        [SC_PEER_BAD_HELLO] = "malformed HELLO",
        [SC_REFUSED_BUSY] = "too many handshakes"
    };
    apr_uint32_t held;

    if (kind <= SC_PEER_OK || kind > SC_REFUSED_BUSY
        || !sc_ratelog_due(d->refusals, kind, apr_time_now(), &held))
        return;
    ap_log_error(APLOG_MARK, kind == SC_PEER_AUTH || kind == SC_PEER_MANAGER
                 ? APLOG_ERR : APLOG_WARNING, 0, d->s, "clusterd: refused a peer "
                 "connection from %s: %s: %s (%u refused for this reason since this "
                 "line was last written; it is written at most every %"
                 APR_TIME_T_FMT " s)", remote, what[kind], why, held + 1,
                 apr_time_sec(SC_RATELOG_EVERY));
}

/* The thread of one inbound connection; owns its unmanaged pool (and the
 * thread's own structure in it: APR touches neither after this returns).
 * Until sc_peer_accept() returns, the peer is a stranger holding a gate
 * ticket, its deadline counted from accept; nothing it sent has reached the
 * member table. */
static void *APR_THREAD_FUNC inbound_task(apr_thread_t *t, void *arg)
{
    sc_conn *in = arg;
    sc_daemon *d = in->d;
    apr_uint32_t limit = SC_MAX_INBOUND(d->node->peers);
    sc_peer_fail fail = SC_PEER_OK;
    const char *why = "";
    sc_peer *c;
    apr_status_t rv;
    (void)t;

    rv = sc_peer_accept(&c, d->node, in->sock, in->accepted + SC_TLS_HANDSHAKE_WAIT,
                        in->pool, &fail, &why);
    sc_gate_leave(d->gate, in->ticket);
    if (rv != APR_SUCCESS)
        refused_peer(d, c->remote, fail, why);
    else if (apr_atomic_inc32(&d->inbound) >= limit) {
        apr_atomic_dec32(&d->inbound);
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, d->s, "clusterd: %u member "
                     "connections open already; closing one from %s (%s)", limit,
                     c->wire.peer, c->remote);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, d->s, "clusterd: member %s "
                     "connected from %s (key %s)", c->wire.peer, c->remote,
                     sc_tls_key_id(c->tls));
        heard_from(d, c->wire.peer);
        serve_frames(in, c);
        apr_atomic_dec32(&d->inbound);
    }
    apr_socket_close(in->sock);
    apr_pool_destroy(in->pool);
    return NULL;
}

/* Accept peers and run each connection on a thread of its own (with a
 * fresh unmanaged pool holding the socket), so that no handshake ever
 * waits for a thread behind another one (the gate and SC_MAX_INBOUND bound
 * how many there are). `admit` may refuse it first. */
typedef void *(APR_THREAD_FUNC *sc_conn_task)(apr_thread_t *, void *);
typedef int (*sc_conn_admit)(sc_conn *conn);

static void accept_loop(sc_daemon *d, apr_socket_t *listener, sc_conn_task task,
                        sc_conn_admit admit, const char *what)
{
    for (;;) {
        sc_conn *conn;
        apr_pool_t *cp;
        apr_socket_t *sock;
        apr_thread_t *t;
        apr_status_t rv;

        if ((rv = apr_pool_create_unmanaged(&cp)) != APR_SUCCESS) {
            apr_sleep(apr_time_from_msec(100));
            continue;
        }
        apr_pool_tag(cp, what);
        if ((rv = apr_socket_accept(&sock, listener, cp)) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, d->s, "clusterd: accept on "
                         "the %s socket failed", what);
            apr_pool_destroy(cp);
            apr_sleep(apr_time_from_msec(100));
            continue;
        }
        conn = apr_pcalloc(cp, sizeof(*conn));
        conn->d = d;
        conn->sock = sock;
        conn->pool = cp;
        conn->accepted = apr_time_now();
        conn->ticket = -1;
        apr_atomic_inc32(&d->node->state->peer_accepts);
        if (admit && !admit(conn)) {
            apr_socket_close(sock);
            apr_pool_destroy(cp);
            continue;
        }
        if ((rv = apr_thread_create(&t, d->detached, task, conn, cp)) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, d->s, "clusterd: cannot run "
                         "a %s connection", what);
            sc_gate_leave(d->gate, conn->ticket);
            apr_socket_close(sock);
            apr_pool_destroy(cp);
        }
    }
}

/* Tell the gate where members are, configured or learnt since it last
 * looked (the acceptor thread alone calls this). */
static void tell_gate(sc_daemon *d)
{
    int n = sc_node_slot_count(d->node);

    for (; d->gate_told < n; d->gate_told++) {
        const sc_member_state *slot = sc_node_slot(d->node, d->gate_told);
        sc_addr a;
        apr_pool_t *p;
        if (apr_pool_create(&p, NULL) != APR_SUCCESS)
            return;
        if (sc_addr_parse(p, slot->addr, &a) != APR_SUCCESS
            || sc_gate_member(d->gate, d->gate_told, a.host) != APR_SUCCESS)
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, d->s, "clusterd: address %s "
                         "of member %s not resolved; its handshakes count as a "
                         "stranger's", slot->addr, slot->route);
        apr_pool_destroy(p);
    }
}

/* A peer may start its handshake only within its address's quota. */
static int admit_peer(sc_conn *conn)
{
    sc_daemon *d = conn->d;
    apr_sockaddr_t *sa;
    const char *why = "address unknown";

    tell_gate(d);
    if (apr_socket_addr_get(&sa, APR_REMOTE, conn->sock) == APR_SUCCESS
        && (conn->ticket = sc_gate_enter(d->gate, sa, &why)) >= 0)
        return 1;
    refused_peer(d, sc_peer_remote(conn->sock, conn->pool), SC_REFUSED_BUSY, why);
    return 0;
}

static void *APR_THREAD_FUNC acceptor_main(apr_thread_t *t, void *arg)
{
    sc_daemon *d = arg;
    (void)t;
    accept_loop(d, d->node->listener, inbound_task, admit_peer, "peer");
    return NULL;
}

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

static apr_status_t start_thread_check(sc_daemon *d, apr_status_t rv)
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
    return start_thread_check(d, apr_thread_create(&t, NULL, fn, arg, p));
}

/* ---- changes from the children ------------------------------------------- */

static sc_link *link_to(sc_daemon *d, const char *route)
{
    int i;
    for (i = 0; i < link_count(d); i++) {
        sc_link *l = link_at(d, i);
        if (!strcmp(sc_link_route(l), route))
            return l;
    }
    return NULL;
}

/* Backup manager: tell every up member but the backup where a session now
 * lives. Proxies only steer fetches, so this never waits. */
static void announce_location(sc_daemon *d, const char *payload, apr_size_t len,
                              const char *backup, apr_pool_t *p)
{
    sc_msg_session m;
    sc_session s;
    char *loc;
    apr_size_t loc_len;
    int i;

    if (sc_msg_session_decode(p, payload, len, &m) != APR_SUCCESS)
        return;
    memset(&s, 0, sizeof(s));
    apr_cpystrn(s.id, m.id, sizeof(s.id));
    apr_cpystrn(s.owner, m.owner, sizeof(s.owner));
    apr_cpystrn(s.backup, m.backup, sizeof(s.backup));
    s.version = m.version;
    s.expires = m.expires;
    if (sc_apply_location_of(p, &s, &loc, &loc_len) != APR_SUCCESS)
        return;
    for (i = 0; i < link_count(d); i++) {
        sc_link *l = link_at(d, i);
        if (sc_link_up(l) && strcmp(sc_link_route(l), backup))
            sc_link_send(l, NULL, SC_MSG_LOCATION, loc, loc_len);
    }
}

/* A batch's progress, to the child waiting on the channel (from the link
 * threads). */
static void report_to_child(void *baton, apr_uint64_t ticket, int peers,
                            int confirmed, int final)
{
    sc_chan *ch = baton;
    if (final)
        sc_chan_answer(ch, ticket, peers, confirmed);
    else
        sc_chan_progress(ch, ticket, peers, confirmed);
}

/* Queue one change for every up member (or only `target`, the backup
 * manager's backup). With a ticket (ack/sync) the child waiting for it is
 * answered once every member asked has answered (or failed); nothing here
 * waits for a member. */
static void replicate(sc_daemon *d, const sc_chan_msg *m, const char *payload,
                      apr_size_t len, apr_uint64_t ticket, apr_pool_t *p)
{
    int want = m->mode == SC_SEND_SYNC ? SC_MSG_APPLIED : SC_MSG_ACK;
    int i, n = link_count(d);
    const char *target = m->target ? m->target : "";
    sc_batch *b = NULL;

    if (ticket && !(b = sc_batch_create(want, n, report_to_child, d->node->chan,
                                        ticket))) {
        sc_chan_answer(d->node->chan, ticket, 0, 0);
        ticket = 0;
    }
    for (i = 0; i < n; i++) {
        sc_link *l = link_at(d, i);
        if ((!*target || !strcmp(target, sc_link_route(l))) && sc_link_up(l)
            && sc_link_send(l, b, m->type, payload, len) == APR_SUCCESS)
            continue;
        if (b)
            sc_batch_skip(b);       /* never queued: release that share */
    }
    if ((m->flags & SC_CHAN_F_LOCATION) && m->type == SC_MSG_SESSION)
        announce_location(d, payload, len, target, p);
    if (b)
        sc_batch_release(b);
}

/* Give the members a session this node just placed (a new primary or a new
 * backup): the data to the backup, the location to everybody else. */
static void replicate_placement(sc_daemon *d, const sc_session *s, apr_pool_t *p)
{
    sc_chan_msg m = { SC_MSG_SESSION, SC_SEND_ASYNC, SC_CHAN_F_LOCATION, s->backup };
    const char *payload;
    apr_size_t len;

    if (sc_apply_describe(p, s, &m.type, &payload, &len) == APR_SUCCESS)
        replicate(d, &m, payload, len, 0, p);
}

/* ---- fetching a session for a child (backup manager) ---------------------- */

/* NONE: the member answered it has nothing; FAILED: no answer from it */
typedef enum { SC_FETCH_NONE, SC_FETCH_DATA, SC_FETCH_GONE,
               SC_FETCH_FAILED } sc_fetch_result;

static void add_candidate(apr_array_header_t *routes, const char *route)
{
    int i;
    if (!route || !*route)
        return;
    for (i = 0; i < routes->nelts; i++)
        if (!strcmp(APR_ARRAY_IDX(routes, i, const char *), route))
            return;
    APR_ARRAY_PUSH(routes, const char *) = route;
}

/* one member's answer, queued behind what its link is sending */
#define SC_FETCH_ASK_WAIT apr_time_from_msec(1000)

/* Ask one member for the session, over its link (no connection of its
 * own: a forged cookie costs one frame per member, not a handshake); a
 * LOCATION answer adds where to ask next. */
static sc_fetch_result fetch_from(sc_daemon *d, sc_link *l, const char *id,
                                  apr_array_header_t *routes, apr_pool_t *p)
{
    const char *route = sc_link_route(l);
    sc_fetch_result res = SC_FETCH_NONE;
    const char *payload;
    apr_size_t len, ask_len;
    char *ask;
    int type = 0, status;
    apr_status_t rv;

    if (sc_msg_id_encode(p, id, &ask, &ask_len) != APR_SUCCESS)
        return SC_FETCH_NONE;
    apr_atomic_inc32(&d->node->state->fetch_questions);
    rv = sc_link_ask(l, SC_MSG_FETCH, ask, ask_len, SC_FETCH_ASK_WAIT, p, &type,
                     &payload, &len);
    if (rv != APR_SUCCESS)
        res = SC_FETCH_FAILED;
    if (rv == APR_SUCCESS && type != SC_MSG_ACK) {
        status = sc_apply_frame(d->node, type, payload, len, route, p);
        if (type == SC_MSG_LOCATION) {
            sc_msg_location loc;
            if (sc_msg_location_decode(p, payload, len, &loc) == APR_SUCCESS) {
                add_candidate(routes, loc.backup);
                add_candidate(routes, loc.owner);
            }
        }
        else if ((type == SC_MSG_SESSION || type == SC_MSG_INVALIDATE)
                 && (status == SC_ACK_OK || status == SC_ACK_STALE))
            res = type == SC_MSG_SESSION ? SC_FETCH_DATA : SC_FETCH_GONE;
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, d->s, "clusterd: fetch of session "
                 "%s from %s: %s", sc_id_digest(p, id), route, res == SC_FETCH_DATA
                 ? "got it" : res == SC_FETCH_GONE ? "invalidated"
                 : rv == APR_TIMEUP ? "no answer in time"
                 : rv ? "link failed" : "not there");
    return res;
}

/* Bring a session's data here: from its backup first, then its primary (as
 * this node knows them), then any up member, following what they say. Just
 * after clusterd started, a candidate whose link has not come up yet (the
 * member was just heard of) is waited for, within SC_FETCH_PATIENCE; later a
 * member that is not up is down, and asking it is pointless. */
#define SC_FETCH_PATIENCE (SC_FETCH_WAIT - apr_time_from_msec(500))
#define SC_FETCH_RETRY    apr_time_from_msec(100)

static int link_pending(sc_daemon *d, sc_link *l)
{
    return l && !sc_link_up(l) && !sc_link_changes(l)
        && apr_time_now() - d->started < SC_DROP_AFTER;
}

/* One line per fetch at debug; a cookie with a made-up id (or one long
 * gone) costs a NOTICE at most every SC_RATELOG_EVERY, with the count, so
 * forged cookies cannot flood the log. */
static void log_fetch(sc_daemon *d, const char *id, sc_fetch_result res,
                      int asked, apr_interval_time_t took, apr_pool_t *p)
{
    const char *what = res == SC_FETCH_DATA ? "fetched"
                       : res == SC_FETCH_GONE ? "was invalidated" : "found nowhere";
    apr_uint32_t held;

    ap_log_error(APLOG_MARK, res == SC_FETCH_DATA ? APLOG_INFO : APLOG_DEBUG, 0,
                 d->s, "clusterd: session %s %s after %d question(s) to members "
                 "in %" APR_TIME_T_FMT " ms", sc_id_digest(p, id), what, asked,
                 apr_time_as_msec(took));
    if (res == SC_FETCH_NONE && sc_ratelog_due(d->misses, 0, apr_time_now(), &held))
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, d->s, "clusterd: %u session(s) "
                     "asked for were found on no member in the last %d s (ids "
                     "long gone, or made up: forged cookies); the latest after %d "
                     "question(s) in %" APR_TIME_T_FMT " ms", held + 1,
                     (int)apr_time_sec(SC_RATELOG_EVERY), asked,
                     apr_time_as_msec(took));
}

static int fetch(sc_daemon *d, const char *id, apr_pool_t *p)
{
    apr_array_header_t *routes = apr_array_make(p, 8, sizeof(const char *));
    apr_time_t start = apr_time_now();
    sc_fetch_result res = SC_FETCH_NONE;
    sc_session s;
    int i, asked = 0, failed = 0, waiting = 1;

    if (sc_store_get(d->node->store, id, start, p, &s) == APR_SUCCESS) {
        if (!s.proxy)
            return !s.tombstone;
        add_candidate(routes, s.backup);
        add_candidate(routes, s.owner);
    }
    else if (sc_misses_recent(d->nowhere, id, start)) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, d->s, "clusterd: session %s was "
                     "found nowhere a moment ago; not asked again",
                     sc_id_digest(p, id));
        return 0;
    }
    for (i = 0; i < link_count(d); i++)
        add_candidate(routes, sc_link_route(link_at(d, i)));
    while (waiting) {
        waiting = 0;
        for (i = 0; i < routes->nelts; i++) {
            const char *route = APR_ARRAY_IDX(routes, i, const char *);
            sc_link *l = link_to(d, route);
            if (l && sc_link_up(l)) {
                res = fetch_from(d, l, id, routes, p);
                failed |= res == SC_FETCH_FAILED;
                asked++;
                if (res == SC_FETCH_DATA || res == SC_FETCH_GONE)
                    break;
            }
            else
                waiting |= link_pending(d, l);
        }
        if (res == SC_FETCH_DATA || res == SC_FETCH_GONE)
            break;
        waiting &= apr_time_now() - start + SC_FETCH_RETRY < SC_FETCH_PATIENCE;
        if (waiting)
            apr_sleep(SC_FETCH_RETRY);
    }
    if (res != SC_FETCH_DATA && res != SC_FETCH_GONE) {
        res = SC_FETCH_NONE;
        /* every member asked said "not here": the next request with this id
         * need not ask them again for a while */
        if (asked && !failed)
            sc_misses_add(d->nowhere, id, apr_time_now());
    }
    log_fetch(d, id, res, asked, apr_time_now() - start, p);
    return res == SC_FETCH_DATA;
}

/* A fetch for a child, on a fetch thread; owns the record's buffer. */
typedef struct {
    sc_daemon *d;
    apr_uint64_t ticket;
    void *buf;
    const char *payload;
    apr_size_t len;
} sc_fetch_task;

static void *APR_THREAD_FUNC fetch_task(apr_thread_t *t, void *arg)
{
    sc_fetch_task *ft = arg;
    const char *id;
    apr_pool_t *p;
    int found = 0;
    (void)t;

    if (apr_pool_create_unmanaged(&p) == APR_SUCCESS) {
        apr_pool_tag(p, "fetch");
        found = sc_msg_id_decode(p, ft->payload, ft->len, &id) == APR_SUCCESS
                && fetch(ft->d, id, p);
        apr_pool_destroy(p);
    }
    sc_chan_answer(ft->d->node->chan, ft->ticket, 1, found);
    free(ft->buf);
    free(ft);
    return NULL;
}

static void start_fetch(sc_daemon *d, const sc_chan_rec *rec, void *buf)
{
    sc_fetch_task *ft = malloc(sizeof(*ft));

    if (ft) {
        ft->d = d;
        ft->ticket = rec->ticket;
        ft->buf = buf;
        ft->payload = rec->payload;
        ft->len = rec->len;
        if (apr_thread_pool_push(d->fetch_tasks, fetch_task, ft,
                                 APR_THREAD_TASK_PRIORITY_NORMAL, NULL) == APR_SUCCESS)
            return;
        free(ft);
    }
    ap_log_error(APLOG_MARK, APLOG_ERR, APR_ENOMEM, d->s, "clusterd: cannot start "
                 "a fetch for a child");
    sc_chan_answer(d->node->chan, rec->ticket, 1, 0);
    free(buf);
}

/* What a child may ask: anything else is a bug, answered "nobody". */
static int record_valid(const sc_chan_rec *rec)
{
    int t = rec->msg.type;
    return (t == SC_MSG_SESSION || t == SC_MSG_DELTA || t == SC_MSG_INVALIDATE
            || t == SC_MSG_FETCH)
        && rec->msg.mode >= SC_SEND_ASYNC && rec->msg.mode <= SC_SEND_SYNC
        && (!*rec->msg.target || sc_route_valid(rec->msg.target))
        && rec->len <= SC_WIRE_MAX_BODY;
}

/* The dispatcher: every change the children post, in order. */
static void *APR_THREAD_FUNC dispatcher_main(apr_thread_t *t, void *arg)
{
    sc_daemon *d = arg;
    apr_pool_t *p;
    int lingering = 0;
    (void)t;

    apr_pool_create(&p, NULL);
    apr_pool_tag(p, "dispatcher");
    for (;;) {
        sc_chan_rec rec;
        void *buf;
        /* after an async change, let the next ones gather (SC_LINK_LINGER):
         * nobody waits for them, and one wake-up then serves several */
        apr_status_t rv = sc_chan_take(d->node->chan, lingering ? SC_LINK_LINGER : 0,
                                       SC_WATCH_EVERY, malloc, &buf, &rec);
        if (rv == APR_EOF)
            break;                  /* stopping: the rest is the next one's */
        if (rv == APR_TIMEUP) {
            lingering = 0;
            continue;
        }
        lingering = rv == APR_SUCCESS && !rec.ticket;
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, d->s, "clusterd: cannot take "
                         "a change from the channel");
            free(buf);
            if (rv == APR_ENOMEM)
                apr_sleep(apr_time_from_msec(10));
            continue;
        }
        if (!record_valid(&rec)) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, d->s, "clusterd: a child posted "
                         "a change of type %d, mode %d that cannot be sent; "
                         "dropped", rec.msg.type, rec.msg.mode);
            sc_chan_answer(d->node->chan, rec.ticket, 0, 0);
            free(buf);
        }
        else if (rec.msg.type == SC_MSG_FETCH)
            start_fetch(d, &rec, buf);
        else {
            replicate(d, &rec.msg, rec.payload, rec.len, rec.ticket, p);
            free(buf);
        }
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    apr_atomic_set32(&d->dispatching, 0);
    return NULL;
}

/* ---- joining ---------------------------------------------------------------- */

static int any_member_up(sc_daemon *d)
{
    int i;
    for (i = 0; i < link_count(d); i++)
        if (sc_link_up(link_at(d, i)))
            return 1;
    return 0;
}

/* Ask one up member for every session and tombstone: when this node joins,
 * or (`joining` 0) when a member is back after it was down, to take in what
 * changed on its side meanwhile (newer versions and invalidations win). */
static apr_status_t transfer_from(sc_daemon *d, sc_link *l, int joining,
                                  int ask_back, apr_pool_t *p)
{
    const sc_member *m = sc_link_member(l);
    apr_time_t start = apr_time_now();
    apr_uint32_t got = 0;
    const char *why = "";
    sc_peer_fail fail;
    sc_peer *c;
    apr_status_t rv;

    rv = sc_peer_connect(&c, d->node, m, SC_IO_TIMEOUT, p, &fail, &why);
    if (rv == APR_SUCCESS) {
        apr_socket_timeout_set(c->sock, SC_PEER_IDLE);
        rv = sc_transfer_receive(d->node, c, p, &got, &why);
        /* it may not have noticed that we were apart (a frozen node does
         * not): have it pull ours as well */
        if (rv == APR_SUCCESS && ask_back
            && sc_peer_send(c, SC_MSG_MERGE_REQ, "", 0, p) != APR_SUCCESS)
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, d->s, "clusterd: cannot "
                         "ask %s to merge with this node", m->route);
        sc_peer_close(c);
    }
    if (rv == APR_SUCCESS) {
        if (joining)
            d->node->state->transferred = got;
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, d->s, "clusterd: received %u "
                     "sessions from %s in %" APR_TIME_T_FMT " ms%s", got, m->route,
                     apr_time_as_msec(apr_time_now() - start), joining ? ""
                     : " (it is back: what changed on either side is merged, "
                       "newer versions and invalidations win)");
    }
    else
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, d->s, "clusterd: state "
                     "transfer from %s failed after %u sessions: %s", m->route,
                     got, why);
    return rv;
}

/* A new store is not ready until it holds what the cluster holds. */
static void join(sc_daemon *d, apr_pool_t *p)
{
    apr_time_t start = apr_time_now();
    apr_time_t deadline = start + d->node->conf->transfer_timeout;
    int i;

    while (!any_member_up(d) && apr_time_now() - start < SC_DROP_AFTER)
        apr_sleep(apr_time_from_msec(50));
    if (!any_member_up(d)) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, d->s, "clusterd: no member "
                     "answered within %" APR_TIME_T_FMT " ms; serving as the "
                     "first node", apr_time_as_msec(SC_DROP_AFTER));
        d->node->state->ready = 1;
        return;
    }
    while (!d->node->state->ready && apr_time_now() < deadline) {
        for (i = 0; i < link_count(d) && !d->node->state->ready; i++) {
            sc_link *l = link_at(d, i);
            if (sc_link_up(l) && transfer_from(d, l, 1, 0, p) == APR_SUCCESS)
                d->node->state->ready = 1;
        }
        if (!d->node->state->ready)
            apr_sleep(SC_PING_EVERY);
    }
    if (!d->node->state->ready) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, d->s, "clusterd: no state "
                     "received within ClusterStateTransferTimeout; serving "
                     "without it");
        d->node->state->ready = 1;
    }
}

/* ---- placement passes (the manager decides, per session) ------------------ */

typedef struct {
    sc_daemon *d;
    const sc_manager *mgr;
    sc_mgr_ctx c;               /* the members as the pass began */
    sc_mgr_pass pass;
    apr_pool_t *p;              /* cleared for every session placed */
    apr_uint32_t placed;
} sc_placer;

/* One session this node holds: placed anew when the manager says so, and
 * the members told (data to its backup, location to everybody else). */
static int place_one(void *baton, const sc_session *s)
{
    sc_placer *pl = baton;
    const char *want;
    sc_session out;
    int moved;

    if (!pl->mgr->pass_one(&pl->c, &pl->pass, s, &want))
        return 0;
    apr_pool_clear(pl->p);
    if (sc_mgr_place(pl->mgr, &pl->c, pl->d->node->store, s->id, want, pl->p,
                     &out, &moved) == APR_SUCCESS && moved) {
        replicate_placement(pl->d, &out, pl->p);
        pl->placed++;
    }
    return 0;
}

/* One pass over the store; `joined` is a member that just came up (NULL
 * after a drop, or when clusterd starts). */
static void place_sessions(sc_daemon *d, const char *joined, const char *what,
                           apr_pool_t *p)
{
    sc_placer pl;
    apr_time_t start = apr_time_now();
    int i;

    memset(&pl, 0, sizeof(pl));
    pl.d = d;
    pl.mgr = sc_node_manager(d->node);
    pl.pass.joined = joined;
    sc_node_mgr_ctx(d->node, &pl.c);
    /* this pass sees every primary stored without a backup so far */
    d->unbacked_seen = apr_atomic_read32(&d->node->state->unbacked_writes);
    apr_atomic_inc32(&d->node->state->placement_passes);
    for (i = 0; joined && i < link_count(d); i++)
        pl.pass.share += sc_link_up(link_at(d, i));
    apr_pool_create(&pl.p, p);
    sc_store_foreach(d->node->store, start, p, place_one, &pl);
    apr_pool_destroy(pl.p);
    ap_log_error(APLOG_MARK, pl.placed ? APLOG_NOTICE : APLOG_DEBUG, 0, d->s,
                 "clusterd: %s: %u session(s) placed anew (primary taken over "
                 "or backup moved) in %" APR_TIME_T_FMT " ms", what, pl.placed,
                 apr_time_as_msec(apr_time_now() - start));
}

/* Primaries stored without a backup since the last pass began (a request
 * that took a session over avoids the primary it replaces, which may be
 * alive and the only other member; or every member looked down for a
 * moment): placed now, while a member can take them, rather than at the
 * next drop or join, which may never come. */
static void watch_unbacked(sc_daemon *d, apr_pool_t *p)
{
    if (apr_atomic_read32(&d->node->state->unbacked_writes) == d->unbacked_seen
        || !any_member_up(d))
        return;
    place_sessions(d, NULL, "primaries stored without a backup", p);
    apr_pool_clear(p);
}

/* What the manager wants done for member i (route), or at start (NULL). */
static void act_on_member(sc_daemon *d, const sc_manager *mgr, int i,
                          const char *route, int up, int restarted,
                          apr_pool_t *p)
{
    sc_mgr_ctx c;
    int todo;

    sc_node_mgr_ctx(d->node, &c);
    todo = mgr->on_member(&c, route, up, restarted);
    if (todo & SC_MGR_RESYNC)
        resync_with(d, i, 1);
    if ((todo & SC_MGR_PLACE_DROPPED) && !route)
        place_sessions(d, NULL, "clusterd started", p);
    else if (todo & SC_MGR_PLACE_DROPPED)
        place_sessions(d, NULL, apr_psprintf(p, "member %s %s", route,
                       restarted ? "restarted" : "dropped"), p);
    if (todo & SC_MGR_PLACE_JOINED)
        place_sessions(d, route, apr_psprintf(p, "member %s joined", route), p);
    apr_pool_clear(p);
}

/* What the watch loop last saw of each link. */
typedef struct {
    int up;
    apr_uint32_t changes;
} sc_seen;

typedef struct {
    sc_daemon *d;
    int i;                      /* the link */
    int ask_back;               /* then have the member pull from us */
} sc_resync;

static void *APR_THREAD_FUNC resync_task(apr_thread_t *t, void *arg)
{
    sc_resync *rs = arg;
    apr_pool_t *p;
    (void)t;

    if (apr_pool_create_unmanaged(&p) == APR_SUCCESS) {
        transfer_from(rs->d, link_at(rs->d, rs->i), 0, rs->ask_back, p);
        apr_pool_destroy(p);
    }
    apr_atomic_set32(&rs->d->resyncing[rs->i], 0);
    free(rs);
    return NULL;
}

/* Delta manager: a member that is back may have been cut off rather than
 * dead (a partition, a freeze): pull its sessions and tombstones, off the
 * main thread (it beats for readiness), and (`ask_back`) have it pull ours,
 * as it may not have seen us gone. One pull per member at a time. */
static void resync_with(sc_daemon *d, int i, int ask_back)
{
    sc_resync *rs;

    if (apr_atomic_cas32(&d->resyncing[i], 1, 0) != 0)
        return;
    if ((rs = malloc(sizeof(*rs))) != NULL) {
        rs->d = d;
        rs->i = i;
        rs->ask_back = ask_back;
        if (apr_thread_pool_push(d->resync_tasks, resync_task, rs,
                                 APR_THREAD_TASK_PRIORITY_NORMAL, NULL) == APR_SUCCESS)
            return;
        free(rs);
    }
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, d->s, "clusterd: cannot start "
                 "merging with member %s", sc_link_route(link_at(d, i)));
    apr_atomic_set32(&d->resyncing[i], 0);
}

/* Act on members going down or coming up since the last look, as the
 * manager says: merge with a member back up (delta), or placement passes
 * (backup: a member that went down and came back in between, it
 * restarted, gets both, as after a drop and then its share). */
static void watch_members(sc_daemon *d, sc_seen *seen, apr_pool_t *p)
{
    const sc_manager *mgr = sc_node_manager(d->node);
    int i;

    for (i = 0; i < link_count(d); i++) {
        sc_link *l = link_at(d, i);
        const char *route = sc_link_route(l);
        apr_uint32_t changes = sc_link_changes(l);
        int up = sc_link_up(l), restarted = up && seen[i].up;
        if (changes == seen[i].changes)
            continue;
        seen[i].changes = changes;
        seen[i].up = up;
        act_on_member(d, mgr, i, route, up, restarted, p);
    }
    watch_unbacked(d, p);
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
    if ((rv = start_thread_check(d, sc_link_start(l, p))) != APR_SUCCESS)
        return rv;
    d->links[link_count(d)] = l;
    apr_atomic_inc32(&d->nlinks);
    return APR_SUCCESS;
}

/* A member multicast made known (slot i): link it at its ClusterListen. */
static apr_status_t add_learnt_link(void *baton, int i)
{
    sc_daemon *d = baton;
    const sc_member_state *slot = sc_node_slot(d->node, i);
    sc_member *m = apr_pcalloc(d->learnt_pool, sizeof(*m));

    if (link_count(d) >= SC_MAX_MEMBERS)
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
        && start_thread_check(d, sc_mcast_start(d->node, d->s, add_learnt_link, d,
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
    for (i = 0; i < link_count(d); i++)
        n += !sc_link_settled(link_at(d, i));
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
    sc_seen *seen;
    int i;

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
    if (start_thread_check(d, sc_gate_create(&d->gate, p)) != APR_SUCCESS
        || start_thread_check(d, sc_ratelog_create(&d->refusals,
                              SC_REFUSED_BUSY + 1, SC_RATELOG_EVERY, p))
           != APR_SUCCESS
        || start_thread_check(d, sc_ratelog_create(&d->misses, 1,
                              SC_RATELOG_EVERY, p)) != APR_SUCCESS
        || start_thread_check(d, sc_misses_create(&d->nowhere, p)) != APR_SUCCESS
        || start_thread_check(d, apr_threadattr_create(&d->detached, p))
           != APR_SUCCESS
        || start_thread_check(d, apr_threadattr_detach_set(d->detached, 1))
           != APR_SUCCESS
        || start_thread_check(d, apr_thread_pool_create(&d->resync_tasks, 1,
                              SC_MAX_RESYNC, p)) != APR_SUCCESS
        || start_thread_check(d, apr_thread_pool_create(&d->fetch_tasks, 1,
                              SC_MAX_FETCHES, p)) != APR_SUCCESS
        || start_thread(d, acceptor_main, d, p) != APR_SUCCESS
        || (apr_atomic_set32(&d->dispatching, 1),
            start_thread(d, dispatcher_main, d, p)) != APR_SUCCESS)
        exit(APEXIT_CHILDFATAL);
    /* tasks wait on the network: start a thread for each queued one at once
     * (the default waits until several are queued) */
    apr_thread_pool_threshold_set(d->resync_tasks, 0);
    apr_thread_pool_threshold_set(d->fetch_tasks, 0);
    d->node->state->clusterd_beat = (apr_uint32_t)apr_time_sec(apr_time_now());
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "clusterd: route %s listening on "
                 "%s, %d other member(s)", d->node->conf->route,
                 d->node->conf->listen.text, link_count(d));
    if (!d->node->state->ready)
        join(d, p);
    /* watch members, sweep the store; leave when the parent is gone */
    seen = apr_pcalloc(p, sizeof(*seen) * SC_MAX_MEMBERS);
    apr_pool_create(&scratch, p);
    /* members as they are now (a joining node just pulled from them); what
     * changed while no clusterd ran (a respawn, a graceful restart) is
     * caught up in one pass */
    for (i = 0; i < link_count(d); i++) {
        seen[i].up = sc_link_up(link_at(d, i));
        seen[i].changes = sc_link_changes(link_at(d, i));
    }
    act_on_member(d, sc_node_manager(d->node), -1, NULL, 0, 0, scratch);
    while (getppid() == parent) {
        d->node->state->clusterd_beat = (apr_uint32_t)apr_time_sec(apr_time_now());
        watch_members(d, seen, scratch);
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
