/* sc_wire.c - peer frames, their protection and payloads (see sc_wire.h).
 *
 * Rejections: every malformed, oversized, misrouted, replayed or otherwise
 * unacceptable input returns APR_EINVAL with a short static reason in *why;
 * a heartbeat whose GCM tag does not verify (forged, tampered, or sealed
 * under another secret) returns APR_EGENERAL. Nothing is allocated for a
 * frame before its length is validated, and rx_counter only moves once a
 * frame passed every check.
 *
 * Frame body (sc_wire.h), inside TLS:
 *   u8 version | u8 type | u8 flags (0) | u8 rlen | route | u64 counter |
 *   payload
 *
 * Payload layouts (every integer big-endian; apr_time_t as two's complement):
 *   session:    u16 id_len id | u16 owner_len owner | u64 version |
 *               i64 expires | u32 data_len data
 *   delta:      u16 id_len id | u16 owner_len owner | u64 base_version |
 *               u64 version | i64 expires | u32 patch_len patch
 *   invalidate: u16 id_len id | u64 version | i64 until
 *   ack:        u64 counter | u32 status (an sc_ack_status)
 *   u64:        u64
 * Ids are 1..SC_ID_MAX-1 chars of [A-Za-z0-9_-] (what sc_id issues), owners
 * are valid routes, data and patches hold at most SC_SESSION_MAX bytes and no
 * NUL byte (mod_session's encoding is a C string; an embedded NUL would make
 * the length and the string disagree). Encoders check the same rules, so we
 * never send what a peer must refuse.
 */
#include <string.h>

#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "sc_id.h"
#include "sc_bytes.h"
#include "sc_keys.h"
#include "sc_wire.h"

/* version, type, flags, route length: then the route and the counter */
#define SC_HDR_FIXED      4
#define SC_HDR_MIN        (SC_HDR_FIXED + 1 + 8)
#define SC_NONCE_BYTES    12
#define SC_HELLO_PAYLOAD  (1 + 8)

typedef char sc_max_body_fits_int[SC_WIRE_MAX_BODY < 0x7fffffff ? 1 : -1];

/* ---- validation shared by encoders and decoders ------------------------- */

static int is_id_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int id_valid(const char *id, apr_size_t len)
{
    apr_size_t i;

    if (len == 0 || len >= SC_ID_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        if (!is_id_char((unsigned char)id[i]))
            return 0;
    }
    return 1;
}

/* A route given as bytes (not NUL-terminated): copy, then sc_route_valid. */
static int route_valid_n(const char *route, apr_size_t len)
{
    char buf[SC_ROUTE_MAX];

    if (len == 0 || len >= sizeof(buf) || memchr(route, '\0', len))
        return 0;
    memcpy(buf, route, len);
    buf[len] = '\0';
    return sc_route_valid(buf);
}

static int blob_valid(const char *data, apr_size_t len)
{
    return len <= SC_SESSION_MAX && (len == 0 || !memchr(data, '\0', len));
}

/* ---- a bounds-checked reader over a payload ------------------------------ */

typedef struct {
    const unsigned char *at;
    apr_size_t left;
} sc_reader;

static const unsigned char *take(sc_reader *r, apr_size_t n)
{
    const unsigned char *b = r->at;

    if (n > r->left)
        return NULL;
    r->at += n;
    r->left -= n;
    return b;
}

static int read_u8(sc_reader *r, unsigned char *v)
{
    const unsigned char *b = take(r, 1);
    if (!b)
        return 0;
    *v = *b;
    return 1;
}

static int read_u16(sc_reader *r, apr_uint16_t *v)
{
    const unsigned char *b = take(r, 2);
    if (!b)
        return 0;
    *v = get_u16(b);
    return 1;
}

static int read_u32(sc_reader *r, apr_uint32_t *v)
{
    const unsigned char *b = take(r, 4);
    if (!b)
        return 0;
    *v = get_u32(b);
    return 1;
}

