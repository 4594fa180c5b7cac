/* sc_status.c - the cluster-manager handler (see sc_status.h). */
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include "sc_module.h"
#include "sc_config.h"
#include "sc_node.h"
#include "sc_provider.h"
#include "sc_status.h"

APLOG_USE_MODULE(session_cluster);

typedef struct {
    const char *key;
    const char *value;
    int numeric;
} sc_field;

typedef struct {
    const char *route;
    const char *address;
    int up;
} sc_member_view;

typedef struct {
    apr_array_header_t *fields;     /* sc_field, in display order */
    apr_array_header_t *members;    /* sc_member_view, self first */
    int ready;
    apr_uint32_t primary, backup, proxy;
    const char *request_id;         /* NULL: the request has no session */
} sc_view;

static void add(sc_view *v, const char *key, const char *value, int numeric)
{
    sc_field *f = apr_array_push(v->fields);
    f->key = key;
    f->value = value;
    f->numeric = numeric;
}

static void add_num(apr_pool_t *p, sc_view *v, const char *key, apr_uint64_t n)
{
    add(v, key, apr_psprintf(p, "%" APR_UINT64_T_FMT, n), 1);
}

static void add_member(sc_view *v, const char *route, const char *address, int up)
{
    sc_member_view *m = apr_array_push(v->members);
    m->route = route;
    m->address = address;
    m->up = up;
}

static void collect_members(sc_view *v, const sc_node *node)
{
    const sc_server_conf *conf = node->conf;
    int i, self_listed = 0;

    for (i = 0; i < conf->members->nelts; i++)
        self_listed |= !strcmp(APR_ARRAY_IDX(conf->members, i, sc_member).route,
                               conf->route);
    if (!self_listed)
        add_member(v, conf->route, conf->listen.text, 1);
    for (i = 0; i < conf->members->nelts; i++) {
        const sc_member *m = &APR_ARRAY_IDX(conf->members, i, sc_member);
        add_member(v, m->route, m->addr.text, sc_node_member_up(node, m));
    }
}

/* The session the current request carries, as this node sees it. */
static void collect_request(request_rec *r, sc_view *v, sc_node *node)
{
    const char *base, *route, *owner = "-";
    sc_session s;

    sc_provider_cookie_id(r, &base, &route);
    if (base && sc_store_get(node->store, base, apr_time_now(), r->pool, &s)
                == APR_SUCCESS && !s.tombstone) {
        v->request_id = base;
        owner = apr_pstrdup(r->pool, s.owner);
    }
    add(v, "RequestSession", v->request_id ? v->request_id : "-", 0);
    add(v, "RequestRoute", v->request_id && *route ? route : "-", 0);
    add(v, "ServingNode", node->conf->route, 0);
    add(v, "SessionOwner", owner, 0);
}

static sc_view *collect(request_rec *r, sc_node *node)
{
    sc_view *v = apr_pcalloc(r->pool, sizeof(*v));
    sc_store_stats st;
    apr_pool_t *p = r->pool;
    int i, up = 0;

    v->fields = apr_array_make(p, 24, sizeof(sc_field));
    v->members = apr_array_make(p, 8, sizeof(sc_member_view));
    sc_store_stats_get(node->store, &st);
    collect_members(v, node);
    for (i = 0; i < v->members->nelts; i++)
        up += APR_ARRAY_IDX(v->members, i, sc_member_view).up;
    v->ready = sc_node_ready(node);
    v->primary = st.sessions;

    add(v, "Route", node->conf->route, 0);
    add(v, "Manager", sc_manager_name(node->conf->manager), 0);
    add(v, "SendMode", sc_send_mode_name(node->conf->send_mode), 0);
    add_num(p, v, "Ready", v->ready);
    add_num(p, v, "SessionsPrimary", v->primary);
    add_num(p, v, "SessionsBackup", v->backup);
    add_num(p, v, "SessionsProxy", v->proxy);
    add_num(p, v, "Tombstones", st.tombstones);
    add_num(p, v, "SessionsRefused", st.refused);
    add_num(p, v, "MembersUp", up);
    add_num(p, v, "MembersTotal", v->members->nelts);
    add_num(p, v, "StoreBytes", st.segment_bytes);
    add_num(p, v, "StoreBlockSize", SC_STORE_BLOCK);
    add_num(p, v, "StoreBlocksTotal", st.blocks_total);
    add_num(p, v, "StoreBlocksFree", st.blocks_free);
    add_num(p, v, "StoreBlocksReclaimed", st.reclaimed);
    add_num(p, v, "StoreUptimeSeconds",
            apr_time_sec(apr_time_now() - node->created));
    add_num(p, v, "SessionsTransferred", node->state->transferred);
    add_num(p, v, "ChangesSent", node->state->changes_out);
    add_num(p, v, "ChangeBytesSent", node->state->change_bytes_out);
    add_num(p, v, "ChangesReceived", node->state->changes_in);
    add_num(p, v, "ChangeBytesReceived", node->state->change_bytes_in);
    add_num(p, v, "ClusterdPid", node->state->clusterd_pid);
    add_num(p, v, "ClusterdStarts", node->state->clusterd_starts);
    collect_request(r, v, node);
    return v;
}

