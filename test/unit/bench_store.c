/* bench_store.c - store figures (./build.sh bench): get+update rate of 1 KB
 * sessions from 1, 2 and 4 processes, and bytes of store per session. Prints
 * figures only; it passes or fails nothing. */
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "store_fixture.h"

#define SESSIONS_PER_PROC 1000
#define SECONDS           2

static apr_pool_t *pool;

/* Each process load+saves its own sessions round-robin for SECONDS. */
static long worker(store_fixture *f, int w, const char *data, apr_size_t len)
{
    apr_pool_t *keep, *p;
    apr_time_t end = apr_time_now() + apr_time_from_sec(SECONDS);
    char id[32];
    long ops = 0;
    sc_session g;

    apr_pool_create(&keep, NULL);
    apr_pool_create(&p, keep);
    fixture_child(f, keep);
    while (apr_time_now() < end) {
        int i;
        for (i = 0; i < 100; i++, ops++) {
            sprintf(id, "w%d-%ld", w, ops % SESSIONS_PER_PROC);
            if (sc_store_get(f->st, id, apr_time_now(), p, &g) != APR_SUCCESS
                || sc_store_update(f->st, id, data, len, apr_time_now() + apr_time_from_sec(600),
                                   apr_time_now(), NULL) != APR_SUCCESS)
                return -1;
        }
        apr_pool_clear(p);
    }
    return ops;
}

static void rate(int procs, const char *data, apr_size_t len)
{
    store_fixture f;
    int w, i, fd[2];
    long total = 0, ops;
    char id[32];

    fixture_open(&f, 64 << 20, pool);
    for (w = 0; w < procs; w++)
        for (i = 0; i < SESSIONS_PER_PROC; i++) {
            sprintf(id, "w%d-%d", w, i);
            sc_session s = fixture_session(id, data, apr_time_now() + apr_time_from_sec(600));
            sc_store_create(f.st, &s, apr_time_now());
        }
    if (pipe(fd) != 0)
        return;
    for (w = 0; w < procs; w++) {
        if (fork() == 0) {
            ops = worker(&f, w, data, len);
            if (write(fd[1], &ops, sizeof(ops)) != sizeof(ops))
                _exit(1);
            _exit(0);
        }
    }
    for (w = 0; w < procs; w++) {
        if (read(fd[0], &ops, sizeof(ops)) == sizeof(ops) && ops > 0)
            total += ops;
        wait(NULL);
    }
    close(fd[0]);
    close(fd[1]);
    printf("load+save %5zu B sessions, %d process%s: %9.0f sessions/s\n", len,
           procs, procs > 1 ? "es" : "  ", (double)total / SECONDS);
}

static void overhead(apr_size_t len)
{
    store_fixture f;
    char *data = apr_palloc(pool, len + 1), id[32];
    long n = 0;

    memset(data, 'x', len);
    data[len] = '\0';
    fixture_open(&f, 16 << 20, pool);
    for (;;) {
        sprintf(id, "%024ld", n);
        sc_session s = fixture_session(id, data, apr_time_now() + apr_time_from_sec(600));
        if (sc_store_create(f.st, &s, apr_time_now()) != APR_SUCCESS)
            break;
        n++;
    }
    printf("%6zu B sessions: %7ld fit in 16 MiB, %6.0f bytes of store each, "
           "overhead %5.0f bytes (%.0f%%)\n", len, n, (double)f.bytes / n,
           (double)f.bytes / n - len, 100.0 * ((double)f.bytes / n - len) / len);
}

int main(void)
{
    char *kb;
    apr_initialize();
    apr_pool_create(&pool, NULL);
    kb = apr_palloc(pool, 1025);
    memset(kb, 'k', 1024);
    kb[1024] = '\0';
    rate(1, kb, 1024);
    rate(2, kb, 1024);
    rate(4, kb, 1024);
    overhead(100);
    overhead(1024);
    overhead(10 * 1024);
    overhead(100 * 1024);
    apr_terminate();
    return 0;
}
