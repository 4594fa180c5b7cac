/* sc_wire.h - the peer wire protocol: frames, their protection, payloads.
 *
 * Contract:
 *  - A frame is: u32 body length (network order), then the body:
 *      u8 version (SC_WIRE_VERSION), u8 type, u8 flags, u8 route length,
 *      route bytes (1..SC_ROUTE_LEN_MAX, [A-Za-z0-9_-]), u64 counter,
 *      payload, and when flags has SC_WIRE_F_SEALED a 16-byte GCM tag.
 *    The header (version .. counter) is the AEAD's additional data.
 *  - The length is checked against SC_WIRE_MAX_BODY before anything is
 *    allocated (sc_wire_body_len), every field is bounds-checked, and every
 *    rejection comes with a short reason for the log.
 *  - A connection starts with one HELLO each way (plaintext, counter 0,
 *    payload: SC_WIRE_RANDOM_BYTES random bytes, u8 "sealed" flag, u64
 *    incarnation: when the sender's store was created, so a member that
 *    restarted is told apart even when it is back before anyone saw it
 *    gone). With a
 *    secret, each direction then gets its own AES-256-GCM key from
 *    HKDF-SHA256(secret, salt = client random || server random,
 *    info = "sc1 c2s" or "sc1 s2c"): fresh keys per connection, so a nonce
 *    (4 zero bytes || u64 counter) never repeats under one key, also across
 *    restarts. Without a secret frames are plaintext but still counted.
 *  - Counters start at 1 after HELLO and must arrive exactly +1: a replayed,
 *    reordered or dropped frame is rejected.
 *  - Only APR and OpenSSL libcrypto; no httpd headers.
 */
#ifndef SC_WIRE_H
#define SC_WIRE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "sc_store.h"

#define SC_WIRE_VERSION       1
#define SC_WIRE_F_SEALED      0x01
#define SC_WIRE_RANDOM_BYTES  16
#define SC_WIRE_TAG_BYTES     16
#define SC_WIRE_KEY_BYTES     32
/* one whole session plus its metadata fits with room to spare */
#define SC_WIRE_MAX_BODY      (SC_SESSION_MAX + 64 * 1024)

typedef enum {
    SC_MSG_HELLO = 1,      /* random bytes, sealed flag, incarnation (plain) */
    SC_MSG_PING,           /* u64 sender's apr_time_t */
    SC_MSG_PONG,           /* echoes the PING's u64 */
    SC_MSG_SESSION,        /* sc_msg_session: a whole session */
    SC_MSG_DELTA,          /* sc_msg_delta: key changes on a base version */
    SC_MSG_INVALIDATE,     /* sc_msg_invalidate */
    SC_MSG_ACK,            /* sc_msg_ack: frame received */
    SC_MSG_APPLIED,        /* sc_msg_ack: frame applied (status says how) */
    SC_MSG_STATE_REQ,      /* empty: send me every live session */
    SC_MSG_STATE_CHUNK,    /* u32 count, then per session u32 length and a
                              SESSION or INVALIDATE payload (sc_msg_chunk_*) */
    SC_MSG_STATE_DONE,     /* u64 total sessions sent */
    SC_MSG_LOCATION,       /* sc_msg_location: where a session lives now */
    SC_MSG_FETCH,          /* a session id: answered with SESSION,
                              INVALIDATE, LOCATION or ACK NOTFOUND */
    SC_MSG_MERGE_REQ,      /* empty, after a STATE_DONE: "you were cut off
                              from me; pull my sessions too" */
    SC_MSG_MAX_            /* first invalid type */
} sc_msg_type;

/* Per connection: both directions' keys and counters. */
typedef struct {
    int sealed;                          /* AEAD on (a secret is configured) */
    char self[SC_ROUTE_MAX];             /* our route, written into frames */
    char peer[SC_ROUTE_MAX];             /* "" until the peer's HELLO */
    unsigned char tx_key[SC_WIRE_KEY_BYTES];
    unsigned char rx_key[SC_WIRE_KEY_BYTES];
    apr_uint64_t tx_counter;             /* last counter sent */
    apr_uint64_t rx_counter;             /* last counter accepted */
    apr_uint64_t incarnation;            /* ours, sent in our HELLO (0: none) */
    apr_uint64_t peer_incarnation;       /* from the peer's HELLO */
} sc_wire_conn;

