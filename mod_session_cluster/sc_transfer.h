/* sc_transfer.h - state transfer over a member connection (clusterd).
 *
 * Contract:
 *  - The serving side streams every live session and every tombstone of its
 *    store in STATE_CHUNK frames (u32 count, then per record u32 length and
 *    the record sc_apply_state_record gives: the session whole, or its
 *    location when the manager has locations) and ends with STATE_DONE and
 *    the count; the asking side applies each chunk as it comes
 *    (sc_apply_state_chunk) and checks the count.
 *  - Used when a node joins (before it reports ready) and, by the delta
 *    manager, to merge with a member back after a partition.
 *  - Runs in clusterd only; the records and their application are
 *    sc_apply's, the frames sc_peer's.
 */
#ifndef SC_TRANSFER_H
#define SC_TRANSFER_H

#include "sc_node.h"
#include "sc_peer.h"

/* Answer a STATE_REQ on connection c: *sent records. */
apr_status_t sc_transfer_send(sc_node *node, sc_peer *c, apr_pool_t *p,
                              apr_uint32_t *sent);

/* Ask the member at c for its state and apply it: *received records; *why
 * says what went wrong otherwise. */
apr_status_t sc_transfer_receive(sc_node *node, sc_peer *c, apr_pool_t *p,
                                 apr_uint32_t *received, const char **why);

#endif
