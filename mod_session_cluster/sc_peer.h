/* sc_peer.h - one connection between two cluster nodes (runs in clusterd).
 *
 * Contract:
 *  - sc_peer_connect() dials a member, authenticates over TLS 1.3 (sc_tls:
 *    the newest cluster key first, then an older one still held, so nodes
 *    roll a new secret one by one) and exchanges HELLOs inside TLS: the
 *    member must answer with the route we dialled and our ClusterManager.
 *  - sc_peer_accept() does the same for an accepted socket: a handshake
 *    bounded by a deadline and a byte budget, then a HELLO whose
 *    route is the one the peer authenticated as (PSK identity or
 *    certificate) and a member's (configured, or heard by multicast), not
 *    ours. With `ClusterSecretFile none` only loopback peers are taken.
 *    Nothing a peer sent counts before this returns APR_SUCCESS.
 *  - Failures come with a class (sc_peer_fail) and why in words; the
 *    caller decides what the member table shows and what to log.
 *  - sc_peer_send()/sc_peer_recv() move one frame, bounded by the socket's
 *    timeout. Any failure reports why; the caller then closes the connection
 *    (a connection that has seen one bad frame is never trusted again).
 */
#ifndef SC_PEER_H
#define SC_PEER_H

#include <apr_network_io.h>

#include "sc_node.h"
#include "sc_tls.h"
#include "sc_wire.h"

typedef enum {
    SC_PEER_OK = 0,
    SC_PEER_UNREACHABLE,    /* refused, reset, closed: the network */
    SC_PEER_TIMEOUT,        /* no handshake in time (frozen, or dribbling) */
    SC_PEER_TOO_BIG,        /* more than a handshake before authenticating */
    SC_PEER_AUTH,           /* did not prove the cluster key / certificate */
    SC_PEER_ROUTE,          /* not the member it claims, or not a member */
    SC_PEER_MANAGER,        /* another ClusterManager */
    SC_PEER_LOOPBACK,       /* ClusterSecretFile none: not from loopback */
    SC_PEER_NOT_TLS,        /* spoke something else first (an old version?) */
    SC_PEER_BAD_HELLO,      /* authenticated, but its HELLO does not decode */
    SC_PEER_FAILS_
} sc_peer_fail;

typedef struct {
    apr_socket_t *sock;
    sc_tls_conn *tls;
    sc_wire_conn wire;
    const char *remote;         /* "ip:port" of the other end, for logs */
    sc_cluster_state *stats;    /* counts session traffic */
} sc_peer;

apr_status_t sc_peer_connect(sc_peer **out, const sc_node *node,
                             const sc_member *m, apr_interval_time_t timeout,
                             apr_pool_t *p, sc_peer_fail *fail,
                             const char **why);

/* `sock` is the caller's (it closes it); the connection lives in p; the
 * handshake and HELLO must be over by `deadline` (from accept). */
apr_status_t sc_peer_accept(sc_peer **out, const sc_node *node,
                            apr_socket_t *sock, apr_time_t deadline,
                            apr_pool_t *p, sc_peer_fail *fail,
                            const char **why);

void sc_peer_close(sc_peer *c);

apr_status_t sc_peer_send(sc_peer *c, int type, const void *payload,
                          apr_size_t len, apr_pool_t *scratch);
/* The same without waiting for the socket: what it does not take now goes
 * out, in order, with the next send or sc_tls_flush(c->tls); *drained says
 * it all went. */
apr_status_t sc_peer_send_nowait(sc_peer *c, int type, const void *payload,
                                 apr_size_t len, apr_pool_t *scratch,
                                 int *drained);

apr_status_t sc_peer_recv(sc_peer *c, apr_pool_t *scratch, int *type,
                          const char **payload, apr_size_t *len,
                          const char **why);

/* "ip:port" of a socket's other end ("?" when unknown). */
const char *sc_peer_remote(apr_socket_t *sock, apr_pool_t *p);

#endif
