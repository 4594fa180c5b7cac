/* sc_misses.h - ids clusterd recently asked every member for and found
 * nowhere (runs in clusterd's fetch threads).
 *
 * Contract:
 *  - A client that keeps sending one unknown id (a stale or forged cookie)
 *    costs one round of questions per SC_MISSES_TTL, not one per request.
 *  - Direct-mapped (SC_MISSES_SLOTS entries, a newer id takes the slot):
 *    bounded memory, O(1); an id pushed out is merely asked about again.
 *  - Remembered only when every member asked answered "not here": a member
 *    that failed to answer may hold it. Thread-safe. Only APR.
 */
#ifndef SC_MISSES_H
#define SC_MISSES_H

#include <apr_pools.h>
#include <apr_time.h>

#define SC_MISSES_SLOTS 1024
#define SC_MISSES_TTL   apr_time_from_sec(5)

typedef struct sc_misses sc_misses;

apr_status_t sc_misses_create(sc_misses **out, apr_pool_t *p);
void sc_misses_add(sc_misses *m, const char *id, apr_time_t now);
/* 1 when id was found nowhere less than SC_MISSES_TTL before now. */
int sc_misses_recent(sc_misses *m, const char *id, apr_time_t now);

#endif
