/* sc_msg.h - the message codecs: the payload of each frame type (sc_frame.h)
 * to bytes and back.
 *
 * Contract:
 *  - Every integer network order, apr_time_t as a two's complement u64,
 *    strings u16- (ids, routes) or u32-prefixed (session data, patches);
 *    one encoding per message (sc_msg.c lays each out).
 *  - Encoders check the rules decoders enforce (ids, routes, data without
 *    NUL, sizes; sc_codec.h), so we never send what a peer must refuse:
 *    APR_EINVAL instead.
 *  - Every decoder is bounds-checked and rejects trailing bytes with
 *    APR_EINVAL; decoded strings are pool copies with a NUL after them,
 *    except the parts of a BATCH or STATE_CHUNK, which point into the input
 *    and are still to be decoded by their own decoder.
 *  - Only APR; no httpd headers.
 */
#ifndef SC_MSG_H
#define SC_MSG_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "sc_frame.h"
#include "sc_limits.h"

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

#endif
