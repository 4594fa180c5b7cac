/* sc_status.c - the cluster-manager handler (see sc_status.h). */
#include <apr_hash.h>
#include <apr_strings.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include "sc_module.h"
#include "sc_config.h"
#include "sc_id.h"
#include "sc_node.h"
#include "sc_cookie.h"
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
    const char *reason;         /* why it is down, "" when not known */
    const sc_member_state *link;  /* its link's queue; NULL for self */
} sc_member_view;

typedef struct {
    apr_array_header_t *fields;     /* sc_field, in display order */
    apr_array_header_t *members;    /* sc_member_view, self first */
    int ready;
    apr_uint32_t primary, backup, proxy;
    apr_uint32_t unbacked;          /* our primaries without a usable backup */
    apr_hash_t *placement;          /* "primary backup" -> apr_uint32_t count */
    apr_array_header_t *entries;    /* sc_session, for ?sessions */
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

static void add_member(sc_view *v, const char *route, const char *address, int up,
                       apr_uint32_t reason, const sc_member_state *link)
{
    sc_member_view *m = apr_array_push(v->members);
    m->route = route;
    m->address = address;
    m->up = up;
    m->reason = up ? "" : sc_node_reason_name(reason);
    m->link = link;
}

static void collect_members(sc_view *v, const sc_node *node)
{
    const sc_server_conf *conf = node->conf;
    int i, n = sc_node_slot_count(node);

    if (sc_node_slot_of(node, conf->route) < 0)
        add_member(v, conf->route, conf->listen.text, 1, SC_REASON_NONE, NULL);
    for (i = 0; i < n; i++) {
        const sc_member_state *m = sc_node_slot(node, i);
        if (!*m->route)
            continue;                   /* a freed slot */
        int self = !strcmp(m->route, conf->route);
        add_member(v, m->route, m->addr, self || m->up, m->reason, self ? NULL : m);
    }
}

/* The session the current request carries, as this node sees it. */
static void collect_request(request_rec *r, sc_view *v, sc_node *node)
{
    const char *base, *route, *owner = "-";
    sc_session s;

    sc_cookie_id(r, &base, &route);
    if (base && sc_store_get(node->store, base, apr_time_now(), r->pool, &s)
                == APR_SUCCESS && !s.tombstone) {
        v->request_id = base;
        owner = apr_pstrdup(r->pool, s.owner);
    }
    /* a digest, never the id: the page is readable by any script of the
     * origin, HttpOnly or not */
    add(v, "RequestSession", v->request_id ? sc_id_digest(r->pool, v->request_id) : "-", 0);
    add(v, "RequestRoute", v->request_id && *route ? route : "-", 0);
    add(v, "ServingNode", node->conf->route, 0);
    add(v, "SessionOwner", owner, 0);
}

typedef struct {
    sc_view *v;
    const sc_manager *mgr;
    sc_mgr_ctx mc;
    apr_pool_t *p;
    int keep;                   /* copy every entry for ?sessions */
} sc_counter;

/* This node's role for one session (the manager says), and where it lives. */
static int count_entry(void *baton, const sc_session *s)
{
    sc_counter *c = baton;
    const char *key = apr_psprintf(c->p, "%s %s", s->owner,
                                   *s->backup ? s->backup : "-");
    apr_uint32_t *n = apr_hash_get(c->v->placement, key, APR_HASH_KEY_STRING);

    switch (c->mgr->role(&c->mc, s)) {
    case SC_ROLE_PROXY:
        c->v->proxy++;
        break;
    case SC_ROLE_BACKUP:
        c->v->backup++;
        break;
    case SC_ROLE_PRIMARY:
        c->v->primary++;
        c->v->unbacked += !sc_mgr_up(&c->mc, s->backup);
        break;
    }
    if (!n) {
        n = apr_pcalloc(c->p, sizeof(*n));
        apr_hash_set(c->v->placement, key, APR_HASH_KEY_STRING, n);
    }
    (*n)++;
    if (c->keep) {
        sc_session *copy = apr_array_push(c->v->entries);
        *copy = *s;
        copy->data = NULL;
    }
    return 0;
}

static void count_roles(request_rec *r, sc_view *v, sc_node *node)
{
    sc_counter c;

    c.v = v;
    c.mgr = sc_node_manager(node);
    c.p = r->pool;
    c.keep = r->args && !strcmp(r->args, "sessions");
    sc_node_mgr_ctx(node, &c.mc);
    v->placement = apr_hash_make(r->pool);
    v->entries = apr_array_make(r->pool, 16, sizeof(sc_session));
    sc_store_foreach(node->store, apr_time_now(), r->pool, count_entry, &c);
}

/* Members' up/down changes clusterd has not acted on yet (0 once every
 * drop and join so far was handled: passes run, merges started). */
static apr_uint32_t member_changes_pending(const sc_node *node)
{
    apr_uint32_t sum = 0;
    int i;

    for (i = 0; i < sc_node_slot_count(node); i++)
        sum += sc_node_slot(node, i)->changes;
    return sum - node->state->changes_acted;
}

static sc_view *collect(request_rec *r, sc_node *node)
{
    sc_view *v = apr_pcalloc(r->pool, sizeof(*v));
    sc_chan_stats ch;
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
    if (sc_node_manager(node)->walks_roles)
        count_roles(r, v, node);
    else
        v->primary = st.sessions;       /* every node holds every session */

    add(v, "Route", node->conf->route, 0);
    add(v, "Manager", sc_manager_name(node->conf->manager), 0);
    add(v, "SendMode", sc_send_mode_name(node->conf->send_mode), 0);
    add_num(p, v, "SendModeStrict", node->conf->send_strict != 0);
    add_num(p, v, "Ready", v->ready);
    add_num(p, v, "SessionsPrimary", v->primary);
    add_num(p, v, "SessionsBackup", v->backup);
    add_num(p, v, "SessionsProxy", v->proxy);
    add_num(p, v, "SessionsWithoutBackup", v->unbacked);
    add_num(p, v, "Tombstones", st.tombstones);
    add_num(p, v, "SessionsRefused", st.refused);
    add_num(p, v, "SessionsEvicted", st.evicted);
    add_num(p, v, "SessionsNewExpired", st.new_expired);
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
    add_num(p, v, "PeerConnectionsAccepted", node->state->peer_accepts);
    add_num(p, v, "FetchQuestions", node->state->fetch_questions);
    add_num(p, v, "PlacementPasses", node->state->placement_passes);
    add_num(p, v, "MemberChangesPending", member_changes_pending(node));
    add_num(p, v, "SessionsRotated", node->state->rotations);
    add_num(p, v, "ChangeBytesReceived", node->state->change_bytes_in);
    sc_chan_stats_get(node->chan, &ch);
    add_num(p, v, "ChannelPosted", ch.posted);
    add_num(p, v, "ChannelQueuedBytes", ch.queued_bytes);
    add_num(p, v, "ChannelRoomWaits", ch.room_waits);
    add_num(p, v, "ChannelSavesGivenUp", ch.room_timeouts);
    add_num(p, v, "ChannelNoWaiterSlot", ch.no_slot);
    add_num(p, v, "ClusterdPid", node->state->clusterd_pid);
    add_num(p, v, "ClusterdStarts", node->state->clusterd_starts);
    collect_request(r, v, node);
    return v;
}

static int sort_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "primary backup" pairs in a stable order. */
static apr_array_header_t *placement_keys(apr_pool_t *p, const sc_view *v)
{
    apr_array_header_t *keys = apr_array_make(p, 16, sizeof(const char *));
    apr_hash_index_t *hi;

    for (hi = v->placement ? apr_hash_first(p, v->placement) : NULL; hi;
         hi = apr_hash_next(hi))
        APR_ARRAY_PUSH(keys, const char *) = apr_hash_this_key(hi);
    qsort(keys->elts, keys->nelts, sizeof(const char *), sort_strings);
    return keys;
}

static apr_uint32_t placement_count(const sc_view *v, const char *key)
{
    return *(apr_uint32_t *)apr_hash_get(v->placement, key, APR_HASH_KEY_STRING);
}

static void render_auto(request_rec *r, const sc_view *v)
{
    apr_array_header_t *keys = placement_keys(r->pool, v);
    int i;

    ap_set_content_type(r, "text/plain; charset=utf-8");
    for (i = 0; i < v->fields->nelts; i++) {
        const sc_field *f = &APR_ARRAY_IDX(v->fields, i, sc_field);
        ap_rprintf(r, "%s: %s\n", f->key, f->value);
    }
    for (i = 0; i < v->members->nelts; i++) {
        const sc_member_view *m = &APR_ARRAY_IDX(v->members, i, sc_member_view);
        ap_rprintf(r, "Member: %s %s %s%s%s\n", m->route, m->address,
                   m->up ? "up" : "down", *m->reason ? " " : "", m->reason);
    }
    /* a link's queue: changes and bytes waiting, changes not queued (full),
     * frames that carried several changes */
    for (i = 0; i < v->members->nelts; i++) {
        const sc_member_view *m = &APR_ARRAY_IDX(v->members, i, sc_member_view);
        if (m->link)
            ap_rprintf(r, "MemberQueue: %s %u %" APR_UINT64_T_FMT " %u %u\n",
                       m->route, m->link->queue_jobs, m->link->queue_bytes,
                       m->link->queue_dropped, m->link->batches);
    }
    for (i = 0; i < keys->nelts; i++) {
        const char *key = APR_ARRAY_IDX(keys, i, const char *);
        ap_rprintf(r, "Distribution: %s %u\n", key, placement_count(v, key));
    }
}

static void render_sessions(request_rec *r, const sc_view *v, const sc_node *node)
{
    int i;

    ap_set_content_type(r, "text/plain; charset=utf-8");
    for (i = 0; i < v->entries->nelts; i++) {
        const sc_session *s = &APR_ARRAY_IDX(v->entries, i, sc_session);
        ap_rprintf(r, "Session: %s %s %s %s %" APR_UINT64_T_FMT "\n",
                   sc_id_digest(r->pool, s->id), s->proxy ? "proxy"
                   : strcmp(s->owner, node->conf->route) ? "backup" : "primary",
                   s->owner, *s->backup ? s->backup : "-", s->version);
    }
}

static const char *json_str(apr_pool_t *p, const char *s)
{
    return apr_pstrcat(p, "\"", ap_escape_quotes(p, s), "\"", NULL);
}

static void render_json(request_rec *r, const sc_view *v)
{
    apr_array_header_t *keys = placement_keys(r->pool, v);
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
        ap_rprintf(r, "%s{\"route\": %s, \"address\": %s, \"state\": \"%s\", "
                   "\"reason\": %s", i ? ", " : "", json_str(r->pool, m->route),
                   json_str(r->pool, m->address), m->up ? "up" : "down",
                   json_str(r->pool, m->reason));
        if (m->link)
            ap_rprintf(r, ", \"queued\": %u, \"queued_bytes\": %" APR_UINT64_T_FMT
                       ", \"not_queued\": %u, \"batches\": %u", m->link->queue_jobs,
                       m->link->queue_bytes, m->link->queue_dropped,
                       m->link->batches);
        ap_rputs("}", r);
    }
    ap_rputs("], \"Distribution\": [", r);
    for (i = 0; i < keys->nelts; i++) {
        const char *key = APR_ARRAY_IDX(keys, i, const char *);
        const char *backup = strchr(key, ' ') + 1;
        ap_rprintf(r, "%s{\"primary\": %s, \"backup\": %s, \"sessions\": %u}",
                   i ? ", " : "", json_str(r->pool, apr_pstrmemdup(r->pool, key,
                                                    backup - key - 1)),
                   json_str(r->pool, backup), placement_count(v, key));
    }
    ap_rputs("]}\n", r);
}