/* Read a secret file (>= 16 bytes) into a 32-byte key: SHA-256 of its
 * contents with surrounding whitespace trimmed. */
apr_status_t sc_wire_secret_load(const char *path, unsigned char *secret,
                                 apr_pool_t *p);

void sc_wire_conn_init(sc_wire_conn *c, const char *self_route, int sealed);

/* Fill `random` with SC_WIRE_RANDOM_BYTES and build our HELLO frame. */
apr_status_t sc_wire_hello(sc_wire_conn *c, unsigned char *random,
                           apr_pool_t *p, char **frame, apr_size_t *len);

/* Check the peer's HELLO body: route valid (and == expect_route unless NULL),
 * counter 0, sealed flag equal to ours. Stores c->peer and the peer random. */
apr_status_t sc_wire_hello_open(sc_wire_conn *c, const unsigned char *body,
                                apr_size_t len, const char *expect_route,
                                unsigned char *peer_random, const char **why);

/* After both HELLOs: derive per-direction keys (no-op without a secret) and
 * reset both counters to 0. */
apr_status_t sc_wire_conn_keys(sc_wire_conn *c, const unsigned char *secret,
                               const unsigned char *client_random,
                               const unsigned char *server_random,
                               int is_client);

/* Build one frame (length prefix included) with the next tx counter. */
apr_status_t sc_wire_seal(sc_wire_conn *c, int type, const void *payload,
                          apr_size_t len, apr_pool_t *p, char **frame,
                          apr_size_t *frame_len);

/* From the 4-byte prefix: the body length, or APR_EINVAL (with *why) when
 * it is 0, shorter than a minimal header, or over SC_WIRE_MAX_BODY. */
apr_status_t sc_wire_body_len(const unsigned char *prefix, apr_size_t *len,
                              const char **why);

/* Verify (and decrypt) a body: version, type range, route == c->peer,
 * counter == rx_counter + 1, sealed flag as negotiated, tag. On success the
 * plaintext payload is in pool memory and rx_counter advances. */
apr_status_t sc_wire_open(sc_wire_conn *c, const unsigned char *body,
                          apr_size_t len, apr_pool_t *p, int *type,
                          const char **payload, apr_size_t *plen,
                          const char **why);

/* ---- payloads (all integers network order, strings u16/u32 length-prefixed,
 * every decoder bounds-checked and rejecting trailing bytes) --------------- */

typedef struct {
    const char *id;             /* <= SC_ID_MAX - 1 bytes */
    const char *owner;          /* route */
    const char *backup;         /* route, "" for none (delta manager) */
    apr_uint64_t version;
    apr_time_t expires;
    const char *data;           /* NUL-terminated after decoding */
    apr_size_t len;             /* <= SC_SESSION_MAX */
} sc_msg_session;

typedef struct {
    const char *id;
    const char *owner;
    apr_uint64_t base_version;  /* the replica must hold exactly this one */
    apr_uint64_t version;
    apr_time_t expires;
    const char *patch;          /* sc_kv patch: "k=v&gone=" */
    apr_size_t len;
} sc_msg_delta;

/* Backup manager: a session's placement without its data. Encoded as a
 * SESSION with empty data; decoding insists on that. */
typedef struct {
    const char *id;
    const char *owner;          /* the primary */
    const char *backup;         /* "" for none */
    apr_uint64_t version;
    apr_time_t expires;
} sc_msg_location;

typedef struct {
    const char *id;
    apr_uint64_t version;       /* version of the tombstone */
    apr_time_t until;
} sc_msg_invalidate;

typedef enum { SC_ACK_OK = 0, SC_ACK_STALE = 1, SC_ACK_NEED_WHOLE = 2,
               SC_ACK_FULL = 3, SC_ACK_REFUSED = 4,
               SC_ACK_NOTFOUND = 5 } sc_ack_status;

typedef struct {
    apr_uint64_t counter;       /* the acknowledged frame's counter */
    int status;                 /* sc_ack_status */
} sc_msg_ack;

apr_status_t sc_msg_session_encode(apr_pool_t *p, const sc_msg_session *m,
                                   char **out, apr_size_t *len);
apr_status_t sc_msg_session_decode(apr_pool_t *p, const char *buf,
                                   apr_size_t len, sc_msg_session *m);
apr_status_t sc_msg_delta_encode(apr_pool_t *p, const sc_msg_delta *m,
                                 char **out, apr_size_t *len);
