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
 *  - State transfer records: a SESSION or INVALIDATE payload per stored
 *    entry, applied as replicas (sc_store_put_newer decides). A manager with
 *    locations (backup) sends LOCATION records for live sessions instead: a
 *    joining node learns where every session lives, not the data. The
 *    frames around them are sc_transfer's (clusterd); nothing here does I/O.
 *  - Runs in clusterd (peers' frames, fetch answers, state transfer
 *    records); httpd children use sc_apply_describe for their own changes.
 */
#ifndef SC_APPLY_H
#define SC_APPLY_H

#include "sc_node.h"
#include "sc_wire.h"

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

/* State transfer (sc_transfer moves them): the record that carries stored
 * entry s, the session whole or (a manager with locations, for a live
 * session) its location; and the records of one STATE_CHUNK applied, as
 * replicas (*received counts them). APR_EINVAL: a record was undecodable. */
apr_status_t sc_apply_state_record(sc_node *node, const sc_session *s,
                                   apr_pool_t *p, const char **rec,
                                   apr_size_t *len);
apr_status_t sc_apply_state_chunk(sc_node *node, const char *b, apr_size_t len,
                                  const char *sender, apr_pool_t *p,
                                  apr_uint32_t *received);

#endif
