/* Unit tests for sc_wire (the frame codec inside TLS, and multicast
 * heartbeats): the HELLO exchange (manager, incarnation, route) and the
 * refusal of every malformed HELLO (version, type, flags, counter, route,
 * truncated, trailing, oversize); frames of every type; the rejection of
 * every malformed, oversized, replayed, reordered or misrouted frame, and of
 * any flag (frames are never sealed now: TLS protects them); the payload
 * codecs with truncated input at every length and trailing bytes; multicast
 * heartbeats sealed and plain, under either of two keys, under another key,
 * sealed/unsealed mismatches, tampered, cut short, oversized. The sealed
 * heartbeat's known answer was computed independently (Python's
 * cryptography package: HKDF-SHA256 and AES-256-GCM). Runs under ASan/UBSan. */
#include <string.h>
#include <stdlib.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "sc_wire.h"
#include "sc_test.h"

static apr_pool_t *pool;
/* heartbeat keys (sc_keys derives them from a cluster key) */
static const unsigned char key_a[SC_WIRE_KEY_BYTES] = "0123456789abcdef0123456789abcde";
static const unsigned char key_b[SC_WIRE_KEY_BYTES] = "0123456789abcdef0123456789abcdX";

/* the HELLO payload: u8 manager, u64 incarnation */
#define HELLO_LEN 9

/* ---- helpers -------------------------------------------------------------- */

static int contains(const char *hay, apr_size_t n, const char *needle)
{
    apr_size_t k = strlen(needle), i;
    for (i = 0; i + k <= n; i++)
        if (!memcmp(hay + i, needle, k))
            return 1;
    return 0;
}

static int body_of(const char *frame, apr_size_t flen, const unsigned char **body,
                   apr_size_t *blen)
{
    const char *why = NULL;
    if (flen < 4 || sc_wire_body_len((const unsigned char *)frame, blen, &why)
        != APR_SUCCESS || *blen != flen - 4)
        return 0;
    *body = (const unsigned char *)frame + 4;
    return 1;
}

/* The HELLO exchange between a client (node1, delta) and a server (node2,
 * backup), as sc_peer does it: the client's first, checked by the server
 * against the route it authenticated; then the server's. */
static int handshake(sc_wire_conn *cl, sc_wire_conn *sv)
{
    const unsigned char *body;
    const char *why = NULL;
    char *frame;
    apr_size_t flen, blen;

    sc_wire_conn_init(cl, "node1");
    sc_wire_conn_init(sv, "node2");
    cl->incarnation = 0x1111222233334444ULL;
    sv->incarnation = 0x5555666677778888ULL;
    cl->manager = 0;
    sv->manager = 1;
    if (sc_wire_hello(cl, pool, &frame, &flen) != APR_SUCCESS
        || !body_of(frame, flen, &body, &blen)
        || sc_wire_hello_open(sv, body, blen, "node1", &why) != APR_SUCCESS
        || sc_wire_hello(sv, pool, &frame, &flen) != APR_SUCCESS
        || !body_of(frame, flen, &body, &blen)
        || sc_wire_hello_open(cl, body, blen, "node2", &why) != APR_SUCCESS)
        return 0;
    return !strcmp(cl->peer, "node2") && !strcmp(sv->peer, "node1")
        && cl->peer_incarnation == sv->incarnation
        && sv->peer_incarnation == cl->incarnation
        && cl->peer_manager == 1 && sv->peer_manager == 0;
}

/* Frame on one side, open on the other: the same type and payload back. */
static int pass(sc_wire_conn *from, sc_wire_conn *to, int type, const char *payload,
                apr_size_t len)
{
    const unsigned char *body;
    const char *got, *why = NULL;
    char *frame;
    apr_size_t flen, blen, glen;
    int gtype;

    if (sc_wire_frame(from, type, payload, len, pool, &frame, &flen) != APR_SUCCESS
        || !body_of(frame, flen, &body, &blen)
        || sc_wire_open(to, body, blen, pool, &gtype, &got, &glen, &why) != APR_SUCCESS)
        return 0;
    return gtype == type && glen == len && !memcmp(got, payload, len)
        && got[len] == '\0';
}

/* Open a body that must be rejected, with this reason, leaving rx untouched. */
static int rejected(sc_wire_conn *c, const unsigned char *body, apr_size_t len,
                    apr_status_t want_rv, const char *want_why)
{
    apr_uint64_t rx = c->rx_counter;
    const char *payload = NULL, *why = NULL;
    apr_size_t plen = 0;
    int type = 0;
    apr_status_t rv = sc_wire_open(c, body, len, pool, &type, &payload, &plen, &why);

    if (rv == APR_SUCCESS || c->rx_counter != rx || !why)
        return 0;
    if (want_rv != APR_SUCCESS && rv != want_rv)
        return 0;
    if (want_why && strcmp(why, want_why)) {
        fprintf(stderr, "  expected \"%s\", got \"%s\"\n", want_why, why);
        return 0;
    }
    return 1;
}

/* A body built by hand. */
static apr_size_t raw_body(unsigned char *b, int version, int type, int flags,
                           const char *route, apr_uint64_t counter,
                           const void *payload, apr_size_t plen)
{
    apr_size_t rlen = strlen(route), i;
    b[0] = (unsigned char)version;
    b[1] = (unsigned char)type;
    b[2] = (unsigned char)flags;
    b[3] = (unsigned char)rlen;
    memcpy(b + 4, route, rlen);
    for (i = 0; i < 8; i++)
        b[4 + rlen + i] = (unsigned char)(counter >> (56 - 8 * i));
    if (plen)
        memcpy(b + 12 + rlen, payload, plen);
    return 12 + rlen + plen;
}

/* ---- HELLO ------------------------------------------------------------------ */

static void test_hello_exchange(void)
{
    sc_wire_conn cl, sv;

    CHECK(handshake(&cl, &sv));
    CHECK(cl.tx_counter == 0 && cl.rx_counter == 0);
    CHECK(sv.tx_counter == 0 && sv.rx_counter == 0);
    CHECK(pass(&cl, &sv, SC_MSG_PING, "12345678", 8));
    CHECK(pass(&sv, &cl, SC_MSG_PONG, "12345678", 8));
    CHECK(pass(&cl, &sv, SC_MSG_STATE_REQ, "", 0));
    CHECK(cl.tx_counter == 2 && sv.rx_counter == 2);
    CHECK(sv.tx_counter == 1 && cl.rx_counter == 1);
}

/* The HELLO's bytes, written out by hand from the format in sc_frame.h. */
static void test_hello_bytes(void)
{
    static const unsigned char want[] = {
        0, 0, 0, 26,                                    /* body length */
        2, SC_MSG_HELLO, 0, 5, 'n', 'o', 'd', 'e', '1', /* v2, HELLO, flags 0 */
        0, 0, 0, 0, 0, 0, 0, 0,                         /* counter 0 */
        1,                                              /* backup */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08  /* incarnation */
    };
    static const char longest[] = "abcdefghijklmnopqrstuvwxyz01234";
    sc_wire_conn c;
    char *frame;
    apr_size_t flen;

    sc_wire_conn_init(&c, "node1");
    c.manager = 1;
    c.incarnation = 0x0102030405060708ULL;
    CHECK(sc_wire_hello(&c, pool, &frame, &flen) == APR_SUCCESS);
    CHECK(flen == sizeof(want) && !memcmp(frame, want, sizeof(want)));
    CHECK(c.tx_counter == 0);
    /* the longest route makes the largest HELLO: SC_WIRE_HELLO_MAX */
    sc_wire_conn_init(&c, longest);
    CHECK(sc_wire_hello(&c, pool, &frame, &flen) == APR_SUCCESS);
    CHECK(flen == 4 + SC_WIRE_HELLO_MAX);
    /* a manager that does not fit its byte, or no valid own route */
    c.manager = 256;
    CHECK(sc_wire_hello(&c, pool, &frame, &flen) == APR_EINVAL);
    c.manager = -1;
    CHECK(sc_wire_hello(&c, pool, &frame, &flen) == APR_EINVAL);
    sc_wire_conn_init(&c, "no.de");
    CHECK(!c.self[0]);
    CHECK(sc_wire_hello(&c, pool, &frame, &flen) == APR_EINVAL);
    sc_wire_conn_init(&c, "abcdefghijklmnopqrstuvwxyz012345");   /* 32 chars */
    CHECK(!c.self[0]);
}

/* A HELLO body that must be refused, with this reason (NULL: any), leaving
 * the connection's peer unset. */
