/* sc_manager.c - the managers' registry and what they share (see
 * sc_manager.h). */
#include <string.h>

#include <apr_time.h>

#include "sc_manager.h"

/* concurrent placements of one session retry on the version they lost to */
#define SC_PLACE_TRIES 16

const sc_manager *sc_manager_get(int kind)
{
    /* sc_config's sc_manager_e: SC_MANAGER_DELTA 0, SC_MANAGER_BACKUP 1 */
    static const sc_manager *const all[] = { &sc_mgr_delta, &sc_mgr_backup };
    if (kind < 0 || kind >= (int)(sizeof(all) / sizeof(all[0])))
        return &sc_mgr_delta;
    return all[kind];
}

int sc_mgr_up(const sc_mgr_ctx *c, const char *route)
{
    int i;
    if (!route || !*route || !strcmp(route, c->self))
        return 0;
    for (i = 0; i < c->n; i++)
        if (!strcmp(c->members[i].route, route))
            return c->members[i].up;
    return 0;
}

int sc_mgr_member_known(const sc_mgr_ctx *c, const char *route)
{
    int i;
    if (!strcmp(route, c->self))
        return 1;
    for (i = 0; i < c->n; i++)
        if (!strcmp(c->members[i].route, route))
            return 1;
    return 0;
}

apr_status_t sc_mgr_place(const sc_manager *m, const sc_mgr_ctx *c,
                          sc_store *store, const char *id, const char *want,
                          apr_pool_t *p, sc_session *out, int *moved)
{
    apr_status_t rv = SC_STORE_STALE;
    int tries;

    *moved = 0;
    for (tries = 0; tries < SC_PLACE_TRIES && rv == SC_STORE_STALE; tries++) {
        apr_time_t now = apr_time_now();
        sc_session cur;

        if ((rv = sc_store_get(store, id, now, p, &cur)) != APR_SUCCESS)
            return rv;
        if (cur.tombstone || cur.proxy)
            return APR_NOTFOUND;
        if (!m->take_over(c, &cur, want, out))
            return APR_SUCCESS;             /* placed like that already */
        rv = sc_store_replace(store, out, cur.version, now);
        out->version = cur.version + 1;
    }
    if (rv == APR_SUCCESS)
        *moved = 1;
    return rv;
}
