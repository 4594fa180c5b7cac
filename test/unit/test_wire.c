/* Unit tests for sc_wire: secret loading, the HELLO handshake, per-connection
 * keys, sealed and plaintext frames of every type, and the rejection of every
 * malformed, oversized, tampered, replayed, reordered or misrouted frame; the
 * payload codecs with truncated input at every length and trailing bytes;
 * multicast heartbeats sealed and plain, tampered, cut short, oversized.
 * Known answers were computed independently (Python's cryptography package,
 * as test/pyhttpd/wire.py uses it). Runs under ASan/UBSan. */
#include <string.h>
#include <stdlib.h>

#include <apr_general.h>
#include <apr_file_io.h>
#include <apr_strings.h>

#include "sc_wire.h"
#include "sc_test.h"

static apr_pool_t *pool;
static const unsigned char secret_a[SC_WIRE_KEY_BYTES] = "0123456789abcdef0123456789abcde";
static const unsigned char secret_b[SC_WIRE_KEY_BYTES] = "0123456789abcdef0123456789abcdX";

/* ---- helpers -------------------------------------------------------------- */

static void from_hex(const char *hex, unsigned char *out, apr_size_t n)
{
    apr_size_t i;
    for (i = 0; i < n; i++) {
        unsigned int v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
}

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

/* A full handshake between a client (node1) and a server (node2). */
static int handshake(sc_wire_conn *cl, sc_wire_conn *sv, const unsigned char *cl_secret,
                     const unsigned char *sv_secret)
{
    unsigned char cr[SC_WIRE_RANDOM_BYTES], sr[SC_WIRE_RANDOM_BYTES];
    unsigned char got_cr[SC_WIRE_RANDOM_BYTES], got_sr[SC_WIRE_RANDOM_BYTES];
    const unsigned char *body;
    const char *why = NULL;
    char *frame;
    apr_size_t flen, blen;

    sc_wire_conn_init(cl, "node1", cl_secret != NULL);
    sc_wire_conn_init(sv, "node2", sv_secret != NULL);
    cl->incarnation = 0x1111222233334444ULL;
    sv->incarnation = 0x5555666677778888ULL;
    if (sc_wire_hello(cl, cr, pool, &frame, &flen) != APR_SUCCESS
        || !body_of(frame, flen, &body, &blen)
        || sc_wire_hello_open(sv, body, blen, NULL, got_cr, &why) != APR_SUCCESS
        || sc_wire_hello(sv, sr, pool, &frame, &flen) != APR_SUCCESS
        || !body_of(frame, flen, &body, &blen)
        || sc_wire_hello_open(cl, body, blen, "node2", got_sr, &why) != APR_SUCCESS)
        return 0;
    if (memcmp(cr, got_cr, sizeof(cr)) || memcmp(sr, got_sr, sizeof(sr))
        || cl->peer_incarnation != sv->incarnation
        || sv->peer_incarnation != cl->incarnation)
        return 0;
    return sc_wire_conn_keys(cl, cl_secret, cr, sr, 1) == APR_SUCCESS
        && sc_wire_conn_keys(sv, sv_secret, cr, sr, 0) == APR_SUCCESS;
}

/* Seal on one side, open on the other: the same type and payload back. */
static int pass(sc_wire_conn *from, sc_wire_conn *to, int type, const char *payload,
                apr_size_t len)
{
    const unsigned char *body;
    const char *got, *why = NULL;
    char *frame;
    apr_size_t flen, blen, glen;
    int gtype;

    if (sc_wire_seal(from, type, payload, len, pool, &frame, &flen) != APR_SUCCESS
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

/* A plaintext body built by hand. */
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

static const char *write_temp(const char *content, apr_size_t len)
{
    char *path = apr_pstrdup(pool, "/tmp/sc_wire_secret_XXXXXX");
    apr_file_t *f;
    apr_size_t n = len;
    if (apr_file_mktemp(&f, path, APR_FOPEN_CREATE | APR_FOPEN_READ
                        | APR_FOPEN_WRITE | APR_FOPEN_EXCL, pool) != APR_SUCCESS)
        return NULL;
    if (len && apr_file_write_full(f, content, len, &n) != APR_SUCCESS)
        n = 0;
    apr_file_close(f);
    return n == len ? path : NULL;
}

/* ---- secret ---------------------------------------------------------------- */

static void test_secret_load(void)
{
    /* sha256("correct horse battery staple") */
    unsigned char want[SC_WIRE_KEY_BYTES], got[SC_WIRE_KEY_BYTES], again[SC_WIRE_KEY_BYTES];
    const char *path;
    char *big;

    from_hex("c4bbcb1fbec99d65bf59d85c8cb62ee2db963f0fe106f483d9afa73bd4e39a8a",
             want, sizeof(want));
    path = write_temp("correct horse battery staple", 28);
    CHECK(path && sc_wire_secret_load(path, got, pool) == APR_SUCCESS);
    CHECK(!memcmp(got, want, sizeof(want)));
    apr_file_remove(path, pool);

    /* surrounding whitespace does not count (an editor's newline) */
    path = write_temp(" \t\r\ncorrect horse battery staple\n\n", 34);
    CHECK(path && sc_wire_secret_load(path, again, pool) == APR_SUCCESS);
    CHECK(!memcmp(again, want, sizeof(want)));
    apr_file_remove(path, pool);

    /* too short once trimmed */
    path = write_temp("   short-secret-15   \n", 22);
    CHECK(path && sc_wire_secret_load(path, got, pool) == APR_EINVAL);
    apr_file_remove(path, pool);
    path = write_temp("0123456789abcdef", 16);
    CHECK(path && sc_wire_secret_load(path, got, pool) == APR_SUCCESS);
    apr_file_remove(path, pool);
    path = write_temp("", 0);
    CHECK(path && sc_wire_secret_load(path, got, pool) == APR_EINVAL);
    apr_file_remove(path, pool);

    /* absurdly large, or missing */
    big = apr_palloc(pool, 64 * 1024 + 1);
    memset(big, 'k', 64 * 1024 + 1);
    path = write_temp(big, 64 * 1024 + 1);
    CHECK(path && sc_wire_secret_load(path, got, pool) == APR_EINVAL);
    apr_file_remove(path, pool);
    path = write_temp(big, 64 * 1024);
    CHECK(path && sc_wire_secret_load(path, got, pool) == APR_SUCCESS);
    apr_file_remove(path, pool);
    CHECK(sc_wire_secret_load("/nonexistent/secret", got, pool) != APR_SUCCESS);
}

/* ---- handshake and keys --------------------------------------------------- */

static void test_known_answer(void)
{
    /* keys and a sealed PING from an independent implementation */
    unsigned char secret[SC_WIRE_KEY_BYTES], cr[16], sr[16], c2s[32], s2c[32];
    unsigned char want[45];
    sc_wire_conn cl, sv;
    char *frame, ping[8];
    const unsigned char *body;
    const char *payload, *why = NULL;
    apr_size_t flen, blen, plen;
    apr_uint64_t v = 0;
    int i, type = 0;

    for (i = 0; i < 32; i++)
        secret[i] = (unsigned char)i;
    for (i = 0; i < 16; i++) {
        cr[i] = (unsigned char)(16 + i);
        sr[i] = (unsigned char)(32 + i);
    }
    from_hex("408a1c61e73143079a5fa208a378dd7541b37cec52725bdd8902ba34a57533fc", c2s, 32);
    from_hex("0e55f56356daaa904870003d58fcab3a9078ae4deab83cd0b115799d747d834a", s2c, 32);
    from_hex("00000029010201056e6f646531000000000000000199f9677fa92c0ccf03ea5d2a"
             "15e02b019cd68c76bc7e2627", want, sizeof(want));

    sc_wire_conn_init(&cl, "node1", 1);
    sc_wire_conn_init(&sv, "node2", 1);
    strcpy(cl.peer, "node2");
    strcpy(sv.peer, "node1");
    CHECK(sc_wire_conn_keys(&cl, secret, cr, sr, 1) == APR_SUCCESS);
    CHECK(sc_wire_conn_keys(&sv, secret, cr, sr, 0) == APR_SUCCESS);
    CHECK(!memcmp(cl.tx_key, c2s, 32) && !memcmp(cl.rx_key, s2c, 32));
    CHECK(!memcmp(sv.rx_key, c2s, 32) && !memcmp(sv.tx_key, s2c, 32));

    CHECK(sc_msg_u64_encode(pool, 12345, &frame, &flen) == APR_SUCCESS);
    memcpy(ping, frame, 8);
    CHECK(sc_wire_seal(&cl, SC_MSG_PING, ping, 8, pool, &frame, &flen) == APR_SUCCESS);
    CHECK(flen == sizeof(want) && !memcmp(frame, want, sizeof(want)));
    CHECK(body_of((const char *)want, sizeof(want), &body, &blen));
    CHECK(sc_wire_open(&sv, body, blen, pool, &type, &payload, &plen, &why)
          == APR_SUCCESS);
    CHECK(type == SC_MSG_PING && sc_msg_u64_decode(payload, plen, &v) == APR_SUCCESS
          && v == 12345);
}

static void test_handshake_plain(void)
{
    sc_wire_conn cl, sv;
    CHECK(handshake(&cl, &sv, NULL, NULL));
    CHECK(!strcmp(cl.peer, "node2") && !strcmp(sv.peer, "node1"));
    CHECK(pass(&cl, &sv, SC_MSG_PING, "12345678", 8));
    CHECK(pass(&sv, &cl, SC_MSG_PONG, "12345678", 8));
    CHECK(pass(&cl, &sv, SC_MSG_STATE_REQ, "", 0));
    CHECK(cl.tx_counter == 2 && sv.rx_counter == 2);
    CHECK(sv.tx_counter == 1 && cl.rx_counter == 1);
}

static void test_handshake_sealed(void)
{
    sc_wire_conn cl, sv;
    const char *secret_text = "attack at dawn, bring snacks";
    char *frame;
    apr_size_t flen;
    int i;

    CHECK(handshake(&cl, &sv, secret_a, secret_a));
    CHECK(!memcmp(cl.tx_key, sv.rx_key, SC_WIRE_KEY_BYTES));
    CHECK(!memcmp(cl.rx_key, sv.tx_key, SC_WIRE_KEY_BYTES));
    CHECK(memcmp(cl.tx_key, cl.rx_key, SC_WIRE_KEY_BYTES));
    for (i = 0; i < 50; i++) {
        CHECK(pass(&cl, &sv, SC_MSG_PING, secret_text, strlen(secret_text)));
        CHECK(pass(&sv, &cl, SC_MSG_PONG, secret_text, strlen(secret_text)));
    }
    CHECK(pass(&cl, &sv, SC_MSG_STATE_REQ, "", 0));
    /* the payload does not travel in the clear */
    CHECK(sc_wire_seal(&cl, SC_MSG_PING, secret_text, strlen(secret_text), pool,
                       &frame, &flen) == APR_SUCCESS);
    CHECK(flen == 4 + 4 + 5 + 8 + strlen(secret_text) + SC_WIRE_TAG_BYTES);
    CHECK(!contains(frame, flen, "attack"));
    CHECK((unsigned char)frame[6] == SC_WIRE_F_SEALED);
}

static void test_mixed_modes_refused(void)
{
    sc_wire_conn cl, sv;
    unsigned char r[SC_WIRE_RANDOM_BYTES];
    const unsigned char *body;
    const char *why = NULL;
    char *frame;
    apr_size_t flen, blen;

    /* a node with a secret meets one without: the HELLO says so */
    sc_wire_conn_init(&cl, "node1", 1);
    sc_wire_conn_init(&sv, "node2", 0);
    CHECK(sc_wire_hello(&cl, r, pool, &frame, &flen) == APR_SUCCESS);
    CHECK(body_of(frame, flen, &body, &blen));
    CHECK(sc_wire_hello_open(&sv, body, blen, NULL, r, &why) == APR_EINVAL && why);
    CHECK(sc_wire_hello(&sv, r, pool, &frame, &flen) == APR_SUCCESS);
    CHECK(body_of(frame, flen, &body, &blen));
    CHECK(sc_wire_hello_open(&cl, body, blen, NULL, r, &why) == APR_EINVAL && why);
    CHECK(!cl.peer[0] && !sv.peer[0]);
}

static void test_wrong_secret(void)
{
    sc_wire_conn cl, sv;
    const unsigned char *body;
    char *frame;
    apr_size_t flen, blen;

    CHECK(handshake(&cl, &sv, secret_a, secret_b));
    CHECK(sc_wire_seal(&cl, SC_MSG_PING, "12345678", 8, pool, &frame, &flen)
          == APR_SUCCESS);
    CHECK(body_of(frame, flen, &body, &blen));
    CHECK(rejected(&sv, body, blen, APR_EGENERAL, "authentication failed"));
    CHECK(sv.rx_counter == 0);
}

static void test_keys_fresh_per_connection(void)
{
    sc_wire_conn c1, s1, c2, s2;
    const unsigned char *body;
    char *frame;
    apr_size_t flen, blen;

    CHECK(handshake(&c1, &s1, secret_a, secret_a));
    CHECK(handshake(&c2, &s2, secret_a, secret_a));
    CHECK(memcmp(c1.tx_key, c2.tx_key, SC_WIRE_KEY_BYTES));
    CHECK(memcmp(c1.rx_key, c2.rx_key, SC_WIRE_KEY_BYTES));
    /* so counter 1 of one connection is no use on another */
    CHECK(sc_wire_seal(&c1, SC_MSG_PING, "12345678", 8, pool, &frame, &flen)
          == APR_SUCCESS);
    CHECK(body_of(frame, flen, &body, &blen));
    CHECK(rejected(&s2, body, blen, APR_EGENERAL, "authentication failed"));
    CHECK(rejected(&c1, body, blen, APR_EINVAL, "route mismatch"));
}

static void test_keys_need_hello_and_secret(void)
{
    sc_wire_conn c;
    unsigned char r[SC_WIRE_RANDOM_BYTES] = { 1 };
    char *frame;
    apr_size_t flen;

    sc_wire_conn_init(&c, "node1", 1);
    CHECK(sc_wire_conn_keys(&c, secret_a, r, r, 1) == APR_EINVAL);   /* no peer */
    strcpy(c.peer, "node2");
    CHECK(sc_wire_conn_keys(&c, NULL, r, r, 1) == APR_EINVAL);       /* no secret */
    /* keys never derived: nothing is sealed under an all-zero key */
    CHECK(sc_wire_seal(&c, SC_MSG_PING, "12345678", 8, pool, &frame, &flen)
          == APR_EINVAL);
    CHECK(c.tx_counter == 0);
    /* a plaintext connection ignores the secret */
    sc_wire_conn_init(&c, "node1", 0);
    strcpy(c.peer, "node2");
    CHECK(sc_wire_conn_keys(&c, NULL, NULL, NULL, 1) == APR_SUCCESS);
    CHECK(sc_wire_seal(&c, SC_MSG_PING, "12345678", 8, pool, &frame, &flen)
          == APR_SUCCESS);
}

/* A HELLO body that must be refused, with this reason (NULL: any). */
static int hello_bad(const unsigned char *b, apr_size_t n, const char *expect,
                     const char *reason)
{
    unsigned char r[SC_WIRE_RANDOM_BYTES];
    const char *why = NULL;
    sc_wire_conn c;

    sc_wire_conn_init(&c, "node1", 0);
    if (sc_wire_hello_open(&c, b, n, expect, r, &why) != APR_EINVAL || !why
        || c.peer[0])
        return 0;
    if (reason && strcmp(why, reason)) {
        fprintf(stderr, "  expected \"%s\", got \"%s\"\n", reason, why);
        return 0;
    }
    return 1;
}

/* random bytes, sealed flag, incarnation */
#define HELLO_LEN (SC_WIRE_RANDOM_BYTES + 1 + 8)

static void test_hello_rejects(void)
{
    unsigned char b[128], pay[HELLO_LEN + 1], r[SC_WIRE_RANDOM_BYTES];
    sc_wire_conn c;
    const char *why;
    apr_size_t n, i;

    memset(pay, 0xab, sizeof(pay));
    pay[SC_WIRE_RANDOM_BYTES] = 0;
    sc_wire_conn_init(&c, "node1", 0);
    n = raw_body(b, 1, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN);
    why = NULL;
    CHECK(sc_wire_hello_open(&c, b, n, "node2", r, &why) == APR_SUCCESS);
    CHECK(!strcmp(c.peer, "node2") && r[0] == 0xab);
    CHECK(c.peer_incarnation == 0xababababababababULL);


    CHECK(hello_bad(b, n, "node3", "route mismatch"));
    n = raw_body(b, 2, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, "bad version"));
    n = raw_body(b, 1, SC_MSG_PING, 0, "node2", 0, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, "expected HELLO"));
    n = raw_body(b, 1, SC_MSG_HELLO, 1, "node2", 0, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, "sealed HELLO"));
    n = raw_body(b, 1, SC_MSG_HELLO, 0, "node2", 1, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, "HELLO counter not 0"));
    n = raw_body(b, 1, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN + 1);
    CHECK(hello_bad(b, n, NULL, "trailing bytes"));
    n = raw_body(b, 1, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN - 1);
    CHECK(hello_bad(b, n, NULL, "truncated"));
    pay[SC_WIRE_RANDOM_BYTES] = 1;          /* the peer is sealed, we are not */
    n = raw_body(b, 1, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, NULL));
    pay[SC_WIRE_RANDOM_BYTES] = 2;
    n = raw_body(b, 1, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, "bad sealed flag"));
    pay[SC_WIRE_RANDOM_BYTES] = 0;
    n = raw_body(b, 1, SC_MSG_HELLO, 0, "no.de", 0, pay, HELLO_LEN);
    CHECK(hello_bad(b, n, NULL, "bad route"));
    n = raw_body(b, 1, SC_MSG_HELLO, 0, "node2", 0, pay, HELLO_LEN);
    for (i = 0; i < n; i++)                 /* truncated at every length */
        CHECK(hello_bad(b, i, NULL, NULL));
}

