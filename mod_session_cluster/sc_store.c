/* sc_store.c - shared-memory session store (see sc_store.h for the contract).
 *
 * Segment layout: [header][bucket heads: u32 x nbuckets][blocks x nblocks].
 * Block 0 is never used, so index 0 means "none" everywhere. A session is a
 * chain of blocks whose byte stream is an sc_head followed by the data.
 *
 * Lock order: a stripe lock may be held while taking the allocator lock, never
 * the reverse; the sweep takes every stripe in order, then the allocator.
 */
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_strings.h>

#include "sc_store.h"

#define SC_MAGIC        0x53435354u     /* "SCST" */
#define SC_LAYOUT       3u
#define SC_F_TOMB       1u
#define SC_F_PROXY      2u
#define SC_F_NEW        4u              /* created, never come back since */
#define SC_F_KIND       (SC_F_TOMB | SC_F_PROXY)
#define SC_ALLOC_LOCK   SC_STORE_STRIPES
#define SC_PAYLOAD      (SC_STORE_BLOCK - 2 * sizeof(apr_uint32_t))

typedef struct {
    apr_uint32_t magic;
    apr_uint32_t layout;
    apr_uint64_t bytes;
    apr_uint32_t nbuckets;
    apr_uint32_t nblocks;             /* including the unused block 0 */
    apr_uint64_t buckets_off;
    apr_uint64_t blocks_off;
    apr_uint32_t free_head;           /* allocator lock */
    volatile apr_uint32_t free_count; /* allocator lock for writes */
    volatile apr_uint32_t sessions;   /* atomics: stripes update them */
    volatile apr_uint32_t tombstones;
    volatile apr_uint32_t refused;
    volatile apr_uint32_t reclaimed;
    volatile apr_uint32_t evicted;     /* new sessions evicted under pressure */
    volatile apr_uint32_t new_expired; /* new sessions dropped at their expiry */
    volatile apr_uint32_t evictor;     /* pid running an eviction, 0: none */
    volatile apr_uint32_t evict_quiet; /* apr_time_sec(): no scan before */
    volatile apr_uint32_t due[SC_STORE_DUE_KINDS]; /* apr_time_sec(), by CAS */
    volatile apr_uint32_t seen[SC_STORE_SEEN_KINDS]; /* sc_store_since() */
} sc_seg;

typedef struct {
    apr_uint32_t next;                /* next block of the chain, 0 = end */
    apr_uint32_t pid;                 /* writer that staged it; 0 when free */
    unsigned char payload[SC_PAYLOAD];
} sc_block;

/* Start of every chain: lives in the first block's payload. */
typedef struct {
    apr_uint32_t bucket_next;         /* next chain head in the same bucket */
    apr_uint32_t flags;
    apr_uint32_t len;
    apr_uint32_t reserved;
    apr_uint64_t version;
    apr_int64_t created;
    apr_int64_t expires;
    char id[SC_ID_MAX];
    char owner[SC_ROUTE_MAX];
    char backup[SC_ROUTE_MAX];
} sc_head;

struct sc_store {
    sc_seg *seg;
    apr_uint32_t *buckets;
    sc_block *blocks;
    apr_global_mutex_t *locks[SC_STORE_LOCKS];
};

typedef char sc_head_fits[sizeof(sc_head) <= SC_PAYLOAD ? 1 : -1];

static apr_size_t align8(apr_size_t n) { return (n + 7) & ~(apr_size_t)7; }

apr_size_t sc_store_min_bytes(void) { return 64 * 1024; }

apr_status_t sc_store_format(void *base, apr_size_t bytes)
{
    sc_seg *seg = base;
    apr_size_t room, hdr = align8(sizeof(sc_seg));
    apr_uint32_t i, nblocks;

    /* block indexes are 32-bit */
    if (!base || bytes < sc_store_min_bytes()
        || bytes / SC_STORE_BLOCK >= APR_UINT32_MAX)
        return APR_EINVAL;
    room = bytes - hdr - 8;
    /* two blocks per bucket keeps chains short without wasting much index */
    nblocks = (apr_uint32_t)(room / (SC_STORE_BLOCK + sizeof(apr_uint32_t) / 2));
    memset(seg, 0, hdr);
    seg->nbuckets = nblocks / 2;
    seg->buckets_off = hdr;
    seg->blocks_off = align8(hdr + (apr_size_t)seg->nbuckets * sizeof(apr_uint32_t));
    while (seg->blocks_off + (apr_size_t)nblocks * SC_STORE_BLOCK > bytes)
        nblocks--;
    seg->nblocks = nblocks;
    seg->bytes = bytes;
    memset((char *)base + seg->buckets_off, 0,
           (apr_size_t)seg->nbuckets * sizeof(apr_uint32_t));

    {
        sc_block *blocks = (sc_block *)((char *)base + seg->blocks_off);
        for (i = 1; i < nblocks; i++) {
            blocks[i].next = (i + 1 < nblocks) ? i + 1 : 0;
            blocks[i].pid = 0;
        }
    }
    seg->free_head = nblocks > 1 ? 1 : 0;
    seg->free_count = nblocks - 1;
    seg->layout = SC_LAYOUT;
    seg->magic = SC_MAGIC;
    return APR_SUCCESS;
}

