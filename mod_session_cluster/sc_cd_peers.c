/* sc_cd_peers.c - clusterd: inbound member connections (see sc_cd.h).
 *
 * The acceptor thread admits a connection only within its source address's
 * handshake quota (sc_gate), then runs it on a thread of its own: the TLS
 * handshake and HELLOs (sc_peer_accept), then every frame the member sends,
 * applied (sc_apply) and answered; a connection that sends one bad frame is
 * dropped with a log line. Refusals are logged once per kind per interval.
 */
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "sc_module.h"
#include "sc_apply.h"
#include "sc_cd.h"
#include "sc_id.h"
#include "sc_tls.h"
#include "sc_transfer.h"

APLOG_USE_MODULE(session_cluster);

/* authenticated inbound connections beyond this are closed at once (the
 * gate bounds those still handshaking) */
#define SC_MAX_INBOUND(nmembers) (2 * (nmembers) + 8)

typedef struct {
    sc_daemon *d;
    apr_socket_t *sock;
    apr_pool_t *pool;
    apr_time_t accepted;
    int ticket;             /* the gate's, while the peer handshakes */
} sc_conn;                  /* an accepted connection, owned by its task */

static void drop(sc_conn *in, const char *remote, const char *why,
                 apr_status_t rv, int level)
{
    ap_log_error(APLOG_MARK, level, rv, in->d->s, "clusterd: dropping connection "
                 "from %s: %s", remote, why);
}

static apr_status_t answer(sc_peer *c, int type, int status, apr_pool_t *p)
{
    sc_msg_ack ack = { c->wire.rx_counter, status };
    apr_size_t len;
    char *buf;
    apr_status_t rv = sc_msg_ack_encode(p, &ack, &buf, &len);
    return rv == APR_SUCCESS ? sc_peer_send(c, type, buf, len, p) : rv;
}

/* Inbound traffic from a member is proof of life as good as a pong. */
static void heard_from(sc_daemon *d, const char *route)
{
    int i;
    for (i = 0; i < sc_cd_link_count(d); i++) {
        sc_link *l = sc_cd_link_at(d, i);
        if (!strcmp(sc_link_route(l), route))
            sc_link_heard(l);
    }
}

/* A member asks for a session it was sent to serve: the data, its
 * tombstone, where it lives (a proxy here), or NOTFOUND. */
static apr_status_t answer_fetch(sc_daemon *d, sc_peer *c, const char *payload,
                                 apr_size_t len, apr_pool_t *p)
{
    const char *id, *out;
    apr_size_t out_len;
    sc_session s;
    int type;

    if (sc_msg_id_decode(p, payload, len, &id) != APR_SUCCESS)
        return APR_EINVAL;
    if (sc_store_get(d->node->store, id, apr_time_now(), p, &s) != APR_SUCCESS
        || sc_apply_describe(p, &s, &type, &out, &out_len) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, d->s, "clusterd: %s asked for "
                     "session %s: not here", c->wire.peer, sc_id_digest(p, id));
        return answer(c, SC_MSG_ACK, SC_ACK_NOTFOUND, p);
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, d->s, "clusterd: %s asked for "
                 "session %s: sending its %s", c->wire.peer, sc_id_digest(p, id),
                 type == SC_MSG_SESSION ? "data" : type == SC_MSG_LOCATION
                 ? "location" : "tombstone");
    return sc_peer_send(c, type, out, out_len, p);
}

/* Several changes in one frame: each applied in order, then one
 * BATCH_APPLIED with their statuses (which also says they were received:
 * no ACK of its own, one write per batch). */
