/* sc_mcast.c - multicast heartbeats and learnt members (see sc_mcast.h). */
#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "sc_module.h"
#include "sc_mcast.h"
#include "sc_ratelog.h"
#include "sc_heartbeat.h"

APLOG_USE_MODULE(session_cluster);

/* what a heartbeat carries fits the shared member table */
typedef char sc_listen_fits[SC_HB_LISTEN_MAX == SC_LISTEN_TEXT_MAX ? 1 : -1];


typedef enum {
    SC_IGNORE_UNREADABLE, SC_IGNORE_REPLAY, SC_IGNORE_MANAGER, SC_IGNORE_ROUTE,
    SC_IGNORE_NOT_LOOPBACK, SC_IGNORE_FULL, SC_IGNORE_ADDRESS, SC_IGNORE_KINDS
} sc_ignore;

typedef struct {
    sc_node *node;
    server_rec *s;
    apr_sockaddr_t *group;
    sc_heartbeat_sender sender;
    const unsigned char (*keys)[SC_KEY_BYTES];  /* NULL: unsealed (none) */
    int nkeys;
    apr_uint64_t epoch;
    apr_uint64_t stamp;
    sc_mcast_add_fn add;
    void *baton;
    sc_ratelog *quiet;          /* a flood of bad datagrams is one line */
} sc_mcast;

int sc_mcast_silent(const sc_node *node, const sc_member_state *slot,
                    apr_time_t now)
{
    const sc_multicast *mc = node->conf->multicast;
    return mc && slot->heard && now - slot->heard > mc->droptime;
}

/* One line per kind of ignored datagram at most every SC_RATELOG_EVERY,
 * with how many were ignored silently since. */
static void ignored(sc_mcast *mc, sc_ignore kind, apr_sockaddr_t *from,
                    const char *what)
{
    apr_uint32_t held;
    char *ip = NULL;

    if (!sc_ratelog_due(mc->quiet, kind, apr_time_now(), &held))
        return;
    apr_sockaddr_ip_get(&ip, from);
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, mc->s, "clusterd: heartbeat from "
                 "%s ignored: %s (%u ignored for this reason since this line was "
                 "last written; it is written at most every %" APR_TIME_T_FMT " s)",
                 ip ? ip : "?", what, held + 1, apr_time_sec(SC_RATELOG_EVERY));
}

/* A member first heard: fill the next slot, publish it, then link it. */
static void learn(sc_mcast *mc, const sc_heartbeat *hb, apr_sockaddr_t *from,
                  apr_pool_t *p)
{
    sc_cluster_state *st = mc->node->state;
    int i = sc_node_slot_count(mc->node);
    sc_member_state *slot;

    sc_addr addr;

    if (i >= SC_MAX_MEMBERS) {
        ignored(mc, SC_IGNORE_FULL, from, apr_psprintf(p, "member %s is one more "
                "than the %d a cluster can have", hb->route, SC_MAX_MEMBERS));
        return;
    }
    if (sc_addr_parse(p, hb->listen, &addr) != APR_SUCCESS) {
        ignored(mc, SC_IGNORE_UNREADABLE, from, apr_psprintf(p, "member %s "
                "announces '%s', not a host:port", hb->route, hb->listen));
        return;
    }
    if (mc->node->keys->none && !sc_addr_is_loopback(p, &addr)) {
        ignored(mc, SC_IGNORE_NOT_LOOPBACK, from, apr_psprintf(p, "member %s at "
                "%s: with ClusterSecretFile none only loopback members are "
                "accepted", hb->route, hb->listen));
        return;
    }
    slot = &st->members[i];
    memset(slot, 0, sizeof(*slot));
    apr_cpystrn(slot->route, hb->route, sizeof(slot->route));
    apr_cpystrn(slot->addr, hb->listen, sizeof(slot->addr));
    slot->learnt = 1;
    slot->epoch = hb->epoch;
    slot->stamp = hb->stamp;
    slot->heard = apr_time_now();
    apr_atomic_set32(&st->slots, (apr_uint32_t)i + 1);
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, mc->s, "clusterd: member %s (%s) "
                 "heard by multicast", slot->route, slot->addr);
    if (mc->add(mc->baton, i) != APR_SUCCESS)
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, mc->s, "clusterd: cannot start a "
                     "link to member %s", slot->route);
}

