/* sc_config.c - directives and their validation (see sc_config.h). */
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_network_io.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "sc_module.h"
#include "sc_config.h"
#include "sc_id.h"

APLOG_USE_MODULE(session_cluster);

#define SC_DEFAULT_STORE      (32 * 1024 * 1024)
#define SC_MIN_STORE          (1024 * 1024)
#define SC_MAX_STORE          (4096ULL * 1024 * 1024)
/* a link's queue must hold the largest change */
#define SC_DEFAULT_LINK_QUEUE (64 * 1024 * 1024)
#define SC_MIN_LINK_QUEUE     (2 * 1024 * 1024)
#define SC_MAX_LINK_QUEUE     (1024 * 1024 * 1024)
/* seconds: a new session's life until its client comes back with it */
#define SC_DEFAULT_NEW_SESSION_TTL 60
#define SC_MIN_NEW_SESSION_TTL     5
#define SC_MAX_NEW_SESSION_TTL     3600
/* how to make a key, in every message that asks for one */
#define SC_KEY_HOWTO "make one with: openssl rand -base64 32 > /etc/apache2/" \
    "cluster.key; chmod 600 /etc/apache2/cluster.key (the same file on every node)"

/* Set by "SessionCluster On" anywhere in this generation's config. */
static int sc_session_cluster_on;

void sc_config_reset(void) { sc_session_cluster_on = 0; }

sc_server_conf *sc_config_server(server_rec *s)
{
    return ap_get_module_config(s->module_config, &session_cluster_module);
}

sc_dir_conf *sc_config_dir(request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &session_cluster_module);
}

const char *sc_manager_name(sc_manager_e m)
{
    return m == SC_MANAGER_BACKUP ? "backup" : m == SC_MANAGER_DELTA ? "delta"
           : "unknown";
}

const char *sc_send_mode_name(sc_send_mode_e m)
{
    return m == SC_SEND_ASYNC ? "async" : m == SC_SEND_SYNC ? "sync" : "ack";
}

void *sc_config_create_server(apr_pool_t *p, server_rec *s)
{
    sc_server_conf *conf = apr_pcalloc(p, sizeof(*conf));
    (void)s;
    conf->manager = SC_MANAGER_DELTA;
    conf->members = apr_array_make(p, 4, sizeof(sc_member));
    conf->send_mode = SC_SEND_ACK;
    conf->store_bytes = SC_DEFAULT_STORE;
    conf->link_queue_bytes = SC_DEFAULT_LINK_QUEUE;
    conf->transfer_timeout = apr_time_from_sec(60);
    conf->new_session_ttl = apr_time_from_sec(SC_DEFAULT_NEW_SESSION_TTL);
    return conf;
}

void *sc_config_create_dir(apr_pool_t *p, char *dir)
{
    sc_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));
    (void)dir;
    conf->enabled = -1;
    return conf;
}

void *sc_config_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    sc_dir_conf *base = basev, *add = addv, *conf = apr_pcalloc(p, sizeof(*conf));
    conf->enabled = add->enabled != -1 ? add->enabled : base->enabled;
    conf->cookie_name = add->cookie_name ? add->cookie_name : base->cookie_name;
    conf->cookie_attrs = add->cookie_name ? add->cookie_attrs : base->cookie_attrs;
    return conf;
}

/* ---- value parsers -------------------------------------------------------- */

/* Server-scope directives: main server only, and mark the node configured. */
static sc_server_conf *node_conf(cmd_parms *cmd, const char **err)
{
    *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    if (*err)
        return NULL;
    sc_server_conf *conf = sc_config_server(cmd->server);
    conf->configured = 1;
    return conf;
}

apr_status_t sc_addr_parse(apr_pool_t *p, const char *text, sc_addr *out)
{
    char *host = NULL, *scope = NULL;
    apr_port_t port = 0;

    if (apr_parse_addr_port(&host, &scope, &port, text, p) != APR_SUCCESS
        || !host || scope || port == 0)
        return APR_EINVAL;
    out->host = host;
    out->port = port;
    out->text = apr_pstrdup(p, text);
    return APR_SUCCESS;
}

static const char *parse_addr(cmd_parms *cmd, const char *arg, sc_addr *out)
{
    if (sc_addr_parse(cmd->pool, arg, out) != APR_SUCCESS)
        return apr_psprintf(cmd->pool, "%s: '%s' is not a valid host:port",
                            cmd->cmd->name, arg);
    return NULL;
}

