/* sc_kv.c - per-key patches of mod_session's encoded form (see sc_kv.h).
 *
 * Both inputs are parsed into an ordered set: an array of pairs in the order
 * each key first appeared, and a hash from key to its pair. Keys and values
 * point into the caller's strings (length-delimited), so parsing copies
 * nothing; only the result is written out, in one allocation.
 */
#include <string.h>

#include <apr_hash.h>
#include <apr_tables.h>

#include "sc_kv.h"

typedef struct {
    const char *key;
    apr_size_t klen;
    const char *val;
    apr_size_t vlen;            /* 0: absent (data) or remove (patch) */
} sc_pair;

typedef struct {
    apr_array_header_t *order;  /* sc_pair *, first appearance first */
    apr_hash_t *index;          /* key bytes -> sc_pair * */
} sc_kvset;

typedef enum { SC_KV_DATA, SC_KV_PATCH } sc_kv_mode;

static sc_pair *find(const sc_kvset *set, const char *key, apr_size_t klen)
{
    return apr_hash_get(set->index, key, (apr_ssize_t)klen);
}

static void add(sc_kvset *set, apr_pool_t *p, const char *key, apr_size_t klen,
                const char *val, apr_size_t vlen)
{
    sc_pair *pr = apr_palloc(p, sizeof(*pr));

    pr->key = key;
    pr->klen = klen;
    pr->val = val;
    pr->vlen = vlen;
    APR_ARRAY_PUSH(set->order, sc_pair *) = pr;
    apr_hash_set(set->index, key, (apr_ssize_t)klen, pr);
}

/* One "k=v" segment: exactly one '=', a non-empty key. */
static apr_status_t split_pair(const char *seg, apr_size_t len,
                               apr_size_t *klen, const char **val,
                               apr_size_t *vlen)
{
    const char *eq = memchr(seg, '=', len);

    if (!eq || eq == seg)
        return APR_EINVAL;
    *klen = (apr_size_t)(eq - seg);
    *val = eq + 1;
    *vlen = len - *klen - 1;
    if (memchr(*val, '=', *vlen))
        return APR_EINVAL;
    return APR_SUCCESS;
}

/* Parse s into set. Data mode skips empty values the way mod_session's
 * decoder does; patch mode keeps them as removals. A repeated key keeps its
 * first place and takes its last value. */
static void set_init(apr_pool_t *p, sc_kvset *set)
{
    set->order = apr_array_make(p, 16, sizeof(sc_pair *));
    set->index = apr_hash_make(p);
}

static apr_status_t parse(apr_pool_t *p, const char *s, sc_kv_mode mode,
                          sc_kvset *set)
{
    set_init(p, set);
    if (!s)
        return APR_SUCCESS;
    while (*s) {
        const char *amp = strchr(s, '&');
        apr_size_t len = amp ? (apr_size_t)(amp - s) : strlen(s);
        apr_size_t klen, vlen;
        const char *val;
        sc_pair *pr;

        if (len) {
            if (split_pair(s, len, &klen, &val, &vlen) != APR_SUCCESS)
                return APR_EINVAL;
            if ((pr = find(set, s, klen)) != NULL) {
                if (vlen || mode == SC_KV_PATCH) {
                    pr->val = val;
                    pr->vlen = vlen;
                }
            }
            else if (vlen || mode == SC_KV_PATCH) {
                add(set, p, s, klen, val, vlen);
            }
        }
        s += len;
        if (*s == '&')
            s++;
    }
    return APR_SUCCESS;
}

/* An output string built in two passes: measure (buf NULL), then write. */
typedef struct {
    char *buf;
    apr_size_t len;
} sc_out;

