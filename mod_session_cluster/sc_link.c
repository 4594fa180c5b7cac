/* sc_link.c - clusterd's outbound link to one member (see sc_link.h). */
#include <stdlib.h>

#include <apr_atomic.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "sc_module.h"
#include "sc_apply.h"
#include "sc_link.h"
#include "sc_mcast.h"
#include "sc_peer.h"

APLOG_USE_MODULE(session_cluster);

/* ---- batches: one change, several members, one waiter ---------------------- */

struct sc_batch {
    apr_pool_t *pool;
    apr_thread_mutex_t *mu;
    apr_thread_cond_t *cv;
    int refs;
    int pending;
    int confirmed;
    int want;                   /* SC_MSG_ACK or SC_MSG_APPLIED */
};

sc_batch *sc_batch_create(int want_type, int n)
{
    apr_pool_t *p;
    sc_batch *b;

    if (apr_pool_create(&p, NULL) != APR_SUCCESS)
        return NULL;
    b = apr_pcalloc(p, sizeof(*b));
    b->pool = p;
    b->refs = n + 1;
    b->pending = n;
    b->want = want_type;
    if (apr_thread_mutex_create(&b->mu, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS
        || apr_thread_cond_create(&b->cv, p) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return NULL;
    }
    return b;
}

static void batch_unref(sc_batch *b)
{
    int last;
    apr_thread_mutex_lock(b->mu);
    last = --b->refs == 0;
    apr_thread_mutex_unlock(b->mu);
    if (last)
        apr_pool_destroy(b->pool);
}

static void batch_answer(sc_batch *b, int ok)
{
    apr_thread_mutex_lock(b->mu);
    b->pending--;
    b->confirmed += ok;
    apr_thread_cond_broadcast(b->cv);
    apr_thread_mutex_unlock(b->mu);
}

void sc_batch_skip(sc_batch *b)
{
    apr_thread_mutex_lock(b->mu);
    b->pending--;
    b->refs--;          /* the caller's own reference keeps it alive */
    apr_thread_mutex_unlock(b->mu);
}

int sc_batch_wait(sc_batch *b, apr_interval_time_t timeout)
{
    apr_time_t deadline = apr_time_now() + timeout;
    int confirmed;

    apr_thread_mutex_lock(b->mu);
    while (b->pending > 0) {
        apr_interval_time_t left = deadline - apr_time_now();
        if (left <= 0)
            break;
        apr_thread_cond_timedwait(b->cv, b->mu, left);
    }
    confirmed = b->confirmed;
    apr_thread_mutex_unlock(b->mu);
    batch_unref(b);
    return confirmed;
}

/* ---- jobs --------------------------------------------------------------------- */

/* A job whose connection broke under it is sent again, first, on the next
 * connection, made at once (a member that had applied it answers STALE),
 * this many times at most; a member found down drops it (it catches up when
 * back). Its waiter is not kept waiting for that: the member did not
 * confirm in time. */
#define SC_JOB_TRIES 3

typedef struct sc_job {
    struct sc_job *next;
    sc_batch *batch;            /* NULL: nobody waits (async) */
    int answered;
    int tries;
    int type;
    apr_size_t len;
    char payload[];
} sc_job;

/* Tell the waiter (once) whether this member confirmed, and let go. */
static void job_answer(sc_job *job, int ok)
{
    if (job->batch && !job->answered)
        batch_answer(job->batch, ok);
    job->answered = 1;
}

static void job_free(sc_job *job)
{
    job_answer(job, 0);
    if (job->batch)
        batch_unref(job->batch);
    free(job);
}

/* ---- the link --------------------------------------------------------------- */

struct sc_link {
    sc_node *node;
    server_rec *s;
    const sc_member *m;
    sc_member_state *slot;
    apr_thread_mutex_t *mu;
    apr_thread_cond_t *cv;
    sc_job *head, *tail;
    int queued;
    sc_job *retry;              /* link thread only: to send again first */
    apr_uint64_t incarnation;   /* the member's, at the last connection */
    apr_time_t refused_said;    /* link thread only: last error line about a */
    apr_uint32_t refused_as;    /* refused link, and its reason */
};

sc_link *sc_link_create(sc_node *node, server_rec *s, const sc_member *m,
                        sc_member_state *slot, apr_pool_t *p)
{
    sc_link *l = apr_pcalloc(p, sizeof(*l));
    l->node = node;
    l->s = s;
    l->m = m;
    l->slot = slot;
    if (apr_thread_mutex_create(&l->mu, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS
        || apr_thread_cond_create(&l->cv, p) != APR_SUCCESS)
        return NULL;
    return l;
}

int sc_link_up(const sc_link *l) { return l->slot->up != 0; }

const char *sc_link_route(const sc_link *l) { return l->m->route; }

const sc_member *sc_link_member(const sc_link *l) { return l->m; }

apr_uint32_t sc_link_changes(const sc_link *l) { return l->slot->changes; }

apr_status_t sc_link_send(sc_link *l, sc_batch *b, int type,
                          const char *payload, apr_size_t len)
{
    sc_job *job;

    if (!l->slot->up)
        return APR_ECONNREFUSED;
    if (!(job = malloc(sizeof(*job) + len)))
        return APR_ENOMEM;
    job->next = NULL;
    job->batch = b;
    job->answered = 0;
    job->tries = 0;
    job->type = type;
    job->len = len;
    memcpy(job->payload, payload, len);
    apr_thread_mutex_lock(l->mu);
    if (l->queued >= SC_LINK_QUEUE_MAX) {
        apr_thread_mutex_unlock(l->mu);
        free(job);
        return APR_ENOSPC;
    }
    if (l->tail)
        l->tail->next = job;
    else
        l->head = job;
    l->tail = job;
    l->queued++;
    apr_thread_cond_signal(l->cv);
    apr_thread_mutex_unlock(l->mu);
    return APR_SUCCESS;
}

/* Next job, waiting at most `wait`; NULL when idle. */
static sc_job *take_job(sc_link *l, apr_interval_time_t wait)
{
    sc_job *job;
    apr_thread_mutex_lock(l->mu);
    if (!l->head)
        apr_thread_cond_timedwait(l->cv, l->mu, wait);
    job = l->head;
    if (job) {
        l->head = job->next;
        if (!l->head)
            l->tail = NULL;
        l->queued--;
    }
    apr_thread_mutex_unlock(l->mu);
    return job;
}

static void fail_queued(sc_link *l)
{
    sc_job *job;

    if (l->retry) {
        job_free(l->retry);
        l->retry = NULL;
    }
    apr_thread_mutex_lock(l->mu);
    job = l->head;
    l->head = l->tail = NULL;
    l->queued = 0;
    apr_thread_mutex_unlock(l->mu);
    while (job) {
        sc_job *next = job->next;
        job_free(job);
        job = next;
    }
}

/* ---- membership ---------------------------------------------------------------- */

/* An answer from the member; it counts as up unless its heartbeats say it
 * is gone (a stale connection may still answer for a moment). */
static void mark_up(sc_link *l, apr_time_t rtt)
{
    sc_member_state *slot = l->slot;
    apr_time_t now = apr_time_now();

    slot->last_seen = now;
    if (rtt >= 0)
        slot->rtt = rtt;
    if (!slot->up && !sc_mcast_silent(l->node, slot, now)) {
        slot->reason = SC_REASON_NONE;
        slot->up = 1;
        apr_atomic_inc32(&slot->changes);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, l->s, "clusterd: member %s (%s) "
                     "is up, ping %" APR_TIME_T_FMT " us", l->m->route,
                     l->m->addr.text, slot->rtt);
    }
}

/* A link refused for its configuration (key, certificate, manager, the
 * node at the address) cannot carry changes, whatever comes in. */
static int refused(apr_uint32_t reason)
{
    return reason == SC_REASON_AUTH || reason == SC_REASON_MANAGER
        || reason == SC_REASON_ROUTE;
}

void sc_link_heard(sc_link *l)
{
    if (!refused(l->slot->reason))
        mark_up(l, -1);
}

static void mark_down(sc_link *l, apr_status_t rv, const char *why,
                      sc_reason reason)
{
    sc_member_state *slot = l->slot;

    slot->reason = reason;
    if (!slot->up)
        return;
    slot->up = 0;
    apr_atomic_inc32(&slot->changes);
    ap_log_error(APLOG_MARK, APLOG_NOTICE, rv, l->s, "clusterd: member %s (%s) "
                 "is down: %s", l->m->route, l->m->addr.text, why);
    fail_queued(l);
}

/* The member did not answer: down once silent for SC_DROP_AFTER, or at once
 * when its host refuses the connection (nothing listens: it is gone). */
static void note_silence(sc_link *l, apr_status_t rv, const char *why,
                         apr_pool_t *p)
{
    apr_time_t silent = apr_time_now() - l->slot->last_seen;
    int gone = APR_STATUS_IS_ECONNREFUSED(rv);

    if (silent >= SC_DROP_AFTER || gone)
        mark_down(l, rv, apr_psprintf(p, "%s, silent for %" APR_TIME_T_FMT " ms",
                                      why, apr_time_as_msec(silent)),
                  gone ? SC_REASON_UNREACHABLE : SC_REASON_SILENT);
}

/* The member's node refused the link, or we refused it, for what is
 * configured: down at once (no change can reach it), with the reason on
 * the status page and an error line when the reason is new, then at most
 * every SC_REFUSED_SAY_EVERY while it lasts. */
#define SC_REFUSED_SAY_EVERY apr_time_from_sec(60)

static void note_refused(sc_link *l, apr_status_t rv, sc_peer_fail fail,
                         const char *why)
{
    sc_reason reason = fail == SC_PEER_AUTH ? SC_REASON_AUTH
                       : fail == SC_PEER_MANAGER ? SC_REASON_MANAGER
                       : SC_REASON_ROUTE;
    apr_time_t now = apr_time_now();
    int say = reason != l->refused_as || l->slot->up
              || now - l->refused_said >= SC_REFUSED_SAY_EVERY;

    mark_down(l, rv, why, reason);
    ap_log_error(APLOG_MARK, say ? APLOG_ERR : APLOG_DEBUG, 0, l->s, "clusterd: "
                 "member %s (%s) refused: %s: %s", l->m->route, l->m->addr.text,
                 sc_node_reason_name(reason), why);
    if (say) {
        l->refused_said = now;
        l->refused_as = reason;
    }
}

/* A member that sends multicast heartbeats and stopped for droptime is
 * down until they come back. APR_SUCCESS while it is not silent. */
static apr_status_t check_heartbeats(sc_link *l, apr_pool_t *p, const char **why)
{
    sc_member_state *slot = l->slot;
    apr_time_t now = apr_time_now();

    if (!sc_mcast_silent(l->node, slot, now))
        return APR_SUCCESS;
    *why = apr_psprintf(p, "no heartbeat for %" APR_TIME_T_FMT " ms",
                        apr_time_as_msec(now - slot->heard));
    mark_down(l, APR_SUCCESS, *why, SC_REASON_HEARTBEAT);
    return APR_TIMEUP;
}

/* A new connection reached another incarnation than the last one: the member
 * restarted (with an empty store) in between, maybe before anyone saw it
 * gone. While it is up (it already connected to us), that counts as a down
 * and an up for the watchers, so what it held is placed anew; it is not
 * taken down here, which would drop the changes queued for it: they go to
 * the new incarnation, which needs them (it asks for the whole session). */
static void check_incarnation(sc_link *l, const sc_peer *c)
{
    if (l->incarnation && c->wire.peer_incarnation != l->incarnation) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, l->s, "clusterd: member %s (%s) "
                     "started anew (a new incarnation)", l->m->route,
                     l->m->addr.text);
        if (l->slot->up)
            apr_atomic_add32(&l->slot->changes, 2);
    }
    l->incarnation = c->wire.peer_incarnation;
}

