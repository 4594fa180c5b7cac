/* sc_wire.h - the peer wire protocol: frames and payloads; heartbeats.
 *
 * Contract:
 *  - Frames travel inside a TLS 1.3 connection (sc_tls): TLS encrypts and
 *    authenticates them; this codec only frames and checks. A frame is: u32
 *    body length (network order), then the body: u8 version
 *    (SC_WIRE_VERSION), u8 type, u8 flags (0: none defined), u8 route length,
 *    route bytes (1..SC_ROUTE_LEN_MAX, [A-Za-z0-9_-]), u64 counter, payload.
 *  - The length is checked against SC_WIRE_MAX_BODY before anything is
 *    allocated (sc_wire_body_len), every field is bounds-checked, and every
 *    rejection comes with a short reason for the log.
 *  - A connection starts with one HELLO each way (counter 0, payload: u8
 *    ClusterManager, u64 incarnation: when the sender's store was created,
 *    so a member that restarted is told apart even when it is back before
 *    anyone saw it gone). HELLO bodies are at most SC_WIRE_HELLO_MAX bytes.
 *  - Counters start at 1 after HELLO and must arrive exactly +1: a replayed,
 *    reordered or dropped frame is rejected (TLS already prevents it; this
 *    catches our own bugs).
 *  - Multicast heartbeats are datagrams outside TLS, sealed here (below).
 *  - Only APR and OpenSSL libcrypto; no httpd headers.
 */
#ifndef SC_WIRE_H
#define SC_WIRE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "sc_limits.h"

#define SC_WIRE_VERSION       2
#define SC_WIRE_RANDOM_BYTES  16
#define SC_WIRE_TAG_BYTES     16
#define SC_WIRE_KEY_BYTES     SC_KEY_BYTES
/* the largest HELLO body: header with the longest route, and its payload */
#define SC_WIRE_HELLO_MAX     (4 + (SC_ROUTE_MAX - 1) + 8 + 1 + 8)
/* one whole session plus its metadata fits with room to spare */
#define SC_WIRE_MAX_BODY      (SC_SESSION_MAX + 64 * 1024)

typedef enum {
    SC_MSG_HELLO = 1,      /* u8 manager, u64 incarnation */
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
    SC_MSG_BATCH,          /* sc_msg_change[]: changes in one frame,
                              answered by one BATCH_APPLIED */
    SC_MSG_BATCH_APPLIED,  /* sc_msg_batch_applied: one status per change,
                              after all were applied (so also: received) */
    SC_MSG_MAX_            /* first invalid type */
} sc_msg_type;

/* Per connection: who is at either end, and both directions' counters. */
typedef struct {
    char self[SC_ROUTE_MAX];             /* our route, written into frames */
    char peer[SC_ROUTE_MAX];             /* "" until the peer's HELLO */
    apr_uint64_t tx_counter;             /* last counter sent */
    apr_uint64_t rx_counter;             /* last counter accepted */
    apr_uint64_t incarnation;            /* ours, sent in our HELLO */
    int manager;                         /* ours (sc_manager_e), in our HELLO */
    apr_uint64_t peer_incarnation;       /* from the peer's HELLO */
    int peer_manager;                    /* from the peer's HELLO */
} sc_wire_conn;

void sc_wire_conn_init(sc_wire_conn *c, const char *self_route);

/* Our HELLO frame (counter 0, our manager and incarnation). */
apr_status_t sc_wire_hello(sc_wire_conn *c, apr_pool_t *p, char **frame,
                           apr_size_t *len);

/* Check the peer's HELLO body: route valid (and == expect_route unless
 * NULL), counter 0, no trailing bytes. Stores c->peer, its manager and
 * incarnation (the caller decides whether the manager is acceptable). */
apr_status_t sc_wire_hello_open(sc_wire_conn *c, const unsigned char *body,
                                apr_size_t len, const char *expect_route,
                                const char **why);

/* Build one frame (length prefix included) with the next tx counter. */
apr_status_t sc_wire_frame(sc_wire_conn *c, int type, const void *payload,
                           apr_size_t len, apr_pool_t *p, char **frame,
                           apr_size_t *frame_len);

/* From the 4-byte prefix: the body length, or APR_EINVAL (with *why) when
 * it is 0, shorter than a minimal header, or over SC_WIRE_MAX_BODY. */
apr_status_t sc_wire_body_len(const unsigned char *prefix, apr_size_t *len,
                              const char **why);

/* Verify a body: version, type range, flags, route == c->peer, counter ==
 * rx_counter + 1. On success the payload is in pool memory (NUL after it)
 * and rx_counter advances. */
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

