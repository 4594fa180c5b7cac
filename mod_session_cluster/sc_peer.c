/* sc_peer.c - authenticated connections and frame I/O between nodes (see
 * sc_peer.h). Runs in clusterd. */
#include <apr_atomic.h>
#include <apr_strings.h>

#include "sc_bytes.h"
#include "sc_peer.h"

const char *sc_peer_remote(apr_socket_t *sock, apr_pool_t *p)
{
    apr_sockaddr_t *sa;
    char *ip = NULL;

    if (apr_socket_addr_get(&sa, APR_REMOTE, sock) == APR_SUCCESS
        && apr_sockaddr_ip_get(&ip, sa) == APR_SUCCESS)
        return apr_psprintf(p, "%s:%u", ip, sa->port);
    return "?";
}

/* One frame's body: the length is validated (and held to `max`) before the
 * body is allocated. */
static apr_status_t read_body(sc_peer *c, apr_pool_t *p, apr_size_t max,
                              unsigned char **body, apr_size_t *len,
                              const char **why)
{
    unsigned char prefix[4];
    apr_status_t rv;

    if ((rv = sc_tls_read(c->tls, prefix, sizeof(prefix))) != APR_SUCCESS) {
        *why = sc_tls_why(c->tls);
        return rv;
    }
    if ((rv = sc_wire_body_len(prefix, len, why)) != APR_SUCCESS)
        return rv;
    if (*len > max) {
        *why = "HELLO too large";
        return APR_EINVAL;
    }
    *body = apr_palloc(p, *len);
    if ((rv = sc_tls_read(c->tls, *body, *len)) != APR_SUCCESS)
        *why = APR_STATUS_IS_EOF(rv) ? "truncated frame" : sc_tls_why(c->tls);
    return rv;
}

static apr_status_t send_hello(sc_peer *c, apr_pool_t *p)
{
    char *frame;
    apr_size_t len;
    apr_status_t rv = sc_wire_hello(&c->wire, p, &frame, &len);
    return rv == APR_SUCCESS ? sc_tls_write(c->tls, frame, len) : rv;
}

static apr_status_t recv_hello(sc_peer *c, const char *expect, apr_pool_t *p,
                               const char **why)
{
    unsigned char *body;
    apr_size_t len;
    apr_status_t rv = read_body(c, p, SC_WIRE_HELLO_MAX, &body, &len, why);
    return rv == APR_SUCCESS
        ? sc_wire_hello_open(&c->wire, body, len, expect, why) : rv;
}

static sc_peer *new_peer(const sc_node *node, apr_socket_t *sock, apr_pool_t *p)
{
    sc_peer *c = apr_pcalloc(p, sizeof(*c));

    c->sock = sock;
    c->stats = node->state;
    /* frames are small request/answer pairs: never wait for Nagle */
    apr_socket_opt_set(sock, APR_TCP_NODELAY, 1);
    sc_wire_conn_init(&c->wire, node->conf->route);
    c->wire.incarnation = (apr_uint64_t)node->created;
    c->wire.manager = (int)node->conf->manager;
    c->remote = sc_peer_remote(sock, p);
    return c;
}

static apr_status_t failed(sc_peer_fail *fail, const char **why, sc_peer_fail f,
                           const char *text, apr_status_t rv)
{
    *fail = f;
    *why = text;
    return rv;
}

static sc_peer_fail from_tls(sc_tls_fail f)
{
    switch (f) {
    case SC_TLS_OK:      return SC_PEER_OK;
    case SC_TLS_TIMEOUT: return SC_PEER_TIMEOUT;
    case SC_TLS_TOO_BIG: return SC_PEER_TOO_BIG;
    case SC_TLS_AUTH:    return SC_PEER_AUTH;
    case SC_TLS_NOT_TLS: return SC_PEER_NOT_TLS;
    default:             return SC_PEER_UNREACHABLE;
    }
}

/* Why the HELLO after the handshake did not do: a peer that refused us
 * with an alert (our certificate) did not let us authenticate; one that
 * sent a HELLO we cannot read speaks another protocol version. */
static sc_peer_fail hello_fail(apr_status_t rv)
{
    return rv == APR_EACCES ? SC_PEER_AUTH : rv == APR_EINVAL ? SC_PEER_BAD_HELLO
           : APR_STATUS_IS_TIMEUP(rv) ? SC_PEER_TIMEOUT : SC_PEER_UNREACHABLE;
}

