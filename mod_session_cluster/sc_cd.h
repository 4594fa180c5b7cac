/* sc_cd.h - clusterd's own header: the daemon's state, and what its parts
 * call of each other. Included by clusterd's files only, all of which run in
 * the clusterd process (never in an httpd child or the parent, but for
 * sc_clusterd.c's lifecycle section):
 *
 *   sc_clusterd.c   lifecycle: the parent forks and respawns clusterd; the
 *                   process starts its links and threads, runs the watch
 *                   loop on its main thread, and stops in order
 *   sc_cd_peers.c   inbound peers: the acceptor thread (a gate per source
 *                   address), one thread per member connection, its frames
 *                   applied and answered
 *   sc_cd_chan.c    the children's side: the dispatcher thread takes their
 *                   changes from the channel and queues them on the links;
 *                   fetch threads bring sessions here for them
 *   sc_cd_watch.c   the main thread's work: joining (state transfer),
 *                   members dropping and joining as the manager says
 *                   (placement passes, merges), primaries without a backup
 *
 * Contract: links are published once and never removed (sc_cd_link_count
 * only grows); everything else shared between threads is atomic or owned by
 * one thread, as each field says.
 */
#ifndef SC_CD_H
#define SC_CD_H

#include <apr_atomic.h>
#include <apr_thread_pool.h>

#include <httpd.h>

#include "sc_gate.h"
#include "sc_link.h"
#include "sc_misses.h"
#include "sc_node.h"
#include "sc_peer.h"
#include "sc_ratelog.h"

/* merges with members back from down, at once */
#define SC_MAX_RESYNC SC_MAX_MEMBERS
/* fetches for the children under way at once (more wait their turn) */
#define SC_MAX_FETCHES 16
/* how often the main thread looks at members, and the dispatcher idles */
#define SC_WATCH_EVERY apr_time_from_msec(100)
/* a member connection with nothing to say for this long is closed */
#define SC_PEER_IDLE apr_time_from_sec(10)
/* what the peers part logs beyond sc_peer_fail: the gate said no */
#define SC_REFUSED_BUSY SC_PEER_FAILS_

/* What the watch loop last saw of one link. */
typedef struct {
    int up;
    apr_uint32_t changes;
} sc_cd_seen;

typedef struct {
    sc_node *node;
    server_rec *s;
    volatile apr_uint32_t inbound;      /* member connections open */
    /* one link per other member: configured ones first, then the ones
     * multicast makes known (appended by its receiver thread, published by
     * the count, never removed) */
    sc_link *links[SC_MAX_MEMBERS];
    volatile apr_uint32_t nlinks;
    volatile apr_uint32_t resyncing[SC_MAX_MEMBERS];   /* a pull under way */
    apr_pool_t *learnt_pool;            /* the receiver thread's, for links */
    apr_time_t started;
    apr_threadattr_t *detached;         /* one thread per peer connection */
    apr_thread_pool_t *resync_tasks;    /* merges with members back up */
    apr_thread_pool_t *fetch_tasks;     /* fetches for the children */
    sc_gate *gate;                      /* handshakes per source address */
    int gate_told;                      /* member slots the gate knows
                                           (acceptor thread) */
    sc_ratelog *refusals;               /* one line per kind of refusal */
    sc_ratelog *misses;                 /* fetches that found nothing */
    sc_misses *nowhere;                 /* ids recently found nowhere */
    volatile apr_uint32_t dispatching;  /* 0 once the dispatcher stopped */
    /* main thread only: */
    sc_cd_seen seen[SC_MAX_MEMBERS];
    apr_uint32_t unbacked_seen;         /* the node's unbacked_writes when
                                           the last placement pass began */
} sc_daemon;

static APR_INLINE int sc_cd_link_count(sc_daemon *d)
{
    return (int)apr_atomic_read32(&d->nlinks);
}

static APR_INLINE sc_link *sc_cd_link_at(sc_daemon *d, int i)
{
    return d->links[i];
}

/* sc_clusterd.c: an EMERG line when a thread (or what it needs) could not
 * be started; returns rv. */
apr_status_t sc_cd_thread_check(sc_daemon *d, apr_status_t rv);

/* sc_cd_peers.c: the acceptor thread. */
void *APR_THREAD_FUNC sc_cd_acceptor_main(apr_thread_t *t, void *arg);

/* sc_cd_chan.c: the dispatcher thread; the link to a member (NULL when
 * none); a session this node just placed, to its members. */
void *APR_THREAD_FUNC sc_cd_dispatcher_main(apr_thread_t *t, void *arg);
sc_link *sc_cd_link_to(sc_daemon *d, const char *route);
void sc_cd_replicate_placement(sc_daemon *d, const sc_session *s, apr_pool_t *p);

/* sc_cd_watch.c (main thread): join the cluster (state transfer before
 * ready); the watch loop's first step and every next one; a merge with
 * member i on a task thread (any thread may ask). */
int sc_cd_any_member_up(sc_daemon *d);
void sc_cd_join(sc_daemon *d, apr_pool_t *p);
void sc_cd_watch_start(sc_daemon *d, apr_pool_t *p);
void sc_cd_watch(sc_daemon *d, apr_pool_t *p);
void sc_cd_resync_with(sc_daemon *d, int i, int ask_back);

#endif
