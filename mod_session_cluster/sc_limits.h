/* sc_limits.h - the sizes every layer agrees on, defined once.
 *
 * Contract:
 *  - Plain macros and no includes: the store, the codec, the config, the
 *    gate and the managers take their limits from here, so no layer needs
 *    another's header for a number (the codec used to include the store's).
 *  - A limit that belongs to one file only (a queue length, a buffer) stays
 *    in that file; a limit two files must agree on lives here.
 *  - Everywhere: only macros.
 */
#ifndef SC_LIMITS_H
#define SC_LIMITS_H

/* members of one cluster (ClusterMember lines plus members multicast makes
 * known), this node excluded */
#define SC_MAX_MEMBERS      64

/* a route: 1..SC_ROUTE_LEN_MAX characters of [A-Za-z0-9_-] */
#define SC_ROUTE_LEN_MAX    31
#define SC_ROUTE_MAX        (SC_ROUTE_LEN_MAX + 1)      /* bytes incl. NUL */

/* a session id as stored (base id, no route), bytes incl. NUL */
#define SC_ID_MAX           48

/* data bytes per session */
#define SC_SESSION_MAX      (1024 * 1024)

/* a cluster key, and a key derived from it */
#define SC_KEY_BYTES        32

#endif
