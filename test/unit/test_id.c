/* Unit tests for sc_id: generation, strict parsing, cookie values. */
#include <string.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "sc_id.h"
#include "sc_test.h"

static apr_pool_t *pool;

static int is_url_safe(const char *s)
{
    for (; *s; s++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789-_", *s))
            return 0;
    return 1;
}

static void test_generate_shape_and_uniqueness(void)
{
    char ids[200][SC_ID_BASE_LEN + 1];
    int i, j, dup = 0;
    for (i = 0; i < 200; i++) {
        CHECK(sc_id_generate(ids[i]) == APR_SUCCESS);
        CHECK(strlen(ids[i]) == SC_ID_BASE_LEN);
        CHECK(is_url_safe(ids[i]));
        CHECK(!strchr(ids[i], '.'));
    }
    for (i = 0; i < 200; i++)
        for (j = i + 1; j < 200; j++)
            dup += !strcmp(ids[i], ids[j]);
    CHECK(dup == 0);
}

static void test_parse_good(void)
{
    char base[SC_ID_BASE_LEN + 1];
    const char *route;
    CHECK(sc_id_parse(pool, "abcdefghijklmnopqrstuvwx.node1", base, &route)
          == APR_SUCCESS);
    CHECK(!strcmp(base, "abcdefghijklmnopqrstuvwx"));
    CHECK(!strcmp(route, "node1"));
    CHECK(sc_id_parse(pool, "abcdefghijklmnopqrstuv-_", base, &route)
          == APR_SUCCESS);
    CHECK(!strcmp(route, ""));
}

static void test_parse_rejects_garbage(void)
{
    static const char *bad[] = {
        "", "short.node1", "abcdefghijklmnopqrstuvwx.", "abcdefghijklmnopqrstuvwxy",
        "abcdefghijklmnopqrstuvwx.node.1", "abcdefghijklmnopqrstuv/x.node1",
        "../../etc/passwd", "abcdefghijklmnopqrstuvwx.node1 ",
        "abcdefghijklmnopqrstuvwx.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "abcdefghijklmnopqrstuvwx.n%41", "abcdefghijk\nmnopqrstuvwx.node1", NULL
    };
    char base[SC_ID_BASE_LEN + 1];
    const char *route;
    int i;
    for (i = 0; bad[i]; i++)
        CHECK(sc_id_parse(pool, bad[i], base, &route) == APR_EINVAL);
    CHECK(sc_id_parse(pool, NULL, base, &route) == APR_EINVAL);
}

static void test_route_rules(void)
{
    CHECK(sc_route_valid("node1"));
    CHECK(sc_route_valid("a-b_C9"));
    CHECK(!sc_route_valid(""));
    CHECK(!sc_route_valid("has.dot"));
    CHECK(!sc_route_valid("has space"));
    CHECK(sc_route_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));      /* 31 */
    CHECK(!sc_route_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));    /* 32 */
}

static void test_cookie_value_round_trip(void)
{
    char id[SC_ID_BASE_LEN + 1], base[SC_ID_BASE_LEN + 1];
    const char *route, *v;
    CHECK(sc_id_generate(id) == APR_SUCCESS);
    v = sc_id_cookie_value(pool, id, "node2");
    CHECK(sc_id_parse(pool, v, base, &route) == APR_SUCCESS);
    CHECK(!strcmp(base, id) && !strcmp(route, "node2"));
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    RUN(test_generate_shape_and_uniqueness);
    RUN(test_parse_good);
    RUN(test_parse_rejects_garbage);
    RUN(test_route_rules);
    RUN(test_cookie_value_round_trip);
    apr_pool_destroy(pool);
    apr_terminate();
    return sc_test_report("test_id");
}
