/* sc_provider.c - mod_session storage provider (see sc_provider.h). */
#include <apr_optional.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_cookies.h>
#include <util_filter.h>

#include "sc_module.h"
#include "sc_apply.h"
#include "sc_config.h"
#include "sc_cookie.h"
#include "sc_id.h"
#include "sc_identity.h"
#include "sc_kv.h"
#include "sc_node.h"
#include "sc_provider.h"
#include "sc_ratelog.h"

APLOG_USE_MODULE(session_cluster);

/* how an application asks for a new id at the session's next save (login:
 * fixation protection): this response header (removed before the client
 * sees it), or this variable in the request's environment */
#define SC_ROTATE_HEADER  "X-Session-Cluster-Rotate"
#define SC_ROTATE_ENV     "SESSION_CLUSTER_ROTATE"
#define SC_EXPIRY_KEY     "expiry"
/* concurrent writers of one session retry their read-modify-write: this
 * many times at once, then yielding between tries for as long as this */
#define SC_UPDATE_TRIES     32
#define SC_UPDATE_PATIENCE  apr_time_from_sec(1)

/* Per-request state, kept on the top-level request. */
typedef struct {
    session_rec *z;
    char id[SC_ID_BASE_LEN + 1];    /* "" until the request has a session */
    const char *cookie_route;       /* route the client sent */
    const char *loaded;             /* data as loaded, to tell changes */
    apr_uint64_t version;           /* version as loaded */
    const char *backup;             /* backup manager: its backup's route */
    int refused;                    /* answer 503 (store full, not ready,
                                       change not replicated) */
    int followed;                   /* moved to its session's new id */
} sc_req;

static request_rec *top_request(request_rec *r)
{
    while (r->main)
        r = r->main;
    return r;
}

static sc_req *req_state(request_rec *r, int create)
{
    request_rec *m = top_request(r);
    sc_req *req = ap_get_module_config(m->request_config, &session_cluster_module);
    if (!req && create) {
        req = apr_pcalloc(m->pool, sizeof(*req));
        ap_set_module_config(m->request_config, &session_cluster_module, req);
    }
    return req;
}

/* The encoded session without mod_session's "expiry=" pair: the store keeps
 * the expiry itself, so a touch never needs to rewrite the data. One pass,
 * and no copy at all when there is no such pair (SessionMaxAge unset): a
 * big session is not copied for nothing. */
static int is_expiry_pair(const char *pair, apr_size_t len)
{
    return len >= sizeof(SC_EXPIRY_KEY)
        && !memcmp(pair, SC_EXPIRY_KEY "=", sizeof(SC_EXPIRY_KEY));
}

static const char *strip_expiry(apr_pool_t *p, const char *encoded)
{
    apr_size_t len = encoded ? strlen(encoded) : 0;
    const char *at = encoded, *end = encoded + len;
    char *out, *w;

    if (!len)
        return "";
    if (!is_expiry_pair(encoded, len) && !strstr(encoded, "&" SC_EXPIRY_KEY "="))
        return encoded;
    out = w = apr_palloc(p, len + 1);
    while (at < end) {
        const char *amp = memchr(at, '&', (apr_size_t)(end - at));
        apr_size_t n = (apr_size_t)((amp ? amp : end) - at);
        if (n && !is_expiry_pair(at, n)) {
            if (w != out)
                *w++ = '&';
            memcpy(w, at, n);
            w += n;
        }
        if (!amp)
            break;
        at = amp + 1;
    }
    *w = '\0';
    return out;
}

static int uses_maxage(request_rec *r)
{
    session_dir_conf *sd = ap_get_module_config(r->per_dir_config, &session_module);
    return sd && sd->maxage > 0;
}

/* The manager's view of this node, now: for one decision. */
static const sc_manager *manager(const sc_node *node, sc_mgr_ctx *c)
{
    sc_node_mgr_ctx(node, c);
    return sc_node_manager(node);
}

/* Who gets a change of session data (the manager says: every up member, or
 * the session's backup). */
static const char *data_target(const sc_node *node, const char *backup)
{
    return sc_node_manager(node)->data_target(node->conf->route, backup);
}

/* The channel flags of a session whose placement is new (created, taken
 * over, moved): its location goes to everyone when the manager has them. */
static int location_flags(const sc_node *node)
{
    return sc_node_manager(node)->locations ? SC_CHAN_F_LOCATION : 0;
}

/* This child's rate limit for lines about the channel to clusterd. */
enum { SC_LOG_CHAN_FULL, SC_LOG_KINDS };
static sc_ratelog *sc_child_log;

/* mod_session's ap_session_load, for the SessionHeader filter */
static APR_OPTIONAL_FN_TYPE(ap_session_load) *session_load_fn;

