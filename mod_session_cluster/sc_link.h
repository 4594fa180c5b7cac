/* sc_link.h - clusterd's outbound link to one member.
 *
 * Contract:
 *  - One thread per other member keeps one connection to it. When idle it
 *    pings every SC_PING_EVERY; a member silent for SC_DROP_AFTER (or
 *    refusing connections) is marked down in the shared table, and up when it
 *    answers. A SIGSTOPped peer whose kernel still accepts TCP is caught too.
 *  - A member that sends multicast heartbeats is also down once they stop
 *    for droptime (and not up again before they come back).
 *  - A member whose link is refused for what is configured (its key or
 *    certificate, its ClusterManager, another node at its address) is down
 *    at once with that reason (sc_reason, shown on the status page), with an
 *    error line when the reason is new (then at most every minute); its own
 *    inbound connections do not bring it up until this link succeeds. A connection
 *    that reaches a new incarnation of the member (its HELLO says so: it
 *    restarted) counts as down then up, even if nobody saw it gone.
 *  - Frames go out in order and the member answers them in order: up to
 *    SC_LINK_FLIGHTS_MAX are in flight, each answer due SC_IO_TIMEOUT after
 *    its frame (else the connection is dropped and what was under way is
 *    sent again on the next one). The link thread waits in poll() for
 *    answers and for work. A change somebody waits for (ack, sync) is sent
 *    by the thread that hands it over (clusterd's dispatcher) when the link
 *    is connected, idle and its connection free at that instant, without
 *    waiting for the socket; the link thread then wakes once, for the
 *    answer. Otherwise, and for async changes, the link thread sends.
 *  - Changes to replicate are queued as jobs and sent in order. The jobs
 *    queued while the previous frame was under way go out together as one
 *    BATCH frame (one TLS write, at most SC_LINK_BATCH_BYTES unless one job
 *    is larger), answered by one BATCH_APPLIED (a status per change, sent
 *    once they are applied, so it also says they were received). A job
 *    belongs to an sc_batch (one change sent to several members) that
 *    reports to its creator as members answer and once every one has
 *    answered or failed. A peer that lacks the base of a delta gets the
 *    whole session instead (a SESSION frame, answered by ACK then APPLIED).
 *    Async jobs wait up to SC_LINK_LINGER for others before they go, unless
 *    a job somebody waits for is queued meanwhile.
 *  - A question (FETCH, from a fetch thread) goes ahead of the queued
 *    changes and travels alone; its one answer frame goes back to the asker.
 *  - The queue is bounded in changes and bytes; a change that does not fit
 *    is not queued (counted in the member's slot, one warning per interval)
 *    and, once the queue has drained, the member is asked to pull this
 *    node's sessions (MERGE_REQ), so what it missed reaches it. Jobs for a
 *    down member fail.
 */
#ifndef SC_LINK_H
#define SC_LINK_H

#include <apr_thread_proc.h>
#include <apr_thread_mutex.h>
#include <apr_thread_cond.h>

#include <httpd.h>

#include "sc_node.h"

#define SC_PING_EVERY      apr_time_from_msec(500)
#define SC_DROP_AFTER      apr_time_from_msec(3000)
#define SC_IO_TIMEOUT      apr_time_from_msec(1000)
/* a link's queue holds at most this many changes (and
 * ClusterLinkQueueSize bytes) */
#define SC_LINK_QUEUE_MAX   65536
/* changes queued meanwhile go out together, up to this many bytes a frame */
#define SC_LINK_BATCH_BYTES (256 * 1024)
/* frames sent to a member whose answers have not come back yet, at most */
#define SC_LINK_FLIGHTS_MAX 64
/* async changes (nobody waits for them) wait this long at most in clusterd
 * for others to travel with: one wake-up and one frame serve them all */
#define SC_LINK_LINGER      apr_time_from_msec(2)

typedef struct sc_batch sc_batch;
typedef struct sc_link sc_link;

/* How a batch's change is doing: `peers` members asked, `confirmed` of them
 * answered as the batch wants; `final` once every one has answered or
 * failed. Called from the link threads (and the creator's). */
typedef void (*sc_batch_report)(void *baton, apr_uint64_t tag, int peers,
                                int confirmed, int final);

/* A change for `n` links, reported to `report`. The creator queues it to
 * each link or skips it, then releases it: nothing is final before that. */
sc_batch *sc_batch_create(int want_type, int n, sc_batch_report report,
                          void *baton, apr_uint64_t tag);
/* One of the n jobs was never queued (its member is down). */
void sc_batch_skip(sc_batch *b);
void sc_batch_release(sc_batch *b);

/* The session a change (type, payload) is about, as this node holds it now,
 * whole: what a member that lacked a delta's base is sent instead. The
 * link's creator knows how (sc_apply_current); the link only carries it. */
typedef apr_status_t (*sc_link_whole_fn)(sc_node *node, int type,
                                         const char *payload, apr_size_t len,
                                         apr_pool_t *p, int *out_type,
                                         const char **out, apr_size_t *out_len);

sc_link *sc_link_create(sc_node *node, server_rec *s, const sc_member *m,
                        sc_member_state *slot, sc_link_whole_fn whole,
                        apr_pool_t *p);
apr_status_t sc_link_start(sc_link *l, apr_pool_t *p);
int sc_link_up(const sc_link *l);
/* The member just proved it is alive (it connected to us and authenticated,
 * or sent a frame): mark it up now, so changes made from here on are queued
 * for it even before this link reconnects; unless this link is refused for
 * its configuration (see above). */
void sc_link_heard(sc_link *l);
const char *sc_link_route(const sc_link *l);
const sc_member *sc_link_member(const sc_link *l);
/* Every change and question handed to this link has been answered or
 * given up (none queued, under way or waiting to be sent again). */
int sc_link_settled(sc_link *l);
/* up/down transitions of the member so far (a flap between two looks) */
apr_uint32_t sc_link_changes(const sc_link *l);

/* Queue one frame for the member (payload copied). b may be NULL (async);
 * with a b the frame may go out before this returns (never waiting for the
 * member). */
apr_status_t sc_link_send(sc_link *l, sc_batch *b, int type,
                          const char *payload, apr_size_t len);

/* Ask the member a question (a FETCH) over this link's connection, ahead
 * of the changes queued for it (not of a batch under way), and wait at most `wait` for its one answer
 * frame (copied into p). APR_ECONNREFUSED: the member is down; APR_TIMEUP:
 * no answer in time; APR_ECONNABORTED: the connection failed first (a
 * question is not asked again). Any thread but the link's own. */
apr_status_t sc_link_ask(sc_link *l, int type, const char *payload,
                         apr_size_t len, apr_interval_time_t wait,
                         apr_pool_t *p, int *answer_type,
                         const char **answer, apr_size_t *answer_len);

#endif
