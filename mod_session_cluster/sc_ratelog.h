/* sc_ratelog.h - one log line per kind of event at most every so often.
 *
 * Contract:
 *  - Noise from outside (unauthenticated connections, bad heartbeats) must
 *    not flood the error log: per kind, sc_ratelog_due() says yes at most
 *    once per `every` and tells how many events were held back since the
 *    last line, so that line can carry the count. Thread-safe.
 *  - Only APR.
 *  - Any process or thread; each keeps its own limiter.
 */
#ifndef SC_RATELOG_H
#define SC_RATELOG_H

#include <apr_pools.h>
#include <apr_time.h>

/* the interval every such line of the module uses */
#define SC_RATELOG_EVERY apr_time_from_sec(10)

typedef struct sc_ratelog sc_ratelog;

apr_status_t sc_ratelog_create(sc_ratelog **out, int kinds,
                               apr_interval_time_t every, apr_pool_t *p);

/* One more event of `kind` at `now`: 1 when its line is due (then *held is
 * how many were not logged since the last line), else 0. */
int sc_ratelog_due(sc_ratelog *rl, int kind, apr_time_t now,
                   apr_uint32_t *held);

#endif