void sc_provider_child_init(apr_pool_t *pchild)
{
    if (sc_ratelog_create(&sc_child_log, SC_LOG_KINDS, SC_RATELOG_EVERY, pchild)
        != APR_SUCCESS)
        sc_child_log = NULL;
    session_load_fn = APR_RETRIEVE_OPTIONAL_FN(ap_session_load);
}

/* The channel had no room for SC_CHAN_ROOM_WAIT: clusterd is far behind
 * (or gone). One line per child per interval, with the count. */
static void channel_full(request_rec *r, sc_node *node)
{
    sc_chan_stats st;
    apr_uint32_t held = 0;

    if (sc_child_log && !sc_ratelog_due(sc_child_log, SC_LOG_CHAN_FULL,
                                        apr_time_now(), &held))
        return;
    sc_chan_stats_get(node->chan, &st);
    ap_log_rerror(APLOG_MARK, APLOG_ERR, APR_TIMEUP, r, "the channel to clusterd "
                  "stayed full for %" APR_TIME_T_FMT " ms (%" APR_UINT64_T_FMT
                  " bytes waiting; %" APR_UINT64_T_FMT " saves gave up so far, %u "
                  "of them since this line was last written); answering 503",
                  apr_time_as_msec(SC_CHAN_ROOM_WAIT), st.queued_bytes,
                  st.room_timeouts, held + 1);
}

/* Hand a change to clusterd for the other members; with ack/sync wait for
 * them (bounded). Members that are down or slow are logged, never waited
 * out. But a change clusterd could not take (the channel stayed full, or
 * an ack/sync change clusterd never answered) is answered 503 rather than
 * acknowledged: it reached nobody. Returns how many members confirmed
 * (always 0 for async), or -1 when clusterd did not take it. */
static int replicate(request_rec *r, sc_node *node, const char *id,
                     const sc_chan_msg *m, const char *payload, apr_size_t len)
{
    sc_chan_reply reply = { 0, 0 };
    sc_chan_piece piece = { payload, len };
    apr_time_t start = apr_time_now();
    int mode = m->mode;
    apr_status_t rv;

    if (!node->peers)
        return 0;
    rv = sc_chan_call(node->chan, m, &piece, 1, mode != SC_SEND_ASYNC,
                      SC_REPLICATION_WAIT, &node->state->clusterd_starts, &reply);
    if (mode == SC_SEND_ASYNC && rv == APR_SUCCESS)
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session %s handed to "
                      "clusterd (async)", sc_id_digest(r->pool, id));
    else if (rv == APR_SUCCESS)
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session %s replicated to %d "
                      "member(s) (%s) in %" APR_TIME_T_FMT " us",
                      sc_id_digest(r->pool, id), reply.peers,
                      sc_send_mode_name(mode), apr_time_now() - start);
    else if (rv == APR_EGENERAL)
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "session %s: %d of %d "
                      "member(s) confirmed within %" APR_TIME_T_FMT " ms (%s)",
                      sc_id_digest(r->pool, id), reply.confirmed, reply.peers,
                      apr_time_as_msec(apr_time_now() - start),
                      sc_send_mode_name(mode));
    else {
        if (rv == APR_TIMEUP)
            channel_full(r, node);
        else if (rv == APR_EAGAIN)
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "session %s: the clusterd "
                          "that took the change died before answering; answering "
                          "503 rather than acknowledging a change no member may "
                          "have received", sc_id_digest(r->pool, id));
        else
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "session %s: clusterd did "
                          "not take the change (it cannot be sent); answering 503 "
                          "rather than acknowledging a change no member received",
                          sc_id_digest(r->pool, id));
        return -1;
    }
    return reply.confirmed;
}

/* The whole session (or its tombstone) to the members that hold data;
 * `flags` SC_CHAN_F_LOCATION when its placement changed. */
static int replicate_whole(request_rec *r, sc_node *node, const sc_session *s,
                           int flags, int mode)
{
    sc_chan_msg m = { 0, mode, flags,
                      s->tombstone ? "" : data_target(node, s->backup) };
    const char *payload;
    apr_size_t len;

    if (node->peers && sc_apply_describe(r->pool, s, &m.type, &payload, &len)
                       == APR_SUCCESS)
        return replicate(r, node, s->id, &m, payload, len);
    return 0;
}

static int replicate_delta(request_rec *r, sc_node *node, const sc_msg_delta *m,
                           const char *backup, int mode)
{
    sc_chan_msg cm = { SC_MSG_DELTA, mode, 0, data_target(node, backup) };
    char *payload;
    apr_size_t len;

    if (node->peers && sc_msg_delta_encode(r->pool, m, &payload, &len)
                       == APR_SUCCESS)
        return replicate(r, node, m->id, &cm, payload, len);
    return 0;
}