static apr_status_t ping_once(sc_link *l, sc_peer *c, apr_pool_t *p,
                              const char **why)
{
    apr_uint64_t sent = (apr_uint64_t)apr_time_now(), echoed;
    const char *payload;
    apr_size_t plen, len;
    char *buf;
    int type;
    apr_status_t rv;

    *why = "cannot send ping";
    if ((rv = sc_msg_u64_encode(p, sent, &buf, &len)) != APR_SUCCESS
        || (rv = sc_peer_send(c, SC_MSG_PING, buf, len, p)) != APR_SUCCESS)
        return rv;
    if ((rv = sc_peer_recv(c, p, &type, &payload, &plen, why)) != APR_SUCCESS)
        return rv;
    if (type != SC_MSG_PONG || sc_msg_u64_decode(payload, plen, &echoed)
                               != APR_SUCCESS || echoed != sent) {
        *why = "answer is not our pong";
        return APR_EGENERAL;
    }
    mark_up(l, (apr_time_t)(apr_time_now() - sent));
    return APR_SUCCESS;
}

/* ---- delivery ----------------------------------------------------------------- */

/* Read the peer's answer `type` (ACK or APPLIED) to our last frame. */
static apr_status_t expect_answer(sc_peer *c, int type, apr_pool_t *p,
                                  int *status, const char **why)
{
    const char *payload;
    apr_size_t len;
    sc_msg_ack ack;
    int got;
    apr_status_t rv;

    if ((rv = sc_peer_recv(c, p, &got, &payload, &len, why)) != APR_SUCCESS)
        return rv;
    if (got != type || sc_msg_ack_decode(payload, len, &ack) != APR_SUCCESS
        || ack.counter != c->wire.tx_counter) {
        *why = "answer does not match the frame sent";
        return APR_EGENERAL;
    }
    *status = ack.status;
    return APR_SUCCESS;
}

