/* sc_link.c - clusterd's outbound link to one member (see sc_link.h). */
#include <stdlib.h>

#include <apr_atomic.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "sc_module.h"
#include "sc_link.h"
#include "sc_mcast.h"
#include "sc_peer.h"
#include "sc_ratelog.h"

APLOG_USE_MODULE(session_cluster);

/* ---- batches: one change, several members, one waiter ---------------------- */

/* `refs`: the creator's plus one per job, which holds it until freed.
 * `pending`: the creator's plus one per job not answered yet; the report
 * with final = 1 goes out when it reaches 0. */
struct sc_batch {
    volatile apr_uint32_t refs;
    volatile apr_uint32_t pending;
    volatile apr_uint32_t peers;
    volatile apr_uint32_t confirmed;
    int want;                   /* SC_MSG_ACK or SC_MSG_APPLIED */
    sc_batch_report report;
    void *baton;
    apr_uint64_t tag;
};

sc_batch *sc_batch_create(int want_type, int n, sc_batch_report report,
                          void *baton, apr_uint64_t tag)
{
    sc_batch *b = malloc(sizeof(*b));

    if (!b)
        return NULL;
    b->refs = b->pending = (apr_uint32_t)n + 1;
    b->peers = (apr_uint32_t)n;
    b->confirmed = 0;
    b->want = want_type;
    b->report = report;
    b->baton = baton;
    b->tag = tag;
    return b;
}

static void batch_unref(sc_batch *b)
{
    if (!apr_atomic_dec32(&b->refs))
        free(b);
}

/* One share of the batch is done: a job answered (`ok`: it confirmed), or
 * the creator released its own. */
static void batch_settle(sc_batch *b, int ok)
{
    int final;
    if (ok)
        apr_atomic_inc32(&b->confirmed);
    final = !apr_atomic_dec32(&b->pending);
    b->report(b->baton, b->tag, (int)apr_atomic_read32(&b->peers),
              (int)apr_atomic_read32(&b->confirmed), final);
}

void sc_batch_skip(sc_batch *b)
{
    apr_atomic_dec32(&b->peers);
    apr_atomic_dec32(&b->pending);  /* never 0 here: the creator holds one */
    batch_unref(b);
}

void sc_batch_release(sc_batch *b)
{
    batch_settle(b, 0);
    batch_unref(b);
}

/* ---- jobs --------------------------------------------------------------------- */

/* A job whose connection broke under it is sent again, first, on the next
 * connection, made at once (a member that had applied it answers STALE),
 * this many times at most; a member found down drops it (it catches up when
 * back). Its waiter is not kept waiting for that: the member did not
 * confirm in time. */
#define SC_JOB_TRIES 3

/* A question for the member (a FETCH) and its one answer frame, shared by
 * the asker and the link thread; the last of the two to let go frees it.
 * The asker may give up waiting; the link thread then answers nobody. */
typedef struct {
    apr_pool_t *pool;           /* unmanaged: holds mu and cv */
    apr_thread_mutex_t *mu;
    apr_thread_cond_t *cv;
    volatile apr_uint32_t refs;
    int done;                   /* answered, or failed (type 0) */
    int type;
    char *answer;               /* malloc'd */
    apr_size_t len;
} sc_ask;

typedef struct sc_job {
    struct sc_job *next;
    struct sc_link *link;       /* once queued: whose `jobs` count it is in */
    sc_ask *ask;                /* a question, not a change (never batched) */
    sc_batch *batch;            /* NULL: nobody waits (async) */
    int answered;
    int tries;
    int type;
    apr_size_t len;
    char payload[];
} sc_job;

static void ask_unref(sc_ask *a)
{
    if (!apr_atomic_dec32(&a->refs)) {
        free(a->answer);
        apr_pool_destroy(a->pool);
    }
}

/* Hand the answer (type 0: none) to the asker, once. */
static void ask_finish(sc_ask *a, int type, const char *answer, apr_size_t len)
{
    apr_thread_mutex_lock(a->mu);
    if (!a->done) {
        a->done = 1;
        if (type && (a->answer = malloc(len + 1))) {
            memcpy(a->answer, answer, len);
            a->answer[len] = '\0';
            a->len = len;
            a->type = type;
        }
        apr_thread_cond_signal(a->cv);
    }
    apr_thread_mutex_unlock(a->mu);
}

/* Tell the waiter (once) whether this member confirmed, and let go. */
static void job_answer(sc_job *job, int ok)
{
    if (job->batch && !job->answered)
        batch_settle(job->batch, ok);
    job->answered = 1;
}