/* A save answered 503 did not happen: 1 (the caller undoes the change)
 * when clusterd could not take an ack/sync change, or, with
 * `ClusterSendMode ack|sync strict`, when no member confirmed it. */
static int unconfirmed(request_rec *r, sc_node *node, const char *id,
                       int confirmed)
{
    if (confirmed < 0) {                    /* clusterd did not take it */
        req_state(r, 1)->refused = 1;
        return 1;
    }
    if (!node->conf->send_strict || !node->peers || confirmed > 0)
        return 0;
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "session %s: no member "
                  "confirmed the save (ClusterSendMode %s strict); answering 503 "
                  "and undoing it", sc_id_digest(r->pool, id),
                  sc_send_mode_name(node->conf->send_mode));
    req_state(r, 1)->refused = 1;
    return 1;
}

/* Move the expiry here and, without a version change, on the members (a
 * delta whose base is its version and whose patch is empty). Admins throttle
 * touches with mod_session's SessionExpiryUpdateInterval. */
static void touch_session(request_rec *r, sc_node *node, sc_req *req,
                          apr_time_t expires)
{
    sc_msg_delta m = { req->id, node->conf->route, req->version, req->version,
                       expires, "", 0 };
    apr_status_t rv = sc_store_touch(node->store, req->id, expires, apr_time_now());

    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, rv, r, "touched session %s",
                  sc_id_digest(r->pool, req->id));
    if (rv == APR_SUCCESS)
        replicate_delta(r, node, &m, req->backup, SC_SEND_ASYNC);
}

/* Failover re-homing: the client came with another node's route. */
static void rehome(request_rec *r, sc_node *node, const sc_dir_conf *d,
                   sc_req *req)
{
    if (!req->cookie_route || !strcmp(req->cookie_route, node->conf->route))
        return;
    sc_cookie_set(r, d, req->id, node->conf->route);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "session %s re-homed from route "
                  "'%s' to '%s'", sc_id_digest(r->pool, req->id), req->cookie_route, node->conf->route);
    req->cookie_route = node->conf->route;
}

/* Does this node have to take the session over first (the manager says;
 * never before it is ready)? */
static int needs_claim(sc_node *node, apr_status_t rv, const sc_session *s,
                       const char *route)
{
    sc_mgr_ctx c;

    if (!sc_node_ready(node) || (rv != APR_SUCCESS && rv != APR_NOTFOUND))
        return 0;
    return manager(node, &c)->needs_claim(&c, rv == APR_SUCCESS, s,
                                          sc_mgr_member_known(&c, route));
}

/* Make this node the session's primary: fetch its data from the members
 * when it has none (walkthrough case 2), then place it here with a backup
 * (case 1 picks a new one; case 2 keeps the old one) and tell everyone. */
static apr_status_t claim_session(request_rec *r, sc_node *node, const char *id,
                                  int fetch, sc_session *s)
{
    sc_chan_msg m = { SC_MSG_FETCH, SC_SEND_SYNC, 0, "" };
    sc_chan_reply reply = { 0, 0 };
    apr_time_t start = apr_time_now();
    const char *was = apr_pstrdup(r->pool, fetch ? "-" : s->owner);
    sc_chan_piece piece;
    char *payload;
    apr_status_t rv;
    sc_mgr_ctx c;
    const sc_manager *mgr;
    int moved;

    if (fetch && sc_msg_id_encode(r->pool, id, &payload, &piece.len) == APR_SUCCESS) {
        piece.base = payload;
        rv = sc_chan_call(node->chan, &m, &piece, 1, 1, SC_FETCH_WAIT,
                          &node->state->clusterd_starts, &reply);
        ap_log_rerror(APLOG_MARK, rv == APR_SUCCESS ? APLOG_DEBUG : APLOG_WARNING,
                      rv, r, "session %s %s from the members in %" APR_TIME_T_FMT
                      " ms", sc_id_digest(r->pool, id), rv == APR_SUCCESS ? "fetched"
                      : "not fetched",
                      apr_time_as_msec(apr_time_now() - start));
    }
    mgr = manager(node, &c);
    rv = sc_mgr_place(mgr, &c, node->store, id, NULL, r->pool, s, &moved);
    if (rv != APR_SUCCESS)
        return rv;
    if (moved) {
        sc_node_stored(node, &c, s);
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "session %s: primary now "
                      "here (was %s), backup %s, version %" APR_UINT64_T_FMT,
                      sc_id_digest(r->pool, id), fetch ? "fetched" : was, *s->backup ? s->backup : "none",
                      s->version);
        replicate_whole(r, node, s, location_flags(node), node->conf->send_mode);
    }
    return APR_SUCCESS;
}

