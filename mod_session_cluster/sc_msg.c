/* sc_msg.c - the message codecs (see sc_msg.h).
 *
 * Payload layouts (every integer big-endian; apr_time_t as two's complement):
 *   session:    u16 id_len id | u16 owner_len owner | u16 backup_len backup |
 *               u64 version | i64 expires | u32 data_len data
 *   location:   a session with no data (data_len 0)
 *   delta:      u16 id_len id | u16 owner_len owner | u64 base_version |
 *               u64 version | i64 expires | u32 patch_len patch
 *   invalidate: u16 id_len id | u64 version | i64 until
 *   id (FETCH): u16 id_len id
 *   ack:        u64 counter | u32 status (an sc_ack_status)
 *   batch:      u32 count | count x (u8 type | u32 len | payload)
 *   batch applied: u64 counter | u32 count | count x u8 status
 *   state chunk:   u32 count | count x (u32 len | payload)
 *   u64:        u64
 * Ids are 1..SC_ID_MAX-1 chars of [A-Za-z0-9_-] (what sc_id issues), owners
 * are valid routes, backups valid routes or empty, data and patches hold at
 * most SC_SESSION_MAX bytes and no NUL byte (mod_session's encoding is a C
 * string; an embedded NUL would make the length and the string disagree).
 */
#include <string.h>

#include <apr_strings.h>

#include "sc_bytes.h"
#include "sc_codec.h"
#include "sc_id.h"
#include "sc_msg.h"

apr_status_t sc_msg_session_encode(apr_pool_t *p, const sc_msg_session *m,
                                   char **out, apr_size_t *len)
{
    sc_writer w;

    if (!sc_codec_check_id(m->id) || !m->owner || !sc_route_valid(m->owner)
        || !sc_codec_check_backup(m->backup)
        || !sc_codec_check_blob(m->data, m->len))
        return APR_EINVAL;
    *len = 2 + strlen(m->id) + 2 + strlen(m->owner) + 2 + strlen(m->backup)
           + 8 + 8 + 4 + m->len;
    *out = apr_palloc(p, *len);
    w.at = (unsigned char *)*out;
    sc_write_str16(&w, m->id);
    sc_write_str16(&w, m->owner);
    sc_write_str16(&w, m->backup);
    sc_write_u64(&w, m->version);
    sc_write_u64(&w, (apr_uint64_t)m->expires);
    sc_write_blob(&w, m->data, m->len);
    return APR_SUCCESS;
}

apr_status_t sc_msg_session_decode(apr_pool_t *p, const char *buf,
                                   apr_size_t len, sc_msg_session *m)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };

    if (!sc_read_id(&r, p, &m->id) || !sc_read_route(&r, p, &m->owner)
        || !sc_read_backup(&r, p, &m->backup)
        || !sc_read_u64(&r, &m->version) || !sc_read_time(&r, &m->expires)
        || !sc_read_blob(&r, p, &m->data, &m->len) || !sc_read_done(&r))
        return APR_EINVAL;
    return APR_SUCCESS;
}

apr_status_t sc_msg_location_encode(apr_pool_t *p, const sc_msg_location *m,
                                    char **out, apr_size_t *len)
{
    sc_msg_session whole = { m->id, m->owner, m->backup, m->version,
                             m->expires, "", 0 };
    return sc_msg_session_encode(p, &whole, out, len);
}

apr_status_t sc_msg_location_decode(apr_pool_t *p, const char *buf,
                                    apr_size_t len, sc_msg_location *m)
{
    sc_msg_session whole;

    if (sc_msg_session_decode(p, buf, len, &whole) != APR_SUCCESS || whole.len)
        return APR_EINVAL;
    m->id = whole.id;
    m->owner = whole.owner;
    m->backup = whole.backup;
    m->version = whole.version;
    m->expires = whole.expires;
    return APR_SUCCESS;
}

apr_status_t sc_msg_id_encode(apr_pool_t *p, const char *id, char **out,
                              apr_size_t *len)
{
    sc_writer w;

    if (!sc_codec_check_id(id))
        return APR_EINVAL;
    *len = 2 + strlen(id);
    *out = apr_palloc(p, *len);
    w.at = (unsigned char *)*out;
    sc_write_str16(&w, id);
    return APR_SUCCESS;
}

apr_status_t sc_msg_id_decode(apr_pool_t *p, const char *buf, apr_size_t len,
                              const char **id)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };

    if (!sc_read_id(&r, p, id) || !sc_read_done(&r))
        return APR_EINVAL;
    return APR_SUCCESS;
}