apr_status_t sc_store_attach(sc_store **pst, void *base, apr_size_t bytes,
                             apr_global_mutex_t *const *locks, apr_pool_t *p)
{
    sc_seg *seg = base;
    sc_store *st;

    if (!base || bytes < sizeof(sc_seg) || seg->magic != SC_MAGIC
        || seg->layout != SC_LAYOUT || seg->bytes != bytes
        || seg->blocks_off + (apr_size_t)seg->nblocks * SC_STORE_BLOCK > bytes)
        return APR_EINVAL;
    st = apr_pcalloc(p, sizeof(*st));
    st->seg = seg;
    st->buckets = (apr_uint32_t *)((char *)base + seg->buckets_off);
    st->blocks = (sc_block *)((char *)base + seg->blocks_off);
    memcpy(st->locks, locks, sizeof(st->locks));
    *pst = st;
    return APR_SUCCESS;
}

/* ---- small helpers ---------------------------------------------------- */

static apr_uint32_t bucket_of(const sc_store *st, const char *id)
{
    apr_uint32_t h = 2166136261u;       /* FNV-1a */
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % st->seg->nbuckets;
}

static sc_head *head_of(sc_store *st, apr_uint32_t blk)
{
    return (sc_head *)st->blocks[blk].payload;
}

static int is_expired(const sc_head *h, apr_time_t now)
{
    return h->expires && h->expires <= now;
}

static int is_live(const sc_head *h, apr_time_t now)
{
    return !(h->flags & SC_F_TOMB) && !is_expired(h, now);
}

static apr_status_t lock(sc_store *st, int i)
{
    return apr_global_mutex_lock(st->locks[i]);
}

static void unlock(sc_store *st, int i)
{
    apr_global_mutex_unlock(st->locks[i]);
}

static apr_status_t check_id(const char *id)
{
    apr_size_t n = id ? strlen(id) : 0;
    return (n == 0 || n >= SC_ID_MAX) ? APR_EINVAL : APR_SUCCESS;
}

/* Caller holds the bucket's stripe lock. Returns the chain head or 0, and
 * the previous head in the bucket (0 when first) through *prev. */
static apr_uint32_t find_locked(sc_store *st, apr_uint32_t b, const char *id,
                                apr_uint32_t *prev)
{
    apr_uint32_t cur = st->buckets[b], before = 0;
    while (cur) {
        if (!strncmp(head_of(st, cur)->id, id, SC_ID_MAX))
            break;
        before = cur;
        cur = head_of(st, cur)->bucket_next;
    }
    if (prev)
        *prev = before;
    return cur;
}

/* Copy len bytes between buf and a chain's byte stream at offset off. */
static void chain_io(sc_store *st, apr_uint32_t blk, apr_size_t off,
                     char *buf, apr_size_t len, int into_chain)
{
    while (blk && off >= SC_PAYLOAD) {
        off -= SC_PAYLOAD;
        blk = st->blocks[blk].next;
    }
    while (blk && len) {
        apr_size_t n = SC_PAYLOAD - off;
        unsigned char *at = st->blocks[blk].payload + off;
        if (n > len)
            n = len;
        if (into_chain)
            memcpy(at, buf, n);
        else
            memcpy(buf, at, n);
        buf += n;
        len -= n;
        off = 0;
        blk = st->blocks[blk].next;
    }
}

/* Caller holds the allocator lock. */
static void free_chain_locked(sc_store *st, apr_uint32_t blk)
{
    while (blk) {
        apr_uint32_t next = st->blocks[blk].next;
        st->blocks[blk].next = st->seg->free_head;
        st->blocks[blk].pid = 0;
        st->seg->free_head = blk;
        st->seg->free_count++;
        blk = next;
    }
}

static apr_status_t free_chain(sc_store *st, apr_uint32_t blk)
{
    apr_status_t rv;
    if (!blk)
        return APR_SUCCESS;
    if ((rv = lock(st, SC_ALLOC_LOCK)) != APR_SUCCESS)
        return rv;
    free_chain_locked(st, blk);
    unlock(st, SC_ALLOC_LOCK);
    return APR_SUCCESS;
}

