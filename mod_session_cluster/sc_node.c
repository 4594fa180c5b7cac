/* sc_node.c - the retained store and this process's handle on it. */
#include <unistd.h>

#include <apr_atomic.h>
#include <apr_shm.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <util_mutex.h>
#include <ap_mpm.h>

#include "sc_module.h"
#include "sc_node.h"
#include "sc_ratelog.h"

APLOG_USE_MODULE(session_cluster);

#define SC_RETAINED_KEY "mod_session_cluster-store"

/* Lives in the parent across generations (ap_retained_data). */
typedef struct {
    int ready;
    apr_shm_t *shm;
    apr_size_t bytes;
    apr_time_t created;
    apr_global_mutex_t *locks[SC_STORE_LOCKS];
    apr_shm_t *state_shm;
    apr_shm_t *chan_shm;                /* children -> clusterd (sc_chan) */
    apr_global_mutex_t *chan_lock;      /* its producers' lock */
    apr_socket_t *listener;
    const char *listen_text;            /* what the listener is bound to */
    apr_socket_t *mcast;
    const char *mcast_text;             /* group:port it is bound to */
} sc_retained;

static sc_retained *sc_kept;
static sc_node sc_this;
static int sc_active;

void sc_node_pre_config(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, SC_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
}

/* The children's channel to clusterd: anonymous shared memory, so only
 * processes forked from this parent ever map it (a CGI is exec'd). */
static apr_status_t create_chan(sc_retained *kept, server_rec *s)
{
    apr_pool_t *lifetime = s->process->pool;
    apr_status_t rv;

    if ((rv = apr_shm_create(&kept->chan_shm, sc_chan_bytes(), NULL, lifetime))
        != APR_SUCCESS
        || (rv = sc_chan_format(apr_shm_baseaddr_get(kept->chan_shm),
                                apr_shm_size_get(kept->chan_shm))) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_session_cluster: "
                     "cannot create the %" APR_SIZE_T_FMT "-byte channel to "
                     "clusterd", sc_chan_bytes());
        return rv;
    }
    rv = ap_global_mutex_create(&kept->chan_lock, NULL, SC_MUTEX_TYPE, "chan", s,
                                lifetime, 0);
    if (rv != APR_SUCCESS)
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_session_cluster: "
                     "cannot create the channel's mutex");
    return rv;
}

static apr_status_t create_store(sc_retained *kept, apr_size_t bytes,
                                 server_rec *s)
{
    apr_pool_t *lifetime = s->process->pool;
    apr_status_t rv;
    int i;

    rv = apr_shm_create(&kept->shm, bytes, NULL, lifetime);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_session_cluster: "
                     "cannot create a %" APR_SIZE_T_FMT "-byte shared memory "
                     "store", bytes);
        return rv;
    }
    kept->bytes = apr_shm_size_get(kept->shm);
    if ((rv = sc_store_format(apr_shm_baseaddr_get(kept->shm), kept->bytes))
        != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_session_cluster: "
                     "cannot lay out the store");
        return rv;
    }
    for (i = 0; i < SC_STORE_LOCKS; i++) {
        rv = ap_global_mutex_create(&kept->locks[i], NULL, SC_MUTEX_TYPE,
                                    apr_psprintf(lifetime, "%d", i), s,
                                    lifetime, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_session_cluster: "
                         "cannot create store mutex %d", i);
            return rv;
        }
    }
    rv = apr_shm_create(&kept->state_shm, sizeof(sc_cluster_state), NULL,
                        lifetime);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_session_cluster: "
                     "cannot create the shared member table");
        return rv;
    }
    if ((rv = create_chan(kept, s)) != APR_SUCCESS)
        return rv;
    kept->created = apr_time_now();
    kept->ready = 1;
    return APR_SUCCESS;
}

/* Bind ClusterListen once for the life of httpd: clusterd restarts and
 * graceful restarts inherit the socket instead of re-binding it. */
