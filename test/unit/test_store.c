/* Unit tests for sc_store: versions, touch, expiry, tombstones, 100 KB
 * sessions, a full store, concurrent writers in several processes, and
 * writers killed mid-write (copy-on-write). Runs under ASan/UBSan. */
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>

#include "store_fixture.h"
#include "sc_test.h"

#define SEC(n) apr_time_from_sec(n)
#define T0     SEC(1000000)             /* a fixed "now" for determinism */
#define TTL    SEC(300)

static apr_pool_t *pool;

static store_fixture fresh(apr_size_t bytes)
{
    store_fixture f;
    fixture_open(&f, bytes, pool);
    return f;
}

static void check_all_blocks_free(store_fixture *f)
{
    sc_store_stats st;
    sc_store_stats_get(f->st, &st);
    CHECK(st.blocks_free == st.blocks_total);
    CHECK(st.sessions == 0 && st.tombstones == 0);
}

static void test_format_rejects_bad_input(void)
{
    char small[1024];
    store_fixture f = fresh(1 << 20);
    sc_store *st;
    CHECK(sc_store_format(small, sizeof(small)) == APR_EINVAL);
    CHECK(sc_store_format(NULL, 1 << 20) == APR_EINVAL);
    /* wrong size for a formatted segment */
    CHECK(sc_store_attach(&st, apr_shm_baseaddr_get(f.shm), f.bytes - 8, f.locks,
                          pool) == APR_EINVAL);
    memset(small, 0x5a, sizeof(small));
    CHECK(sc_store_attach(&st, small, sizeof(small), f.locks, pool) == APR_EINVAL);
}

static void test_create_get_update_versions(void)
{
    store_fixture f = fresh(1 << 20);
    sc_session s = fixture_session("id-one", "count=1", T0 + SEC(60)), g;
    apr_uint64_t v = 0;

    CHECK(sc_store_create(f.st, &s, T0) == APR_SUCCESS);
    CHECK(sc_store_create(f.st, &s, T0) == APR_EEXIST);
    CHECK(sc_store_get(f.st, "id-one", T0, pool, &g) == APR_SUCCESS);
    CHECK(g.version == 1 && !g.tombstone && g.len == 7);
    CHECK(!strcmp(g.data, "count=1") && !strcmp(g.owner, "node1"));
    CHECK(g.created == T0 && g.expires == T0 + SEC(60));

    CHECK(sc_store_update(f.st, "id-one", "count=2&x=y", 11, T0 + SEC(90), T0 + 1, &v)
          == APR_SUCCESS);
    CHECK(v == 2);
    CHECK(sc_store_get(f.st, "id-one", T0 + 2, pool, &g) == APR_SUCCESS);
    CHECK(g.version == 2 && !strcmp(g.data, "count=2&x=y"));
    CHECK(g.created == T0 && g.expires == T0 + SEC(90));
    CHECK(!strcmp(g.owner, "node1"));

    CHECK(sc_store_get(f.st, "nope", T0, pool, &g) == APR_NOTFOUND);
    CHECK(sc_store_update(f.st, "nope", "a", 1, 0, T0, &v) == APR_NOTFOUND);
    CHECK(sc_store_get(f.st, "", T0, pool, &g) == APR_EINVAL);
}

static void test_many_sessions_share_buckets(void)
{
    store_fixture f = fresh(1 << 20);
    sc_store_stats st;
    sc_session g;
    char id[32], data[32];
    int i, ok = 1;

    for (i = 0; i < 2000; i++) {
        sprintf(id, "id%d", i);
        sprintf(data, "n=%d", i);
        sc_session s = fixture_session(id, data, T0 + SEC(60));
        ok &= sc_store_create(f.st, &s, T0) == APR_SUCCESS;
    }
    CHECK(ok);
    for (i = 0; i < 2000; i += 7) {
        sprintf(id, "id%d", i);
        sprintf(data, "n=%d", i);
        ok &= sc_store_get(f.st, id, T0, pool, &g) == APR_SUCCESS
              && !strcmp(g.data, data);
        ok &= sc_store_invalidate(f.st, id, T0 + TTL, T0) == APR_SUCCESS;
    }
    CHECK(ok);
    sc_store_stats_get(f.st, &st);
    CHECK(st.sessions == 2000 - 286 && st.tombstones == 286);
    for (i = 1; i < 2000; i += 7) {
        sprintf(id, "id%d", i);
        sprintf(data, "n=%d", i);
        ok &= sc_store_get(f.st, id, T0, pool, &g) == APR_SUCCESS
              && !strcmp(g.data, data) && !g.tombstone;
    }
    CHECK(ok);
}

