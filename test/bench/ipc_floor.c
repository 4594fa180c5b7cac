/* ipc_floor.c - the least CPU this machine's kernel takes for the messages
 * one answered change needs, whatever a module does around them.
 *
 *   ipc_floor [--count N] [--rounds R] [--spinners K]
 *
 * An ack/sync save makes, per member asked: the change to the member and its
 * answer back over TCP (one round trip between two processes), and once per
 * save the child's wake of clusterd and clusterd's wake of the child (one
 * round trip through a futex in shared memory, as sc_chan does). This
 * measures both bare, between two processes of their own, with nothing
 * else in the messages: a TCP round trip on loopback (TCP_NODELAY, a
 * 115-byte message and a 56-byte answer: a counter change's sealed frame
 * and its answer as clusterd writes them) and a futex round trip. CPU is
 * user + system time of both ends (getrusage, wait4) per round trip; each
 * is measured R times and the median and range printed, first on a quiet
 * machine and then with K processes spinning (default: one per CPU), as
 * under a benchmark's load, when no CPU is idle.
 *
 * Why this exists: it tells whether a per-change CPU target can be met by
 * any design that answers each change after the member's answer, on this
 * machine: no module does less than the kernel does for its messages.
 * Figures only; it fails only if it cannot measure. Every process it
 * starts ends within TIME_LIMIT, whatever happens to the others.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHANGE_BYTES   115     /* a counter change's frame, sealed */
#define ANSWER_BYTES   56      /* its answer, sealed */
#define ROUNDS_MAX     99
#define SPINNERS_MAX   64
#define TIME_LIMIT     120     /* seconds for the whole run, whatever N is */

typedef struct {
    double cpu_us;             /* both ends, per round trip */
    double wall_us;
} trip_cost;

static void die(const char *what)
{
    fprintf(stderr, "ipc_floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double seconds(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static double cpu_of(const struct rusage *r)
{
    return seconds(&r->ru_utime) + seconds(&r->ru_stime);
}

static double self_cpu(void)
{
    struct rusage r;
    if (getrusage(RUSAGE_SELF, &r))
        die("getrusage");
    return cpu_of(&r);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* All n bytes read into buf (out == 0) or written from it (out == 1). */
static void transfer(int fd, char *buf, size_t n, int out)
{
    while (n) {
        ssize_t done = out ? write(fd, buf, n) : read(fd, buf, n);
        if (done <= 0) {
            if (done < 0 && errno == EINTR)
                continue;
            die(out ? "write" : "read");
        }
        buf += done;
        n -= (size_t)done;
    }
}

/* The echo end's CPU, reaped, plus ours since `cpu0`. */
static trip_cost settle(pid_t echo, double cpu0, double t0, long count)
{
    struct rusage r;
    int status;
    trip_cost c;
    double mine = self_cpu() - cpu0, wall = now() - t0;

    if (wait4(echo, &status, 0, &r) != echo)
        die("wait4");
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "ipc_floor: the echo process failed\n");
        exit(1);
    }
    c.cpu_us = (mine + cpu_of(&r)) * 1e6 / (double)count;
    c.wall_us = wall * 1e6 / (double)count;
    return c;
}

static void nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
        die("TCP_NODELAY");
}

/* `count` changes and answers over one loopback TCP connection. */
static trip_cost tcp_trips(long count)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    char buf[CHANGE_BYTES + ANSWER_BYTES];
    int lfd, fd;
    pid_t echo;
    double cpu0, t0;
    long i;

    memset(&sa, 0, sizeof(sa));
    memset(buf, 'c', sizeof(buf));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0
        || bind(lfd, (struct sockaddr *)&sa, sizeof(sa))
        || listen(lfd, 1)
        || getsockname(lfd, (struct sockaddr *)&sa, &len))
        die("listen on loopback");
    if ((echo = fork()) < 0)
        die("fork");
    if (!echo) {
        int c;
        alarm(TIME_LIMIT);              /* never outlives the run */
        c = accept(lfd, NULL, NULL);
        if (c < 0)
            die("accept");
        nodelay(c);
        for (i = 0; i < count; i++) {
            transfer(c, buf, CHANGE_BYTES, 0);
            transfer(c, buf, ANSWER_BYTES, 1);
        }
        _exit(0);
    }
    close(lfd);
    if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0
        || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
        die("connect on loopback");
    nodelay(fd);
    cpu0 = self_cpu();
    t0 = now();
    for (i = 0; i < count; i++) {
        transfer(fd, buf, CHANGE_BYTES, 1);
        transfer(fd, buf, ANSWER_BYTES, 0);
    }
    close(fd);
    return settle(echo, cpu0, t0, count);
}

static void futex_wait_for(uint32_t *word, uint32_t value)
{
    uint32_t seen;
    while ((seen = __atomic_load_n(word, __ATOMIC_ACQUIRE)) != value)
        if (syscall(SYS_futex, word, FUTEX_WAIT, seen, NULL, NULL, 0) && errno != EAGAIN
            && errno != EINTR)
            die("futex wait");
}