/* Look the cookie's id up; adopt it only if the store holds it live. */
static void load_from_cookie(request_rec *r, sc_node *node, const sc_dir_conf *d,
                             sc_req *req, session_rec *zz)
{
    const char *val = NULL, *route;
    apr_time_t now = apr_time_now();
    char base[SC_ID_BASE_LEN + 1];
    sc_session s;
    apr_status_t rv;

    if (ap_cookie_read(r, sc_cookie_name(d), &val, 0) != APR_SUCCESS || !val)
        return;
    if (sc_id_parse(r->pool, val, base, &route) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "malformed %s cookie "
                      "ignored; a new session will be issued if needed",
                      sc_cookie_name(d));
        return;
    }
    rv = sc_store_get(node->store, base, now, r->pool, &s);
    if (rv == APR_NOTFOUND && !sc_node_ready(node)) {
        /* the session may be on its way (state transfer): a new id now
         * would lose it for good */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "session %s not here yet and "
                      "this node is not ready; answering 503", sc_id_digest(r->pool, base));
        req->refused = 1;
        return;
    }
    if (needs_claim(node, rv, &s, route))
        rv = claim_session(r, node, base, rv == APR_NOTFOUND || s.proxy, &s);
    if (rv != APR_SUCCESS || s.tombstone || s.proxy) {
        ap_log_rerror(APLOG_MARK, s.proxy ? APLOG_WARNING : APLOG_DEBUG, rv, r,
                      "session %s is %s; not adopted", sc_id_digest(r->pool, base),
                      rv != APR_SUCCESS
                      ? "unknown or expired" : s.tombstone ? "invalidated"
                      : "unreachable (its primary and backup did not answer)");
        return;
    }
    apr_cpystrn(req->id, base, sizeof(req->id));
    req->cookie_route = route;
    req->loaded = s.data;
    req->version = s.version;
    req->backup = apr_pstrdup(r->pool, s.backup);
    if (sc_node_manager(node)->rehome_at_load)
        rehome(r, node, d, req);
    zz->encoded = s.data;
    if (uses_maxage(r))
        zz->expiry = s.expires;
    else if (s.expires - now < SC_IDLE_TIMEOUT - apr_time_from_sec(60))
        touch_session(r, node, req, now + SC_IDLE_TIMEOUT);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "loaded session %s version %"
                  APR_UINT64_T_FMT " (%" APR_SIZE_T_FMT " bytes, route %s)",
                  sc_id_digest(r->pool, base), s.version, s.len,
                  *route ? route : "none");
}

apr_status_t sc_provider_load(request_rec *r, session_rec **z)
{
    sc_dir_conf *d = sc_config_dir(r);
    sc_node *node = sc_node_get();
    session_rec *zz;
    sc_req *req;

    if (d->enabled != 1)
        return DECLINED;
    if (!node || !node->store) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "SessionCluster On but the "
                      "cluster store is not available (see start-up log)");
        return DECLINED;
    }
    req = req_state(r, 1);
    if (!req->z) {
        zz = apr_pcalloc(r->pool, sizeof(*zz));
        zz->pool = r->pool;
        zz->entries = apr_table_make(r->pool, 10);
        load_from_cookie(r, node, d, req, zz);
        req->z = zz;
    }
    *z = req->z;
    return OK;
}

/* One pair of a loaded session, as mod_session's identity decoder takes it:
 * no value removes the key; a pair that does not unescape is ignored; the
 * expiry pair sets the session's expiry. */
static void decode_pair(void *baton, char *key, char *val)
{
    session_rec *z = baton;

    if (!val)
        apr_table_unset(z->entries, key);
    else if (!ap_unescape_urlencoded(key) && !ap_unescape_urlencoded(val)) {
        if (!strcmp(key, SC_EXPIRY_KEY))
            z->expiry = (apr_time_t)apr_atoi64(val);
        else
            apr_table_setn(z->entries, key, val);   /* buf lives in r->pool */
    }
}

/* Pairs onto a session's entries, as mod_session's identity decoder puts
 * them; `encoded` is copied (a loaded session's is req->loaded too). */
static void decode_into(request_rec *r, session_rec *z, const char *encoded)
{
    sc_identity_split(apr_pstrdup(r->pool, encoded), decode_pair, z);
    z->encoded = NULL;
}

apr_status_t sc_provider_decode(request_rec *r, session_rec *z)
{
    sc_req *req = req_state(r, 0);

    /* only the session this provider loaded for the request; mod_session's
     * own decoder (after this one) sees nothing left to do */
    if (!req || req->z != z || !z->encoded)
        return DECLINED;
    decode_into(r, z, z->encoded);
    return OK;
}