static void test_touch_keeps_data_and_version(void)
{
    store_fixture f = fresh(1 << 20);
    sc_session s = fixture_session("t", "k=v", T0 + SEC(10)), g;

    CHECK(sc_store_create(f.st, &s, T0) == APR_SUCCESS);
    CHECK(sc_store_touch(f.st, "t", T0 + SEC(100), T0 + SEC(5)) == APR_SUCCESS);
    CHECK(sc_store_get(f.st, "t", T0 + SEC(50), pool, &g) == APR_SUCCESS);
    CHECK(g.version == 1 && !strcmp(g.data, "k=v") && g.expires == T0 + SEC(100));
    CHECK(sc_store_touch(f.st, "missing", T0, T0) == APR_NOTFOUND);
    /* an expired session cannot be touched back to life */
    CHECK(sc_store_touch(f.st, "t", T0 + SEC(500), T0 + SEC(200)) == APR_NOTFOUND);
}

static void test_expiry_and_sweep(void)
{
    store_fixture f = fresh(1 << 20);
    sc_session s = fixture_session("e", "k=v", T0 + SEC(1)), g;
    sc_session keep = fixture_session("keep", "k=w", T0 + SEC(1000));
    sc_sweep_result res;
    sc_store_stats st;
    apr_uint64_t v;

    CHECK(sc_store_create(f.st, &s, T0) == APR_SUCCESS);
    CHECK(sc_store_create(f.st, &keep, T0) == APR_SUCCESS);
    CHECK(sc_store_get(f.st, "e", T0 + SEC(2), pool, &g) == APR_NOTFOUND);
    CHECK(sc_store_update(f.st, "e", "k=x", 3, T0 + SEC(9), T0 + SEC(2), &v)
          == APR_NOTFOUND);
    CHECK(sc_store_sweep(f.st, T0 + SEC(2), TTL, &res) == APR_SUCCESS);
    CHECK(res.expired == 1 && res.dropped == 0);
    /* the expired session is now a tombstone: its id cannot be reused */
    CHECK(sc_store_get(f.st, "e", T0 + SEC(3), pool, &g) == APR_SUCCESS);
    CHECK(g.tombstone && g.len == 0 && g.version == 2);
    CHECK(sc_store_create(f.st, &s, T0 + SEC(3)) == APR_EEXIST);
    CHECK(sc_store_sweep(f.st, T0 + SEC(2) + TTL, TTL, &res) == APR_SUCCESS);
    CHECK(res.dropped == 1 && res.expired == 0);
    CHECK(sc_store_get(f.st, "keep", T0 + SEC(400), pool, &g) == APR_SUCCESS);
    sc_store_stats_get(f.st, &st);
    CHECK(st.sessions == 1 && st.tombstones == 0);
}

static void test_tombstone_blocks_resurrection(void)
{
    store_fixture f = fresh(1 << 20);
    sc_session s = fixture_session("dead", "a=1", T0 + SEC(60)), g;
    sc_sweep_result res;
    apr_uint64_t v;

    CHECK(sc_store_create(f.st, &s, T0) == APR_SUCCESS);
    CHECK(sc_store_invalidate(f.st, "dead", T0 + TTL, T0) == APR_SUCCESS);
    CHECK(sc_store_invalidate(f.st, "dead", T0 + TTL, T0) == APR_NOTFOUND);
    CHECK(sc_store_get(f.st, "dead", T0, pool, &g) == APR_SUCCESS);
    CHECK(g.tombstone && g.version == 2);
    CHECK(sc_store_update(f.st, "dead", "a=2", 3, T0 + SEC(60), T0, &v) == APR_NOTFOUND);
    CHECK(sc_store_touch(f.st, "dead", T0 + SEC(60), T0) == APR_NOTFOUND);
    CHECK(sc_store_create(f.st, &s, T0) == APR_EEXIST);
    CHECK(sc_store_sweep(f.st, T0 + TTL, TTL, &res) == APR_SUCCESS);
    CHECK(res.dropped == 1);
    CHECK(sc_store_get(f.st, "dead", T0 + TTL, pool, &g) == APR_NOTFOUND);
    check_all_blocks_free(&f);
}

static char *pattern(apr_size_t len, char c)
{
    char *d = apr_palloc(pool, len + 1);
    memset(d, c, len);
    d[len] = '\0';
    return d;
}