static int read_u64(sc_reader *r, apr_uint64_t *v)
{
    const unsigned char *b = take(r, 8);
    if (!b)
        return 0;
    *v = get_u64(b);
    return 1;
}

static int read_time(sc_reader *r, apr_time_t *t)
{
    apr_uint64_t v;
    if (!read_u64(r, &v))
        return 0;
    *t = (apr_time_t)v;
    return 1;
}

/* A u16- or u32-prefixed string of at most `max` bytes, copied into the pool
 * with a NUL after it; the length is checked before anything is allocated. */
static int read_str(sc_reader *r, int wide, apr_size_t max, apr_pool_t *p,
                    const char **out, apr_size_t *len)
{
    const unsigned char *b;
    apr_size_t n;

    if (wide) {
        apr_uint32_t v;
        if (!read_u32(r, &v))
            return 0;
        n = v;
    }
    else {
        apr_uint16_t v;
        if (!read_u16(r, &v))
            return 0;
        n = v;
    }
    if (n > max || !(b = take(r, n)))
        return 0;
    *out = apr_pstrmemdup(p, (const char *)b, n);
    if (len)
        *len = n;
    return 1;
}

static int read_id(sc_reader *r, apr_pool_t *p, const char **id)
{
    apr_size_t n;
    return read_str(r, 0, SC_ID_MAX - 1, p, id, &n) && id_valid(*id, n);
}

static int read_route(sc_reader *r, apr_pool_t *p, const char **route)
{
    apr_size_t n;
    return read_str(r, 0, SC_ROUTE_LEN_MAX, p, route, &n)
        && route_valid_n(*route, n);
}

/* A backup route: empty (no backup) or a valid route. */
static int read_backup(sc_reader *r, apr_pool_t *p, const char **route)
{
    apr_size_t n;
    return read_str(r, 0, SC_ROUTE_LEN_MAX, p, route, &n)
        && (n == 0 || route_valid_n(*route, n));
}

static int read_blob(sc_reader *r, apr_pool_t *p, const char **data,
                     apr_size_t *len)
{
    return read_str(r, 1, SC_SESSION_MAX, p, data, len)
        && blob_valid(*data, *len);
}

/* ---- a writer into a buffer sized up front -------------------------------- */

typedef struct {
    unsigned char *at;
} sc_writer;

static void write_u16(sc_writer *w, apr_uint16_t v) { put_u16(w->at, v); w->at += 2; }
static void write_u32(sc_writer *w, apr_uint32_t v) { put_u32(w->at, v); w->at += 4; }
static void write_u64(sc_writer *w, apr_uint64_t v) { put_u64(w->at, v); w->at += 8; }

static void write_bytes(sc_writer *w, const void *b, apr_size_t n)
{
    if (n)
        memcpy(w->at, b, n);
    w->at += n;
}

static void write_str16(sc_writer *w, const char *s)
{
    apr_size_t n = strlen(s);
    write_u16(w, (apr_uint16_t)n);
    write_bytes(w, s, n);
}

static void write_blob(sc_writer *w, const char *b, apr_size_t n)
{
    write_u32(w, (apr_uint32_t)n);
    write_bytes(w, b, n);
}

static int check_id_str(const char *id)
{
    return id && id_valid(id, strnlen(id, SC_ID_MAX));
}

static int check_backup(const char *route)
{
    return route && (!*route || sc_route_valid(route));
}

static int check_blob(const char *data, apr_size_t len)
{
    return (data || len == 0) && blob_valid(data, len);
}

/* ---- AES-256-GCM --------------------------------------------------------- */

static void make_nonce(unsigned char *nonce, apr_uint64_t counter)
{
    memset(nonce, 0, 4);
    put_u64(nonce + 4, counter);
}

