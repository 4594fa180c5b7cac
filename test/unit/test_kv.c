/* Unit tests for sc_kv: diff and apply on mod_session's "k=v&k2=v2" form,
 * empty sessions, removals, escaped values, keys that prefix other keys,
 * malformed input, a seeded 200-key property test of
 * apply(old, diff(old, new)) == new, and commuting patches on different keys.
 * Runs under ASan/UBSan. */
#include <string.h>
#include <stdlib.h>

#include <apr_general.h>
#include <apr_hash.h>
#include <apr_strings.h>

#include "sc_kv.h"
#include "sc_test.h"

static apr_pool_t *pool;

static const char *diff(const char *a, const char *b)
{
    const char *patch = NULL;
    if (sc_kv_diff(pool, a, b, &patch) != APR_SUCCESS)
        return NULL;
    return patch;
}

static const char *apply(const char *data, const char *patch)
{
    const char *out = NULL;
    if (sc_kv_apply(pool, data, patch, &out) != APR_SUCCESS)
        return NULL;
    return out;
}

static int eq(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

/* The key -> value map of well-formed data, parsed here independently of
 * sc_kv (empty values are absent, the last repeat wins). */
static apr_hash_t *as_map(const char *s)
{
    apr_hash_t *h = apr_hash_make(pool);
    char *copy = apr_pstrdup(pool, s), *last = NULL, *pair;

    for (pair = apr_strtok(copy, "&", &last); pair;
         pair = apr_strtok(NULL, "&", &last)) {
        char *eq_ = strchr(pair, '=');
        if (!eq_)
            return NULL;
        *eq_ = '\0';
        if (eq_[1])
            apr_hash_set(h, pair, APR_HASH_KEY_STRING, eq_ + 1);
    }
    return h;
}

/* Same keys and values, in any order. */
static int same_set(const char *a, const char *b)
{
    apr_hash_t *ha, *hb;
    apr_hash_index_t *hi;

    if (!a || !b || !(ha = as_map(a)) || !(hb = as_map(b))
        || apr_hash_count(ha) != apr_hash_count(hb))
        return 0;
    for (hi = apr_hash_first(pool, ha); hi; hi = apr_hash_next(hi)) {
        const void *k;
        void *v, *w;
        apr_hash_this(hi, &k, NULL, &v);
        if (!(w = apr_hash_get(hb, k, APR_HASH_KEY_STRING)) || strcmp(v, w))
            return 0;
    }
    return 1;
}

static void test_diff_basics(void)
{
    CHECK(eq(diff("", ""), ""));
    CHECK(eq(diff(NULL, NULL), ""));
    CHECK(eq(diff("a=1&b=2", "a=1&b=2"), ""));
    CHECK(eq(diff("a=1&b=2", "b=2&a=1"), ""));           /* order alone is no change */
    CHECK(eq(diff("", "a=1"), "a=1"));
    CHECK(eq(diff("a=1", ""), "a="));
    CHECK(eq(diff("a=1", "a=2"), "a=2"));
    CHECK(eq(diff("a=1&b=2&c=3", "c=4&d=5&a=1"), "c=4&d=5&b="));
    CHECK(eq(diff("a=1&b=2&c=3", ""), "a=&b=&c="));      /* every key removed */
    CHECK(eq(diff(NULL, "x=y"), "x=y"));
}

static void test_apply_basics(void)
{
    CHECK(eq(apply("", ""), ""));
    CHECK(eq(apply(NULL, NULL), ""));
    CHECK(eq(apply("a=1&b=2", ""), "a=1&b=2"));
    CHECK(eq(apply("", "a=1"), "a=1"));
    CHECK(eq(apply("a=1&b=2&c=3", "b=9"), "a=1&b=9&c=3"));   /* in place */
    CHECK(eq(apply("a=1&b=2", "z=0&y=1"), "a=1&b=2&z=0&y=1")); /* appended */
    CHECK(eq(apply("a=1&b=2&c=3", "b="), "a=1&c=3"));
    CHECK(eq(apply("a=1&b=2&c=3", "a=&b=&c="), ""));        /* every key removed */
    CHECK(eq(apply("a=1", "zz="), "a=1"));                  /* removing what is not there */
    CHECK(eq(apply("a=1&b=2", "b=&a=5&c=6"), "a=5&c=6"));
}

static void test_escaped_values(void)
{
    const char *old = "user=j%20doe&cart=a%26b%3Dc&empty%3D=x";
    const char *new = "user=j%20doe&cart=a%26b%3Dd&n%C3%A9=%E2%82%AC";
    const char *p = diff(old, new);

    CHECK(eq(p, "cart=a%26b%3Dd&n%C3%A9=%E2%82%AC&empty%3D="));
    CHECK(eq(apply(old, p), "user=j%20doe&cart=a%26b%3Dd&n%C3%A9=%E2%82%AC"));
}

static void test_prefix_keys(void)
{
    const char *old = "a=1&ab=2&abc=3&b=ab";
    CHECK(eq(diff(old, "a=1&ab=2&abc=4&b=ab"), "abc=4"));
    CHECK(eq(diff(old, "ab=2&abc=3&b=ab"), "a="));
    CHECK(eq(diff("a=1", "a=10"), "a=10"));
    CHECK(eq(diff("a=10", "a=1"), "a=1"));
    CHECK(eq(apply(old, "ab="), "a=1&abc=3&b=ab"));
    CHECK(eq(apply(old, "abcd=5&a=7"), "a=7&ab=2&abc=3&b=ab&abcd=5"));
    CHECK(eq(apply("abc=1", "ab=2"), "abc=1&ab=2"));
}

static void test_lenient_like_mod_session(void)
{
    /* empty segments are skipped, empty values mean "absent" in data */
    CHECK(eq(apply("a=1&&b=2&", ""), "a=1&b=2"));
    CHECK(eq(apply("&a=1", "&&"), "a=1"));
    CHECK(eq(apply("a=&b=2", ""), "b=2"));
    CHECK(eq(diff("a=&b=2", "b=2"), ""));
    CHECK(eq(diff("b=2", "a=&b=2"), ""));
    /* a repeated key: first place, last value */
    CHECK(eq(apply("a=1&b=2&a=3", ""), "a=3&b=2"));
    CHECK(eq(apply("a=1", "a=2&a=3"), "a=3"));
    CHECK(eq(apply("a=1", "a=2&a="), ""));
    CHECK(eq(apply("a=1", "a=&a=2"), "a=2"));
}

static void test_malformed(void)
{
    static const char *bad[] = { "a", "a=1&b", "=1", "a=1&=2", "a=1=2", "a==",
                                 "&=&", NULL };
    const char *out;
    int i;

    for (i = 0; bad[i]; i++) {
        CHECK(sc_kv_apply(pool, "x=1", bad[i], &out) == APR_EINVAL);
        CHECK(sc_kv_apply(pool, bad[i], "x=1", &out) == APR_EINVAL);
        CHECK(sc_kv_diff(pool, bad[i], "x=1", &out) == APR_EINVAL);
        CHECK(sc_kv_diff(pool, "x=1", bad[i], &out) == APR_EINVAL);
    }
}

/* ---- properties ------------------------------------------------------------- */

static unsigned int rng_state = 12345;

static unsigned int rnd(unsigned int n)
{
    /* xorshift32: a fixed seed gives the same run everywhere */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state % n;
}

static const char *rand_value(void)
{
    static const char *pieces[] = { "x", "%20", "%3D", "%26", "1", "abc", "%E2%82%AC" };
    int n = 1 + (int)rnd(4), i;
    const char *v = "";
    for (i = 0; i < n; i++)
        v = apr_pstrcat(pool, v, pieces[rnd(7)], NULL);
    return v;
}

/* A session over keys k0..k199, some missing, in a shuffled order. */
static const char *rand_session(const char **vals)
{
    int order[200], i;
    const char *s = "";

    for (i = 0; i < 200; i++)
        order[i] = i;
    for (i = 199; i > 0; i--) {
        int j = (int)rnd((unsigned int)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (i = 0; i < 200; i++) {
        int k = order[i];
        if (!vals[k])
            continue;
        s = apr_psprintf(pool, "%s%sk%d=%s", s, *s ? "&" : "", k, vals[k]);
    }
    return s;
}

static void test_property_roundtrip(void)
{
    const char *a[200], *b[200];
    int round, i, bad = 0;

    for (round = 0; round < 50; round++) {
        const char *old, *new, *p, *got;
        for (i = 0; i < 200; i++) {
            unsigned int dice;
            a[i] = rnd(4) ? rand_value() : NULL;
            dice = rnd(10);
            b[i] = dice < 5 ? a[i]                  /* unchanged */
                 : dice < 8 ? rand_value()          /* changed or added */
                 : NULL;                            /* removed */
        }
        old = rand_session(a);
        new = rand_session(b);
        p = diff(old, new);
        got = p ? apply(old, p) : NULL;
        if (!same_set(got, new))
            bad++;
        /* keys kept keep their place from old; nothing else changes */
        if (!eq(diff(old, old), "") || !eq(apply(old, ""), apply(old, NULL)))
            bad++;
        if (p && strlen(p) > strlen(old) + strlen(new) + 1)
            bad++;
    }
    CHECK(bad == 0);
}

/* sc_kv_normal(): exactly the data apply() can return unchanged. */
static void test_normal_form(void)
{
    static const char *const normal[] = { "a=1", "a=1&b=2", "k%3D=v%26w&x=y" };
    static const char *const not_normal[] = {
        "", "a=", "a=1&", "&a=1", "a=1&&b=2", "a=1&b=", "a=1&a=2", "a", "=1",
        "a=1=2", "a=1&b"
    };
    unsigned i;
    int round, bad = 0;

    for (i = 0; i < sizeof(normal) / sizeof(normal[0]); i++)
        CHECK(sc_kv_normal(pool, normal[i]) && eq(apply(normal[i], ""), normal[i]));
    for (i = 0; i < sizeof(not_normal) / sizeof(not_normal[0]); i++)
        CHECK(!sc_kv_normal(pool, not_normal[i]));
    CHECK(!sc_kv_normal(pool, NULL));
    /* whatever apply() returns (non-empty) is normal */
    for (round = 0; round < 50; round++) {
        const char *a[200], *got;
        for (i = 0; i < 200; i++)
            a[i] = rnd(3) ? rand_value() : NULL;
        got = apply(rand_session(a), "");
        if (got && *got && !sc_kv_normal(pool, got))
            bad++;
    }
    CHECK(bad == 0);
}

static void test_order_kept_in_place(void)
{
    const char *old = "k1=a&k2=b&k3=c&k4=d";
    const char *new = "k4=D&k3=c&k1=a&k5=e";
    CHECK(eq(apply(old, diff(old, new)), "k1=a&k3=c&k4=D&k5=e"));
}

static void test_commuting_patches(void)
{
    /* two requests loaded the same version and changed different keys */
    const char *base = "a=1&b=2&c=3&d=4";
    const char *p1 = diff(base, "a=10&b=2&c=3&d=4&x=1");      /* a, adds x */
    const char *p2 = diff(base, "a=1&c=3&d=4&y=2");           /* drops b, adds y */
    const char *one = apply(apply(base, p1), p2);
    const char *two = apply(apply(base, p2), p1);
    int round, i, bad = 0;

    CHECK(same_set(one, two));
    CHECK(same_set(one, "a=10&c=3&d=4&x=1&y=2"));

    /* and at random: split 200 keys between two writers */
    for (round = 0; round < 30; round++) {
        const char *a[200], *b1[200], *b2[200];
        const char *old, *q1, *q2, *r1, *r2;
        for (i = 0; i < 200; i++) {
            a[i] = rnd(3) ? rand_value() : NULL;
            b1[i] = b2[i] = a[i];
            if (rnd(3) == 0)
                (i % 2 ? b1 : b2)[i] = rnd(4) ? rand_value() : NULL;
        }
        old = rand_session(a);
        q1 = diff(old, rand_session(b1));
        q2 = diff(old, rand_session(b2));
        r1 = apply(apply(old, q1), q2);
        r2 = apply(apply(old, q2), q1);
        if (!same_set(r1, r2))
            bad++;
        /* both changes are in: everything from b1's keys and b2's keys */
        for (i = 0; i < 200; i++)
            a[i] = i % 2 ? b1[i] : b2[i];
        if (!same_set(r1, rand_session(a)))
            bad++;
    }
    CHECK(bad == 0);
}

static void test_large_session(void)
{
    /* 20000 keys: linear, not quadratic */
    char *old = apr_palloc(pool, 20000 * 16), *w = old;
    const char *new, *p, *got;
    int i;

    for (i = 0; i < 20000; i++)
        w += sprintf(w, "%skey%d=v%d", i ? "&" : "", i, i);
    new = apr_pstrcat(pool, old, "&extra=1", NULL);
    p = diff(old, new);
    CHECK(eq(p, "extra=1"));
    got = apply(old, "key5=&key19999=z");
    CHECK(got && strstr(got, "key19999=z") && !strstr(got, "key5=v5&"));
    CHECK(same_set(apply(old, p), new));
}

int main(void)
{
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    RUN(test_diff_basics);
    RUN(test_apply_basics);
    RUN(test_escaped_values);
    RUN(test_prefix_keys);
    RUN(test_lenient_like_mod_session);
    RUN(test_malformed);
    RUN(test_property_roundtrip);
    RUN(test_normal_form);
    RUN(test_order_kept_in_place);
    RUN(test_commuting_patches);
    RUN(test_large_session);
    apr_pool_destroy(pool);
    return sc_test_report("test_kv");
}
