/* sc_ratelog.c - rate-limited log decisions (see sc_ratelog.h). */
#include <apr_thread_mutex.h>

#include "sc_ratelog.h"

struct sc_ratelog {
    apr_thread_mutex_t *mu;
    apr_interval_time_t every;
    int kinds;
    apr_time_t *last;           /* when each kind was last logged (0: never) */
    apr_uint32_t *held;         /* events of each kind since then */
};

apr_status_t sc_ratelog_create(sc_ratelog **out, int kinds,
                               apr_interval_time_t every, apr_pool_t *p)
{
    sc_ratelog *rl = apr_pcalloc(p, sizeof(*rl));
    apr_status_t rv;

    if (kinds < 1)
        return APR_EINVAL;
    if ((rv = apr_thread_mutex_create(&rl->mu, APR_THREAD_MUTEX_DEFAULT, p))
        != APR_SUCCESS)
        return rv;
    rl->every = every;
    rl->kinds = kinds;
    rl->last = apr_pcalloc(p, sizeof(*rl->last) * kinds);
    rl->held = apr_pcalloc(p, sizeof(*rl->held) * kinds);
    *out = rl;
    return APR_SUCCESS;
}

int sc_ratelog_due(sc_ratelog *rl, int kind, apr_time_t now, apr_uint32_t *held)
{
    int due;

    if (kind < 0 || kind >= rl->kinds)
        kind = rl->kinds - 1;
    apr_thread_mutex_lock(rl->mu);
    due = !rl->last[kind] || now - rl->last[kind] >= rl->every;
    if (due) {
        *held = rl->held[kind];
        rl->held[kind] = 0;
        rl->last[kind] = now;
    }
    else
        rl->held[kind]++;
    apr_thread_mutex_unlock(rl->mu);
    return due;
}