/* Take n blocks off the free list, stamped with our pid until linked. */
static apr_status_t alloc_chain(sc_store *st, apr_uint32_t n, apr_uint32_t *head)
{
    apr_uint32_t i, blk, pid = (apr_uint32_t)getpid();
    apr_status_t rv;

    if ((rv = lock(st, SC_ALLOC_LOCK)) != APR_SUCCESS)
        return rv;
    if (st->seg->free_count < n) {
        unlock(st, SC_ALLOC_LOCK);
        apr_atomic_inc32(&st->seg->refused);
        return APR_ENOSPC;
    }
    *head = blk = st->seg->free_head;
    for (i = 1; i < n; i++) {
        st->blocks[blk].pid = pid;
        blk = st->blocks[blk].next;
    }
    st->blocks[blk].pid = pid;
    st->seg->free_head = st->blocks[blk].next;
    st->blocks[blk].next = 0;
    st->seg->free_count -= n;
    unlock(st, SC_ALLOC_LOCK);
    return APR_SUCCESS;
}

/* ---- reads -------------------------------------------------------------- */

/* The session at blk, its data into p (no data at all when p is NULL). */
static void copy_out(sc_store *st, apr_uint32_t blk, apr_pool_t *p, sc_session *s)
{
    const sc_head *h = head_of(st, blk);
    char *data = NULL;

    if (p) {
        data = apr_palloc(p, h->len + 1);
        chain_io(st, blk, sizeof(sc_head), data, h->len, 0);
        data[h->len] = '\0';
    }
    memset(s, 0, sizeof(*s));
    memcpy(s->id, h->id, SC_ID_MAX);
    memcpy(s->owner, h->owner, SC_ROUTE_MAX);
    memcpy(s->backup, h->backup, SC_ROUTE_MAX);
    s->version = h->version;
    s->created = h->created;
    s->expires = h->expires;
    s->tombstone = (h->flags & SC_F_TOMB) != 0;
    s->proxy = (h->flags & SC_F_PROXY) != 0;
    s->fresh = (h->flags & SC_F_NEW) != 0;
    s->len = h->len;
    s->data = data;
}


static apr_status_t get(sc_store *st, const char *id, apr_time_t now,
                        apr_pool_t *p, sc_session *s);

apr_status_t sc_store_get(sc_store *st, const char *id, apr_time_t now,
                          apr_pool_t *p, sc_session *s)
{
    return get(st, id, now, p, s);
}

apr_status_t sc_store_get_meta(sc_store *st, const char *id, apr_time_t now,
                               sc_session *s)
{
    return get(st, id, now, NULL, s);
}

static apr_status_t get(sc_store *st, const char *id, apr_time_t now,
                        apr_pool_t *p, sc_session *s)
{
    apr_uint32_t b, blk;
    apr_status_t rv;

    if ((rv = check_id(id)) != APR_SUCCESS)
        return rv;
    b = bucket_of(st, id);
    if ((rv = lock(st, b % SC_STORE_STRIPES)) != APR_SUCCESS)
        return rv;
    blk = find_locked(st, b, id, NULL);
    if (blk && (is_live(head_of(st, blk), now)
                || (head_of(st, blk)->flags & SC_F_TOMB)))
        copy_out(st, blk, p, s);
    else
        rv = APR_NOTFOUND;
    unlock(st, b % SC_STORE_STRIPES);
    return rv;
}

void sc_store_stats_get(sc_store *st, sc_store_stats *stats)
{
    stats->segment_bytes = (apr_size_t)st->seg->bytes;
    stats->blocks_total = st->seg->nblocks - 1;
    stats->blocks_free = apr_atomic_read32(&st->seg->free_count);
    stats->sessions = apr_atomic_read32(&st->seg->sessions);
    stats->tombstones = apr_atomic_read32(&st->seg->tombstones);
    stats->refused = apr_atomic_read32(&st->seg->refused);
    stats->reclaimed = apr_atomic_read32(&st->seg->reclaimed);
    stats->evicted = apr_atomic_read32(&st->seg->evicted);
    stats->new_expired = apr_atomic_read32(&st->seg->new_expired);
}

/* ---- copy-on-write writes ----------------------------------------------- */

/* Build a chain holding h + data, outside any stripe lock. */
static apr_status_t stage(sc_store *st, const sc_head *h, const char *data,
                          apr_uint32_t *head)
{
    apr_size_t total = sizeof(sc_head) + h->len;
    apr_uint32_t n = (apr_uint32_t)((total + SC_PAYLOAD - 1) / SC_PAYLOAD);
    apr_status_t rv = alloc_chain(st, n, head);

    if (rv == APR_SUCCESS) {
        chain_io(st, *head, 0, (char *)h, sizeof(sc_head), 1);
        chain_io(st, *head, sizeof(sc_head), (char *)data, h->len, 1);
    }
    return rv;
}