/* Send one frame, wait for ACK then APPLIED; answer the job's waiter at the
 * point its send mode asks for. *status: the peer's APPLIED status. */
static apr_status_t send_and_wait(sc_link *l, sc_peer *c, sc_job *job, int type,
                                  const char *payload, apr_size_t len,
                                  apr_pool_t *p, int *status, const char **why)
{
    apr_status_t rv;
    int acked;

    *why = "cannot send";
    if ((rv = sc_peer_send(c, type, payload, len, p)) != APR_SUCCESS
        || (rv = expect_answer(c, SC_MSG_ACK, p, &acked, why)) != APR_SUCCESS)
        return rv;
    if (job->batch && job->batch->want == SC_MSG_ACK)
        job_answer(job, acked == SC_ACK_OK);
    if ((rv = expect_answer(c, SC_MSG_APPLIED, p, status, why)) != APR_SUCCESS)
        return rv;
    mark_up(l, -1);
    return APR_SUCCESS;
}

static apr_status_t deliver(sc_link *l, sc_peer *c, sc_job *job, apr_pool_t *p,
                            const char **why)
{
    const char *whole;
    apr_size_t len;
    int status, type;
    apr_status_t rv;

    rv = send_and_wait(l, c, job, job->type, job->payload, job->len, p, &status,
                       why);
    if (rv == APR_SUCCESS && status == SC_ACK_NEED_WHOLE) {
        /* the member missed an earlier change: send what we hold now */
        if (sc_apply_current(l->node, job->type, job->payload, job->len, p,
                             &type, &whole, &len) == APR_SUCCESS)
            rv = send_and_wait(l, c, job, type, whole, len, p, &status, why);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, l->s, "clusterd: member %s "
                     "lacked a delta's base; sent the whole session", l->m->route);
    }
    if (rv == APR_SUCCESS)
        job_answer(job, status == SC_ACK_OK || status == SC_ACK_STALE);
    if (rv == APR_SUCCESS && status != SC_ACK_OK && status != SC_ACK_STALE)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, l->s, "clusterd: member %s "
                     "could not apply a change (status %d)", l->m->route, status);
    return rv;
}