void sc_provider_insert_filter(request_rec *r)
{
    sc_dir_conf *d = sc_config_dir(r);
    if (d->enabled == 1) {
        ap_add_output_filter(SC_HEADER_FILTER, NULL, r, r->connection);
        ap_add_output_filter(SC_REFUSE_FILTER, NULL, r, r->connection);
    }
}

/* Runs just before mod_session's output filter (whose type is
 * AP_FTYPE_CONTENT_SET), which takes the application's SessionHeader into
 * the session and saves it, before passing the first brigade on. For the
 * session this provider loaded, the header is taken here instead, as
 * httpd 2.4's mod_session takes it (the header removed from the response,
 * the session marked dirty, its pairs decoded onto the entries) but in one
 * pass; mod_session's filter then finds no header and saves. Subrequests
 * and internal redirects are left to mod_session. */
apr_status_t sc_provider_header_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    session_dir_conf *conf;
    session_rec *z = NULL;
    const char *header;
    sc_req *req;

    ap_remove_output_filter(f);
    if (r->main || r->prev || r->next || !session_load_fn
        || !(req = req_state(r, 0)) || !req->z)
        return ap_pass_brigade(f->next, bb);
    conf = ap_get_module_config(r->per_dir_config, &session_module);
    /* mod_session's own look-up (its Session, SessionInclude/Exclude) must
     * hand out this very session, not yet saved */
    if (!conf || !conf->header_set || session_load_fn(r, &z) != APR_SUCCESS
        || z != req->z || z->written)
        return ap_pass_brigade(f->next, bb);
    if (!(header = apr_table_get(r->err_headers_out, conf->header)))
        header = apr_table_get(r->headers_out, conf->header);
    if (header) {
        decode_into(r, z, header);
        apr_table_unset(r->err_headers_out, conf->header);
        apr_table_unset(r->headers_out, conf->header);
        z->dirty = 1;
    }
    return ap_pass_brigade(f->next, bb);
}

static apr_status_t refuse(request_rec *r, sc_req *req, const char *what,
                           sc_node *node)
{
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, APR_ENOSPC, r, "%s refused: no room "
                  "in the store; answering 503", what);
    sc_node_store_full(node, r->server, what);
    req->refused = 1;
    return APR_ENOSPC;
}

/* The tombstone of `id` (just invalidated here) to the members. */
static int replicate_tombstone(request_rec *r, sc_node *node, const char *id,
                               int mode)
{
    sc_session tomb;

    if (sc_store_get(node->store, id, apr_time_now(), r->pool, &tomb) != APR_SUCCESS)
        return 0;
    return replicate_whole(r, node, &tomb, 0, mode);
}

/* A new session record under a fresh id, placed by the manager, stored and
 * replicated: a new session (`fresh`: a short life until its client comes
 * back, evictable under pressure, so cookieless floods cannot fill the store
 * for long), or the new id of a rotated one (not fresh; it keeps its backup
 * `keep` while that is up). *issued: 1 once it is stored and handed to the
 * members, for the caller to give out; 0 (with APR_SUCCESS) when the members
 * did not take it (answered 503): the id is withdrawn again, here and
 * wherever it arrived. `what` names it in log lines. */
static apr_status_t issue_session(request_rec *r, sc_node *node, sc_req *req,
                                  const char *data, apr_time_t expires,
                                  int fresh, const char *keep, const char *what,
                                  sc_session *s, int *issued)
{
    apr_time_t now = apr_time_now();
    apr_status_t rv;
    sc_mgr_ctx c;
    const sc_manager *mgr = manager(node, &c);

    *issued = 0;
    memset(s, 0, sizeof(*s));
    if ((rv = sc_id_generate(s->id)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "no random bytes for a "
                      "session id: %s not stored; answering 503", what);
        req->refused = 1;
        return rv;
    }
    apr_cpystrn(s->owner, node->conf->route, sizeof(s->owner));
    mgr->place_new(&c, keep, s->backup);
    s->expires = expires;
    if (fresh && now + node->conf->new_session_ttl < expires)
        s->expires = now + node->conf->new_session_ttl;
    s->fresh = fresh;
    s->data = data;
    s->len = strlen(data);
    sc_node_relieve(node, r->server, 0);
    rv = sc_store_create(node->store, s, now);
    if (rv == APR_ENOSPC) {
        sc_node_relieve(node, r->server, 1);
        sc_node_sweep(node, r->server, 1);
        rv = sc_store_create(node->store, s, now);
    }
    if (rv == APR_ENOSPC)
        return refuse(r, req, what, node);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "cannot store %s (%"
                      APR_SIZE_T_FMT " bytes); answering 503", what, s->len);
        req->refused = 1;
        return rv;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "created session %s "
                  "(%" APR_SIZE_T_FMT " bytes): %s", sc_id_digest(r->pool, s->id),
                  s->len, what);
    sc_node_stored(node, &c, s);
    s->version = 1;
    s->created = now;
    if (unconfirmed(r, node, s->id, replicate_whole(r, node, s, location_flags(node),
                                                    node->conf->send_mode))) {
        /* never given out: gone here, and wherever it did arrive */
        if (sc_store_invalidate(node->store, s->id, now + SC_TOMBSTONE_TTL,
                                apr_time_now()) == APR_SUCCESS)
            replicate_tombstone(r, node, s->id, SC_SEND_ASYNC);
        return APR_SUCCESS;
    }
    *issued = 1;
    return APR_SUCCESS;
}

