/* test_chan.c - the children-to-clusterd ring across real processes: records
 * arrive whole and in order from concurrent producers, answers reach their
 * waiter (and late ones nobody), a full ring makes producers wait a bounded
 * time, a waiter stops when the consumer that took its record is gone (and
 * waits on when its record is still in the ring, or its taker still
 * answers), a stopped consumer leaves the rest for the next, a producer
 * killed while waiting leaves the ring usable. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "sc_chan.h"
#include "sc_test.h"

static apr_pool_t *pool;
static apr_shm_t *shm;
static apr_global_mutex_t *lock;
static sc_chan *ch;

static void die(const char *what, apr_status_t rv)
{
    char buf[256];
    fprintf(stderr, "test_chan: %s: %s\n", what, apr_strerror(rv, buf, sizeof(buf)));
    exit(2);
}

/* A fresh channel for each test. */
static void open_chan(void)
{
    apr_status_t rv;
    if (shm)
        apr_shm_destroy(shm);
    if ((rv = apr_shm_create(&shm, sc_chan_bytes(), NULL, pool)) != APR_SUCCESS)
        die("apr_shm_create", rv);
    if ((rv = sc_chan_format(apr_shm_baseaddr_get(shm), apr_shm_size_get(shm)))
        != APR_SUCCESS
        || (rv = sc_chan_attach(&ch, apr_shm_baseaddr_get(shm), apr_shm_size_get(shm),
                                lock, pool)) != APR_SUCCESS)
        die("sc_chan_format/attach", rv);
}

static void in_child(void)
{
    apr_status_t rv = apr_global_mutex_child_init(&lock,
                                                  apr_global_mutex_lockfile(lock), pool);
    if (rv != APR_SUCCESS)
        die("apr_global_mutex_child_init", rv);
}

