/* sc_backup.c - backup manager placement (see sc_backup.h). */
#include <apr_atomic.h>
#include <apr_strings.h>

#include "sc_backup.h"

/* concurrent placements of one session retry on the version they lost to */
#define SC_PLACE_TRIES 16

const char *sc_backup_pick(sc_node *node, const char *avoid, apr_pool_t *p)
{
    int i, n = 0, slots = sc_node_slot_count(node);
    const char **up = apr_palloc(p, sizeof(char *) * (slots + 1));
    apr_uint32_t turn;

    for (i = 0; i < slots; i++) {
        const sc_member_state *m = sc_node_slot(node, i);
        if (m->up && *m->route && strcmp(m->route, node->conf->route)
            && (!avoid || strcmp(m->route, avoid)))
            up[n++] = m->route;
    }
    if (!n)
        return "";
    turn = apr_atomic_inc32(&node->state->backup_turn);
    return apr_pstrdup(p, up[turn % (apr_uint32_t)n]);
}

apr_status_t sc_backup_place(sc_node *node, const char *id, const char *want,
                             apr_pool_t *p, sc_session *out, int *moved)
{
    const char *self = node->conf->route;
    apr_status_t rv = SC_STORE_STALE;
    int tries;

    *moved = 0;
    for (tries = 0; tries < SC_PLACE_TRIES && rv == SC_STORE_STALE; tries++) {
        apr_time_t now = apr_time_now();
        sc_session cur;
        const char *backup, *former;

        if ((rv = sc_store_get(node->store, id, now, p, &cur)) != APR_SUCCESS)
            return rv;
        if (cur.tombstone || cur.proxy)
            return APR_NOTFOUND;
        /* taking over: the former primary is presumed dead even while its
         * link has not noticed yet */
        former = strcmp(cur.owner, self) ? cur.owner : NULL;
        if (want && sc_node_route_up(node, want))
            backup = want;
        else if (sc_node_route_up(node, cur.backup))
            backup = cur.backup;
        else
            backup = sc_backup_pick(node, former, p);
        *out = cur;
        if (!strcmp(cur.owner, self) && !strcmp(cur.backup, backup))
            return APR_SUCCESS;             /* placed like that already */
        apr_cpystrn(out->owner, self, sizeof(out->owner));
        apr_cpystrn(out->backup, backup, sizeof(out->backup));
        rv = sc_store_replace(node->store, out, cur.version, now);
        out->version = cur.version + 1;
    }
    if (rv == APR_SUCCESS) {
        *moved = 1;
        sc_backup_stored(node, out);
    }
    return rv;
}

void sc_backup_stored(sc_node *node, const sc_session *s)
{
    if (!*s->backup && !s->tombstone && !s->proxy)
        apr_atomic_inc32(&node->state->unbacked_writes);
}