static apr_status_t open_listener(sc_retained *kept, const sc_addr *addr,
                                  server_rec *s)
{
    apr_pool_t *lifetime = s->process->pool;
    apr_sockaddr_t *sa;
    apr_socket_t *sock;
    apr_status_t rv;

    if (kept->listener) {
        if (strcmp(kept->listen_text, addr->text))
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "mod_session_cluster: "
                         "ClusterListen changed to %s; still listening on %s until "
                         "httpd is stopped and started", addr->text,
                         kept->listen_text);
        return APR_SUCCESS;
    }
    if ((rv = apr_sockaddr_info_get(&sa, addr->host, APR_UNSPEC, addr->port, 0,
                                    lifetime)) != APR_SUCCESS
        || (rv = apr_socket_create(&sock, sa->family, SOCK_STREAM, APR_PROTO_TCP,
                                   lifetime)) != APR_SUCCESS
        || (rv = apr_socket_opt_set(sock, APR_SO_REUSEADDR, 1)) != APR_SUCCESS
        || (rv = apr_socket_bind(sock, sa)) != APR_SUCCESS
        || (rv = apr_socket_listen(sock, SOMAXCONN)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_session_cluster: "
                     "cannot listen on ClusterListen %s", addr->text);
        return rv;
    }
    kept->listener = sock;
    kept->listen_text = apr_pstrdup(lifetime, addr->text);
    return APR_SUCCESS;
}

/* Join ClusterMulticast once for the life of httpd, like the listener.
 * Bound to the group address itself, so only that group's datagrams arrive
 * (not other groups on the same port, nor unicast); loopback is on, so the
 * nodes of one host hear each other. */
static apr_status_t open_multicast(sc_retained *kept, const sc_multicast *mc,
                                   server_rec *s)
{
    apr_pool_t *lifetime = s->process->pool;
    apr_sockaddr_t *group, *iface = NULL;
    apr_socket_t *sock;
    apr_status_t rv;

    if (kept->mcast) {
        if (strcmp(kept->mcast_text, mc->group.text))
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "mod_session_cluster: "
                         "ClusterMulticast changed to %s; still on %s until httpd "
                         "is stopped and started", mc->group.text, kept->mcast_text);
        return APR_SUCCESS;
    }
    if ((rv = apr_sockaddr_info_get(&group, mc->group.host, APR_UNSPEC,
                                    mc->group.port, 0, lifetime)) != APR_SUCCESS
        || (mc->interface
            && (rv = apr_sockaddr_info_get(&iface, mc->interface, group->family, 0,
                                           0, lifetime)) != APR_SUCCESS)
        || (rv = apr_socket_create(&sock, group->family, SOCK_DGRAM, APR_PROTO_UDP,
                                   lifetime)) != APR_SUCCESS
        || (rv = apr_socket_opt_set(sock, APR_SO_REUSEADDR, 1)) != APR_SUCCESS
        || (rv = apr_socket_bind(sock, group)) != APR_SUCCESS
        || (rv = apr_mcast_join(sock, group, iface, NULL)) != APR_SUCCESS
        || (rv = apr_mcast_hops(sock, (apr_byte_t)mc->ttl)) != APR_SUCCESS
        || (rv = apr_mcast_loopback(sock, 1)) != APR_SUCCESS
        || (iface && (rv = apr_mcast_interface(sock, iface)) != APR_SUCCESS)) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_session_cluster: "
                     "cannot join ClusterMulticast %s%s%s (the host needs a route "
                     "for 224.0.0.0/4 and a multicast-capable interface; "
                     "interface= picks one)", mc->group.text,
                     mc->interface ? " on " : "", mc->interface ? mc->interface : "");
        return rv;
    }
    kept->mcast = sock;
    kept->mcast_text = apr_pstrdup(lifetime, mc->group.text);
    return APR_SUCCESS;
}

