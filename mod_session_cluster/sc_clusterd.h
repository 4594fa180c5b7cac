/* sc_clusterd.h - clusterd, the node's network daemon.
 *
 * Contract:
 *  - One process per node, forked by the parent from post_config in every
 *    generation (mod_cgid's lifecycle): the generation's end stops it, and if
 *    it dies while httpd runs it is started again (with a back-off).
 *  - Its stop (SIGTERM: a restart, graceful or not, or httpd's stop) is in
 *    order: it takes nothing more from the channel (the next clusterd takes
 *    the rest, and answers those waiters), answers every change it took and
 *    empties its links first, within SC_REPLICATION_WAIT.
 *  - It inherits the ClusterListen socket (bound once by the parent) and the
 *    children's channel (sc_chan, mapped by the parent), then drops
 *    privileges as a child does. It is the channel's one consumer: each
 *    change is queued on the links of the members it goes to, and an
 *    ack/sync change's waiter is answered from the link threads.
 *  - One sc_link per other member (membership and outbound replication);
 *    inbound connections get their changes applied (sc_apply) and answered,
 *    and any connection that sends one bad frame is dropped with a log line.
 *  - A node whose store is new asks a live member for every session before
 *    it reports ready (bounded by ClusterStateTransferTimeout).
 *  - It runs the store's expiry sweep.
 */
#ifndef SC_CLUSTERD_H
#define SC_CLUSTERD_H

#include <httpd.h>

/* From post_config (serving pass): start this generation's clusterd. */
int sc_clusterd_start(apr_pool_t *pconf, server_rec *s);

#endif