typedef enum {
    SC_WRITE_CREATE,        /* the id must be unused */
    SC_WRITE_UPDATE,        /* a live session: next version, same owner */
    SC_WRITE_IF_BASE,       /* a live session still at version `base` */
    SC_WRITE_IF_NEWER       /* a replica: absent, or older than h->version */
} sc_write_rule;

/* Which of two copies of a session a replica keeps (replication, state
 * transfer, a partition healing). An invalidation is final: a tombstone is
 * never replaced by a live copy or a proxy, whatever their version (ids are
 * never issued twice, so nothing legitimate comes after it). Otherwise the
 * newer version; at one version the data replaces a proxy of it (a fetch),
 * and two different writers (both sides of a partition wrote) are ordered
 * by route, so every node keeps the same copy. */
static int replica_wins(const sc_head *oh, const sc_head *nh)
{
    int old_dead = (oh->flags & SC_F_TOMB) != 0;
    int new_dead = (nh->flags & SC_F_TOMB) != 0;

    if (old_dead != new_dead)
        return new_dead;
    if (oh->version != nh->version)
        return nh->version > oh->version;
    if ((oh->flags & SC_F_PROXY) && !(nh->flags & SC_F_KIND))
        return 1;
    return !(oh->flags & SC_F_KIND) && !(nh->flags & SC_F_KIND)
        && strcmp(nh->owner, oh->owner) > 0;
}

/* Under the stripe lock: may the staged head nh replace old (0 if absent)?
 * Completes nh from old where the rule says so. */
static apr_status_t admit(sc_store *st, apr_uint32_t old, sc_head *nh,
                          sc_write_rule rule, apr_uint64_t base, apr_time_t now)
{
    const sc_head *oh = old ? head_of(st, old) : NULL;

    switch (rule) {
    case SC_WRITE_CREATE:
        return oh ? APR_EEXIST : APR_SUCCESS;
    case SC_WRITE_UPDATE:
        if (!oh || !is_live(oh, now) || (oh->flags & SC_F_PROXY))
            return APR_NOTFOUND;
        nh->version = oh->version + 1;
        memcpy(nh->owner, oh->owner, SC_ROUTE_MAX);
        memcpy(nh->backup, oh->backup, SC_ROUTE_MAX);
        break;
    case SC_WRITE_IF_BASE:
        if (!oh || !is_live(oh, now) || (oh->flags & SC_F_PROXY))
            return APR_NOTFOUND;
        if (oh->version != base)
            return SC_STORE_STALE;
        nh->version = base + 1;
        break;
    case SC_WRITE_IF_NEWER:
        if (oh && !replica_wins(oh, nh))
            return SC_STORE_STALE;
        if (!oh)
            return APR_SUCCESS;
        break;
    }
    nh->created = oh->created;
    return APR_SUCCESS;
}

/* Keep the live/tombstone counters right for a change from old to fresh. */
static void account(sc_store *st, apr_uint32_t old, apr_uint32_t fresh)
{
    if (old && (head_of(st, old)->flags & SC_F_TOMB))
        apr_atomic_dec32(&st->seg->tombstones);
    else if (old)
        apr_atomic_dec32(&st->seg->sessions);
    if (head_of(st, fresh)->flags & SC_F_TOMB)
        apr_atomic_inc32(&st->seg->tombstones);
    else
        apr_atomic_inc32(&st->seg->sessions);
}

/* Stage h + data, then under the stripe lock swap it in if the rule admits
 * it, freeing the old chain. h->version receives the version written. */
static apr_status_t write_session(sc_store *st, sc_head *h, const char *data,
                                  apr_time_t now, sc_write_rule rule,
                                  apr_uint64_t base)
{
    apr_uint32_t b = bucket_of(st, h->id), prev, old, fresh, blk;
    int stripe = b % SC_STORE_STRIPES;
    apr_status_t rv;
    sc_head *nh;

    if ((rv = stage(st, h, data, &fresh)) != APR_SUCCESS)
        return rv;
    nh = head_of(st, fresh);
    if ((rv = lock(st, stripe)) != APR_SUCCESS) {
        free_chain(st, fresh);
        return rv;
    }
    old = find_locked(st, b, h->id, &prev);
    if ((rv = admit(st, old, nh, rule, base, now)) != APR_SUCCESS) {
        unlock(st, stripe);
        free_chain(st, fresh);
        return rv;
    }
    account(st, old, fresh);
    if (old) {
        nh->bucket_next = head_of(st, old)->bucket_next;
        if (prev)
            head_of(st, prev)->bucket_next = fresh;
        else
            st->buckets[b] = fresh;
    }
    else {
        nh->bucket_next = st->buckets[b];
        st->buckets[b] = fresh;
    }
    h->version = nh->version;
    /* linked: the store owns it now, whatever becomes of its writer */
    for (blk = fresh; blk; blk = st->blocks[blk].next)
        st->blocks[blk].pid = 0;
    /* freeing under the stripe lock closes the window in which a crash
     * would leak the old chain */
    rv = free_chain(st, old);
    unlock(st, stripe);
    return rv;
}

