/* sc_chan.c - children to clusterd over a shared-memory ring (see sc_chan.h).
 *
 * Memory order: producers publish a record by a release store of `tail`
 * after copying it; the consumer frees room by a release store of `head`
 * after copying a record out. The sleep flags and counters that decide
 * whether to wake somebody use sequentially consistent operations, so a
 * wake-up is never lost between a check and a sleep (and every futex wait
 * names the value it saw, so a change in between returns at once).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#include "sc_chan.h"

#define SC_CHAN_MAGIC    0x53434348u    /* "SCCH" */
#define SC_CHAN_VERSION  2
#define SLICE            apr_time_from_msec(100)

/* what the consumer is doing (consumer_sleeps): running, asleep (any
 * record wakes it), or lingering (a record nobody waits for does not: it
 * is taken with the others when the linger ends) */
enum { RUNS = 0, SLEEPS = 1, LINGERS = 2 };

/* waiter slot states (the low 2 bits of a claim) */
enum { W_FREE = 0, W_WAIT = 1, W_DONE = 2 };
#define GEN_MASK 0x3fffffffu

/* A waiter slot. `claim` is changed by CAS only: since (seconds) << 32 |
 * generation << 2 | state, so a slot taken back from a dead process and a
 * slot freshly claimed can never be confused. `result` is generation << 32
 * | peers << 16 | confirmed, also by CAS, so an answer for an earlier owner
 * never lands (nor a progress report after the answer: RESULT_FINAL).
 * `taker` is generation << 32 | the pid of the consumer that took the
 * record. `wake` is the futex the owner sleeps on. */
typedef struct {
    volatile apr_uint64_t claim;
    volatile apr_uint64_t result;
    volatile apr_uint64_t taker;
    volatile apr_uint32_t wake;
    char pad[64 - 3 * sizeof(apr_uint64_t) - sizeof(apr_uint32_t)];
} sc_waiter;

typedef struct {
    apr_uint32_t magic, version;
    apr_uint64_t size;                  /* ring bytes, a power of 2 */
    volatile apr_uint64_t head;         /* consumer: next byte to take */
    char pad1[64 - 3 * sizeof(apr_uint64_t)];
    volatile apr_uint64_t tail;         /* producers: next byte to fill */
    volatile apr_uint32_t posted;       /* futex: bumped per record */
    volatile apr_uint32_t consumer_sleeps;
    volatile apr_uint32_t freed;        /* futex: bumped when head moves */
    volatile apr_uint32_t producers_wait;
    volatile apr_uint32_t hint;         /* where to look for a free slot */
    char pad2[64 - sizeof(apr_uint64_t) - 5 * sizeof(apr_uint32_t)];
    volatile apr_uint64_t n_posted, n_bytes, n_room_waits, n_room_timeouts,
                          n_no_slot;
    sc_waiter waiters[SC_CHAN_WAITERS];
    unsigned char ring[];
} sc_chan_shm;

/* A record in the ring: this header, the target, the payload, padding. */
typedef struct {
    apr_uint32_t len;                   /* all of it, padded to 8 */
    apr_uint32_t plen;                  /* payload bytes */
    unsigned char type, mode, flags, tlen;
    apr_uint32_t reserved;
    apr_uint64_t ticket;
} sc_rec_hdr;

struct sc_chan {
    sc_chan_shm *shm;
    apr_global_mutex_t *lock;
    /* the consumer's side, in its own process */
    volatile apr_uint32_t stopping;     /* sc_chan_stop() was called */
    volatile apr_uint32_t owed;         /* tickets taken, not answered */
};

/* ---- futexes --------------------------------------------------------------- */

static void wait_word(volatile apr_uint32_t *w, apr_uint32_t seen,
                      apr_interval_time_t t)
{
#if defined(__linux__)
    struct timespec ts;
    if (t <= 0)
        return;
    ts.tv_sec = (time_t)apr_time_sec(t);
    ts.tv_nsec = (long)apr_time_usec(t) * 1000;
    /* not FUTEX_PRIVATE: the word is shared between processes */
    syscall(SYS_futex, w, FUTEX_WAIT, seen, &ts, NULL, 0);
#else
    if (*w == seen && t > 0)
        apr_sleep(t < 1000 ? t : 1000);
#endif
}

