/* sc_manager.h - the session manager: every decision in which the delta and
 * the backup manager differ, as a table of functions (the shape of mod_md's
 * md_store_t) over a narrow context.
 *
 * Contract:
 *  - Callers ask, then act: the provider (httpd children) on create, load
 *    and save, clusterd's watch loop on members dropping and joining, state
 *    transfer, and the status page. None of them tests which manager runs;
 *    a new manager (the observer of DESIGN.md section 9) is a new sc_mgr_*.c
 *    file and a line in sc_manager.c.
 *  - The rules are pure: they read the context (this node's route, the
 *    members and whether each is up, a round-robin counter) and the session
 *    handed in, and write only what they are given. No store, socket, pool
 *    or log: test/unit/test_manager.c checks them without httpd.
 *  - sc_mgr_place() is the one place a rule meets the store: it applies
 *    take_over as a conditional write, retried on the version it lost to.
 *  - Runs in httpd children and in clusterd alike; a function whose name
 *    says c1/clusterd is only called there.
 */
#ifndef SC_MANAGER_H
#define SC_MANAGER_H

#include <apr_pools.h>

#include "sc_limits.h"
#include "sc_store.h"

/* One other member, as the manager sees it. */
typedef struct {
    const char *route;
    int up;
} sc_mgr_member;

/* What a rule may know. Built per decision (sc_node_mgr_ctx), cheap: the
 * members are pointers into the shared member table. */
typedef struct {
    const char *self;                       /* this node's route */
    sc_mgr_member members[SC_MAX_MEMBERS];  /* in member order */
    int n;
    volatile apr_uint32_t *turn;            /* round-robin counter shared by
                                               this node's processes */
} sc_mgr_ctx;

/* What a placement pass carries from one session to the next. */
typedef struct {
    const char *joined;         /* the member that came up; NULL after a drop
                                   or at start */
    int share;                  /* it gets every share-th backup of each
                                   member holding backups of ours (0: none) */
    /* this node's primaries seen so far in the pass, per backup: the index
     * of the backup in the context's members, SC_MAX_MEMBERS for none */
    apr_uint32_t seen[SC_MAX_MEMBERS + 1];
} sc_mgr_pass;

/* This node's role for a stored entry (status page counts). */
typedef enum { SC_ROLE_PRIMARY, SC_ROLE_BACKUP, SC_ROLE_PROXY } sc_mgr_role;

/* What clusterd does when a member's link changed (bits). */
#define SC_MGR_RESYNC        0x1   /* merge with it: pull, and have it pull */
#define SC_MGR_PLACE_DROPPED 0x2   /* a pass as after a drop: take over and
                                      re-back what it held */
#define SC_MGR_PLACE_JOINED  0x4   /* a pass giving it its share of backups */

typedef struct sc_manager sc_manager;
struct sc_manager {
    const char *name;                       /* as ClusterManager spells it */

    /* -- data flow ------------------------------------------------------ */
    /* 1: a session's placement travels with it (LOCATION to the members
     * that hold no data); state transfer sends locations, not records */
    int locations;
    /* 1: the route in the cookie moves to this node when it loads a session
     * (it takes the session over); 0: when it saves one */
    int rehome_at_load;
    /* Where a change of a session with this backup goes: "" every member
     * up, else one route (`self`, this node's, when nobody holds a copy).
     * It needs no member table: asked on every save, it gets none. */
    const char *(*data_target)(const char *self, const char *backup);

    /* -- httpd children: create, load, save ---------------------------- */
    /* A new session (or a new id for one): its backup, into `backup`
     * (SC_ROUTE_MAX bytes); `keep` the one to keep if still up, or NULL. */
    void (*place_new)(const sc_mgr_ctx *c, const char *keep, char *backup);
    /* A request brought a cookie: must this node take the session over
     * first? found: the store held an entry (s) for it; member: the
     * cookie's route is this node or a member. */
    int (*needs_claim)(const sc_mgr_ctx *c, int found, const sc_session *s,
                       int member);
    /* Take-over rule: make this node primary of `cur` with a usable
     * backup (`want` when given and up); *out is cur placed so. 1 when that
     * changes owner or backup, 0 when it is placed like that already. */
    int (*take_over)(const sc_mgr_ctx *c, const sc_session *cur,
                     const char *want, sc_session *out);
    /* A save of `cur` here (*out a copy of it, with the new data): sets
     * out's owner (and backup) as the manager wants them; 1 when the
     * placement changed (the save then travels whole, with its location). */
    int (*on_save)(const sc_mgr_ctx *c, const sc_session *cur,
                   sc_session *out);
    /* 1 when a session stored here as `s` needs a placement pass (clusterd
     * runs one while a member is up): a primary left without a backup. */
    int (*unplaced)(const sc_mgr_ctx *c, const sc_session *s);

    /* -- clusterd: members and placement passes ------------------------ */
    /* SC_MGR_* bits for a member that came up (`up`), went down, or came
     * back as a new incarnation (`restarted`); and once at start (route
     * NULL, up 0). */
    int (*on_member)(const sc_mgr_ctx *c, const char *route, int up,
                     int restarted);
    /* One session of a placement pass (`pass` zeroed but for joined and
     * share by the caller): 1 to place it (take it over, or give it
     * `*want` as backup, NULL for any). */
    int (*pass_one)(const sc_mgr_ctx *c, sc_mgr_pass *pass,
                    const sc_session *s, const char **want);

    /* -- the status page ------------------------------------------------ */
    /* 1: the page walks the store for roles and placement (?sessions) */
    int walks_roles;
    sc_mgr_role (*role)(const sc_mgr_ctx *c, const sc_session *s);
};

extern const sc_manager sc_mgr_delta;
extern const sc_manager sc_mgr_backup;

/* The manager ClusterManager named (sc_config's sc_manager_e). */
const sc_manager *sc_manager_get(int kind);

/* route is another member, and up */
int sc_mgr_up(const sc_mgr_ctx *c, const char *route);
/* route is this node or a member */
int sc_mgr_member_known(const sc_mgr_ctx *c, const char *route);

/* Apply take_over to session `id` in `store` as a conditional write,
 * retried when another writer got in first. *out: the session as stored;
 * *moved: 1 when a new version was written. APR_NOTFOUND when this node
 * holds no data for it (absent, tombstone, proxy, expired). */
apr_status_t sc_mgr_place(const sc_manager *m, const sc_mgr_ctx *c,
                          sc_store *store, const char *id, const char *want,
                          apr_pool_t *p, sc_session *out, int *moved);

#endif
