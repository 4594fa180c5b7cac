/* sc_cd_watch.c - clusterd's main thread: joining, and acting on members
 * (see sc_cd.h).
 *
 * A node whose store is new asks a live member for every session before it
 * reports ready (bounded by ClusterStateTransferTimeout). Then, every
 * SC_WATCH_EVERY, it looks at the links: a member that went down, came up
 * or came back as a new incarnation is handed to the manager, which says
 * what to do: merge with it (delta), or a placement pass over the store
 * (backup), each session placed as the manager's rules decide. A primary
 * stored without a backup while a member is up gets a pass too.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "sc_module.h"
#include "sc_apply.h"
#include "sc_cd.h"
#include "sc_transfer.h"

APLOG_USE_MODULE(session_cluster);

/* ---- joining ---------------------------------------------------------------- */

int sc_cd_any_member_up(sc_daemon *d)
{
    int i;
    for (i = 0; i < sc_cd_link_count(d); i++)
        if (sc_link_up(sc_cd_link_at(d, i)))
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
        sc_tls_timeout(c->tls, SC_PEER_IDLE);
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
void sc_cd_join(sc_daemon *d, apr_pool_t *p)
{
    apr_time_t start = apr_time_now();
    apr_time_t deadline = start + d->node->conf->transfer_timeout;
    int i;

    while (!sc_cd_any_member_up(d) && apr_time_now() - start < SC_DROP_AFTER)
        apr_sleep(apr_time_from_msec(50));
    if (!sc_cd_any_member_up(d)) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, d->s, "clusterd: no member "
                     "answered within %" APR_TIME_T_FMT " ms; serving as the "
                     "first node", apr_time_as_msec(SC_DROP_AFTER));
        d->node->state->ready = 1;
        return;
    }
    while (!d->node->state->ready && apr_time_now() < deadline) {
        for (i = 0; i < sc_cd_link_count(d) && !d->node->state->ready; i++) {
            sc_link *l = sc_cd_link_at(d, i);
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
        sc_cd_replicate_placement(pl->d, &out, pl->p);
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
    for (i = 0; joined && i < sc_cd_link_count(d); i++)
        pl.pass.share += sc_link_up(sc_cd_link_at(d, i));
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
        || !sc_cd_any_member_up(d))
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
        sc_cd_resync_with(d, i, 1);
    if ((todo & SC_MGR_PLACE_DROPPED) && !route)
        place_sessions(d, NULL, "clusterd started", p);
    else if (todo & SC_MGR_PLACE_DROPPED)
        place_sessions(d, NULL, apr_psprintf(p, "member %s %s", route,
                       restarted ? "restarted" : "dropped"), p);
    if (todo & SC_MGR_PLACE_JOINED)
        place_sessions(d, route, apr_psprintf(p, "member %s joined", route), p);
    apr_pool_clear(p);
}

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
        transfer_from(rs->d, sc_cd_link_at(rs->d, rs->i), 0, rs->ask_back, p);
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
void sc_cd_resync_with(sc_daemon *d, int i, int ask_back)
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
                 "merging with member %s", sc_link_route(sc_cd_link_at(d, i)));
    apr_atomic_set32(&d->resyncing[i], 0);
}

/* Act on members going down or coming up since the last look, as the
 * manager says: merge with a member back up (delta), or placement passes
 * (backup: a member that went down and came back in between, it
 * restarted, gets both, as after a drop and then its share). */
static void watch_members(sc_daemon *d, apr_pool_t *p)
{
    const sc_manager *mgr = sc_node_manager(d->node);
    sc_cd_seen *seen = d->seen;
    int i;

    for (i = 0; i < sc_cd_link_count(d); i++) {
        sc_link *l = sc_cd_link_at(d, i);
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

/* ---- the watch loop's steps ---------------------------------------------- */

/* Publish what the watch loop has acted on (after it did). */
static void publish_acted(sc_daemon *d)
{
    apr_uint32_t sum = 0;
    int i;

    for (i = 0; i < sc_cd_link_count(d); i++)
        sum += d->seen[i].changes;
    apr_atomic_set32(&d->node->state->changes_acted, sum);
}

void sc_cd_watch_start(sc_daemon *d, apr_pool_t *p)
{
    int i;

    /* members as they are now (a joining node just pulled from them); what
     * changed while no clusterd ran (a respawn, a graceful restart) is
     * caught up in one pass */
    for (i = 0; i < sc_cd_link_count(d); i++) {
        d->seen[i].up = sc_link_up(sc_cd_link_at(d, i));
        d->seen[i].changes = sc_link_changes(sc_cd_link_at(d, i));
    }
    act_on_member(d, sc_node_manager(d->node), -1, NULL, 0, 0, p);
    publish_acted(d);
}

void sc_cd_watch(sc_daemon *d, apr_pool_t *p)
{
    watch_members(d, p);
    publish_acted(d);
}