static apr_status_t create_session(request_rec *r, sc_node *node,
                                   const sc_dir_conf *d, sc_req *req,
                                   const char *data, apr_time_t expires)
{
    sc_session s;
    int issued;
    apr_status_t rv = issue_session(r, node, req, data, expires, 1, NULL,
                                    "new session", &s, &issued);

    if (rv != APR_SUCCESS || !issued)
        return rv;
    apr_cpystrn(req->id, s.id, sizeof(req->id));
    sc_cookie_set(r, d, s.id, node->conf->route);
    req->backup = apr_pstrdup(r->pool, s.backup);
    return APR_SUCCESS;
}

/* Apply this request's changes (a patch against what it loaded) to the
 * session as it is now, so concurrent requests touching different keys
 * both survive; retried while other writers get in first. *moved: (backup
 * manager) its placement changed too, as its backup had gone. */
static apr_status_t merge_into_store(request_rec *r, sc_node *node, sc_req *req,
                                     const char *patch, const char *whole,
                                     apr_time_t expires, sc_session *out,
                                     int *moved, const char **before)
{
    apr_time_t give_up = apr_time_now() + SC_UPDATE_PATIENCE;
    apr_status_t rv = SC_STORE_STALE;
    int tries, swept = 0;
    sc_mgr_ctx c;
    const sc_manager *mgr = manager(node, &c);

    for (tries = 0; (rv == SC_STORE_STALE || rv == APR_ENOSPC)
                    && (tries < SC_UPDATE_TRIES || apr_time_now() < give_up);
         tries++) {
        apr_time_t now = apr_time_now();
        sc_session cur;
        const char *merged;

        if (tries >= SC_UPDATE_TRIES)
            apr_thread_yield();     /* a crowd on one session: let it pass */
        if (rv == APR_ENOSPC) {
            if (swept++)
                break;
            sc_node_sweep(node, r->server, 1);
        }
        /* nobody wrote since this request loaded it (the usual case): its
         * new data is the merge, and the session is not copied out first */
        if (whole && !tries
            && sc_store_get_meta(node->store, req->id, now, &cur) == APR_SUCCESS
            && !cur.tombstone && !cur.proxy && cur.version == req->version) {
            merged = whole;
            *before = req->loaded;
        }
        else {
            if ((rv = sc_store_get(node->store, req->id, now, r->pool, &cur))
                != APR_SUCCESS || cur.tombstone)
                return APR_NOTFOUND;
            if ((rv = sc_kv_apply(r->pool, cur.data, patch, &merged)) != APR_SUCCESS)
                return rv;
            *before = cur.data;
        }
        *out = cur;
        out->fresh = 0;             /* its client came back with it */
        *moved = mgr->on_save(&c, &cur, out);
        out->data = merged;
        out->len = strlen(merged);
        out->expires = expires;
        rv = sc_store_replace(node->store, out, cur.version, now);
        out->version = cur.version + 1;
    }
    if (rv == APR_SUCCESS)
        sc_node_stored(node, &c, out);
    return rv;
}

/* Send a saved change to the members: the patch when it is smaller than
 * the session and nothing else changed, else the whole session. */
static int replicate_save(request_rec *r, sc_node *node, const sc_session *s,
                          const char *patch, int moved, int mode)
{
    if (!moved && strlen(patch) < s->len) {
        sc_msg_delta m = { s->id, s->owner, s->version - 1, s->version, s->expires,
                           patch, strlen(patch) };
        return replicate_delta(r, node, &m, s->backup, mode);
    }
    return replicate_whole(r, node, s, moved ? SC_CHAN_F_LOCATION : 0, mode);
}

/* Strict mode, no member confirmed: put back the keys this request changed
 * (to what they were before it), as a newer version, so a member that got
 * the change late drops it too. Keys other requests changed meanwhile are
 * theirs and stay. */