/* Encrypt len bytes of in to out (same length) and write the tag. */
static apr_status_t gcm_seal(const unsigned char *key, apr_uint64_t counter,
                             const unsigned char *aad, apr_size_t aad_len,
                             const unsigned char *in, apr_size_t len,
                             unsigned char *out, unsigned char *tag)
{
    unsigned char nonce[SC_NONCE_BYTES];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n, ok;

    if (!ctx)
        return APR_ENOMEM;
    make_nonce(nonce, counter);
    ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1
      && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SC_NONCE_BYTES,
                             NULL) == 1
      && EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1
      && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1
      && (len == 0 || (EVP_EncryptUpdate(ctx, out, &n, in, (int)len) == 1
                       && (apr_size_t)n == len))
      && EVP_EncryptFinal_ex(ctx, out + len, &n) == 1 && n == 0
      && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SC_WIRE_TAG_BYTES,
                             tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        ERR_clear_error();
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* Decrypt and verify; out is wiped when the tag does not verify, so no
 * unauthenticated plaintext is ever left behind. */
static apr_status_t gcm_open(const unsigned char *key, apr_uint64_t counter,
                             const unsigned char *aad, apr_size_t aad_len,
                             const unsigned char *in, apr_size_t len,
                             const unsigned char *tag, unsigned char *out)
{
    unsigned char nonce[SC_NONCE_BYTES], t[SC_WIRE_TAG_BYTES];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n, ok;

    if (!ctx)
        return APR_ENOMEM;
    make_nonce(nonce, counter);
    memcpy(t, tag, sizeof(t));
    ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1
      && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SC_NONCE_BYTES,
                             NULL) == 1
      && EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1
      && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1
      && (len == 0 || (EVP_DecryptUpdate(ctx, out, &n, in, (int)len) == 1
                       && (apr_size_t)n == len))
      && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SC_WIRE_TAG_BYTES,
                             t) == 1
      && EVP_DecryptFinal_ex(ctx, out + len, &n) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(out, len);
        ERR_clear_error();
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* ---- connections and frames ------------------------------------------------ */

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
    if (!route_valid_n((const char *)h->route, h->rlen)) {
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

/* ---- payloads -------------------------------------------------------------- */

static int finished(const sc_reader *r)
{
    return r->left == 0;
}

apr_status_t sc_msg_session_encode(apr_pool_t *p, const sc_msg_session *m,
                                   char **out, apr_size_t *len)
{
    sc_writer w;

    if (!check_id_str(m->id) || !m->owner || !sc_route_valid(m->owner)
        || !check_backup(m->backup) || !check_blob(m->data, m->len))
        return APR_EINVAL;
    *len = 2 + strlen(m->id) + 2 + strlen(m->owner) + 2 + strlen(m->backup)
           + 8 + 8 + 4 + m->len;
    *out = apr_palloc(p, *len);
    w.at = (unsigned char *)*out;
    write_str16(&w, m->id);
    write_str16(&w, m->owner);
    write_str16(&w, m->backup);
    write_u64(&w, m->version);
    write_u64(&w, (apr_uint64_t)m->expires);
    write_blob(&w, m->data, m->len);
    return APR_SUCCESS;
}

apr_status_t sc_msg_session_decode(apr_pool_t *p, const char *buf,
                                   apr_size_t len, sc_msg_session *m)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };

    if (!read_id(&r, p, &m->id) || !read_route(&r, p, &m->owner)
        || !read_backup(&r, p, &m->backup)
        || !read_u64(&r, &m->version) || !read_time(&r, &m->expires)
        || !read_blob(&r, p, &m->data, &m->len) || !finished(&r))
        return APR_EINVAL;
    return APR_SUCCESS;
}

apr_status_t sc_msg_location_encode(apr_pool_t *p, const sc_msg_location *m,
                                    char **out, apr_size_t *len)
{
    sc_msg_session whole = { m->id, m->owner, m->backup, m->version,
                             m->expires, "", 0 };
    return sc_msg_session_encode(p, &whole, out, len);
}

