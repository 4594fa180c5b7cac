/* fuzz_wire.c - libFuzzer target for sc_wire's decoders.
 *
 * Each input goes, as it is, to sc_wire_body_len (its first 4 bytes),
 * sc_wire_hello_open, sc_wire_open, every sc_msg_*_decode and
 * sc_heartbeat_open with 0, 1 and 2 keys; and, behind a valid header, to the
 * accepting path of sc_wire_open. Whatever a decoder accepts must re-encode
 * to the very same bytes (the format has one encoding per message: HELLOs,
 * payloads, unsealed heartbeats), the input as a payload must travel through
 * sc_wire_frame and sc_wire_open unchanged, and a sealed heartbeat changed
 * by the input (XORed, cut or extended) must never open unless the input
 * left it as it was. Any violation aborts, so libFuzzer keeps the input. */
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>

#include "sc_wire.h"

static apr_pool_t *root;
static sc_wire_conn rx_proto;           /* node2, after node1's HELLO */
/* heartbeat keys: A alone, (B, A) as during a rotation, B alone */
static unsigned char keys_a[1][SC_WIRE_KEY_BYTES], keys_ba[2][SC_WIRE_KEY_BYTES];
static char *sealed_hb;                 /* hb_node1 sealed under A */
static apr_size_t sealed_len;

static const sc_heartbeat hb_node1 = { "node1", "10.77.0.11:9101", 1234, 5678, 1, 1 };

static void must(int cond)
{
    if (!cond)
        abort();
}