static void wake_word(volatile apr_uint32_t *w, int n)
{
#if defined(__linux__)
    syscall(SYS_futex, w, FUTEX_WAKE, n, NULL, NULL, 0);
#else
    (void)w;
    (void)n;
#endif
}

#define LOAD(x)        __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v)    __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#define BUMP(x)        __atomic_add_fetch(&(x), 1, __ATOMIC_SEQ_CST)
#define ADD(x, v)      __atomic_add_fetch(&(x), (v), __ATOMIC_RELAXED)
#define CAS(x, e, v)   __atomic_compare_exchange_n(&(x), &(e), (v), 0, \
                           __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)

/* ---- the segment ---------------------------------------------------------- */

apr_size_t sc_chan_bytes(void)
{
    return sizeof(sc_chan_shm) + SC_CHAN_RING_BYTES;
}

apr_status_t sc_chan_format(void *base, apr_size_t bytes)
{
    sc_chan_shm *shm = base;

    if (bytes < sc_chan_bytes())
        return APR_EINVAL;
    memset(shm, 0, sizeof(*shm));
    shm->magic = SC_CHAN_MAGIC;
    shm->version = SC_CHAN_VERSION;
    shm->size = SC_CHAN_RING_BYTES;
    return APR_SUCCESS;
}

apr_status_t sc_chan_attach(sc_chan **ch, void *base, apr_size_t bytes,
                            apr_global_mutex_t *lock, apr_pool_t *p)
{
    sc_chan_shm *shm = base;

    if (bytes < sc_chan_bytes() || shm->magic != SC_CHAN_MAGIC
        || shm->version != SC_CHAN_VERSION || shm->size != SC_CHAN_RING_BYTES)
        return APR_EINVAL;
    *ch = apr_pcalloc(p, sizeof(**ch));
    (*ch)->shm = shm;
    (*ch)->lock = lock;
    return APR_SUCCESS;
}

/* Copy into / out of the ring at byte position `pos`, wrapping. */
static void ring_put(sc_chan_shm *shm, apr_uint64_t pos, const void *src,
                     apr_size_t len)
{
    apr_size_t at = (apr_size_t)(pos & (shm->size - 1));
    apr_size_t first = len < shm->size - at ? len : shm->size - at;
    memcpy(shm->ring + at, src, first);
    memcpy(shm->ring, (const char *)src + first, len - first);
}

static void ring_get(const sc_chan_shm *shm, apr_uint64_t pos, void *dst,
                     apr_size_t len)
{
    apr_size_t at = (apr_size_t)(pos & (shm->size - 1));
    apr_size_t first = len < shm->size - at ? len : shm->size - at;
    memcpy(dst, shm->ring + at, first);
    memcpy((char *)dst + first, shm->ring, len - first);
}

/* ---- waiter slots ------------------------------------------------------------ */

#define CLAIM(sec, gen, st) (((apr_uint64_t)(sec) << 32) \
                             | ((apr_uint64_t)((gen) & GEN_MASK) << 2) | (st))
#define CLAIM_SEC(c)   ((apr_uint32_t)((c) >> 32))
#define CLAIM_GEN(c)   ((apr_uint32_t)((c) >> 2) & GEN_MASK)
#define CLAIM_STATE(c) ((int)((c) & 3))
/* A result is generation << 32 | FINAL | peers << 16 | confirmed. FINAL
 * marks the answer: progress comes from several link threads, and one that
 * counted its member and was preempted before it reported may report after
 * the answer is in; such a report must not lower the answer. */