static void render_auto(request_rec *r, const sc_view *v)
{
    int i;

    ap_set_content_type(r, "text/plain; charset=utf-8");
    for (i = 0; i < v->fields->nelts; i++) {
        const sc_field *f = &APR_ARRAY_IDX(v->fields, i, sc_field);
        ap_rprintf(r, "%s: %s\n", f->key, f->value);
    }
    for (i = 0; i < v->members->nelts; i++) {
        const sc_member_view *m = &APR_ARRAY_IDX(v->members, i, sc_member_view);
        ap_rprintf(r, "Member: %s %s %s\n", m->route, m->address,
                   m->up ? "up" : "down");
    }
}

static const char *json_str(apr_pool_t *p, const char *s)
{
    return apr_pstrcat(p, "\"", ap_escape_quotes(p, s), "\"", NULL);
}

static void render_json(request_rec *r, const sc_view *v)
{
    int i;

    ap_set_content_type(r, "application/json");
    ap_rputs("{", r);
    for (i = 0; i < v->fields->nelts; i++) {
        const sc_field *f = &APR_ARRAY_IDX(v->fields, i, sc_field);
        ap_rprintf(r, "%s: %s, ", json_str(r->pool, f->key),
                   f->numeric ? f->value : json_str(r->pool, f->value));
    }
    ap_rputs("\"Members\": [", r);
    for (i = 0; i < v->members->nelts; i++) {
        const sc_member_view *m = &APR_ARRAY_IDX(v->members, i, sc_member_view);
        ap_rprintf(r, "%s{\"route\": %s, \"address\": %s, \"state\": \"%s\"}",
                   i ? ", " : "", json_str(r->pool, m->route),
                   json_str(r->pool, m->address), m->up ? "up" : "down");
    }
    ap_rputs("]}\n", r);
}

static void render_html(request_rec *r, const sc_view *v, const sc_node *node)
{
    apr_uint32_t total = v->primary + v->backup + v->proxy;
    int i;

    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_rputs("<!DOCTYPE html>\n<html><head><title>cluster-manager</title>"
             "<style>body{font-family:sans-serif}td,th{padding:2px 8px;"
             "text-align:left}.bar{display:inline-block;height:14px}"
             ".p{background:#3a7}.b{background:#37a}.x{background:#aaa}"
             ".down{color:#b00}</style></head><body>\n", r);
    ap_rprintf(r, "<h1>mod_session_cluster: %s</h1>\n",
               ap_escape_html(r->pool, node->conf->route));
    ap_rprintf(r, "<p>Manager <b>%s</b>, send mode <b>%s</b>, %s.</p>\n",
               sc_manager_name(node->conf->manager),
               sc_send_mode_name(node->conf->send_mode),
               v->ready ? "ready" : "<span class=down>not ready</span>");

    ap_rputs("<h2>Members</h2><table><tr><th>route</th><th>address</th>"
             "<th>state</th><th>primary</th><th>backup</th><th>proxy</th>"
             "<th>distribution</th></tr>\n", r);
    for (i = 0; i < v->members->nelts; i++) {
        const sc_member_view *m = &APR_ARRAY_IDX(v->members, i, sc_member_view);
        int self = !strcmp(m->route, node->conf->route);
        ap_rprintf(r, "<tr><td>%s</td><td>%s</td><td class=%s>%s</td>",
                   ap_escape_html(r->pool, m->route),
                   ap_escape_html(r->pool, m->address), m->up ? "up" : "down",
                   m->up ? "up" : "down");
        if (self)
            ap_rprintf(r, "<td>%u</td><td>%u</td><td>%u</td><td>"
                       "<span class='bar p' style='width:%upx'></span>"
                       "<span class='bar b' style='width:%upx'></span>"
                       "<span class='bar x' style='width:%upx'></span></td></tr>\n",
                       v->primary, v->backup, v->proxy,
                       total ? 300 * v->primary / total : 0,
                       total ? 300 * v->backup / total : 0,
                       total ? 300 * v->proxy / total : 0);
        else
            ap_rputs("<td colspan=4>(counts arrive with replication)</td></tr>\n", r);
    }
    ap_rputs("</table>\n<h2>Details</h2><table>\n", r);
    for (i = 0; i < v->fields->nelts; i++) {
        const sc_field *f = &APR_ARRAY_IDX(v->fields, i, sc_field);
        ap_rprintf(r, "<tr><th>%s</th><td>%s</td></tr>\n",
                   ap_escape_html(r->pool, f->key),
                   ap_escape_html(r->pool, f->value));
    }
    ap_rputs("</table>\n<p>Machine-readable: <a href='?auto'>?auto</a> "
             "<a href='?json'>?json</a> <a href='?ready'>?ready</a></p>"
             "</body></html>\n", r);
}

int sc_status_handler(request_rec *r)
{
    sc_node *node;
    sc_view *v;

    if (!r->handler || strcmp(r->handler, SC_HANDLER))
        return DECLINED;
    r->allowed |= (AP_METHOD_BIT << M_GET);
    if (r->method_number != M_GET)
        return HTTP_METHOD_NOT_ALLOWED;
    node = sc_node_get();
    if (!node || !node->store) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "cluster-manager: the session "
                      "cluster is not configured on this server");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    v = collect(r, node);
    if (r->args && !strcmp(r->args, "ready")) {
        ap_set_content_type(r, "text/plain; charset=utf-8");
        if (!v->ready)
            return HTTP_SERVICE_UNAVAILABLE;
        ap_rputs("ready\n", r);
    }
    else if (r->args && !strcmp(r->args, "auto"))
        render_auto(r, v);
    else if (r->args && !strcmp(r->args, "json"))
        render_json(r, v);
    else
        render_html(r, v, node);
    return OK;
}
