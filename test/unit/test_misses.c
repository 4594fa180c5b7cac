/* Unit tests for sc_misses (ids recently found nowhere): remembered for
 * SC_MISSES_TTL and no longer; an unknown id is not "recent"; two ids in
 * one slot: the newer wins and the older is merely forgotten; many threads
 * at once keep every slot whole. Runs under ASan/UBSan. */
#include <stdio.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "sc_misses.h"
#include "sc_test.h"

#define T0 apr_time_from_sec(1000000)

static apr_pool_t *pool;

static void test_remembered_for_the_ttl(void)
{
    sc_misses *m;
    CHECK(sc_misses_create(&m, pool) == APR_SUCCESS);
    CHECK(!sc_misses_recent(m, "abc", T0));
    sc_misses_add(m, "abc", T0);
    CHECK(sc_misses_recent(m, "abc", T0));
    CHECK(sc_misses_recent(m, "abc", T0 + SC_MISSES_TTL - 1));
    CHECK(!sc_misses_recent(m, "abc", T0 + SC_MISSES_TTL));
    CHECK(!sc_misses_recent(m, "abd", T0));
}

static void test_a_slot_holds_the_newest(void)
{
    sc_misses *m;
    char id[32];
    int i, kept = 0;

    CHECK(sc_misses_create(&m, pool) == APR_SUCCESS);
    /* more ids than slots: the last SC_MISSES_SLOTS added are mostly
     * there, every one of them answers for itself only */
    for (i = 0; i < 4 * SC_MISSES_SLOTS; i++) {
        sprintf(id, "id%d", i);
        sc_misses_add(m, id, T0);
    }
    for (i = 3 * SC_MISSES_SLOTS; i < 4 * SC_MISSES_SLOTS; i++) {
        sprintf(id, "id%d", i);
        kept += sc_misses_recent(m, id, T0);
    }
    CHECK(kept > SC_MISSES_SLOTS / 2);
    sprintf(id, "id%d", 4 * SC_MISSES_SLOTS - 1);
    CHECK(sc_misses_recent(m, id, T0));
}

static sc_misses *shared;

static void *APR_THREAD_FUNC hammer(apr_thread_t *t, void *arg)
{
    char id[32];
    int i, n = *(int *)arg;
    for (i = 0; i < 20000; i++) {
        sprintf(id, "t%d-%d", n, i % 500);
        sc_misses_add(shared, id, T0);
        /* another thread may have taken the slot meanwhile: either is fine */
        (void)sc_misses_recent(shared, id, T0 + 1);
    }
    (void)t;
    return NULL;
}

static void test_threads(void)
{
    apr_thread_t *t[4];
    int n[4] = { 0, 1, 2, 3 }, i;
    apr_status_t rv;

    CHECK(sc_misses_create(&shared, pool) == APR_SUCCESS);
    for (i = 0; i < 4; i++)
        CHECK(apr_thread_create(&t[i], NULL, hammer, &n[i], pool) == APR_SUCCESS);
    for (i = 0; i < 4; i++)
        apr_thread_join(&rv, t[i]);
    /* after the storm, a lone writer is read back exactly */
    sc_misses_add(shared, "after", T0);
    CHECK(sc_misses_recent(shared, "after", T0));
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    RUN(test_remembered_for_the_ttl);
    RUN(test_a_slot_holds_the_newest);
    RUN(test_threads);
    apr_pool_destroy(pool);
    apr_terminate();
    return sc_test_report("test_misses");
}
