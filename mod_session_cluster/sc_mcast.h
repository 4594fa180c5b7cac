/* sc_mcast.h - multicast membership (ClusterMulticast), run by clusterd.
 *
 * Contract:
 *  - Every `frequency` clusterd sends one heartbeat (sc_heartbeat.h:
 *    route, ClusterListen, incarnation epoch, stamp, manager, readiness) to
 *    the group, sealed with the newest cluster key (unsealed only with
 *    `ClusterSecretFile none`); a heartbeat sealed with any key this node
 *    holds is heard, so a rotation never silences anyone. The epoch is when
 *    this node's store was created: a graceful restart or a new clusterd is
 *    the same incarnation, a node started anew is a new one.
 *  - A heartbeat from an unknown route adds the member: a slot in the shared
 *    table (published last), then `add` gives it a link. From a known member
 *    it refreshes `heard` (a newer epoch, a restart, is logged; the link
 *    learns it from the member's HELLO). Up and down stay the link's
 *    business: it marks a member down once sc_mcast_silent() says its
 *    heartbeats stopped.
 *  - Ignored, with one log line per reason at most every 10 s: datagrams that
 *    do not decode or authenticate (another secret), replays (an older epoch,
 *    or a stamp not newer), another ClusterManager, this node's own route
 *    from another node, a member announcing another address, a full table,
 *    and with `ClusterSecretFile none` any member whose ClusterListen is not
 *    loopback.
 *  - Runs in clusterd: its multicast receiver thread, and the links
 *    that consult what it heard.
 */
#ifndef SC_MCAST_H
#define SC_MCAST_H

#include <httpd.h>

#include "sc_node.h"

/* Give the member in slot `slot` a link (called from the receiver thread). */
typedef apr_status_t (*sc_mcast_add_fn)(void *baton, int slot);

apr_status_t sc_mcast_start(sc_node *node, server_rec *s, sc_mcast_add_fn add,
                            void *baton, apr_pool_t *p);

/* The member sends heartbeats and none came for longer than droptime. */
int sc_mcast_silent(const sc_node *node, const sc_member_state *slot,
                    apr_time_t now);

#endif