apr_status_t sc_msg_delta_encode(apr_pool_t *p, const sc_msg_delta *m,
                                 char **out, apr_size_t *len)
{
    sc_writer w;

    if (!sc_codec_check_id(m->id) || !m->owner || !sc_route_valid(m->owner)
        || !sc_codec_check_blob(m->patch, m->len))
        return APR_EINVAL;
    *len = 2 + strlen(m->id) + 2 + strlen(m->owner) + 8 + 8 + 8 + 4 + m->len;
    *out = apr_palloc(p, *len);
    w.at = (unsigned char *)*out;
    sc_write_str16(&w, m->id);
    sc_write_str16(&w, m->owner);
    sc_write_u64(&w, m->base_version);
    sc_write_u64(&w, m->version);
    sc_write_u64(&w, (apr_uint64_t)m->expires);
    sc_write_blob(&w, m->patch, m->len);
    return APR_SUCCESS;
}

apr_status_t sc_msg_delta_decode(apr_pool_t *p, const char *buf,
                                 apr_size_t len, sc_msg_delta *m)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };

    if (!sc_read_id(&r, p, &m->id) || !sc_read_route(&r, p, &m->owner)
        || !sc_read_u64(&r, &m->base_version) || !sc_read_u64(&r, &m->version)
        || !sc_read_time(&r, &m->expires)
        || !sc_read_blob(&r, p, &m->patch, &m->len) || !sc_read_done(&r))
        return APR_EINVAL;
    return APR_SUCCESS;
}

apr_status_t sc_msg_invalidate_encode(apr_pool_t *p, const sc_msg_invalidate *m,
                                      char **out, apr_size_t *len)
{
    sc_writer w;

    if (!sc_codec_check_id(m->id))
        return APR_EINVAL;
    *len = 2 + strlen(m->id) + 8 + 8;
    *out = apr_palloc(p, *len);
    w.at = (unsigned char *)*out;
    sc_write_str16(&w, m->id);
    sc_write_u64(&w, m->version);
    sc_write_u64(&w, (apr_uint64_t)m->until);
    return APR_SUCCESS;
}

apr_status_t sc_msg_invalidate_decode(apr_pool_t *p, const char *buf,
                                      apr_size_t len, sc_msg_invalidate *m)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };

    if (!sc_read_id(&r, p, &m->id) || !sc_read_u64(&r, &m->version)
        || !sc_read_time(&r, &m->until) || !sc_read_done(&r))
        return APR_EINVAL;
    return APR_SUCCESS;
}

static int ack_status_valid(apr_uint32_t s)
{
    return s <= SC_ACK_NOTFOUND;
}

apr_status_t sc_msg_ack_encode(apr_pool_t *p, const sc_msg_ack *m,
                               char **out, apr_size_t *len)
{
    sc_writer w;

    if (m->status < 0 || !ack_status_valid((apr_uint32_t)m->status))
        return APR_EINVAL;
    *len = 8 + 4;
    *out = apr_palloc(p, *len);
    w.at = (unsigned char *)*out;
    sc_write_u64(&w, m->counter);
    sc_write_u32(&w, (apr_uint32_t)m->status);
    return APR_SUCCESS;
}

apr_status_t sc_msg_ack_decode(const char *buf, apr_size_t len, sc_msg_ack *m)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };
    apr_uint32_t status;

    if (!sc_read_u64(&r, &m->counter) || !sc_read_u32(&r, &status)
        || !sc_read_done(&r)
        || !ack_status_valid(status))
        return APR_EINVAL;
    m->status = (int)status;
    return APR_SUCCESS;
}

int sc_wire_is_change(int t)
{
    return t == SC_MSG_SESSION || t == SC_MSG_DELTA || t == SC_MSG_INVALIDATE
        || t == SC_MSG_LOCATION;
}

apr_status_t sc_msg_batch_encode(apr_pool_t *p, const sc_msg_change *changes,
                                 int n, char **out, apr_size_t *len)
{
    apr_size_t total = 4;
    sc_writer w;
    int i;

    if (n < 1 || n > SC_WIRE_BATCH_MAX)
        return APR_EINVAL;
    for (i = 0; i < n; i++) {
        if (!sc_wire_is_change(changes[i].type)
            || changes[i].len > SC_WIRE_MAX_BODY)
            return APR_EINVAL;
        total += 5 + changes[i].len;
    }
    if (total > SC_WIRE_BATCH_BYTES)
        return APR_EINVAL;
    *len = total;
    *out = apr_palloc(p, total);
    w.at = (unsigned char *)*out;
    sc_write_u32(&w, (apr_uint32_t)n);
    for (i = 0; i < n; i++) {
        *w.at++ = (unsigned char)changes[i].type;
        sc_write_u32(&w, (apr_uint32_t)changes[i].len);
        sc_write_bytes(&w, changes[i].data, changes[i].len);
    }
    return APR_SUCCESS;
}