static apr_status_t fill_head(sc_head *h, const sc_session *s)
{
    if (check_id(s->id) != APR_SUCCESS || s->len > SC_SESSION_MAX
        || ((s->tombstone || s->proxy) && s->len) || (s->tombstone && s->proxy))
        return APR_EINVAL;
    memset(h, 0, sizeof(*h));
    apr_cpystrn(h->id, s->id, SC_ID_MAX);
    apr_cpystrn(h->owner, s->owner, SC_ROUTE_MAX);
    apr_cpystrn(h->backup, s->backup, SC_ROUTE_MAX);
    h->len = (apr_uint32_t)s->len;
    h->expires = s->expires;
    h->version = s->version;
    h->created = s->created;
    h->flags = s->tombstone ? SC_F_TOMB : s->proxy ? SC_F_PROXY : 0;
    if (s->fresh && !s->tombstone)
        h->flags |= SC_F_NEW;
    return APR_SUCCESS;
}

apr_status_t sc_store_create(sc_store *st, const sc_session *s, apr_time_t now)
{
    sc_head h;
    apr_status_t rv = fill_head(&h, s);

    if (rv != APR_SUCCESS || s->tombstone || s->proxy)
        return APR_EINVAL;
    h.version = 1;
    h.created = now;
    return write_session(st, &h, s->data, now, SC_WRITE_CREATE, 0);
}

apr_status_t sc_store_update(sc_store *st, const char *id, const char *data,
                             apr_size_t len, apr_time_t expires,
                             apr_time_t now, apr_uint64_t *version)
{
    sc_session s;
    sc_head h;
    apr_status_t rv;

    memset(&s, 0, sizeof(s));
    apr_cpystrn(s.id, id ? id : "", SC_ID_MAX);
    s.len = len;
    s.expires = expires;
    if ((rv = fill_head(&h, &s)) == APR_SUCCESS)
        rv = write_session(st, &h, data, now, SC_WRITE_UPDATE, 0);
    if (rv == APR_SUCCESS && version)
        *version = h.version;
    return rv;
}

apr_status_t sc_store_replace(sc_store *st, const sc_session *s,
                              apr_uint64_t base, apr_time_t now)
{
    sc_head h;
    apr_status_t rv = fill_head(&h, s);

    if (rv != APR_SUCCESS || s->tombstone || s->proxy)
        return APR_EINVAL;
    return write_session(st, &h, s->data, now, SC_WRITE_IF_BASE, base);
}

apr_status_t sc_store_put_newer(sc_store *st, const sc_session *s,
                                apr_time_t now)
{
    sc_head h;
    apr_status_t rv = fill_head(&h, s);

    if (rv != APR_SUCCESS || !s->version)
        return APR_EINVAL;
    return write_session(st, &h, s->data, now, SC_WRITE_IF_NEWER, 0);
}

/* ---- iteration ------------------------------------------------------------ */

static int visited(const sc_head *h, apr_time_t now, int tombstones)
{
    return is_live(h, now)
        || (tombstones && (h->flags & SC_F_TOMB) && !is_expired(h, now));
}

static apr_status_t visit(sc_store *st, apr_time_t now, apr_pool_t *p,
                          sc_store_visit_fn fn, void *baton, int tombstones)
{
    apr_pool_t *sp;
    apr_status_t rv;
    int stripe, stop = 0;

    if ((rv = apr_pool_create(&sp, p)) != APR_SUCCESS)
        return rv;
    /* copy one stripe out under its lock, then visit without any lock held */
    for (stripe = 0; stripe < SC_STORE_STRIPES && !stop; stripe++) {
        apr_array_header_t *batch = apr_array_make(sp, 64, sizeof(sc_session));
        apr_uint32_t b;
        int i;

        if ((rv = lock(st, stripe)) != APR_SUCCESS)
            break;
        for (b = stripe; b < st->seg->nbuckets; b += SC_STORE_STRIPES) {
            apr_uint32_t cur;
            for (cur = st->buckets[b]; cur; cur = head_of(st, cur)->bucket_next)
                if (visited(head_of(st, cur), now, tombstones))
                    copy_out(st, cur, sp, apr_array_push(batch));
        }
        unlock(st, stripe);
        for (i = 0; i < batch->nelts && !stop; i++)
            stop = fn(baton, &APR_ARRAY_IDX(batch, i, sc_session));
        apr_pool_clear(sp);
    }
    apr_pool_destroy(sp);
    return rv;
}