/* ---- every message type, sealed and not --------------------------------------- */

static void roundtrip_all(const unsigned char *secret)
{
    sc_wire_conn cl, sv;
    sc_msg_session s = { "AAAAbbbbCCCCddddEEEEffff", "node1", "", 7, 123456789,
                         "a=1&b=%20x", 10 }, s2;
    sc_msg_delta d = { "AAAAbbbbCCCCddddEEEEffff", "node1", 7, 8, -5, "b=&c=3", 6 }, d2;
    sc_msg_invalidate inv = { "AAAAbbbbCCCCddddEEEEffff", 9, 1000 }, inv2;
    sc_msg_ack ack = { 42, SC_ACK_NEED_WHOLE }, ack2;
    char *buf, *chunk;
    apr_size_t len, clen;
    apr_uint64_t v;

    CHECK(handshake(&cl, &sv, secret, secret));
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

    CHECK(sc_msg_ack_encode(pool, &ack, &buf, &len) == APR_SUCCESS);
    CHECK(pass(&sv, &cl, SC_MSG_ACK, buf, len));
    CHECK(pass(&sv, &cl, SC_MSG_APPLIED, buf, len));
    CHECK(sc_msg_ack_decode(buf, len, &ack2) == APR_SUCCESS);
    CHECK(ack2.counter == 42 && ack2.status == SC_ACK_NEED_WHOLE);

    CHECK(pass(&cl, &sv, SC_MSG_STATE_REQ, "", 0));
    CHECK(sc_msg_u64_encode(pool, 1, &buf, &len) == APR_SUCCESS);
    CHECK(pass(&sv, &cl, SC_MSG_STATE_DONE, buf, len));
    CHECK(cl.tx_counter == sv.rx_counter && sv.tx_counter == cl.rx_counter);
}