/* Both sides say their ClusterManager; both refuse another one. */
static apr_status_t check_manager(sc_peer *c, const sc_node *node,
                                  apr_pool_t *p, sc_peer_fail *fail,
                                  const char **why)
{
    if (c->wire.peer_manager == (int)node->conf->manager)
        return APR_SUCCESS;
    return failed(fail, why, SC_PEER_MANAGER, apr_psprintf(p, "member %s runs "
                  "ClusterManager %s, this node %s: not linking", c->wire.peer,
                  sc_manager_name((sc_manager_e)c->wire.peer_manager),
                  sc_manager_name(node->conf->manager)), APR_EACCES);
}

/* TCP, then TLS offering key `key`; the handshake and HELLOs within
 * `timeout` as well (a frozen member is found out as fast as by a ping). */
static apr_status_t dial(sc_peer **out, const sc_node *node, const sc_member *m,
                         int key, apr_interval_time_t timeout, apr_pool_t *p,
                         sc_peer_fail *fail, const char **why)
{
    apr_time_t deadline;
    apr_sockaddr_t *sa;
    apr_socket_t *sock;
    sc_tls_fail tf;
    sc_peer *c;
    apr_status_t rv;

    if ((rv = apr_sockaddr_info_get(&sa, m->addr.host, APR_UNSPEC, m->addr.port,
                                    0, p)) != APR_SUCCESS
        || (rv = apr_socket_create(&sock, sa->family, SOCK_STREAM, APR_PROTO_TCP,
                                   p)) != APR_SUCCESS)
        return failed(fail, why, SC_PEER_UNREACHABLE, "cannot resolve or "
                      "connect", rv);
    if ((rv = apr_socket_timeout_set(sock, timeout)) != APR_SUCCESS
        || (rv = apr_socket_connect(sock, sa)) != APR_SUCCESS) {
        apr_socket_close(sock);
        return failed(fail, why, SC_PEER_UNREACHABLE, "cannot connect", rv);
    }
    c = new_peer(node, sock, p);
    deadline = apr_time_now() + timeout;
    rv = sc_tls_client(&c->tls, node->tls, sock, node->conf->route, m->route, key,
                       deadline, p, &tf, why);
    if (rv != APR_SUCCESS) {
        apr_socket_close(sock);
        *fail = from_tls(tf);
        return rv;
    }
    *out = c;
    return APR_SUCCESS;
}

apr_status_t sc_peer_connect(sc_peer **out, const sc_node *node,
                             const sc_member *m, apr_interval_time_t timeout,
                             apr_pool_t *p, sc_peer_fail *fail,
                             const char **why)
{
    sc_peer *c = NULL;
    apr_status_t rv = APR_EGENERAL;
    int key;

    /* the newest key first; an older one is still offered while the member
     * may not have the new one yet (a rotation under way) */
    for (key = 0; key < sc_tls_keys(node->tls); key++) {
        rv = dial(&c, node, m, key, timeout, p, fail, why);
        if (rv == APR_SUCCESS || *fail != SC_PEER_AUTH)
            break;
    }
    if (rv != APR_SUCCESS)
        return rv;
    *why = "cannot send HELLO";
    if ((rv = send_hello(c, p)) != APR_SUCCESS
        || (rv = recv_hello(c, NULL, p, why)) != APR_SUCCESS) {
        sc_peer_close(c);
        return failed(fail, why, hello_fail(rv), apr_psprintf(p, "HELLO: %s", *why),
                      rv);
    }
    if (strcmp(c->wire.peer, m->route)) {
        sc_peer_close(c);
        return failed(fail, why, SC_PEER_ROUTE, apr_psprintf(p, "the node at %s "
                      "says it is %s, not member %s", m->addr.text, c->wire.peer,
                      m->route), APR_EACCES);
    }
    if ((rv = check_manager(c, node, p, fail, why)) != APR_SUCCESS) {
        sc_peer_close(c);
        return rv;
    }
    sc_tls_deadline(c->tls, 0);
    *fail = SC_PEER_OK;
    *out = c;
    return APR_SUCCESS;
}

static int from_loopback(apr_socket_t *sock)
{
    apr_sockaddr_t *sa;
    if (apr_socket_addr_get(&sa, APR_REMOTE, sock) != APR_SUCCESS)
        return 0;
    if (sa->family == APR_INET)
        return (ntohl(sa->sa.sin.sin_addr.s_addr) >> 24) == 127;
#if APR_HAVE_IPV6
    if (sa->family == APR_INET6)
        return IN6_IS_ADDR_LOOPBACK(&sa->sa.sin6.sin6_addr)
            || (IN6_IS_ADDR_V4MAPPED(&sa->sa.sin6.sin6_addr)
                && sa->sa.sin6.sin6_addr.s6_addr[12] == 127);
#endif
    return 0;
}