static void futex_set(uint32_t *word, uint32_t value)
{
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
    if (syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0) < 0)
        die("futex wake");
}

/* `count` wakes there and back through one word of shared memory. */
static trip_cost futex_trips(long count)
{
    uint32_t *word = mmap(NULL, sizeof(*word), PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t echo;
    double cpu0, t0;
    trip_cost c;
    long i;

    if (word == MAP_FAILED)
        die("mmap");
    *word = 0;
    if ((echo = fork()) < 0)
        die("fork");
    if (!echo) {
        alarm(TIME_LIMIT);              /* never outlives the run */
        for (i = 0; i < count; i++) {
            futex_wait_for(word, 1);
            futex_set(word, 2);
        }
        _exit(0);
    }
    cpu0 = self_cpu();
    t0 = now();
    for (i = 0; i < count; i++) {
        futex_set(word, 1);
        futex_wait_for(word, 2);
    }
    c = settle(echo, cpu0, t0, count);
    munmap(word, sizeof(*word));
    return c;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double median, low, high, wall;
} summary;

static summary measure(trip_cost (*trips)(long), long count, int rounds)
{
    double cpu[ROUNDS_MAX], wall[ROUNDS_MAX];
    summary s;
    int i;

    for (i = 0; i < rounds; i++) {
        trip_cost c = trips(count);
        cpu[i] = c.cpu_us;
        wall[i] = c.wall_us;
    }
    qsort(cpu, (size_t)rounds, sizeof(double), by_value);
    qsort(wall, (size_t)rounds, sizeof(double), by_value);
    s.median = cpu[rounds / 2];
    s.low = cpu[0];
    s.high = cpu[rounds - 1];
    s.wall = wall[rounds / 2];
    return s;
}

static void spin_start(pid_t *pids, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        if ((pids[i] = fork()) < 0)
            die("fork");
        if (!pids[i]) {
            volatile unsigned long x = 0;
            alarm(TIME_LIMIT);          /* never outlives the run */
            for (;;)
                x++;
        }
    }
}

static void spin_stop(pid_t *pids, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
}

static void report(const char *load, const char *what, summary s)
{
    printf("%-6s %-22s %9.1f %9.1f-%-9.1f %9.1f\n", load, what, s.median, s.low,
           s.high, s.wall);
}

static long arg_long(const char *v, long lo, long hi, const char *name)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) {
        fprintf(stderr, "ipc_floor: %s must be %ld..%ld\n", name, lo, hi);
        exit(2);
    }
    return n;
}

int main(int argc, char **argv)
{
    long count = 5000, ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int rounds = 5, spinners = ncpu > 0 && ncpu <= SPINNERS_MAX ? (int)ncpu : 2;
    pid_t spin[SPINNERS_MAX];
    summary tcp[2], fx[2];
    int i, busy;

    for (i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--count"))
            count = arg_long(argv[i + 1], 1, 1000000, "--count");
        else if (!strcmp(argv[i], "--rounds"))
            rounds = (int)arg_long(argv[i + 1], 1, ROUNDS_MAX, "--rounds");
        else if (!strcmp(argv[i], "--spinners"))
            spinners = (int)arg_long(argv[i + 1], 0, SPINNERS_MAX, "--spinners");
        else
            break;
    }
    if (i < argc) {
        fprintf(stderr, "usage: ipc_floor [--count N] [--rounds R] [--spinners K]\n");
        return 2;
    }
    /* a line out is a line flushed: a child that dies exits with exit(),
     * which would print what the parent had buffered once more */
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(TIME_LIMIT);
    printf("ipc_floor: CPU (user + system, both ends) per round trip, median of %d "
           "rounds of %ld; %ld CPUs\n", rounds, count, ncpu);
    printf("%-6s %-22s %9s %19s %9s\n", "load", "round trip", "cpu us", "range",
           "wall us");
    for (busy = 0; busy < 2; busy++) {
        const char *load = busy ? "busy" : "quiet";
        if (busy)
            spin_start(spin, spinners);
        tcp[busy] = measure(tcp_trips, count, rounds);
        fx[busy] = measure(futex_trips, count, rounds);
        if (busy)
            spin_stop(spin, spinners);
        report(load, "TCP loopback 115/56 B", tcp[busy]);
        report(load, "futex, shared memory", fx[busy]);
    }
    printf("least kernel CPU per answered change (member round trips + one futex "
           "round trip), us: 1 member (backup) %.1f quiet, %.1f busy; 2 members "
           "(delta, 3 nodes) %.1f quiet, %.1f busy\n",
           tcp[0].median + fx[0].median, tcp[1].median + fx[1].median,
           2 * tcp[0].median + fx[0].median, 2 * tcp[1].median + fx[1].median);
    return 0;
}