apr_status_t sc_store_foreach(sc_store *st, apr_time_t now, apr_pool_t *p,
                              sc_store_visit_fn fn, void *baton)
{
    return visit(st, now, p, fn, baton, 0);
}

apr_status_t sc_store_foreach_all(sc_store *st, apr_time_t now, apr_pool_t *p,
                                  sc_store_visit_fn fn, void *baton)
{
    return visit(st, now, p, fn, baton, 1);
}

/* ---- in-place changes (header only, under the stripe lock) -------------- */

typedef apr_status_t (*live_fn)(sc_store *st, apr_uint32_t blk, apr_time_t t);

/* Run fn(blk, t) on the live session `id` under its stripe lock. */
static apr_status_t on_live_session(sc_store *st, const char *id, apr_time_t now,
                                    live_fn fn, apr_time_t t)
{
    apr_uint32_t b, blk;
    apr_status_t rv;

    if ((rv = check_id(id)) != APR_SUCCESS)
        return rv;
    b = bucket_of(st, id);
    if ((rv = lock(st, b % SC_STORE_STRIPES)) != APR_SUCCESS)
        return rv;
    blk = find_locked(st, b, id, NULL);
    rv = (blk && is_live(head_of(st, blk), now)) ? fn(st, blk, t) : APR_NOTFOUND;
    unlock(st, b % SC_STORE_STRIPES);
    return rv;
}

static apr_status_t set_expiry_locked(sc_store *st, apr_uint32_t blk,
                                      apr_time_t expires)
{
    if (head_of(st, blk)->flags & SC_F_PROXY)
        return APR_NOTFOUND;
    head_of(st, blk)->expires = expires;
    head_of(st, blk)->flags &= ~SC_F_NEW;   /* only a returning client touches */
    return APR_SUCCESS;
}

/* Turn a live chain into a tombstone: drop its data blocks, keep the head.
 * Needs no allocation, so invalidation works even in a full store. */
static apr_status_t entomb_locked(sc_store *st, apr_uint32_t blk, apr_time_t until)
{
    sc_head *h = head_of(st, blk);
    apr_uint32_t tail = st->blocks[blk].next;

    h->flags = SC_F_TOMB;
    h->len = 0;
    h->version++;
    h->expires = until;
    st->blocks[blk].next = 0;
    apr_atomic_dec32(&st->seg->sessions);
    apr_atomic_inc32(&st->seg->tombstones);
    return free_chain(st, tail);
}

apr_status_t sc_store_touch(sc_store *st, const char *id, apr_time_t expires,
                            apr_time_t now)
{
    return on_live_session(st, id, now, set_expiry_locked, expires);
}

apr_status_t sc_store_invalidate(sc_store *st, const char *id,
                                 apr_time_t until, apr_time_t now)
{
    return on_live_session(st, id, now, entomb_locked, until);
}

/* ---- sweep ------------------------------------------------------------- */

/* Take the chain cur (after prev in bucket b) out of the index and the
 * counters. Stripe lock held; the caller frees the chain. */
static void unlink_locked(sc_store *st, apr_uint32_t b, apr_uint32_t prev,
                          apr_uint32_t cur)
{
    sc_head *h = head_of(st, cur);

    if (prev)
        head_of(st, prev)->bucket_next = h->bucket_next;
    else
        st->buckets[b] = h->bucket_next;
    apr_atomic_dec32(h->flags & SC_F_TOMB ? &st->seg->tombstones
                                          : &st->seg->sessions);
}