static apr_status_t apply_batch(sc_daemon *d, sc_peer *c, const char *payload,
                                apr_size_t len, apr_pool_t *p, const char **why)
{
    sc_msg_batch_applied applied;
    sc_msg_change *changes;
    apr_size_t out_len;
    char *out;
    int i;
    apr_status_t rv;

    *why = "undecodable batch; nothing applied";
    if (sc_msg_batch_decode(p, payload, len, &changes, &applied.n) != APR_SUCCESS)
        return APR_EINVAL;
    applied.counter = c->wire.rx_counter;
    applied.status = apr_palloc(p, applied.n);
    for (i = 0; i < applied.n; i++) {
        int status = sc_apply_frame(d->node, changes[i].type, changes[i].data,
                                    changes[i].len, c->wire.peer, p);
        if (status == SC_ACK_REFUSED) {
            *why = "undecodable change in a batch; the rest not applied";
            return APR_EGENERAL;
        }
        applied.status[i] = (unsigned char)status;
    }
    ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, d->s, "clusterd: batch of %d "
                 "changes from %s applied", applied.n, c->wire.peer);
    *why = "cannot answer a batch";
    if ((rv = sc_msg_batch_applied_encode(p, &applied, &out, &out_len))
        != APR_SUCCESS)
        return rv;
    return sc_peer_send(c, SC_MSG_BATCH_APPLIED, out, out_len, p);
}

/* One frame from a member. Returns non-APR_SUCCESS to drop the connection. */
static apr_status_t dispatch(sc_conn *in, sc_peer *c, int type,
                             const char *payload, apr_size_t len, apr_pool_t *p,
                             const char **why)
{
    sc_daemon *d = in->d;
    apr_uint32_t sent;
    apr_status_t rv;
    int status;

    switch (type) {
    case SC_MSG_PING:
        *why = "cannot answer ping";
        return sc_peer_send(c, SC_MSG_PONG, payload, len, p);
    case SC_MSG_SESSION:
    case SC_MSG_DELTA:
    case SC_MSG_INVALIDATE:
    case SC_MSG_LOCATION:
        *why = "cannot acknowledge";
        if ((rv = answer(c, SC_MSG_ACK, SC_ACK_OK, p)) != APR_SUCCESS)
            return rv;
        status = sc_apply_frame(d->node, type, payload, len, c->wire.peer, p);
        if (status == SC_ACK_REFUSED) {
            *why = "undecodable change; nothing applied";
            return APR_EGENERAL;
        }
        ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, d->s, "clusterd: %s frame from "
                     "%s applied with status %d", type == SC_MSG_DELTA ? "delta"
                     : type == SC_MSG_SESSION ? "session" : type == SC_MSG_LOCATION
                     ? "location" : "invalidate", c->wire.peer, status);
        return answer(c, SC_MSG_APPLIED, status, p);
    case SC_MSG_BATCH:
        return apply_batch(d, c, payload, len, p, why);
    case SC_MSG_FETCH:
        *why = "undecodable fetch, or cannot answer it";
        return answer_fetch(d, c, payload, len, p);
    case SC_MSG_MERGE_REQ: {
        int i;
        *why = "a merge request with a payload";
        if (len)
            return APR_EINVAL;
        for (i = 0; i < sc_cd_link_count(d); i++)
            if (!strcmp(sc_link_route(sc_cd_link_at(d, i)), c->wire.peer))
                sc_cd_resync_with(d, i, 0);
        return APR_SUCCESS;
    }
    case SC_MSG_STATE_REQ: {
        /* the member counts as up before the snapshot is taken, so every
         * change made after it is queued for the member as well */
        apr_time_t start = apr_time_now();
        rv = sc_transfer_send(d->node, c, p, &sent);
        ap_log_error(APLOG_MARK, APLOG_INFO, rv, d->s, "clusterd: sent %u "
                     "sessions to %s in %" APR_TIME_T_FMT " ms", sent,
                     c->wire.peer, apr_time_as_msec(apr_time_now() - start));
        *why = "state transfer failed";
        return rv;
    }
    }
    *why = apr_psprintf(p, "unexpected frame type %d from %s", type, c->wire.peer);
    return APR_EGENERAL;
}

