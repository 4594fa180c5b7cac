/* sc_config.h - directives of mod_session_cluster and their validation.
 *
 * Contract:
 *  - Node-wide directives (Cluster*) are allowed in the main server config
 *    only; every value is parsed and range-checked when read, so a bad value
 *    stops httpd at start with a message naming the directive and the value.
 *  - Cross-directive rules (route and listener required once any part of the
 *    cluster is configured, self entry consistent, a secret once there are
 *    other members, loopback only with `ClusterSecretFile none`, all three
 *    certificate files or none) are checked by sc_config_check() from
 *    check_config, so `apachectl -t` reports them too.
 *  - ClusterSecretFile is read and checked when the directive is read
 *    (sc_keys): a bad key file stops httpd with the reason.
 *  - Directory scope: SessionCluster On|Off, SessionClusterCookieName.
 *  - Runs in httpd's parent while it reads the configuration; children
 *    and clusterd only read the result.
 */
#ifndef SC_CONFIG_H
#define SC_CONFIG_H

#include <httpd.h>
#include <http_config.h>

#include "sc_keys.h"
#include "sc_limits.h"


typedef enum { SC_MANAGER_DELTA, SC_MANAGER_BACKUP } sc_manager_e;
typedef enum { SC_SEND_ASYNC, SC_SEND_ACK, SC_SEND_SYNC } sc_send_mode_e;

typedef struct {
    const char *host;
    apr_port_t port;
    const char *text;           /* host:port as configured */
} sc_addr;

/* host:port text as ClusterListen / heartbeats carry it, NUL included */
#define SC_LISTEN_TEXT_MAX 64

typedef struct {
    const char *route;
    sc_addr addr;
} sc_member;

/* "host:port" (IPv6 in brackets) into addr; APR_EINVAL when it is not one. */
apr_status_t sc_addr_parse(apr_pool_t *p, const char *text, sc_addr *out);
/* The address is on loopback (resolving names). */
int sc_addr_is_loopback(apr_pool_t *p, const sc_addr *a);

typedef struct {
    sc_addr group;
    const char *interface;      /* NULL: system default */
    int ttl;
    apr_interval_time_t frequency;
    apr_interval_time_t droptime;
} sc_multicast;

typedef struct {
    const char *route;          /* NULL until ClusterRoute */
    sc_addr listen;             /* listen.text NULL until ClusterListen */
    sc_manager_e manager;
    apr_array_header_t *members;        /* of sc_member */
    sc_multicast *multicast;    /* NULL: off */
    sc_send_mode_e send_mode;
    int send_strict;            /* a save no member confirmed answers 503 */
    const char *secret_file;    /* the first file as configured, or "none" */
    sc_keys *keys;              /* NULL until ClusterSecretFile */
    const char *cert_file;      /* ClusterCertificateFile ... */
    const char *cert_key_file;
    const char *ca_file;
    apr_size_t store_bytes;
    apr_size_t link_queue_bytes;    /* ClusterLinkQueueSize */
    apr_interval_time_t transfer_timeout;
    apr_interval_time_t new_session_ttl;    /* SessionClusterNewSessionTTL */
    int configured;             /* any Cluster* directive seen */
} sc_server_conf;

typedef struct {
    int enabled;                /* -1 unset */
    const char *cookie_name;
    const char *cookie_attrs;   /* NULL: "path=/" */
} sc_dir_conf;

extern const command_rec sc_directives[];

void *sc_config_create_server(apr_pool_t *p, server_rec *s);
void *sc_config_create_dir(apr_pool_t *p, char *dir);
void *sc_config_merge_dir(apr_pool_t *p, void *basev, void *addv);

/* Called from pre_config: forget what the previous generation saw. */
void sc_config_reset(void);

/* Validate the whole node configuration; logs and returns !OK on error. */
int sc_config_check(server_rec *s, apr_pool_t *ptemp);

/* 1 if this generation should run a store: some cluster config or a
 * SessionCluster On anywhere. */
int sc_config_active(const sc_server_conf *conf);

/* 1 if this node may have other members (another ClusterMember, or
 * ClusterMulticast): it is clustered and needs a secret. */
int sc_config_clustered(const sc_server_conf *conf);

sc_server_conf *sc_config_server(server_rec *s);
sc_dir_conf *sc_config_dir(request_rec *r);

const char *sc_manager_name(sc_manager_e m);
const char *sc_send_mode_name(sc_send_mode_e m);

#endif