#define RESULT_FINAL             0x80000000u
#define RESULT(gen, peers, conf) (((apr_uint64_t)(gen) << 32) \
                                  | ((apr_uint64_t)((peers) & 0x7fff) << 16) \
                                  | (apr_uint64_t)((conf) & 0xffff))
#define RESULT_GEN(r)            ((apr_uint32_t)((r) >> 32))
#define RESULT_PEERS(r)          ((int)(((r) >> 16) & 0x7fff))
#define RESULT_CONFIRMED(r)      ((int)((r) & 0xffff))
#define TICKET(slot, gen) (((apr_uint64_t)((slot) + 1) << 32) | (gen))

/* A free slot, or one held past SC_CHAN_SLOT_STALE (its owner died while
 * waiting); -1 when every slot is in use. */
static int claim_slot(sc_chan_shm *shm, apr_uint32_t *gen)
{
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now());
    apr_uint32_t start = BUMP(shm->hint);
    apr_uint32_t i, stale = (apr_uint32_t)apr_time_sec(SC_CHAN_SLOT_STALE);

    for (i = 0; i < SC_CHAN_WAITERS; i++) {
        sc_waiter *w = &shm->waiters[(start + i) % SC_CHAN_WAITERS];
        apr_uint64_t c = LOAD(w->claim);
        apr_uint32_t g = (CLAIM_GEN(c) + 1) & GEN_MASK;
        if (CLAIM_STATE(c) != W_FREE && now - CLAIM_SEC(c) < stale)
            continue;
        if (CAS(w->claim, c, CLAIM(now, g, W_WAIT))) {
            /* nobody answers for g before the record is posted */
            STORE(w->result, RESULT(g, 0, 0));
            *gen = g;
            return (int)((start + i) % SC_CHAN_WAITERS);
        }
    }
    return -1;
}

static sc_waiter *slot_of(sc_chan_shm *shm, apr_uint64_t ticket, apr_uint32_t *gen)
{
    apr_uint64_t slot = ticket >> 32;
    if (!slot || slot > SC_CHAN_WAITERS)
        return NULL;
    *gen = (apr_uint32_t)ticket & GEN_MASK;
    return &shm->waiters[slot - 1];
}

/* Write peers / confirmed into a slot still held by the ticket's owner:
 * the answer (`final`) always; progress only before the answer and never
 * below a count already reported (reports from different link threads may
 * arrive in any order). */
static int set_result(sc_waiter *w, apr_uint32_t gen, int peers, int confirmed,
                       int final)
{
    apr_uint64_t r = LOAD(w->result);
    apr_uint64_t want = RESULT(gen, peers, confirmed) | (final ? RESULT_FINAL : 0);

    while (RESULT_GEN(r) == gen) {
        if (!final && ((r & RESULT_FINAL) || confirmed < RESULT_CONFIRMED(r)))
            return 0;
        if (CAS(w->result, r, want))
            return 1;
    }
    return 0;
}

void sc_chan_progress(sc_chan *ch, apr_uint64_t ticket, int peers, int confirmed)
{
    apr_uint32_t gen;
    sc_waiter *w = slot_of(ch->shm, ticket, &gen);
    if (w)
        set_result(w, gen, peers, confirmed, 0);
}

void sc_chan_answer(sc_chan *ch, apr_uint64_t ticket, int peers, int confirmed)
{
    apr_uint32_t gen;
    sc_waiter *w = slot_of(ch->shm, ticket, &gen);
    apr_uint64_t c;

    if (w) {
        apr_uint32_t n = LOAD(ch->owed);
        while (n && !CAS(ch->owed, n, n - 1))
            ;                       /* n is reloaded by the failed CAS */
    }
    if (!w || !set_result(w, gen, peers, confirmed, 1))
        return;
    c = LOAD(w->claim);
    if (CLAIM_GEN(c) != gen || CLAIM_STATE(c) != W_WAIT
        || !CAS(w->claim, c, CLAIM(CLAIM_SEC(c), gen, W_DONE)))
        return;                         /* it gave up meanwhile */
    BUMP(w->wake);
    wake_word(&w->wake, 1);
}