apr_status_t sc_msg_location_decode(apr_pool_t *p, const char *buf,
                                    apr_size_t len, sc_msg_location *m)
{
    sc_msg_session whole;

    if (sc_msg_session_decode(p, buf, len, &whole) != APR_SUCCESS || whole.len)
        return APR_EINVAL;
    m->id = whole.id;
    m->owner = whole.owner;
    m->backup = whole.backup;
    m->version = whole.version;
    m->expires = whole.expires;
    return APR_SUCCESS;
}

apr_status_t sc_msg_id_encode(apr_pool_t *p, const char *id, char **out,
                              apr_size_t *len)
{
    sc_writer w;

    if (!check_id_str(id))
        return APR_EINVAL;
    *len = 2 + strlen(id);
    *out = apr_palloc(p, *len);
    w.at = (unsigned char *)*out;
    write_str16(&w, id);
    return APR_SUCCESS;
}

apr_status_t sc_msg_id_decode(apr_pool_t *p, const char *buf, apr_size_t len,
                              const char **id)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };

    if (!read_id(&r, p, id) || !finished(&r))
        return APR_EINVAL;
    return APR_SUCCESS;
}

apr_status_t sc_msg_delta_encode(apr_pool_t *p, const sc_msg_delta *m,
                                 char **out, apr_size_t *len)
{
    sc_writer w;

    if (!check_id_str(m->id) || !m->owner || !sc_route_valid(m->owner)
        || !check_blob(m->patch, m->len))
        return APR_EINVAL;
    *len = 2 + strlen(m->id) + 2 + strlen(m->owner) + 8 + 8 + 8 + 4 + m->len;
    *out = apr_palloc(p, *len);
    w.at = (unsigned char *)*out;
    write_str16(&w, m->id);
    write_str16(&w, m->owner);
    write_u64(&w, m->base_version);
    write_u64(&w, m->version);
    write_u64(&w, (apr_uint64_t)m->expires);
    write_blob(&w, m->patch, m->len);
    return APR_SUCCESS;
}

apr_status_t sc_msg_delta_decode(apr_pool_t *p, const char *buf,
                                 apr_size_t len, sc_msg_delta *m)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };

    if (!read_id(&r, p, &m->id) || !read_route(&r, p, &m->owner)
        || !read_u64(&r, &m->base_version) || !read_u64(&r, &m->version)
        || !read_time(&r, &m->expires)
        || !read_blob(&r, p, &m->patch, &m->len) || !finished(&r))
        return APR_EINVAL;
    return APR_SUCCESS;
}

apr_status_t sc_msg_invalidate_encode(apr_pool_t *p, const sc_msg_invalidate *m,
                                      char **out, apr_size_t *len)
{
    sc_writer w;

    if (!check_id_str(m->id))
        return APR_EINVAL;
    *len = 2 + strlen(m->id) + 8 + 8;
    *out = apr_palloc(p, *len);
    w.at = (unsigned char *)*out;
    write_str16(&w, m->id);
    write_u64(&w, m->version);
    write_u64(&w, (apr_uint64_t)m->until);
    return APR_SUCCESS;
}

apr_status_t sc_msg_invalidate_decode(apr_pool_t *p, const char *buf,
                                      apr_size_t len, sc_msg_invalidate *m)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };

    if (!read_id(&r, p, &m->id) || !read_u64(&r, &m->version)
        || !read_time(&r, &m->until) || !finished(&r))
        return APR_EINVAL;
    return APR_SUCCESS;
}

static int ack_status_valid(apr_uint32_t s)
{
    return s <= SC_ACK_NOTFOUND;
}

apr_status_t sc_msg_ack_encode(apr_pool_t *p, const sc_msg_ack *m,
                               char **out, apr_size_t *len)
{
    sc_writer w;

    if (m->status < 0 || !ack_status_valid((apr_uint32_t)m->status))
        return APR_EINVAL;
    *len = 8 + 4;
    *out = apr_palloc(p, *len);
    w.at = (unsigned char *)*out;
    write_u64(&w, m->counter);
    write_u32(&w, (apr_uint32_t)m->status);
    return APR_SUCCESS;
}

