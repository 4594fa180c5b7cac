/* sc_keys.h - the cluster secret: files, checks and the keys derived from it.
 *
 * Contract:
 *  - ClusterSecretFile names one key file, or two for a rolling rotation
 *    (the new one first). A key file is readable by its owner only (no
 *    group or other permission bits, like ssh) and holds at least
 *    SC_KEY_MATERIAL_MIN bytes of key material: hex or base64 text (what
 *    `openssl rand -hex 32` / `-base64 32` write) or raw bytes (`openssl
 *    rand 32`). Printable text that is neither is a passphrase, not a key,
 *    and is refused. Every refusal says why in words.
 *  - From each key's material M (HKDF-SHA256, no salt) come: the TLS 1.3
 *    external PSK ("sc2 tls psk"), the heartbeat key ("sc2 heartbeat") and a
 *    public 8-hex-digit key id ("sc2 key id") that names the key in PSK
 *    identities and in logs, so an admin sees which keys two nodes hold
 *    without either revealing them.
 *  - `ClusterSecretFile none` gives one well-known key: the same code path,
 *    no protection (loopback-only experiments); heartbeats then go unsealed.
 *  - Only APR and OpenSSL libcrypto: no httpd headers (unit-tested alone).
 *  - Read in httpd's parent at configuration time; used by clusterd
 *    (TLS PSK, heartbeat keys).
 */
#ifndef SC_KEYS_H
#define SC_KEYS_H

#include <apr_pools.h>

#include "sc_limits.h"

#define SC_KEYS_MAX          2
#define SC_KEY_ID_LEN        8
#define SC_KEY_MATERIAL_MIN  32

typedef struct {
    int n;                                          /* keys held: 1 or 2 */
    int none;                                       /* ClusterSecretFile none */
    unsigned char psk[SC_KEYS_MAX][SC_KEY_BYTES];
    unsigned char heartbeat[SC_KEYS_MAX][SC_KEY_BYTES];
    char id[SC_KEYS_MAX][SC_KEY_ID_LEN + 1];
} sc_keys;

/* Check one key file and derive its keys into slot `i` of k (k->n is set to
 * i + 1). APR_EINVAL / APR_EACCES / a file error, with *why in words. */
apr_status_t sc_keys_add_file(sc_keys *k, int i, const char *path,
                              apr_pool_t *p, const char **why);

/* The well-known key of `ClusterSecretFile none`. */
apr_status_t sc_keys_none(sc_keys *k);

/* Decode key material from a file's contents (see above); *len bytes of
 * out (at least SC_KEY_MATERIAL_MIN, at most in_len). */
apr_status_t sc_keys_material(const unsigned char *in, apr_size_t in_len,
                              apr_pool_t *p, unsigned char **out,
                              apr_size_t *len, const char **why);

/* HKDF-SHA256(ikm, salt, info) into out_len bytes of out. */
apr_status_t sc_keys_hkdf(const unsigned char *ikm, apr_size_t ikm_len,
                          const unsigned char *salt, apr_size_t salt_len,
                          const char *info, unsigned char *out,
                          apr_size_t out_len);

/* The slot whose id is `id` (SC_KEY_ID_LEN chars, not terminated), or -1. */
int sc_keys_find(const sc_keys *k, const char *id, apr_size_t len);

/* "id1" or "id1, id2", for logs. */
const char *sc_keys_ids(const sc_keys *k, apr_pool_t *p);

#endif