static int hello_bad(const unsigned char *b, apr_size_t n, const char *expect,
                     const char *want_why)
{
    sc_wire_conn c;
    const char *why = NULL;
    /* an exact-size copy, so ASan sees any read past the end */
    unsigned char *copy = malloc(n ? n : 1);
    apr_status_t rv;

    if (n)
        memcpy(copy, b, n);
    sc_wire_conn_init(&c, "node1");
    rv = sc_wire_hello_open(&c, n ? copy : NULL, n, expect, &why);
    free(copy);
    if (rv != APR_EINVAL || !why || c.peer[0] || c.peer_incarnation || c.peer_manager)
        return 0;
    if (want_why && strcmp(why, want_why)) {
        fprintf(stderr, "  expected \"%s\", got \"%s\"\n", want_why, why);
        return 0;
    }
    return 1;
}

static void test_hello_rejects(void)
{
    unsigned char b[256], pay[HELLO_LEN + 200];
    sc_wire_conn c;
    const char *why;
    apr_size_t n, i;

    memset(pay, 0xab, sizeof(pay));
    sc_wire_conn_init(&c, "node1");
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN);
    why = NULL;
    CHECK(sc_wire_hello_open(&c, b, n, "node2", &why) == APR_SUCCESS);
    CHECK(!strcmp(c.peer, "node2") && c.peer_manager == 0xab);
    CHECK(c.peer_incarnation == 0xababababababababULL);
    /* any route, when the caller expects none in particular */
    sc_wire_conn_init(&c, "node1");
    CHECK(sc_wire_hello_open(&c, b, n, NULL, &why) == APR_SUCCESS
          && !strcmp(c.peer, "node2"));

    CHECK(hello_bad(b, n, "node3", "route mismatch"));
    CHECK(hello_bad(b, n, "node", "route mismatch"));
    CHECK(hello_bad(b, n, "node22", "route mismatch"));
    n = raw_body(b, 1, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, "bad version"));        /* the sealed era's */
    n = raw_body(b, 3, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, "bad version"));
    n = raw_body(b, 2, SC_MSG_PING, 0, "node2", 0, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, "expected HELLO"));
    n = raw_body(b, 2, 0, 0, "node2", 0, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, "unknown type"));
    for (i = 1; i < 256; i <<= 1) {                     /* every flag bit */
        n = raw_body(b, 2, SC_MSG_HELLO, (int)i, "node2", 0, pay, HELLO_LEN);
        CHECK(hello_bad(b, n, NULL, "unknown flags"));
    }
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "node2", 1, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, "HELLO counter not 0"));
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "node2", APR_UINT64_MAX, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, "HELLO counter not 0"));
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN + 1);
    CHECK(hello_bad(b, n, NULL, "trailing bytes"));
    /* the old HELLO: 16 random bytes and a sealed flag before the rest */
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN + 17);
    CHECK(hello_bad(b, n, NULL, "trailing bytes"));
    /* oversize: larger than any HELLO can be */
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "abcdefghijklmnopqrstuvwxyz01234", 0, pay,
                 HELLO_LEN);
    CHECK(n == SC_WIRE_HELLO_MAX);
    CHECK(!hello_bad(b, n, NULL, NULL));                /* the largest one is fine */
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "abcdefghijklmnopqrstuvwxyz01234", 0, pay,
                 HELLO_LEN + 1);
    CHECK(n == SC_WIRE_HELLO_MAX + 1 && hello_bad(b, n, NULL, NULL));
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "abcdefghijklmnopqrstuvwxyz01234", 0, pay,
                 HELLO_LEN + 150);
    CHECK(hello_bad(b, n, NULL, "trailing bytes"));
    {
        unsigned char *huge = calloc(1, (apr_size_t)SC_WIRE_MAX_BODY + 2);
        n = raw_body(huge, 2, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN);
        CHECK(hello_bad(huge, (apr_size_t)SC_WIRE_MAX_BODY + 1, NULL, "frame too large"));
        CHECK(hello_bad(huge, (apr_size_t)SC_WIRE_MAX_BODY, NULL, "trailing bytes"));
        free(huge);
    }
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN - 1);
    CHECK(hello_bad(b, n, NULL, "truncated"));
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "node2", 0, pay, 0);
    CHECK(hello_bad(b, n, NULL, "truncated"));
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "no.de", 0, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, "bad route"));
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "abcdefghijklmnopqrstuvwxyz012345", 0, pay,
                 HELLO_LEN);                            /* a 32-char route */
    CHECK(hello_bad(b, n, NULL, "bad route"));
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN);
    b[3] = 0;                                           /* no route */
    CHECK(hello_bad(b, n, NULL, "bad route"));
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN);
    b[4 + 4] = 0;                                       /* "node\0" */
    CHECK(hello_bad(b, n, NULL, "bad route"));
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN);
    for (i = 0; i < n; i++)                             /* truncated at every length */
        CHECK(hello_bad(b, i, NULL, NULL));
    CHECK(hello_bad(NULL, 0, NULL, NULL));
}

/* ---- every message type --------------------------------------------------------- */

static void test_roundtrip_all_types(void)
{
    sc_wire_conn cl, sv;
    sc_msg_session s = { "AAAAbbbbCCCCddddEEEEffff", "node1", "", 7, 123456789,
                         "a=1&b=%20x", 10 }, s2;
    sc_msg_delta d = { "AAAAbbbbCCCCddddEEEEffff", "node1", 7, 8, -5, "b=&c=3", 6 }, d2;
    sc_msg_invalidate inv = { "AAAAbbbbCCCCddddEEEEffff", 9, 1000 }, inv2;
    sc_msg_location loc = { "AAAAbbbbCCCCddddEEEEffff", "node1", "node3", 4, 5 };
    sc_msg_ack ack = { 42, SC_ACK_NEED_WHOLE }, ack2;
    char *buf, *chunk;
    apr_size_t len, clen;
    apr_uint64_t v;

    CHECK(handshake(&cl, &sv));
    CHECK(sc_msg_u64_encode(pool, 0x0102030405060708ULL, &buf, &len) == APR_SUCCESS);
    CHECK(pass(&cl, &sv, SC_MSG_PING, buf, len));
    CHECK(pass(&sv, &cl, SC_MSG_PONG, buf, len));
    CHECK(sc_msg_u64_decode(buf, len, &v) == APR_SUCCESS && v == 0x0102030405060708ULL);

    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_SUCCESS);
    CHECK(pass(&cl, &sv, SC_MSG_SESSION, buf, len));
    CHECK(sc_msg_session_decode(pool, buf, len, &s2) == APR_SUCCESS);
    CHECK(!strcmp(s2.id, s.id) && !strcmp(s2.owner, "node1") && s2.version == 7
          && s2.expires == 123456789 && s2.len == 10 && !strcmp(s2.data, s.data));
    /* a state chunk: u32 count, then u32-prefixed session records */
    chunk = apr_palloc(pool, 8 + len);
    memcpy(chunk, "\0\0\0\1", 4);
    chunk[4] = 0; chunk[5] = 0; chunk[6] = (char)(len >> 8); chunk[7] = (char)len;
    memcpy(chunk + 8, buf, len);
    clen = 8 + len;
    CHECK(pass(&sv, &cl, SC_MSG_STATE_CHUNK, chunk, clen));

    CHECK(sc_msg_delta_encode(pool, &d, &buf, &len) == APR_SUCCESS);
    CHECK(pass(&cl, &sv, SC_MSG_DELTA, buf, len));
    CHECK(sc_msg_delta_decode(pool, buf, len, &d2) == APR_SUCCESS);
    CHECK(!strcmp(d2.id, d.id) && !strcmp(d2.owner, "node1") && d2.base_version == 7
          && d2.version == 8 && d2.expires == -5 && d2.len == 6
          && !strcmp(d2.patch, "b=&c=3"));

    CHECK(sc_msg_invalidate_encode(pool, &inv, &buf, &len) == APR_SUCCESS);
    CHECK(pass(&cl, &sv, SC_MSG_INVALIDATE, buf, len));
    CHECK(sc_msg_invalidate_decode(pool, buf, len, &inv2) == APR_SUCCESS);
    CHECK(!strcmp(inv2.id, inv.id) && inv2.version == 9 && inv2.until == 1000);

    CHECK(sc_msg_location_encode(pool, &loc, &buf, &len) == APR_SUCCESS);
    CHECK(pass(&sv, &cl, SC_MSG_LOCATION, buf, len));
    CHECK(sc_msg_id_encode(pool, "AAAAbbbbCCCCddddEEEEffff", &buf, &len) == APR_SUCCESS);
    CHECK(pass(&cl, &sv, SC_MSG_FETCH, buf, len));

    CHECK(sc_msg_ack_encode(pool, &ack, &buf, &len) == APR_SUCCESS);
    CHECK(pass(&sv, &cl, SC_MSG_ACK, buf, len));
    CHECK(pass(&sv, &cl, SC_MSG_APPLIED, buf, len));
    CHECK(sc_msg_ack_decode(buf, len, &ack2) == APR_SUCCESS);
    CHECK(ack2.counter == 42 && ack2.status == SC_ACK_NEED_WHOLE);

    CHECK(pass(&cl, &sv, SC_MSG_STATE_REQ, "", 0));
    CHECK(sc_msg_u64_encode(pool, 1, &buf, &len) == APR_SUCCESS);
    CHECK(pass(&sv, &cl, SC_MSG_STATE_DONE, buf, len));
    CHECK(pass(&sv, &cl, SC_MSG_MERGE_REQ, "", 0));
    CHECK(cl.tx_counter == sv.rx_counter && sv.tx_counter == cl.rx_counter);
}

