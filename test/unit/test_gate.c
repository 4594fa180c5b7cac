/* Unit tests for sc_gate (handshakes at once per source address): 2 per
 * stranger address, the 3rd refused with a reason; 16 from strangers in
 * all, the 17th refused; a member's address has its own 16 and is admitted
 * while strangers are at their limit; leaving frees a slot (and ticket -1
 * or out of range is ignored); IPv4, IPv6 and IPv4-mapped IPv6 addresses;
 * the source port never matters; sc_gate_strangers counts, also when a
 * member is told while its address is handshaking; and many threads
 * entering and leaving at once never get past a limit nor leave a count
 * behind. Runs under ASan/UBSan. */
#include <stdlib.h>
#include <string.h>

#include <apr_atomic.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "sc_gate.h"
#include "sc_test.h"

static apr_pool_t *pool;

/* An address as a peer's connection has it (a numeric host, a port). */
static apr_sockaddr_t *addr(const char *host, apr_port_t port)
{
    apr_sockaddr_t *sa = NULL;
    if (apr_sockaddr_info_get(&sa, host, APR_UNSPEC, port, APR_IPV4_ADDR_OK, pool)
        != APR_SUCCESS)
        return NULL;
    return sa;
}

static int enter(sc_gate *g, const char *host, apr_port_t port, const char **why)
{
    apr_sockaddr_t *sa = addr(host, port);
    *why = NULL;
    if (!sa) {
        fprintf(stderr, "  cannot make an address of %s\n", host);
        return -2;
    }
    return sc_gate_enter(g, sa, why);
}

static sc_gate *new_gate(void)
{
    sc_gate *g = NULL;
    CHECK(sc_gate_create(&g, pool) == APR_SUCCESS && g);
    return g;
}

static void test_per_stranger(void)
{
    sc_gate *g = new_gate();
    const char *why;
    int t1, t2, t3, t4;

    t1 = enter(g, "10.1.0.1", 40001, &why);
    t2 = enter(g, "10.1.0.1", 40002, &why);
    CHECK(t1 >= 0 && t2 >= 0);
    CHECK(sc_gate_strangers(g) == 2);
    t3 = enter(g, "10.1.0.1", 40003, &why);
    CHECK(t3 == -1 && why && strstr(why, "too many handshakes at once from this address"));
    CHECK(sc_gate_strangers(g) == 2);
    /* the same port again is no different */
    CHECK(enter(g, "10.1.0.1", 40001, &why) == -1);
    /* another address has its own 2 */
    CHECK(enter(g, "10.1.0.2", 40001, &why) >= 0);
    CHECK(sc_gate_strangers(g) == 3);
    /* leaving frees a slot for that address */
    sc_gate_leave(g, t1);
    CHECK(sc_gate_strangers(g) == 2);
    t4 = enter(g, "10.1.0.1", 40004, &why);
    CHECK(t4 >= 0);
    CHECK(enter(g, "10.1.0.1", 40005, &why) == -1 && why);
    sc_gate_leave(g, t2);
    sc_gate_leave(g, t4);
    CHECK(sc_gate_strangers(g) == 1);
    /* gone entirely: two at once again */
    t1 = enter(g, "10.1.0.1", 40006, &why);
    t2 = enter(g, "10.1.0.1", 40007, &why);
    CHECK(t1 >= 0 && t2 >= 0 && sc_gate_strangers(g) == 3);
}

static void test_strangers_in_all(void)
{
    sc_gate *g = new_gate();
    int tickets[SC_GATE_STRANGERS], i, t;
    const char *why;

    /* 16 from 8 addresses */
    for (i = 0; i < SC_GATE_STRANGERS; i++) {
        char *host = apr_psprintf(pool, "10.2.0.%d", 1 + i / 2);
        tickets[i] = enter(g, host, (apr_port_t)(50000 + i), &why);
        CHECK(tickets[i] >= 0);
    }
    CHECK(sc_gate_strangers(g) == SC_GATE_STRANGERS);
    /* the 17th, from an address with none under way yet */
    t = enter(g, "10.2.0.100", 50100, &why);
    CHECK(t == -1 && why && strstr(why, "addresses of no member"));
    CHECK(enter(g, "192.168.7.7", 50101, &why) == -1);
    CHECK(enter(g, "2001:db8::7", 50102, &why) == -1);
    CHECK(sc_gate_strangers(g) == SC_GATE_STRANGERS);
    /* one leaves: one more may come, from anywhere */
    sc_gate_leave(g, tickets[5]);
    CHECK(sc_gate_strangers(g) == SC_GATE_STRANGERS - 1);
    t = enter(g, "10.2.0.100", 50103, &why);
    CHECK(t >= 0);
    CHECK(enter(g, "10.2.0.101", 50104, &why) == -1);
    sc_gate_leave(g, t);
    for (i = 0; i < SC_GATE_STRANGERS; i++)
        if (i != 5)
            sc_gate_leave(g, tickets[i]);
    CHECK(sc_gate_strangers(g) == 0);
    /* all free again: 16 from one address each */
    for (i = 0; i < SC_GATE_STRANGERS; i++) {
        char *host = apr_psprintf(pool, "10.3.0.%d", 1 + i);
        tickets[i] = enter(g, host, 1024, &why);
        CHECK(tickets[i] >= 0);
    }
    CHECK(enter(g, "10.3.0.200", 1024, &why) == -1);
    CHECK(sc_gate_strangers(g) == SC_GATE_STRANGERS);
}