static void link_job_gone(struct sc_link *l);

static void job_free(sc_job *job)
{
    if (job->link)
        link_job_gone(job->link);
    job_answer(job, 0);
    if (job->batch)
        batch_unref(job->batch);
    if (job->ask) {
        ask_finish(job->ask, 0, NULL, 0);
        ask_unref(job->ask);
    }
    free(job);
}

/* ---- the link --------------------------------------------------------------- */

struct sc_link {
    sc_node *node;
    sc_link_whole_fn whole;     /* a session as held now, for NEED_WHOLE */
    server_rec *s;
    const sc_member *m;
    sc_member_state *slot;
    apr_thread_mutex_t *mu;
    apr_thread_cond_t *cv;
    sc_job *head, *tail;
    int queued;
    apr_size_t queued_bytes;
    volatile apr_uint32_t jobs; /* queued, under way or to send again */
    int lingering;              /* only changes somebody waits for signal */
    int overflowed;             /* a change did not fit: ask for a merge */
    sc_ratelog *full_log;       /* "queue full" at most every interval */
    sc_job *retry, *retry_tail; /* link thread only: to send again first */
    apr_uint64_t incarnation;   /* the member's, at the last connection */
    apr_time_t refused_said;    /* link thread only: last error line about a */
    apr_uint32_t refused_as;    /* refused link, and its reason */
};

sc_link *sc_link_create(sc_node *node, server_rec *s, const sc_member *m,
                        sc_member_state *slot, sc_link_whole_fn whole,
                        apr_pool_t *p)
{
    sc_link *l = apr_pcalloc(p, sizeof(*l));
    l->node = node;
    l->whole = whole;
    l->s = s;
    l->m = m;
    l->slot = slot;
    if (apr_thread_mutex_create(&l->mu, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS
        || apr_thread_cond_create(&l->cv, p) != APR_SUCCESS
        || sc_ratelog_create(&l->full_log, 1, SC_RATELOG_EVERY, p) != APR_SUCCESS)
        return NULL;
    return l;
}

int sc_link_up(const sc_link *l) { return l->slot->up != 0; }

int sc_link_settled(sc_link *l) { return apr_atomic_read32(&l->jobs) == 0; }

static void link_job_gone(sc_link *l) { apr_atomic_dec32(&l->jobs); }

const char *sc_link_route(const sc_link *l) { return l->m->route; }

const sc_member *sc_link_member(const sc_link *l) { return l->m; }

apr_uint32_t sc_link_changes(const sc_link *l) { return l->slot->changes; }

/* The queue as the status page shows it (lock held). */
static void publish_queue(sc_link *l)
{
    l->slot->queue_jobs = (apr_uint32_t)l->queued;
    l->slot->queue_bytes = l->queued_bytes;
}

/* A change that does not fit: counted, said once per interval. */
static void queue_full(sc_link *l, apr_size_t len)
{
    apr_uint32_t held;

    apr_atomic_inc32(&l->slot->queue_dropped);
    if (sc_ratelog_due(l->full_log, 0, apr_time_now(), &held))
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, l->s, "clusterd: the queue to "
                     "member %s is full (%d changes, %" APR_SIZE_T_FMT " bytes); "
                     "a change of %" APR_SIZE_T_FMT " bytes was not queued (%u "
                     "since this line was last written): the member is asked to "
                     "pull this node's sessions once the queue has drained",
                     l->m->route, l->queued, l->queued_bytes, len, held + 1);
}

static sc_job *job_new(sc_batch *b, sc_ask *a, int type, const char *payload,
                       apr_size_t len)
{
    sc_job *job = malloc(sizeof(*job) + len);

    if (!job)
        return NULL;
    job->next = NULL;
    job->link = NULL;
    job->ask = a;
    job->batch = b;
    job->answered = 0;
    job->tries = 0;
    job->type = type;
    job->len = len;
    memcpy(job->payload, payload, len);
    return job;
}