apr_status_t sc_peer_accept(sc_peer **out, const sc_node *node,
                            apr_socket_t *sock, apr_time_t deadline,
                            apr_pool_t *p, sc_peer_fail *fail,
                            const char **why)
{
    sc_peer *c = new_peer(node, sock, p);
    sc_tls_fail tf;
    apr_status_t rv;

    *out = c;
    if (node->keys->none && !from_loopback(sock))
        return failed(fail, why, SC_PEER_LOOPBACK, "not on loopback, and "
                      "ClusterSecretFile is none", APR_EACCES);
    if ((rv = sc_tls_server(&c->tls, node->tls, sock, deadline, p, &tf, why))
        != APR_SUCCESS) {
        *fail = from_tls(tf);
        return rv;
    }
    if ((rv = recv_hello(c, NULL, p, why)) != APR_SUCCESS)
        return failed(fail, why, hello_fail(rv), apr_psprintf(p, "HELLO: %s", *why),
                      rv);
    if (!sc_tls_peer_is(c->tls, c->wire.peer))
        return failed(fail, why, SC_PEER_ROUTE, apr_psprintf(p, "its HELLO says "
                      "%s, but it authenticated as another route", c->wire.peer),
                      APR_EACCES);
    if (sc_node_slot_of(node, c->wire.peer) < 0
        || !strcmp(c->wire.peer, node->conf->route))
        return failed(fail, why, SC_PEER_ROUTE, apr_psprintf(p, "route %s is not "
                      "a member (configured, or heard by multicast yet)",
                      c->wire.peer), APR_EACCES);
    /* our HELLO first, so a member with another manager hears ours and
     * refuses too: the error shows on both sides */
    if ((rv = send_hello(c, p)) != APR_SUCCESS)
        return failed(fail, why, SC_PEER_UNREACHABLE, "cannot send HELLO", rv);
    if ((rv = check_manager(c, node, p, fail, why)) != APR_SUCCESS)
        return rv;
    sc_tls_deadline(c->tls, 0);
    *fail = SC_PEER_OK;
    return APR_SUCCESS;
}

void sc_peer_close(sc_peer *c)
{
    apr_socket_close(c->sock);
}

/* How many session changes a frame carries (for the traffic counters). */
static apr_uint32_t changes_in(int type, const void *payload, apr_size_t len)
{
    if (type == SC_MSG_BATCH)
        return len >= 4 ? get_u32(payload) : 0;
    return sc_wire_is_change(type);
}

/* One frame out, waiting for the socket or not (drained NULL: waiting). */
static apr_status_t send_frame(sc_peer *c, int type, const void *payload,
                               apr_size_t len, apr_pool_t *scratch, int *drained)
{
    char *frame;
    apr_size_t flen;
    apr_uint32_t n;
    apr_status_t rv = sc_wire_frame(&c->wire, type, payload, len, scratch,
                                    &frame, &flen);
    if (rv == APR_SUCCESS)
        rv = drained ? sc_tls_write_nowait(c->tls, frame, flen, drained)
                     : sc_tls_write(c->tls, frame, flen);
    if (rv == APR_SUCCESS && (n = changes_in(type, payload, len)) > 0) {
        apr_atomic_add64(&c->stats->changes_out, n);
        apr_atomic_add64(&c->stats->change_bytes_out, flen);
    }
    return rv;
}

apr_status_t sc_peer_send(sc_peer *c, int type, const void *payload,
                          apr_size_t len, apr_pool_t *scratch)
{
    return send_frame(c, type, payload, len, scratch, NULL);
}

apr_status_t sc_peer_send_nowait(sc_peer *c, int type, const void *payload,
                                 apr_size_t len, apr_pool_t *scratch,
                                 int *drained)
{
    return send_frame(c, type, payload, len, scratch, drained);
}

apr_status_t sc_peer_recv(sc_peer *c, apr_pool_t *scratch, int *type,
                          const char **payload, apr_size_t *len,
                          const char **why)
{
    unsigned char *body;
    apr_size_t blen;
    apr_uint32_t n;
    apr_status_t rv = read_body(c, scratch, SC_WIRE_MAX_BODY, &body, &blen, why);
    if (rv == APR_SUCCESS)
        rv = sc_wire_open(&c->wire, body, blen, scratch, type, payload, len, why);
    if (rv == APR_SUCCESS && (n = changes_in(*type, *payload, *len)) > 0) {
        apr_atomic_add64(&c->stats->changes_in, n);
        apr_atomic_add64(&c->stats->change_bytes_in, blen + 4);
    }
    return rv;
}