/* A frame's bytes, written out by hand: nothing sealed, the payload as is. */
static void test_frame_bytes(void)
{
    static const unsigned char want[] = {
        0, 0, 0, 25,
        2, SC_MSG_PING, 0, 5, 'n', 'o', 'd', 'e', '1',
        0, 0, 0, 0, 0, 0, 0, 1,
        'a', 't', 't', 'a', 'c', 'k', ' ', '!'
    };
    sc_wire_conn c;
    char *frame;
    apr_size_t flen;

    sc_wire_conn_init(&c, "node1");
    CHECK(sc_wire_frame(&c, SC_MSG_PING, "attack !", 8, pool, &frame, &flen)
          == APR_SUCCESS);
    CHECK(flen == sizeof(want) && !memcmp(frame, want, sizeof(want)));
    CHECK(contains(frame, flen, "attack"));
}

static void test_largest_body_fits(void)
{
    sc_wire_conn cl, sv;
    sc_msg_session s = { "AAAAbbbbCCCCddddEEEEffffGGGGhhhhIIIIjjjjKKKKlll",
                         "abcdefghijklmnopqrstuvwxyz01234", "", 1, 1, NULL, SC_SESSION_MAX };
    char *data = apr_palloc(pool, SC_SESSION_MAX), *buf, *frame;
    apr_size_t len, flen;

    memset(data, 'x', SC_SESSION_MAX);
    s.data = data;
    CHECK(handshake(&cl, &sv));
    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_SUCCESS);
    CHECK(pass(&cl, &sv, SC_MSG_SESSION, buf, len));
    /* the largest body passes; one byte more is never built */
    len = SC_WIRE_MAX_BODY - (4 + 5 + 8);
    buf = apr_pcalloc(pool, len + 1);
    CHECK(pass(&cl, &sv, SC_MSG_STATE_CHUNK, buf, len));
    CHECK(sc_wire_frame(&cl, SC_MSG_STATE_CHUNK, buf, len + 1, pool, &frame, &flen)
          == APR_EINVAL);
    CHECK(cl.tx_counter == sv.rx_counter);
    CHECK(pass(&cl, &sv, SC_MSG_PING, "12345678", 8));
}

/* ---- attacks on frames ------------------------------------------------------------ */

static void test_header_tamper(void)
{
    /* every header byte is checked (the payload is TLS's to protect) */
    sc_wire_conn cl, sv;
    const unsigned char *body;
    unsigned char *copy;
    char *frame;
    apr_size_t flen, blen, i, bad = 0;
    static const unsigned char flips[] = { 0x01, 0x80, 0xff };
    apr_size_t f;

    CHECK(handshake(&cl, &sv));
    CHECK(sc_wire_frame(&cl, SC_MSG_PING, "12345678", 8, pool, &frame, &flen)
          == APR_SUCCESS);
    CHECK(body_of(frame, flen, &body, &blen));
    copy = apr_palloc(pool, blen);
    for (i = 0; i < blen - 8; i++) {       /* version .. counter */
        for (f = 0; f < sizeof(flips); f++) {
            memcpy(copy, body, blen);
            copy[i] ^= flips[f];
            /* PING (2) -> PONG (3) is a valid type: the header has no tag */
            if (i == 1 && f == 0)
                continue;
            if (!rejected(&sv, copy, blen, APR_EINVAL, NULL)) {
                fprintf(stderr, "  byte %d ^ 0x%02x accepted\n", (int)i, flips[f]);
                bad++;
            }
        }
    }
    CHECK(bad == 0);
    CHECK(!rejected(&sv, body, blen, APR_SUCCESS, NULL) && sv.rx_counter == 1);
}

static void test_replay_reorder_skip(void)
{
    sc_wire_conn cl, sv;
    char *f1, *f2, *f3;
    apr_size_t l1, l2, l3;
    const char *payload, *why;
    apr_size_t plen;
    int type;

    CHECK(handshake(&cl, &sv));
    CHECK(sc_wire_frame(&cl, SC_MSG_PING, "11111111", 8, pool, &f1, &l1) == APR_SUCCESS);
    CHECK(sc_wire_frame(&cl, SC_MSG_PING, "22222222", 8, pool, &f2, &l2) == APR_SUCCESS);
    CHECK(sc_wire_frame(&cl, SC_MSG_PING, "33333333", 8, pool, &f3, &l3) == APR_SUCCESS);
    /* reordered: 2 before 1 */
    CHECK(rejected(&sv, (unsigned char *)f2 + 4, l2 - 4, APR_EINVAL,
                   "replayed or reordered counter"));
    CHECK(sc_wire_open(&sv, (unsigned char *)f1 + 4, l1 - 4, pool, &type, &payload,
                       &plen, &why) == APR_SUCCESS && !memcmp(payload, "11111111", 8));
    /* replayed */
    CHECK(rejected(&sv, (unsigned char *)f1 + 4, l1 - 4, APR_EINVAL,
                   "replayed or reordered counter"));
    /* skipping 2 */
    CHECK(rejected(&sv, (unsigned char *)f3 + 4, l3 - 4, APR_EINVAL,
                   "replayed or reordered counter"));
    CHECK(sc_wire_open(&sv, (unsigned char *)f2 + 4, l2 - 4, pool, &type, &payload,
                       &plen, &why) == APR_SUCCESS);
    CHECK(sc_wire_open(&sv, (unsigned char *)f3 + 4, l3 - 4, pool, &type, &payload,
                       &plen, &why) == APR_SUCCESS && !memcmp(payload, "33333333", 8));
    CHECK(rejected(&sv, (unsigned char *)f3 + 4, l3 - 4, APR_EINVAL,
                   "replayed or reordered counter"));
    CHECK(sv.rx_counter == 3);
    /* a new HELLO (a new connection) starts the counters again */
    CHECK(handshake(&cl, &sv));
    CHECK(sc_wire_open(&sv, (unsigned char *)f1 + 4, l1 - 4, pool, &type, &payload,
                       &plen, &why) == APR_SUCCESS && sv.rx_counter == 1);
}

static void test_counter_never_wraps(void)
{
    sc_wire_conn cl, sv;
    unsigned char b[64];
    char *frame;
    apr_size_t flen, n;

    CHECK(handshake(&cl, &sv));
    cl.tx_counter = APR_UINT64_MAX;
    CHECK(sc_wire_frame(&cl, SC_MSG_PING, "12345678", 8, pool, &frame, &flen)
          == APR_EINVAL);
    CHECK(cl.tx_counter == APR_UINT64_MAX);
    cl.tx_counter = APR_UINT64_MAX - 1;
    CHECK(sc_wire_frame(&cl, SC_MSG_PING, "12345678", 8, pool, &frame, &flen)
          == APR_SUCCESS && cl.tx_counter == APR_UINT64_MAX);
    sv.rx_counter = APR_UINT64_MAX;
    n = raw_body(b, 2, SC_MSG_PING, 0, "node1", 0, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "replayed or reordered counter"));
    sv.rx_counter = APR_UINT64_MAX - 1;
    n = raw_body(b, 2, SC_MSG_PING, 0, "node1", APR_UINT64_MAX, "12345678", 8);
    CHECK(!rejected(&sv, b, n, APR_SUCCESS, NULL) && sv.rx_counter == APR_UINT64_MAX);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "replayed or reordered counter"));
}

