/* sc_peer.h - one TCP connection between two cluster nodes.
 *
 * Contract:
 *  - sc_peer_connect() dials a member, exchanges HELLOs and derives the
 *    connection's keys; sc_peer_accept() does the same for an accepted socket
 *    and admits only members (configured, or heard by multicast) other than
 *    ourselves, and without a ClusterSecretFile only from loopback.
 *  - sc_peer_send()/sc_peer_recv() move one frame, bounded by the socket's
 *    timeout. Any failure reports why; the caller then closes the connection
 *    (a connection that has seen one bad frame is never trusted again).
 */
#ifndef SC_PEER_H
#define SC_PEER_H

#include <apr_network_io.h>

#include "sc_node.h"
#include "sc_wire.h"

typedef struct {
    apr_socket_t *sock;
    sc_wire_conn wire;
    const char *remote;         /* "ip:port" of the other end, for logs */
    sc_cluster_state *stats;    /* counts session traffic */
} sc_peer;

apr_status_t sc_peer_connect(sc_peer **out, const sc_node *node,
                             const sc_member *m, apr_interval_time_t timeout,
                             apr_pool_t *p, const char **why);

apr_status_t sc_peer_accept(sc_peer **out, const sc_node *node,
                            apr_socket_t *sock, apr_interval_time_t timeout,
                            apr_pool_t *p, const char **why);

apr_status_t sc_peer_send(sc_peer *c, int type, const void *payload,
                          apr_size_t len, apr_pool_t *scratch);

apr_status_t sc_peer_recv(sc_peer *c, apr_pool_t *scratch, int *type,
                          const char **payload, apr_size_t *len,
                          const char **why);

#endif