/* Queue a job for the link thread, or free it when the queue is full. */
static apr_status_t queue_job(sc_link *l, sc_job *job)
{
    apr_size_t len = job->len;
    sc_batch *b = job->batch;

    apr_thread_mutex_lock(l->mu);
    if (l->queued >= SC_LINK_QUEUE_MAX
        || l->queued_bytes + len > l->node->conf->link_queue_bytes) {
        if (!job->ask)
            l->overflowed = 1;      /* a change was lost: ask for a merge */
        queue_full(l, len);
        apr_thread_mutex_unlock(l->mu);
        free(job);
        return APR_ENOSPC;
    }
    if (job->ask) {
        /* a question jumps the queue: somebody waits for it now, and it
         * concerns a session this node holds no data of, so nothing
         * queued is about it */
        job->next = l->head;
        l->head = job;
        if (!l->tail)
            l->tail = job;
    }
    else {
        if (l->tail)
            l->tail->next = job;
        else
            l->head = job;
        l->tail = job;
    }
    l->queued++;
    l->queued_bytes += len;
    job->link = l;
    apr_atomic_inc32(&l->jobs);
    publish_queue(l);
    if (!l->lingering || b || job->ask)
        apr_thread_cond_signal(l->cv);
    apr_thread_mutex_unlock(l->mu);
    return APR_SUCCESS;
}

apr_status_t sc_link_send(sc_link *l, sc_batch *b, int type,
                          const char *payload, apr_size_t len)
{
    sc_job *job;

    if (!l->slot->up)
        return APR_ECONNREFUSED;
    if (!(job = job_new(b, NULL, type, payload, len)))
        return APR_ENOMEM;
    return queue_job(l, job);
}

static apr_status_t ask_create(sc_ask **out)
{
    apr_pool_t *p;
    sc_ask *a;
    apr_status_t rv;

    if ((rv = apr_pool_create_unmanaged(&p)) != APR_SUCCESS)
        return rv;
    apr_pool_tag(p, "sc_link_ask");
    a = apr_pcalloc(p, sizeof(*a));
    a->pool = p;
    a->refs = 2;                /* the asker's and the job's */
    if ((rv = apr_thread_mutex_create(&a->mu, APR_THREAD_MUTEX_DEFAULT, p))
        != APR_SUCCESS
        || (rv = apr_thread_cond_create(&a->cv, p)) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return rv;
    }
    *out = a;
    return APR_SUCCESS;
}

apr_status_t sc_link_ask(sc_link *l, int type, const char *payload,
                         apr_size_t len, apr_interval_time_t wait,
                         apr_pool_t *p, int *answer_type,
                         const char **answer, apr_size_t *answer_len)
{
    apr_time_t deadline = apr_time_now() + wait;
    sc_ask *a;
    sc_job *job;
    apr_status_t rv;

    if (!l->slot->up)
        return APR_ECONNREFUSED;
    if ((rv = ask_create(&a)) != APR_SUCCESS)
        return rv;
    if (!(job = job_new(NULL, a, type, payload, len))) {
        apr_pool_destroy(a->pool);
        return APR_ENOMEM;
    }
    if ((rv = queue_job(l, job)) != APR_SUCCESS) {
        apr_pool_destroy(a->pool);   /* the job is gone: nobody else holds it */
        return rv;
    }
    apr_thread_mutex_lock(a->mu);
    while (!a->done && apr_time_now() < deadline)
        apr_thread_cond_timedwait(a->cv, a->mu, deadline - apr_time_now());
    if (!a->done)
        rv = APR_TIMEUP;
    else if (!a->type)
        rv = APR_ECONNABORTED;
    else {
        *answer_type = a->type;
        *answer = apr_pstrmemdup(p, a->answer, a->len);
        *answer_len = a->len;
    }
    apr_thread_mutex_unlock(a->mu);
    ask_unref(a);
    return rv;
}

/* Move jobs from the list *head..*tail to jobs[n..] within `max` and
 * SC_LINK_BATCH_BYTES (at least one); a question goes alone. The new n. */
static int take_from(sc_job **head, sc_job **tail, sc_job **jobs, int n, int max,
                     apr_size_t *bytes)
{
    while (*head && n < max
           && (!n || (*bytes + (*head)->len <= SC_LINK_BATCH_BYTES
                      && !jobs[0]->ask && !(*head)->ask))) {
        sc_job *job = *head;
        if (!(*head = job->next))
            *tail = NULL;
        *bytes += job->len;
        jobs[n++] = job;
    }
    return n;
}

/* The same from the queue, keeping its counts. Lock held. */
static int take_queued(sc_link *l, sc_job **jobs, int n, int max, apr_size_t *bytes)
{
    apr_size_t before = *bytes;
    int from = n;

    n = take_from(&l->head, &l->tail, jobs, n, max, bytes);
    l->queued -= n - from;
    l->queued_bytes -= *bytes - before;
    return n;
}

static int all_async(sc_job **jobs, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (jobs[i]->batch || jobs[i]->ask)
            return 0;
    return 1;
}