static void test_roundtrip_plain(void) { roundtrip_all(NULL); }
static void test_roundtrip_sealed(void) { roundtrip_all(secret_a); }

static void test_largest_session_fits(void)
{
    sc_wire_conn cl, sv;
    sc_msg_session s = { "AAAAbbbbCCCCddddEEEEffffGGGGhhhhIIIIjjjjKKKKlll",
                         "abcdefghijklmnopqrstuvwxyz01234", "", 1, 1, NULL, SC_SESSION_MAX };
    char *data = apr_palloc(pool, SC_SESSION_MAX), *buf, *frame;
    apr_size_t len, flen;

    memset(data, 'x', SC_SESSION_MAX);
    s.data = data;
    CHECK(handshake(&cl, &sv, secret_a, secret_a));
    CHECK(sc_msg_session_encode(pool, &s, &buf, &len) == APR_SUCCESS);
    CHECK(pass(&cl, &sv, SC_MSG_SESSION, buf, len));
    /* the largest body passes; one byte more is never built */
    len = SC_WIRE_MAX_BODY - (4 + 5 + 8) - SC_WIRE_TAG_BYTES;
    buf = apr_pcalloc(pool, len + 1);
    CHECK(pass(&cl, &sv, SC_MSG_STATE_CHUNK, buf, len));
    CHECK(sc_wire_seal(&cl, SC_MSG_STATE_CHUNK, buf, len + 1, pool, &frame, &flen)
          == APR_EINVAL);
    CHECK(cl.tx_counter == sv.rx_counter);
    CHECK(pass(&cl, &sv, SC_MSG_PING, "12345678", 8));
}