/* Whole number in [min, max]. */
static const char *parse_long(cmd_parms *cmd, const char *what, const char *arg,
                              long min, long max, long *out)
{
    char *end;
    apr_int64_t v = apr_strtoi64(arg, &end, 10);

    if (!*arg || *end || v < min || v > max)
        return apr_psprintf(cmd->pool, "%s: %s '%s' must be a whole number "
                            "from %ld to %ld", cmd->cmd->name, what, arg, min, max);
    *out = (long)v;
    return NULL;
}

static const char *set_route(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err;
    sc_server_conf *conf = node_conf(cmd, &err);
    (void)dconf;
    if (err)
        return err;
    if (!sc_route_valid(arg))
        return apr_psprintf(cmd->pool, "ClusterRoute: '%s' is not a valid route "
                            "(1-%d of A-Z a-z 0-9 - _)", arg, SC_ROUTE_LEN_MAX);
    conf->route = arg;
    return NULL;
}

static const char *set_listen(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err;
    sc_server_conf *conf = node_conf(cmd, &err);
    (void)dconf;
    return err ? err : parse_addr(cmd, arg, &conf->listen);
}

static const char *set_manager(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err;
    sc_server_conf *conf = node_conf(cmd, &err);
    (void)dconf;
    if (err)
        return err;
    if (!strcasecmp(arg, "delta"))
        conf->manager = SC_MANAGER_DELTA;
    else if (!strcasecmp(arg, "backup"))
        conf->manager = SC_MANAGER_BACKUP;
    else
        return apr_psprintf(cmd->pool, "ClusterManager must be 'delta' or "
                            "'backup', not '%s'", arg);
    return NULL;
}

static const char *add_member(cmd_parms *cmd, void *dconf, const char *route,
                              const char *addr)
{
    const char *err;
    sc_server_conf *conf = node_conf(cmd, &err);
    sc_member *m;
    int i;
    (void)dconf;

    if (err)
        return err;
    if (!sc_route_valid(route))
        return apr_psprintf(cmd->pool, "ClusterMember: '%s' is not a valid route",
                            route);
    for (i = 0; i < conf->members->nelts; i++) {
        const sc_member *o = &APR_ARRAY_IDX(conf->members, i, sc_member);
        if (!strcmp(o->route, route))
            return apr_psprintf(cmd->pool, "ClusterMember: route '%s' is listed "
                                "twice", route);
        if (!strcasecmp(o->addr.text, addr))
            return apr_psprintf(cmd->pool, "ClusterMember: address '%s' is "
                                "listed twice (routes '%s' and '%s')",
                                addr, o->route, route);
    }
    if (conf->members->nelts >= SC_MAX_MEMBERS)
        return apr_psprintf(cmd->pool, "ClusterMember: at most %d members",
                            SC_MAX_MEMBERS);
    m = apr_array_push(conf->members);
    m->route = route;
    return parse_addr(cmd, addr, &m->addr);
}

static int is_multicast_group(apr_pool_t *p, const sc_addr *a)
{
    apr_sockaddr_t *sa;
    if (apr_sockaddr_info_get(&sa, a->host, APR_UNSPEC, a->port, APR_IPV4_ADDR_OK,
                              p) != APR_SUCCESS)
        return 0;
    if (sa->family == APR_INET) {
        apr_uint32_t ip = ntohl(sa->sa.sin.sin_addr.s_addr);
        return (ip >> 28) == 0xE;
    }
#if APR_HAVE_IPV6
    if (sa->family == APR_INET6)
        return sa->sa.sin6.sin6_addr.s6_addr[0] == 0xff;
#endif
    return 0;
}