/* The keys and the TLS context of this generation. A node without other
 * members still gets a context (under the well-known `none` key): its
 * listener then refuses every peer as not a member. Certificates and keys
 * are read here, by the parent, before any process drops privileges. */
static apr_status_t setup_security(sc_server_conf *conf, apr_pool_t *pconf,
                                   server_rec *s)
{
    sc_tls_conf tc = { NULL, conf->cert_file, conf->cert_key_file, conf->ca_file };
    sc_keys *keys = conf->keys;
    const char *why = NULL;
    apr_status_t rv;

    if (!keys) {
        keys = apr_pcalloc(pconf, sizeof(*keys));
        if ((rv = sc_keys_none(keys)) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_session_cluster: "
                         "cannot derive keys (OpenSSL)");
            return rv;
        }
    }
    tc.keys = keys;
    if ((rv = sc_tls_create(&sc_this.tls, &tc, pconf, &why)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, "mod_session_cluster: %s", why);
        return rv;
    }
    sc_this.keys = keys;
    if (conf->keys && conf->keys->none && sc_config_clustered(conf))
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "mod_session_cluster: "
                     "ClusterSecretFile none: members are NOT authenticated and "
                     "their traffic is readable by any local user; only loopback "
                     "is allowed. For experiments only: use a key file");
    else if (sc_config_clustered(conf))
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "mod_session_cluster: member "
                     "links are TLS 1.3 authenticated by %s", conf->cert_file
                     ? apr_psprintf(pconf, "certificate %s", conf->cert_file)
                     : apr_psprintf(pconf, "cluster key %s", sc_keys_ids(keys,
                                                                         pconf)));
    return APR_SUCCESS;
}

/* Members keep their state across a graceful restart (so saves made while
 * the new clusterd starts still go to them); a slot whose member changed
 * starts from scratch. Members heard by multicast stay while multicast is
 * on. Returns how many other members there may be. */
static int init_slots(const sc_server_conf *conf)
{
    sc_cluster_state *st = sc_this.state;
    int i, n = conf->members->nelts, peers = 0, used = n;

    for (i = 0; i < SC_MAX_MEMBERS; i++) {
        sc_member_state *slot = &st->members[i];
        const sc_member *m = i < n ? &APR_ARRAY_IDX(conf->members, i, sc_member)
                                   : NULL;
        if (!m && conf->multicast && i < (int)st->slots && slot->learnt
            && sc_node_slot_of(&sc_this, slot->route) == i) {
            used = i + 1;                   /* learnt, and still unique */
            continue;
        }
        if (!m || strcmp(slot->route, m->route) || slot->learnt) {
            memset(slot, 0, sizeof(*slot));
            if (m)
                apr_cpystrn(slot->route, m->route, sizeof(slot->route));
        }
        if (m) {
            apr_cpystrn(slot->addr, m->addr.text, sizeof(slot->addr));
            peers += !sc_node_is_self(&sc_this, m);
        }
    }
    st->slots = (apr_uint32_t)used;
    return conf->multicast ? SC_MAX_MEMBERS : peers;
}

static sc_retained *retained(void)
{
    sc_retained *kept = ap_retained_data_get(SC_RETAINED_KEY);
    return kept ? kept : ap_retained_data_create(SC_RETAINED_KEY, sizeof(*kept));
}

int sc_node_open_sockets(server_rec *s)
{
    sc_server_conf *conf = sc_config_server(s);
    sc_retained *kept;

    if (!sc_config_active(conf))
        return OK;
    kept = retained();
    if (open_listener(kept, &conf->listen, s) != APR_SUCCESS
        || (conf->multicast && open_multicast(kept, conf->multicast, s)
                               != APR_SUCCESS))
        return !OK;
    return OK;
}