/* ---- attacks on frames ------------------------------------------------------------ */

static void test_tamper_every_byte(void)
{
    static const unsigned char flips[] = { 0x01, 0x80, 0xff };
    sc_wire_conn cl, sv;
    const unsigned char *body;
    unsigned char *copy;
    char *frame;
    apr_size_t flen, blen, i, f, bad = 0;

    CHECK(handshake(&cl, &sv, secret_a, secret_a));
    CHECK(sc_wire_seal(&cl, SC_MSG_DELTA, "payload-bytes", 13, pool, &frame, &flen)
          == APR_SUCCESS);
    CHECK(body_of(frame, flen, &body, &blen));
    copy = apr_palloc(pool, flen);
    for (i = 0; i < flen; i++) {
        for (f = 0; f < sizeof(flips); f++) {
            apr_size_t n;
            const char *why = NULL;
            memcpy(copy, frame, flen);
            copy[i] ^= flips[f];
            if (i < 4) {
                /* the length prefix: refused, or a different length */
                if (sc_wire_body_len(copy, &n, &why) == APR_SUCCESS && n == blen)
                    bad++;
                /* the body read under a shorter length is rejected too */
                if (sc_wire_body_len(copy, &n, &why) == APR_SUCCESS && n < blen
                    && !rejected(&sv, copy + 4, n, APR_SUCCESS, NULL))
                    bad++;
            }
            else if (!rejected(&sv, copy + 4, blen, APR_SUCCESS, NULL)) {
                bad++;
            }
        }
    }
    CHECK(bad == 0);
    /* the untouched frame still opens: nothing moved the counter */
    CHECK(sv.rx_counter == 0);
    memcpy(copy, frame, flen);
    {
        const char *payload, *why;
        apr_size_t plen;
        int type;
        CHECK(sc_wire_open(&sv, copy + 4, blen, pool, &type, &payload, &plen, &why)
              == APR_SUCCESS);
        CHECK(type == SC_MSG_DELTA && plen == 13 && !memcmp(payload, "payload-bytes", 13));
    }
}