static apr_status_t sweep_stripe(sc_store *st, int stripe, apr_time_t now,
                                 apr_interval_time_t ttl, sc_sweep_result *res)
{
    apr_uint32_t b;
    apr_status_t rv;

    if ((rv = lock(st, stripe)) != APR_SUCCESS)
        return rv;
    for (b = stripe; b < st->seg->nbuckets && rv == APR_SUCCESS;
         b += SC_STORE_STRIPES) {
        apr_uint32_t prev = 0, cur = st->buckets[b];
        while (cur && rv == APR_SUCCESS) {
            sc_head *h = head_of(st, cur);
            apr_uint32_t next = h->bucket_next;
            if (!is_expired(h, now)) {
                prev = cur;
            }
            else if (!(h->flags & SC_F_KIND) && !(h->flags & SC_F_NEW)) {
                rv = entomb_locked(st, cur, now + ttl);
                res->expired++;
                prev = cur;
            }
            else {
                /* a proxy leaves no tombstone: it never held the data, and
                 * the owner's tombstone (newer) still wins any later copy;
                 * nor does a session that never came back: nobody holds
                 * its cookie but its creator, and a late copy of it is just
                 * as expired (a flood of them must not become a flood of
                 * tombstones) */
                if (h->flags & SC_F_NEW && !(h->flags & SC_F_KIND)) {
                    res->new_expired++;
                    apr_atomic_inc32(&st->seg->new_expired);
                }
                else
                    res->dropped++;
                unlink_locked(st, b, prev, cur);
                rv = free_chain(st, cur);
            }
            cur = next;
        }
    }
    unlock(st, stripe);
    return rv;
}

