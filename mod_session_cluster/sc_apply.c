/* sc_apply.c - peers' changes into the store; state transfer records
 * (sc_apply.h). */
#include <apr_strings.h>

#include "sc_apply.h"
#include "sc_bytes.h"
#include "sc_kv.h"

static int store_status(apr_status_t rv)
{
    if (rv == APR_SUCCESS)
        return SC_ACK_OK;
    if (rv == SC_STORE_STALE)
        return SC_ACK_STALE;
    return rv == APR_ENOSPC ? SC_ACK_FULL : SC_ACK_REFUSED;
}

static void session_from(sc_session *s, const char *id, const char *owner,
                         const char *backup, apr_uint64_t version,
                         apr_time_t expires)
{
    memset(s, 0, sizeof(*s));
    apr_cpystrn(s->id, id, sizeof(s->id));
    apr_cpystrn(s->owner, owner, sizeof(s->owner));
    apr_cpystrn(s->backup, backup, sizeof(s->backup));
    s->version = version;
    s->expires = expires;
    s->created = apr_time_now();
}

/* Does a copy from a member look like a session that never came back? The
 * wire does not say, but its creator gave it SessionClusterNewSessionTTL to
 * live at version 1, and a client coming back moves the expiry to the idle
 * timeout or SessionMaxAge (a touch) or makes a new version. (A session
 * that came back, never changed, and is copied here by a state transfer in
 * its last SessionClusterNewSessionTTL counts as new: it may be evicted.) */
static int looks_new(const sc_node *node, apr_uint64_t version,
                     apr_time_t expires, apr_time_t now)
{
    return version == 1
        && expires - now <= node->conf->new_session_ttl + SC_NEW_SESSION_SLACK;
}

static int apply_session(sc_node *node, const char *payload, apr_size_t len,
                         apr_pool_t *p)
{
    sc_msg_session m;
    sc_session s;

    if (sc_msg_session_decode(p, payload, len, &m) != APR_SUCCESS)
        return SC_ACK_REFUSED;
    session_from(&s, m.id, m.owner, m.backup, m.version, m.expires);
    s.data = m.data;
    s.len = m.len;
    s.fresh = looks_new(node, m.version, m.expires, s.created);
    if (s.fresh)
        sc_node_relieve(node, node->s, 0);
    return store_status(sc_store_put_newer(node->store, &s, apr_time_now()));
}

/* A delta applies only on exactly its base version. */
static int apply_delta(sc_node *node, const char *payload, apr_size_t len,
                       apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    sc_msg_delta m;
    sc_session cur, s;
    const char *data;

    if (sc_msg_delta_decode(p, payload, len, &m) != APR_SUCCESS)
        return SC_ACK_REFUSED;
    if (sc_store_get(node->store, m.id, now, p, &cur) != APR_SUCCESS
        || (cur.proxy && cur.version <= m.version))
        return SC_ACK_NEED_WHOLE;       /* (a proxy: just made the backup) */
    if (m.version == m.base_version && !m.len) {
        /* a touch: only the expiry moves, on exactly that version */
        if (cur.tombstone || cur.version > m.version)
            return SC_ACK_STALE;
        if (cur.version < m.version)
            return SC_ACK_NEED_WHOLE;
        return store_status(sc_store_touch(node->store, m.id, m.expires, now));
    }
    if (cur.version >= m.version || cur.tombstone)
        return SC_ACK_STALE;            /* (invalidation is final) */
    if (cur.version != m.base_version)
        return SC_ACK_NEED_WHOLE;
    if (sc_kv_apply(p, cur.data, m.patch, &data) != APR_SUCCESS)
        return SC_ACK_REFUSED;
    session_from(&s, m.id, m.owner, cur.backup, m.version, m.expires);
    s.created = cur.created;
    s.data = data;
    s.len = strlen(data);
    return store_status(sc_store_put_newer(node->store, &s, now));
}

static int apply_invalidate(sc_node *node, const char *payload, apr_size_t len,
                            const char *sender, apr_pool_t *p)
{
    sc_msg_invalidate m;
    sc_session s;

    if (sc_msg_invalidate_decode(p, payload, len, &m) != APR_SUCCESS)
        return SC_ACK_REFUSED;
    session_from(&s, m.id, sender, "", m.version, m.until);
    s.tombstone = 1;
    s.data = "";
    return store_status(sc_store_put_newer(node->store, &s, apr_time_now()));
}

/* Backup manager: where a session lives now. This node keeps its data when
 * the location names it (the data comes in its own frame); anywhere else
 * the entry becomes a proxy. Proxies are not touched on every request, so
 * they outlive the expiry they were told by one idle timeout. */