static void *APR_THREAD_FUNC link_main(apr_thread_t *t, void *arg)
{
    sc_link *l = arg;
    apr_pool_t *conn_pool, *scratch;
    (void)t;

    apr_pool_create(&conn_pool, NULL);
    apr_pool_create(&scratch, NULL);
    for (;;) {
        const char *why = "";
        sc_peer_fail fail = SC_PEER_OK;
        sc_peer *c;
        apr_status_t rv;

        apr_pool_clear(conn_pool);
        rv = sc_peer_connect(&c, l->node, l->m, SC_IO_TIMEOUT, conn_pool, &fail,
                             &why);
        if (rv == APR_SUCCESS) {
            l->refused_as = SC_REASON_NONE;
            check_incarnation(l, c);
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, l->s, "clusterd: connected "
                         "to member %s (%s)", l->m->route, c->remote);
            for (;;) {
                sc_job *job;
                apr_pool_clear(scratch);
                if ((rv = check_heartbeats(l, scratch, &why)) != APR_SUCCESS)
                    break;
                if ((job = l->retry) != NULL)
                    l->retry = NULL;
                else
                    job = take_job(l, SC_PING_EVERY);
                if (!job)
                    rv = ping_once(l, c, scratch, &why);
                else if ((rv = deliver(l, c, job, scratch, &why)) != APR_SUCCESS
                         && ++job->tries < SC_JOB_TRIES) {
                    job_answer(job, 0);
                    l->retry = job;
                }
                else {
                    if (rv != APR_SUCCESS)
                        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, l->s, "clusterd: "
                                     "member %s missed a change after %d tries (%s); "
                                     "it has it again with the session's next change "
                                     "or when it is back from down", l->m->route,
                                     SC_JOB_TRIES, why);
                    job_free(job);
                }
                if (rv != APR_SUCCESS)
                    break;
            }
            sc_peer_close(c);
        }
        ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, l->s, "clusterd: member %s "
                     "(%s): %s", l->m->route, l->m->addr.text, why);
        apr_pool_clear(scratch);
        if (fail == SC_PEER_AUTH || fail == SC_PEER_MANAGER || fail == SC_PEER_ROUTE)
            note_refused(l, rv, fail, why);
        else if (check_heartbeats(l, scratch, &why) == APR_SUCCESS)
            note_silence(l, rv, why, scratch);
        if (!l->retry)
            apr_sleep(SC_PING_EVERY);
    }
    return NULL;
}

apr_status_t sc_link_start(sc_link *l, apr_pool_t *p)
{
    apr_thread_t *t;
    return apr_thread_create(&t, NULL, link_main, l, p);
}
