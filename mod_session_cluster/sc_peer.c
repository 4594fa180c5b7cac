/* sc_peer.c - handshake and frame I/O between nodes (see sc_peer.h). */
#include <apr_atomic.h>
#include <apr_strings.h>

#include "sc_peer.h"
#include "sc_sock.h"

/* One frame's body: the length is validated before the body is allocated. */
static apr_status_t read_body(apr_socket_t *sock, apr_pool_t *p,
                              unsigned char **body, apr_size_t *len,
                              const char **why)
{
    unsigned char prefix[4];
    apr_status_t rv;

    *why = "connection closed or timed out";
    if ((rv = sc_sock_read(sock, prefix, sizeof(prefix))) != APR_SUCCESS)
        return rv;
    if ((rv = sc_wire_body_len(prefix, len, why)) != APR_SUCCESS)
        return rv;
    *body = apr_palloc(p, *len);
    *why = "truncated frame";
    return sc_sock_read(sock, *body, *len);
}

static apr_status_t send_hello(sc_peer *c, unsigned char *random, apr_pool_t *p)
{
    char *frame;
    apr_size_t len;
    apr_status_t rv = sc_wire_hello(&c->wire, random, p, &frame, &len);
    return rv == APR_SUCCESS ? sc_sock_write(c->sock, frame, len) : rv;
}

static apr_status_t recv_hello(sc_peer *c, const char *expect, unsigned char *random,
                               apr_pool_t *p, const char **why)
{
    unsigned char *body;
    apr_size_t len;
    apr_status_t rv = read_body(c->sock, p, &body, &len, why);
    return rv == APR_SUCCESS
        ? sc_wire_hello_open(&c->wire, body, len, expect, random, why) : rv;
}

static sc_peer *new_peer(const sc_node *node, apr_socket_t *sock, apr_pool_t *p)
{
    sc_peer *c = apr_pcalloc(p, sizeof(*c));
    apr_sockaddr_t *sa;
    char *ip = NULL;

    c->sock = sock;
    c->stats = node->state;
    /* frames are small request/answer pairs: never wait for Nagle */
    apr_socket_opt_set(sock, APR_TCP_NODELAY, 1);
    sc_wire_conn_init(&c->wire, node->conf->route, node->secret != NULL);
    c->wire.incarnation = (apr_uint64_t)node->created;
    c->remote = "?";
    if (apr_socket_addr_get(&sa, APR_REMOTE, sock) == APR_SUCCESS
        && apr_sockaddr_ip_get(&ip, sa) == APR_SUCCESS)
        c->remote = apr_psprintf(p, "%s:%u", ip, sa->port);
    return c;
}

apr_status_t sc_peer_connect(sc_peer **out, const sc_node *node,
                             const sc_member *m, apr_interval_time_t timeout,
                             apr_pool_t *p, const char **why)
{
    unsigned char mine[SC_WIRE_RANDOM_BYTES], theirs[SC_WIRE_RANDOM_BYTES];
    apr_sockaddr_t *sa;
    apr_socket_t *sock;
    sc_peer *c;
    apr_status_t rv;

    *why = "cannot resolve or connect";
    if ((rv = apr_sockaddr_info_get(&sa, m->addr.host, APR_UNSPEC, m->addr.port,
                                    0, p)) != APR_SUCCESS
        || (rv = apr_socket_create(&sock, sa->family, SOCK_STREAM, APR_PROTO_TCP,
                                   p)) != APR_SUCCESS)
        return rv;
    if ((rv = apr_socket_timeout_set(sock, timeout)) != APR_SUCCESS
        || (rv = apr_socket_connect(sock, sa)) != APR_SUCCESS) {
        apr_socket_close(sock);
        return rv;
    }
    c = new_peer(node, sock, p);
    *why = "handshake failed";
    if ((rv = send_hello(c, mine, p)) != APR_SUCCESS
        || (rv = recv_hello(c, m->route, theirs, p, why)) != APR_SUCCESS
        || (rv = sc_wire_conn_keys(&c->wire, node->secret, mine, theirs, 1))
           != APR_SUCCESS) {
        apr_socket_close(sock);
        return rv;
    }
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
                            apr_socket_t *sock, apr_interval_time_t timeout,
                            apr_pool_t *p, const char **why)
{
    unsigned char mine[SC_WIRE_RANDOM_BYTES], theirs[SC_WIRE_RANDOM_BYTES];
    sc_peer *c = new_peer(node, sock, p);
    apr_status_t rv;

    *out = c;
    if (!node->secret && !from_loopback(sock)) {
        *why = "not on loopback and no ClusterSecretFile";
        return APR_EACCES;
    }
    if ((rv = apr_socket_timeout_set(sock, timeout)) != APR_SUCCESS
        || (rv = recv_hello(c, NULL, theirs, p, why)) != APR_SUCCESS)
        return rv;
    if (sc_node_slot_of(node, c->wire.peer) < 0
        || !strcmp(c->wire.peer, node->conf->route)) {
        *why = "HELLO from a route that is not a member (configured, or heard by multicast yet)";
        return APR_EACCES;
    }
    *why = "handshake failed";
    if ((rv = send_hello(c, mine, p)) != APR_SUCCESS)
        return rv;
    return sc_wire_conn_keys(&c->wire, node->secret, theirs, mine, 0);
}

static int is_change(int type)
{
    return type == SC_MSG_SESSION || type == SC_MSG_DELTA
        || type == SC_MSG_INVALIDATE || type == SC_MSG_LOCATION;
}

apr_status_t sc_peer_send(sc_peer *c, int type, const void *payload,
                          apr_size_t len, apr_pool_t *scratch)
{
    char *frame;
    apr_size_t flen;
    apr_status_t rv = sc_wire_seal(&c->wire, type, payload, len, scratch,
                                   &frame, &flen);
    if (rv == APR_SUCCESS && (rv = sc_sock_write(c->sock, frame, flen)) == APR_SUCCESS
        && is_change(type)) {
        apr_atomic_inc64(&c->stats->changes_out);
        apr_atomic_add64(&c->stats->change_bytes_out, flen);
    }
    return rv;
}

apr_status_t sc_peer_recv(sc_peer *c, apr_pool_t *scratch, int *type,
                          const char **payload, apr_size_t *len,
                          const char **why)
{
    unsigned char *body;
    apr_size_t blen;
    apr_status_t rv = read_body(c->sock, scratch, &body, &blen, why);
    if (rv == APR_SUCCESS)
        rv = sc_wire_open(&c->wire, body, blen, scratch, type, payload, len, why);
    if (rv == APR_SUCCESS && is_change(*type)) {
        apr_atomic_inc64(&c->stats->changes_in);
        apr_atomic_add64(&c->stats->change_bytes_in, blen + 4);
    }
    return rv;
}