static int member_up(const sc_view *v, const char *route)
{
    int i;
    for (i = 0; i < v->members->nelts; i++) {
        const sc_member_view *m = &APR_ARRAY_IDX(v->members, i, sc_member_view);
        if (!strcmp(m->route, route))
            return m->up;
    }
    return 0;
}

/* Backup manager: the cluster's placement as this node knows it, per
 * member (the slides' table): primaries, and whose backups it holds. */
static void render_distribution(request_rec *r, const sc_view *v)
{
    apr_array_header_t *keys = placement_keys(r->pool, v);
    apr_uint32_t unbacked = 0, total = 0;
    int i, k;

    for (k = 0; k < keys->nelts; k++)
        total += placement_count(v, APR_ARRAY_IDX(keys, k, const char *));
    ap_rputs("<h2>Distribution</h2><table><tr><th>member</th><th>primary</th>"
             "<th>backups held (of primary)</th><th></th></tr>\n", r);
    for (i = 0; i < v->members->nelts; i++) {
        const char *route = APR_ARRAY_IDX(v->members, i, sc_member_view).route;
        apr_uint32_t primary = 0, held = 0;
        const char *of = "";
        for (k = 0; k < keys->nelts; k++) {
            const char *key = APR_ARRAY_IDX(keys, k, const char *);
            const char *backup = strchr(key, ' ') + 1;
            apr_size_t olen = (apr_size_t)(backup - key - 1);
            apr_uint32_t n = placement_count(v, key);
            if (strlen(route) == olen && !strncmp(key, route, olen))
                primary += n;
            if (!strcmp(backup, route)) {
                held += n;
                of = apr_psprintf(r->pool, "%s%s%u&times;%s", of, *of ? ", " : "",
                                  n, ap_escape_html(r->pool,
                                                    apr_pstrmemdup(r->pool, key, olen)));
            }
        }
        ap_rprintf(r, "<tr><td>%s</td><td>%u</td><td>%u%s%s%s</td><td>"
                   "<span class='bar p' style='width:%upx'></span>"
                   "<span class='bar b' style='width:%upx'></span></td></tr>\n",
                   ap_escape_html(r->pool, route), primary, held, *of ? " (" : "",
                   of, *of ? ")" : "", total ? 300 * primary / total : 0,
                   total ? 300 * held / total : 0);
    }
    ap_rputs("</table>\n", r);
    for (k = 0; k < keys->nelts; k++) {
        const char *key = APR_ARRAY_IDX(keys, k, const char *);
        if (!member_up(v, strchr(key, ' ') + 1))
            unbacked += placement_count(v, key);
    }
    if (unbacked)
        ap_rprintf(r, "<p class=down><b>Warning:</b> %u session(s) have no backup "
                   "on an up member: one more failure loses them.</p>\n",
                   unbacked);
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
    ap_rprintf(r, "<p>Manager <b>%s</b>, send mode <b>%s%s</b>, %s.</p>\n",
               sc_manager_name(node->conf->manager),
               sc_send_mode_name(node->conf->send_mode),
               node->conf->send_strict ? " strict" : "",
               v->ready ? "ready" : "<span class=down>not ready</span>");

    ap_rputs("<h2>Members</h2><table><tr><th>route</th><th>address</th>"
             "<th>state</th><th>primary</th><th>backup</th><th>proxy</th>"
             "<th>distribution</th></tr>\n", r);
    for (i = 0; i < v->members->nelts; i++) {
        const sc_member_view *m = &APR_ARRAY_IDX(v->members, i, sc_member_view);
        int self = !strcmp(m->route, node->conf->route);
        ap_rprintf(r, "<tr><td>%s</td><td>%s</td><td class=%s>%s%s%s</td>",
                   ap_escape_html(r->pool, m->route),
                   ap_escape_html(r->pool, m->address), m->up ? "up" : "down",
                   m->up ? "up" : "down", *m->reason ? ": " : "", m->reason);
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
            ap_rprintf(r, "<td colspan=4>queue: %u change(s), %" APR_UINT64_T_FMT
                       " bytes%s; %u not queued (full); %u batches sent</td></tr>\n",
                       m->link->queue_jobs, m->link->queue_bytes,
                       m->link->queue_dropped ? " <span class=down>(overflowed)</span>"
                       : "", m->link->queue_dropped, m->link->batches);
    }
    ap_rputs("</table>\n", r);
    if (v->placement)
        render_distribution(r, v);
    ap_rputs("<h2>Details</h2><table>\n", r);
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
    if (r->args && !strcmp(r->args, "ready")) {
        /* health checks come every second: no walk over the store */
        ap_set_content_type(r, "text/plain; charset=utf-8");
        if (!sc_node_ready(node))
            return HTTP_SERVICE_UNAVAILABLE;
        ap_rputs("ready\n", r);
        return OK;
    }
    v = collect(r, node);
    if (r->args && !strcmp(r->args, "auto"))
        render_auto(r, v);
    else if (r->args && !strcmp(r->args, "json"))
        render_json(r, v);
    else if (r->args && !strcmp(r->args, "sessions")
             && sc_node_manager(node)->walks_roles)
        render_sessions(r, v, node);
    else
        render_html(r, v, node);
    return OK;
}
