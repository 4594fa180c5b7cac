/* sc_node.h - this node at run time: the retained store and its locks.
 *
 * Contract:
 *  - The shared-memory segment and its striped mutexes are created once, by
 *    the first real post_config, and kept with ap_retained_data for every later
 *    generation: sessions survive graceful (and plain) restarts. A changed
 *    ClusterStoreSize takes effect only after httpd is stopped and started.
 *  - sc_node_child_init() attaches a child; from then sc_node_get() gives the
 *    store handle. sc_node_get() is NULL when the cluster is not configured.
 *  - Also kept: the ClusterListen socket (bound once, so restarting clusterd
 *    never re-binds), a small shared table of member states, and the
 *    children's channel to clusterd (sc_chan).
 */
#ifndef SC_NODE_H
#define SC_NODE_H

#include <httpd.h>

#include "sc_chan.h"
#include "sc_config.h"
#include "sc_keys.h"
#include "sc_manager.h"
#include "sc_store.h"
#include "sc_tls.h"

#define SC_MUTEX_TYPE      "session-cluster"
#define SC_TOMBSTONE_TTL   apr_time_from_sec(300)
/* sessions without SessionMaxAge expire after this much inactivity */
#define SC_IDLE_TIMEOUT    apr_time_from_sec(30 * 60)
#define SC_SWEEP_EVERY     apr_time_from_sec(5)
/* a copy from a member whose expiry is at most SessionClusterNewSessionTTL
 * (plus this, for the time it travelled) away counts as new (sc_apply) */
#define SC_NEW_SESSION_SLACK apr_time_from_sec(2)

/* Why a member is down, when something more than silence is known: what
 * `Member: <route> <addr> down <reason>` shows (sc_node_reason_name). */
typedef enum {
    SC_REASON_NONE = 0,
    SC_REASON_UNREACHABLE,      /* refused or reset: nothing listens */
    SC_REASON_SILENT,           /* stopped answering */
    SC_REASON_AUTH,             /* did not prove the cluster key / certificate */
    SC_REASON_MANAGER,          /* another ClusterManager */
    SC_REASON_ROUTE,            /* another node answers at its address */
    SC_REASON_HEARTBEAT,        /* its multicast heartbeats stopped */
    SC_REASON_MAX_
} sc_reason;

/* What clusterd knows of one member, shared with the children (clusterd
 * writes, children and the status page read). Slots 0..n-1 are the
 * ClusterMember lines in order; members heard by multicast take the next
 * free slots (written by clusterd's multicast thread only, published by
 * bumping sc_cluster_state.slots last). */
typedef struct {
    char route[SC_ROUTE_MAX];           /* the member this slot describes */
    char addr[SC_LISTEN_TEXT_MAX];             /* its ClusterListen, host:port */
    apr_uint32_t learnt;                /* heard by multicast, not configured */
    volatile apr_uint64_t epoch;        /* its incarnation (multicast) */
    volatile apr_uint64_t stamp;        /* last heartbeat stamp accepted */
    volatile apr_int64_t heard;         /* last heartbeat (apr_time_t) */
    volatile apr_uint32_t up;
    volatile apr_uint32_t changes;      /* up/down transitions seen */
    volatile apr_int64_t last_seen;     /* last answer from it (apr_time_t) */
    volatile apr_int64_t rtt;           /* last ping round trip (usec) */
    volatile apr_uint32_t reason;       /* sc_reason while down */
    /* its link's queue (clusterd writes): changes and bytes waiting, and
     * changes not queued because the queue was full */
    volatile apr_uint32_t queue_jobs;
    volatile apr_uint64_t queue_bytes;
    volatile apr_uint32_t queue_dropped;
    volatile apr_uint32_t batches;      /* frames that carried several */
} sc_member_state;

/* Ids given up for new ones (sc_node_rotated_*): a ring, newest last. */
#define SC_ROTATED_MAX   256
/* a request that began before its session's id was rotated still saves into
 * the session under its new id for this long */
#define SC_ROTATE_GRACE  apr_time_from_sec(60)
typedef struct {
    volatile apr_uint32_t seq;          /* odd while being written */
    char old_id[SC_ID_MAX];
    char new_id[SC_ID_MAX];
    apr_time_t at;
} sc_rotated;

typedef struct {
    volatile apr_uint32_t clusterd_pid;
    volatile apr_uint32_t clusterd_starts;   /* 1 + respawns */
    volatile apr_uint32_t clusterd_beat;     /* apr_time_sec() of its last
                                                sign of life, every second */
    /* 1 once this store holds the cluster's sessions (state transfer done,
     * or nobody to ask); kept across generations like the store itself */
    volatile apr_uint32_t ready;
    volatile apr_uint32_t transferred;       /* sessions received on joining */
    volatile apr_uint32_t backup_turn;       /* round-robin backup choice */
    volatile apr_uint32_t slots;             /* members[] in use */
    /* session traffic (SESSION, DELTA, INVALIDATE frames; no pings) */
    volatile apr_uint64_t changes_out, change_bytes_out;
    volatile apr_uint64_t changes_in, change_bytes_in;
    volatile apr_uint32_t peer_accepts;      /* connections on ClusterListen */
    volatile apr_uint32_t rotations;         /* ids rotated here */
    volatile apr_uint32_t fetch_questions;   /* FETCHes asked of members */
    /* backup manager: primaries stored here without a backup (a take-over
     * avoids the primary it replaces, which may be the only member left);
     * clusterd's watch loop gives them one when it sees this move */
    volatile apr_uint32_t unbacked_writes;
    volatile apr_uint32_t placement_passes;  /* passes clusterd made */
    /* the member table's up/down changes clusterd has acted on (the sum of
     * the slots' `changes` it last saw): the status page shows how many it
     * has not yet (MemberChangesPending) */
    volatile apr_uint32_t changes_acted;
    sc_rotated rotated[SC_ROTATED_MAX];
    sc_member_state members[SC_MAX_MEMBERS];
} sc_cluster_state;