static const char *multicast_option(cmd_parms *cmd, sc_multicast *mc,
                                    const char *opt)
{
    const char *eq = ap_strchr_c(opt, '=');
    const char *key = eq ? apr_pstrmemdup(cmd->pool, opt, eq - opt) : opt;
    const char *val = eq ? eq + 1 : "";
    long v;
    const char *err;

    if (!strcasecmp(key, "interface")) {
        apr_sockaddr_t *sa;
        if (!*val || apr_sockaddr_info_get(&sa, val, APR_UNSPEC, 0, 0, cmd->pool)
                     != APR_SUCCESS)
            return apr_psprintf(cmd->pool, "ClusterMulticast: interface '%s' is "
                                "not an address", val);
        mc->interface = val;
        return NULL;
    }
    if (!strcasecmp(key, "ttl")) {
        err = parse_long(cmd, "ttl", val, 0, 255, &v);
        mc->ttl = (int)v;
        return err;
    }
    if (!strcasecmp(key, "frequency")) {
        err = parse_long(cmd, "frequency", val, 50, 60000, &v);
        mc->frequency = apr_time_from_msec(v);
        return err;
    }
    if (!strcasecmp(key, "droptime")) {
        err = parse_long(cmd, "droptime", val, 100, 600000, &v);
        mc->droptime = apr_time_from_msec(v);
        return err;
    }
    return apr_psprintf(cmd->pool, "ClusterMulticast: unknown option '%s' "
                        "(interface=, ttl=, frequency=, droptime=)", opt);
}

static const char *set_multicast(cmd_parms *cmd, void *dconf, int argc,
                                 char *const argv[])
{
    const char *err;
    sc_server_conf *conf = node_conf(cmd, &err);
    sc_multicast *mc;
    int i;
    (void)dconf;

    if (err)
        return err;
    if (argc < 1)
        return "ClusterMulticast needs <group:port> [interface=IP] [ttl=N] "
               "[frequency=ms] [droptime=ms]";
    mc = apr_pcalloc(cmd->pool, sizeof(*mc));
    mc->ttl = 1;
    mc->frequency = apr_time_from_msec(500);
    mc->droptime = apr_time_from_msec(3000);
    if ((err = parse_addr(cmd, argv[0], &mc->group)) != NULL)
        return err;
    if (!is_multicast_group(cmd->pool, &mc->group))
        return apr_psprintf(cmd->pool, "ClusterMulticast: '%s' is not a multicast "
                            "group (224.0.0.0/4 or ff00::/8)", argv[0]);
    for (i = 1; i < argc; i++) {
        if ((err = multicast_option(cmd, mc, argv[i])) != NULL)
            return err;
    }
    if (mc->droptime <= mc->frequency)
        return apr_psprintf(cmd->pool, "ClusterMulticast: droptime (%" APR_TIME_T_FMT
                            " ms) must be longer than frequency (%" APR_TIME_T_FMT
                            " ms)", apr_time_as_msec(mc->droptime),
                            apr_time_as_msec(mc->frequency));
    conf->multicast = mc;
    return NULL;
}

static const char *set_send_mode(cmd_parms *cmd, void *dconf, const char *arg,
                                 const char *opt)
{
    const char *err;
    sc_server_conf *conf = node_conf(cmd, &err);
    (void)dconf;
    if (err)
        return err;
    if (!strcasecmp(arg, "async"))
        conf->send_mode = SC_SEND_ASYNC;
    else if (!strcasecmp(arg, "ack"))
        conf->send_mode = SC_SEND_ACK;
    else if (!strcasecmp(arg, "sync"))
        conf->send_mode = SC_SEND_SYNC;
    else
        return apr_psprintf(cmd->pool, "ClusterSendMode must be async, ack or "
                            "sync, not '%s'", arg);
    conf->send_strict = 0;
    if (opt && strcasecmp(opt, "strict"))
        return apr_psprintf(cmd->pool, "ClusterSendMode %s: unknown option '%s' "
                            "(strict)", arg, opt);
    if (opt && conf->send_mode == SC_SEND_ASYNC)
        return "ClusterSendMode async strict: async never waits for a member, so "
               "it cannot be strict (use ack strict or sync strict)";
    conf->send_strict = opt != NULL;
    return NULL;
}

/* ClusterSecretFile <path> [<older path>] | none: read and checked now. */
static const char *set_secret_file(cmd_parms *cmd, void *dconf, const char *arg,
                                   const char *older)
{
    const char *err, *paths[SC_KEYS_MAX] = { arg, older };
    sc_server_conf *conf = node_conf(cmd, &err);
    sc_keys *keys;
    int i;
    (void)dconf;

    if (err)
        return err;
    keys = apr_pcalloc(cmd->pool, sizeof(*keys));
    if (!strcasecmp(arg, "none")) {
        if (older)
            return "ClusterSecretFile none takes no second file";
        if (sc_keys_none(keys) != APR_SUCCESS)
            return "ClusterSecretFile: cannot derive keys (OpenSSL)";
        conf->keys = keys;
        conf->secret_file = "none";
        return NULL;
    }
    for (i = 0; i < SC_KEYS_MAX && paths[i]; i++) {
        const char *path = ap_server_root_relative(cmd->pool, paths[i]), *why;
        if (!path)
            return apr_psprintf(cmd->pool, "ClusterSecretFile: bad path '%s'",
                                paths[i]);
        if (sc_keys_add_file(keys, i, path, cmd->pool, &why) != APR_SUCCESS)
            return apr_psprintf(cmd->pool, "ClusterSecretFile: '%s' %s; %s", path,
                                why, SC_KEY_HOWTO);
    }
    conf->keys = keys;
    conf->secret_file = ap_server_root_relative(cmd->pool, arg);
    return NULL;
}

