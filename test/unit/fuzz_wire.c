/* fuzz_wire.c - libFuzzer target for sc_wire's decoders.
 *
 * Each input goes, as it is, to sc_wire_body_len (its first 4 bytes),
 * sc_wire_hello_open, sc_wire_open on a plaintext and on a sealed connection,
 * and every sc_msg_*_decode; and, behind a valid plaintext header, to the
 * accepting path of sc_wire_open. Whatever a decoder accepts must re-encode to the
 * very same bytes (the format has one encoding per message), and the input,
 * sealed as a payload by one end, must open unchanged at the other. Any
 * violation aborts, so libFuzzer keeps the input. */
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>

#include "sc_wire.h"

static apr_pool_t *root;
static sc_wire_conn plain_rx, sealed_tx_proto, sealed_rx_proto;

static void must(int cond)
{
    if (!cond)
        abort();
}

/* Two ends of a sealed connection with fixed keys, and a plaintext one. */
static void setup(void)
{
    static const unsigned char secret[SC_WIRE_KEY_BYTES] = "fuzz-secret-fuzz-secret-fuzz-se";
    static const unsigned char cr[SC_WIRE_RANDOM_BYTES] = "client-random-1";
    static const unsigned char sr[SC_WIRE_RANDOM_BYTES] = "server-random-2";

    must(apr_initialize() == APR_SUCCESS);
    must(apr_pool_create(&root, NULL) == APR_SUCCESS);
    sc_wire_conn_init(&plain_rx, "node2", 0);
    strcpy(plain_rx.peer, "node1");
    sc_wire_conn_init(&sealed_tx_proto, "node1", 1);
    strcpy(sealed_tx_proto.peer, "node2");
    must(sc_wire_conn_keys(&sealed_tx_proto, secret, cr, sr, 1) == APR_SUCCESS);
    sc_wire_conn_init(&sealed_rx_proto, "node2", 1);
    strcpy(sealed_rx_proto.peer, "node1");
    must(sc_wire_conn_keys(&sealed_rx_proto, secret, cr, sr, 0) == APR_SUCCESS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setup();
    return 0;
}

static void same_bytes(apr_status_t rv, const char *enc, apr_size_t elen,
                       const unsigned char *data, size_t size)
{
    must(rv == APR_SUCCESS && elen == size && !memcmp(enc, data, size));
}

/* A heartbeat that opens holds only what a sender could have sealed; a plain
 * one seals again to the same bytes (its random bytes copied over). */
static void heartbeats(apr_pool_t *p, const unsigned char *data, size_t size)
{
    static const unsigned char secret[SC_WIRE_KEY_BYTES] = "fuzz-secret-fuzz-secret-fuzz-se";
    sc_heartbeat_sender snd;
    sc_heartbeat hb;
    const char *why;
    char *enc;
    apr_size_t elen;

    if (sc_heartbeat_open(secret, (const char *)data, size, p, &hb, &why) == APR_SUCCESS)
        must(size <= SC_HB_MAX && strlen(hb.route) < SC_ROUTE_MAX
             && strlen(hb.listen) < SC_HB_LISTEN_MAX && hb.ready <= 1);
    if (sc_heartbeat_open(NULL, (const char *)data, size, p, &hb, &why) == APR_SUCCESS) {
        memset(&snd, 0, sizeof(snd));
        memcpy(snd.random, data + 6, SC_WIRE_RANDOM_BYTES);
        same_bytes(sc_heartbeat_seal(&snd, &hb, p, &enc, &elen), enc, elen, data, size);
    }
}

static void decoders(apr_pool_t *p, const unsigned char *data, size_t size)
{
    const char *buf = (const char *)data;
    sc_msg_session s;
    sc_msg_delta d;
    sc_msg_invalidate inv;
    sc_msg_ack a;
    sc_msg_location loc;
    const char *id;
    apr_uint64_t v;
    apr_array_header_t *records;
    char *enc;
    apr_size_t elen;

    if (sc_msg_session_decode(p, buf, size, &s) == APR_SUCCESS) {
        must(strlen(s.data) == s.len && s.len <= SC_SESSION_MAX);
        must(strlen(s.id) < SC_ID_MAX && strlen(s.owner) < SC_ROUTE_MAX
             && strlen(s.backup) < SC_ROUTE_MAX);
        same_bytes(sc_msg_session_encode(p, &s, &enc, &elen), enc, elen, data, size);
    }
    if (sc_msg_location_decode(p, buf, size, &loc) == APR_SUCCESS)
        same_bytes(sc_msg_location_encode(p, &loc, &enc, &elen), enc, elen,
                   data, size);
    if (sc_msg_id_decode(p, buf, size, &id) == APR_SUCCESS)
        same_bytes(sc_msg_id_encode(p, id, &enc, &elen), enc, elen, data, size);
    if (sc_msg_delta_decode(p, buf, size, &d) == APR_SUCCESS) {
        must(strlen(d.patch) == d.len && d.len <= SC_SESSION_MAX);
        same_bytes(sc_msg_delta_encode(p, &d, &enc, &elen), enc, elen, data, size);
    }
    if (sc_msg_invalidate_decode(p, buf, size, &inv) == APR_SUCCESS)
        same_bytes(sc_msg_invalidate_encode(p, &inv, &enc, &elen), enc, elen,
                   data, size);
    if (sc_msg_ack_decode(buf, size, &a) == APR_SUCCESS)
        same_bytes(sc_msg_ack_encode(p, &a, &enc, &elen), enc, elen, data, size);
    if (sc_msg_u64_decode(buf, size, &v) == APR_SUCCESS)
        same_bytes(sc_msg_u64_encode(p, v, &enc, &elen), enc, elen, data, size);
    if (sc_msg_chunk_decode(p, buf, size, &records) == APR_SUCCESS) {
        int i;
        for (i = 0; i < records->nelts; i++) {
            const sc_msg_record *r = &APR_ARRAY_IDX(records, i, sc_msg_record);
            must(r->data >= buf && r->data + r->len <= buf + size);
            sc_msg_session_decode(p, r->data, r->len, &s);
        }
    }
}

static void frames(apr_pool_t *p, const unsigned char *data, size_t size)
{
    unsigned char random[SC_WIRE_RANDOM_BYTES];
    sc_wire_conn c;
    const char *payload, *why = NULL;
    apr_size_t len, plen;
    int type;

    if (size >= 4 && sc_wire_body_len(data, &len, &why) != APR_SUCCESS)
        must(why != NULL);

    c = plain_rx;
    c.peer[0] = '\0';
    if (sc_wire_hello_open(&c, data, size, NULL, random, &why) == APR_SUCCESS)
        must(c.peer[0] && size == 4 + strlen(c.peer) + 8 + SC_WIRE_RANDOM_BYTES + 1 + 8);

    /* plaintext: counter 1 from node1 opens; the payload is copied out */
    c = plain_rx;
    why = NULL;
    if (sc_wire_open(&c, data, size, p, &type, &payload, &plen, &why) == APR_SUCCESS) {
        must(c.rx_counter == 1 && type > SC_MSG_HELLO && type < SC_MSG_MAX_);
        must(plen <= size && payload[plen] == '\0'
             && !memcmp(payload, data + size - plen, plen));
    }
    else {
        must(why != NULL && c.rx_counter == 0);
    }

    /* sealed: a forgery never opens */
    c = sealed_rx_proto;
    why = NULL;
    must(sc_wire_open(&c, data, size, p, &type, &payload, &plen, &why) != APR_SUCCESS
         && why != NULL && c.rx_counter == 0);
}

/* The input behind a well-formed plaintext header (its first byte as the
 * type), so the accepting path of sc_wire_open is reached on every run, not
 * only once the fuzzer has guessed a route and a counter. */
static void wrapped_plain(apr_pool_t *p, const unsigned char *data, size_t size)
{
    static const unsigned char head[] = { SC_WIRE_VERSION, 0, 0, 5,
                                          'n', 'o', 'd', 'e', '1',
                                          0, 0, 0, 0, 0, 0, 0, 1 };
    sc_wire_conn c = plain_rx;
    unsigned char *body;
    const char *payload, *why = NULL;
    apr_size_t plen, n = size ? size - 1 : 0;
    int type, want = size ? data[0] : 0;
    apr_status_t rv;

    body = apr_palloc(p, sizeof(head) + n);
    memcpy(body, head, sizeof(head));
    body[1] = (unsigned char)want;
    if (n)
        memcpy(body + sizeof(head), data + 1, n);
    rv = sc_wire_open(&c, body, sizeof(head) + n, p, &type, &payload, &plen, &why);
    if (want > SC_MSG_HELLO && want < SC_MSG_MAX_) {
        must(rv == APR_SUCCESS && type == want && plen == n && c.rx_counter == 1
             && !memcmp(payload, data + 1, n) && payload[n] == '\0');
    }
    else {
        must(rv == APR_EINVAL && why && c.rx_counter == 0);
    }
}

/* The input as a payload: sealed by one end, opened by the other. */
static void seal_roundtrip(apr_pool_t *p, const unsigned char *data, size_t size)
{
    sc_wire_conn tx = sealed_tx_proto, rx = sealed_rx_proto;
    const char *payload, *why = NULL;
    apr_size_t flen, blen, plen;
    char *frame;
    int type = size ? SC_MSG_HELLO + 1 + data[0] % (SC_MSG_MAX_ - SC_MSG_HELLO - 1)
                    : SC_MSG_PING;
    int got;

    must(sc_wire_seal(&tx, type, data, size, p, &frame, &flen) == APR_SUCCESS);
    must(sc_wire_body_len((unsigned char *)frame, &blen, &why) == APR_SUCCESS
         && blen == flen - 4);
    must(sc_wire_open(&rx, (unsigned char *)frame + 4, blen, p, &got, &payload,
                      &plen, &why) == APR_SUCCESS);
    must(got == type && plen == size && !memcmp(payload, data, size));
    /* and never twice */
    must(sc_wire_open(&rx, (unsigned char *)frame + 4, blen, p, &got, &payload,
                      &plen, &why) == APR_EINVAL);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    apr_pool_t *p;

    if (size > SC_WIRE_MAX_BODY)
        return 0;
    must(apr_pool_create(&p, root) == APR_SUCCESS);
    frames(p, data, size);
    wrapped_plain(p, data, size);
    decoders(p, data, size);
    heartbeats(p, data, size);
    if (size <= SC_WIRE_MAX_BODY - 64)
        seal_roundtrip(p, data, size);
    apr_pool_destroy(p);
    return 0;
}
