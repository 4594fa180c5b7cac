/* sc_tls.h - TLS 1.3 (OpenSSL) under every connection between members.
 *
 * Contract:
 *  - One sc_tls per node (made in the parent at start, inherited by
 *    clusterd): TLS 1.3 only, TLS_AES_256_GCM_SHA384, (EC)DHE on every
 *    handshake (psk_dhe_ke: forward secrecy), no tickets, no resumption.
 *  - Authentication is either an external PSK per cluster key (sc_keys: the
 *    default) or certificates (ClusterCertificateFile/KeyFile/CACertificate
 *    File). PSK identities are "sc2 <key id> <route>": a client offers its
 *    route and one key (`key`, 0 = the newest); a server takes any key it
 *    holds and remembers the route. Certificates: each side verifies the
 *    other against the CA; a client checks the server's certificate names
 *    the member it dialled, a server checks the client's names the route
 *    its HELLO claims (sc_tls_peer_is).
 *  - A connection runs over an APR socket through memory BIOs: every byte
 *    read from the socket passes here, so a handshake is bounded by one
 *    deadline and a byte budget (a handshake's worth) before anything of
 *    the peer is believed. Afterwards reads and writes are whole
 *    (sc_tls_read/sc_tls_write), each wait bounded by the socket's timeout.
 *  - Failures say why in words and whether the peer failed to authenticate
 *    (SC_TLS_AUTH) or the network did (SC_TLS_IO, SC_TLS_TIMEOUT), or it
 *    sent more than a handshake (SC_TLS_TOO_BIG).
 *  - Only APR and OpenSSL: no httpd headers (unit tests and the test peer
 *    tool link it alone). One thread uses a connection at a time.
 *  - Runs in clusterd: member links and inbound connections.
 */
#ifndef SC_TLS_H
#define SC_TLS_H

#include <apr_network_io.h>
#include <apr_pools.h>
#include <apr_time.h>

#include "sc_keys.h"

/* how long a whole handshake (and the HELLOs after it) may take */
#define SC_TLS_HANDSHAKE_WAIT  apr_time_from_msec(2000)
/* bytes a peer may send before it has authenticated */
#define SC_TLS_BUDGET_PSK      (16 * 1024)
#define SC_TLS_BUDGET_CERTS    (64 * 1024)

typedef struct sc_tls sc_tls;
typedef struct sc_tls_conn sc_tls_conn;

typedef enum {
    SC_TLS_OK = 0,
    SC_TLS_IO,          /* connection refused, reset or closed */
    SC_TLS_TIMEOUT,     /* no complete handshake before the deadline */
    SC_TLS_TOO_BIG,     /* more bytes than a handshake before completing */
    SC_TLS_AUTH,        /* the peer did not prove the secret or certificate */
    SC_TLS_NOT_TLS      /* the peer's first bytes were no TLS handshake */
} sc_tls_fail;

typedef struct {
    const sc_keys *keys;        /* PSK mode: the cluster's keys */
    const char *cert_file;      /* certificate mode when set (all three) */
    const char *key_file;
    const char *ca_file;
} sc_tls_conf;

/* The node's TLS context; freed with p. *why on failure. */
apr_status_t sc_tls_create(sc_tls **out, const sc_tls_conf *conf,
                           apr_pool_t *p, const char **why);
int sc_tls_keys(const sc_tls *t);   /* keys a client may offer (1 with certs) */
int sc_tls_certs(const sc_tls *t);

/* Handshake as client on a connected socket, offering key `key` (PSK) or
 * expecting a certificate for `peer_route`; as server on an accepted one.
 * The connection lives in p (freed with it); the socket stays the
 * caller's. On failure *fail and *why say what happened. */
apr_status_t sc_tls_client(sc_tls_conn **out, sc_tls *t, apr_socket_t *sock,
                           const char *self_route, const char *peer_route,
                           int key, apr_time_t deadline, apr_pool_t *p,
                           sc_tls_fail *fail, const char **why);
apr_status_t sc_tls_server(sc_tls_conn **out, sc_tls *t, apr_socket_t *sock,
                           apr_time_t deadline, apr_pool_t *p,
                           sc_tls_fail *fail, const char **why);

/* The peer authenticated as `route`: its PSK identity names it, or its
 * certificate does (a client's PSK peer is whoever holds the key). */
int sc_tls_peer_is(const sc_tls_conn *c, const char *route);
/* Why the last read failed, in words. */
const char *sc_tls_why(const sc_tls_conn *c);
/* The key id the handshake used ("cert" with certificates). */
const char *sc_tls_key_id(const sc_tls_conn *c);

/* Whole reads and writes; APR_EOF when the peer closed, APR_EACCES when it
 * refused us with an alert (e.g. our certificate, checked by a TLS 1.3
 * server after our handshake completed). A failed read or write leaves the
 * connection unusable; sc_tls_why() says why. */
apr_status_t sc_tls_read(sc_tls_conn *c, void *buf, apr_size_t len);
apr_status_t sc_tls_write(sc_tls_conn *c, const void *buf, apr_size_t len);
/* The same write without waiting for the socket: what it does not take now
 * stays in the connection, in order, and goes out with the next write or
 * sc_tls_flush(); *drained says nothing stayed. Not concurrently with any
 * other call on the connection (its owner serialises them). */
apr_status_t sc_tls_write_nowait(sc_tls_conn *c, const void *buf,
                                 apr_size_t len, int *drained);
/* Send what sc_tls_write_nowait() left, waiting as the socket's timeout says. */
apr_status_t sc_tls_flush(sc_tls_conn *c);
/* Whether a read would find data without touching the socket (decrypted or
 * received but not taken yet): poll() on the socket would not see it. */
int sc_tls_buffered(sc_tls_conn *c);
/* At most len bytes, at least 1 unless it fails (waiting as the socket's
 * timeout says: with 0, APR_EAGAIN when nothing has arrived). */
apr_status_t sc_tls_recv(sc_tls_conn *c, void *buf, apr_size_t len,
                         apr_size_t *got);
/* Bound reads that follow to `deadline` (0: the connection's timeout). */
void sc_tls_deadline(sc_tls_conn *c, apr_time_t deadline);
/* Each wait from now on (no deadline) is bounded by `timeout`; > 0 makes
 * the socket blocking with kernel timeouts (sc_sock_blocking), < 0 blocking
 * without bound, 0 non-blocking (APR_EAGAIN when nothing has arrived). */
apr_status_t sc_tls_timeout(sc_tls_conn *c, apr_interval_time_t timeout);

/* Bytes read from the socket so far (raw, TLS records included). */
apr_size_t sc_tls_bytes_in(const sc_tls_conn *c);

#endif