/* ClusterCertificateFile and friends: a readable file, loaded at start. */
static const char *set_cert_path(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err, *path;
    sc_server_conf *conf = node_conf(cmd, &err);
    apr_finfo_t fi;
    (void)dconf;

    if (err)
        return err;
    path = ap_server_root_relative(cmd->pool, arg);
    if (!path || apr_stat(&fi, path, APR_FINFO_TYPE, cmd->pool) != APR_SUCCESS
        || fi.filetype != APR_REG)
        return apr_psprintf(cmd->pool, "%s: '%s' is not a readable file",
                            cmd->cmd->name, arg);
    if (cmd->info == (void *)0)
        conf->cert_file = path;
    else if (cmd->info == (void *)1)
        conf->cert_key_file = path;
    else
        conf->ca_file = path;
    return NULL;
}

/* "64M", "512K", "1G" or plain bytes, within [min, max] ("range" says it
 * in words): the one parser of every size directive. */
static const char *parse_size(cmd_parms *cmd, const char *arg, apr_uint64_t min,
                              apr_uint64_t max, const char *range,
                              apr_size_t *out)
{
    char *end;
    apr_uint64_t v, mult = 1;

    v = (apr_uint64_t)apr_strtoi64(arg, &end, 10);
    if (*end && !end[1]) {
        switch (apr_toupper(*end)) {
        case 'K': mult = 1024; end++; break;
        case 'M': mult = 1024 * 1024; end++; break;
        case 'G': mult = 1024 * 1024 * 1024; end++; break;
        }
    }
    if (!apr_isdigit(*arg) || *end)
        return apr_psprintf(cmd->pool, "%s: '%s' is not a size (use e.g. 64M, "
                            "512K or 1G)", cmd->cmd->name, arg);
    v *= mult;
    if (v < min || v > max)
        return apr_psprintf(cmd->pool, "%s: '%s' is out of range (%s)",
                            cmd->cmd->name, arg, range);
    *out = (apr_size_t)v;
    return NULL;
}

static const char *set_store_size(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err;
    sc_server_conf *conf = node_conf(cmd, &err);
    (void)dconf;

    return err ? err : parse_size(cmd, arg, SC_MIN_STORE, SC_MAX_STORE, "1M to 4G",
                                  &conf->store_bytes);
}

static const char *set_link_queue_size(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err;
    sc_server_conf *conf = node_conf(cmd, &err);
    (void)dconf;

    return err ? err : parse_size(cmd, arg, SC_MIN_LINK_QUEUE, SC_MAX_LINK_QUEUE,
                                  "2M to 1G", &conf->link_queue_bytes);
}

static const char *set_transfer_timeout(cmd_parms *cmd, void *dconf,
                                        const char *arg)
{
    const char *err;
    sc_server_conf *conf = node_conf(cmd, &err);
    long v;
    (void)dconf;
    if (err)
        return err;
    if ((err = parse_long(cmd, "seconds", arg, 1, 3600, &v)) != NULL)
        return err;
    conf->transfer_timeout = apr_time_from_sec(v);
    return NULL;
}

static const char *set_new_session_ttl(cmd_parms *cmd, void *dconf,
                                       const char *arg)
{
    const char *err;
    sc_server_conf *conf = node_conf(cmd, &err);
    long v;
    (void)dconf;
    if (err)
        return err;
    if ((err = parse_long(cmd, "seconds", arg, SC_MIN_NEW_SESSION_TTL,
                          SC_MAX_NEW_SESSION_TTL, &v)) != NULL)
        return err;
    conf->new_session_ttl = apr_time_from_sec(v);
    return NULL;
}