static void test_plain_header_tamper(void)
{
    /* without a secret only the header is checked, but all of it is */
    sc_wire_conn cl, sv;
    const unsigned char *body;
    unsigned char *copy;
    char *frame;
    apr_size_t flen, blen, i, bad = 0;

    CHECK(handshake(&cl, &sv, NULL, NULL));
    CHECK(sc_wire_seal(&cl, SC_MSG_PING, "12345678", 8, pool, &frame, &flen)
          == APR_SUCCESS);
    CHECK(body_of(frame, flen, &body, &blen));
    copy = apr_palloc(pool, blen);
    for (i = 0; i < blen - 8; i++) {       /* version .. counter */
        memcpy(copy, body, blen);
        copy[i] ^= 0x01;
        if (i == 1) {
            /* PING (2) -> PONG (3) is a valid type: the header has no tag */
            continue;
        }
        if (!rejected(&sv, copy, blen, APR_EINVAL, NULL))
            bad++;
    }
    CHECK(bad == 0);
}

static void test_replay_reorder_skip(void)
{
    const unsigned char *secrets[2] = { NULL, secret_a };
    int k;

    for (k = 0; k < 2; k++) {
        sc_wire_conn cl, sv;
        char *f1, *f2, *f3;
        apr_size_t l1, l2, l3;
        const char *payload, *why;
        apr_size_t plen;
        int type;

        CHECK(handshake(&cl, &sv, secrets[k], secrets[k]));
        CHECK(sc_wire_seal(&cl, SC_MSG_PING, "11111111", 8, pool, &f1, &l1) == APR_SUCCESS);
        CHECK(sc_wire_seal(&cl, SC_MSG_PING, "22222222", 8, pool, &f2, &l2) == APR_SUCCESS);
        CHECK(sc_wire_seal(&cl, SC_MSG_PING, "33333333", 8, pool, &f3, &l3) == APR_SUCCESS);
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
    }
}