apr_status_t sc_msg_batch_decode(apr_pool_t *p, const char *buf, apr_size_t len,
                                 sc_msg_change **changes, int *n)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };
    apr_uint32_t count, i;

    /* every change takes at least 5 bytes: no huge array up front */
    if (len > SC_WIRE_BATCH_BYTES || !sc_read_u32(&r, &count) || count < 1
        || count > SC_WIRE_BATCH_MAX || count > r.left / 5)
        return APR_EINVAL;
    *changes = apr_palloc(p, count * sizeof(**changes));
    for (i = 0; i < count; i++) {
        unsigned char type;
        apr_uint32_t clen;
        const unsigned char *data;
        if (!sc_read_u8(&r, &type) || !sc_wire_is_change(type)
            || !sc_read_u32(&r, &clen) || !(data = sc_take(&r, clen)))
            return APR_EINVAL;
        (*changes)[i].type = type;
        (*changes)[i].data = (const char *)data;
        (*changes)[i].len = clen;
    }
    *n = (int)count;
    return sc_read_done(&r) ? APR_SUCCESS : APR_EINVAL;
}

apr_status_t sc_msg_batch_applied_encode(apr_pool_t *p,
                                         const sc_msg_batch_applied *m,
                                         char **out, apr_size_t *len)
{
    sc_writer w;
    int i;

    if (m->n < 1 || m->n > SC_WIRE_BATCH_MAX)
        return APR_EINVAL;
    for (i = 0; i < m->n; i++)
        if (!ack_status_valid(m->status[i]))
            return APR_EINVAL;
    *len = 8 + 4 + (apr_size_t)m->n;
    *out = apr_palloc(p, *len);
    w.at = (unsigned char *)*out;
    sc_write_u64(&w, m->counter);
    sc_write_u32(&w, (apr_uint32_t)m->n);
    sc_write_bytes(&w, m->status, (apr_size_t)m->n);
    return APR_SUCCESS;
}

apr_status_t sc_msg_batch_applied_decode(apr_pool_t *p, const char *buf,
                                         apr_size_t len, sc_msg_batch_applied *m)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };
    const unsigned char *st;
    apr_uint32_t count, i;

    if (!sc_read_u64(&r, &m->counter) || !sc_read_u32(&r, &count) || count < 1
        || count > SC_WIRE_BATCH_MAX || !(st = sc_take(&r, count))
        || !sc_read_done(&r))
        return APR_EINVAL;
    for (i = 0; i < count; i++)
        if (!ack_status_valid(st[i]))
            return APR_EINVAL;
    m->n = (int)count;
    m->status = apr_pmemdup(p, st, count);
    return APR_SUCCESS;
}

apr_status_t sc_msg_u64_encode(apr_pool_t *p, apr_uint64_t v, char **out,
                               apr_size_t *len)
{
    *len = 8;
    *out = apr_palloc(p, 8);
    put_u64((unsigned char *)*out, v);
    return APR_SUCCESS;
}

apr_status_t sc_msg_u64_decode(const char *buf, apr_size_t len, apr_uint64_t *v)
{
    sc_reader r = { (const unsigned char *)buf, buf ? len : 0 };

    if (!sc_read_u64(&r, v) || !sc_read_done(&r))
        return APR_EINVAL;
    return APR_SUCCESS;
}

apr_status_t sc_msg_chunk_decode(apr_pool_t *p, const char *buf, apr_size_t len,
                                 apr_array_header_t **records)
{
    const unsigned char *b = (const unsigned char *)buf;
    apr_uint32_t count, i;
    apr_size_t at = 4;

    if (len < 4)
        return APR_EINVAL;
    count = get_u32(b);
    /* every record takes at least its 4-byte length: no huge array up front */
    if (count > (len - 4) / 4)
        return APR_EINVAL;
    *records = apr_array_make(p, count ? (int)count : 1, sizeof(sc_msg_record));
    for (i = 0; i < count; i++) {
        sc_msg_record *r;
        apr_uint32_t rlen;
        if (len - at < 4 || (rlen = get_u32(b + at)) > len - at - 4)
            return APR_EINVAL;
        r = apr_array_push(*records);
        r->data = buf + at + 4;
        r->len = rlen;
        at += 4 + (apr_size_t)rlen;
    }
    return at == len ? APR_SUCCESS : APR_EINVAL;
}
