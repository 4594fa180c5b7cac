/* sc_id.h - session ids and the cookie value that carries them.
 *
 * Contract:
 *  - An id base is SC_ID_BASE_LEN characters of URL-safe base64 encoding
 *    SC_ID_RANDOM_BYTES bytes (144 bits) from APR's secure random source; it
 *    never contains '.', so mod_proxy_balancer reads everything after the first
 *    '.' of the cookie value as the route (jvmRoute style: <base>.<route>).
 *  - The store is keyed by the base alone: a route change needs no re-keying.
 *  - Parsing is strict: anything but a well-formed base and route is rejected.
 *  - Only APR (and libcrypto for the digest), so unit tests drive it directly.
 *  - Runs anywhere (children, clusterd, the status page); no state.
 */
#ifndef SC_ID_H
#define SC_ID_H

#include <apr_pools.h>

#include "sc_limits.h"

#define SC_ID_RANDOM_BYTES 18
#define SC_ID_BASE_LEN     24   /* 4 chars per 3 bytes, no padding */

/* Fill base (SC_ID_BASE_LEN + 1 bytes) with a fresh random id base. */
apr_status_t sc_id_generate(char *base);

/* The one character class of id bases and routes: [A-Za-z0-9_-] (the URL-
 * safe base64 alphabet). */
int sc_name_char(int c);

/* 1 if route is 1..SC_ROUTE_LEN_MAX chars of [A-Za-z0-9_-]. */
int sc_route_valid(const char *route);

/* Split a cookie value "<base>[.<route>]". On success base receives the id
 * base and *route the route ("" when absent), allocated from p. */
apr_status_t sc_id_parse(apr_pool_t *p, const char *value, char *base,
                         const char **route);

/* How logs and pages name a session (ids are credentials): the first
 * SC_ID_DIGEST_LEN hex digits of SHA-256 of the id base, which a client
 * holding the cookie can recompute. */
#define SC_ID_DIGEST_LEN 12
const char *sc_id_digest(apr_pool_t *p, const char *id);

/* "<base>.<route>" */
const char *sc_id_cookie_value(apr_pool_t *p, const char *base,
                               const char *route);

#endif