static void setup(void)
{
    sc_heartbeat_sender snd;

    must(apr_initialize() == APR_SUCCESS);
    must(apr_pool_create(&root, NULL) == APR_SUCCESS);
    sc_wire_conn_init(&rx_proto, "node2");
    strcpy(rx_proto.peer, "node1");
    memcpy(keys_a[0], "fuzz-key-a-fuzz-key-a-fuzz-key-a", SC_WIRE_KEY_BYTES);
    memcpy(keys_ba[0], "fuzz-key-b-fuzz-key-b-fuzz-key-b", SC_WIRE_KEY_BYTES);
    memcpy(keys_ba[1], keys_a[0], SC_WIRE_KEY_BYTES);
    must(sc_heartbeat_sender_init(&snd, keys_a[0]) == APR_SUCCESS);
    must(sc_heartbeat_seal(&snd, &hb_node1, root, &sealed_hb, &sealed_len)
         == APR_SUCCESS);
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

static const unsigned char (*ckeys(unsigned char (*k)[SC_WIRE_KEY_BYTES]))[SC_WIRE_KEY_BYTES]
{
    return (const unsigned char (*)[SC_WIRE_KEY_BYTES])k;
}

/* A heartbeat that opens holds only what a sender could have sealed; a plain
 * one seals again to the same bytes (its random bytes copied over); one that
 * opens under (B, A) opens under A alone or B alone. */
static void heartbeats(apr_pool_t *p, const unsigned char *data, size_t size)
{
    sc_heartbeat_sender snd;
    sc_heartbeat hb;
    const char *why;
    char *enc;
    apr_size_t elen;
    int under_a, under_ba, under_b;

    why = NULL;
    under_a = sc_heartbeat_open(ckeys(keys_a), 1, (const char *)data, size, p, &hb,
                                &why) == APR_SUCCESS;
    must(under_a || why);
    if (under_a)
        must(size <= SC_HB_MAX && strlen(hb.route) < SC_ROUTE_MAX
             && strlen(hb.listen) < SC_HB_LISTEN_MAX && hb.ready <= 1);
    why = NULL;
    under_ba = sc_heartbeat_open(ckeys(keys_ba), 2, (const char *)data, size, p, &hb,
                                 &why) == APR_SUCCESS;
    must(under_ba || why);
    under_b = sc_heartbeat_open(ckeys(keys_ba), 1, (const char *)data, size, p, &hb,
                                &why) == APR_SUCCESS;
    must(under_ba == (under_a || under_b));
    if (sc_heartbeat_open(NULL, 0, (const char *)data, size, p, &hb, &why)
        == APR_SUCCESS) {
        must(!under_a && !under_ba);            /* sealed or not, never both */
        memset(&snd, 0, sizeof(snd));
        memcpy(snd.random, data + 6, SC_WIRE_RANDOM_BYTES);
        same_bytes(sc_heartbeat_seal(&snd, &hb, p, &enc, &elen), enc, elen, data, size);
    }
}

/* The input behind a well-formed heartbeat header (unsealed, route node1),
 * so the body's decoder is reached on every run: it opens exactly when the
 * input is a valid body, and then seals again to the same bytes. */
static void wrapped_heartbeat(apr_pool_t *p, const unsigned char *data, size_t size)
{
    static const unsigned char head[] = { 'S', 'C', 'H', 'B', SC_WIRE_VERSION, 0,
                                          1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                          14, 15, 16, 0, 5, 'n', 'o', 'd', 'e', '1',
                                          0, 0, 0, 0, 0, 0, 0, 42 };
    unsigned char *dg;
    apr_size_t n = size > SC_HB_MAX ? SC_HB_MAX : size;
    sc_heartbeat_sender snd;
    sc_heartbeat hb;
    const char *why = NULL;
    char *enc;
    apr_size_t elen, llen;
    int valid;

    dg = apr_palloc(p, sizeof(head) + n);
    memcpy(dg, head, sizeof(head));
    if (n)
        memcpy(dg + sizeof(head), data, n);
    /* u16 listen length, listen, u64 epoch, u8 manager, u8 ready 0|1 */
    llen = n >= 2 ? (apr_size_t)data[0] << 8 | data[1] : 0;
    valid = sizeof(head) + n <= SC_HB_MAX && n >= 2 && llen >= 1
            && llen < SC_HB_LISTEN_MAX && n == 2 + llen + 8 + 1 + 1
            && data[n - 1] <= 1;
    if (sc_heartbeat_open(NULL, 0, (const char *)dg, sizeof(head) + n, p, &hb, &why)
        == APR_SUCCESS) {
        must(valid && hb.stamp == 42 && !strcmp(hb.route, "node1")
             && strlen(hb.listen) == llen);
        memset(&snd, 0, sizeof(snd));
        memcpy(snd.random, head + 6, SC_WIRE_RANDOM_BYTES);
        same_bytes(sc_heartbeat_seal(&snd, &hb, p, &enc, &elen), enc, elen, dg,
                   sizeof(head) + n);
    }
    else {
        /* a valid layout is refused only for the listen text's characters */
        must(why != NULL);
        if (valid) {
            apr_size_t i;
            int odd = 0;
            for (i = 0; i < llen; i++)
                odd |= !strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789-_.:[]", data[2 + i]) || !data[2 + i];
            must(odd);
        }
    }
}

/* A sealed heartbeat changed by the input: XORed with it, then cut to
 * data[0] bytes when the input is odd-sized, or extended with the input's
 * tail when it is longer. It opens only when nothing changed. */
static void forged_heartbeat(apr_pool_t *p, const unsigned char *data, size_t size)
{
    unsigned char *hb = apr_palloc(p, SC_HB_MAX + 1);
    apr_size_t len = sealed_len, i;
    int same = 1;
    sc_heartbeat got;
    const char *why;

    memcpy(hb, sealed_hb, sealed_len);
    for (i = 0; i < size && i < sealed_len; i++) {
        hb[i] ^= data[i];
        same &= data[i] == 0;
    }
    if (size > sealed_len) {
        apr_size_t extra = size - sealed_len;
        if (extra > SC_HB_MAX + 1 - sealed_len)
            extra = SC_HB_MAX + 1 - sealed_len;
        memcpy(hb + sealed_len, data + sealed_len, extra);
        len += extra;
        same = 0;
    }
    else if (size % 2 && data[0] < sealed_len) {
        len = data[0];
        same = 0;
    }
    must((sc_heartbeat_open(ckeys(keys_a), 1, (const char *)hb, len, p, &got, &why)
          == APR_SUCCESS) == same);
    must((sc_heartbeat_open(ckeys(keys_ba), 2, (const char *)hb, len, p, &got, &why)
          == APR_SUCCESS) == same);
    must(sc_heartbeat_open(ckeys(keys_ba), 1, (const char *)hb, len, p, &got, &why)
         != APR_SUCCESS);
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
    sc_msg_change *changes;
    sc_msg_batch_applied ba;
    char *enc;
    apr_size_t elen;
    int n;

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
    if (sc_msg_batch_decode(p, buf, size, &changes, &n) == APR_SUCCESS) {
        int i;
        for (i = 0; i < n; i++)
            must(changes[i].data >= buf && changes[i].data + changes[i].len <= buf + size);
        same_bytes(sc_msg_batch_encode(p, changes, n, &enc, &elen), enc, elen, data,
                   size);
    }
    if (sc_msg_batch_applied_decode(p, buf, size, &ba) == APR_SUCCESS)
        same_bytes(sc_msg_batch_applied_encode(p, &ba, &enc, &elen), enc, elen, data,
                   size);
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
    sc_wire_conn c;
    const char *payload, *why = NULL;
    apr_size_t len, plen;
    int type;

    if (size >= 4 && sc_wire_body_len(data, &len, &why) != APR_SUCCESS)
        must(why != NULL);

    /* a HELLO that opens is the one its sender would build */
    sc_wire_conn_init(&c, "node2");
    why = NULL;
    if (sc_wire_hello_open(&c, data, size, NULL, &why) == APR_SUCCESS) {
        sc_wire_conn peer;
        char *enc;
        apr_size_t elen;
        must(c.peer[0] && size <= SC_WIRE_HELLO_MAX
             && size == 4 + strlen(c.peer) + 8 + 1 + 8);
        sc_wire_conn_init(&peer, c.peer);
        peer.manager = c.peer_manager;
        peer.incarnation = c.peer_incarnation;
        must(sc_wire_hello(&peer, p, &enc, &elen) == APR_SUCCESS && elen == size + 4);
        same_bytes(APR_SUCCESS, enc + 4, elen - 4, data, size);
        /* and only for the route it names */
        sc_wire_conn_init(&c, "node2");
        must(sc_wire_hello_open(&c, data, size, strcmp(peer.self, "node9") ? "node9"
                                : "node8", &why) == APR_EINVAL && !c.peer[0]);
    }
    else {
        must(why != NULL && !c.peer[0]);
    }

    /* counter 1 from node1 opens; the payload is copied out */
    c = rx_proto;
    why = NULL;
    if (sc_wire_open(&c, data, size, p, &type, &payload, &plen, &why) == APR_SUCCESS) {
        must(c.rx_counter == 1 && type > SC_MSG_HELLO && type < SC_MSG_MAX_);
        must(size >= 4 + 5 + 8 && data[0] == SC_WIRE_VERSION && data[2] == 0);
        must(plen <= size && payload[plen] == '\0'
             && !memcmp(payload, data + size - plen, plen));
    }
    else {
        must(why != NULL && c.rx_counter == 0);
    }
}

/* The input behind a well-formed header (its first byte as the type, its
 * second as the flags), so the accepting path of sc_wire_open is reached on
 * every run, not only once the fuzzer has guessed a route and a counter. */
static void wrapped(apr_pool_t *p, const unsigned char *data, size_t size)
{
    static const unsigned char head[] = { SC_WIRE_VERSION, 0, 0, 5,
                                          'n', 'o', 'd', 'e', '1',
                                          0, 0, 0, 0, 0, 0, 0, 1 };
    sc_wire_conn c = rx_proto;
    unsigned char *body;
    const char *payload, *why = NULL;
    apr_size_t plen, n = size > 2 ? size - 2 : 0;
    int type, want = size ? data[0] : 0, flags = size > 1 ? data[1] : 0;
    apr_status_t rv;

    body = apr_palloc(p, sizeof(head) + n);
    memcpy(body, head, sizeof(head));
    body[1] = (unsigned char)want;
    body[2] = (unsigned char)flags;
    if (n)
        memcpy(body + sizeof(head), data + 2, n);
    rv = sc_wire_open(&c, body, sizeof(head) + n, p, &type, &payload, &plen, &why);
    if (want > SC_MSG_HELLO && want < SC_MSG_MAX_ && flags == 0) {
        must(rv == APR_SUCCESS && type == want && plen == n && c.rx_counter == 1
             && !memcmp(payload, data + 2, n) && payload[n] == '\0');
    }
    else {
        must(rv == APR_EINVAL && why && c.rx_counter == 0);
    }
    /* the same as a HELLO (counter 0): opens exactly with flags 0 and a
     * 9-byte payload, which then holds the manager and incarnation */
    sc_wire_conn_init(&c, "node2");
    body[1] = SC_MSG_HELLO;
    body[sizeof(head) - 1] = 0;
    why = NULL;
    rv = sc_wire_hello_open(&c, body, sizeof(head) + n, "node1", &why);
    if (flags == 0 && n == 9) {
        must(rv == APR_SUCCESS && !strcmp(c.peer, "node1") && c.peer_manager == data[2]);
        must(c.peer_incarnation >> 56 == data[3] && (c.peer_incarnation & 0xff) == data[10]);
    }
    else {
        must(rv == APR_EINVAL && why && !c.peer[0]);
    }
}

/* The input as a payload: framed by one end, opened by the other, once. */
static void frame_roundtrip(apr_pool_t *p, const unsigned char *data, size_t size)
{
    sc_wire_conn tx, rx = rx_proto;
    const char *payload, *why = NULL;
    apr_size_t flen, blen, plen;
    char *frame;
    int type = size ? SC_MSG_HELLO + 1 + data[0] % (SC_MSG_MAX_ - SC_MSG_HELLO - 1)
                    : SC_MSG_PING;
    int got;

    sc_wire_conn_init(&tx, "node1");
    must(sc_wire_frame(&tx, type, data, size, p, &frame, &flen) == APR_SUCCESS);
    must(sc_wire_body_len((unsigned char *)frame, &blen, &why) == APR_SUCCESS
         && blen == flen - 4 && flen == 4 + 4 + 5 + 8 + size);
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
    wrapped(p, data, size);
    decoders(p, data, size);
    heartbeats(p, data, size);
    wrapped_heartbeat(p, data, size);
    forged_heartbeat(p, data, size);
    if (size <= SC_WIRE_MAX_BODY - 64)
        frame_roundtrip(p, data, size);
    apr_pool_destroy(p);
    return 0;
}