static void test_counter_never_wraps(void)
{
    sc_wire_conn cl, sv;
    unsigned char b[64];
    char *frame;
    apr_size_t flen, n;

    CHECK(handshake(&cl, &sv, secret_a, secret_a));
    cl.tx_counter = APR_UINT64_MAX;
    CHECK(sc_wire_seal(&cl, SC_MSG_PING, "12345678", 8, pool, &frame, &flen)
          == APR_EINVAL);
    CHECK(cl.tx_counter == APR_UINT64_MAX);
    CHECK(handshake(&cl, &sv, NULL, NULL));
    sv.rx_counter = APR_UINT64_MAX;
    n = raw_body(b, 1, SC_MSG_PING, 0, "node1", 0, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "replayed or reordered counter"));
}

static void test_wrong_sender(void)
{
    sc_wire_conn cl, sv, impostor;
    unsigned char b[64];
    char *frame;
    apr_size_t flen, n;

    /* plaintext: a frame naming another route */
    CHECK(handshake(&cl, &sv, NULL, NULL));
    n = raw_body(b, 1, SC_MSG_PING, 0, "node3", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "route mismatch"));
    n = raw_body(b, 1, SC_MSG_PING, 0, "node", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "route mismatch"));
    n = raw_body(b, 1, SC_MSG_PING, 0, "node11", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "route mismatch"));
    n = raw_body(b, 1, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    CHECK(!rejected(&sv, b, n, APR_SUCCESS, NULL) && sv.rx_counter == 1);

    /* sealed: the same keys, but the frame says it is from node3 */
    CHECK(handshake(&cl, &sv, secret_a, secret_a));
    impostor = cl;
    strcpy(impostor.self, "node3");
    CHECK(sc_wire_seal(&impostor, SC_MSG_PING, "12345678", 8, pool, &frame, &flen)
          == APR_SUCCESS);
    CHECK(rejected(&sv, (unsigned char *)frame + 4, flen - 4, APR_EINVAL,
                   "route mismatch"));
    /* no HELLO yet: nobody is the peer */
    sc_wire_conn_init(&sv, "node2", 0);
    n = raw_body(b, 1, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
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

    CHECK(handshake(&cl, &sv, NULL, NULL));
    n = raw_body(b, 9, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "bad version"));
    n = raw_body(b, 0, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "bad version"));
    n = raw_body(b, 1, 0, 0, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "unknown type"));
    n = raw_body(b, 1, SC_MSG_MAX_, 0, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "unknown type"));
    n = raw_body(b, 1, 99, 0, "node1", 1, "", 0);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "unknown type"));
    n = raw_body(b, 1, SC_MSG_HELLO, 0, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "unexpected HELLO"));
    n = raw_body(b, 1, SC_MSG_PING, 0x02, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "unknown flags"));
    n = raw_body(b, 1, SC_MSG_PING, 0, "nod/1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "bad route"));
    n = raw_body(b, 1, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    b[3] = 6;                                                   /* "node1\0" */
    b[4 + 5] = 0;
    CHECK(rejected(&sv, b, n, APR_EINVAL, "bad route"));
    n = raw_body(b, 1, SC_MSG_PING, 0, "abcdefghijklmnopqrstuvwxyz012345", 1, "", 0);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "bad route"));      /* 32 chars */
    n = raw_body(b, 1, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    b[3] = 0;                                                   /* no route */
    CHECK(rejected(&sv, b, n, APR_EINVAL, "bad route"));
    n = raw_body(b, 1, SC_MSG_PING, 0, "node1", 1, "", 0);
    b[3] = 30;                                                  /* past the end */
    CHECK(rejected(&sv, b, n, APR_EINVAL, "truncated"));
    /* a sealed frame on a plaintext connection */
    n = raw_body(b, 1, SC_MSG_PING, SC_WIRE_F_SEALED, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, NULL));
    /* truncated at every length, and NULL */
    n = raw_body(b, 1, SC_MSG_PING, 0, "node1", 1, "", 0);
    for (i = 0; i < n; i++)
        CHECK(rejected(&sv, b, i, APR_EINVAL, NULL));
    CHECK(rejected(&sv, NULL, 0, APR_EINVAL, NULL));
    /* more than the cap, even if the caller skipped sc_wire_body_len */
    CHECK(rejected(&sv, b, (apr_size_t)SC_WIRE_MAX_BODY + 1, APR_EINVAL,
                   "frame too large"));
    /* and the good one still goes through */
    n = raw_body(b, 1, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    CHECK(!rejected(&sv, b, n, APR_SUCCESS, NULL) && sv.rx_counter == 1);
}