static int wait_child(pid_t pid)
{
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

static apr_status_t post(int type, int mode, const char *target, const char *data,
                         apr_size_t len, int wait, apr_interval_time_t timeout,
                         const volatile apr_uint32_t *epoch, sc_chan_reply *reply)
{
    sc_chan_msg m = { type, mode, 0, target };
    sc_chan_piece pieces[2] = { { data, len / 2 }, { data + len / 2, len - len / 2 } };
    sc_chan_reply ignored;
    return sc_chan_call(ch, &m, pieces, 2, wait, timeout, epoch,
                        reply ? reply : &ignored);
}

/* Wait (bounded) until `n` posts have had to wait for room: a producer is
 * then surely blocked in the full ring. */
static int room_waits_reach(apr_uint64_t n)
{
    int i;
    for (i = 0; i < 500; i++) {
        sc_chan_stats st;
        sc_chan_stats_get(ch, &st);
        if (st.room_waits >= n)
            return 1;
        apr_sleep(apr_time_from_msec(10));
    }
    return 0;
}

static apr_status_t take(apr_interval_time_t timeout, void **buf, sc_chan_rec *rec)
{
    return sc_chan_take(ch, 0, timeout, malloc, buf, rec);
}

static void test_roundtrip(void)
{
    sc_chan_rec rec;
    sc_chan_stats st;
    void *buf;

    open_chan();
    CHECK(take(apr_time_from_msec(20), &buf, &rec) == APR_TIMEUP);
    CHECK(post(5, 0, "node2", "hello, ring", 11, 0, 0, NULL, NULL) == APR_SUCCESS);
    CHECK(take(0, &buf, &rec) == APR_SUCCESS);
    CHECK(rec.msg.type == 5 && rec.msg.mode == 0 && rec.ticket == 0);
    CHECK(!strcmp(rec.msg.target, "node2"));
    CHECK(rec.len == 11 && !memcmp(rec.payload, "hello, ring", 11) && !rec.payload[11]);
    free(buf);
    sc_chan_stats_get(ch, &st);
    CHECK(st.posted == 1 && st.queued_bytes == 0 && st.room_timeouts == 0);
    /* a record larger than half the ring is refused before anything */
    CHECK(post(5, 0, "", "x", SC_CHAN_RING_BYTES / 2 + 1, 0, 0, NULL, NULL)
          == APR_EINVAL);
}

/* Producer i posts `n` records "i seq" padded to a size that varies up to
 * 40 KB, so records wrap around the ring many times. */
#define PRODUCERS 4
#define PER_PRODUCER 3000

static apr_size_t size_of(int i, int seq)
{
    return 16 + (apr_size_t)((seq * 7919 + i * 104729) % 40000);
}

static void fill(char *b, apr_size_t len, int i, int seq)
{
    apr_size_t k;
    int head = snprintf(b, 16, "%d %d ", i, seq);
    for (k = (apr_size_t)head; k < len; k++)
        b[k] = (char)('a' + (k + (apr_size_t)seq) % 26);
}

static void test_processes(void)
{
    pid_t pids[PRODUCERS];
    int next[PRODUCERS] = { 0 }, i, got = 0, bad = 0;
    static char b[40016];

    open_chan();
    for (i = 0; i < PRODUCERS; i++) {
        if ((pids[i] = fork()) == 0) {
            int seq, fails = 0;
            in_child();
            for (seq = 0; seq < PER_PRODUCER; seq++) {
                apr_size_t len = size_of(i, seq);
                fill(b, len, i, seq);
                fails += post(3, 0, "", b, len, 0, 0, NULL, NULL) != APR_SUCCESS;
            }
            _exit(fails ? 1 : 0);
        }
    }
    while (got < PRODUCERS * PER_PRODUCER) {
        sc_chan_rec rec;
        void *buf;
        int pi, seq;
        apr_status_t rv = take(apr_time_from_sec(10), &buf, &rec);
        if (rv != APR_SUCCESS) {
            fprintf(stderr, "  take failed after %d records: %d\n", got, rv);
            free(buf);
            for (i = 0; i < PRODUCERS; i++)    /* they would wait for room */
                kill(pids[i], SIGKILL);
            break;
        }
        got++;
        if (sscanf(rec.payload, "%d %d", &pi, &seq) != 2 || pi < 0 || pi >= PRODUCERS
            || seq != next[pi] || rec.len != size_of(pi, seq))
            bad++;
        else {
            fill(b, rec.len, pi, seq);
            bad += memcmp(b, rec.payload, rec.len) != 0;
            next[pi]++;
        }
        free(buf);
    }
    for (i = 0; i < PRODUCERS; i++)
        CHECK(wait_child(pids[i]) == 0);
    CHECK(got == PRODUCERS * PER_PRODUCER);
    CHECK(bad == 0);
    fprintf(stderr, "  %d records from %d processes, %d out of order or damaged\n",
            got, PRODUCERS, bad);
}

static void test_answer(void)
{
    sc_chan_rec rec;
    void *buf;
    pid_t pid;

    open_chan();
    if ((pid = fork()) == 0) {
        sc_chan_reply r;
        apr_status_t rv;
        in_child();
        rv = post(4, 2, "", "change", 6, 1, apr_time_from_sec(5), NULL, &r);
        if (rv != APR_SUCCESS || r.peers != 2 || r.confirmed != 2)
            _exit(1);
        /* the slot is free again: a second call works the same */
        rv = post(4, 2, "", "change", 6, 1, apr_time_from_sec(5), NULL, &r);
        _exit(rv == APR_EGENERAL && r.peers == 3 && r.confirmed == 1 ? 0 : 2);
    }
    CHECK(take(apr_time_from_sec(5), &buf, &rec) == APR_SUCCESS);
    CHECK(rec.ticket != 0);
    /* reports from two link threads in the order the threads ran them:
     * the one that counted the first member reports last, after the answer
     * (and the creator's own share, 0 confirmed, later still); the waiter,
     * stopped until both are in, still reads the answer */
    CHECK(kill(pid, SIGSTOP) == 0);
    sc_chan_progress(ch, rec.ticket, 2, 1);
    sc_chan_answer(ch, rec.ticket, 2, 2);
    sc_chan_progress(ch, rec.ticket, 2, 1);
    sc_chan_progress(ch, rec.ticket, 2, 0);
    CHECK(kill(pid, SIGCONT) == 0);
    free(buf);
    CHECK(take(apr_time_from_sec(5), &buf, &rec) == APR_SUCCESS);
    sc_chan_answer(ch, rec.ticket, 3, 1);
    free(buf);
    CHECK(wait_child(pid) == 0);
}

/* A waiter that times out reports the progress so far; the late answer is
 * dropped, and the slot serves the next call. */
static void test_timeout(void)
{
    sc_chan_rec rec;
    void *buf;
    apr_uint64_t first;
    pid_t pid;
    int fds[2];
    char c;

    open_chan();
    CHECK(pipe(fds) == 0);
    if ((pid = fork()) == 0) {
        sc_chan_reply r;
        apr_time_t t0 = apr_time_now();
        apr_status_t rv;
        in_child();
        rv = post(4, 2, "", "slow", 4, 1, apr_time_from_msec(300), NULL, &r);
        if (rv != APR_EGENERAL || r.peers != 2 || r.confirmed != 1
            || apr_time_now() - t0 < apr_time_from_msec(250))
            _exit(1);
        if (write(fds[1], "x", 1) != 1)
            _exit(3);
        rv = post(4, 2, "", "next", 4, 1, apr_time_from_sec(5), NULL, &r);
        _exit(rv == APR_SUCCESS && r.peers == 1 && r.confirmed == 1 ? 0 : 2);
    }
    CHECK(take(apr_time_from_sec(5), &buf, &rec) == APR_SUCCESS);
    first = rec.ticket;
    sc_chan_progress(ch, first, 2, 1);
    free(buf);
    CHECK(read(fds[0], &c, 1) == 1);           /* it gave up */
    CHECK(take(apr_time_from_sec(5), &buf, &rec) == APR_SUCCESS);
    sc_chan_answer(ch, first, 2, 2);            /* late: must change nothing */
    sc_chan_progress(ch, first, 9, 9);
    sc_chan_answer(ch, rec.ticket, 1, 1);
    free(buf);
    CHECK(wait_child(pid) == 0);
    close(fds[0]);
    close(fds[1]);
}

/* Nobody takes: posts wait SC_CHAN_ROOM_WAIT, then give up, counted; a
 * producer waiting for room gets in as soon as the consumer frees some. */
static void test_full(void)
{
    static char big[1024 * 1024];
    sc_chan_stats st;
    sc_chan_rec rec;
    apr_time_t t0;
    void *buf;
    pid_t pid;
    int n = 0;

    open_chan();
    while (n < 20 && post(3, 0, "", big, sizeof(big), 0, 0, NULL, NULL) == APR_SUCCESS)
        n++;
    CHECK(n == SC_CHAN_RING_BYTES / (int)sizeof(big) - 1);
    sc_chan_stats_get(ch, &st);
    CHECK(st.room_timeouts == 1 && st.room_waits == 1);
    if ((pid = fork()) == 0) {
        in_child();
        t0 = apr_time_now();
        _exit(post(3, 0, "", big, sizeof(big), 0, 0, NULL, NULL) == APR_SUCCESS
              && apr_time_now() - t0 < SC_CHAN_ROOM_WAIT ? 0 : 1);
    }
    CHECK(room_waits_reach(2));                 /* the child waits for room */
    CHECK(take(0, &buf, &rec) == APR_SUCCESS && rec.len == sizeof(big));
    free(buf);
    CHECK(wait_child(pid) == 0);
}

/* An epoch word in shared memory, as node->state->clusterd_starts. */
static volatile apr_uint32_t *epoch_word(apr_shm_t **word)
{
    volatile apr_uint32_t *epoch;
    if (apr_shm_create(word, sizeof(*epoch), NULL, pool) != APR_SUCCESS)
        die("apr_shm_create", APR_ENOMEM);
    epoch = apr_shm_baseaddr_get(*word);
    *epoch = 1;
    return epoch;
}

/* A waiter posts one record with `epoch`; exits 0 when the call returned
 * `want` in [min_ms, max_ms]. */
static pid_t waiter(volatile apr_uint32_t *epoch, apr_status_t want, int min_ms,
                    int max_ms)
{
    pid_t pid = fork();
    if (pid == 0) {
        sc_chan_reply r;
        apr_time_t t0 = apr_time_now();
        apr_status_t rv;
        apr_interval_time_t took;
        in_child();
        rv = post(4, 2, "", "x", 1, 1, apr_time_from_sec(5), epoch, &r);
        took = apr_time_now() - t0;
        _exit(rv == want && took >= apr_time_from_msec(min_ms)
              && took <= apr_time_from_msec(max_ms) ? 0 : 1);
    }
    return pid;
}

/* Wait (bounded) until something is in the ring. */
static int ring_holds_something(void)
{
    int i;
    for (i = 0; i < 500; i++) {
        sc_chan_stats st;
        sc_chan_stats_get(ch, &st);
        if (st.queued_bytes)
            return 1;
        apr_sleep(apr_time_from_msec(10));
    }
    return 0;
}

/* The consumer that took the record died (clusterd killed) and another
 * was started: the waiter stops at once, APR_EAGAIN. */
static void test_epoch_taker_gone(void)
{
    volatile apr_uint32_t *epoch;
    apr_shm_t *word;
    pid_t pid, consumer;

    open_chan();
    epoch = epoch_word(&word);
    pid = waiter(epoch, APR_EAGAIN, 0, 2000);
    if ((consumer = fork()) == 0) {
        sc_chan_rec rec;
        void *buf;
        _exit(take(apr_time_from_sec(5), &buf, &rec) == APR_SUCCESS && rec.ticket
              ? 0 : 1);                 /* and never answers */
    }
    CHECK(wait_child(consumer) == 0);
    *epoch = 2;
    CHECK(wait_child(pid) == 0);
    apr_shm_destroy(word);
}

/* The consumer was replaced before it took the record (a restart between
 * the post and the take): the waiter waits on, and the next consumer's
 * answer reaches it. */
static void test_epoch_record_left(void)
{
    volatile apr_uint32_t *epoch;
    apr_shm_t *word;
    sc_chan_rec rec;
    void *buf;
    pid_t pid;

    open_chan();
    epoch = epoch_word(&word);
    pid = waiter(epoch, APR_SUCCESS, 250, 4000);
    CHECK(ring_holds_something());
    *epoch = 2;                         /* replaced, the record still there */
    apr_sleep(apr_time_from_msec(300)); /* the waiter must not give up */
    CHECK(take(apr_time_from_sec(5), &buf, &rec) == APR_SUCCESS && rec.ticket);
    sc_chan_answer(ch, rec.ticket, 1, 1);
    free(buf);
    CHECK(wait_child(pid) == 0);
    apr_shm_destroy(word);
}

/* A consumer stopping in order still answers what it took, also after
 * its successor was started: the waiter gets that answer. */
static void test_epoch_taker_answers_late(void)
{
    volatile apr_uint32_t *epoch;
    apr_shm_t *word;
    sc_chan_rec rec;
    void *buf;
    pid_t pid;

    open_chan();
    epoch = epoch_word(&word);
    pid = waiter(epoch, APR_SUCCESS, 250, 4000);
    CHECK(take(apr_time_from_sec(5), &buf, &rec) == APR_SUCCESS && rec.ticket);
    CHECK(sc_chan_owed(ch) == 1);
    *epoch = 2;
    apr_sleep(apr_time_from_msec(300));
    sc_chan_answer(ch, rec.ticket, 2, 2);
    CHECK(sc_chan_owed(ch) == 0);
    free(buf);
    CHECK(wait_child(pid) == 0);
    apr_shm_destroy(word);
}

/* sc_chan_stop: a consumer asleep in take() returns APR_EOF at once (not
 * at its timeout), later takes too; what is in the ring stays for the
 * next consumer. */
typedef struct {
    apr_status_t rv;
    apr_interval_time_t took;
} stop_probe;

static void *APR_THREAD_FUNC sleeper(apr_thread_t *t, void *arg)
{
    stop_probe *pr = arg;
    sc_chan_rec rec;
    void *buf = NULL;
    apr_time_t t0 = apr_time_now();
    pr->rv = take(apr_time_from_sec(10), &buf, &rec);
    pr->took = apr_time_now() - t0;
    free(buf);
    (void)t;
    return NULL;
}

static void test_stop(void)
{
    stop_probe pr = { APR_SUCCESS, 0 };
    sc_chan *next;
    sc_chan_rec rec;
    apr_thread_t *t;
    apr_status_t trv;
    void *buf;

    open_chan();
    CHECK(apr_thread_create(&t, NULL, sleeper, &pr, pool) == APR_SUCCESS);
    apr_sleep(apr_time_from_msec(100));
    sc_chan_stop(ch);
    apr_thread_join(&trv, t);
    CHECK(pr.rv == APR_EOF && pr.took < apr_time_from_sec(2));
    CHECK(post(3, 0, "", "left", 4, 0, 0, NULL, NULL) == APR_SUCCESS);
    CHECK(take(apr_time_from_sec(1), &buf, &rec) == APR_EOF);
    free(buf);
    CHECK(sc_chan_attach(&next, apr_shm_baseaddr_get(shm), apr_shm_size_get(shm),
                         lock, pool) == APR_SUCCESS);
    CHECK(sc_chan_take(next, 0, apr_time_from_sec(1), malloc, &buf, &rec)
          == APR_SUCCESS && rec.len == 4 && !memcmp(rec.payload, "left", 4));
    free(buf);
    CHECK(sc_chan_owed(next) == 0);
}

/* A producer killed while it waits for room, and a waiter killed while it
 * waits for its answer: the ring goes on, and answering the dead waiter's
 * ticket harms nobody. */
static void test_killed(void)
{
    static char big[1024 * 1024];
    sc_chan_rec rec;
    void *buf;
    pid_t pid, waiter;
    int n = 0;

    open_chan();
    if ((waiter = fork()) == 0) {
        sc_chan_reply r;
        in_child();
        post(4, 2, "", "w", 1, 1, apr_time_from_sec(60), NULL, &r);
        _exit(0);
    }
    CHECK(take(apr_time_from_sec(5), &buf, &rec) == APR_SUCCESS && rec.ticket);
    free(buf);
    kill(waiter, SIGKILL);
    CHECK(wait_child(waiter) == 100 + SIGKILL);
    sc_chan_answer(ch, rec.ticket, 1, 1);
    while (n < 20 && post(3, 0, "", big, sizeof(big), 0, 0, NULL, NULL) == APR_SUCCESS)
        n++;
    if ((pid = fork()) == 0) {
        in_child();
        post(3, 0, "", big, sizeof(big), 0, 0, NULL, NULL);
        _exit(0);
    }
    CHECK(room_waits_reach(2));                 /* killed while it waits */
    kill(pid, SIGKILL);
    CHECK(wait_child(pid) == 100 + SIGKILL);
    while (n-- > 0) {
        CHECK(take(0, &buf, &rec) == APR_SUCCESS && rec.len == sizeof(big));
        free(buf);
    }
    CHECK(take(apr_time_from_msec(10), &buf, &rec) == APR_TIMEUP);
    CHECK(post(3, 0, "", "after", 5, 0, 0, NULL, NULL) == APR_SUCCESS);
    CHECK(take(0, &buf, &rec) == APR_SUCCESS && rec.len == 5);
    free(buf);
}

/* A lingering consumer is not woken by async records (it takes them when
 * the linger ends), but at once by one somebody waits for. */
static void test_linger(void)
{
    sc_chan_rec rec;
    apr_time_t t0;
    void *buf;
    pid_t pid;

    open_chan();
    if ((pid = fork()) == 0) {
        in_child();
        apr_sleep(apr_time_from_msec(50));
        _exit(post(3, 0, "", "async", 5, 0, 0, NULL, NULL) == APR_SUCCESS ? 0 : 1);
    }
    t0 = apr_time_now();
    CHECK(sc_chan_take(ch, apr_time_from_msec(400), apr_time_from_sec(5), malloc,
                       &buf, &rec) == APR_SUCCESS);
    CHECK(apr_time_now() - t0 >= apr_time_from_msec(390));    /* not woken */
    CHECK(rec.len == 5 && !rec.ticket);
    free(buf);
    CHECK(wait_child(pid) == 0);
    if ((pid = fork()) == 0) {
        sc_chan_reply r;
        in_child();
        apr_sleep(apr_time_from_msec(50));
        post(4, 2, "", "waited", 6, 1, apr_time_from_msec(200), NULL, &r);
        _exit(0);
    }
    t0 = apr_time_now();
    CHECK(sc_chan_take(ch, apr_time_from_sec(10), apr_time_from_sec(20), malloc,
                       &buf, &rec) == APR_SUCCESS);
    CHECK(apr_time_now() - t0 < apr_time_from_sec(8));         /* woken */
    CHECK(rec.len == 6 && rec.ticket);
    free(buf);
    CHECK(wait_child(pid) == 0);
}

/* A consumer woken with nothing new (a signal here; in life also a
 * producer's wake-up meant for an earlier sleep, arriving late) sleeps on:
 * take() waits its whole timeout. It returned at the first wake-up before,
 * and a consumer that trusted it stopped with records still coming. */
static void on_usr1(int sig) { (void)sig; }

static void test_spurious_wakeups(void)
{
    struct sigaction sa;
    sc_chan_rec rec;
    void *buf = NULL;
    apr_time_t t0;
    pid_t parent = getpid(), kid;

    open_chan();
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    if ((kid = fork()) == 0) {
        int k;
        for (k = 0; k < 5; k++) {
            usleep(50000);
            kill(parent, SIGUSR1);
        }
        _exit(0);
    }
    t0 = apr_time_now();
    CHECK(take(apr_time_from_msec(600), &buf, &rec) == APR_TIMEUP);
    CHECK(apr_time_now() - t0 >= apr_time_from_msec(590));
    free(buf);
    CHECK(wait_child(kid) == 0);
    signal(SIGUSR1, SIG_DFL);
}

int main(void)
{
    apr_status_t rv;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    if ((rv = apr_global_mutex_create(&lock, apr_psprintf(pool, "/tmp/sc_chan_lock.%ld",
                                      (long)getpid()), APR_LOCK_DEFAULT, pool))
        != APR_SUCCESS)
        die("apr_global_mutex_create", rv);
    RUN(test_roundtrip);
    RUN(test_processes);
    RUN(test_answer);
    RUN(test_timeout);
    RUN(test_full);
    RUN(test_epoch_taker_gone);
    RUN(test_epoch_record_left);
    RUN(test_epoch_taker_answers_late);
    RUN(test_stop);
    RUN(test_killed);
    RUN(test_linger);
    RUN(test_spurious_wakeups);
    apr_shm_destroy(shm);
    apr_pool_destroy(pool);
    apr_terminate();
    return sc_test_report("test_chan");
}