/* A frame type that carries one session change (SESSION, DELTA, INVALIDATE,
 * LOCATION): what a BATCH may hold and what the traffic counters count. */
int sc_wire_is_change(int type);

/* BATCH: u32 count (1..SC_WIRE_BATCH_MAX), then per change u8 type
 * (SESSION, DELTA, INVALIDATE or LOCATION), u32 length, that payload (still
 * to be decoded by its own decoder). */
#define SC_WIRE_BATCH_MAX   256
/* a BATCH payload's bytes at most (room left for the frame header) */
#define SC_WIRE_BATCH_BYTES (SC_WIRE_MAX_BODY - 1024)
typedef struct {
    int type;
    const char *data;
    apr_size_t len;
} sc_msg_change;
/* Encode `n` changes (1..SC_WIRE_BATCH_MAX); the result is at most
 * SC_WIRE_BATCH_BYTES or APR_EINVAL. */
apr_status_t sc_msg_batch_encode(apr_pool_t *p, const sc_msg_change *changes,
                                 int n, char **out, apr_size_t *len);
/* Split a BATCH into *changes (pointing into buf), checking every length,
 * type and the count; APR_EINVAL on any mismatch or trailing byte. */
apr_status_t sc_msg_batch_decode(apr_pool_t *p, const char *buf, apr_size_t len,
                                 sc_msg_change **changes, int *n);

/* BATCH_APPLIED: u64 counter of the BATCH frame, u32 count, count u8
 * statuses (sc_ack_status), in the batch's order. */
typedef struct {
    apr_uint64_t counter;
    int n;                      /* 1..SC_WIRE_BATCH_MAX */
    unsigned char *status;      /* n of them */
} sc_msg_batch_applied;
apr_status_t sc_msg_batch_applied_encode(apr_pool_t *p,
                                         const sc_msg_batch_applied *m,
                                         char **out, apr_size_t *len);
apr_status_t sc_msg_batch_applied_decode(apr_pool_t *p, const char *buf,
                                         apr_size_t len, sc_msg_batch_applied *m);

/* PING/PONG and STATE_DONE: one u64. */
apr_status_t sc_msg_u64_encode(apr_pool_t *p, apr_uint64_t v, char **out,
                               apr_size_t *len);
apr_status_t sc_msg_u64_decode(const char *buf, apr_size_t len, apr_uint64_t *v);

/* ---- multicast heartbeats (ClusterMulticast) --------------------------------
 * One datagram of at most SC_HB_MAX bytes:
 *   "SCHB" | u8 version | u8 flags (SC_HB_F_SEALED) | 16 random bytes |
 *   u16 route_len route | u64 stamp                 (the header)
 *   u16 listen_len listen | u64 epoch | u8 manager | u8 ready   (the body)
 *   | 16-byte GCM tag when sealed.
 * The random bytes are drawn once per sender start; with a key (sc_keys'
 * heartbeat key) the body is AES-256-GCM sealed under HKDF-SHA256(key,
 * salt = those random bytes, info = "sc2 heartbeat sender"), nonce 4 zero
 * bytes || stamp, the header as
 * additional data. The stamp grows with every datagram of a sender start,
 * so a nonce never repeats under one key; receivers reject a stamp that is
 * not newer than the last one of the same epoch (replays).
 * `listen` is the sender's ClusterListen as host:port; epoch tells its
 * incarnation (a node started anew has a larger one). */
#define SC_HB_MAX         256
#define SC_HB_F_SEALED    0x01
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

/* key NULL: heartbeats go out unsealed. */
apr_status_t sc_heartbeat_sender_init(sc_heartbeat_sender *snd,
                                      const unsigned char *key);
apr_status_t sc_heartbeat_seal(const sc_heartbeat_sender *snd,
                               const sc_heartbeat *hb, apr_pool_t *p,
                               char **out, apr_size_t *len);
/* Decode (and with keys, authenticate) one datagram: keys is NULL (no
 * secret: unsealed only) or nkeys heartbeat keys, any of which may have
 * sealed it (a rotation). APR_EINVAL for a malformed one or a
 * sealed/unsealed mismatch, APR_EGENERAL when no key verifies the tag
 * (another secret, or tampered); *why says which. */
apr_status_t sc_heartbeat_open(const unsigned char (*keys)[SC_WIRE_KEY_BYTES],
                               int nkeys, const char *in,
                               apr_size_t len, apr_pool_t *p, sc_heartbeat *hb,
                               const char **why);

#endif