static void test_wrong_sender(void)
{
    sc_wire_conn cl, sv;
    unsigned char b[64];
    apr_size_t n;

    /* a frame naming another route than the HELLO's */
    CHECK(handshake(&cl, &sv));
    n = raw_body(b, 2, SC_MSG_PING, 0, "node3", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "route mismatch"));
    n = raw_body(b, 2, SC_MSG_PING, 0, "node", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "route mismatch"));
    n = raw_body(b, 2, SC_MSG_PING, 0, "node11", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "route mismatch"));
    n = raw_body(b, 2, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    CHECK(!rejected(&sv, b, n, APR_SUCCESS, NULL) && sv.rx_counter == 1);
    /* a frame built by a connection that calls itself node3 */
    {
        sc_wire_conn impostor;
        char *frame;
        apr_size_t flen;
        sc_wire_conn_init(&impostor, "node3");
        impostor.tx_counter = 1;
        CHECK(sc_wire_frame(&impostor, SC_MSG_PING, "12345678", 8, pool, &frame,
                            &flen) == APR_SUCCESS);
        CHECK(rejected(&sv, (unsigned char *)frame + 4, flen - 4, APR_EINVAL,
                       "route mismatch"));
    }
    /* no HELLO yet: nobody is the peer */
    sc_wire_conn_init(&sv, "node2");
    n = raw_body(b, 2, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "route mismatch"));
}

static void test_body_len(void)
{
    static const unsigned char huge[4] = { 0xff, 0xff, 0xff, 0xff };
    static const unsigned char zero[4] = { 0, 0, 0, 0 };
    unsigned char pre[4];
    const char *why;
    apr_size_t len;
    apr_uint32_t n;

    why = NULL;
    CHECK(sc_wire_body_len(huge, &len, &why) == APR_EINVAL && !strcmp(why, "frame too large"));
    why = NULL;
    CHECK(sc_wire_body_len(zero, &len, &why) == APR_EINVAL && why);
    for (n = 1; n < 13; n++) {
        pre[0] = 0; pre[1] = 0; pre[2] = 0; pre[3] = (unsigned char)n;
        why = NULL;
        CHECK(sc_wire_body_len(pre, &len, &why) == APR_EINVAL && why);
    }
    pre[3] = 13;
    CHECK(sc_wire_body_len(pre, &len, &why) == APR_SUCCESS && len == 13);
    n = SC_WIRE_MAX_BODY;
    pre[0] = (unsigned char)(n >> 24); pre[1] = (unsigned char)(n >> 16);
    pre[2] = (unsigned char)(n >> 8); pre[3] = (unsigned char)n;
    CHECK(sc_wire_body_len(pre, &len, &why) == APR_SUCCESS && len == SC_WIRE_MAX_BODY);
    n++;
    pre[0] = (unsigned char)(n >> 24); pre[1] = (unsigned char)(n >> 16);
    pre[2] = (unsigned char)(n >> 8); pre[3] = (unsigned char)n;
    why = NULL;
    CHECK(sc_wire_body_len(pre, &len, &why) == APR_EINVAL && !strcmp(why, "frame too large"));
}

static void test_malformed_bodies(void)
{
    sc_wire_conn cl, sv;
    unsigned char b[128];
    apr_size_t n, i;

    CHECK(handshake(&cl, &sv));
    n = raw_body(b, 1, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "bad version"));      /* the old one */
    n = raw_body(b, 3, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "bad version"));
    n = raw_body(b, 0, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "bad version"));
    n = raw_body(b, 2, 0, 0, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "unknown type"));
    n = raw_body(b, 2, SC_MSG_MAX_, 0, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "unknown type"));
    n = raw_body(b, 2, 99, 0, "node1", 1, "", 0);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "unknown type"));
    n = raw_body(b, 2, 255, 0, "node1", 1, "", 0);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "unknown type"));
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "unexpected HELLO"));
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "node1", 0, "123456789", 9);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "unexpected HELLO"));
    /* flags must be 0: every bit, the old sealed flag (0x01) included */
    for (i = 1; i < 256; i <<= 1) {
        n = raw_body(b, 2, SC_MSG_PING, (int)i, "node1", 1, "12345678", 8);
        CHECK(rejected(&sv, b, n, APR_EINVAL, "unknown flags"));
    }
    n = raw_body(b, 2, SC_MSG_PING, 0, "nod/1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "bad route"));
    n = raw_body(b, 2, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    b[3] = 6;                                                   /* "node1\0" */
    b[4 + 5] = 0;
    CHECK(rejected(&sv, b, n, APR_EINVAL, "bad route"));
    n = raw_body(b, 2, SC_MSG_PING, 0, "abcdefghijklmnopqrstuvwxyz012345", 1, "", 0);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "bad route"));      /* 32 chars */
    n = raw_body(b, 2, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    b[3] = 0;                                                   /* no route */
    CHECK(rejected(&sv, b, n, APR_EINVAL, "bad route"));
    n = raw_body(b, 2, SC_MSG_PING, 0, "node1", 1, "", 0);
    b[3] = 30;                                                  /* past the end */
    CHECK(rejected(&sv, b, n, APR_EINVAL, "truncated"));
    /* truncated at every length, and NULL */
    n = raw_body(b, 2, SC_MSG_PING, 0, "node1", 1, "", 0);
    for (i = 0; i < n; i++) {
        unsigned char *cut = malloc(i ? i : 1);
        memcpy(cut, b, i);
        CHECK(rejected(&sv, cut, i, APR_EINVAL, NULL));
        free(cut);
    }
    CHECK(rejected(&sv, NULL, 0, APR_EINVAL, NULL));
    /* more than the cap, even if the caller skipped sc_wire_body_len */
    {
        unsigned char *big = calloc(1, (apr_size_t)SC_WIRE_MAX_BODY + 1);
        raw_body(big, 2, SC_MSG_PING, 0, "node1", 1, "", 0);
        CHECK(rejected(&sv, big, (apr_size_t)SC_WIRE_MAX_BODY + 1, APR_EINVAL,
                       "frame too large"));
        CHECK(!rejected(&sv, big, (apr_size_t)SC_WIRE_MAX_BODY, APR_SUCCESS, NULL)
              && sv.rx_counter == 1);
        free(big);
    }
    /* and a good one after all that */
    n = raw_body(b, 2, SC_MSG_PING, 0, "node1", 2, "12345678", 8);
    CHECK(!rejected(&sv, b, n, APR_SUCCESS, NULL) && sv.rx_counter == 2);
}

static void test_frame_rejects(void)
{
    sc_wire_conn c;
    char *frame;
    apr_size_t flen;

    sc_wire_conn_init(&c, "node1");
    strcpy(c.peer, "node2");
    CHECK(sc_wire_frame(&c, SC_MSG_HELLO, "", 0, pool, &frame, &flen) == APR_EINVAL);
    CHECK(sc_wire_frame(&c, 0, "", 0, pool, &frame, &flen) == APR_EINVAL);
    CHECK(sc_wire_frame(&c, -1, "", 0, pool, &frame, &flen) == APR_EINVAL);
    CHECK(sc_wire_frame(&c, SC_MSG_MAX_, "", 0, pool, &frame, &flen) == APR_EINVAL);
    CHECK(sc_wire_frame(&c, SC_MSG_PING, NULL, 8, pool, &frame, &flen) == APR_EINVAL);
    CHECK(sc_wire_frame(&c, SC_MSG_PING, "", (apr_size_t)-1, pool, &frame, &flen)
          == APR_EINVAL);
    CHECK(sc_wire_frame(&c, SC_MSG_PING, "", (apr_size_t)SC_WIRE_MAX_BODY, pool,
                        &frame, &flen) == APR_EINVAL);
    CHECK(c.tx_counter == 0);
    /* an invalid own route never reaches a frame */
    sc_wire_conn_init(&c, "bad route");
    CHECK(!c.self[0]);
    CHECK(sc_wire_frame(&c, SC_MSG_PING, "", 0, pool, &frame, &flen) == APR_EINVAL);
    sc_wire_conn_init(&c, NULL);
    CHECK(sc_wire_frame(&c, SC_MSG_PING, "", 0, pool, &frame, &flen) == APR_EINVAL);
    CHECK(c.tx_counter == 0);
}

/* ---- payload codecs ------------------------------------------------------------------ */

/* Every proper prefix and the input plus a trailing byte must be refused. */
typedef apr_status_t (*decode_fn)(const char *buf, apr_size_t len);

static sc_msg_session g_s;
static sc_msg_delta g_d;
static sc_msg_invalidate g_i;
static sc_msg_ack g_a;
static apr_uint64_t g_u;