static void test_100k_sessions(void)
{
    store_fixture f = fresh(4 << 20);
    apr_size_t len = 100 * 1024;
    char *a = pattern(len, 'a'), *b = pattern(len + 333, 'b');
    sc_session s = fixture_session("big", a, T0 + SEC(60)), g;
    sc_store_stats st0, st1;
    apr_uint64_t v;
    int i;

    for (i = 0; i < (int)len; i += 4096)
        a[i] = (char)('A' + (i / 4096) % 26);   /* position-dependent bytes */
    sc_store_stats_get(f.st, &st0);
    CHECK(sc_store_create(f.st, &s, T0) == APR_SUCCESS);
    CHECK(sc_store_get(f.st, "big", T0, pool, &g) == APR_SUCCESS);
    CHECK(g.len == len && !memcmp(g.data, a, len));
    CHECK(sc_store_update(f.st, "big", b, len + 333, T0 + SEC(60), T0, &v)
          == APR_SUCCESS);
    CHECK(sc_store_get(f.st, "big", T0, pool, &g) == APR_SUCCESS);
    CHECK(g.len == len + 333 && !memcmp(g.data, b, len + 333) && g.version == 2);
    sc_store_stats_get(f.st, &st1);
    /* the old chain went back to the free list: only one copy is held */
    CHECK(st0.blocks_free - st1.blocks_free
          == (len + 333 + 120 + SC_STORE_BLOCK - 9) / (SC_STORE_BLOCK - 8));
    s.id[0] = 'x';
    s.len = SC_SESSION_MAX + 1;
    CHECK(sc_store_create(f.st, &s, T0) == APR_EINVAL);
}

static void test_full_store_refuses_never_evicts(void)
{
    store_fixture f = fresh(1 << 20);
    char *data = pattern(1000, 'd'), id[32];
    sc_store_stats st;
    sc_session g;
    int n = 0, intact = 1, i;
    apr_status_t rv = APR_SUCCESS;

    while (n < 100000) {
        sprintf(id, "full%d", n);
        sc_session s = fixture_session(id, data, T0 + SEC(60));
        if ((rv = sc_store_create(f.st, &s, T0)) != APR_SUCCESS)
            break;
        n++;
    }
    CHECK(rv == APR_ENOSPC);
    CHECK(n > 500);
    sc_store_stats_get(f.st, &st);
    CHECK(st.refused == 1 && st.sessions == (apr_uint32_t)n);
    for (i = 0; i < n; i++) {
        sprintf(id, "full%d", i);
        intact &= sc_store_get(f.st, id, T0, pool, &g) == APR_SUCCESS
                  && g.len == 1000 && !memcmp(g.data, data, 1000);
    }
    CHECK(intact);
    /* invalidation needs no new blocks, and it frees room for one more */
    CHECK(sc_store_invalidate(f.st, "full0", T0 + TTL, T0) == APR_SUCCESS);
    {
        sc_session s = fixture_session("one-more", data, T0 + SEC(60));
        CHECK(sc_store_create(f.st, &s, T0) == APR_SUCCESS);
    }
}

/* ---- several processes at once ------------------------------------------ */

#define WORKERS 4
#define ROUNDS  400

/* A value that proves it was written whole: "<tag>:<n>:<filler>:<n>". */
static const char *stamped(apr_pool_t *p, const char *tag, int n, apr_size_t fill)
{
    return apr_psprintf(p, "%s:%d:%s:%d", tag, n, pattern(fill, 'f'), n);
}

static int stamped_ok(const char *data)
{
    int a = -1, b = -2;
    const char *last = strrchr(data, ':');
    if (sscanf(strchr(data, ':') + 1, "%d", &a) != 1 || !last
        || sscanf(last + 1, "%d", &b) != 1)
        return 0;
    return a == b;
}

static int worker(store_fixture *f, int w)
{
    apr_pool_t *keep, *p;
    char id[32];
    int i, bad = 0;
    sc_session g;

    apr_pool_create(&keep, NULL);
    apr_pool_create(&p, keep);
    fixture_child(f, keep);
    sprintf(id, "own%d", w);
    {
        sc_session s = fixture_session(id, stamped(p, id, 0, 10), T0 + SEC(60));
        bad += sc_store_create(f->st, &s, T0) != APR_SUCCESS;
    }
    for (i = 1; i <= ROUNDS; i++) {
        const char *own = stamped(p, id, i, (apr_size_t)(i * 37 % 3000));
        const char *shared = stamped(p, "shared", i, (apr_size_t)(i * 53 % 5000));
        bad += sc_store_update(f->st, id, own, strlen(own), T0 + SEC(60), T0, NULL)
               != APR_SUCCESS;
        bad += sc_store_update(f->st, "shared", shared, strlen(shared),
                               T0 + SEC(60), T0, NULL) != APR_SUCCESS;
        if (sc_store_get(f->st, "shared", T0, p, &g) != APR_SUCCESS
            || !stamped_ok(g.data))
            bad++;
        if (i % 50 == 0) {
            sc_sweep_result res;
            bad += sc_store_sweep(f->st, T0, TTL, &res) != APR_SUCCESS;
        }
        apr_pool_clear(p);
    }
    return bad ? 1 : 0;
}