static void emit(sc_out *o, const sc_pair *pr, int with_value)
{
    apr_size_t need = (o->len ? 1 : 0) + pr->klen + 1
                    + (with_value ? pr->vlen : 0);

    if (o->buf) {
        char *w = o->buf + o->len;
        if (o->len)
            *w++ = '&';
        memcpy(w, pr->key, pr->klen);
        w += pr->klen;
        *w++ = '=';
        if (with_value)
            memcpy(w, pr->val, pr->vlen);
    }
    o->len += need;
}

static int same_value(const sc_pair *a, const sc_pair *b)
{
    return a->vlen == b->vlen && !memcmp(a->val, b->val, a->vlen);
}

static void diff_pass(const sc_kvset *old, const sc_kvset *new, sc_out *o)
{
    int i;

    for (i = 0; i < new->order->nelts; i++) {
        const sc_pair *n = APR_ARRAY_IDX(new->order, i, sc_pair *);
        const sc_pair *was = find(old, n->key, n->klen);
        if (!was || !same_value(was, n))
            emit(o, n, 1);
    }
    for (i = 0; i < old->order->nelts; i++) {
        const sc_pair *was = APR_ARRAY_IDX(old->order, i, sc_pair *);
        if (!find(new, was->key, was->klen))
            emit(o, was, 0);
    }
}

apr_status_t sc_kv_diff(apr_pool_t *p, const char *old, const char *new,
                        const char **patch)
{
    sc_kvset a, b;
    sc_out o = { NULL, 0 };

    if (parse(p, old, SC_KV_DATA, &a) != APR_SUCCESS
        || parse(p, new, SC_KV_DATA, &b) != APR_SUCCESS)
        return APR_EINVAL;
    diff_pass(&a, &b, &o);
    o.buf = apr_palloc(p, o.len + 1);
    o.len = 0;
    diff_pass(&a, &b, &o);
    o.buf[o.len] = '\0';
    *patch = o.buf;
    return APR_SUCCESS;
}

static void join_pass(const sc_kvset *set, sc_out *o)
{
    int i;

    for (i = 0; i < set->order->nelts; i++) {
        const sc_pair *pr = APR_ARRAY_IDX(set->order, i, sc_pair *);
        if (pr->vlen)
            emit(o, pr, 1);
    }
}

int sc_kv_normal(apr_pool_t *p, const char *data)
{
    sc_kvset set;

    set_init(p, &set);
    if (!data || !*data)
        return 0;
    for (;;) {
        const char *amp = strchr(data, '&');
        apr_size_t len = amp ? (apr_size_t)(amp - data) : strlen(data);
        apr_size_t klen, vlen;
        const char *val;

        if (!len || split_pair(data, len, &klen, &val, &vlen) != APR_SUCCESS
            || !vlen || find(&set, data, klen))
            return 0;
        add(&set, p, data, klen, val, vlen);
        if (!amp)
            return 1;
        data = amp + 1;
    }
}

apr_status_t sc_kv_apply(apr_pool_t *p, const char *data, const char *patch,
                         const char **out)
{
    sc_kvset d, c;
    sc_out o = { NULL, 0 };
    int i;

    if (parse(p, data, SC_KV_DATA, &d) != APR_SUCCESS
        || parse(p, patch, SC_KV_PATCH, &c) != APR_SUCCESS)
        return APR_EINVAL;
    for (i = 0; i < c.order->nelts; i++) {
        const sc_pair *ch = APR_ARRAY_IDX(c.order, i, sc_pair *);
        sc_pair *cur = find(&d, ch->key, ch->klen);
        if (cur) {
            /* replaced in place, or marked removed (vlen 0) */
            cur->val = ch->val;
            cur->vlen = ch->vlen;
        }
        else if (ch->vlen) {
            add(&d, p, ch->key, ch->klen, ch->val, ch->vlen);
        }
    }
    join_pass(&d, &o);
    o.buf = apr_palloc(p, o.len + 1);
    o.len = 0;
    join_pass(&d, &o);
    o.buf[o.len] = '\0';
    *out = o.buf;
    return APR_SUCCESS;
}