/* Whether the consumer that took the record of generation `gen` is gone,
 * so its answer will never come. A record not taken yet is still in the
 * ring: the next consumer takes it. A consumer that is stopping in order
 * still runs, and answers. */
static int taker_gone(const sc_waiter *w, apr_uint32_t gen)
{
    apr_uint64_t t = LOAD(w->taker);
    if ((apr_uint32_t)(t >> 32) != gen)
        return 0;
    return kill((pid_t)(t & 0xffffffffu), 0) != 0 && errno == ESRCH;
}

/* Wait for the answer in slot `k`; free the slot. */
static apr_status_t await(sc_chan *ch, int k, apr_uint32_t gen,
                          apr_interval_time_t timeout,
                          const volatile apr_uint32_t *epoch, apr_uint32_t first,
                          sc_chan_reply *reply)
{
    sc_waiter *w = &ch->shm->waiters[k];
    apr_time_t deadline = apr_time_now() + timeout;

    for (;;) {
        apr_uint32_t seen = LOAD(w->wake);
        apr_uint64_t c = LOAD(w->claim), r = LOAD(w->result);
        apr_interval_time_t left = deadline - apr_time_now();

        /* the answer, or the progress so far (the result of our generation
         * changes only while we hold the slot) */
        if (RESULT_GEN(r) == gen) {
            reply->peers = RESULT_PEERS(r);
            reply->confirmed = RESULT_CONFIRMED(r);
        }
        if (CLAIM_STATE(c) == W_DONE) {
            STORE(w->claim, CLAIM(0, gen, W_FREE));
            return APR_SUCCESS;
        }
        if (left <= 0 || (epoch && *epoch != first && taker_gone(w, gen))) {
            /* give up: free it unless the answer came in just now */
            if (CAS(w->claim, c, CLAIM(0, gen, W_FREE)))
                return left <= 0 ? APR_TIMEUP : APR_EAGAIN;
            continue;
        }
        wait_word(&w->wake, seen, left < SLICE ? left : SLICE);
    }
}

/* ---- producers --------------------------------------------------------------- */

static apr_size_t padded(apr_size_t n)
{
    return (n + 7) & ~(apr_size_t)7;
}

/* Wait (lock held on entry and on success) until `need` bytes are free. */
static apr_status_t wait_room(sc_chan *ch, apr_size_t need, apr_time_t deadline)
{
    sc_chan_shm *shm = ch->shm;
    int counted = 0;

    for (;;) {
        apr_uint32_t seen = LOAD(shm->freed);
        apr_interval_time_t left;
        if (shm->size - (shm->tail - LOAD(shm->head)) >= need)
            return APR_SUCCESS;
        if (!counted++)
            ADD(shm->n_room_waits, 1);
        apr_global_mutex_unlock(ch->lock);
        left = deadline - apr_time_now();
        if (left <= 0) {
            ADD(shm->n_room_timeouts, 1);
            return APR_TIMEUP;
        }
        BUMP(shm->producers_wait);
        wait_word(&shm->freed, seen, left < SLICE ? left : SLICE);
        __atomic_sub_fetch(&shm->producers_wait, 1, __ATOMIC_SEQ_CST);
        if (apr_global_mutex_lock(ch->lock) != APR_SUCCESS)
            return APR_EGENERAL;
    }
}

