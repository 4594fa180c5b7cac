/* sc_seal.h - AES-256-GCM for what travels outside TLS (multicast
 * heartbeats), and the key one sender start seals under.
 *
 * Contract:
 *  - sc_seal_key(): a sender start's key is HKDF-SHA256 (sc_keys_hkdf) of a
 *    heartbeat key, salt = that start's SC_WIRE_RANDOM_BYTES random bytes,
 *    info = "sc2 heartbeat sender"; SC_WIRE_KEY_BYTES long.
 *  - The nonce is 4 zero bytes || the u64 counter (network order): the
 *    caller never seals twice with one counter under one key.
 *  - sc_seal() writes as many bytes as it reads (in == out is fine) and an
 *    SC_WIRE_TAG_BYTES tag; sc_seal_open() verifies the tag, and wipes its
 *    output when it does not verify: no unauthenticated plaintext is left.
 *    Any failure is APR_EGENERAL (APR_ENOMEM without a cipher context), and
 *    OpenSSL's error queue is left empty.
 *  - Only APR and OpenSSL libcrypto; no httpd headers.
 */
#ifndef SC_SEAL_H
#define SC_SEAL_H

#include <apr_pools.h>

#include "sc_limits.h"

#define SC_WIRE_RANDOM_BYTES  16
#define SC_WIRE_TAG_BYTES     16
#define SC_WIRE_KEY_BYTES     SC_KEY_BYTES

/* out (SC_WIRE_KEY_BYTES) = the key of the sender start drawing `random`
 * (SC_WIRE_RANDOM_BYTES), from heartbeat key `key` (SC_WIRE_KEY_BYTES). */
apr_status_t sc_seal_key(const unsigned char *key, const unsigned char *random,
                         unsigned char *out);

/* Encrypt len bytes of in to out (same length) with aad authenticated too,
 * and write the tag. */
apr_status_t sc_seal(const unsigned char *key, apr_uint64_t counter,
                     const unsigned char *aad, apr_size_t aad_len,
                     const unsigned char *in, apr_size_t len,
                     unsigned char *out, unsigned char *tag);

/* Decrypt len bytes of in to out and verify tag over them and aad. */
apr_status_t sc_seal_open(const unsigned char *key, apr_uint64_t counter,
                          const unsigned char *aad, apr_size_t aad_len,
                          const unsigned char *in, apr_size_t len,
                          const unsigned char *tag, unsigned char *out);

#endif