apr_status_t sc_msg_delta_decode(apr_pool_t *p, const char *buf,
                                 apr_size_t len, sc_msg_delta *m);
apr_status_t sc_msg_invalidate_encode(apr_pool_t *p, const sc_msg_invalidate *m,
                                      char **out, apr_size_t *len);
apr_status_t sc_msg_invalidate_decode(apr_pool_t *p, const char *buf,
                                      apr_size_t len, sc_msg_invalidate *m);
apr_status_t sc_msg_location_encode(apr_pool_t *p, const sc_msg_location *m,
                                    char **out, apr_size_t *len);
apr_status_t sc_msg_location_decode(apr_pool_t *p, const char *buf,
                                    apr_size_t len, sc_msg_location *m);
/* FETCH: one u16-prefixed session id. */
apr_status_t sc_msg_id_encode(apr_pool_t *p, const char *id, char **out,
                              apr_size_t *len);
apr_status_t sc_msg_id_decode(apr_pool_t *p, const char *buf, apr_size_t len,
                              const char **id);
apr_status_t sc_msg_ack_encode(apr_pool_t *p, const sc_msg_ack *m,
                               char **out, apr_size_t *len);
apr_status_t sc_msg_ack_decode(const char *buf, apr_size_t len, sc_msg_ack *m);
/* STATE_CHUNK: split into its records (each still to be decoded), checking
 * every length and the count; APR_EINVAL on any mismatch or trailing byte. */
typedef struct {
    const char *data;
    apr_size_t len;
} sc_msg_record;
apr_status_t sc_msg_chunk_decode(apr_pool_t *p, const char *buf, apr_size_t len,
                                 apr_array_header_t **records);

/* PING/PONG and STATE_DONE: one u64. */
apr_status_t sc_msg_u64_encode(apr_pool_t *p, apr_uint64_t v, char **out,
                               apr_size_t *len);
apr_status_t sc_msg_u64_decode(const char *buf, apr_size_t len, apr_uint64_t *v);

/* ---- multicast heartbeats (ClusterMulticast) --------------------------------
 * One datagram of at most SC_HB_MAX bytes:
 *   "SCHB" | u8 version | u8 flags (SC_WIRE_F_SEALED) | 16 random bytes |
 *   u16 route_len route | u64 stamp                 (the header)
 *   u16 listen_len listen | u64 epoch | u8 manager | u8 ready   (the body)
 *   | 16-byte GCM tag when sealed.
 * The random bytes are drawn once per sender start; with a secret the body is
 * AES-256-GCM sealed under HKDF-SHA256(secret, salt = those random bytes,
 * info = "sc1 heartbeat"), nonce 4 zero bytes || stamp, the header as
 * additional data. The stamp grows with every datagram of a sender start,
 * so a nonce never repeats under one key; receivers reject a stamp that is
 * not newer than the last one of the same epoch (replays).
 * `listen` is the sender's ClusterListen as host:port; epoch tells its
 * incarnation (a node started anew has a larger one). */
#define SC_HB_MAX         256
#define SC_HB_LISTEN_MAX  64

typedef struct {
    const char *route;
    const char *listen;         /* host:port */
    apr_uint64_t epoch;
    apr_uint64_t stamp;
    int manager;                /* sc_manager_e, 0..255 */
    int ready;                  /* 0 or 1 */
} sc_heartbeat;

/* One sender start: its random bytes and, with a secret, its key. */
typedef struct {
    unsigned char random[SC_WIRE_RANDOM_BYTES];
    unsigned char key[SC_WIRE_KEY_BYTES];
    int sealed;
} sc_heartbeat_sender;

/* secret NULL: heartbeats go out unsealed. */
apr_status_t sc_heartbeat_sender_init(sc_heartbeat_sender *snd,
                                      const unsigned char *secret);
apr_status_t sc_heartbeat_seal(const sc_heartbeat_sender *snd,
                               const sc_heartbeat *hb, apr_pool_t *p,
                               char **out, apr_size_t *len);
/* Decode (and with a secret, authenticate) one datagram. APR_EINVAL for a
 * malformed one or a sealed/unsealed mismatch, APR_EGENERAL when the tag
 * does not verify (another secret, or tampered); *why says which. */
apr_status_t sc_heartbeat_open(const unsigned char *secret, const char *in,
                               apr_size_t len, apr_pool_t *p, sc_heartbeat *hb,
                               const char **why);

#endif