static apr_status_t dec_session(const char *b, apr_size_t n)
{ return sc_msg_session_decode(pool, b, n, &g_s); }
static apr_status_t dec_delta(const char *b, apr_size_t n)
{ return sc_msg_delta_decode(pool, b, n, &g_d); }
static apr_status_t dec_invalidate(const char *b, apr_size_t n)
{ return sc_msg_invalidate_decode(pool, b, n, &g_i); }
static apr_status_t dec_ack(const char *b, apr_size_t n)
{ return sc_msg_ack_decode(b, n, &g_a); }
static apr_status_t dec_u64(const char *b, apr_size_t n)
{ return sc_msg_u64_decode(b, n, &g_u); }

static int strict(decode_fn dec, const char *buf, apr_size_t len)
{
    char *copy = apr_palloc(pool, len + 1);
    apr_size_t i;
    int ok = dec(buf, len) == APR_SUCCESS;

    for (i = 0; i < len; i++) {
        /* an exact-size copy, so ASan sees any read past the end */
        char *cut = malloc(i ? i : 1);
        memcpy(cut, buf, i);
        ok &= dec(cut, i) == APR_EINVAL;
        free(cut);
    }
    memcpy(copy, buf, len);
    copy[len] = 'z';
    ok &= dec(copy, len + 1) == APR_EINVAL;
    ok &= dec(NULL, 0) == APR_EINVAL;
    return ok;
}

static void test_codecs_strict(void)
{
    sc_msg_session s = { "id_1", "node1", "", 1, 2, "k=v", 3 };
    sc_msg_delta d = { "id_1", "node1", 1, 2, 3, "k=", 2 };
    sc_msg_invalidate inv = { "id_1", 5, 6 };
    sc_msg_ack a = { 7, SC_ACK_REFUSED };
    char *buf;
    apr_size_t len;

    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_SUCCESS);
    CHECK(len == 2 + 4 + 2 + 5 + 2 + 8 + 8 + 4 + 3);
    CHECK(strict(dec_session, buf, len));
    CHECK(sc_msg_delta_encode(pool, &d, &buf, &len) == APR_SUCCESS);
    CHECK(strict(dec_delta, buf, len));
    CHECK(sc_msg_invalidate_encode(pool, &inv, &buf, &len) == APR_SUCCESS);
    CHECK(len == 2 + 4 + 8 + 8);
    CHECK(strict(dec_invalidate, buf, len));
    CHECK(sc_msg_ack_encode(pool, &a, &buf, &len) == APR_SUCCESS);
    CHECK(len == 12);
    CHECK(strict(dec_ack, buf, len));
    CHECK(sc_msg_u64_encode(pool, 99, &buf, &len) == APR_SUCCESS);
    CHECK(strict(dec_u64, buf, len));
    /* empty data and patch (a touch) are fine */
    s.data = NULL;
    s.len = 0;
    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_SUCCESS);
    CHECK(dec_session(buf, len) == APR_SUCCESS && g_s.len == 0 && !strcmp(g_s.data, ""));
    CHECK(strict(dec_session, buf, len));
    d.patch = "";
    d.len = 0;
    CHECK(sc_msg_delta_encode(pool, &d, &buf, &len) == APR_SUCCESS);
    CHECK(dec_delta(buf, len) == APR_SUCCESS && g_d.len == 0 && !strcmp(g_d.patch, ""));
}

static void test_codecs_decode_copies(void)
{
    sc_msg_session s = { "id_1", "node1", "", 1, 2, "k=v", 3 };
    char *buf;
    apr_size_t len;

    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_SUCCESS);
    CHECK(dec_session(buf, len) == APR_SUCCESS);
    memset(buf, 'Q', len);
    CHECK(!strcmp(g_s.id, "id_1") && !strcmp(g_s.owner, "node1")
          && !strcmp(g_s.data, "k=v"));
}

/* u16 length, bytes */
static apr_size_t put_str16(unsigned char *b, const char *s, apr_size_t n)
{
    b[0] = (unsigned char)(n >> 8);
    b[1] = (unsigned char)n;
    memcpy(b + 2, s, n);
    return 2 + n;
}

static apr_size_t put_be(unsigned char *b, apr_uint64_t v, int bytes)
{
    int i;
    for (i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    return (apr_size_t)bytes;
}

/* A session record with raw fields, to probe the decoder's limits. */
static apr_size_t raw_session(unsigned char *b, const char *id, apr_size_t idlen,
                              const char *owner, apr_size_t olen,
                              apr_uint32_t dlen_field, const char *data, apr_size_t dlen)
{
    apr_size_t n = 0;
    n += put_str16(b + n, id, idlen);
    n += put_str16(b + n, owner, olen);
    n += put_str16(b + n, "", 0);           /* no backup */
    n += put_be(b + n, 1, 8);
    n += put_be(b + n, 2, 8);
    n += put_be(b + n, dlen_field, 4);
    memcpy(b + n, data, dlen);
    return n + dlen;
}

static void test_codecs_caps(void)
{
    static const char id47[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    static const char id48[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    static const char r31[] = "abcdefghijklmnopqrstuvwxyz01234";
    static const char r32[] = "abcdefghijklmnopqrstuvwxyz012345";
    unsigned char b[256];
    sc_msg_session s = { id47, r31, "", 1, 2, "k=v", 3 };
    sc_msg_delta d = { id47, r31, 1, 2, 3, "k=", 2 };
    sc_msg_invalidate inv = { id48, 1, 2 };
    sc_msg_ack a = { 1, SC_ACK_NOTFOUND + 1 };
    char *buf, *big;
    apr_size_t len, n;

    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_SUCCESS);
    CHECK(dec_session(buf, len) == APR_SUCCESS && strlen(g_s.id) == 47
          && strlen(g_s.owner) == 31);
    CHECK(sc_msg_delta_encode(pool, &d, &buf, &len) == APR_SUCCESS);

    /* the encoders refuse what a peer would refuse */
    s.id = id48;
    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_EINVAL);
    s.id = "";
    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_EINVAL);
    s.id = "id/../x";
    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_EINVAL);
    s.id = id47;
    s.owner = r32;
    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_EINVAL);
    s.owner = "";
    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_EINVAL);
    s.owner = "node1";
    s.data = "k=v\0w";
    s.len = 5;
    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_EINVAL);
    big = apr_pcalloc(pool, SC_SESSION_MAX + 1);
    memset(big, 'x', SC_SESSION_MAX + 1);
    s.data = big;
    s.len = SC_SESSION_MAX + 1;
    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_EINVAL);
    d.patch = big;
    d.len = SC_SESSION_MAX + 1;
    CHECK(sc_msg_delta_encode(pool, &d, &buf, &len) == APR_EINVAL);
    CHECK(sc_msg_invalidate_encode(pool, &inv, &buf, &len) == APR_EINVAL);
    CHECK(sc_msg_ack_encode(pool, &a, &buf, &len) == APR_EINVAL);
    a.status = -1;
    CHECK(sc_msg_ack_encode(pool, &a, &buf, &len) == APR_EINVAL);

    /* and the decoders refuse it from the wire */
    n = raw_session(b, id48, 48, "node1", 5, 3, "k=v", 3);
    CHECK(dec_session((char *)b, n) == APR_EINVAL);
    n = raw_session(b, "", 0, "node1", 5, 3, "k=v", 3);
    CHECK(dec_session((char *)b, n) == APR_EINVAL);
    n = raw_session(b, "id\0x", 4, "node1", 5, 3, "k=v", 3);
    CHECK(dec_session((char *)b, n) == APR_EINVAL);
    n = raw_session(b, "id 1", 4, "node1", 5, 3, "k=v", 3);
    CHECK(dec_session((char *)b, n) == APR_EINVAL);
    n = raw_session(b, "id1", 3, r32, 32, 3, "k=v", 3);
    CHECK(dec_session((char *)b, n) == APR_EINVAL);
    n = raw_session(b, "id1", 3, "", 0, 3, "k=v", 3);
    CHECK(dec_session((char *)b, n) == APR_EINVAL);
    n = raw_session(b, "id1", 3, "no.de", 5, 3, "k=v", 3);
    CHECK(dec_session((char *)b, n) == APR_EINVAL);
    n = raw_session(b, "id1", 3, "m\0", 2, 3, "k=v", 3);  /* found by fuzz_wire */
    CHECK(dec_session((char *)b, n) == APR_EINVAL);
    n = raw_session(b, "id1", 3, "node1", 5, 3, "k\0v", 3);
    CHECK(dec_session((char *)b, n) == APR_EINVAL);
    /* a length field far over the cap, with no bytes behind it */
    n = raw_session(b, "id1", 3, "node1", 5, 0xffffffffu, "", 0);
    CHECK(dec_session((char *)b, n) == APR_EINVAL);
    n = raw_session(b, "id1", 3, "node1", 5, SC_SESSION_MAX + 1, "", 0);
    CHECK(dec_session((char *)b, n) == APR_EINVAL);
    n = raw_session(b, "id1", 3, "node1", 5, 3, "k=v", 3);
    CHECK(dec_session((char *)b, n) == APR_SUCCESS);
    /* an id length field longer than the record */
    b[0] = 0xff;
    CHECK(dec_session((char *)b, n) == APR_EINVAL);

    /* a session of exactly the cap decodes; one byte more does not */
    {
        apr_size_t rec = 2 + 3 + 2 + 5 + 2 + 8 + 8 + 4;
        unsigned char *w = apr_palloc(pool, rec + SC_SESSION_MAX + 1);
        n = raw_session(w, "id1", 3, "node1", 5, SC_SESSION_MAX, "", 0);
        memset(w + n, 'x', SC_SESSION_MAX + 1);
        CHECK(dec_session((char *)w, n + SC_SESSION_MAX) == APR_SUCCESS
              && g_s.len == SC_SESSION_MAX && g_s.data[SC_SESSION_MAX] == '\0');
        n = raw_session(w, "id1", 3, "node1", 5, SC_SESSION_MAX + 1, "", 0);
        CHECK(dec_session((char *)w, n + SC_SESSION_MAX + 1) == APR_EINVAL);
    }

    /* ack status outside the enum */
    n = put_be(b, 1, 8);
    n += put_be(b + n, SC_ACK_NOTFOUND + 1, 4);
    CHECK(dec_ack((char *)b, n) == APR_EINVAL);
    n = put_be(b, 1, 8);
    n += put_be(b + n, SC_ACK_FULL, 4);
    CHECK(dec_ack((char *)b, n) == APR_SUCCESS && g_a.status == SC_ACK_FULL);
}