int sc_node_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    sc_server_conf *conf = sc_config_server(s);
    sc_store_stats stats;
    sc_store *probe;

    sc_this.conf = conf;
    sc_this.s = s;
    sc_this.store = NULL;
    sc_this.chan = NULL;
    sc_this.state = NULL;
    sc_active = sc_config_active(conf);
    if (!sc_active)
        return OK;

    sc_kept = retained();
    if (!sc_kept->ready) {
        if (create_store(sc_kept, conf->store_bytes, s) != APR_SUCCESS)
            return !OK;
        if (sc_store_attach(&probe, apr_shm_baseaddr_get(sc_kept->shm),
                            sc_kept->bytes, sc_kept->locks, ptemp) != APR_SUCCESS)
            return !OK;
        sc_store_stats_get(probe, &stats);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "mod_session_cluster: "
                     "route %s, %s manager, store of %" APR_SIZE_T_FMT " bytes "
                     "(%u blocks of %d) created", conf->route,
                     sc_manager_name(conf->manager), sc_kept->bytes,
                     stats.blocks_total, SC_STORE_BLOCK);
    }
    else {
        if (conf->store_bytes != sc_kept->bytes)
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "mod_session_cluster: "
                         "ClusterStoreSize changed to %" APR_SIZE_T_FMT " bytes; "
                         "the running store keeps %" APR_SIZE_T_FMT " until httpd "
                         "is stopped and started", conf->store_bytes,
                         sc_kept->bytes);
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "mod_session_cluster: "
                     "route %s keeps its store across the restart", conf->route);
    }
    if (!sc_kept->listener || (conf->multicast && !sc_kept->mcast)) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "mod_session_cluster: the "
                     "cluster sockets were not opened");
        return !OK;
    }
    if (setup_security(conf, pconf, s) != APR_SUCCESS)
        return !OK;
    sc_this.created = sc_kept->created;
    sc_this.listener = sc_kept->listener;
    sc_this.state = apr_shm_baseaddr_get(sc_kept->state_shm);
    sc_this.mcast = conf->multicast ? sc_kept->mcast : NULL;
    sc_this.peers = init_slots(conf);
    if (!sc_this.peers)
        sc_this.state->ready = 1;
    return OK;
}

void sc_node_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_global_mutex_t *locks[SC_STORE_LOCKS], *chan_lock;
    apr_status_t rv;
    int i;

    if (!sc_active || !sc_kept || !sc_kept->ready)
        return;
    for (i = 0; i < SC_STORE_LOCKS; i++) {
        locks[i] = sc_kept->locks[i];
        rv = apr_global_mutex_child_init(&locks[i],
                                         apr_global_mutex_lockfile(locks[i]),
                                         pchild);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "mod_session_cluster: "
                         "cannot attach store mutex %d in child", i);
            return;
        }
    }
    chan_lock = sc_kept->chan_lock;
    if ((rv = apr_global_mutex_child_init(&chan_lock,
                                          apr_global_mutex_lockfile(chan_lock),
                                          pchild)) != APR_SUCCESS
        || (rv = sc_chan_attach(&sc_this.chan, apr_shm_baseaddr_get(sc_kept->chan_shm),
                                apr_shm_size_get(sc_kept->chan_shm), chan_lock,
                                pchild)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "mod_session_cluster: "
                     "cannot attach the channel to clusterd in child");
        return;
    }
    rv = sc_store_attach(&sc_this.store, apr_shm_baseaddr_get(sc_kept->shm),
                         sc_kept->bytes, locks, pchild);
    if (rv != APR_SUCCESS)
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "mod_session_cluster: "
                     "cannot attach the store in child");
}

sc_node *sc_node_get(void)
{
    return sc_active ? &sc_this : NULL;
}

