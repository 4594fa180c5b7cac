/* sc_frame.h - frames on a member connection: length, header, HELLO,
 * counters; and the message types a frame carries.
 *
 * Contract:
 *  - Frames travel inside a TLS 1.3 connection (sc_tls): TLS encrypts and
 *    authenticates them; this codec only frames and checks. A frame is: u32
 *    body length (network order), then the body: u8 version
 *    (SC_WIRE_VERSION), u8 type, u8 flags (0: none defined), u8 route length,
 *    route bytes (1..SC_ROUTE_LEN_MAX, [A-Za-z0-9_-]), u64 counter, payload
 *    (its codecs: sc_msg.h).
 *  - The length is checked against SC_WIRE_MAX_BODY before anything is
 *    allocated (sc_wire_body_len), every field is bounds-checked, and every
 *    rejection is APR_EINVAL with a short static reason for the log in *why.
 *  - A connection starts with one HELLO each way (counter 0, payload: u8
 *    ClusterManager, u64 incarnation: when the sender's store was created,
 *    so a member that restarted is told apart even when it is back before
 *    anyone saw it gone). HELLO bodies are at most SC_WIRE_HELLO_MAX bytes.
 *  - Counters start at 1 after HELLO and must arrive exactly +1: a replayed,
 *    reordered or dropped frame is rejected (TLS already prevents it; this
 *    catches our own bugs). rx_counter only moves once a frame passed every
 *    check; tx_counter only once a frame was built.
 *  - Only APR; no httpd headers.
 */
#ifndef SC_FRAME_H
#define SC_FRAME_H

#include <apr_pools.h>

#include "sc_limits.h"

/* frames' and heartbeats' version byte */
#define SC_WIRE_VERSION       2
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

#endif
