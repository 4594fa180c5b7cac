/* Unit tests for sc_identity: the pairs of mod_session's encoded form, cut
 * as mod_session's own apr_strtok walk cuts them (identity_ref.h), on the
 * forms sessions take, on every odd placement of '&' and '=', and on 20,000
 * seeded random strings over those characters; a 10 KB value; and that the
 * split is in place (keys and values point into the buffer). ASan/UBSan. */
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "sc_identity.h"
#include "identity_ref.h"
#include "sc_test.h"

static apr_pool_t *pool;

static int same(const char *s)
{
    const char *want = identity_ref(pool, s), *got = identity_split(pool, s);
    if (strcmp(want, got))
        fprintf(stderr, "  input \"%s\": sc_identity gives other pairs than "
                "mod_session's walk\n", s);
    return !strcmp(want, got);
}

static void test_sessions(void)
{
    CHECK(!strcmp(identity_split(pool, "count=3&user=ann"),
                  "count\x01" "3\x02" "user\x01" "ann\x02"));
    CHECK(!strcmp(identity_split(pool, ""), ""));
    /* httpd >= 2.4.48: the value is the rest of the pair, '='s and all */
    CHECK(!strcmp(identity_split(pool, "x=b=c&y==d&==&z="),
                  "x\x01" "b=c\x02" "y\x01" "=d\x02" "z\x01" "\x03\x02"));
    CHECK(same("count=3"));
    CHECK(same("a=1&b=2&expiry=1700000000000000"));
    CHECK(same("k%3Dx=v%26y&k2=%25"));     /* escaped separators stay opaque */
    CHECK(same("pad=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx&count=12"));
}

static void test_odd_separators(void)
{
    static const char *const odd[] = {
        "&", "&&", "=", "==", "=&=", "a", "a=", "a==", "=a", "==a=b", "a=b=c",
        "a==b==c", "&a=1", "a=1&", "a=1&&b=2", "a=&b=2", "a&b", "a=1&=2&b=3",
        "&=&a&=b=&", "a=b=&c", "x=1&x=2&x=", "===&&&===", "a=\x01&b=\x02",
    };
    apr_size_t i;
    for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
        CHECK(same(odd[i]));
}

/* every string of up to 6 characters over "ab=&": all placements */
static void test_exhaustive_short(void)
{
    static const char alphabet[] = "ab=&";
    char s[8];
    int len, failed = 0;

    for (len = 0; len <= 6; len++) {
        long n, count = 1;
        int i;
        for (i = 0; i < len; i++)
            count *= 4;
        for (n = 0; n < count; n++) {
            long v = n;
            for (i = 0; i < len; i++, v /= 4)
                s[i] = alphabet[v % 4];
            s[len] = '\0';
            failed += !same(s);
        }
    }
    CHECK(failed == 0);
}

static void test_random(void)
{
    static const char alphabet[] = "ab%3D=&&==x";
    char s[64];
    int k, i, failed = 0;

    srand(4242);
    for (k = 0; k < 20000; k++) {
        int len = rand() % 63;
        for (i = 0; i < len; i++)
            s[i] = alphabet[rand() % (sizeof(alphabet) - 1)];
        s[len] = '\0';
        failed += !same(s);
    }
    CHECK(failed == 0);
}

static void test_big_value(void)
{
    char *s = apr_palloc(pool, 10020);
    memcpy(s, "count=7&pad=", 12);
    memset(s + 12, 'x', 10000);
    s[10012] = '\0';
    CHECK(same(s));
}

static void keep_first(void *baton, char *key, char *val)
{
    char **seen = baton;
    if (!seen[0]) {
        seen[0] = key;
        seen[1] = val;
    }
}

static void test_in_place(void)
{
    char buf[] = "==key==value=rest&b=2";
    char *seen[2] = { NULL, NULL };
    sc_identity_split(buf, keep_first, seen);
    CHECK(seen[0] == buf + 2 && !strcmp(seen[0], "key"));
    CHECK(seen[1] == buf + 6 && !strcmp(seen[1], "=value=rest"));
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    RUN(test_sessions);
    RUN(test_odd_separators);
    RUN(test_exhaustive_short);
    RUN(test_random);
    RUN(test_big_value);
    RUN(test_in_place);
    apr_pool_destroy(pool);
    apr_terminate();
    return sc_test_report("test_identity");
}