apr_status_t sc_msg_ack_decode(const char *buf, apr_size_t len, sc_msg_ack *m)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };
    apr_uint32_t status;

    if (!read_u64(&r, &m->counter) || !read_u32(&r, &status) || !finished(&r)
        || !ack_status_valid(status))
        return APR_EINVAL;
    m->status = (int)status;
    return APR_SUCCESS;
}

int sc_wire_is_change(int t)
{
    return t == SC_MSG_SESSION || t == SC_MSG_DELTA || t == SC_MSG_INVALIDATE
        || t == SC_MSG_LOCATION;
}

apr_status_t sc_msg_batch_encode(apr_pool_t *p, const sc_msg_change *changes,
                                 int n, char **out, apr_size_t *len)
{
    apr_size_t total = 4;
    sc_writer w;
    int i;

    if (n < 1 || n > SC_WIRE_BATCH_MAX)
        return APR_EINVAL;
    for (i = 0; i < n; i++) {
        if (!sc_wire_is_change(changes[i].type) || changes[i].len > SC_WIRE_MAX_BODY)
            return APR_EINVAL;
        total += 5 + changes[i].len;
    }
    if (total > SC_WIRE_BATCH_BYTES)
        return APR_EINVAL;
    *len = total;
    *out = apr_palloc(p, total);
    w.at = (unsigned char *)*out;
    write_u32(&w, (apr_uint32_t)n);
    for (i = 0; i < n; i++) {
        *w.at++ = (unsigned char)changes[i].type;
        write_u32(&w, (apr_uint32_t)changes[i].len);
        write_bytes(&w, changes[i].data, changes[i].len);
    }
    return APR_SUCCESS;
}

apr_status_t sc_msg_batch_decode(apr_pool_t *p, const char *buf, apr_size_t len,
                                 sc_msg_change **changes, int *n)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };
    apr_uint32_t count, i;

    /* every change takes at least 5 bytes: no huge array up front */
    if (len > SC_WIRE_BATCH_BYTES || !read_u32(&r, &count) || count < 1 || count > SC_WIRE_BATCH_MAX
        || count > r.left / 5)
        return APR_EINVAL;
    *changes = apr_palloc(p, count * sizeof(**changes));
    for (i = 0; i < count; i++) {
        unsigned char type;
        apr_uint32_t clen;
        const unsigned char *data;
        if (!read_u8(&r, &type) || !sc_wire_is_change(type) || !read_u32(&r, &clen)
            || !(data = take(&r, clen)))
            return APR_EINVAL;
        (*changes)[i].type = type;
        (*changes)[i].data = (const char *)data;
        (*changes)[i].len = clen;
    }
    *n = (int)count;
    return finished(&r) ? APR_SUCCESS : APR_EINVAL;
}

apr_status_t sc_msg_batch_applied_encode(apr_pool_t *p,
                                         const sc_msg_batch_applied *m,
                                         char **out, apr_size_t *len)
{
    sc_writer w;
    int i;

    if (m->n < 1 || m->n > SC_WIRE_BATCH_MAX)
        return APR_EINVAL;
    for (i = 0; i < m->n; i++)
        if (!ack_status_valid(m->status[i]))
            return APR_EINVAL;
    *len = 8 + 4 + (apr_size_t)m->n;
    *out = apr_palloc(p, *len);
    w.at = (unsigned char *)*out;
    write_u64(&w, m->counter);
    write_u32(&w, (apr_uint32_t)m->n);
    write_bytes(&w, m->status, (apr_size_t)m->n);
    return APR_SUCCESS;
}

apr_status_t sc_msg_batch_applied_decode(apr_pool_t *p, const char *buf,
                                         apr_size_t len, sc_msg_batch_applied *m)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };
    const unsigned char *st;
    apr_uint32_t count, i;

    if (!read_u64(&r, &m->counter) || !read_u32(&r, &count) || count < 1
        || count > SC_WIRE_BATCH_MAX || !(st = take(&r, count)) || !finished(&r))
        return APR_EINVAL;
    for (i = 0; i < count; i++)
        if (!ack_status_valid(st[i]))
            return APR_EINVAL;
    m->n = (int)count;
    m->status = apr_pmemdup(p, st, count);
    return APR_SUCCESS;
}

