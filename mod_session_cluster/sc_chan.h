/* sc_chan.h - the channel from httpd's children to clusterd, in shared memory.
 *
 * Contract:
 *  - The channel is one anonymous shared segment, made once by the first
 *    post_config and kept across generations like the store. Only processes
 *    forked from httpd's parent have it mapped (its children and clusterd): a
 *    CGI is exec'd and has nothing; nothing is left in the runtime directory.
 *  - It is a byte ring of records. A record is what a child asks of clusterd:
 *    a message type (SC_MSG_SESSION, DELTA, INVALIDATE or FETCH), a send mode,
 *    flags, a target route ("": every up member) and that message's wire
 *    payload, which clusterd forwards as is. Producers (any thread of any
 *    child) copy a record in under one lock and publish it by moving the tail
 *    last, so a producer killed mid-copy published nothing; one consumer
 *    (clusterd's dispatcher thread) reads without the lock.
 *  - Wake-ups are futexes on words of the segment (Linux; a 1 ms poll
 *    elsewhere): the consumer sleeps until a record is posted (or, while it
 *    lingers, until one somebody waits for is), producers waiting for room
 *    until the consumer frees some, a waiter until its answer is in.
 *  - A full ring makes the producer wait at most `room_wait`; then it gives
 *    up with APR_TIMEUP, counted (sc_chan_stats). A record never posted is
 *    never reported as sent.
 *  - ack / sync / fetch: the producer takes a waiter slot with the record;
 *    clusterd writes progress and the final answer into it and wakes it.
 *    A waiter that gives up frees its slot; a late answer for it is dropped
 *    (slots carry a generation). Slots of a process that died waiting are
 *    taken back once SC_CHAN_SLOT_STALE has passed.
 *  - Consumers come and go (clusterd is replaced at every restart); the
 *    ring outlives them. A consumer stamps each record it takes into the
 *    record's waiter slot, so a waiter told the consumer was replaced
 *    (`epoch`) gives up only when the one that took its record is gone:
 *    a record still in the ring is taken, and answered, by the next one.
 *    sc_chan_stop() ends a consumer's taking (an orderly stop: it answers
 *    what it took, sc_chan_owed(), and leaves the rest in the ring).
 *  - Only APR (no httpd headers), so unit tests drive it with fork().
 */
#ifndef SC_CHAN_H
#define SC_CHAN_H

#include <apr_global_mutex.h>
#include <apr_pools.h>
#include <apr_time.h>

/* bytes of the ring: room for several of the largest records */
#define SC_CHAN_RING_BYTES   (8 * 1024 * 1024)
/* children waiting for clusterd's answer at once */
#define SC_CHAN_WAITERS      1024
/* a waiter slot held this long belongs to a process that died waiting */
#define SC_CHAN_SLOT_STALE   apr_time_from_sec(30)
/* how long a save waits for room in a full ring */
#define SC_CHAN_ROOM_WAIT    apr_time_from_msec(1000)
/* how long an ack/sync save waits for the members' answers at most */
#define SC_REPLICATION_WAIT  apr_time_from_msec(2000)
/* how long a request waits for clusterd to fetch its session (backup) */
#define SC_FETCH_WAIT        apr_time_from_msec(3000)

/* record flags */
#define SC_CHAN_F_LOCATION   0x01   /* a SESSION whose placement changed: the
                                       other members learn where it lives */

typedef struct sc_chan sc_chan;

typedef struct {
    int type;                   /* SC_MSG_DELTA / SESSION / INVALIDATE / FETCH */
    int mode;                   /* sc_send_mode_e */
    int flags;                  /* SC_CHAN_F_* */
    const char *target;         /* route; "" or NULL: every up member */
} sc_chan_msg;

/* A record as the consumer reads it; target and payload point into the
 * buffer handed to sc_chan_take() and are NUL-terminated. */
typedef struct {
    sc_chan_msg msg;
    apr_uint64_t ticket;        /* 0: nobody waits for an answer */
    const char *payload;
    apr_size_t len;
} sc_chan_rec;