/* The next jobs to send, at most `max` and SC_LINK_BATCH_BYTES (but at least
 * one): those to send again first, then what is queued, waiting at most
 * `wait` for something; async ones wait up to SC_LINK_LINGER for others to
 * travel with them. 0 when idle. */
static int take_jobs(sc_link *l, apr_interval_time_t wait, sc_job **jobs, int max)
{
    apr_size_t bytes = 0;
    int n = take_from(&l->retry, &l->retry_tail, jobs, 0, max, &bytes);

    if (l->retry)
        return n;               /* the rest of them first, next time */
    apr_thread_mutex_lock(l->mu);
    if (!n && !l->head)
        apr_thread_cond_timedwait(l->cv, l->mu, wait);
    n = take_queued(l, jobs, n, max, &bytes);
    if (n && n < max && bytes < SC_LINK_BATCH_BYTES / 2 && all_async(jobs, n)) {
        /* nobody waits for these: let more join them, unless a change
         * somebody waits for arrives first (it signals) */
        l->lingering = 1;
        apr_thread_cond_timedwait(l->cv, l->mu, SC_LINK_LINGER);
        l->lingering = 0;
        n = take_queued(l, jobs, n, max, &bytes);
    }
    publish_queue(l);
    apr_thread_mutex_unlock(l->mu);
    return n;
}

/* Jobs whose connection broke under them: sent again first (the waiters
 * are not kept waiting: they count as unconfirmed), or given up after
 * SC_JOB_TRIES. */
static void retry_jobs(sc_link *l, sc_job **jobs, int n, const char *why)
{
    int i, lost = 0;

    for (i = 0; i < n; i++) {
        sc_job *job = jobs[i];
        if (job->ask) {             /* the asker goes on to another member */
            job_free(job);
            continue;
        }
        if (++job->tries >= SC_JOB_TRIES) {
            lost++;
            job_free(job);
            continue;
        }
        job_answer(job, 0);
        job->next = NULL;
        if (l->retry_tail)
            l->retry_tail->next = job;
        else
            l->retry = job;
        l->retry_tail = job;
    }
    if (lost)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, l->s, "clusterd: member %s "
                     "missed %d change(s) after %d tries (%s); it has them again "
                     "with each session's next change or when it is back from "
                     "down", l->m->route, lost, SC_JOB_TRIES, why);
}

static void free_jobs(sc_job *job)
{
    while (job) {
        sc_job *next = job->next;
        job_free(job);
        job = next;
    }
}

static void fail_queued(sc_link *l)
{
    sc_job *job;

    free_jobs(l->retry);
    l->retry = l->retry_tail = NULL;
    apr_thread_mutex_lock(l->mu);
    job = l->head;
    l->head = l->tail = NULL;
    l->queued = 0;
    l->queued_bytes = 0;
    publish_queue(l);
    apr_thread_mutex_unlock(l->mu);
    free_jobs(job);
}

/* Once a queue that overflowed has drained: have the member pull what it
 * missed. Fails only when the request could not be sent (asked again on
 * the next connection). */
