/* sc_store.h - the node's shared-memory session store.
 *
 * Contract:
 *  - One memory segment holds every session of this node as a chain of
 *    fixed-size blocks addressed by index (never by pointer), so each process
 *    may map it at any address, and it outlives httpd generations.
 *  - A fixed hash index maps a session id to its chain. Buckets are guarded by
 *    SC_STORE_STRIPES global mutexes; one more guards the block allocator.
 *  - Writes are copy-on-write: the new chain is built outside every lock and
 *    swapped in under the stripe lock. A process killed mid-write leaves the
 *    previous version intact; its half-built chain is only leaked until
 *    sc_store_sweep() reclaims blocks staged by processes that no longer exist.
 *  - A full store refuses with APR_ENOSPC. The only live sessions ever
 *    evicted are new ones (created, never come back since: s->fresh), and
 *    only by sc_store_evict_new(), oldest expiry first; a session that came
 *    back once (a touch or a change from a returning request clears
 *    `fresh`) is never evicted. A new session that expires leaves no
 *    tombstone (a flood of them must not become a flood of tombstones).
 *  - Each session carries a version (bumped on every change) and an absolute
 *    expiry, its owner's route and (backup manager) its backup's route. A
 *    proxy entry is a location without data (the backup manager's proxies);
 *    expired proxies are dropped, not turned into tombstones. Invalidation and expiry leave a data-less tombstone so a late copy
 *    of the session cannot bring it back; tombstones are dropped by the sweep.
 *  - Only APR is used here (no httpd headers), so unit tests drive it directly.
 *  - Runs in every process attached to the segment (children and
 *    clusterd); writers of one bucket serialise on its stripe's lock.
 */
#ifndef SC_STORE_H
#define SC_STORE_H

#include <apr_pools.h>
#include <apr_time.h>
#include <apr_global_mutex.h>

#include "sc_limits.h"

#define SC_STORE_STRIPES   16
#define SC_STORE_LOCKS     (SC_STORE_STRIPES + 1)   /* stripes + allocator */
#define SC_STORE_BLOCK     256                      /* bytes per block */

typedef struct sc_store sc_store;

/* A conditional write found another version than it required. */
#define SC_STORE_STALE (APR_OS_START_USERERR + 1)

/* A session as copied out of (or handed to) the store. */
typedef struct {
    char id[SC_ID_MAX];
    char owner[SC_ROUTE_MAX];   /* route of the node that owns it */
    char backup[SC_ROUTE_MAX];  /* route holding the backup copy, "" if none */
    apr_uint64_t version;
    apr_time_t created;
    apr_time_t expires;         /* absolute; a live session is gone after it */
    int tombstone;              /* invalidated or expired: no data */
    int proxy;                  /* location only: no data, not a tombstone */
    int fresh;                  /* created, never come back since: evictable */
    apr_size_t len;
    const char *data;           /* len bytes, NUL-terminated when read back */
} sc_session;

typedef struct {
    apr_size_t segment_bytes;
    apr_uint32_t blocks_total;
    apr_uint32_t blocks_free;
    apr_uint32_t sessions;      /* live, proxies included (and expired ones
                                   not yet swept) */
    apr_uint32_t tombstones;
    apr_uint32_t refused;       /* writes refused because the store was full */
    apr_uint32_t reclaimed;     /* leaked blocks returned by sweeps */
    apr_uint32_t evicted;       /* new sessions evicted under pressure */
    apr_uint32_t new_expired;   /* new sessions that expired (no tombstone) */
} sc_store_stats;

typedef struct {
    apr_uint32_t expired;       /* live sessions turned into tombstones */
    apr_uint32_t dropped;       /* tombstones past their time, removed */
    apr_uint32_t reclaimed;     /* blocks of dead writers returned */
    apr_uint32_t new_expired;   /* new sessions past their time, removed */
} sc_sweep_result;

/* Smallest segment sc_store_format() accepts. */
apr_size_t sc_store_min_bytes(void);

/* Lay out an empty store in [base, base+bytes). */
apr_status_t sc_store_format(void *base, apr_size_t bytes);

/* Bind this process to a formatted segment. `locks` holds SC_STORE_LOCKS
 * mutexes (already child-initialised where needed); the array is copied. */
apr_status_t sc_store_attach(sc_store **st, void *base, apr_size_t bytes,
                             apr_global_mutex_t *const *locks, apr_pool_t *p);

/* Copy a session out into pool p. APR_NOTFOUND when absent or expired;
 * tombstones are returned (s->tombstone set) so callers can tell "gone",
 * and proxies (s->proxy set) so they can tell where it lives. */
apr_status_t sc_store_get(sc_store *st, const char *id, apr_time_t now,
                          apr_pool_t *p, sc_session *s);