/* One piece of a record's payload (records are gathered from pieces, so a
 * session's data is copied into the ring straight from where it is). */
typedef struct {
    const void *base;
    apr_size_t len;
} sc_chan_piece;

typedef struct {
    int peers;                  /* members the change was sent to */
    int confirmed;              /* of those, how many answered in time */
} sc_chan_reply;

typedef struct {
    apr_uint64_t posted;        /* records put in */
    apr_uint64_t bytes;         /* their bytes */
    apr_uint64_t room_waits;    /* posts that had to wait for room */
    apr_uint64_t room_timeouts; /* posts given up for lack of room */
    apr_uint64_t no_slot;       /* waits given up for lack of a waiter slot */
    apr_uint64_t queued_bytes;  /* in the ring now, not yet taken */
} sc_chan_stats;

/* Bytes the segment needs, and its layout in [base, base+bytes). */
apr_size_t sc_chan_bytes(void);
apr_status_t sc_chan_format(void *base, apr_size_t bytes);

/* Bind this process to a formatted segment; `lock` guards the producers
 * (already child-initialised where needed). */
apr_status_t sc_chan_attach(sc_chan **ch, void *base, apr_size_t bytes,
                            apr_global_mutex_t *lock, apr_pool_t *p);

/* ---- producers (httpd children) -------------------------------------------- */

/* Post one record; with `wait` (ack, sync, fetch) also wait for its answer
 * at most `timeout`. `epoch` (may be NULL) is a word that changes when the
 * consumer is replaced: the waiter then stops waiting if the consumer that
 * took its record is gone (its answer will never come), and waits on for
 * the next one if the record is still in the ring. Returns APR_SUCCESS (answered: every member confirmed, or
 * async posted), APR_EGENERAL (answered or timed out with fewer confirmed
 * than asked; *reply says how many), APR_TIMEUP (no room: nothing posted),
 * APR_EAGAIN (posted and taken, but the consumer that took it is gone),
 * APR_EINVAL (too big). */
apr_status_t sc_chan_call(sc_chan *ch, const sc_chan_msg *m,
                          const sc_chan_piece *pieces, int npieces, int wait,
                          apr_interval_time_t timeout,
                          const volatile apr_uint32_t *epoch,
                          sc_chan_reply *reply);

/* ---- the consumer (clusterd's dispatcher thread) ------------------------------ */

/* The next record, waiting at most `timeout` for one (APR_TIMEUP). With
 * `linger`, an empty ring is first waited on that long in a way only a
 * record somebody waits for (ack, sync, fetch) cuts short: async records
 * posted meanwhile wake nobody and are taken together. The record is
 * copied into a buffer from `alloc` (malloc-like; the caller frees it, also
 * on error: *buf is set whenever it was allocated). */
apr_status_t sc_chan_take(sc_chan *ch, apr_interval_time_t linger,
                          apr_interval_time_t timeout,
                          void *(*alloc)(apr_size_t), void **buf,
                          sc_chan_rec *rec);

/* From now on this consumer's sc_chan_take returns APR_EOF, at once if it
 * is waiting (any thread may call it). What is still in the ring stays
 * there for the next consumer. */
void sc_chan_stop(sc_chan *ch);

/* Records with a ticket this consumer took and has not answered yet. */
int sc_chan_owed(sc_chan *ch);

/* Progress for a waiter (members asked, confirmed so far): what it reports
 * if it times out. Then the answer, which wakes it; the consumer answers
 * each ticket it took once. Both ignore ticket 0 and tickets whose waiter
 * gave up. Progress may come from several threads in any order: it never
 * lowers the count reported so far, and once the answer is in it changes
 * nothing. */
void sc_chan_progress(sc_chan *ch, apr_uint64_t ticket, int peers, int confirmed);
void sc_chan_answer(sc_chan *ch, apr_uint64_t ticket, int peers, int confirmed);

void sc_chan_stats_get(sc_chan *ch, sc_chan_stats *st);

#endif