static void test_concurrent_writers(void)
{
    store_fixture f = fresh(8 << 20);
    sc_session s = fixture_session("shared", "shared:0::0", T0 + SEC(60)), g;
    pid_t pids[WORKERS];
    int w, status, failures = 0;
    char id[32];

    CHECK(sc_store_create(f.st, &s, T0) == APR_SUCCESS);
    for (w = 0; w < WORKERS; w++) {
        pids[w] = fork();
        if (pids[w] == 0)
            _exit(worker(&f, w));
    }
    for (w = 0; w < WORKERS; w++) {
        CHECK(waitpid(pids[w], &status, 0) == pids[w]);
        failures += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    CHECK(failures == 0);
    for (w = 0; w < WORKERS; w++) {
        sprintf(id, "own%d", w);
        CHECK(sc_store_get(f.st, id, T0, pool, &g) == APR_SUCCESS);
        CHECK(g.version == ROUNDS + 1 && stamped_ok(g.data));
    }
    CHECK(sc_store_get(f.st, "shared", T0, pool, &g) == APR_SUCCESS);
    CHECK(g.version == WORKERS * ROUNDS + 1 && stamped_ok(g.data));
    /* everything dropped: every block must be back (no leak, no double free) */
    for (w = 0; w < WORKERS; w++) {
        sprintf(id, "own%d", w);
        CHECK(sc_store_invalidate(f.st, id, T0, T0) == APR_SUCCESS);
    }
    CHECK(sc_store_invalidate(f.st, "shared", T0, T0) == APR_SUCCESS);
    {
        sc_sweep_result res;
        CHECK(sc_store_sweep(f.st, T0 + 1, TTL, &res) == APR_SUCCESS);
        CHECK(res.dropped == WORKERS + 1 && res.reclaimed == 0);
    }
    check_all_blocks_free(&f);
}

/* A child rewrites one 100 KB session between two patterns until it is
 * killed at a random moment; the session must always read back whole. */
static void test_writer_killed_mid_write(void)
{
    store_fixture f = fresh(4 << 20);
    apr_size_t len = 100 * 1024;
    char *a = pattern(len, 'a'), *b = pattern(len, 'b');
    sc_session s = fixture_session("cow", a, T0 + SEC(60)), g;
    sc_sweep_result res;
    apr_uint32_t reclaimed = 0;
    int run, whole = 1;

    CHECK(sc_store_create(f.st, &s, T0) == APR_SUCCESS);
    srand(42);
    for (run = 0; run < 40; run++) {
        pid_t pid = fork();
        if (pid == 0) {
            apr_pool_t *p;
            int i;
            apr_pool_create(&p, NULL);
            fixture_child(&f, p);
            for (i = 0; i < 1000000; i++)
                sc_store_update(f.st, "cow", i % 2 ? a : b, len, T0 + SEC(60), T0,
                                NULL);
            _exit(0);
        }
        usleep(1000 + rand() % 4000);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        whole &= sc_store_get(f.st, "cow", T0, pool, &g) == APR_SUCCESS
                 && g.len == len && (!memcmp(g.data, a, len) || !memcmp(g.data, b, len));
        CHECK(sc_store_sweep(f.st, T0, TTL, &res) == APR_SUCCESS);
        reclaimed += res.reclaimed;
    }
    CHECK(whole);
    fprintf(stderr, "  40 kills mid-write: %u leaked blocks reclaimed\n", reclaimed);
    CHECK(reclaimed > 0);
    CHECK(sc_store_invalidate(f.st, "cow", T0, T0) == APR_SUCCESS);
    CHECK(sc_store_sweep(f.st, T0 + 1, TTL, &res) == APR_SUCCESS);
    check_all_blocks_free(&f);
}


static sc_session replica(const char *id, const char *data, apr_uint64_t version,
                          int tombstone)
{
    sc_session s = fixture_session(id, data, T0 + SEC(60));
    s.version = version;
    s.tombstone = tombstone;
    s.created = T0 - SEC(1);
    return s;
}

static void test_put_newer_orders_replicas(void)
{
    store_fixture f = fresh(1 << 20);
    sc_session v3 = replica("r", "k=3", 3, 0), v2 = replica("r", "k=2", 2, 0);
    sc_session v5 = replica("r", "k=5", 5, 0), tomb4 = replica("r", "", 4, 1), g;
    sc_store_stats st;

    CHECK(sc_store_put_newer(f.st, &v3, T0) == APR_SUCCESS);
    CHECK(sc_store_get(f.st, "r", T0, pool, &g) == APR_SUCCESS);
    CHECK(g.version == 3 && !strcmp(g.data, "k=3") && g.created == T0 - SEC(1));
    CHECK(sc_store_put_newer(f.st, &v2, T0) == SC_STORE_STALE);     /* reordered */
    CHECK(sc_store_put_newer(f.st, &v3, T0) == SC_STORE_STALE);     /* duplicate */
    CHECK(sc_store_put_newer(f.st, &tomb4, T0) == APR_SUCCESS);     /* invalidated */
    CHECK(sc_store_get(f.st, "r", T0, pool, &g) == APR_SUCCESS && g.tombstone);
    CHECK(sc_store_put_newer(f.st, &v3, T0) == SC_STORE_STALE);     /* no resurrection */
    sc_store_stats_get(f.st, &st);
    CHECK(st.sessions == 0 && st.tombstones == 1);
    /* a tombstone for a session never seen still blocks its late copies */
    {
        sc_session t = replica("unseen", "", 7, 1), late = replica("unseen", "x=1", 6, 0);
        CHECK(sc_store_put_newer(f.st, &t, T0) == APR_SUCCESS);
        CHECK(sc_store_put_newer(f.st, &late, T0) == SC_STORE_STALE);
    }
    /* invalidation is final: not even a newer live copy (the other side of
     * a partition kept writing) brings it back */
    CHECK(sc_store_put_newer(f.st, &v5, T0) == SC_STORE_STALE);
    CHECK(sc_store_get(f.st, "r", T0, pool, &g) == APR_SUCCESS && g.tombstone);
    /* ... and an older tombstone still ends a newer live copy */
    {
        sc_session live = replica("q", "k=9", 9, 0), t = replica("q", "", 6, 1);
        CHECK(sc_store_put_newer(f.st, &live, T0) == APR_SUCCESS);
        CHECK(sc_store_put_newer(f.st, &t, T0) == APR_SUCCESS);
        CHECK(sc_store_get(f.st, "q", T0, pool, &g) == APR_SUCCESS && g.tombstone);
    }
    /* newer wins among live copies; at one version two writers are ordered
     * by route, whichever arrives first */
    {
        sc_session a = replica("w", "k=a", 4, 0), b = replica("w", "k=b", 4, 0);
        sc_session n = replica("w", "k=n", 5, 0);
        apr_cpystrn(a.owner, "node1", sizeof(a.owner));
        apr_cpystrn(b.owner, "node3", sizeof(b.owner));
        CHECK(sc_store_put_newer(f.st, &a, T0) == APR_SUCCESS);
        CHECK(sc_store_put_newer(f.st, &b, T0) == APR_SUCCESS);
        CHECK(sc_store_put_newer(f.st, &a, T0) == SC_STORE_STALE);
        CHECK(sc_store_get(f.st, "w", T0, pool, &g) == APR_SUCCESS
              && !strcmp(g.data, "k=b"));
        CHECK(sc_store_put_newer(f.st, &n, T0) == APR_SUCCESS);
        CHECK(sc_store_get(f.st, "w", T0, pool, &g) == APR_SUCCESS
              && g.version == 5 && !strcmp(g.data, "k=n"));
    }
    v5.version = 0;
    CHECK(sc_store_put_newer(f.st, &v5, T0) == APR_EINVAL);
    v5.version = 9;
    v5.tombstone = 1;                   /* a tombstone carries no data */
    CHECK(sc_store_put_newer(f.st, &v5, T0) == APR_EINVAL);
}

static void test_replace_only_from_base(void)
{
    store_fixture f = fresh(1 << 20);
    sc_session s = fixture_session("cas", "a=1", T0 + SEC(60)), g;

    CHECK(sc_store_create(f.st, &s, T0) == APR_SUCCESS);
    s.data = "a=2";
    s.len = 3;
    apr_cpystrn(s.owner, "node2", sizeof(s.owner));
    CHECK(sc_store_replace(f.st, &s, 1, T0) == APR_SUCCESS);
    CHECK(sc_store_replace(f.st, &s, 1, T0) == SC_STORE_STALE);
    CHECK(sc_store_get(f.st, "cas", T0, pool, &g) == APR_SUCCESS);
    CHECK(g.version == 2 && !strcmp(g.data, "a=2") && !strcmp(g.owner, "node2"));
    CHECK(g.created == T0);
    CHECK(sc_store_invalidate(f.st, "cas", T0 + TTL, T0) == APR_SUCCESS);
    CHECK(sc_store_replace(f.st, &s, 3, T0) == APR_NOTFOUND);
}

typedef struct { int live; int seen_dead; } visit_count;

static int count_visit(void *baton, const sc_session *s)
{
    visit_count *c = baton;
    c->live++;
    c->seen_dead += s->tombstone || strncmp(s->data, "v=", 2) != 0;
    return 0;
}

static int stop_at_three(void *baton, const sc_session *s)
{
    (void)s;
    return ++*(int *)baton == 3;
}

static void test_foreach_visits_live_sessions(void)
{
    store_fixture f = fresh(1 << 20);
    visit_count c = {0, 0};
    char id[16];
    int i, n = 0;

    for (i = 0; i < 300; i++) {
        sprintf(id, "f%d", i);
        sc_session s = fixture_session(id, "v=1", T0 + SEC(i % 3 ? 60 : 1));
        CHECK(sc_store_create(f.st, &s, T0) == APR_SUCCESS);
    }
    for (i = 1; i < 300; i += 3) {
        sprintf(id, "f%d", i);
        CHECK(sc_store_invalidate(f.st, id, T0 + TTL, T0) == APR_SUCCESS);
    }
    /* at T0+2s: 100 expired (i%3==0), 100 invalidated, 100 live */
    CHECK(sc_store_foreach(f.st, T0 + SEC(2), pool, count_visit, &c) == APR_SUCCESS);
    CHECK(c.live == 100 && c.seen_dead == 0);
    CHECK(sc_store_foreach(f.st, T0 + SEC(2), pool, stop_at_three, &n) == APR_SUCCESS);
    CHECK(n == 3);
}

/* Four processes each bump their own slot of one shared session by
 * read-modify-write with sc_store_replace; not one increment may be lost. */
#define CAS_ROUNDS 300

static int cas_worker(store_fixture *f, int w)
{
    apr_pool_t *keep, *p;
    int i, bad = 0;

    apr_pool_create(&keep, NULL);
    apr_pool_create(&p, keep);
    fixture_child(f, keep);
    for (i = 0; i < CAS_ROUNDS; i++) {
        int tries;
        for (tries = 0; tries < 10000; tries++) {
            sc_session g;
            int slot[WORKERS];
            apr_status_t rv;
            apr_pool_clear(p);
            if (sc_store_get(f->st, "cas", T0, p, &g) != APR_SUCCESS
                || sscanf(g.data, "%d %d %d %d", &slot[0], &slot[1], &slot[2],
                          &slot[3]) != WORKERS) {
                bad++;
                break;
            }
            slot[w]++;
            g.data = apr_psprintf(p, "%d %d %d %d", slot[0], slot[1], slot[2],
                                  slot[3]);
            g.len = strlen(g.data);
            rv = sc_store_replace(f->st, &g, g.version, T0);
            if (rv == APR_SUCCESS)
                break;
            if (rv != SC_STORE_STALE) {
                bad++;
                break;
            }
        }
    }
    return bad ? 1 : 0;
}

static void test_concurrent_read_modify_write(void)
{
    store_fixture f = fresh(4 << 20);
    sc_session s = fixture_session("cas", "0 0 0 0", T0 + SEC(60)), g;
    pid_t pids[WORKERS];
    int w, status, failures = 0, slot[WORKERS];

    CHECK(sc_store_create(f.st, &s, T0) == APR_SUCCESS);
    for (w = 0; w < WORKERS; w++) {
        pids[w] = fork();
        if (pids[w] == 0)
            _exit(cas_worker(&f, w));
    }
    for (w = 0; w < WORKERS; w++) {
        CHECK(waitpid(pids[w], &status, 0) == pids[w]);
        failures += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    CHECK(failures == 0);
    CHECK(sc_store_get(f.st, "cas", T0, pool, &g) == APR_SUCCESS);
    CHECK(sscanf(g.data, "%d %d %d %d", &slot[0], &slot[1], &slot[2], &slot[3]) == 4);
    for (w = 0; w < WORKERS; w++)
        CHECK(slot[w] == CAS_ROUNDS);
    CHECK(g.version == 1 + WORKERS * CAS_ROUNDS);
}

/* Backup manager entries: a proxy is a location without data. */
static void test_proxy_entries(void)
{
    store_fixture f = fresh(1 << 20);
    sc_session px = replica("p", "", 4, 0), data4 = replica("p", "k=4", 4, 0), g;
    sc_sweep_result res;
    sc_store_stats st;
    apr_uint64_t v;

    px.proxy = 1;
    apr_cpystrn(px.backup, "node2", sizeof(px.backup));
    CHECK(sc_store_put_newer(f.st, &px, T0) == APR_SUCCESS);
    CHECK(sc_store_get(f.st, "p", T0, pool, &g) == APR_SUCCESS);
    CHECK(g.proxy && !g.tombstone && g.len == 0 && !strcmp(g.backup, "node2")
          && !strcmp(g.owner, "node1") && g.version == 4);
    /* nobody writes data onto a proxy but a copy of the session */
    CHECK(sc_store_update(f.st, "p", "x=1", 3, T0 + SEC(60), T0, &v) == APR_NOTFOUND);
    data4.version = 4;
    CHECK(sc_store_replace(f.st, &data4, 4, T0) == APR_NOTFOUND);
    CHECK(sc_store_touch(f.st, "p", T0 + SEC(90), T0) == APR_NOTFOUND);
    /* a fetched copy of the same version replaces the proxy... */
    CHECK(sc_store_put_newer(f.st, &data4, T0) == APR_SUCCESS);
    CHECK(sc_store_get(f.st, "p", T0, pool, &g) == APR_SUCCESS);
    CHECK(!g.proxy && !strcmp(g.data, "k=4"));
    /* ...but a location of the same version never drops the data */
    CHECK(sc_store_put_newer(f.st, &px, T0) == SC_STORE_STALE);
    px.version = 5;
    CHECK(sc_store_put_newer(f.st, &px, T0) == APR_SUCCESS);
    sc_store_stats_get(f.st, &st);
    CHECK(st.sessions == 1 && st.tombstones == 0);
    /* data with a proxy flag is refused */
    data4.proxy = 1;
    data4.version = 9;
    CHECK(sc_store_put_newer(f.st, &data4, T0) == APR_EINVAL);
    /* an expired proxy goes without a tombstone */
    CHECK(sc_store_sweep(f.st, T0 + SEC(61), SEC(300), &res) == APR_SUCCESS);
    CHECK(res.dropped == 1 && res.expired == 0);
    CHECK(sc_store_get(f.st, "p", T0 + SEC(61), pool, &g) == APR_NOTFOUND);
    sc_store_stats_get(f.st, &st);
    CHECK(st.sessions == 0 && st.tombstones == 0);
    check_all_blocks_free(&f);
}

static void test_sweep_due_once_per_interval(void)
{
    store_fixture f = fresh(1 << 20);
    CHECK(sc_store_sweep_due(f.st, T0, SEC(5)) == 1);
    CHECK(sc_store_sweep_due(f.st, T0 + SEC(1), SEC(5)) == 0);
    CHECK(sc_store_sweep_due(f.st, T0 + SEC(5), SEC(5)) == 1);
}

/* Under pressure only new sessions go, oldest expiry first, until the
 * asked-for room is free; a session that came back (touched or replaced),
 * tombstones and old-style sessions stay; new proxies go too. */
static void test_evict_new_oldest_first_never_returned(void)
{
    store_fixture f = fresh(1 << 20);
    char *data = pattern(1000, 'e'), id[32];
    sc_store_stats st;
    sc_session g;
    apr_uint32_t evicted = 0, before;
    int n = 0, i, kept_returned = 1;

    /* 40 sessions that came back, then new ones until the store is full */
    for (i = 0; i < 40; i++) {
        sprintf(id, "back%d", i);
        sc_session s = fixture_session(id, data, T0 + SEC(60));
        s.fresh = 1;
        CHECK(sc_store_create(f.st, &s, T0) == APR_SUCCESS);
        CHECK(sc_store_get(f.st, id, T0, pool, &g) == APR_SUCCESS && g.fresh);
        if (i % 2)
            CHECK(sc_store_touch(f.st, id, T0 + SEC(1800), T0) == APR_SUCCESS);
        else {
            g.fresh = 0;                /* what the provider does */
            CHECK(sc_store_replace(f.st, &g, 1, T0) == APR_SUCCESS);
        }
        CHECK(sc_store_get(f.st, id, T0, pool, &g) == APR_SUCCESS && !g.fresh);
    }
    for (;;) {
        sprintf(id, "new%d", n);
        /* created a millisecond apart: the expiry orders them */
        sc_session s = fixture_session(id, data, T0 + SEC(60) + n * 1000);
        s.fresh = 1;
        if (sc_store_create(f.st, &s, T0) != APR_SUCCESS)
            break;
        n++;
    }
    CHECK(n > 100);
    sc_store_stats_get(f.st, &st);
    before = st.blocks_free;
    /* nothing to do when there is room enough */
    CHECK(sc_store_evict_new(f.st, T0, before, pool, &evicted) == APR_SUCCESS
          && evicted == 0);
    CHECK(sc_store_evict_new(f.st, T0, st.blocks_total / 5, pool, &evicted)
          == APR_SUCCESS);
    sc_store_stats_get(f.st, &st);
    CHECK(evicted > 0 && st.blocks_free >= st.blocks_total / 5);
    CHECK(st.evicted == evicted);
    /* exactly the oldest ones went */
    for (i = 0; i < n; i++) {
        sprintf(id, "new%d", i);
        CHECK((sc_store_get(f.st, id, T0, pool, &g) == APR_NOTFOUND)
              == (i < (int)evicted));
    }
    for (i = 0; i < 40; i++) {
        sprintf(id, "back%d", i);
        kept_returned &= sc_store_get(f.st, id, T0, pool, &g) == APR_SUCCESS
                         && g.len == 1000;
    }
    CHECK(kept_returned);
    /* a store of returned sessions only: nothing is evicted */
    for (i = (int)evicted; i < n; i++) {
        sprintf(id, "new%d", i);
        CHECK(sc_store_touch(f.st, id, T0 + SEC(1800), T0) == APR_SUCCESS);
    }
    CHECK(sc_store_evict_new(f.st, T0, st.blocks_total, pool, &evicted) == APR_SUCCESS
          && evicted == 0);
    /* that scan found nothing: none again within the second */
    CHECK(sc_store_invalidate(f.st, "back0", T0 + TTL, T0) == APR_SUCCESS);
    {
        sc_session s = fixture_session("late-new", "k=v", T0 + SEC(60));
        s.fresh = 1;
        CHECK(sc_store_create(f.st, &s, T0) == APR_SUCCESS);
    }
    CHECK(sc_store_evict_new(f.st, T0, st.blocks_total, pool, &evicted) == APR_SUCCESS
          && evicted == 0);
    CHECK(sc_store_evict_new(f.st, T0 + SEC(1), st.blocks_total, pool, &evicted)
          == APR_SUCCESS && evicted == 1);
}

/* A new session that expires leaves no tombstone; one that came back does. */
static void test_new_sessions_expire_without_tombstone(void)
{
    store_fixture f = fresh(1 << 20);
    sc_session a = fixture_session("new-a", "k=v", T0 + SEC(30));
    sc_session b = fixture_session("back-b", "k=v", T0 + SEC(30));
    sc_session px = fixture_session("new-proxy", "", T0 + SEC(30)), g;
    sc_sweep_result res;
    sc_store_stats st;

    a.fresh = b.fresh = 1;
    CHECK(sc_store_create(f.st, &a, T0) == APR_SUCCESS);
    CHECK(sc_store_create(f.st, &b, T0) == APR_SUCCESS);
    CHECK(sc_store_touch(f.st, "back-b", T0 + SEC(40), T0 + SEC(1)) == APR_SUCCESS);
    px.proxy = 1;
    px.fresh = 1;
    px.version = 1;
    CHECK(sc_store_put_newer(f.st, &px, T0) == APR_SUCCESS);
    CHECK(sc_store_get(f.st, "new-proxy", T0, pool, &g) == APR_SUCCESS
          && g.proxy && g.fresh);
    CHECK(sc_store_sweep(f.st, T0 + SEC(41), TTL, &res) == APR_SUCCESS);
    CHECK(res.new_expired == 1 && res.expired == 1 && res.dropped == 1);
    CHECK(sc_store_get(f.st, "new-a", T0 + SEC(41), pool, &g) == APR_NOTFOUND);
    CHECK(sc_store_get(f.st, "back-b", T0 + SEC(41), pool, &g) == APR_SUCCESS
          && g.tombstone);
    sc_store_stats_get(f.st, &st);
    CHECK(st.tombstones == 1 && st.sessions == 0 && st.new_expired == 1);
}

/* Periodic duties and "how many since the last line", across callers. */
static void test_due_and_since(void)
{
    store_fixture f = fresh(1 << 20);
    CHECK(sc_store_due(f.st, SC_STORE_DUE_PRESSURE, T0, SEC(10)) == 1);
    CHECK(sc_store_due(f.st, SC_STORE_DUE_PRESSURE, T0 + SEC(9), SEC(10)) == 0);
    CHECK(sc_store_due(f.st, SC_STORE_DUE_FULL, T0 + SEC(9), SEC(10)) == 1);
    CHECK(sc_store_due(f.st, SC_STORE_DUE_PRESSURE, T0 + SEC(10), SEC(10)) == 1);
    CHECK(sc_store_since(f.st, SC_STORE_SEEN_EVICTED, 7) == 7);
    CHECK(sc_store_since(f.st, SC_STORE_SEEN_EVICTED, 12) == 5);
    CHECK(sc_store_since(f.st, SC_STORE_SEEN_REFUSED, 3) == 3);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    RUN(test_format_rejects_bad_input);
    RUN(test_create_get_update_versions);
    RUN(test_many_sessions_share_buckets);
    RUN(test_touch_keeps_data_and_version);
    RUN(test_expiry_and_sweep);
    RUN(test_tombstone_blocks_resurrection);
    RUN(test_100k_sessions);
    RUN(test_full_store_refuses_never_evicts);
    RUN(test_concurrent_writers);
    RUN(test_writer_killed_mid_write);
    RUN(test_sweep_due_once_per_interval);
    RUN(test_put_newer_orders_replicas);
    RUN(test_replace_only_from_base);
    RUN(test_foreach_visits_live_sessions);
    RUN(test_concurrent_read_modify_write);
    RUN(test_proxy_entries);
    RUN(test_evict_new_oldest_first_never_returned);
    RUN(test_new_sessions_expire_without_tombstone);
    RUN(test_due_and_since);
    apr_pool_destroy(pool);
    apr_terminate();
    return sc_test_report("test_store");
}