static void heard(sc_mcast *mc, const sc_heartbeat *hb, apr_sockaddr_t *from,
                  apr_pool_t *p)
{
    sc_node *node = mc->node;
    sc_member_state *slot;
    int i;

    if (!strcmp(hb->route, node->conf->route)) {
        if (strcmp(hb->listen, node->conf->listen.text) || hb->epoch != mc->epoch)
            ignored(mc, SC_IGNORE_ROUTE, from, apr_psprintf(p, "another node (%s) "
                    "uses this node's route %s", hb->listen, hb->route));
        return;                         /* our own, looped back */
    }
    if (hb->manager != (int)node->conf->manager) {
        ignored(mc, SC_IGNORE_MANAGER, from, apr_psprintf(p, "member %s runs "
                "ClusterManager %s, this node %s", hb->route,
                sc_manager_name((sc_manager_e)hb->manager),
                sc_manager_name(node->conf->manager)));
        return;
    }
    if ((i = sc_node_slot_of(node, hb->route)) < 0) {
        learn(mc, hb, from, p);
        return;
    }
    slot = sc_node_slot(node, i);
    if (strcmp(slot->addr, hb->listen)) {
        ignored(mc, SC_IGNORE_ADDRESS, from, apr_psprintf(p, "member %s announces "
                "%s but is known at %s (until httpd is stopped and started)",
                hb->route, hb->listen, slot->addr));
        return;
    }
    if (hb->epoch < slot->epoch
        || (hb->epoch == slot->epoch && hb->stamp <= slot->stamp)) {
        ignored(mc, SC_IGNORE_REPLAY, from, apr_psprintf(p, "an old heartbeat of "
                "member %s (replayed or reordered)", hb->route));
        return;
    }
    if (hb->epoch != slot->epoch && slot->epoch)
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, mc->s, "clusterd: heartbeat: "
                     "member %s started anew (a new incarnation)", hb->route);
    slot->stamp = hb->stamp;
    slot->epoch = hb->epoch;
    slot->heard = apr_time_now();
}

static void *APR_THREAD_FUNC receiver_main(apr_thread_t *t, void *arg)
{
    sc_mcast *mc = arg;
    apr_pool_t *p;
    (void)t;

    apr_pool_create(&p, NULL);
    for (;;) {
        char buf[SC_HB_MAX + 1];
        apr_size_t len = sizeof(buf);
        apr_sockaddr_t *from;
        sc_heartbeat hb;
        const char *why;
        apr_status_t rv;

        apr_pool_clear(p);
        if (apr_sockaddr_info_get(&from, NULL, mc->group->family, 0, 0, p)
            != APR_SUCCESS) {
            apr_sleep(apr_time_from_msec(100));
            continue;
        }
        rv = apr_socket_recvfrom(from, mc->node->mcast, 0, buf, &len);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, mc->s, "clusterd: no "
                         "heartbeat read");
            apr_sleep(apr_time_from_msec(100));
            continue;
        }
        if (len > SC_HB_MAX)
            ignored(mc, SC_IGNORE_UNREADABLE, from, "oversized datagram");
        else if ((rv = sc_heartbeat_open(mc->keys, mc->nkeys, buf, len, p, &hb,
                                         &why)) != APR_SUCCESS)
            ignored(mc, SC_IGNORE_UNREADABLE, from, why);
        else
            heard(mc, &hb, from, p);
    }
    return NULL;
}

static void *APR_THREAD_FUNC sender_main(apr_thread_t *t, void *arg)
{
    sc_mcast *mc = arg;
    sc_node *node = mc->node;
    apr_pool_t *p;
    (void)t;

    apr_pool_create(&p, NULL);
    for (;;) {
        apr_uint64_t now = (apr_uint64_t)apr_time_now();
        sc_heartbeat hb = { node->conf->route, node->conf->listen.text, mc->epoch,
                            0, (int)node->conf->manager, node->state->ready != 0 };
        apr_size_t len;
        char *out;
        apr_status_t rv;

        /* strictly growing, also if the clock steps back: it is the nonce */
        mc->stamp = hb.stamp = now > mc->stamp ? now : mc->stamp + 1;
        apr_pool_clear(p);
        rv = sc_heartbeat_seal(&mc->sender, &hb, p, &out, &len);
        if (rv == APR_SUCCESS)
            rv = apr_socket_sendto(node->mcast, mc->group, 0, out, &len);
        if (rv != APR_SUCCESS)
            ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, mc->s, "clusterd: heartbeat "
                         "not sent to %s", node->conf->multicast->group.text);
        apr_sleep(node->conf->multicast->frequency);
    }
    return NULL;
}

apr_status_t sc_mcast_start(sc_node *node, server_rec *s, sc_mcast_add_fn add,
                            void *baton, apr_pool_t *p)
{
    sc_mcast *mc = apr_pcalloc(p, sizeof(*mc));
    const sc_multicast *conf = node->conf->multicast;
    apr_thread_t *t;
    apr_status_t rv;

    mc->node = node;
    mc->s = s;
    mc->add = add;
    mc->baton = baton;
    mc->epoch = (apr_uint64_t)node->created;
    mc->keys = sc_node_heartbeat_keys(node, &mc->nkeys);
    if ((rv = sc_ratelog_create(&mc->quiet, SC_IGNORE_KINDS, SC_RATELOG_EVERY, p))
        != APR_SUCCESS)
        return rv;
    if ((rv = sc_heartbeat_sender_init(&mc->sender, mc->keys ? mc->keys[0] : NULL))
        != APR_SUCCESS
        || (rv = apr_sockaddr_info_get(&mc->group, conf->group.host, APR_UNSPEC,
                                       conf->group.port, 0, p)) != APR_SUCCESS
        || (rv = apr_thread_create(&t, NULL, receiver_main, mc, p)) != APR_SUCCESS
        || (rv = apr_thread_create(&t, NULL, sender_main, mc, p)) != APR_SUCCESS)
        return rv;
    return APR_SUCCESS;
}