static apr_status_t post(sc_chan *ch, const sc_chan_msg *m,
                         const sc_chan_piece *pieces, int npieces,
                         apr_uint64_t ticket)
{
    sc_chan_shm *shm = ch->shm;
    const char *target = m->target ? m->target : "";
    sc_rec_hdr h;
    apr_size_t plen = 0, tlen = strlen(target), need;
    apr_uint64_t pos;
    apr_uint32_t sleeps;
    apr_status_t rv;
    int i;

    for (i = 0; i < npieces; i++)
        plen += pieces[i].len;
    need = padded(sizeof(h) + tlen + plen);
    if (tlen > 255 || need > shm->size / 2)
        return APR_EINVAL;
    memset(&h, 0, sizeof(h));
    h.len = (apr_uint32_t)need;
    h.plen = (apr_uint32_t)plen;
    h.type = (unsigned char)m->type;
    h.mode = (unsigned char)m->mode;
    h.flags = (unsigned char)m->flags;
    h.tlen = (unsigned char)tlen;
    h.ticket = ticket;
    if ((rv = apr_global_mutex_lock(ch->lock)) != APR_SUCCESS)
        return rv;
    if ((rv = wait_room(ch, need, apr_time_now() + SC_CHAN_ROOM_WAIT))
        != APR_SUCCESS)
        return rv;              /* the lock is released */
    pos = shm->tail;
    ring_put(shm, pos, &h, sizeof(h));
    ring_put(shm, pos + sizeof(h), target, tlen);
    pos += sizeof(h) + tlen;
    for (i = 0; i < npieces; i++) {
        ring_put(shm, pos, pieces[i].base, pieces[i].len);
        pos += pieces[i].len;
    }
    STORE(shm->tail, shm->tail + need);     /* published */
    apr_global_mutex_unlock(ch->lock);
    ADD(shm->n_posted, 1);
    ADD(shm->n_bytes, need);
    BUMP(shm->posted);
    sleeps = __atomic_load_n(&shm->consumer_sleeps, __ATOMIC_SEQ_CST);
    if (sleeps == SLEEPS || (sleeps == LINGERS && ticket))
        wake_word(&shm->posted, 1);
    return APR_SUCCESS;
}

apr_status_t sc_chan_call(sc_chan *ch, const sc_chan_msg *m,
                          const sc_chan_piece *pieces, int npieces, int wait,
                          apr_interval_time_t timeout,
                          const volatile apr_uint32_t *epoch,
                          sc_chan_reply *reply)
{
    apr_uint32_t gen = 0, first = epoch ? *epoch : 0;   /* before posting */
    int k = -1, unconfirmed = 0;
    apr_status_t rv;

    reply->peers = reply->confirmed = 0;
    if (wait && (k = claim_slot(ch->shm, &gen)) < 0) {
        /* every slot is held: send it all the same, unconfirmed */
        ADD(ch->shm->n_no_slot, 1);
        unconfirmed = 1;
        wait = 0;
    }
    rv = post(ch, m, pieces, npieces, wait ? TICKET(k, gen) : 0);
    if (rv != APR_SUCCESS) {
        if (wait)
            STORE(ch->shm->waiters[k].claim, CLAIM(0, gen, W_FREE));
        return rv;
    }
    if (!wait)
        return unconfirmed ? APR_EGENERAL : APR_SUCCESS;
    rv = await(ch, k, gen, timeout, epoch, first, reply);
    if (rv == APR_SUCCESS)
        return reply->confirmed < reply->peers ? APR_EGENERAL : APR_SUCCESS;
    return rv == APR_TIMEUP ? APR_EGENERAL : rv;
}

/* ---- the consumer -------------------------------------------------------------- */

/* Sleep until the tail moves past `head` or `timeout` passes. `how`:
 * SLEEPS (any record wakes us) or LINGERS (only one somebody waits for).
 * A wake-up with nothing new (a producer's wake meant for an earlier sleep
 * arriving late, or a signal) sleeps again: returning early would tell
 * the caller its whole timeout passed with nothing posted. */
static int wait_posted(sc_chan *ch, apr_uint32_t how,
                       apr_interval_time_t timeout)
{
    sc_chan_shm *shm = ch->shm;
    apr_time_t deadline = apr_time_now() + timeout;
    apr_uint64_t head = shm->head;

    for (;;) {
        apr_uint32_t seen = LOAD(shm->posted);
        apr_interval_time_t left = deadline - apr_time_now();
        int more;

        __atomic_store_n(&shm->consumer_sleeps, how, __ATOMIC_SEQ_CST);
        if (!(more = LOAD(shm->tail) != head) && left > 0)
            wait_word(&shm->posted, seen, left);
        __atomic_store_n(&shm->consumer_sleeps, RUNS, __ATOMIC_SEQ_CST);
        if (more || LOAD(shm->tail) != head)
            return 1;
        if (apr_time_now() >= deadline || LOAD(ch->stopping))
            return 0;
    }
}

