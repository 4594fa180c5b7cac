/* sc_heartbeat.h - multicast heartbeat datagrams (ClusterMulticast): to
 * bytes, sealed, and back.
 *
 * Contract:
 *  - Heartbeats are datagrams outside TLS. One is at most SC_HB_MAX bytes:
 *      "SCHB" | u8 version | u8 flags (SC_HB_F_SEALED) | 16 random bytes |
 *      u16 route_len route | u64 stamp                 (the header)
 *      u16 listen_len listen | u64 epoch | u8 manager | u8 ready   (the body)
 *      | 16-byte GCM tag when sealed.
 *  - The random bytes are drawn once per sender start; with a key (sc_keys'
 *    heartbeat key) the body is AES-256-GCM sealed (sc_seal.h) under
 *    HKDF-SHA256(key, salt = those random bytes, info = "sc2 heartbeat
 *    sender"), nonce 4 zero bytes || stamp, the header as additional data.
 *  - The stamp grows with every datagram of a sender start, so a nonce never
 *    repeats under one key; receivers (sc_mcast) reject a stamp that is not
 *    newer than the last one of the same epoch (replays).
 *  - `listen` is the sender's ClusterListen as host:port; epoch tells its
 *    incarnation (a node started anew has a larger one).
 *  - Only APR and OpenSSL libcrypto; no httpd headers.
 */
#ifndef SC_HEARTBEAT_H
#define SC_HEARTBEAT_H

#include <apr_pools.h>

#include "sc_seal.h"

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
