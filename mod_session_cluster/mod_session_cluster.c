/* mod_session_cluster.c - module record and hook registration.
 *
 * mod_session_cluster keeps mod_session sessions in a shared-memory store
 * that every child of this node sees (sc_store), behind a mod_session
 * storage provider (sc_provider), with a status handler (sc_status).
 * Files by concern: sc_config (directives), sc_node (what is kept across
 * generations), sc_store, sc_id (ids and cookie values), sc_provider,
 * sc_status, sc_clusterd (the network daemon), sc_peer (connections between
 * nodes), sc_wire.h (the codec: sc_frame, sc_msg, sc_seal, sc_heartbeat),
 * sc_kv (session key patches), sc_identity (mod_session's encoding, read).
 */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_request.h>
#include <util_filter.h>
#include <mod_session.h>

#include <openssl/ssl.h>

#include "sc_module.h"
#include "sc_clusterd.h"
#include "sc_config.h"
#include "sc_node.h"
#include "sc_provider.h"
#include "sc_status.h"

static int sc_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    /* No OpenSSL cleanup at exit (as mod_ssl does): an exiting child runs
     * atexit handlers while its other threads may still be saving a session
     * (digests) or talking TLS, and a freed library under them crashes. */
    OPENSSL_init_ssl(OPENSSL_INIT_NO_ATEXIT, NULL);
    sc_config_reset();
    sc_node_pre_config(pconf);
    return OK;
}

static int sc_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    return sc_config_check(s, ptemp);
}

/* Before core's open_logs, like the MPMs' listeners: in the first pass
 * `apachectl start` still writes to the admin's terminal, so a busy
 * ClusterListen port fails the start there instead of in the error log of
 * a server that is gone. Later passes find the sockets bound already. */
static int sc_open_logs(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                        server_rec *s)
{
    (void)pconf;
    (void)plog;
    (void)ptemp;
    return sc_node_open_sockets(s) == OK ? OK : DONE;
}

static int sc_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s)
{
    (void)plog;
    /* the first pass only checks the config; the store is made by the
     * pass that actually serves */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK;
    if (sc_node_post_config(pconf, ptemp, s) != OK)
        return !OK;
    return sc_node_get() ? sc_clusterd_start(pconf, s) : OK;
}

static void sc_child_init(apr_pool_t *pchild, server_rec *s)
{
    sc_node_child_init(pchild, s);
    sc_provider_child_init(pchild);
}

static void sc_register_hooks(apr_pool_t *p)
{
    static const char *const sc_before_core[] = { "core.c", NULL };
    (void)p;
    ap_hook_pre_config(sc_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(sc_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_open_logs(sc_open_logs, NULL, sc_before_core, APR_HOOK_REALLY_FIRST);
    ap_hook_post_config(sc_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(sc_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(sc_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_session_load(sc_provider_load, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_session_save(sc_provider_save, NULL, NULL, APR_HOOK_MIDDLE);
    /* after any decryption (mod_session_crypto decodes first), before
     * mod_session's identity decoder (APR_HOOK_REALLY_LAST) */
    ap_hook_session_decode(sc_provider_decode, NULL, NULL, APR_HOOK_REALLY_LAST - 1);
    ap_hook_insert_filter(sc_provider_insert_filter, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_output_filter(SC_REFUSE_FILTER, sc_provider_refuse_filter, NULL,
                              AP_FTYPE_CONTENT_SET + 1);
    /* mod_session's output filter is AP_FTYPE_CONTENT_SET: this runs first */
    ap_register_output_filter(SC_HEADER_FILTER, sc_provider_header_filter, NULL,
                              AP_FTYPE_CONTENT_SET - 1);
}

AP_DECLARE_MODULE(session_cluster) = {
    STANDARD20_MODULE_STUFF,
    sc_config_create_dir,
    sc_config_merge_dir,
    sc_config_create_server,
    NULL,
    sc_directives,
    sc_register_hooks,
    AP_MODULE_FLAG_NONE
};