static void test_member_own_quota(void)
{
    sc_gate *g = new_gate();
    int tickets[SC_GATE_PER_MEMBER], strangers[SC_GATE_STRANGERS], i, t;
    const char *why;

    CHECK(sc_gate_member(g, 0, "127.0.0.5") == APR_SUCCESS);
    CHECK(sc_gate_member(g, 3, "10.9.0.3") == APR_SUCCESS);
    CHECK(sc_gate_member(g, SC_GATE_MEMBERS_MAX, "10.9.0.4") == APR_EINVAL);
    CHECK(sc_gate_member(g, -1, "10.9.0.4") == APR_EINVAL);
    /* strangers at their limit */
    for (i = 0; i < SC_GATE_STRANGERS; i++) {
        strangers[i] = enter(g, apr_psprintf(pool, "127.0.1.%d", 1 + i / 2),
                             (apr_port_t)(30000 + i), &why);
        CHECK(strangers[i] >= 0);
    }
    CHECK(enter(g, "127.0.2.1", 30100, &why) == -1);
    /* the member is admitted all the same, 16 times, not a 17th */
    for (i = 0; i < SC_GATE_PER_MEMBER; i++) {
        tickets[i] = enter(g, "127.0.0.5", (apr_port_t)(31000 + i), &why);
        CHECK(tickets[i] >= 0);
    }
    t = enter(g, "127.0.0.5", 31100, &why);
    CHECK(t == -1 && why && strstr(why, "member's address"));
    /* members never count as strangers */
    CHECK(sc_gate_strangers(g) == SC_GATE_STRANGERS);
    /* another member (slot 3) has its own 16 too */
    for (i = 0; i < SC_GATE_PER_MEMBER; i++)
        CHECK(enter(g, "10.9.0.3", (apr_port_t)(32000 + i), &why) >= 0);
    CHECK(enter(g, "10.9.0.3", 32100, &why) == -1);
    /* a member leaving frees its own slot, not a stranger's */
    sc_gate_leave(g, tickets[0]);
    CHECK(sc_gate_strangers(g) == SC_GATE_STRANGERS);
    CHECK(enter(g, "127.0.1.9", 30200, &why) == -1);
    CHECK(enter(g, "127.0.0.5", 31101, &why) >= 0);
    /* and a stranger leaving frees a stranger's */
    sc_gate_leave(g, strangers[0]);
    CHECK(sc_gate_strangers(g) == SC_GATE_STRANGERS - 1);
    CHECK(enter(g, "127.0.1.9", 30201, &why) >= 0);
    CHECK(sc_gate_strangers(g) == SC_GATE_STRANGERS);
}

static void test_leave_ignores_bad_tickets(void)
{
    sc_gate *g = new_gate();
    const char *why;
    int t1, t2;

    t1 = enter(g, "10.4.0.1", 1, &why);
    t2 = enter(g, "10.4.0.1", 2, &why);
    CHECK(t1 >= 0 && t2 >= 0 && sc_gate_strangers(g) == 2);
    sc_gate_leave(g, -1);
    sc_gate_leave(g, -100);
    sc_gate_leave(g, SC_GATE_MEMBERS_MAX + SC_GATE_STRANGERS);
    sc_gate_leave(g, 1 << 30);
    CHECK(sc_gate_strangers(g) == 2);
    CHECK(enter(g, "10.4.0.1", 3, &why) == -1);
    /* a ticket handed back twice is no extra slot */
    sc_gate_leave(g, t1);
    sc_gate_leave(g, t2);
    sc_gate_leave(g, t2);
    CHECK(sc_gate_strangers(g) == 0);
    t1 = enter(g, "10.4.0.1", 4, &why);
    t2 = enter(g, "10.4.0.1", 5, &why);
    CHECK(t1 >= 0 && t2 >= 0);
    CHECK(enter(g, "10.4.0.1", 6, &why) == -1);
    CHECK(sc_gate_strangers(g) == 2);
}

