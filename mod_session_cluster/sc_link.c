/* sc_link.c - clusterd's outbound link to one member (see sc_link.h). */
#include <stdlib.h>

#include <apr_atomic.h>
#include <apr_file_io.h>
#include <apr_poll.h>
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

/* ---- frames in flight ---------------------------------------------------------- */

/* A frame sent on the connection whose answer has not been read yet. The
 * member answers frames in the order they were sent, so the answers are
 * matched against the oldest flight. Jobs in a flight are the flight's
 * until it is answered or the connection ends (then they are sent again). */
typedef enum {
    SC_FLIGHT_BATCH,            /* changes: one BATCH_APPLIED */
    SC_FLIGHT_WHOLE,            /* a whole session: ACK, then APPLIED */
    SC_FLIGHT_ASK,              /* a question: one answer frame */
    SC_FLIGHT_PING              /* PONG */
} sc_flight_kind;

typedef struct sc_flight {
    struct sc_flight *next;
    sc_flight_kind kind;
    int acked;                  /* WHOLE: its ACK is in */
    apr_uint64_t counter;       /* its frame's */
    apr_uint64_t ping;          /* PING: the time it carries */
    apr_time_t sent;            /* its answer is due SC_IO_TIMEOUT after */
    int n;
    sc_job *jobs[];
} sc_flight;

static sc_flight *flight_new(sc_flight_kind kind, sc_job **jobs, int n)
{
    sc_flight *f = malloc(sizeof(*f) + (apr_size_t)n * sizeof(sc_job *));

    if (!f)
        return NULL;
    f->next = NULL;
    f->kind = kind;
    f->acked = 0;
    f->counter = 0;
    f->ping = 0;
    f->n = n;
    if (n)
        memcpy(f->jobs, jobs, (apr_size_t)n * sizeof(sc_job *));
    return f;
}

/* ---- the link --------------------------------------------------------------- */

/* Who touches what. `mu` guards the queue, the flights, `conn` and the
 * flags; `io` is held by whoever uses the connection's TLS (a send, a read):
 * the link thread, or the dispatcher when it sends a change somebody waits
 * for itself (send_direct). The dispatcher takes `mu`, then only tries
 * `io`; it never waits for a member. Frames and their flights are pushed
 * under `io`, so the flights are in the order of the frames. */
