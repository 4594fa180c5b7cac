/* sc_backup.h - the backup manager's placement rules, shared by the
 * children (request path) and clusterd (members dropping and joining).
 *
 * Contract:
 *  - A session's primary is the node that serves it; its backup is one other
 *    member that is up, picked round-robin from a counter in shared memory,
 *    so a node's children and its clusterd share one rotation.
 *  - sc_backup_place() makes this node the primary of a session whose data
 *    it holds and gives it a usable backup (kept when it already has one,
 *    else picked, never the primary it takes over from; or the one asked
 *    for). It is a conditional store write, so
 *    a request and a member-drop pass placing the same session at once
 *    serialise on the version: each change of placement is a new version.
 *  - Only the primary and the backup hold data; every other member holds a
 *    proxy entry (sc_store proxy) learnt from LOCATION frames.
 */
#ifndef SC_BACKUP_H
#define SC_BACKUP_H

#include "sc_node.h"

/* The next backup in this node's rotation over the up members other than
 * itself and `avoid` (may be NULL), as a route in pool p; "" when none. */
const char *sc_backup_pick(sc_node *node, const char *avoid, apr_pool_t *p);

/* Make this node primary of session `id` with a usable backup (`want` when
 * not NULL and usable). *out receives the session as stored; *moved is 1
 * when owner or backup changed (a new version was written), 0 when it was
 * placed like that already. APR_NOTFOUND when this node holds no data for
 * it (absent, tombstone, proxy, expired). */
apr_status_t sc_backup_place(sc_node *node, const char *id, const char *want,
                             apr_pool_t *p, sc_session *out, int *moved);

/* A primary this node just stored (any process): when it has no backup,
 * tell clusterd, whose next watch pass gives it one if a member is up. A
 * write, not a pick, is what counts: a pass that ran between the pick and
 * the write would not have seen it. */
void sc_backup_stored(sc_node *node, const sc_session *s);

#endif