void sc_node_sweep(sc_node *node, server_rec *s, int force)
{
    apr_time_t now = apr_time_now();
    sc_sweep_result res;
    apr_status_t rv;

    /* forced (a write found no room): at most once a second, so a full
     * store under a flood is not swept once per refused request */
    if (force ? !sc_store_due(node->store, SC_STORE_DUE_FORCED_SWEEP, now,
                              apr_time_from_sec(1))
              : !sc_store_sweep_due(node->store, now, SC_SWEEP_EVERY))
        return;
    rv = sc_store_sweep(node->store, now, SC_TOMBSTONE_TTL, &res);
    if (rv != APR_SUCCESS)
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "mod_session_cluster: "
                     "store sweep failed");
    else if (res.expired || res.dropped || res.reclaimed || res.new_expired)
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "mod_session_cluster: "
                     "sweep expired %u sessions, dropped %u tombstones and %u "
                     "new sessions that never came back, reclaimed %u blocks "
                     "left by dead writers", res.expired, res.dropped,
                     res.new_expired, res.reclaimed);
}

static apr_uint32_t percent_of(apr_uint32_t total, int percent)
{
    return (apr_uint32_t)((apr_uint64_t)total * (apr_uint64_t)percent / 100);
}

void sc_node_relieve(sc_node *node, server_rec *s, int force)
{
    apr_time_t now = apr_time_now();
    sc_store_stats st;
    apr_uint32_t evicted = 0;
    apr_pool_t *p;
    apr_status_t rv;

    sc_store_stats_get(node->store, &st);
    if (!force && st.blocks_free >= percent_of(st.blocks_total, SC_PRESSURE_EVICT_BELOW))
        return;
    if (apr_pool_create(&p, NULL) != APR_SUCCESS)
        return;
    apr_pool_tag(p, "sc_relieve");
    rv = sc_store_evict_new(node->store, now,
                            percent_of(st.blocks_total, SC_PRESSURE_EVICT_UNTIL),
                            p, &evicted);
    apr_pool_destroy(p);
    if (rv != APR_SUCCESS && rv != APR_EBUSY)
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, "mod_session_cluster: "
                     "store pressure: eviction failed");
    if (!sc_store_due(node->store, SC_STORE_DUE_PRESSURE, now, SC_RATELOG_EVERY))
        return;
    sc_store_stats_get(node->store, &st);
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "mod_session_cluster: store "
                 "pressure: %u of %u blocks free, %u sessions; %u new sessions "
                 "that never came back evicted and %u expired in the last %d s "
                 "(sessions that came back are never evicted; "
                 "SessionClusterNewSessionTTL %d s)", st.blocks_free,
                 st.blocks_total, st.sessions,
                 sc_store_since(node->store, SC_STORE_SEEN_EVICTED, st.evicted),
                 sc_store_since(node->store, SC_STORE_SEEN_NEW_EXPIRED, st.new_expired),
                 (int)apr_time_sec(SC_RATELOG_EVERY),
                 (int)apr_time_sec(node->conf->new_session_ttl));
}

void sc_node_store_full(sc_node *node, server_rec *s, const char *what)
{
    sc_store_stats st;

    if (!sc_store_due(node->store, SC_STORE_DUE_FULL, apr_time_now(), SC_RATELOG_EVERY))
        return;
    sc_store_stats_get(node->store, &st);
    ap_log_error(APLOG_MARK, APLOG_ERR, APR_ENOSPC, s, "mod_session_cluster: "
                 "session store full: %s refused (%u writes refused in the last "
                 "%d s; %u of %u blocks free, %u sessions, %u tombstones); "
                 "raise ClusterStoreSize", what,
                 sc_store_since(node->store, SC_STORE_SEEN_REFUSED, st.refused),
                 (int)apr_time_sec(SC_RATELOG_EVERY), st.blocks_free,
                 st.blocks_total, st.sessions, st.tombstones);
}

void sc_node_rotated_put(sc_node *node, const char *old_id, const char *new_id,
                         apr_time_t at)
{
    apr_uint32_t n = apr_atomic_inc32(&node->state->rotations);
    sc_rotated *e = &node->state->rotated[n % SC_ROTATED_MAX];

    apr_atomic_inc32(&e->seq);              /* odd: readers skip it */
    apr_cpystrn(e->old_id, old_id, SC_ID_MAX);
    apr_cpystrn(e->new_id, new_id, SC_ID_MAX);
    e->at = at;
    apr_atomic_inc32(&e->seq);              /* even again: complete */
}