static void test_state_chunk_records(void)
{
    /* count 2: "abc" and "" then nothing more */
    static const char good[] = "\0\0\0\2" "\0\0\0\3" "abc" "\0\0\0\0";
    static const char more[] = "\0\0\0\3" "\0\0\0\3" "abc" "\0\0\0\0";
    static const char huge_len[] = "\0\0\0\1" "\xff\xff\xff\xff" "abc";
    static const char huge_count[] = "\xff\xff\xff\xff" "\0\0\0\0";
    apr_array_header_t *r;
    const sc_msg_record *rec;

    CHECK(sc_msg_chunk_decode(pool, good, sizeof(good) - 1, &r) == APR_SUCCESS);
    CHECK(r->nelts == 2);
    rec = &APR_ARRAY_IDX(r, 0, sc_msg_record);
    CHECK(rec->len == 3 && !memcmp(rec->data, "abc", 3));
    CHECK(APR_ARRAY_IDX(r, 1, sc_msg_record).len == 0);
    /* a trailing byte, a count larger than the records, a length past the
     * end, a count no buffer could hold, and every truncation */
    CHECK(sc_msg_chunk_decode(pool, good, sizeof(good), &r) == APR_EINVAL);
    CHECK(sc_msg_chunk_decode(pool, more, sizeof(more) - 1, &r) == APR_EINVAL);
    CHECK(sc_msg_chunk_decode(pool, huge_len, sizeof(huge_len) - 1, &r) == APR_EINVAL);
    CHECK(sc_msg_chunk_decode(pool, huge_count, sizeof(huge_count) - 1, &r)
          == APR_EINVAL);
    {
        apr_size_t n;
        int bad = 0;
        for (n = 0; n < sizeof(good) - 1; n++)
            bad += sc_msg_chunk_decode(pool, good, n, &r) != APR_EINVAL;
        CHECK(bad == 0);
    }
}

/* BATCH and BATCH_APPLIED: exact bytes, round trips, every rejection. */
static void test_batch_codecs(void)
{
    static const char two[] = "\0\0\0\2" "\5" "\0\0\0\3" "abc" "\4" "\0\0\0\0";
    sc_msg_change in[2] = { { SC_MSG_DELTA, "abc", 3 }, { SC_MSG_SESSION, "", 0 } };
    sc_msg_change *out, many[SC_WIRE_BATCH_MAX + 1];
    sc_msg_batch_applied a, back;
    unsigned char st[3] = { SC_ACK_OK, SC_ACK_NEED_WHOLE, SC_ACK_STALE };
    char *enc;
    apr_size_t len, n;
    int got, i, bad = 0;

    CHECK(sc_msg_batch_encode(pool, in, 2, &enc, &len) == APR_SUCCESS);
    CHECK(len == sizeof(two) - 1 && !memcmp(enc, two, len));
    CHECK(sc_msg_batch_decode(pool, enc, len, &out, &got) == APR_SUCCESS && got == 2);
    CHECK(out[0].type == SC_MSG_DELTA && out[0].len == 3 && !memcmp(out[0].data, "abc", 3));
    CHECK(out[1].type == SC_MSG_SESSION && out[1].len == 0);
    /* a trailing byte, every truncation, no changes, too many, a type that
     * is not a change (a PING, a nested BATCH) */
    CHECK(sc_msg_batch_decode(pool, two, sizeof(two), &out, &got) == APR_EINVAL);
    for (n = 0; n < sizeof(two) - 1; n++)
        bad += sc_msg_batch_decode(pool, two, n, &out, &got) != APR_EINVAL;
    CHECK(bad == 0);
    CHECK(sc_msg_batch_decode(pool, "\0\0\0\0", 4, &out, &got) == APR_EINVAL);
    CHECK(sc_msg_batch_encode(pool, in, 0, &enc, &len) == APR_EINVAL);
    for (i = 0; i <= SC_WIRE_BATCH_MAX; i++)
        many[i] = in[1];
    CHECK(sc_msg_batch_encode(pool, many, SC_WIRE_BATCH_MAX, &enc, &len) == APR_SUCCESS);
    CHECK(sc_msg_batch_encode(pool, many, SC_WIRE_BATCH_MAX + 1, &enc, &len)
          == APR_EINVAL);
    in[1].type = SC_MSG_PING;
    CHECK(sc_msg_batch_encode(pool, in, 2, &enc, &len) == APR_EINVAL);
    in[1].type = SC_MSG_BATCH;
    CHECK(sc_msg_batch_encode(pool, in, 2, &enc, &len) == APR_EINVAL);
    {
        char nested[sizeof(two)];
        memcpy(nested, two, sizeof(two));
        nested[4 + 1 + 4 + 3] = SC_MSG_BATCH;
        CHECK(sc_msg_batch_decode(pool, nested, sizeof(two) - 1, &out, &got)
              == APR_EINVAL);
    }

    a.counter = 77;
    a.n = 3;
    a.status = st;
    CHECK(sc_msg_batch_applied_encode(pool, &a, &enc, &len) == APR_SUCCESS);
    CHECK(len == 8 + 4 + 3);
    CHECK(sc_msg_batch_applied_decode(pool, enc, len, &back) == APR_SUCCESS);
    CHECK(back.counter == 77 && back.n == 3 && !memcmp(back.status, st, 3));
    CHECK(sc_msg_batch_applied_decode(pool, enc, len - 1, &back) == APR_EINVAL);
    enc[len - 1] = 99;                              /* not a status */
    CHECK(sc_msg_batch_applied_decode(pool, enc, len, &back) == APR_EINVAL);
    a.n = 0;
    CHECK(sc_msg_batch_applied_encode(pool, &a, &enc, &len) == APR_EINVAL);
}

/* Backup manager payloads: a SESSION's backup route, LOCATION (a SESSION
 * without data) and FETCH (an id). */