static const char *set_session_cluster(cmd_parms *cmd, void *dconfv, int on)
{
    sc_dir_conf *dconf = dconfv;
    (void)cmd;
    dconf->enabled = on;
    if (on)
        sc_session_cluster_on = 1;
    return NULL;
}

static int is_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++) {
        if (!apr_isalnum(*s) && !ap_strchr_c("!#$%&'*+-.^_`|~", *s))
            return 0;
    }
    return 1;
}

static const char *set_cookie_name(cmd_parms *cmd, void *dconfv,
                                   const char *name, const char *attrs)
{
    sc_dir_conf *dconf = dconfv;
    if (!is_token(name))
        return apr_psprintf(cmd->pool, "SessionClusterCookieName: '%s' is not a "
                            "valid cookie name", name);
    if (attrs && (ap_strchr_c(attrs, '\r') || ap_strchr_c(attrs, '\n')))
        return "SessionClusterCookieName: attributes must be on one line";
    dconf->cookie_name = name;
    dconf->cookie_attrs = attrs;
    return NULL;
}

const command_rec sc_directives[] = {
    AP_INIT_TAKE1("ClusterRoute", set_route, NULL, RSRC_CONF,
                  "this node's route (jvmRoute), as BalancerMember route= names it"),
    AP_INIT_TAKE1("ClusterListen", set_listen, NULL, RSRC_CONF,
                  "host:port the replication receiver listens on"),
    AP_INIT_TAKE1("ClusterManager", set_manager, NULL, RSRC_CONF,
                  "delta (every node holds every session) or backup"),
    AP_INIT_TAKE2("ClusterMember", add_member, NULL, RSRC_CONF,
                  "a static member: <route> <host:port>; repeat, self allowed"),
    AP_INIT_TAKE_ARGV("ClusterMulticast", set_multicast, NULL, RSRC_CONF,
                      "<group:port> [interface=IP] [ttl=N] [frequency=ms] "
                      "[droptime=ms]"),
    AP_INIT_TAKE12("ClusterSendMode", set_send_mode, NULL, RSRC_CONF,
                   "async, ack or sync, then optionally strict"),
    AP_INIT_TAKE12("ClusterSecretFile", set_secret_file, NULL, RSRC_CONF,
                   "<key file> [<older key file>], or none (loopback only)"),
    AP_INIT_TAKE1("ClusterCertificateFile", set_cert_path, (void *)0, RSRC_CONF,
                  "this node's certificate (PEM), named after its route"),
    AP_INIT_TAKE1("ClusterCertificateKeyFile", set_cert_path, (void *)1,
                  RSRC_CONF, "the private key of ClusterCertificateFile (PEM)"),
    AP_INIT_TAKE1("ClusterCACertificateFile", set_cert_path, (void *)2, RSRC_CONF,
                  "the CA certificate(s) members' certificates are checked against"),
    AP_INIT_TAKE1("ClusterStoreSize", set_store_size, NULL, RSRC_CONF,
                  "shared-memory store size, e.g. 64M"),
    AP_INIT_TAKE1("ClusterLinkQueueSize", set_link_queue_size, NULL, RSRC_CONF,
                  "bytes of changes queued for one member at most, e.g. 64M"),
    AP_INIT_TAKE1("ClusterStateTransferTimeout", set_transfer_timeout, NULL,
                  RSRC_CONF, "seconds a joining node waits for state"),
    AP_INIT_TAKE1("SessionClusterNewSessionTTL", set_new_session_ttl, NULL, RSRC_CONF,
                  "seconds a new session lives until its client comes back "
                  "with it (then the idle timeout or SessionMaxAge applies)"),
    AP_INIT_FLAG("SessionCluster", set_session_cluster, NULL, RSRC_CONF | OR_AUTHCFG,
                 "keep mod_session sessions in the cluster store"),
    AP_INIT_TAKE12("SessionClusterCookieName", set_cookie_name, NULL,
                   RSRC_CONF | OR_AUTHCFG,
                   "<name> [attributes]: the session cookie (default JSESSIONID)"),
    {NULL}
};

/* ---- whole-config checks ------------------------------------------------ */

int sc_config_active(const sc_server_conf *conf)
{
    return conf->configured || sc_session_cluster_on;
}

int sc_config_clustered(const sc_server_conf *conf)
{
    int i;
    if (conf->multicast)
        return 1;
    for (i = 0; i < conf->members->nelts; i++)
        if (strcmp(APR_ARRAY_IDX(conf->members, i, sc_member).route, conf->route))
            return 1;
    return 0;
}