static void undo_save(request_rec *r, sc_node *node, sc_req *req,
                      const sc_session *saved, const char *before)
{
    const char *inverse, *base;
    sc_session s;
    int moved = 0;
    apr_status_t rv;

    if ((rv = sc_kv_diff(r->pool, saved->data, before, &inverse)) == APR_SUCCESS
        && (rv = merge_into_store(r, node, req, inverse, NULL, saved->expires, &s,
                                  &moved,
                                  &base)) == APR_SUCCESS) {
        req->version = s.version;
        replicate_save(r, node, &s, inverse, moved, SC_SEND_ASYNC);
    }
    ap_log_rerror(APLOG_MARK, rv == APR_SUCCESS ? APLOG_DEBUG : APLOG_ERR, rv, r,
                  "session %s: unconfirmed change %s", sc_id_digest(r->pool, req->id),
                  rv == APR_SUCCESS ? "undone" : "could not be undone");
}

/* The request's id was rotated (here, after the request began): take the
 * new one, and give it to the client too. Once per request. */
static int follow_rotation(request_rec *r, sc_node *node, sc_req *req)
{
    char fresh_id[SC_ID_MAX];
    const char *old;

    if (req->followed || !sc_node_rotated_get(node, req->id, r->request_time, fresh_id))
        return 0;
    req->followed = 1;
    old = apr_pstrdup(r->pool, req->id);
    apr_cpystrn(req->id, fresh_id, sizeof(req->id));
    req->version = 0;           /* its change goes as a patch onto the new id */
    sc_cookie_set(r, sc_config_dir(r), req->id, node->conf->route);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session %s was rotated to %s "
                  "while this request ran; its change goes to the new id",
                  sc_id_digest(r->pool, old), sc_id_digest(r->pool, req->id));
    return 1;
}

static apr_status_t update_session(request_rec *r, sc_node *node, sc_req *req,
                                   const char *data, apr_time_t expires)
{
    const char *patch, *before = NULL;
    sc_session s;
    apr_status_t rv;
    int moved = 0;

    if ((rv = sc_kv_diff(r->pool, req->loaded ? req->loaded : "", data, &patch))
        != APR_SUCCESS)
        return rv;
    /* mod_session's encoding of the new data is stored as it is when it is
     * already in sc_kv's normal form (it has no repeated keys or empty
     * values): the usual save then copies the session once */
    rv = merge_into_store(r, node, req, patch,
                          sc_kv_normal(r->pool, data) ? data : NULL, expires, &s,
                          &moved, &before);
    if (rv == APR_ENOSPC)
        return refuse(r, req, "session update", node);
    if (rv == APR_NOTFOUND && follow_rotation(r, node, req)) {
        /* it began before its id was rotated: its change goes to the new id */
        return update_session(r, node, req, data, expires);
    }
    if (rv == APR_NOTFOUND) {
        /* invalidated or expired by a concurrent request: stay gone */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "session %s vanished during "
                      "the request (invalidated or expired); change dropped",
                      sc_id_digest(r->pool, req->id));
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        /* mod_session answers 200 whatever a provider returns: say 503 */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "cannot save session %s%s; "
                      "answering 503", sc_id_digest(r->pool, req->id),
                      rv == SC_STORE_STALE ? " (other requests kept changing it)"
                      : "");
        req->refused = 1;
        return rv;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "saved session %s version %"
                  APR_UINT64_T_FMT " (%" APR_SIZE_T_FMT " bytes, patch %"
                  APR_SIZE_T_FMT ")", sc_id_digest(r->pool, req->id), s.version,
                  s.len, strlen(patch));
    req->version = s.version;
    req->backup = apr_pstrdup(r->pool, s.backup);
    if (unconfirmed(r, node, req->id, replicate_save(r, node, &s, patch, moved,
                                                     node->conf->send_mode)))
        undo_save(r, node, req, &s, before);
    return APR_SUCCESS;
}

static void invalidate_session(request_rec *r, sc_node *node,
                               const sc_dir_conf *d, sc_req *req)
{
    apr_time_t now = apr_time_now();
    apr_status_t rv = sc_store_invalidate(node->store, req->id,
                                          now + SC_TOMBSTONE_TTL, now);

    sc_session tomb;

    ap_cookie_remove(r, sc_cookie_name(d), sc_cookie_attrs(r, d), r->err_headers_out,
                     NULL);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, "invalidated session %s%s",
                  sc_id_digest(r->pool, req->id), rv == APR_SUCCESS ? ""
                  : " (already gone)");
    if (rv == APR_SUCCESS && sc_store_get(node->store, req->id, now, r->pool,
                                          &tomb) == APR_SUCCESS
        && replicate_whole(r, node, &tomb, 0, node->conf->send_mode) < 0)
        req->refused = 1;       /* gone here, but the members still have it */
}

/* Did the application ask for a new id? The header never reaches the
 * client, whoever set it. */