static int writer_gone(apr_uint32_t pid)
{
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static void mark_chain(sc_store *st, apr_uint32_t blk, unsigned char *seen)
{
    for (; blk; blk = st->blocks[blk].next)
        seen[blk] = 1;
}

/* With every lock held, return blocks that no chain, bucket or free list
 * reaches and whose process has died mid-write. A block with pid 0 was
 * linked once (linking clears the stamp) and was being freed: only the
 * allocator-lock holder does that, and we hold it now, so that process
 * died too. A writer killed between two counter updates leaves
 * them off, so every counter is recounted here as well. */
static apr_uint32_t reclaim_locked(sc_store *st, apr_pool_t *p)
{
    apr_uint32_t b, i, n = 0, nfree = 0, live = 0, tombs = 0;
    apr_uint32_t nblocks = st->seg->nblocks;
    unsigned char *seen = apr_pcalloc(p, nblocks);

    for (b = 0; b < st->seg->nbuckets; b++) {
        apr_uint32_t cur;
        for (cur = st->buckets[b]; cur; cur = head_of(st, cur)->bucket_next) {
            mark_chain(st, cur, seen);
            if (head_of(st, cur)->flags & SC_F_TOMB)
                tombs++;
            else
                live++;
        }
    }
    apr_atomic_set32(&st->seg->sessions, live);
    apr_atomic_set32(&st->seg->tombstones, tombs);
    for (i = st->seg->free_head; i; i = st->blocks[i].next) {
        seen[i] = 1;
        nfree++;
    }
    st->seg->free_count = nfree;
    for (i = 1; i < nblocks; i++) {
        if (!seen[i] && (!st->blocks[i].pid || writer_gone(st->blocks[i].pid))) {
            st->blocks[i].next = 0;
            free_chain_locked(st, i);
            n++;
        }
    }
    return n;
}

static apr_status_t reclaim(sc_store *st, sc_sweep_result *res)
{
    apr_pool_t *p;
    apr_status_t rv;
    int held = 0;

    if ((rv = apr_pool_create(&p, NULL)) != APR_SUCCESS)
        return rv;
    while (held < SC_STORE_LOCKS && (rv = lock(st, held)) == APR_SUCCESS)
        held++;
    if (rv == APR_SUCCESS) {
        res->reclaimed = reclaim_locked(st, p);
        apr_atomic_add32(&st->seg->reclaimed, res->reclaimed);
    }
    while (held > 0)
        unlock(st, --held);
    apr_pool_destroy(p);
    return rv;
}

int sc_store_due(sc_store *st, int kind, apr_time_t now, apr_interval_time_t every)
{
    apr_uint32_t due = apr_atomic_read32(&st->seg->due[kind]);
    apr_uint32_t sec = (apr_uint32_t)apr_time_sec(now);

    if (sec < due)
        return 0;
    return apr_atomic_cas32(&st->seg->due[kind],
                            sec + (apr_uint32_t)apr_time_sec(every), due) == due;
}

apr_uint32_t sc_store_since(sc_store *st, int counter, apr_uint32_t count)
{
    return count - apr_atomic_xchg32(&st->seg->seen[counter], count);
}

int sc_store_sweep_due(sc_store *st, apr_time_t now, apr_interval_time_t every)
{
    return sc_store_due(st, SC_STORE_DUE_SWEEP, now, every);
}

apr_status_t sc_store_sweep(sc_store *st, apr_time_t now,
                            apr_interval_time_t tombstone_ttl,
                            sc_sweep_result *res)
{
    int stripe;
    apr_status_t rv = APR_SUCCESS;

    memset(res, 0, sizeof(*res));
    for (stripe = 0; stripe < SC_STORE_STRIPES && rv == APR_SUCCESS; stripe++)
        rv = sweep_stripe(st, stripe, now, tombstone_ttl, res);
    if (rv == APR_SUCCESS)
        rv = reclaim(st, res);
    return rv;
}

/* ---- eviction under pressure ------------------------------------------- */

typedef struct {
    apr_time_t expires;
    char id[SC_ID_MAX];
} sc_candidate;

static int by_expiry(const void *a, const void *b)
{
    const sc_candidate *x = a, *y = b;
    if (x->expires != y->expires)
        return x->expires < y->expires ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int evictable(const sc_head *h, apr_time_t now)
{
    return (h->flags & SC_F_NEW) && !(h->flags & SC_F_TOMB) && !is_expired(h, now);
}

/* Every evictable entry, copied out one stripe at a time. */
static apr_status_t collect_new(sc_store *st, apr_time_t now,
                                apr_array_header_t *out)
{
    int stripe;
    apr_status_t rv;

    for (stripe = 0; stripe < SC_STORE_STRIPES; stripe++) {
        apr_uint32_t b;
        if ((rv = lock(st, stripe)) != APR_SUCCESS)
            return rv;
        for (b = stripe; b < st->seg->nbuckets; b += SC_STORE_STRIPES) {
            apr_uint32_t cur;
            for (cur = st->buckets[b]; cur; cur = head_of(st, cur)->bucket_next) {
                const sc_head *h = head_of(st, cur);
                if (evictable(h, now)) {
                    sc_candidate *c = apr_array_push(out);
                    c->expires = h->expires;
                    memcpy(c->id, h->id, SC_ID_MAX);
                }
            }
        }
        unlock(st, stripe);
    }
    return APR_SUCCESS;
}

/* Drop one candidate if it is still what was collected (it may have come
 * back meanwhile: then it stays). 1 if dropped. */
static int evict_one(sc_store *st, const sc_candidate *c, apr_time_t now)
{
    apr_uint32_t b = bucket_of(st, c->id), prev, cur;
    int stripe = b % SC_STORE_STRIPES, done = 0;

    if (lock(st, stripe) != APR_SUCCESS)
        return 0;
    cur = find_locked(st, b, c->id, &prev);
    if (cur && evictable(head_of(st, cur), now)
        && head_of(st, cur)->expires == c->expires) {
        unlink_locked(st, b, prev, cur);
        done = free_chain(st, cur) == APR_SUCCESS;
    }
    unlock(st, stripe);
    return done;
}

/* One evictor at a time across processes; one killed mid-way is replaced. */
static int claim_evictor(sc_store *st)
{
    apr_uint32_t pid = (apr_uint32_t)getpid();
    apr_uint32_t was = apr_atomic_cas32(&st->seg->evictor, pid, 0);

    if (!was)
        return 1;
    return writer_gone(was) && apr_atomic_cas32(&st->seg->evictor, pid, was) == was;
}

apr_status_t sc_store_evict_new(sc_store *st, apr_time_t now,
                                apr_uint32_t want_free, apr_pool_t *p,
                                apr_uint32_t *evicted)
{
    apr_array_header_t *all;
    apr_pool_t *sp;
    apr_status_t rv;
    int i;

    *evicted = 0;
    if (apr_atomic_read32(&st->seg->free_count) >= want_free
        || (apr_uint32_t)apr_time_sec(now) < apr_atomic_read32(&st->seg->evict_quiet))
        return APR_SUCCESS;
    if (!claim_evictor(st))
        return APR_EBUSY;
    if ((rv = apr_pool_create(&sp, p)) != APR_SUCCESS) {
        apr_atomic_set32(&st->seg->evictor, 0);
        return rv;
    }
    apr_pool_tag(sp, "sc_store_evict");
    all = apr_array_make(sp, 1024, sizeof(sc_candidate));
    if ((rv = collect_new(st, now, all)) == APR_SUCCESS) {
        /* oldest first: expiry travels with the session, so every node
         * holding the same sessions ranks them the same */
        qsort(all->elts, all->nelts, sizeof(sc_candidate), by_expiry);
        for (i = 0; i < all->nelts
                    && apr_atomic_read32(&st->seg->free_count) < want_free; i++)
            *evicted += evict_one(st, &APR_ARRAY_IDX(all, i, sc_candidate), now);
        apr_atomic_add32(&st->seg->evicted, *evicted);
        /* a store full of sessions that came back: nothing to gain from
         * scanning it again for every write in the next second */
        if (!all->nelts)
            apr_atomic_set32(&st->seg->evict_quiet, (apr_uint32_t)apr_time_sec(now) + 1);
    }
    apr_pool_destroy(sp);
    apr_atomic_set32(&st->seg->evictor, 0);
    return rv;
}