int sc_node_rotated_get(sc_node *node, const char *old_id, apr_time_t since,
                        char *new_id)
{
    apr_time_t now = apr_time_now();
    int i;

    for (i = 0; i < SC_ROTATED_MAX; i++) {
        sc_rotated *e = &node->state->rotated[i], copy;
        apr_uint32_t seq = apr_atomic_read32(&e->seq);
        if (seq & 1)
            continue;
        memcpy(&copy, e, sizeof(copy));
        if (apr_atomic_read32(&e->seq) != seq)
            continue;                       /* rewritten meanwhile */
        copy.old_id[SC_ID_MAX - 1] = copy.new_id[SC_ID_MAX - 1] = '\0';
        if (!strcmp(copy.old_id, old_id) && copy.at >= since
            && now - copy.at <= SC_ROTATE_GRACE) {
            memcpy(new_id, copy.new_id, SC_ID_MAX);
            return 1;
        }
    }
    return 0;
}

int sc_node_is_self(const sc_node *node, const sc_member *m)
{
    return !strcmp(m->route, node->conf->route);
}

int sc_node_slot_count(const sc_node *node)
{
    apr_uint32_t n = node->state->slots;
    return n > SC_MAX_MEMBERS ? SC_MAX_MEMBERS : (int)n;
}

sc_member_state *sc_node_slot(const sc_node *node, int i)
{
    return &node->state->members[i];
}

int sc_node_slot_of(const sc_node *node, const char *route)
{
    int i, n = sc_node_slot_count(node);
    if (!route || !*route)
        return -1;                      /* never a freed slot */
    for (i = 0; i < n; i++)
        if (!strcmp(node->state->members[i].route, route))
            return i;
    return -1;
}

const sc_manager *sc_node_manager(const sc_node *node)
{
    return sc_manager_get(node->conf->manager);
}

void sc_node_mgr_ctx(const sc_node *node, sc_mgr_ctx *c)
{
    int i, slots = sc_node_slot_count(node);

    c->self = node->conf->route;
    c->turn = &node->state->backup_turn;
    c->n = 0;
    for (i = 0; i < slots && c->n < SC_MAX_MEMBERS; i++) {
        const sc_member_state *m = sc_node_slot(node, i);
        if (!*m->route || !strcmp(m->route, c->self))
            continue;
        c->members[c->n].route = m->route;
        c->members[c->n].up = m->up != 0;
        c->n++;
    }
}

void sc_node_stored(const sc_node *node, const sc_mgr_ctx *c,
                    const sc_session *s)
{
    if (sc_node_manager(node)->unplaced(c, s))
        apr_atomic_inc32(&node->state->unbacked_writes);
}

/* clusterd beats every second; three missed beats mean it is gone */
#define SC_BEAT_STALE 3

int sc_node_ready(const sc_node *node)
{
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now());
    if (!node->state->ready)
        return 0;
    return !node->peers || now - node->state->clusterd_beat <= SC_BEAT_STALE;
}

const char *sc_node_reason_name(apr_uint32_t reason)
{
    static const char *const names[SC_REASON_MAX_] = {
        "", "unreachable", "silent", "auth-failed", "manager-mismatch",
        "wrong-route", "no-heartbeat"
    };
    return reason < SC_REASON_MAX_ ? names[reason] : "";
}

const unsigned char (*sc_node_heartbeat_keys(const sc_node *node, int *n))[SC_KEY_BYTES]
{
    if (!node->keys || node->keys->none) {
        *n = 0;
        return NULL;
    }
    *n = node->keys->n;
    return (const unsigned char (*)[SC_KEY_BYTES])node->keys->heartbeat;
}