static void test_ipv6(void)
{
    sc_gate *g = new_gate();
    const char *why;
    int i;

    CHECK(enter(g, "2001:db8::1", 1000, &why) >= 0);
    CHECK(enter(g, "2001:db8::1", 1001, &why) >= 0);
    CHECK(enter(g, "2001:db8::1", 1002, &why) == -1 && why);
    /* a neighbour address is another address */
    CHECK(enter(g, "2001:db8::2", 1000, &why) >= 0);
    CHECK(sc_gate_strangers(g) == 3);
    /* an IPv6 member */
    CHECK(sc_gate_member(g, 1, "2001:db8::99") == APR_SUCCESS);
    for (i = 0; i < SC_GATE_PER_MEMBER; i++)
        CHECK(enter(g, "2001:db8::99", (apr_port_t)(2000 + i), &why) >= 0);
    CHECK(enter(g, "2001:db8::99", 2100, &why) == -1 && why
          && strstr(why, "member's address"));
    CHECK(sc_gate_strangers(g) == 3);
    /* IPv4 and IPv6 strangers side by side */
    CHECK(enter(g, "10.5.0.1", 1000, &why) >= 0);
    CHECK(enter(g, "10.5.0.1", 1001, &why) >= 0);
    CHECK(enter(g, "10.5.0.1", 1002, &why) == -1);
    CHECK(sc_gate_strangers(g) == 5);
}

/* A member told by its IPv4 address, connecting to a dual-stack listener,
 * arrives as ::ffff:a.b.c.d: it is the same address. */
static void test_ipv4_mapped(void)
{
    sc_gate *g = new_gate();
    const char *why;
    int i;

    CHECK(sc_gate_member(g, 0, "127.0.0.5") == APR_SUCCESS);
    for (i = 0; i < SC_GATE_PER_MEMBER; i++) {
        int t = enter(g, i % 2 ? "::ffff:127.0.0.5" : "127.0.0.5", (apr_port_t)(3000 + i),
                      &why);
        CHECK(t >= 0);
    }
    CHECK(enter(g, "::ffff:127.0.0.5", 3100, &why) == -1);
    CHECK(sc_gate_strangers(g) == 0);
    /* and a stranger is one address whichever way it is written */
    CHECK(enter(g, "10.6.0.1", 1, &why) >= 0);
    CHECK(enter(g, "::ffff:10.6.0.1", 2, &why) >= 0);
    CHECK(enter(g, "10.6.0.1", 3, &why) == -1);
    CHECK(enter(g, "::ffff:10.6.0.1", 4, &why) == -1);
    CHECK(sc_gate_strangers(g) == 2);
}

/* A member told while its address has handshakes under way as a
 * stranger's (clusterd tells the gate of a member learnt by multicast at
 * the next connection it admits, and that member may be dialling already):
 * from then on its handshakes are a member's, so they never count against
 * the strangers' total, which stays within SC_GATE_STRANGERS. */
static void test_member_told_while_handshaking(void)
{
    sc_gate *g = new_gate();
    int strangers[SC_GATE_STRANGERS], member[SC_GATE_PER_MEMBER], i, n = 0, worst = 0;
    const char *why;

    for (i = 0; i < SC_GATE_STRANGERS; i++) {
        strangers[i] = enter(g, apr_psprintf(pool, "10.8.0.%d", 1 + i / 2),
                             (apr_port_t)(100 + i), &why);
        CHECK(strangers[i] >= 0);
    }
    CHECK(sc_gate_strangers(g) == SC_GATE_STRANGERS);
    /* 10.8.0.1 (2 handshakes under way) turns out to be member slot 0 */
    CHECK(sc_gate_member(g, 0, "10.8.0.1") == APR_SUCCESS);
    for (i = 0; i < SC_GATE_PER_MEMBER; i++) {
        member[i] = enter(g, "10.8.0.1", (apr_port_t)(200 + i), &why);
        if (member[i] < 0)
            break;
        n++;
        if (sc_gate_strangers(g) > worst)
            worst = sc_gate_strangers(g);
    }
    fprintf(stderr, "  the member was admitted %d more times; strangers counted: "
            "at most %d (limit %d)\n", n, worst, SC_GATE_STRANGERS);
    CHECK(n >= 1);
    CHECK(worst <= SC_GATE_STRANGERS);
    /* everything ends: nothing is left counted */
    for (i = 0; i < n; i++)
        sc_gate_leave(g, member[i]);
    for (i = 0; i < SC_GATE_STRANGERS; i++)
        sc_gate_leave(g, strangers[i]);
    CHECK(sc_gate_strangers(g) == 0);
    for (i = 0; i < SC_GATE_STRANGERS; i++)
        CHECK(enter(g, apr_psprintf(pool, "10.8.1.%d", 1 + i), 1, &why) >= 0);
    CHECK(enter(g, "10.8.2.1", 1, &why) == -1);
    for (i = 0; i < SC_GATE_PER_MEMBER; i++)
        CHECK(enter(g, "10.8.0.1", (apr_port_t)(300 + i), &why) >= 0);
    CHECK(sc_gate_strangers(g) == SC_GATE_STRANGERS);
}