static void test_sealed_rejects_plaintext_and_short(void)
{
    sc_wire_conn cl, sv;
    unsigned char b[128];
    char *frame;
    apr_size_t n, flen, i;

    CHECK(handshake(&cl, &sv, secret_a, secret_a));
    /* the peer sends plaintext although a secret was negotiated */
    n = raw_body(b, 1, SC_MSG_PING, 0, "node1", 1, "12345678", 8);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "not sealed"));
    n = raw_body(b, 1, SC_MSG_PING, 0, "node1", 1, "", 0);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "not sealed"));
    /* sealed flag, but shorter than a tag */
    n = raw_body(b, 1, SC_MSG_PING, SC_WIRE_F_SEALED, "node1", 1, "0123456789abcde", 15);
    CHECK(rejected(&sv, b, n, APR_EINVAL, "truncated"));
    /* a real sealed frame cut at every length */
    CHECK(sc_wire_seal(&cl, SC_MSG_PING, "12345678", 8, pool, &frame, &flen)
          == APR_SUCCESS);
    for (i = 0; i < flen - 4; i++)
        CHECK(rejected(&sv, (unsigned char *)frame + 4, i, APR_SUCCESS, NULL));
    /* or with a byte more */
    {
        unsigned char *longer = apr_palloc(pool, flen - 3);
        memcpy(longer, frame + 4, flen - 4);
        longer[flen - 4] = 0;
        CHECK(rejected(&sv, longer, flen - 3, APR_EGENERAL, "authentication failed"));
    }
    CHECK(!rejected(&sv, (unsigned char *)frame + 4, flen - 4, APR_SUCCESS, NULL));
}

