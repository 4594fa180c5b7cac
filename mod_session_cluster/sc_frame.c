/* sc_frame.c - frames on a member connection (see sc_frame.h).
 *
 * Frame body, inside TLS:
 *   u8 version | u8 type | u8 flags (0) | u8 rlen | route | u64 counter |
 *   payload
 * Nothing is allocated for a frame before its length is validated.
 */
#include <string.h>

#include <apr_strings.h>

#include "sc_bytes.h"
#include "sc_codec.h"
#include "sc_frame.h"
#include "sc_id.h"

/* version, type, flags, route length: then the route and the counter */
#define SC_HDR_FIXED      4
#define SC_HDR_MIN        (SC_HDR_FIXED + 1 + 8)
#define SC_HELLO_PAYLOAD  (1 + 8)

typedef char sc_max_body_fits_int[SC_WIRE_MAX_BODY < 0x7fffffff ? 1 : -1];

void sc_wire_conn_init(sc_wire_conn *c, const char *self_route)
{
    memset(c, 0, sizeof(*c));
    /* an invalid route is kept out, so every frame built later refuses */
    if (self_route && sc_route_valid(self_route))
        apr_cpystrn(c->self, self_route, sizeof(c->self));
}

/* A frame with its length prefix and header written and room for plen
 * payload bytes after them, which go at *frame + 4 + *hlen. */
static apr_status_t new_frame(const sc_wire_conn *c, int type,
                              apr_uint64_t counter, apr_size_t plen,
                              apr_pool_t *p, unsigned char **frame,
                              apr_size_t *frame_len, apr_size_t *hlen)
{
    apr_size_t rlen = strlen(c->self);
    apr_size_t body;
    unsigned char *b;

    if (!sc_route_valid(c->self))
        return APR_EINVAL;
    if (plen > SC_WIRE_MAX_BODY
        || (body = SC_HDR_FIXED + rlen + 8 + plen) > SC_WIRE_MAX_BODY)
        return APR_EINVAL;
    *frame = apr_palloc(p, 4 + body);
    *frame_len = 4 + body;
    put_u32(*frame, (apr_uint32_t)body);
    b = *frame + 4;
    b[0] = SC_WIRE_VERSION;
    b[1] = (unsigned char)type;
    b[2] = 0;                                   /* flags: none defined */
    b[3] = (unsigned char)rlen;
    memcpy(b + SC_HDR_FIXED, c->self, rlen);
    put_u64(b + SC_HDR_FIXED + rlen, counter);
    *hlen = SC_HDR_FIXED + rlen + 8;
    return APR_SUCCESS;
}

apr_status_t sc_wire_hello(sc_wire_conn *c, apr_pool_t *p, char **frame,
                           apr_size_t *len)
{
    unsigned char *f;
    apr_size_t hlen;
    apr_status_t rv;

    if (c->manager < 0 || c->manager > 255)
        return APR_EINVAL;
    if ((rv = new_frame(c, SC_MSG_HELLO, 0, SC_HELLO_PAYLOAD, p, &f, len, &hlen))
        != APR_SUCCESS)
        return rv;
    f[4 + hlen] = (unsigned char)c->manager;
    put_u64(f + 4 + hlen + 1, c->incarnation);
    *frame = (char *)f;
    return APR_SUCCESS;
}

apr_status_t sc_wire_frame(sc_wire_conn *c, int type, const void *payload,
                           apr_size_t len, apr_pool_t *p, char **frame,
                           apr_size_t *frame_len)
{
    apr_uint64_t counter;
    unsigned char *f;
    apr_size_t hlen;
    apr_status_t rv;

    /* HELLO has its own builder; counters never wrap */
    if (type <= SC_MSG_HELLO || type >= SC_MSG_MAX_ || (len && !payload)
        || c->tx_counter == APR_UINT64_MAX)
        return APR_EINVAL;
    counter = c->tx_counter + 1;
    if ((rv = new_frame(c, type, counter, len, p, &f, frame_len, &hlen))
        != APR_SUCCESS)
        return rv;
    if (len)
        memcpy(f + 4 + hlen, payload, len);
    /* only a frame that was built uses up its counter */
    c->tx_counter = counter;
    *frame = (char *)f;
    return APR_SUCCESS;
}

apr_status_t sc_wire_body_len(const unsigned char *prefix, apr_size_t *len,
                              const char **why)
{
    apr_uint32_t n = get_u32(prefix);

    if (n == 0) {
        *why = "empty frame";
        return APR_EINVAL;
    }
    if (n < SC_HDR_MIN) {
        *why = "frame too short";
        return APR_EINVAL;
    }
    if (n > SC_WIRE_MAX_BODY) {
        *why = "frame too large";
        return APR_EINVAL;
    }
    *len = n;
    return APR_SUCCESS;
}