static void serve_frames(sc_conn *in, sc_peer *c)
{
    apr_pool_t *scratch;
    apr_status_t rv;

    apr_pool_create(&scratch, in->pool);
    sc_tls_timeout(c->tls, SC_PEER_IDLE);
    for (;;) {
        const char *payload, *why;
        apr_size_t len;
        int type;

        apr_pool_clear(scratch);
        rv = sc_peer_recv(c, scratch, &type, &payload, &len, &why);
        if (rv == APR_SUCCESS) {
            heard_from(in->d, c->wire.peer);
            rv = dispatch(in, c, type, payload, len, scratch, &why);
        }
        if (rv != APR_SUCCESS) {
            int quiet = APR_STATUS_IS_EOF(rv) || APR_STATUS_IS_TIMEUP(rv)
                        || APR_STATUS_IS_ECONNRESET(rv);
            drop(in, c->remote, why, rv, quiet ? APLOG_DEBUG : APLOG_WARNING);
            return;
        }
    }
}

/* A connection that did not become a member's link: one line per kind
 * at most every SC_RATELOG_EVERY, naming the address and the reason, so
 * strangers' noise never floods the log. Keys and managers that differ are
 * configuration errors; the rest is warned about. */
static void refused_peer(sc_daemon *d, const char *remote, int kind,
                         const char *why)
{
    static const char *const what[SC_REFUSED_BUSY + 1] = {
        [SC_PEER_UNREACHABLE] = "connection lost during the handshake",
        [SC_PEER_TIMEOUT] = "too slow",
        [SC_PEER_TOO_BIG] = "oversized handshake",
        [SC_PEER_AUTH] = "authentication failed",
        [SC_PEER_ROUTE] = "not the member it claims",
        [SC_PEER_MANAGER] = "another ClusterManager",
        [SC_PEER_LOOPBACK] = "not from loopback",
        [SC_PEER_NOT_TLS] = "not TLS",
        [SC_PEER_BAD_HELLO] = "malformed HELLO",
        [SC_REFUSED_BUSY] = "too many handshakes"
    };
    apr_uint32_t held;

    if (kind <= SC_PEER_OK || kind > SC_REFUSED_BUSY
        || !sc_ratelog_due(d->refusals, kind, apr_time_now(), &held))
        return;
    ap_log_error(APLOG_MARK, kind == SC_PEER_AUTH || kind == SC_PEER_MANAGER
                 ? APLOG_ERR : APLOG_WARNING, 0, d->s, "clusterd: refused a peer "
                 "connection from %s: %s: %s (%u refused for this reason since this "
                 "line was last written; it is written at most every %"
                 APR_TIME_T_FMT " s)", remote, what[kind], why, held + 1,
                 apr_time_sec(SC_RATELOG_EVERY));
}

/* The thread of one inbound connection; owns its unmanaged pool (and the
 * thread's own structure in it: APR touches neither after this returns).
 * Until sc_peer_accept() returns, the peer is a stranger holding a gate
 * ticket, its deadline counted from accept; nothing it sent has reached the
 * member table. */
static void *APR_THREAD_FUNC inbound_task(apr_thread_t *t, void *arg)
{
    sc_conn *in = arg;
    sc_daemon *d = in->d;
    apr_uint32_t limit = SC_MAX_INBOUND(d->node->peers);
    sc_peer_fail fail = SC_PEER_OK;
    const char *why = "";
    sc_peer *c;
    apr_status_t rv;
    (void)t;

    rv = sc_peer_accept(&c, d->node, in->sock, in->accepted + SC_TLS_HANDSHAKE_WAIT,
                        in->pool, &fail, &why);
    sc_gate_leave(d->gate, in->ticket);
    if (rv != APR_SUCCESS)
        refused_peer(d, c->remote, fail, why);
    else if (apr_atomic_inc32(&d->inbound) >= limit) {
        apr_atomic_dec32(&d->inbound);
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, d->s, "clusterd: %u member "
                     "connections open already; closing one from %s (%s)", limit,
                     c->wire.peer, c->remote);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, d->s, "clusterd: member %s "
                     "connected from %s (key %s)", c->wire.peer, c->remote,
                     sc_tls_key_id(c->tls));
        heard_from(d, c->wire.peer);
        serve_frames(in, c);
        apr_atomic_dec32(&d->inbound);
    }
    apr_socket_close(in->sock);
    apr_pool_destroy(in->pool);
    return NULL;
}