static void test_seal_rejects(void)
{
    sc_wire_conn c;
    char *frame;
    apr_size_t flen;

    sc_wire_conn_init(&c, "node1", 0);
    strcpy(c.peer, "node2");
    CHECK(sc_wire_seal(&c, SC_MSG_HELLO, "", 0, pool, &frame, &flen) == APR_EINVAL);
    CHECK(sc_wire_seal(&c, 0, "", 0, pool, &frame, &flen) == APR_EINVAL);
    CHECK(sc_wire_seal(&c, SC_MSG_MAX_, "", 0, pool, &frame, &flen) == APR_EINVAL);
    CHECK(sc_wire_seal(&c, SC_MSG_PING, NULL, 8, pool, &frame, &flen) == APR_EINVAL);
    CHECK(sc_wire_seal(&c, SC_MSG_PING, "", (apr_size_t)-1, pool, &frame, &flen)
          == APR_EINVAL);
    CHECK(c.tx_counter == 0);
    /* an invalid own route never reaches a frame */
    sc_wire_conn_init(&c, "bad route", 0);
    CHECK(!c.self[0]);
    CHECK(sc_wire_seal(&c, SC_MSG_PING, "", 0, pool, &frame, &flen) == APR_EINVAL);
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

static void test_heartbeat_roundtrip(void)
{
    sc_heartbeat_sender plain, sealed, again;
    sc_heartbeat got;
    const char *why = NULL;
    char *out;
    apr_size_t len;

    CHECK(sc_heartbeat_sender_init(&plain, NULL) == APR_SUCCESS);
    CHECK(sc_heartbeat_seal(&plain, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    CHECK(len <= SC_HB_MAX && contains(out, len, "10.77.0.11:9101"));
    CHECK(sc_heartbeat_open(NULL, out, len, pool, &got, &why) == APR_SUCCESS);
    check_hb_equal(&hb_node1, &got);
    /* sealed: the address travels encrypted, the route in the clear */
    CHECK(sc_heartbeat_sender_init(&sealed, secret_a) == APR_SUCCESS);
    CHECK(sc_heartbeat_seal(&sealed, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    CHECK(len <= SC_HB_MAX && !contains(out, len, "10.77.0.11")
          && contains(out, len, "node1"));
    CHECK(sc_heartbeat_open(secret_a, out, len, pool, &got, &why) == APR_SUCCESS);
    check_hb_equal(&hb_node1, &got);
    /* another secret, or the wrong mode at either end */
    CHECK(sc_heartbeat_open(secret_b, out, len, pool, &got, &why) == APR_EGENERAL
          && strstr(why, "authentication failed"));
    CHECK(sc_heartbeat_open(NULL, out, len, pool, &got, &why) == APR_EINVAL
          && strstr(why, "no ClusterSecretFile"));
    CHECK(sc_heartbeat_seal(&plain, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    CHECK(sc_heartbeat_open(secret_a, out, len, pool, &got, &why) == APR_EINVAL
          && strstr(why, "unsealed"));
    /* a new sender start draws new random bytes: a new key, never the same
     * nonce under one key even if the stamp repeats */
    CHECK(sc_heartbeat_sender_init(&again, secret_a) == APR_SUCCESS);
    CHECK(memcmp(again.random, sealed.random, SC_WIRE_RANDOM_BYTES)
          && memcmp(again.key, sealed.key, SC_WIRE_KEY_BYTES));
}

static void test_heartbeat_tamper_and_truncate(void)
{
    sc_heartbeat_sender sealed, plain;
    sc_heartbeat got;
    const char *why = NULL;
    char *out, *copy;
    apr_size_t len, i;

    CHECK(sc_heartbeat_sender_init(&sealed, secret_a) == APR_SUCCESS);
    CHECK(sc_heartbeat_seal(&sealed, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    copy = apr_pmemdup(pool, out, len);
    for (i = 0; i < len; i++) {             /* every byte, header included */
        copy[i] ^= 0x20;
        CHECK(sc_heartbeat_open(secret_a, copy, len, pool, &got, &why) != APR_SUCCESS);
        copy[i] ^= 0x20;
    }
    for (i = 0; i < len; i++)
        CHECK(sc_heartbeat_open(secret_a, out, i, pool, &got, &why) != APR_SUCCESS);
    CHECK(sc_heartbeat_open(secret_a, copy, len, pool, &got, &why) == APR_SUCCESS);
    CHECK(sc_heartbeat_sender_init(&plain, NULL) == APR_SUCCESS);
    CHECK(sc_heartbeat_seal(&plain, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    for (i = 0; i < len; i++)
        CHECK(sc_heartbeat_open(NULL, out, i, pool, &got, &why) == APR_EINVAL);
    copy = apr_palloc(pool, len + 1);       /* a trailing byte */
    memcpy(copy, out, len);
    copy[len] = 0;
    CHECK(sc_heartbeat_open(NULL, copy, len + 1, pool, &got, &why) == APR_EINVAL);
    CHECK(sc_heartbeat_open(NULL, NULL, 0, pool, &got, &why) == APR_EINVAL);
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
    bad = hb_node1;
    bad.listen = "10.0.0.1:80 ; rm";
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    bad.listen = "";
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    bad = hb_node1;
    bad.listen = "a1234567890123456789012345678901234567890123456789012345678901:1";
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    bad = hb_node1;
    bad.ready = 2;
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    bad = hb_node1;
    bad.manager = 256;
    CHECK(sc_heartbeat_seal(&plain, &bad, pool, &out, &len) == APR_EINVAL);
    /* an oversized datagram is refused before anything is read */
    memset(big, 'A', sizeof(big));
    memcpy(big, "SCHB", 4);
    CHECK(sc_heartbeat_open(NULL, big, sizeof(big), pool, &got, &why) == APR_EINVAL);
    /* a well-formed one with ready = 2 on the wire */
    CHECK(sc_heartbeat_seal(&plain, &hb_node1, pool, &out, &len) == APR_SUCCESS);
    out[len - 1] = 2;
    CHECK(sc_heartbeat_open(NULL, out, len, pool, &got, &why) == APR_EINVAL);
    out[len - 1] = 1;
    out[4] = 2;                             /* another version */
    CHECK(sc_heartbeat_open(NULL, out, len, pool, &got, &why) == APR_EINVAL);
}

int main(void)
{
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    RUN(test_secret_load);
    RUN(test_known_answer);
    RUN(test_handshake_plain);
    RUN(test_handshake_sealed);
    RUN(test_mixed_modes_refused);
    RUN(test_wrong_secret);
    RUN(test_keys_fresh_per_connection);
    RUN(test_keys_need_hello_and_secret);
    RUN(test_hello_rejects);
    RUN(test_roundtrip_plain);
    RUN(test_roundtrip_sealed);
    RUN(test_largest_session_fits);
    RUN(test_tamper_every_byte);
    RUN(test_plain_header_tamper);
    RUN(test_replay_reorder_skip);
    RUN(test_counter_never_wraps);
    RUN(test_wrong_sender);
    RUN(test_body_len);
    RUN(test_malformed_bodies);
    RUN(test_sealed_rejects_plaintext_and_short);
    RUN(test_seal_rejects);
    RUN(test_codecs_strict);
    RUN(test_codecs_decode_copies);
    RUN(test_codecs_caps);
    RUN(test_state_chunk_records);
    RUN(test_location_and_fetch_codecs);
    RUN(test_heartbeat_roundtrip);
    RUN(test_heartbeat_tamper_and_truncate);
    RUN(test_heartbeat_rejects);
    apr_pool_destroy(pool);
    return sc_test_report("test_wire");
}