apr_status_t sc_msg_u64_encode(apr_pool_t *p, apr_uint64_t v, char **out,
                               apr_size_t *len)
{
    *len = 8;
    *out = apr_palloc(p, 8);
    put_u64((unsigned char *)*out, v);
    return APR_SUCCESS;
}

apr_status_t sc_msg_u64_decode(const char *buf, apr_size_t len, apr_uint64_t *v)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };

    if (!read_u64(&r, v) || !finished(&r))
        return APR_EINVAL;
    return APR_SUCCESS;
}

apr_status_t sc_msg_chunk_decode(apr_pool_t *p, const char *buf, apr_size_t len,
                                 apr_array_header_t **records)
{
    const unsigned char *b = (const unsigned char *)buf;
    apr_uint32_t count, i;
    apr_size_t at = 4;

    if (len < 4)
        return APR_EINVAL;
    count = get_u32(b);
    /* every record takes at least its 4-byte length: no huge array up front */
    if (count > (len - 4) / 4)
        return APR_EINVAL;
    *records = apr_array_make(p, count ? (int)count : 1, sizeof(sc_msg_record));
    for (i = 0; i < count; i++) {
        sc_msg_record *r;
        apr_uint32_t rlen;
        if (len - at < 4 || (rlen = get_u32(b + at)) > len - at - 4)
            return APR_EINVAL;
        r = apr_array_push(*records);
        r->data = buf + at + 4;
        r->len = rlen;
        at += 4 + (apr_size_t)rlen;
    }
    return at == len ? APR_SUCCESS : APR_EINVAL;
}

/* ---- multicast heartbeats ------------------------------------------------ */

#define SC_HB_MAGIC "SCHB"
#define SC_HB_INFO  "sc2 heartbeat sender"

/* host:port as ClusterListen takes it: names, IPv4, [IPv6] */
static int listen_valid(const char *s, apr_size_t len)
{
    apr_size_t i;
    if (len == 0 || len >= SC_HB_LISTEN_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!is_id_char(c) && c != '.' && c != ':' && c != '[' && c != ']')
            return 0;
    }
    return 1;
}

/* The key one sender start seals with: HKDF over the cluster's heartbeat
 * key and that start's random bytes. */
static apr_status_t sender_key(const unsigned char *key,
                               const unsigned char *random, unsigned char *out)
{
    return sc_keys_hkdf(key, SC_WIRE_KEY_BYTES, random, SC_WIRE_RANDOM_BYTES,
                        SC_HB_INFO, out, SC_WIRE_KEY_BYTES);
}

apr_status_t sc_heartbeat_sender_init(sc_heartbeat_sender *snd,
                                      const unsigned char *key)
{
    apr_status_t rv;

    memset(snd, 0, sizeof(*snd));
    if ((rv = apr_generate_random_bytes(snd->random, sizeof(snd->random)))
        != APR_SUCCESS)
        return rv;
    snd->sealed = key != NULL;
    return key ? sender_key(key, snd->random, snd->key) : APR_SUCCESS;
}