typedef struct {
    sc_server_conf *conf;
    server_rec *s;              /* the main server: where node events log */
    sc_store *store;            /* NULL until attached in a child */
    apr_time_t created;         /* when the segment was first made */
    sc_cluster_state *state;    /* shared; NULL when not configured */
    apr_socket_t *listener;     /* ClusterListen, opened once by the parent */
    apr_socket_t *mcast;        /* ClusterMulticast socket, opened once; NULL
                                   without multicast */
    const sc_keys *keys;        /* the cluster's keys (`none` when not
                                   clustered: nobody can link anyway) */
    sc_tls *tls;                /* TLS context for member links */
    sc_chan *chan;              /* the children's channel to clusterd; NULL
                                   until attached */
    int peers;                  /* members other than self there may be:
                                   configured ones, or any with multicast */
} sc_node;

void sc_node_pre_config(apr_pool_t *pconf);

/* Bind ClusterListen (and join ClusterMulticast) once for the life of
 * httpd; called from the first post_config pass too, while `apachectl
 * start` still has its terminal, so a busy port fails the start there. */
int sc_node_open_sockets(server_rec *s);
int sc_node_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);

/* Attach this process (a child or clusterd) to the store. */
void sc_node_child_init(apr_pool_t *pchild, server_rec *s);

sc_node *sc_node_get(void);

/* Run the expiry sweep if it is due (one process per interval does it), or
 * `force` it (e.g. before refusing a write for lack of room). */
void sc_node_sweep(sc_node *node, server_rec *s, int force);

/* Store pressure: below SC_PRESSURE_EVICT_BELOW percent of blocks free,
 * new sessions that never came back are evicted (oldest first) until
 * SC_PRESSURE_EVICT_UNTIL percent are free; one "store pressure" line per
 * SC_RATELOG_EVERY for the whole node, with figures. Cheap when there is
 * room (one atomic read): called before every write that may need room, in
 * children and in clusterd. `force`: the store just refused a write. */
#define SC_PRESSURE_EVICT_BELOW 10
#define SC_PRESSURE_EVICT_UNTIL 20
void sc_node_relieve(sc_node *node, server_rec *s, int force);

/* A write refused by a full store: one error line per SC_RATELOG_EVERY for
 * the whole node, saying what was refused and how often. */
void sc_node_store_full(sc_node *node, server_rec *s, const char *what);

int sc_node_is_self(const sc_node *node, const sc_member *m);

/* This node gave up session id `old_id` for `new_id` at `at` (id rotation):
 * remembered in a small shared ring, so a request that began before (and
 * still holds the old id) saves into the new one. Lock-free: a slot being
 * rewritten is skipped by readers. */
void sc_node_rotated_put(sc_node *node, const char *old_id, const char *new_id,
                         apr_time_t at);
/* 1 and the new id in new_id (SC_ID_MAX bytes) when old_id was rotated here
 * at or after `since`, within SC_ROTATE_GRACE. */
int sc_node_rotated_get(sc_node *node, const char *old_id, apr_time_t since,
                        char *new_id);

/* The shared member table: slots in use, one slot, the slot of a route
 * (-1 when it is not a member). */
int sc_node_slot_count(const sc_node *node);
sc_member_state *sc_node_slot(const sc_node *node, int i);
int sc_node_slot_of(const sc_node *node, const char *route);

/* The manager ClusterManager names, and what its rules may know of this
 * node now (its route, the members and whether each is up, the shared
 * round-robin counter). */
const sc_manager *sc_node_manager(const sc_node *node);
void sc_node_mgr_ctx(const sc_node *node, sc_mgr_ctx *c);

/* A session this process just stored: when its manager wants a placement
 * pass for it (a primary left without a backup), clusterd's watch loop is
 * told (unbacked_writes). Counted after the write, so a pass that ran
 * between the decision and the write is not taken for one that saw it. */
void sc_node_stored(const sc_node *node, const sc_mgr_ctx *c,
                    const sc_session *s);

/* Ready to serve the cluster's sessions: state received, and clusterd alive
 * (a node whose clusterd is dead, hung, or gone with its parent must not be
 * sent sessions: its changes would reach nobody). */
int sc_node_ready(const sc_node *node);

/* "auth-failed" etc.; "" for SC_REASON_NONE. */
const char *sc_node_reason_name(apr_uint32_t reason);

/* The heartbeat keys of this node, and how many: NULL / 0 with
 * `ClusterSecretFile none` (heartbeats go unsealed). */
const unsigned char (*sc_node_heartbeat_keys(const sc_node *node, int *n))[SC_KEY_BYTES];

#endif