typedef struct {
    int type;
    const unsigned char *route;
    apr_size_t rlen;
    apr_uint64_t counter;
    apr_size_t hlen;            /* version .. counter */
} sc_header;

/* Everything about a body that does not depend on the connection. */
static apr_status_t parse_header(const unsigned char *body, apr_size_t len,
                                 sc_header *h, const char **why)
{
    if (!body || len < SC_HDR_MIN) {
        *why = "truncated";
        return APR_EINVAL;
    }
    if (len > SC_WIRE_MAX_BODY) {
        *why = "frame too large";
        return APR_EINVAL;
    }
    if (body[0] != SC_WIRE_VERSION) {
        *why = "bad version";
        return APR_EINVAL;
    }
    h->type = body[1];
    if (h->type < SC_MSG_HELLO || h->type >= SC_MSG_MAX_) {
        *why = "unknown type";
        return APR_EINVAL;
    }
    if (body[2]) {
        *why = "unknown flags";
        return APR_EINVAL;
    }
    h->rlen = body[3];
    h->route = body + SC_HDR_FIXED;
    if (h->rlen == 0 || h->rlen > SC_ROUTE_LEN_MAX) {
        *why = "bad route";
        return APR_EINVAL;
    }
    if (len < SC_HDR_FIXED + h->rlen + 8) {
        *why = "truncated";
        return APR_EINVAL;
    }
    if (!sc_codec_route_valid_n((const char *)h->route, h->rlen)) {
        *why = "bad route";
        return APR_EINVAL;
    }
    h->counter = get_u64(body + SC_HDR_FIXED + h->rlen);
    h->hlen = SC_HDR_FIXED + h->rlen + 8;
    return APR_SUCCESS;
}

apr_status_t sc_wire_hello_open(sc_wire_conn *c, const unsigned char *body,
                                apr_size_t len, const char *expect_route,
                                const char **why)
{
    const unsigned char *payload;
    sc_header h;
    apr_status_t rv;

    if ((rv = parse_header(body, len, &h, why)) != APR_SUCCESS)
        return rv;
    if (h.type != SC_MSG_HELLO) {
        *why = "expected HELLO";
        return APR_EINVAL;
    }
    if (h.counter != 0) {
        *why = "HELLO counter not 0";
        return APR_EINVAL;
    }
    if (len - h.hlen != SC_HELLO_PAYLOAD) {
        *why = len - h.hlen < SC_HELLO_PAYLOAD ? "truncated" : "trailing bytes";
        return APR_EINVAL;
    }
    if (expect_route && (strlen(expect_route) != h.rlen
                         || memcmp(expect_route, h.route, h.rlen))) {
        *why = "route mismatch";
        return APR_EINVAL;
    }
    payload = body + h.hlen;
    memcpy(c->peer, h.route, h.rlen);
    c->peer[h.rlen] = '\0';
    c->peer_manager = payload[0];
    c->peer_incarnation = get_u64(payload + 1);
    c->tx_counter = 0;
    c->rx_counter = 0;
    return APR_SUCCESS;
}

apr_status_t sc_wire_open(sc_wire_conn *c, const unsigned char *body,
                          apr_size_t len, apr_pool_t *p, int *type,
                          const char **payload, apr_size_t *plen,
                          const char **why)
{
    unsigned char *out;
    apr_size_t n;
    sc_header h;
    apr_status_t rv;

    if ((rv = parse_header(body, len, &h, why)) != APR_SUCCESS)
        return rv;
    if (h.type == SC_MSG_HELLO) {
        *why = "unexpected HELLO";
        return APR_EINVAL;
    }
    if (!c->peer[0] || strlen(c->peer) != h.rlen
        || memcmp(c->peer, h.route, h.rlen)) {
        *why = "route mismatch";
        return APR_EINVAL;
    }
    if (c->rx_counter == APR_UINT64_MAX || h.counter != c->rx_counter + 1) {
        *why = "replayed or reordered counter";
        return APR_EINVAL;
    }
    n = len - h.hlen;
    /* n < len <= SC_WIRE_MAX_BODY: bounded; one more byte for a NUL */
    out = apr_palloc(p, n + 1);
    if (n)
        memcpy(out, body + h.hlen, n);
    out[n] = '\0';
    c->rx_counter = h.counter;
    *type = h.type;
    *payload = (const char *)out;
    *plen = n;
    return APR_SUCCESS;
}
