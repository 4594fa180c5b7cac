/* sc_cd_chan.c - clusterd: the children's side (see sc_cd.h).
 *
 * The dispatcher thread takes every change the children post on the channel
 * (sc_chan), in order, and queues it on the links of the members it goes to
 * without ever waiting for a member: an ack/sync change's waiter is answered
 * from the link threads once every member asked has answered (or failed).
 * A FETCH (backup manager: a child needs a session held elsewhere) goes to
 * a small pool of fetch threads, which ask the members over their links.
 */
#include <stdlib.h>

#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "sc_module.h"
#include "sc_apply.h"
#include "sc_cd.h"
#include "sc_id.h"

APLOG_USE_MODULE(session_cluster);

/* ---- changes from the children ------------------------------------------- */

sc_link *sc_cd_link_to(sc_daemon *d, const char *route)
{
    int i;
    for (i = 0; i < sc_cd_link_count(d); i++) {
        sc_link *l = sc_cd_link_at(d, i);
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
    for (i = 0; i < sc_cd_link_count(d); i++) {
        sc_link *l = sc_cd_link_at(d, i);
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
    int i, n = sc_cd_link_count(d);
    const char *target = m->target ? m->target : "";
    sc_batch *b = NULL;

    if (ticket && !(b = sc_batch_create(want, n, report_to_child, d->node->chan,
                                        ticket))) {
        sc_chan_answer(d->node->chan, ticket, 0, 0);
        ticket = 0;
    }
    for (i = 0; i < n; i++) {
        sc_link *l = sc_cd_link_at(d, i);
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
void sc_cd_replicate_placement(sc_daemon *d, const sc_session *s, apr_pool_t *p)
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
    for (i = 0; i < sc_cd_link_count(d); i++)
        add_candidate(routes, sc_link_route(sc_cd_link_at(d, i)));
    while (waiting) {
        waiting = 0;
        for (i = 0; i < routes->nelts; i++) {
            const char *route = APR_ARRAY_IDX(routes, i, const char *);
            sc_link *l = sc_cd_link_to(d, route);
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
void *APR_THREAD_FUNC sc_cd_dispatcher_main(apr_thread_t *t, void *arg)
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