static void test_location_and_fetch_codecs(void)
{
    sc_msg_session s = { "id_1", "node1", "node2", 3, 4, "k=v", 3 };
    sc_msg_location loc = { "id_1", "node1", "node3", 5, 6 }, gl;
    const char *id;
    char *buf;
    apr_size_t len;

    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_SUCCESS);
    CHECK(dec_session(buf, len) == APR_SUCCESS && !strcmp(g_s.backup, "node2"));
    /* a session with data is not a location */
    CHECK(sc_msg_location_decode(pool, buf, len, &gl) == APR_EINVAL);
    s.backup = "no.de";
    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_EINVAL);
    s.backup = NULL;
    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_EINVAL);

    CHECK(sc_msg_location_encode(pool, &loc, &buf, &len) == APR_SUCCESS);
    CHECK(strict(dec_session, buf, len));
    CHECK(sc_msg_location_decode(pool, buf, len, &gl) == APR_SUCCESS);
    CHECK(!strcmp(gl.id, "id_1") && !strcmp(gl.owner, "node1")
          && !strcmp(gl.backup, "node3") && gl.version == 5 && gl.expires == 6);
    CHECK(sc_msg_location_decode(pool, buf, len - 1, &gl) == APR_EINVAL);
    loc.backup = "";                    /* no backup: allowed */
    CHECK(sc_msg_location_encode(pool, &loc, &buf, &len) == APR_SUCCESS);
    CHECK(sc_msg_location_decode(pool, buf, len, &gl) == APR_SUCCESS && !*gl.backup);

    CHECK(sc_msg_id_encode(pool, "id_1", &buf, &len) == APR_SUCCESS && len == 6);
    CHECK(sc_msg_id_decode(pool, buf, len, &id) == APR_SUCCESS && !strcmp(id, "id_1"));
    CHECK(sc_msg_id_decode(pool, buf, len - 1, &id) == APR_EINVAL);
    CHECK(sc_msg_id_decode(pool, buf, 0, &id) == APR_EINVAL);
    CHECK(sc_msg_id_encode(pool, "id/1", &buf, &len) == APR_EINVAL);
    CHECK(sc_msg_id_encode(pool, "", &buf, &len) == APR_EINVAL);
}

/* ---- multicast heartbeats --------------------------------------------------- */

static const sc_heartbeat hb_node1 = { "node1", "10.77.0.11:9101", 1234, 5678, 1, 1 };

static void check_hb_equal(const sc_heartbeat *a, const sc_heartbeat *b)
{
    CHECK(!strcmp(a->route, b->route) && !strcmp(a->listen, b->listen));
    CHECK(a->epoch == b->epoch && a->stamp == b->stamp);
    CHECK(a->manager == b->manager && a->ready == b->ready);
}

/* Sealed by an independent implementation (Python cryptography): heartbeat
 * key 0x40..0x5f, random bytes 0xa0..0xaf, hb_node1; sender key =
 * HKDF-SHA256(key, salt = random, info = "sc2 heartbeat sender"), AES-256-GCM
 * with nonce 0000 || stamp and the header as additional data. */