/* Accept peers and run each connection on a thread of its own (with a
 * fresh unmanaged pool holding the socket), so that no handshake ever
 * waits for a thread behind another one (the gate and SC_MAX_INBOUND bound
 * how many there are). `admit` may refuse it first. */
typedef void *(APR_THREAD_FUNC *sc_conn_task)(apr_thread_t *, void *);
typedef int (*sc_conn_admit)(sc_conn *conn);

static void accept_loop(sc_daemon *d, apr_socket_t *listener, sc_conn_task task,
                        sc_conn_admit admit, const char *what)
{
    for (;;) {
        sc_conn *conn;
        apr_pool_t *cp;
        apr_socket_t *sock;
        apr_thread_t *t;
        apr_status_t rv;

        if ((rv = apr_pool_create_unmanaged(&cp)) != APR_SUCCESS) {
            apr_sleep(apr_time_from_msec(100));
            continue;
        }
        apr_pool_tag(cp, what);
        if ((rv = apr_socket_accept(&sock, listener, cp)) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, d->s, "clusterd: accept on "
                         "the %s socket failed", what);
            apr_pool_destroy(cp);
            apr_sleep(apr_time_from_msec(100));
            continue;
        }
        conn = apr_pcalloc(cp, sizeof(*conn));
        conn->d = d;
        conn->sock = sock;
        conn->pool = cp;
        conn->accepted = apr_time_now();
        conn->ticket = -1;
        apr_atomic_inc32(&d->node->state->peer_accepts);
        if (admit && !admit(conn)) {
            apr_socket_close(sock);
            apr_pool_destroy(cp);
            continue;
        }
        if ((rv = apr_thread_create(&t, d->detached, task, conn, cp)) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, d->s, "clusterd: cannot run "
                         "a %s connection", what);
            sc_gate_leave(d->gate, conn->ticket);
            apr_socket_close(sock);
            apr_pool_destroy(cp);
        }
    }
}

/* Tell the gate where members are, configured or learnt since it last
 * looked (the acceptor thread alone calls this). */
static void tell_gate(sc_daemon *d)
{
    int n = sc_node_slot_count(d->node);

    for (; d->gate_told < n; d->gate_told++) {
        const sc_member_state *slot = sc_node_slot(d->node, d->gate_told);
        sc_addr a;
        apr_pool_t *p;
        if (apr_pool_create(&p, NULL) != APR_SUCCESS)
            return;
        if (sc_addr_parse(p, slot->addr, &a) != APR_SUCCESS
            || sc_gate_member(d->gate, d->gate_told, a.host) != APR_SUCCESS)
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, d->s, "clusterd: address %s "
                         "of member %s not resolved; its handshakes count as a "
                         "stranger's", slot->addr, slot->route);
        apr_pool_destroy(p);
    }
}

/* A peer may start its handshake only within its address's quota. */
static int admit_peer(sc_conn *conn)
{
    sc_daemon *d = conn->d;
    apr_sockaddr_t *sa;
    const char *why = "address unknown";

    tell_gate(d);
    if (apr_socket_addr_get(&sa, APR_REMOTE, conn->sock) == APR_SUCCESS
        && (conn->ticket = sc_gate_enter(d->gate, sa, &why)) >= 0)
        return 1;
    refused_peer(d, sc_peer_remote(conn->sock, conn->pool), SC_REFUSED_BUSY, why);
    return 0;
}

void *APR_THREAD_FUNC sc_cd_acceptor_main(apr_thread_t *t, void *arg)
{
    sc_daemon *d = arg;
    (void)t;
    accept_loop(d, d->node->listener, inbound_task, admit_peer, "peer");
    return NULL;
}