/* The same without copying the data (s->data NULL, s->len its size): for a
 * writer that only needs the version, placement and expiry. */
apr_status_t sc_store_get_meta(sc_store *st, const char *id, apr_time_t now,
                               sc_session *s);

/* Insert a session under a new id, version 1. APR_EEXIST if the id is taken
 * (live or tombstone), APR_ENOSPC when full, APR_EINVAL on a bad id or size. */
apr_status_t sc_store_create(sc_store *st, const sc_session *s, apr_time_t now);

/* Replace the data of a live session and bump its version; *version receives
 * the new one. APR_NOTFOUND if it is absent, expired, a tombstone or a
 * proxy. */
apr_status_t sc_store_update(sc_store *st, const char *id, const char *data,
                             apr_size_t len, apr_time_t expires,
                             apr_time_t now, apr_uint64_t *version);

/* Owner-side read-modify-write: replace data, owner, backup and expiry of a
 * live session (not a proxy) only while it is still at version `base`; it
 * becomes base + 1.
 * SC_STORE_STALE when another write came first (read again, retry). */
apr_status_t sc_store_replace(sc_store *st, const sc_session *s,
                              apr_uint64_t base, apr_time_t now);

/* Replica write: store s exactly as given (a tombstone if s->tombstone, a
 * proxy if s->proxy, version s->version >= 1) when the id is absent or s
 * wins over what is there; SC_STORE_STALE otherwise, so a late or reordered
 * copy changes nothing. A tombstone wins over any live copy or proxy and is
 * never replaced by one (invalidation is final); else the newer version
 * wins; at one version data beats its proxy, and between two writers the
 * greater owner route wins (every node then keeps the same copy). */
apr_status_t sc_store_put_newer(sc_store *st, const sc_session *s,
                                apr_time_t now);

/* Visit every live session and proxy, copied out one stripe at a time; no lock is held
 * while fn runs. fn returns non-zero to stop. */
typedef int (*sc_store_visit_fn)(void *baton, const sc_session *s);
apr_status_t sc_store_foreach(sc_store *st, apr_time_t now, apr_pool_t *p,
                              sc_store_visit_fn fn, void *baton);
/* The same, visiting tombstones too (until they are dropped). */
apr_status_t sc_store_foreach_all(sc_store *st, apr_time_t now, apr_pool_t *p,
                                  sc_store_visit_fn fn, void *baton);

/* Move the expiry of a live session (not a proxy) without changing data or
 * version. */
apr_status_t sc_store_touch(sc_store *st, const char *id, apr_time_t expires,
                            apr_time_t now);

/* Replace a session by a tombstone kept until `until` (version bumped). */
apr_status_t sc_store_invalidate(sc_store *st, const char *id,
                                 apr_time_t until, apr_time_t now);

/* Expire live sessions past their time into tombstones kept for
 * `tombstone_ttl`, drop old tombstones and expired proxies, reclaim blocks
 * of dead writers. */
apr_status_t sc_store_sweep(sc_store *st, apr_time_t now,
                            apr_interval_time_t tombstone_ttl,
                            sc_sweep_result *res);

/* 1 for exactly one caller per `every` across all processes: the one that
 * should run the sweep now. */
int sc_store_sweep_due(sc_store *st, apr_time_t now, apr_interval_time_t every);

/* The same for any periodic duty of the node (a log line that must not
 * repeat per process, say): kinds 0..SC_STORE_DUE_KINDS-1. */
#define SC_STORE_DUE_SWEEP      0
#define SC_STORE_DUE_PRESSURE   1
#define SC_STORE_DUE_FULL       2
#define SC_STORE_DUE_FORCED_SWEEP 3
#define SC_STORE_DUE_KINDS      4
int sc_store_due(sc_store *st, int kind, apr_time_t now, apr_interval_time_t every);
/* How much the stats counter `count` grew since the last call for this
 * counter, across processes: what a rate-limited line reports. */
#define SC_STORE_SEEN_EVICTED     0
#define SC_STORE_SEEN_NEW_EXPIRED 1
#define SC_STORE_SEEN_REFUSED     2
#define SC_STORE_SEEN_KINDS       4
apr_uint32_t sc_store_since(sc_store *st, int counter, apr_uint32_t count);

/* Drop new sessions (s->fresh) and new proxies, oldest expiry first, until
 * `want_free` blocks are free or none is left; *evicted: how many. One
 * process at a time (APR_EBUSY while another evicts). Scans the whole
 * index once: call it when the store is short of room, not per write; a
 * scan that found nothing to evict is not repeated within a second. */
apr_status_t sc_store_evict_new(sc_store *st, apr_time_t now,
                                apr_uint32_t want_free, apr_pool_t *p,
                                apr_uint32_t *evicted);

void sc_store_stats_get(sc_store *st, sc_store_stats *stats);

#endif