apr_status_t sc_chan_take(sc_chan *ch, apr_interval_time_t linger,
                          apr_interval_time_t timeout,
                          void *(*alloc)(apr_size_t), void **buf,
                          sc_chan_rec *rec)
{
    sc_chan_shm *shm = ch->shm;
    apr_uint64_t head = shm->head, tail = LOAD(shm->tail);
    sc_rec_hdr h;
    char *b;

    *buf = NULL;
    if (LOAD(ch->stopping))
        return APR_EOF;
    if (tail == head && !(linger > 0 && wait_posted(ch, LINGERS, linger))
        && !wait_posted(ch, SLEEPS, timeout))
        return LOAD(ch->stopping) ? APR_EOF : APR_TIMEUP;
    if (LOAD(ch->stopping))
        return APR_EOF;             /* left for the next consumer */
    tail = LOAD(shm->tail);
    ring_get(shm, head, &h, sizeof(h));
    if (h.len < sizeof(h) || h.len > tail - head || h.len & 7
        || sizeof(h) + h.tlen + (apr_size_t)h.plen > h.len) {
        /* cannot be (producers write whole records): skip what is there
         * rather than read garbage forever */
        STORE(shm->head, tail);
        return APR_EGENERAL;
    }
    if (!(b = *buf = alloc(h.tlen + 1 + (apr_size_t)h.plen + 1)))
        return APR_ENOMEM;     /* left in the ring: taken next time */
    ring_get(shm, head + sizeof(h), b, h.tlen);
    b[h.tlen] = '\0';
    ring_get(shm, head + sizeof(h) + h.tlen, b + h.tlen + 1, h.plen);
    b[h.tlen + 1 + h.plen] = '\0';
    if (h.ticket) {
        /* before the record leaves the ring: a waiter that sees it gone
         * also sees who has it */
        apr_uint32_t gen;
        sc_waiter *w = slot_of(shm, h.ticket, &gen);
        if (w) {
            STORE(w->taker, ((apr_uint64_t)gen << 32) | (apr_uint32_t)getpid());
            BUMP(ch->owed);
        }
    }
    STORE(shm->head, head + h.len);
    BUMP(shm->freed);
    if (__atomic_load_n(&shm->producers_wait, __ATOMIC_SEQ_CST))
        wake_word(&shm->freed, INT_MAX);
    rec->msg.type = h.type;
    rec->msg.mode = h.mode;
    rec->msg.flags = h.flags;
    rec->msg.target = b;
    rec->ticket = h.ticket;
    rec->payload = b + h.tlen + 1;
    rec->len = h.plen;
    return APR_SUCCESS;
}

void sc_chan_stop(sc_chan *ch)
{
    STORE(ch->stopping, 1);
    /* a consumer asleep on `posted` wakes, sees nothing new, and stops */
    BUMP(ch->shm->posted);
    wake_word(&ch->shm->posted, INT_MAX);
}

int sc_chan_owed(sc_chan *ch)
{
    return (int)LOAD(ch->owed);
}

void sc_chan_stats_get(sc_chan *ch, sc_chan_stats *st)
{
    sc_chan_shm *shm = ch->shm;
    st->posted = LOAD(shm->n_posted);
    st->bytes = LOAD(shm->n_bytes);
    st->room_waits = LOAD(shm->n_room_waits);
    st->room_timeouts = LOAD(shm->n_room_timeouts);
    st->no_slot = LOAD(shm->n_no_slot);
    st->queued_bytes = LOAD(shm->tail) - LOAD(shm->head);
}
