/* sc_node.h - this node at run time: the retained store and its locks.
 *
 * Contract:
 *  - The shared-memory segment and its striped mutexes are created once, by
 *    the first real post_config, and kept with ap_retained_data for every later
 *    generation: sessions survive graceful (and plain) restarts. A changed
 *    ClusterStoreSize takes effect only after httpd is stopped and started.
 *  - sc_node_child_init() attaches a child; from then sc_node_get() gives the
 *    store handle. sc_node_get() is NULL when the cluster is not configured.
 *  - Members: until membership exists (next milestone) only self is "up".
 */
#ifndef SC_NODE_H
#define SC_NODE_H

#include <httpd.h>

#include "sc_config.h"
#include "sc_store.h"

#define SC_MUTEX_TYPE      "session-cluster"
#define SC_TOMBSTONE_TTL   apr_time_from_sec(300)
#define SC_SWEEP_EVERY     apr_time_from_sec(5)

typedef struct {
    sc_server_conf *conf;
    sc_store *store;            /* NULL until attached in a child */
    apr_time_t created;         /* when the segment was first made */
} sc_node;

void sc_node_pre_config(apr_pool_t *pconf);
int sc_node_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
void sc_node_child_init(apr_pool_t *pchild, server_rec *s);

sc_node *sc_node_get(void);

/* Run the expiry sweep if it is due (one process per interval does it), or
 * `force` it (e.g. before refusing a write for lack of room). */
void sc_node_sweep(sc_node *node, server_rec *s, int force);

int sc_node_member_up(const sc_node *node, const sc_member *m);

#endif