static int secret_none(const sc_server_conf *conf)
{
    return conf->keys && conf->keys->none;
}

int sc_addr_is_loopback(apr_pool_t *p, const sc_addr *a)
{
    apr_sockaddr_t *sa;
    if (!strcasecmp(a->host, "localhost"))
        return 1;
    if (apr_sockaddr_info_get(&sa, a->host, APR_UNSPEC, a->port, 0, p)
        != APR_SUCCESS)
        return 0;
    if (sa->family == APR_INET)
        return (ntohl(sa->sa.sin.sin_addr.s_addr) >> 24) == 127;
#if APR_HAVE_IPV6
    if (sa->family == APR_INET6)
        return IN6_IS_ADDR_LOOPBACK(&sa->sa.sin6.sin6_addr);
#endif
    return 0;
}

static int fail(server_rec *s, const char *msg)
{
    ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "%s", msg);
    return !OK;
}

/* Heartbeats announce ClusterListen as written: the others connect there. */
static int check_multicast(server_rec *s, const sc_server_conf *conf,
                           apr_pool_t *ptemp)
{
    const char *host = conf->listen.host;

    if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !strcmp(host, "*"))
        return fail(s, apr_psprintf(ptemp, "mod_session_cluster: with "
                    "ClusterMulticast, ClusterListen %s must name this node's "
                    "own address (the heartbeats tell the others to connect "
                    "there)", conf->listen.text));
    if (strlen(conf->listen.text) >= SC_LISTEN_TEXT_MAX)
        return fail(s, apr_psprintf(ptemp, "mod_session_cluster: with "
                    "ClusterMulticast, ClusterListen %s must be shorter than %d "
                    "characters", conf->listen.text, SC_LISTEN_TEXT_MAX));
    return OK;
}

int sc_config_check(server_rec *s, apr_pool_t *ptemp)
{
    sc_server_conf *conf = sc_config_server(s);
    int i;

    if (!sc_config_active(conf))
        return OK;
    if (!conf->route)
        return fail(s, "mod_session_cluster: ClusterRoute is required once "
                    "SessionCluster or any Cluster* directive is used");
    if (!conf->listen.text)
        return fail(s, apr_psprintf(ptemp, "mod_session_cluster: ClusterListen "
                    "is required for route '%s'", conf->route));
    for (i = 0; i < conf->members->nelts; i++) {
        const sc_member *m = &APR_ARRAY_IDX(conf->members, i, sc_member);
        if (!strcmp(m->route, conf->route)
            && (strcasecmp(m->addr.host, conf->listen.host)
                || m->addr.port != conf->listen.port))
            return fail(s, apr_psprintf(ptemp, "mod_session_cluster: ClusterMember "
                        "%s %s is this node but ClusterListen is %s", m->route,
                        m->addr.text, conf->listen.text));
        if (secret_none(conf) && !sc_addr_is_loopback(ptemp, &m->addr))
            return fail(s, apr_psprintf(ptemp, "mod_session_cluster: ClusterMember "
                        "%s %s is not on loopback; ClusterSecretFile none is for "
                        "loopback only: %s", m->route, m->addr.text, SC_KEY_HOWTO));
    }
    if (sc_config_clustered(conf) && !conf->keys)
        return fail(s, apr_psprintf(ptemp, "mod_session_cluster: route %s has "
                    "other members, and clustering needs a secret: set "
                    "ClusterSecretFile; %s. ClusterSecretFile none runs an "
                    "unauthenticated cluster on loopback, for experiments only",
                    conf->route, SC_KEY_HOWTO));
    if (secret_none(conf) && !sc_addr_is_loopback(ptemp, &conf->listen))
        return fail(s, apr_psprintf(ptemp, "mod_session_cluster: ClusterListen %s "
                    "is not on loopback; ClusterSecretFile none is for loopback "
                    "only: %s", conf->listen.text, SC_KEY_HOWTO));
    if ((conf->cert_file || conf->cert_key_file || conf->ca_file)
        && !(conf->cert_file && conf->cert_key_file && conf->ca_file))
        return fail(s, "mod_session_cluster: certificates need all three of "
                    "ClusterCertificateFile, ClusterCertificateKeyFile and "
                    "ClusterCACertificateFile");
    return conf->multicast ? check_multicast(s, conf, ptemp) : OK;
}