/* ---- threads -------------------------------------------------------------- */

/* 32 threads share 10 stranger addresses (3 or 4 on each, whose quota is
 * 2; 20 in all would fit the addresses, 16 may): each enters, holds its
 * ticket a moment, leaves, 2000 times. Our own counts, kept inside the
 * admitted window, must never pass a limit. */
enum { THREADS = 32, ADDRS = 10, ROUNDS = 2000 };

typedef struct {
    sc_gate *g;
    apr_sockaddr_t *sa;
    volatile apr_uint32_t *at_addr;     /* admitted from our address */
    volatile apr_uint32_t *inside;      /* admitted from all */
    volatile apr_uint32_t *over;        /* times a limit was passed */
    int admitted, refused, no_why;
} worker;

static void *APR_THREAD_FUNC work(apr_thread_t *t, void *arg)
{
    worker *w = arg;
    int i;

    for (i = 0; i < ROUNDS; i++) {
        const char *why = NULL;
        int ticket = sc_gate_enter(w->g, w->sa, &why);
        if (ticket >= 0) {
            if (apr_atomic_inc32(w->at_addr) + 1 > SC_GATE_PER_STRANGER
                || apr_atomic_inc32(w->inside) + 1 > SC_GATE_STRANGERS
                || sc_gate_strangers(w->g) > SC_GATE_STRANGERS)
                apr_atomic_inc32(w->over);
            w->admitted++;
            apr_thread_yield();
            apr_atomic_dec32(w->inside);
            apr_atomic_dec32(w->at_addr);
            sc_gate_leave(w->g, ticket);
        }
        else {
            w->refused++;
            w->no_why += why == NULL;
        }
    }
    (void)t;
    return NULL;        /* not apr_thread_exit: see test_tls.c's serve() */
}

static void test_threads(void)
{
    sc_gate *g = new_gate();
    apr_thread_t *th[THREADS];
    worker w[THREADS];
    volatile apr_uint32_t at_addr[ADDRS], inside = 0, over = 0;
    apr_sockaddr_t *sa[ADDRS];
    int i, admitted = 0, refused = 0, no_why = 0;

    for (i = 0; i < ADDRS; i++) {
        at_addr[i] = 0;
        sa[i] = addr(apr_psprintf(pool, "10.7.0.%d", i + 1), (apr_port_t)(1000 + i));
        CHECK(sa[i] != NULL);
    }
    for (i = 0; i < THREADS; i++) {
        w[i].g = g;
        w[i].sa = sa[i % ADDRS];
        w[i].at_addr = &at_addr[i % ADDRS];
        w[i].inside = &inside;
        w[i].over = &over;
        w[i].admitted = w[i].refused = w[i].no_why = 0;
        CHECK(apr_thread_create(&th[i], NULL, work, &w[i], pool) == APR_SUCCESS);
    }
    for (i = 0; i < THREADS; i++) {
        apr_status_t rv;
        CHECK(apr_thread_join(&rv, th[i]) == APR_SUCCESS);
        admitted += w[i].admitted;
        refused += w[i].refused;
        no_why += w[i].no_why;
    }
    fprintf(stderr, "  %d admitted, %d refused\n", admitted, refused);
    CHECK(over == 0);
    CHECK(no_why == 0);
    CHECK(admitted > 0 && admitted + refused == THREADS * ROUNDS);
    /* nothing left behind: the full quota is there again */
    CHECK(sc_gate_strangers(g) == 0);
    {
        const char *why;
        for (i = 0; i < SC_GATE_STRANGERS; i++)
            CHECK(enter(g, apr_psprintf(pool, "10.7.0.%d", 1 + i / 2), (apr_port_t)i,
                        &why) >= 0);
        CHECK(enter(g, "10.7.1.1", 1, &why) == -1);
    }
}

int main(void)
{
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    RUN(test_per_stranger);
    RUN(test_strangers_in_all);
    RUN(test_member_own_quota);
    RUN(test_leave_ignores_bad_tickets);
    RUN(test_ipv6);
    RUN(test_ipv4_mapped);
    RUN(test_member_told_while_handshaking);
    RUN(test_threads);
    apr_pool_destroy(pool);
    return sc_test_report("test_gate");
}