static void test_heartbeat_known_answer(void)
{
    unsigned char key[1][SC_WIRE_KEY_BYTES], other[2][SC_WIRE_KEY_BYTES];
    unsigned char want[80], sender_key[SC_WIRE_KEY_BYTES];
    sc_heartbeat_sender snd;
    sc_heartbeat got;
    const char *why = NULL;
    char *out;
    apr_size_t len;
    int i;

    for (i = 0; i < SC_WIRE_KEY_BYTES; i++)
        key[0][i] = (unsigned char)(0x40 + i);
    sc_test_from_hex("6a6ceec5c74ad208367d5598fcff1069910870817ad8b2ef7d73d4e20eddcf4c",
             sender_key, sizeof(sender_key));
    sc_test_from_hex("534348420201a0a1a2a3a4a5a6a7a8a9aaabacadaeaf00056e6f6465310000000000"
             "00162e910550f0e3bb640f727f4c16b565086bbad45ddd3561c9a52e8942cef0eb68"
             "fc78c44264b2229abeaa1d69", want, sizeof(want));
    /* theirs opens here */
    CHECK(sc_heartbeat_open((const unsigned char (*)[SC_WIRE_KEY_BYTES])key, 1,
                            (const char *)want, sizeof(want), pool, &got, &why)
          == APR_SUCCESS);
    check_hb_equal(&hb_node1, &got);
    /* and as the second of two keys */
    memcpy(other[0], key_a, SC_WIRE_KEY_BYTES);
    memcpy(other[1], key[0], SC_WIRE_KEY_BYTES);
    CHECK(sc_heartbeat_open((const unsigned char (*)[SC_WIRE_KEY_BYTES])other, 2,
                            (const char *)want, sizeof(want), pool, &got, &why)
          == APR_SUCCESS);
    /* ours, with the same random bytes, is the same datagram */
    CHECK(sc_heartbeat_sender_init(&snd, key[0]) == APR_SUCCESS);
    for (i = 0; i < SC_WIRE_RANDOM_BYTES; i++)
        snd.random[i] = (unsigned char)(0xa0 + i);
    memcpy(snd.key, sender_key, SC_WIRE_KEY_BYTES);
    CHECK(sc_heartbeat_seal(&snd, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    CHECK(len == sizeof(want) && !memcmp(out, want, sizeof(want)));
}

static void test_heartbeat_roundtrip(void)
{
    const unsigned char ka[1][SC_WIRE_KEY_BYTES] = { "0123456789abcdef0123456789abcde" };
    const unsigned char kb[1][SC_WIRE_KEY_BYTES] = { "0123456789abcdef0123456789abcdX" };
    unsigned char ab[2][SC_WIRE_KEY_BYTES], ba[2][SC_WIRE_KEY_BYTES];
    sc_heartbeat_sender plain, sealed, sealed_b, again;
    sc_heartbeat got;
    const char *why = NULL;
    char *out;
    apr_size_t len;

    memcpy(ab[0], key_a, SC_WIRE_KEY_BYTES);
    memcpy(ab[1], key_b, SC_WIRE_KEY_BYTES);
    memcpy(ba[0], key_b, SC_WIRE_KEY_BYTES);
    memcpy(ba[1], key_a, SC_WIRE_KEY_BYTES);

    CHECK(sc_heartbeat_sender_init(&plain, NULL) == APR_SUCCESS && !plain.sealed);
    CHECK(sc_heartbeat_seal(&plain, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    CHECK(len <= SC_HB_MAX && contains(out, len, "10.77.0.11:9101"));
    CHECK((unsigned char)out[4] == SC_WIRE_VERSION && out[5] == 0);
    CHECK(sc_heartbeat_open(NULL, 0, out, len, pool, &got, &why) == APR_SUCCESS);
    check_hb_equal(&hb_node1, &got);
    /* keys given but none of them: the same as no key */
    CHECK(sc_heartbeat_open(ka, 0, out, len, pool, &got, &why) == APR_SUCCESS);

    /* sealed: the address travels encrypted, the route in the clear */
    CHECK(sc_heartbeat_sender_init(&sealed, key_a) == APR_SUCCESS && sealed.sealed);
    CHECK(sc_heartbeat_seal(&sealed, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    CHECK(len <= SC_HB_MAX && !contains(out, len, "10.77.0.11")
          && contains(out, len, "node1"));
    CHECK(out[5] == SC_HB_F_SEALED);
    CHECK(sc_heartbeat_open(ka, 1, out, len, pool, &got, &why) == APR_SUCCESS);
    check_hb_equal(&hb_node1, &got);
    /* a receiver holding two keys (a rotation) opens it under either order */
    CHECK(sc_heartbeat_open((const unsigned char (*)[SC_WIRE_KEY_BYTES])ab, 2, out,
                            len, pool, &got, &why) == APR_SUCCESS);
    check_hb_equal(&hb_node1, &got);
    CHECK(sc_heartbeat_open((const unsigned char (*)[SC_WIRE_KEY_BYTES])ba, 2, out,
                            len, pool, &got, &why) == APR_SUCCESS);
    check_hb_equal(&hb_node1, &got);
    /* ... but only the keys it counts: (B, A) with nkeys 1 is B alone */
    why = NULL;
    CHECK(sc_heartbeat_open((const unsigned char (*)[SC_WIRE_KEY_BYTES])ba, 1, out,
                            len, pool, &got, &why) == APR_EGENERAL
          && why && strstr(why, "authentication failed"));
    /* and a sender under B is opened by a receiver holding (A, B) */
    CHECK(sc_heartbeat_sender_init(&sealed_b, key_b) == APR_SUCCESS);
    CHECK(sc_heartbeat_seal(&sealed_b, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    CHECK(sc_heartbeat_open((const unsigned char (*)[SC_WIRE_KEY_BYTES])ab, 2, out,
                            len, pool, &got, &why) == APR_SUCCESS);
    check_hb_equal(&hb_node1, &got);
    /* another key only: refused as not authentic */
    why = NULL;
    CHECK(sc_heartbeat_open(ka, 1, out, len, pool, &got, &why) == APR_EGENERAL
          && why && strstr(why, "authentication failed"));
    CHECK(sc_heartbeat_seal(&sealed, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    why = NULL;
    CHECK(sc_heartbeat_open(kb, 1, out, len, pool, &got, &why) == APR_EGENERAL
          && why && strstr(why, "authentication failed"));
    /* the wrong mode at either end: sealed here, none there, and back */
    why = NULL;
    CHECK(sc_heartbeat_open(NULL, 0, out, len, pool, &got, &why) == APR_EINVAL
          && why && strstr(why, "sealed heartbeat"));
    CHECK(sc_heartbeat_seal(&plain, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    why = NULL;
    CHECK(sc_heartbeat_open(ka, 1, out, len, pool, &got, &why) == APR_EINVAL
          && why && strstr(why, "unsealed"));
    why = NULL;
    CHECK(sc_heartbeat_open((const unsigned char (*)[SC_WIRE_KEY_BYTES])ab, 2, out,
                            len, pool, &got, &why) == APR_EINVAL
          && why && strstr(why, "unsealed"));
    /* a new sender start draws new random bytes: a new key, never the same
     * nonce under one key even if the stamp repeats */
    CHECK(sc_heartbeat_sender_init(&again, key_a) == APR_SUCCESS);
    CHECK(memcmp(again.random, sealed.random, SC_WIRE_RANDOM_BYTES)
          && memcmp(again.key, sealed.key, SC_WIRE_KEY_BYTES));
    CHECK(memcmp(sealed.key, key_a, SC_WIRE_KEY_BYTES));
}

static void test_heartbeat_tamper_and_truncate(void)
{
    const unsigned char ka[1][SC_WIRE_KEY_BYTES] = { "0123456789abcdef0123456789abcde" };
    unsigned char ab[2][SC_WIRE_KEY_BYTES];
    sc_heartbeat_sender sealed, plain;
    sc_heartbeat got;
    const char *why = NULL;
    char *out, *copy;
    apr_size_t len, i;
    int bad = 0;

    memcpy(ab[0], key_b, SC_WIRE_KEY_BYTES);
    memcpy(ab[1], key_a, SC_WIRE_KEY_BYTES);
    CHECK(sc_heartbeat_sender_init(&sealed, key_a) == APR_SUCCESS);
    CHECK(sc_heartbeat_seal(&sealed, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    copy = apr_pmemdup(pool, out, len);
    for (i = 0; i < len; i++) {             /* every byte, header included */
        copy[i] ^= 0x20;
        bad += sc_heartbeat_open(ka, 1, copy, len, pool, &got, &why) == APR_SUCCESS;
        bad += sc_heartbeat_open((const unsigned char (*)[SC_WIRE_KEY_BYTES])ab, 2,
                                 copy, len, pool, &got, &why) == APR_SUCCESS;
        copy[i] ^= 0x20;
    }
    CHECK(bad == 0);
    for (i = 0; i < len; i++) {             /* cut short, exact-size copies */
        char *cut = malloc(i ? i : 1);
        memcpy(cut, out, i);
        bad += sc_heartbeat_open(ka, 1, cut, i, pool, &got, &why) == APR_SUCCESS;
        free(cut);
    }
    CHECK(bad == 0);
    CHECK(sc_heartbeat_open(ka, 1, copy, len, pool, &got, &why) == APR_SUCCESS);
    {
        char *longer = apr_palloc(pool, len + 1);
        memcpy(longer, out, len);
        longer[len] = 0;
        CHECK(sc_heartbeat_open(ka, 1, longer, len + 1, pool, &got, &why) != APR_SUCCESS);
    }
    CHECK(sc_heartbeat_sender_init(&plain, NULL) == APR_SUCCESS);
    CHECK(sc_heartbeat_seal(&plain, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    for (i = 0; i < len; i++) {
        char *cut = malloc(i ? i : 1);
        memcpy(cut, out, i);
        CHECK(sc_heartbeat_open(NULL, 0, cut, i, pool, &got, &why) == APR_EINVAL);
        free(cut);
    }
    copy = apr_palloc(pool, len + 1);       /* a trailing byte */
    memcpy(copy, out, len);
    copy[len] = 0;
    CHECK(sc_heartbeat_open(NULL, 0, copy, len + 1, pool, &got, &why) == APR_EINVAL);
    CHECK(sc_heartbeat_open(NULL, 0, NULL, 0, pool, &got, &why) == APR_EINVAL);
    CHECK(sc_heartbeat_open(ka, 1, NULL, 0, pool, &got, &why) == APR_EINVAL);
    /* an unsealed one with the sealed flag set and a made-up tag */
    copy = apr_palloc(pool, len + SC_WIRE_TAG_BYTES);
    memcpy(copy, out, len);
    memset(copy + len, 0, SC_WIRE_TAG_BYTES);
    copy[5] = SC_HB_F_SEALED;
    CHECK(sc_heartbeat_open(ka, 1, copy, len + SC_WIRE_TAG_BYTES, pool, &got, &why)
          == APR_EGENERAL);
}

static void test_heartbeat_rejects(void)
{
    sc_heartbeat_sender plain;
    sc_heartbeat bad, got;
    const char *why = NULL;
    char *out, big[SC_HB_MAX + 1];
    apr_size_t len;

    CHECK(sc_heartbeat_sender_init(&plain, NULL) == APR_SUCCESS);
    bad = hb_node1;
    bad.route = "no spaces";
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    bad.route = NULL;
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    bad = hb_node1;
    bad.listen = "10.0.0.1:80 ; rm";
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    bad.listen = "";
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    bad.listen = NULL;
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    bad = hb_node1;
    bad.listen = "a1234567890123456789012345678901234567890123456789012345678901:1";
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    bad.listen = "[2001:db8::1]:9101";
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_SUCCESS);
    CHECK(sc_heartbeat_open(NULL, 0, out, len, pool, &got, &why) == APR_SUCCESS
          && !strcmp(got.listen, "[2001:db8::1]:9101"));
    bad = hb_node1;
    bad.ready = 2;
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    bad.ready = -1;
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    bad = hb_node1;
    bad.manager = 256;
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    bad.manager = -1;
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    /* an oversized datagram is refused before anything is read */
    memset(big, 'A', sizeof(big));
    memcpy(big, "SCHB", 4);
    CHECK(sc_heartbeat_open(NULL, 0, big, sizeof(big), pool, &got, &why) == APR_EINVAL);
    /* a well-formed one with ready = 2 on the wire */
    CHECK(sc_heartbeat_seal(&plain, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    out[len - 1] = 2;
    CHECK(sc_heartbeat_open(NULL, 0, out, len, pool, &got, &why) == APR_EINVAL);
    out[len - 1] = 1;
    CHECK(sc_heartbeat_open(NULL, 0, out, len, pool, &got, &why) == APR_SUCCESS);
    out[4] = 1;                             /* the previous version */
    CHECK(sc_heartbeat_open(NULL, 0, out, len, pool, &got, &why) == APR_EINVAL);
    out[4] = 3;
    CHECK(sc_heartbeat_open(NULL, 0, out, len, pool, &got, &why) == APR_EINVAL);
    out[4] = SC_WIRE_VERSION;
    out[5] = 0x02;                          /* an unknown flag */
    CHECK(sc_heartbeat_open(NULL, 0, out, len, pool, &got, &why) == APR_EINVAL);
    out[5] = 0;
    out[0] = 'X';                           /* not a heartbeat at all */
    CHECK(sc_heartbeat_open(NULL, 0, out, len, pool, &got, &why) == APR_EINVAL);
}

int main(void)
{
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    RUN(test_hello_exchange);
    RUN(test_hello_bytes);
    RUN(test_hello_rejects);
    RUN(test_roundtrip_all_types);
    RUN(test_frame_bytes);
    RUN(test_largest_body_fits);
    RUN(test_header_tamper);
    RUN(test_replay_reorder_skip);
    RUN(test_counter_never_wraps);
    RUN(test_wrong_sender);
    RUN(test_body_len);
    RUN(test_malformed_bodies);
    RUN(test_frame_rejects);
    RUN(test_codecs_strict);
    RUN(test_codecs_decode_copies);
    RUN(test_codecs_caps);
    RUN(test_state_chunk_records);
    RUN(test_batch_codecs);
    RUN(test_location_and_fetch_codecs);
    RUN(test_heartbeat_known_answer);
    RUN(test_heartbeat_roundtrip);
    RUN(test_heartbeat_tamper_and_truncate);
    RUN(test_heartbeat_rejects);
    apr_pool_destroy(pool);
    return sc_test_report("test_wire");
}
