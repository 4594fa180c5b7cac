/* sc_apply.h - what a node does with its peers' changes, and how it
 * describes its own.
 *
 * Contract:
 *  - sc_apply_frame() applies one SESSION, DELTA or INVALIDATE from a peer
 *    with newer-version-wins semantics (a late or reordered copy changes
 *    nothing, a tombstone is never overwritten by an older version) and
 *    returns an sc_ack_status: OK, STALE, NEED_WHOLE (a delta whose base this
 *    node does not hold), FULL, or REFUSED (undecodable: nothing applied).
 *    A delta with version == base and an empty patch is a touch: it moves the
 *    expiry of exactly that version.
 *  - sc_apply_describe() turns a stored session into the payload that
 *    carries it whole: SESSION, INVALIDATE for a tombstone, LOCATION for a
 *    proxy. A LOCATION turns the receiver's entry into a proxy unless it
 *    names the receiver as owner or backup and the receiver holds the data.
 *  - State transfer: the serving side streams every live session and every
 *    tombstone in STATE_CHUNK frames (u32 count, then per record u32 length
 *    + SESSION or INVALIDATE payload) and a STATE_DONE; the asking side
 *    applies them as replicas (sc_store_put_newer decides). The backup
 *    manager sends LOCATION records for live sessions instead: a joining
 *    node learns where every session lives, not the data. The same pull
 *    brings a member back in line after a partition (delta manager).
 */
#ifndef SC_APPLY_H
#define SC_APPLY_H

#include "sc_node.h"
#include "sc_peer.h"

int sc_apply_frame(sc_node *node, int type, const char *payload, apr_size_t len,
                   const char *sender, apr_pool_t *p);

apr_status_t sc_apply_describe(apr_pool_t *p, const sc_session *s, int *type,
                               const char **out, apr_size_t *len);

/* The LOCATION payload of a stored session or proxy. */
apr_status_t sc_apply_location_of(apr_pool_t *p, const sc_session *s,
                                  char **out, apr_size_t *len);

/* The current stored state of the session a SESSION/DELTA/INVALIDATE
 * payload is about, described whole. */
apr_status_t sc_apply_current(sc_node *node, int type, const char *payload,
                              apr_size_t len, apr_pool_t *p, int *out_type,
                              const char **out, apr_size_t *out_len);

apr_status_t sc_apply_send_state(sc_node *node, sc_peer *c, apr_pool_t *p,
                                 apr_uint32_t *sent);
apr_status_t sc_apply_receive_state(sc_node *node, sc_peer *c, apr_pool_t *p,
                                    apr_uint32_t *received, const char **why);

#endif