static int apply_location(sc_node *node, const char *payload, apr_size_t len,
                          apr_pool_t *p)
{
    const char *self = node->conf->route;
    apr_time_t now = apr_time_now();
    sc_msg_location m;
    sc_session s, cur;
    int fresh;

    if (sc_msg_location_decode(p, payload, len, &m) != APR_SUCCESS)
        return SC_ACK_REFUSED;
    if ((!strcmp(m.owner, self) || !strcmp(m.backup, self))
        && sc_store_get(node->store, m.id, now, p, &cur) == APR_SUCCESS
        && !cur.proxy && !cur.tombstone)
        return SC_ACK_STALE;
    /* a new session's location lives as long as the session may */
    fresh = looks_new(node, m.version, m.expires, now);
    session_from(&s, m.id, m.owner, m.backup, m.version,
                 fresh ? m.expires : m.expires + SC_IDLE_TIMEOUT);
    s.fresh = fresh;
    if (s.fresh)
        sc_node_relieve(node, node->s, 0);
    s.proxy = 1;
    s.data = "";
    return store_status(sc_store_put_newer(node->store, &s, now));
}

int sc_apply_frame(sc_node *node, int type, const char *payload, apr_size_t len,
                   const char *sender, apr_pool_t *p)
{
    switch (type) {
    case SC_MSG_LOCATION:
        return apply_location(node, payload, len, p);
    case SC_MSG_SESSION:
        return apply_session(node, payload, len, p);
    case SC_MSG_DELTA:
        return apply_delta(node, payload, len, p);
    case SC_MSG_INVALIDATE:
        return apply_invalidate(node, payload, len, sender, p);
    }
    return SC_ACK_REFUSED;
}

apr_status_t sc_apply_describe(apr_pool_t *p, const sc_session *s, int *type,
                               const char **out, apr_size_t *len)
{
    char *buf;
    apr_status_t rv;

    if (s->tombstone) {
        sc_msg_invalidate m = { s->id, s->version, s->expires };
        *type = SC_MSG_INVALIDATE;
        rv = sc_msg_invalidate_encode(p, &m, &buf, len);
    }
    else if (s->proxy) {
        *type = SC_MSG_LOCATION;
        rv = sc_apply_location_of(p, s, &buf, len);
    }
    else {
        sc_msg_session m = { s->id, s->owner, s->backup, s->version, s->expires,
                             s->data, s->len };
        *type = SC_MSG_SESSION;
        rv = sc_msg_session_encode(p, &m, &buf, len);
    }
    *out = buf;
    return rv;
}

apr_status_t sc_apply_location_of(apr_pool_t *p, const sc_session *s,
                                  char **out, apr_size_t *len)
{
    sc_msg_location m = { s->id, s->owner, s->backup, s->version, s->expires };
    return sc_msg_location_encode(p, &m, out, len);
}

/* The session id a change is about. */
static const char *id_of(int type, const char *payload, apr_size_t len,
                         apr_pool_t *p)
{
    sc_msg_session ms;
    sc_msg_delta md;
    sc_msg_invalidate mi;

    if (type == SC_MSG_DELTA && sc_msg_delta_decode(p, payload, len, &md) == APR_SUCCESS)
        return md.id;
    if (type == SC_MSG_SESSION
        && sc_msg_session_decode(p, payload, len, &ms) == APR_SUCCESS)
        return ms.id;
    if (type == SC_MSG_INVALIDATE
        && sc_msg_invalidate_decode(p, payload, len, &mi) == APR_SUCCESS)
        return mi.id;
    return NULL;
}

apr_status_t sc_apply_current(sc_node *node, int type, const char *payload,
                              apr_size_t len, apr_pool_t *p, int *out_type,
                              const char **out, apr_size_t *out_len)
{
    const char *id = id_of(type, payload, len, p);
    sc_session s;
    apr_status_t rv;

    if (!id)
        return APR_EINVAL;
    if ((rv = sc_store_get(node->store, id, apr_time_now(), p, &s)) != APR_SUCCESS)
        return rv;
    return sc_apply_describe(p, &s, out_type, out, out_len);
}

/* ---- state transfer records --------------------------------------------- */

apr_status_t sc_apply_state_record(sc_node *node, const sc_session *s,
                                   apr_pool_t *p, const char **rec,
                                   apr_size_t *len)
{
    int type;

    if (sc_node_manager(node)->locations && !s->tombstone)
        return sc_apply_location_of(p, s, (char **)rec, len);
    return sc_apply_describe(p, s, &type, rec, len);
}

apr_status_t sc_apply_state_chunk(sc_node *node, const char *b, apr_size_t len,
                                  const char *sender, apr_pool_t *p,
                                  apr_uint32_t *received)
{
    apr_array_header_t *records;
    int i;

    if (sc_msg_chunk_decode(p, b, len, &records) != APR_SUCCESS)
        return APR_EINVAL;
    for (i = 0; i < records->nelts; i++) {
        const sc_msg_record *r = &APR_ARRAY_IDX(records, i, sc_msg_record);
        sc_msg_invalidate inv;
        int status;
        /* an INVALIDATE payload is shorter than any SESSION or LOCATION
         * payload with an id of the same length: its decoder tells them apart */
        if (sc_msg_invalidate_decode(p, r->data, r->len, &inv) == APR_SUCCESS)
            status = apply_invalidate(node, r->data, r->len, sender, p);
        else if (sc_node_manager(node)->locations)
            status = apply_location(node, r->data, r->len, p);
        else
            status = apply_session(node, r->data, r->len, p);
        if (status == SC_ACK_REFUSED)
            return APR_EINVAL;
        (*received)++;
    }
    return APR_SUCCESS;
}
