/* sc_gate.c - counting handshakes per source address (see sc_gate.h). */
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "sc_gate.h"

/* one row per address with handshakes under way (or a member's) */
#define SC_GATE_ROWS (SC_GATE_MEMBERS_MAX + SC_GATE_STRANGERS)

typedef struct {
    int used;
    apr_sockaddr_t addr;        /* a copy: nothing grows per address seen */
    int member;
    int n;                      /* handshakes under way */
} sc_gate_row;

struct sc_gate {
    apr_pool_t *pool;
    apr_thread_mutex_t *mu;
    sc_gate_row rows[SC_GATE_ROWS];
    apr_sockaddr_t *members[SC_GATE_MEMBERS_MAX];
    int strangers;
};

apr_status_t sc_gate_create(sc_gate **out, apr_pool_t *p)
{
    sc_gate *g = apr_pcalloc(p, sizeof(*g));
    apr_status_t rv;

    g->pool = p;
    if ((rv = apr_thread_mutex_create(&g->mu, APR_THREAD_MUTEX_DEFAULT, p))
        != APR_SUCCESS)
        return rv;
    *out = g;
    return APR_SUCCESS;
}

apr_status_t sc_gate_member(sc_gate *g, int i, const char *host)
{
    apr_sockaddr_t *sa;
    apr_status_t rv;

    if (i < 0 || i >= SC_GATE_MEMBERS_MAX)
        return APR_EINVAL;
    /* resolved outside the lock: a name may take a while */
    if ((rv = apr_sockaddr_info_get(&sa, host, APR_UNSPEC, 0, 0, g->pool))
        != APR_SUCCESS)
        return rv;
    apr_thread_mutex_lock(g->mu);
    g->members[i] = sa;
    apr_thread_mutex_unlock(g->mu);
    return APR_SUCCESS;
}

static int is_member(const sc_gate *g, const apr_sockaddr_t *from)
{
    int i;
    for (i = 0; i < SC_GATE_MEMBERS_MAX; i++) {
        const apr_sockaddr_t *m;
        for (m = g->members[i]; m; m = m->next)     /* every address of a name */
            if (apr_sockaddr_equal(m, from))
                return 1;
    }
    return 0;
}

/* The row of `from`, or a free one for it (NULL: the table is full). */
static sc_gate_row *row_of(sc_gate *g, const apr_sockaddr_t *from)
{
    sc_gate_row *free_row = NULL;
    int i;

    for (i = 0; i < SC_GATE_ROWS; i++) {
        sc_gate_row *r = &g->rows[i];
        if (r->used && apr_sockaddr_equal(&r->addr, from))
            return r;
        if (!r->used && !free_row)
            free_row = r;
    }
    return free_row;
}

int sc_gate_enter(sc_gate *g, const apr_sockaddr_t *from, const char **why)
{
    sc_gate_row *r;
    int ticket = -1, member;

    apr_thread_mutex_lock(g->mu);
    member = is_member(g, from);
    r = row_of(g, from);
    if (r && r->used && r->member != member) {
        /* a member made known while its handshakes were counted as a
         * stranger's (learnt by multicast): they are its own from now */
        g->strangers += member ? -r->n : r->n;
        r->member = member;
    }
    if (!r)
        *why = "too many addresses handshaking at once";
    else if (member && r->n >= SC_GATE_PER_MEMBER)
        *why = "too many handshakes at once from this member's address";
    else if (!member && r->n >= SC_GATE_PER_STRANGER)
        *why = "too many handshakes at once from this address";
    else if (!member && g->strangers >= SC_GATE_STRANGERS)
        *why = "too many handshakes at once from addresses of no member";
    else {
        if (!r->used) {
            /* the caller's address lives in its connection's pool; the copy's
             * ipaddr_ptr must point into the copy */
            r->addr = *from;
            r->addr.next = NULL;
            r->addr.hostname = r->addr.servname = NULL;
            r->addr.ipaddr_ptr = (char *)&r->addr + ((const char *)from->ipaddr_ptr
                                                     - (const char *)from);
            r->member = member;
            r->used = 1;
        }
        r->n++;
        g->strangers += !r->member;
        ticket = (int)(r - g->rows);
    }
    apr_thread_mutex_unlock(g->mu);
    return ticket;
}

void sc_gate_leave(sc_gate *g, int ticket)
{
    sc_gate_row *r;

    if (ticket < 0 || ticket >= SC_GATE_ROWS)
        return;
    apr_thread_mutex_lock(g->mu);
    r = &g->rows[ticket];
    if (r->n > 0) {
        r->n--;
        g->strangers -= !r->member;
        r->used = r->n > 0;
    }
    apr_thread_mutex_unlock(g->mu);
}

int sc_gate_strangers(sc_gate *g)
{
    int n;
    apr_thread_mutex_lock(g->mu);
    n = g->strangers;
    apr_thread_mutex_unlock(g->mu);
    return n;
}