static apr_status_t ask_merge_if_overflowed(sc_link *l, sc_peer *c, apr_pool_t *p,
                                            const char **why)
{
    int ask;
    apr_status_t rv;

    apr_thread_mutex_lock(l->mu);
    ask = l->overflowed && !l->head;
    l->overflowed = 0;
    apr_thread_mutex_unlock(l->mu);
    if (!ask)
        return APR_SUCCESS;
    *why = "cannot ask for a merge";
    rv = sc_peer_send(c, SC_MSG_MERGE_REQ, "", 0, p);
    ap_log_error(APLOG_MARK, rv == APR_SUCCESS ? APLOG_NOTICE : APLOG_WARNING, rv,
                 l->s, "clusterd: asked member %s to pull this node's sessions: "
                 "its queue had overflowed", l->m->route);
    if (rv != APR_SUCCESS) {
        apr_thread_mutex_lock(l->mu);
        l->overflowed = 1;
        apr_thread_mutex_unlock(l->mu);
    }
    return rv;
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

/* A job's APPLIED status is in: a member that missed an earlier change
 * (NEED_WHOLE) gets the session as we hold it now; then the waiter hears. */
static apr_status_t settle(sc_link *l, sc_peer *c, sc_job *job, int status,
                           apr_pool_t *p, const char **why)
{
    const char *whole;
    apr_size_t len;
    int type;
    apr_status_t rv = APR_SUCCESS;

    if (status == SC_ACK_NEED_WHOLE) {
        if (l->whole(l->node, job->type, job->payload, job->len, p, &type,
                     &whole, &len) == APR_SUCCESS)
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

/* Jobs in one BATCH frame: one write, answered by one BATCH_APPLIED (a
 * status per change; it also says the batch was received, so ack-mode
 * waiters are answered with it). */
static apr_status_t deliver_batch(sc_link *l, sc_peer *c, sc_job **jobs, int n,
                                  apr_pool_t *p, const char **why)
{
    sc_msg_change *changes = apr_palloc(p, n * sizeof(*changes));
    sc_msg_batch_applied applied;
    const char *answer;
    apr_size_t len, alen;
    char *buf;
    int i, type;
    apr_status_t rv;

    for (i = 0; i < n; i++) {
        changes[i].type = jobs[i]->type;
        changes[i].data = jobs[i]->payload;
        changes[i].len = jobs[i]->len;
    }
    *why = "cannot encode a batch";
    if ((rv = sc_msg_batch_encode(p, changes, n, &buf, &len)) != APR_SUCCESS)
        return rv;
    *why = "cannot send";
    if ((rv = sc_peer_send(c, SC_MSG_BATCH, buf, len, p)) != APR_SUCCESS
        || (rv = sc_peer_recv(c, p, &type, &answer, &alen, why)) != APR_SUCCESS)
        return rv;
    if (type != SC_MSG_BATCH_APPLIED
        || sc_msg_batch_applied_decode(p, answer, alen, &applied) != APR_SUCCESS
        || applied.counter != c->wire.tx_counter || applied.n != n) {
        *why = "answer does not match the batch sent";
        return APR_EGENERAL;
    }
    mark_up(l, -1);
    if (n > 1)
        apr_atomic_inc32(&l->slot->batches);
    for (i = 0; i < n; i++) {
        if (jobs[i]->batch && jobs[i]->batch->want == SC_MSG_ACK)
            job_answer(jobs[i], 1);             /* received */
        if ((rv = settle(l, c, jobs[i], applied.status[i], p, why)) != APR_SUCCESS)
            return rv;
    }
    return APR_SUCCESS;
}

/* A question: one frame out, its one answer back to the asker (an ACK
 * must answer this frame). */
static apr_status_t deliver_ask(sc_link *l, sc_peer *c, sc_job *job,
                                apr_pool_t *p, const char **why)
{
    const char *answer;
    apr_size_t len;
    sc_msg_ack ack;
    int type;
    apr_status_t rv;

    *why = "cannot send";
    if ((rv = sc_peer_send(c, job->type, job->payload, job->len, p)) != APR_SUCCESS
        || (rv = sc_peer_recv(c, p, &type, &answer, &len, why)) != APR_SUCCESS)
        return rv;
    if (type == SC_MSG_ACK
        && (sc_msg_ack_decode(answer, len, &ack) != APR_SUCCESS
            || ack.counter != c->wire.tx_counter)) {
        *why = "answer does not match the question";
        return APR_EGENERAL;
    }
    mark_up(l, -1);
    ask_finish(job->ask, type, answer, len);
    return APR_SUCCESS;
}

/* Connected: send what is queued, ping when idle, until the connection or
 * the member fails (the reason in *why). */
static apr_status_t serve_link(sc_link *l, sc_peer *c, apr_pool_t *scratch,
                               const char **why)
{
    sc_job *jobs[SC_WIRE_BATCH_MAX];
    apr_status_t rv;

    for (;;) {
        int i, n;
        apr_pool_clear(scratch);
        if ((rv = check_heartbeats(l, scratch, why)) != APR_SUCCESS)
            return rv;
        n = take_jobs(l, SC_PING_EVERY, jobs, SC_WIRE_BATCH_MAX);
        if (!n) {
            if ((rv = ask_merge_if_overflowed(l, c, scratch, why)) != APR_SUCCESS
                || (rv = ping_once(l, c, scratch, why)) != APR_SUCCESS)
                return rv;
            continue;
        }
        rv = jobs[0]->ask ? deliver_ask(l, c, jobs[0], scratch, why)
                          : deliver_batch(l, c, jobs, n, scratch, why);
        if (rv != APR_SUCCESS) {
            retry_jobs(l, jobs, n, *why);
            return rv;
        }
        for (i = 0; i < n; i++)
            job_free(jobs[i]);
    }
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
            rv = serve_link(l, c, scratch, &why);
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