static int rotation_asked(request_rec *r)
{
    request_rec *m = top_request(r);
    int asked = apr_table_get(m->headers_out, SC_ROTATE_HEADER)
                || apr_table_get(m->err_headers_out, SC_ROTATE_HEADER)
                || apr_table_get(r->headers_out, SC_ROTATE_HEADER)
                || apr_table_get(r->err_headers_out, SC_ROTATE_HEADER)
                || apr_table_get(r->subprocess_env, SC_ROTATE_ENV)
                || apr_table_get(m->subprocess_env, SC_ROTATE_ENV);

    apr_table_unset(m->headers_out, SC_ROTATE_HEADER);
    apr_table_unset(m->err_headers_out, SC_ROTATE_HEADER);
    apr_table_unset(r->headers_out, SC_ROTATE_HEADER);
    apr_table_unset(r->err_headers_out, SC_ROTATE_HEADER);
    return asked;
}


/* A new id for the session, same data (this save's): the new id is created
 * and replicated like a new session (but as one that came back), then the
 * old id is invalidated here and on the members, so a cookie planted before
 * (session fixation) is refused from now on, on every node. A request that
 * began before and still holds the old id saves into the new one
 * (sc_node_rotated_*). */
static apr_status_t rotate_session(request_rec *r, sc_node *node,
                                   const sc_dir_conf *d, sc_req *req,
                                   const char *data, apr_time_t expires)
{
    apr_time_t now = apr_time_now();
    const char *old = apr_pstrdup(r->pool, req->id);
    sc_session s;
    int issued;
    apr_status_t rv;

    rv = issue_session(r, node, req, data, expires, 0, req->backup,
                       apr_psprintf(r->pool, "the new id of session %s",
                                    sc_id_digest(r->pool, old)), &s, &issued);
    if (rv != APR_SUCCESS || !issued)
        return rv;          /* the old id stays as it was */
    sc_node_rotated_put(node, old, s.id, now);
    if (sc_store_invalidate(node->store, old, now + SC_TOMBSTONE_TTL, now)
        == APR_SUCCESS && replicate_tombstone(r, node, old, node->conf->send_mode) < 0)
        req->refused = 1;       /* the members still hold the old id */
    apr_cpystrn(req->id, s.id, sizeof(req->id));
    req->version = 1;
    req->loaded = data;
    req->backup = apr_pstrdup(r->pool, s.backup);
    sc_cookie_set(r, d, s.id, node->conf->route);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "session %s rotated to a new id "
                  "%s (same data); the old id is invalidated on every member",
                  sc_id_digest(r->pool, old), sc_id_digest(r->pool, s.id));
    return APR_SUCCESS;
}

apr_status_t sc_provider_save(request_rec *r, session_rec *z)
{
    sc_dir_conf *d = sc_config_dir(r);
    sc_node *node = sc_node_get();
    apr_time_t expires;
    const char *data;
    sc_req *req;
    apr_status_t rv = APR_SUCCESS;

    if (d->enabled != 1)
        return DECLINED;
    if (!node || !node->store)
        return DECLINED;
    req = req_state(r, 1);
    if (req->refused)
        return APR_SUCCESS;     /* answered 503; keep the store as it is */
    data = strip_expiry(r->pool, z->encoded);
    expires = z->expiry ? z->expiry : apr_time_now() + SC_IDLE_TIMEOUT;

    if (!*req->id) {
        if (*data)
            rv = create_session(r, node, d, req, data, expires);
        return rv;
    }
    if (!*data) {
        invalidate_session(r, node, d, req);
        return APR_SUCCESS;
    }
    if (rotation_asked(r))
        return rotate_session(r, node, d, req, data, expires);
    if (strcmp(data, req->loaded ? req->loaded : "")) {
        rv = update_session(r, node, req, data, expires);
        req->loaded = data;
    }
    else {
        touch_session(r, node, req, expires);
    }
    if (rv == APR_SUCCESS)
        rehome(r, node, d, req);
    return rv;
}

/* ---- 503 for requests whose session could not be stored ----------------- */

/* Runs right after mod_session's own output filter, which saves the session
 * before passing the first brigade on. */
apr_status_t sc_provider_refuse_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    sc_req *req = req_state(f->r, 0);
    apr_bucket *e;

    ap_remove_output_filter(f);
    if (!req || !req->refused)
        return ap_pass_brigade(f->next, bb);
    apr_brigade_cleanup(bb);
    e = ap_bucket_error_create(HTTP_SERVICE_UNAVAILABLE, NULL, f->r->pool,
                               f->c->bucket_alloc);
    APR_BRIGADE_INSERT_TAIL(bb, e);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(f->c->bucket_alloc));
    return ap_pass_brigade(f->next, bb);
}