struct sc_link {
    sc_node *node;
    sc_link_whole_fn whole;     /* a session as held now, for NEED_WHOLE */
    server_rec *s;
    const sc_member *m;
    sc_member_state *slot;
    apr_thread_mutex_t *mu;
    apr_thread_cond_t *cv;      /* wakes the link thread while it lingers */
    apr_thread_mutex_t *io;
    apr_file_t *kick_in;        /* wakes the link thread out of poll() */
    apr_file_t *kick_out;
    int kicked;                 /* a byte is in the pipe */
    apr_pool_t *direct_pool;    /* send_direct's scratch (under io) */
    sc_job *head, *tail;
    int queued;
    apr_size_t queued_bytes;
    volatile apr_uint32_t jobs; /* queued, under way or to send again */
    int lingering;              /* only changes somebody waits for signal */
    int sending;                /* the link thread holds jobs it took */
    int overflowed;             /* a change did not fit: ask for a merge */
    sc_ratelog *full_log;       /* "queue full" at most every interval */
    sc_job *retry, *retry_tail; /* to send again first */
    sc_peer *conn;              /* connected: the dispatcher may send */
    int unflushed;              /* a direct send left bytes for the thread */
    sc_flight *flights, *flights_tail;
    int flying;                 /* flights */
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
        || apr_thread_mutex_create(&l->io, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS
        || apr_thread_cond_create(&l->cv, p) != APR_SUCCESS
        || apr_file_pipe_create_ex(&l->kick_in, &l->kick_out, APR_FULL_NONBLOCK, p)
           != APR_SUCCESS
        || apr_pool_create(&l->direct_pool, p) != APR_SUCCESS
        || sc_ratelog_create(&l->full_log, 1, SC_RATELOG_EVERY, p) != APR_SUCCESS)
        return NULL;
    apr_pool_tag(l->direct_pool, "sc_link_direct");
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

/* Wake the link thread (lock held): out of its linger for a change somebody
 * waits for (`urgent`), out of poll() for anything. A byte already in the
 * pipe does it. */
static void wake_link(sc_link *l, int urgent)
{
    char one = 1;
    apr_size_t n = 1;

    if (l->lingering) {
        if (urgent)
            apr_thread_cond_signal(l->cv);
        return;
    }
    if (!l->kicked && apr_file_write(l->kick_out, &one, &n) == APR_SUCCESS)
        l->kicked = 1;
}

/* Take the wake-up (lock held, so a kick made after is never lost). */
static void unkick(sc_link *l)
{
    char buf[64];
    apr_size_t n = sizeof(buf);

    while (apr_file_read(l->kick_in, buf, &n) == APR_SUCCESS && n)
        n = sizeof(buf);
    l->kicked = 0;
}

/* Queue a job for the link thread (lock held), or free it when the queue
 * is full. */
static apr_status_t enqueue(sc_link *l, sc_job *job)
{
    apr_size_t len = job->len;

    if (l->queued >= SC_LINK_QUEUE_MAX
        || l->queued_bytes + len > l->node->conf->link_queue_bytes) {
        if (!job->ask)
            l->overflowed = 1;      /* a change was lost: ask for a merge */
        queue_full(l, len);
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
    return APR_SUCCESS;
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
    publish_queue(l);
    return n;
}

/* Put jobs taken from the queue back in front of it, in order. Lock held. */
static void unqueue(sc_link *l, sc_job **jobs, int n)
{
    while (n--) {
        sc_job *job = jobs[n];
        if (!(job->next = l->head))
            l->tail = job;
        l->head = job;
        l->queued++;
        l->queued_bytes += job->len;
    }
    publish_queue(l);
}

/* A flight joins the end (lock held; io held too: its frame goes out next). */
static void fly(sc_link *l, sc_flight *f, const sc_peer *c)
{
    f->counter = c->wire.tx_counter + 1;
    f->sent = apr_time_now();
    if (l->flights_tail)
        l->flights_tail->next = f;
    else
        l->flights = f;
    l->flights_tail = f;
    l->flying++;
}

static apr_status_t encode_batch(sc_job **jobs, int n, apr_pool_t *p,
                                 char **buf, apr_size_t *len)
{
    sc_msg_change *changes = apr_palloc(p, n * sizeof(*changes));
    int i;

    for (i = 0; i < n; i++) {
        changes[i].type = jobs[i]->type;
        changes[i].data = jobs[i]->payload;
        changes[i].len = jobs[i]->len;
    }
    return sc_msg_batch_encode(p, changes, n, buf, len);
}

/* The dispatcher sends what is queued itself, when the link is connected
 * and idle and its connection free this instant: the link thread, waiting
 * in poll(), then wakes once, for the answer, instead of once more to
 * send. Lock held. Whether it was sent (else the link thread sends it). */
static int send_direct(sc_link *l)
{
    sc_job *jobs[SC_WIRE_BATCH_MAX];
    apr_size_t bytes = 0, len;
    sc_flight *f;
    char *buf;
    int n, drained = 0;
    apr_status_t rv;

    if (!l->conn || l->sending || l->unflushed || l->retry || !l->head
        || l->head->ask || l->head->len > SC_LINK_BATCH_BYTES
        || l->flying >= SC_LINK_FLIGHTS_MAX
        || apr_thread_mutex_trylock(l->io) != APR_SUCCESS)
        return 0;
    n = take_queued(l, jobs, 0, SC_WIRE_BATCH_MAX, &bytes);
    apr_pool_clear(l->direct_pool);
    if (encode_batch(jobs, n, l->direct_pool, &buf, &len) != APR_SUCCESS
        || !(f = flight_new(SC_FLIGHT_BATCH, jobs, n))) {
        unqueue(l, jobs, n);
        apr_thread_mutex_unlock(l->io);
        return 0;
    }
    fly(l, f, l->conn);
    rv = sc_peer_send_nowait(l->conn, SC_MSG_BATCH, buf, len, l->direct_pool,
                             &drained);
    apr_thread_mutex_unlock(l->io);
    if (rv != APR_SUCCESS || !drained) {
        /* the rest waits in the connection: the link thread flushes it, or
         * finds the connection broken and sends the flight again */
        l->unflushed = 1;
        wake_link(l, 1);
    }
    return 1;
}

apr_status_t sc_link_send(sc_link *l, sc_batch *b, int type,
                          const char *payload, apr_size_t len)
{
    sc_job *job;
    apr_status_t rv;

    if (!l->slot->up)
        return APR_ECONNREFUSED;
    if (!(job = job_new(b, NULL, type, payload, len)))
        return APR_ENOMEM;
    apr_thread_mutex_lock(l->mu);
    /* somebody waits for it: send it now if we can; async changes gather
     * in the link thread */
    if ((rv = enqueue(l, job)) == APR_SUCCESS && !(b && send_direct(l)))
        wake_link(l, b != NULL);
    apr_thread_mutex_unlock(l->mu);
    return rv;
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
    apr_thread_mutex_lock(l->mu);
    if ((rv = enqueue(l, job)) == APR_SUCCESS)
        wake_link(l, 1);
    apr_thread_mutex_unlock(l->mu);
    if (rv != APR_SUCCESS) {
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

static int all_async(sc_job **jobs, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (jobs[i]->batch || jobs[i]->ask)
            return 0;
    return 1;
}

/* The next jobs for the link thread to send, at most `max` and
 * SC_LINK_BATCH_BYTES (but at least one): those to send again first, then
 * what is queued; async ones wait up to SC_LINK_LINGER for others to travel
 * with them. 0 when there is nothing; else l->sending is set until
 * done_sending(). */
static int take_jobs(sc_link *l, sc_job **jobs, int max)
{
    apr_size_t bytes = 0;
    int n;

    apr_thread_mutex_lock(l->mu);
    n = take_from(&l->retry, &l->retry_tail, jobs, 0, max, &bytes);
    if (!n) {
        n = take_queued(l, jobs, 0, max, &bytes);
        if (n && n < max && bytes < SC_LINK_BATCH_BYTES / 2 && all_async(jobs, n)
            && !l->flying) {
            /* nobody waits for these: let more join them, unless a change
             * somebody waits for arrives first (it signals); not while
             * answers are due, which somebody may wait for */
            l->sending = 1;
            l->lingering = 1;
            apr_thread_cond_timedwait(l->cv, l->mu, SC_LINK_LINGER);
            l->lingering = 0;
            n = take_queued(l, jobs, n, max, &bytes);
        }
    }
    l->sending = n > 0;
    apr_thread_mutex_unlock(l->mu);
    return n;
}

static void done_sending(sc_link *l)
{
    apr_thread_mutex_lock(l->mu);
    l->sending = 0;
    apr_thread_mutex_unlock(l->mu);
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
        apr_thread_mutex_lock(l->mu);
        if (l->retry_tail)
            l->retry_tail->next = job;
        else
            l->retry = job;
        l->retry_tail = job;
        apr_thread_mutex_unlock(l->mu);
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
    sc_job *job, *retry;

    apr_thread_mutex_lock(l->mu);
    retry = l->retry;
    l->retry = l->retry_tail = NULL;
    job = l->head;
    l->head = l->tail = NULL;
    l->queued = 0;
    l->queued_bytes = 0;
    publish_queue(l);
    apr_thread_mutex_unlock(l->mu);
    free_jobs(retry);
    free_jobs(job);
}

/* A frame from the link thread, with its flight (NULL: none is answered).
 * A flight that could not be made fails the connection: its jobs are sent
 * again on the next one. */
static apr_status_t send_flying(sc_link *l, sc_peer *c, sc_flight *f, int type,
                                const char *payload, apr_size_t len,
                                apr_pool_t *p)
{
    apr_status_t rv;

    apr_thread_mutex_lock(l->io);
    if (f) {
        apr_thread_mutex_lock(l->mu);
        fly(l, f, c);
        apr_thread_mutex_unlock(l->mu);
    }
    rv = sc_peer_send(c, type, payload, len, p);
    apr_thread_mutex_unlock(l->io);
    return rv;
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
    rv = send_flying(l, c, NULL, SC_MSG_MERGE_REQ, "", 0, p);
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

/* ---- delivery ----------------------------------------------------------------- */

/* The oldest flight, which the next answer is for; popped once answered.
 * Only the link thread pops, so the head stays while it looks at it. */
static sc_flight *first_flight(sc_link *l)
{
    sc_flight *f;
    apr_thread_mutex_lock(l->mu);
    f = l->flights;
    apr_thread_mutex_unlock(l->mu);
    return f;
}

static void pop_flight(sc_link *l)
{
    apr_thread_mutex_lock(l->mu);
    if ((l->flights = l->flights->next) == NULL)
        l->flights_tail = NULL;
    l->flying--;
    apr_thread_mutex_unlock(l->mu);
}

/* A job's final APPLIED status: the waiter hears, the job is done. */
static void finish(sc_link *l, sc_job *job, int status)
{
    job_answer(job, status == SC_ACK_OK || status == SC_ACK_STALE);
    if (status != SC_ACK_OK && status != SC_ACK_STALE)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, l->s, "clusterd: member %s "
                     "could not apply a change (status %d)", l->m->route, status);
    job_free(job);
}

/* A member that lacked a delta's base gets the session as we hold it now
 * (a SESSION frame, answered by ACK then APPLIED). */
static apr_status_t send_whole(sc_link *l, sc_peer *c, sc_job *job, apr_pool_t *p)
{
    const char *whole;
    apr_size_t len;
    sc_flight *f;
    int type;

    if (l->whole(l->node, job->type, job->payload, job->len, p, &type, &whole,
                 &len) != APR_SUCCESS) {
        finish(l, job, SC_ACK_NEED_WHOLE);
        return APR_SUCCESS;
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, l->s, "clusterd: member %s lacked a "
                 "delta's base; sending the whole session", l->m->route);
    if (!(f = flight_new(SC_FLIGHT_WHOLE, &job, 1))) {
        retry_jobs(l, &job, 1, "out of memory");
        return APR_ENOMEM;
    }
    return send_flying(l, c, f, type, whole, len, p);
}

/* BATCH_APPLIED: a status per change (it also says the batch was received,
 * so ack-mode waiters are answered with it). */
static apr_status_t batch_answered(sc_link *l, sc_peer *c, sc_flight *f,
                                   int type, const char *payload, apr_size_t len,
                                   apr_pool_t *p, const char **why)
{
    sc_msg_batch_applied applied;
    int i, wholes = 0;
    apr_status_t rv = APR_SUCCESS;

    if (type != SC_MSG_BATCH_APPLIED
        || sc_msg_batch_applied_decode(p, payload, len, &applied) != APR_SUCCESS
        || applied.counter != f->counter || applied.n != f->n) {
        *why = "answer does not match the batch sent";
        return APR_EGENERAL;
    }
    pop_flight(l);
    mark_up(l, -1);
    if (f->n > 1)
        apr_atomic_inc32(&l->slot->batches);
    for (i = 0; i < f->n; i++) {
        sc_job *job = f->jobs[i];
        if (job->batch && job->batch->want == SC_MSG_ACK)
            job_answer(job, 1);                 /* received */
        if (applied.status[i] == SC_ACK_NEED_WHOLE)
            f->jobs[wholes++] = job;            /* below, in order */
        else
            finish(l, job, applied.status[i]);
    }
    *why = "cannot send a whole session";
    for (i = 0; i < wholes && rv == APR_SUCCESS; i++)
        rv = send_whole(l, c, f->jobs[i], p);
    if (rv != APR_SUCCESS && i < wholes)
        retry_jobs(l, f->jobs + i, wholes - i, *why);
    free(f);
    return rv;
}

/* ACK, then APPLIED, for this flight's frame. */
static apr_status_t ack_status(sc_flight *f, int type, int want, const char *payload,
                               apr_size_t len, int *status, const char **why)
{
    sc_msg_ack ack;

    if (type != want || sc_msg_ack_decode(payload, len, &ack) != APR_SUCCESS
        || ack.counter != f->counter) {
        *why = "answer does not match the frame sent";
        return APR_EGENERAL;
    }
    *status = ack.status;
    return APR_SUCCESS;
}

static apr_status_t whole_answered(sc_link *l, sc_flight *f, int type,
                                   const char *payload, apr_size_t len,
                                   const char **why)
{
    sc_job *job = f->jobs[0];
    int status;
    apr_status_t rv = ack_status(f, type, f->acked ? SC_MSG_APPLIED : SC_MSG_ACK,
                                 payload, len, &status, why);

    if (rv != APR_SUCCESS)
        return rv;
    mark_up(l, -1);
    if (!f->acked) {
        f->acked = 1;
        if (job->batch && job->batch->want == SC_MSG_ACK)
            job_answer(job, status == SC_ACK_OK);
        return APR_SUCCESS;
    }
    pop_flight(l);
    free(f);
    finish(l, job, status);
    return APR_SUCCESS;
}

/* A question's one answer frame goes to the asker (an ACK must answer this
 * frame). */
static apr_status_t ask_answered(sc_link *l, sc_flight *f, int type,
                                 const char *payload, apr_size_t len,
                                 const char **why)
{
    sc_job *job = f->jobs[0];
    sc_msg_ack ack;

    if (type == SC_MSG_ACK && (sc_msg_ack_decode(payload, len, &ack) != APR_SUCCESS
                               || ack.counter != f->counter)) {
        *why = "answer does not match the question";
        return APR_EGENERAL;
    }
    pop_flight(l);
    free(f);
    mark_up(l, -1);
    ask_finish(job->ask, type, payload, len);
    job_free(job);
    return APR_SUCCESS;
}

static apr_status_t pong(sc_link *l, sc_flight *f, int type, const char *payload,
                         apr_size_t len, const char **why)
{
    apr_uint64_t echoed;

    if (type != SC_MSG_PONG || sc_msg_u64_decode(payload, len, &echoed)
                               != APR_SUCCESS || echoed != f->ping) {
        *why = "answer is not our pong";
        return APR_EGENERAL;
    }
    pop_flight(l);
    mark_up(l, (apr_time_t)(apr_time_now() - (apr_time_t)f->ping));
    free(f);
    return APR_SUCCESS;
}

/* Read one answer and settle the flight it is for. */
static apr_status_t read_answer(sc_link *l, sc_peer *c, apr_pool_t *p,
                                const char **why)
{
    const char *payload;
    apr_size_t len;
    sc_flight *f;
    int type;
    apr_status_t rv;

    apr_thread_mutex_lock(l->io);
    rv = sc_peer_recv(c, p, &type, &payload, &len, why);
    apr_thread_mutex_unlock(l->io);
    if (rv != APR_SUCCESS)
        return rv;
    if (!(f = first_flight(l))) {
        *why = "an answer to nothing sent";
        return APR_EGENERAL;
    }
    switch (f->kind) {
    case SC_FLIGHT_BATCH:
        return batch_answered(l, c, f, type, payload, len, p, why);
    case SC_FLIGHT_WHOLE:
        return whole_answered(l, f, type, payload, len, why);
    case SC_FLIGHT_ASK:
        return ask_answered(l, f, type, payload, len, why);
    default:
        return pong(l, f, type, payload, len, why);
    }
}

/* The link thread sends jobs it took: a batch of changes or one question. */
static apr_status_t send_jobs(sc_link *l, sc_peer *c, sc_job **jobs, int n,
                              apr_pool_t *p, const char **why)
{
    sc_flight *f = flight_new(jobs[0]->ask ? SC_FLIGHT_ASK : SC_FLIGHT_BATCH,
                              jobs, n);
    apr_size_t len;
    char *buf;
    apr_status_t rv;

    *why = "cannot encode a batch";
    if (!f) {
        retry_jobs(l, jobs, n, "out of memory");
        return APR_ENOMEM;
    }
    if (f->kind == SC_FLIGHT_ASK) {
        *why = "cannot send";
        return send_flying(l, c, f, jobs[0]->type, jobs[0]->payload, jobs[0]->len, p);
    }
    if ((rv = encode_batch(jobs, n, p, &buf, &len)) != APR_SUCCESS) {
        free(f);
        retry_jobs(l, jobs, n, *why);
        return rv;
    }
    *why = "cannot send";
    return send_flying(l, c, f, SC_MSG_BATCH, buf, len, p);
}

static apr_status_t send_ping(sc_link *l, sc_peer *c, apr_pool_t *p,
                              const char **why)
{
    sc_flight *f = flight_new(SC_FLIGHT_PING, NULL, 0);
    apr_size_t len;
    char *buf;
    apr_status_t rv;

    *why = "cannot send ping";
    if (!f)
        return APR_ENOMEM;
    f->ping = (apr_uint64_t)apr_time_now();
    if ((rv = sc_msg_u64_encode(p, f->ping, &buf, &len)) != APR_SUCCESS) {
        free(f);
        return rv;
    }
    return send_flying(l, c, f, SC_MSG_PING, buf, len, p);
}

/* What a direct send left in the connection goes out now. */
static apr_status_t flush_direct(sc_link *l, sc_peer *c, const char **why)
{
    int unflushed;
    apr_status_t rv = APR_SUCCESS;

    apr_thread_mutex_lock(l->mu);
    unflushed = l->unflushed;
    apr_thread_mutex_unlock(l->mu);
    if (!unflushed)
        return APR_SUCCESS;
    apr_thread_mutex_lock(l->io);
    rv = sc_tls_flush(c->tls);
    apr_thread_mutex_unlock(l->io);
    *why = "cannot send";
    if (rv == APR_SUCCESS) {
        apr_thread_mutex_lock(l->mu);
        l->unflushed = 0;
        apr_thread_mutex_unlock(l->mu);
    }
    return rv;
}

typedef enum { SC_WAIT_ANSWER, SC_WAIT_KICK, SC_WAIT_IDLE } sc_wait_end;

/* Wait until an answer can be read, a kick comes or `wait` passes. */
static apr_status_t wait_event(sc_link *l, sc_peer *c, apr_interval_time_t wait,
                               sc_wait_end *end)
{
    apr_pollfd_t pfd[2];
    apr_int32_t got = 0;
    apr_status_t rv;
    int buffered;

    *end = SC_WAIT_ANSWER;
    apr_thread_mutex_lock(l->io);
    buffered = sc_tls_buffered(c->tls);
    apr_thread_mutex_unlock(l->io);
    if (buffered)
        return APR_SUCCESS;         /* poll() cannot see what OpenSSL holds */
    memset(pfd, 0, sizeof(pfd));
    pfd[0].desc_type = APR_POLL_SOCKET;
    pfd[0].reqevents = APR_POLLIN;
    pfd[0].desc.s = c->sock;
    pfd[1].desc_type = APR_POLL_FILE;
    pfd[1].reqevents = APR_POLLIN;
    pfd[1].desc.f = l->kick_in;
    rv = apr_poll(pfd, 2, &got, wait);
    if (APR_STATUS_IS_TIMEUP(rv) || (rv == APR_SUCCESS && !got)) {
        *end = SC_WAIT_IDLE;
        return APR_SUCCESS;
    }
    if (APR_STATUS_IS_EINTR(rv)) {
        *end = SC_WAIT_KICK;
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS)
        return rv;
    /* a kick is taken even with an answer: the caller looks at the queue
     * on every turn anyway */
    if (pfd[1].rtnevents) {
        apr_thread_mutex_lock(l->mu);
        unkick(l);
        apr_thread_mutex_unlock(l->mu);
    }
    /* readable, or closed: the read says */
    *end = pfd[0].rtnevents ? SC_WAIT_ANSWER : SC_WAIT_KICK;
    return APR_SUCCESS;
}

/* The connection is the dispatcher's to send on too, from now on. */
static void link_open(sc_link *l, sc_peer *c)
{
    apr_thread_mutex_lock(l->mu);
    l->conn = c;
    apr_thread_mutex_unlock(l->mu);
}

/* The connection ended: nobody sends on it any more; what was under way is
 * sent again on the next one (in order, first), unless the member is down
 * (then it is dropped: it catches up when back). */
static void link_close(sc_link *l, const char *why)
{
    sc_flight *f;

    apr_thread_mutex_lock(l->mu);
    l->conn = NULL;
    l->unflushed = 0;
    f = l->flights;
    l->flights = l->flights_tail = NULL;
    l->flying = 0;
    apr_thread_mutex_unlock(l->mu);
    while (f) {
        sc_flight *next = f->next;
        int i;
        if (l->slot->up)
            retry_jobs(l, f->jobs, f->n, why);
        else
            for (i = 0; i < f->n; i++)
                job_free(f->jobs[i]);
        free(f);
        f = next;
    }
}

/* How many frames are in flight, and when the oldest one's answer is due. */
static int flights_due(sc_link *l, apr_time_t *due)
{
    int flying;

    apr_thread_mutex_lock(l->mu);
    flying = l->flying;
    *due = flying ? l->flights->sent + SC_IO_TIMEOUT : 0;
    apr_thread_mutex_unlock(l->mu);
    return flying;
}

/* Connected: send what is queued, read the answers, ping when idle, until
 * the connection or the member fails (the reason in *why). The dispatcher
 * may send changes on the connection meanwhile (send_direct). */
static apr_status_t serve_link(sc_link *l, sc_peer *c, apr_pool_t *scratch,
                               const char **why)
{
    sc_job *jobs[SC_WIRE_BATCH_MAX];
    apr_status_t rv;

    link_open(l, c);
    for (;;) {
        sc_wait_end end;
        apr_time_t due, now;
        int n, flying;

        apr_pool_clear(scratch);
        if ((rv = check_heartbeats(l, scratch, why)) != APR_SUCCESS
            || (rv = flush_direct(l, c, why)) != APR_SUCCESS)
            return rv;
        flying = flights_due(l, &due);
        if (flying < SC_LINK_FLIGHTS_MAX && (n = take_jobs(l, jobs, SC_WIRE_BATCH_MAX))) {
            rv = send_jobs(l, c, jobs, n, scratch, why);
            done_sending(l);
            if (rv != APR_SUCCESS)
                return rv;
            continue;
        }
        /* the oldest frame's answer is due within the I/O timeout (however
         * often kicks wake us meanwhile); idle, a ping is */
        now = apr_time_now();
        if (flying && now >= due) {
            *why = "no answer in time";
            return APR_TIMEUP;
        }
        if ((rv = wait_event(l, c, flying ? due - now : SC_PING_EVERY, &end))
            != APR_SUCCESS) {
            *why = "cannot wait for the member";
            return rv;
        }
        if (end == SC_WAIT_ANSWER) {
            if ((rv = read_answer(l, c, scratch, why)) != APR_SUCCESS)
                return rv;
        }
        else if (end == SC_WAIT_IDLE && !flying
                 && ((rv = ask_merge_if_overflowed(l, c, scratch, why)) != APR_SUCCESS
                     || (rv = send_ping(l, c, scratch, why)) != APR_SUCCESS))
            return rv;
    }
}

static void *APR_THREAD_FUNC link_main(apr_thread_t *t, void *arg)
{
    sc_link *l = arg;
    apr_pool_t *conn_pool, *scratch;
    (void)t;

    apr_pool_create(&conn_pool, NULL);
    apr_pool_create(&scratch, NULL);
    apr_pool_tag(conn_pool, "sc_link_conn");
    apr_pool_tag(scratch, "sc_link_scratch");
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
            link_close(l, why);
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