apr_status_t sc_heartbeat_seal(const sc_heartbeat_sender *snd,
                               const sc_heartbeat *hb, apr_pool_t *p,
                               char **out, apr_size_t *len)
{
    apr_size_t header, body;
    unsigned char *buf;
    sc_writer w;

    if (!hb->route || !sc_route_valid(hb->route) || !hb->listen
        || !listen_valid(hb->listen, strlen(hb->listen))
        || hb->manager < 0 || hb->manager > 255 || hb->ready < 0 || hb->ready > 1)
        return APR_EINVAL;
    header = 4 + 1 + 1 + SC_WIRE_RANDOM_BYTES + 2 + strlen(hb->route) + 8;
    body = 2 + strlen(hb->listen) + 8 + 1 + 1;
    *len = header + body + (snd->sealed ? SC_WIRE_TAG_BYTES : 0);
    buf = apr_palloc(p, *len);
    w.at = buf;
    write_bytes(&w, SC_HB_MAGIC, 4);
    *w.at++ = SC_WIRE_VERSION;
    *w.at++ = snd->sealed ? SC_HB_F_SEALED : 0;
    write_bytes(&w, snd->random, SC_WIRE_RANDOM_BYTES);
    write_str16(&w, hb->route);
    write_u64(&w, hb->stamp);
    write_str16(&w, hb->listen);
    write_u64(&w, hb->epoch);
    *w.at++ = (unsigned char)hb->manager;
    *w.at++ = (unsigned char)hb->ready;
    *out = (char *)buf;
    if (!snd->sealed)
        return APR_SUCCESS;
    return gcm_seal(snd->key, hb->stamp, buf, header, buf + header, body,
                    buf + header, buf + header + body);
}

apr_status_t sc_heartbeat_open(const unsigned char (*keys)[SC_WIRE_KEY_BYTES],
                               int nkeys, const char *in,
                               apr_size_t len, apr_pool_t *p, sc_heartbeat *hb,
                               const char **why)
{
    const unsigned char *b = (const unsigned char *)in, *random;
    unsigned char flags, version, manager, ready, key[SC_WIRE_KEY_BYTES];
    unsigned char *plain;
    apr_size_t header, body, listen_len;
    sc_reader r;
    apr_status_t rv = APR_EGENERAL;
    int i, sealed = keys && nkeys > 0;

    *why = "malformed heartbeat";
    if (!in || len > SC_HB_MAX || len < 4 || memcmp(b, SC_HB_MAGIC, 4))
        return APR_EINVAL;
    r.at = b + 4;
    r.left = len - 4;
    if (!read_u8(&r, &version) || version != SC_WIRE_VERSION
        || !read_u8(&r, &flags) || (flags & ~SC_HB_F_SEALED)
        || !(random = take(&r, SC_WIRE_RANDOM_BYTES))
        || !read_route(&r, p, &hb->route) || !read_u64(&r, &hb->stamp))
        return APR_EINVAL;
    if (((flags & SC_HB_F_SEALED) != 0) != sealed) {
        *why = sealed ? "unsealed heartbeat, but ClusterSecretFile is set here"
                      : "sealed heartbeat, but ClusterSecretFile is none here";
        return APR_EINVAL;
    }
    header = len - r.left;
    body = r.left;
    if (sealed) {
        if (body < SC_WIRE_TAG_BYTES)
            return APR_EINVAL;
        body -= SC_WIRE_TAG_BYTES;
    }
    plain = apr_palloc(p, body + 1);
    /* any key held may have sealed it: the newest, or the one rotated out */
    for (i = 0; sealed && i < nkeys && rv != APR_SUCCESS; i++) {
        rv = sender_key(keys[i], random, key);
        if (rv == APR_SUCCESS)
            rv = gcm_open(key, hb->stamp, b, header, b + header, body,
                          b + header + body, plain);
        OPENSSL_cleanse(key, sizeof(key));
    }
    if (sealed && rv != APR_SUCCESS) {
        *why = "heartbeat authentication failed (another secret, or tampered)";
        return APR_EGENERAL;
    }
    if (!sealed && body)
        memcpy(plain, b + header, body);
    r.at = plain;
    r.left = body;
    if (!read_str(&r, 0, SC_HB_LISTEN_MAX - 1, p, &hb->listen, &listen_len)
        || !listen_valid(hb->listen, listen_len)
        || !read_u64(&r, &hb->epoch) || !read_u8(&r, &manager)
        || !read_u8(&r, &ready) || ready > 1 || !finished(&r))
        return APR_EINVAL;
    hb->manager = manager;
    hb->ready = ready;
    return APR_SUCCESS;
}
