/* sc_codec.c - validation, reader and writer shared by the codec's files
 * (see sc_codec.h). */
#include <string.h>

#include <apr_strings.h>

#include "sc_codec.h"
#include "sc_id.h"

/* ---- validation shared by encoders and decoders ------------------------- */

int sc_codec_id_valid(const char *id, apr_size_t len)
{
    apr_size_t i;

    if (len == 0 || len >= SC_ID_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        if (!sc_name_char((unsigned char)id[i]))
            return 0;
    }
    return 1;
}

int sc_codec_route_valid_n(const char *route, apr_size_t len)
{
    char buf[SC_ROUTE_MAX];

    if (len == 0 || len >= sizeof(buf) || memchr(route, '\0', len))
        return 0;
    memcpy(buf, route, len);
    buf[len] = '\0';
    return sc_route_valid(buf);
}

int sc_codec_blob_valid(const char *data, apr_size_t len)
{
    return len <= SC_SESSION_MAX && (len == 0 || !memchr(data, '\0', len));
}

int sc_codec_check_id(const char *id)
{
    return id && sc_codec_id_valid(id, strnlen(id, SC_ID_MAX));
}

int sc_codec_check_backup(const char *route)
{
    return route && (!*route || sc_route_valid(route));
}

int sc_codec_check_blob(const char *data, apr_size_t len)
{
    return (data || len == 0) && sc_codec_blob_valid(data, len);
}

/* ---- the reader's strings -------------------------------------------------- */

int sc_read_str(sc_reader *r, int wide, apr_size_t max, apr_pool_t *p,
                const char **out, apr_size_t *len)
{
    const unsigned char *b;
    apr_size_t n;

    if (wide) {
        apr_uint32_t v;
        if (!sc_read_u32(r, &v))
            return 0;
        n = v;
    }
    else {
        apr_uint16_t v;
        if (!sc_read_u16(r, &v))
            return 0;
        n = v;
    }
    if (n > max || !(b = sc_take(r, n)))
        return 0;
    *out = apr_pstrmemdup(p, (const char *)b, n);
    if (len)
        *len = n;
    return 1;
}

int sc_read_id(sc_reader *r, apr_pool_t *p, const char **id)
{
    apr_size_t n;
    return sc_read_str(r, 0, SC_ID_MAX - 1, p, id, &n)
        && sc_codec_id_valid(*id, n);
}

int sc_read_route(sc_reader *r, apr_pool_t *p, const char **route)
{
    apr_size_t n;
    return sc_read_str(r, 0, SC_ROUTE_LEN_MAX, p, route, &n)
        && sc_codec_route_valid_n(*route, n);
}

int sc_read_backup(sc_reader *r, apr_pool_t *p, const char **route)
{
    apr_size_t n;
    return sc_read_str(r, 0, SC_ROUTE_LEN_MAX, p, route, &n)
        && (n == 0 || sc_codec_route_valid_n(*route, n));
}

int sc_read_blob(sc_reader *r, apr_pool_t *p, const char **data,
                 apr_size_t *len)
{
    return sc_read_str(r, 1, SC_SESSION_MAX, p, data, len)
        && sc_codec_blob_valid(*data, *len);
}

/* ---- the writer's strings -------------------------------------------------- */

void sc_write_str16(sc_writer *w, const char *s)
{
    apr_size_t n = strlen(s);
    sc_write_u16(w, (apr_uint16_t)n);
    sc_write_bytes(w, s, n);
}

void sc_write_blob(sc_writer *w, const char *b, apr_size_t n)
{
    sc_write_u32(w, (apr_uint32_t)n);
    sc_write_bytes(w, b, n);
}
