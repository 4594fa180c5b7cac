/* sc_codec.h - what the codec's files share: validation, a reader, a writer.
 * Internal to the codec (sc_frame.c, sc_msg.c, sc_heartbeat.c): no other
 * file includes it, and sc_wire.h does not either.
 *
 * Contract:
 *  - Validation: the same rules check what we encode and what we decode, so
 *    we never send what a peer must refuse. Ids are 1..SC_ID_MAX-1 chars of
 *    [A-Za-z0-9_-] (what sc_id issues), routes are sc_route_valid, session
 *    data and patches hold at most SC_SESSION_MAX bytes and no NUL byte.
 *  - sc_reader: a cursor over received bytes. Every read returns 0 instead
 *    of going past the end; a string's length is checked against its cap
 *    before anything is allocated, then it is copied into the pool with a
 *    NUL after it.
 *  - sc_writer: a cursor into a buffer the encoder sized up front from the
 *    same fields; it checks nothing.
 *  - Integers network order (sc_bytes.h). Only APR; no httpd headers.
 */
#ifndef SC_CODEC_H
#define SC_CODEC_H

#include <string.h>

#include <apr_pools.h>
#include <apr_time.h>

#include "sc_bytes.h"
#include "sc_limits.h"

/* ---- validation shared by encoders and decoders ------------------------- */

/* An id given as bytes: 1..SC_ID_MAX-1 id chars. */
int sc_codec_id_valid(const char *id, apr_size_t len);
/* A route given as bytes (not NUL-terminated): copy, then sc_route_valid. */
int sc_codec_route_valid_n(const char *route, apr_size_t len);
/* Session data or a patch: at most SC_SESSION_MAX bytes, no NUL. */
int sc_codec_blob_valid(const char *data, apr_size_t len);

/* The encoders' side: NUL-terminated fields that may be NULL. */
int sc_codec_check_id(const char *id);
int sc_codec_check_backup(const char *route);     /* "" or a valid route */
int sc_codec_check_blob(const char *data, apr_size_t len);

/* ---- a bounds-checked reader over a payload ------------------------------ */

typedef struct {
    const unsigned char *at;
    apr_size_t left;
} sc_reader;

/* n bytes, or NULL (and nothing consumed) when fewer are left. */
static APR_INLINE const unsigned char *sc_take(sc_reader *r, apr_size_t n)
{
    const unsigned char *b = r->at;

    if (n > r->left)
        return NULL;
    r->at += n;
    r->left -= n;
    return b;
}

static APR_INLINE int sc_read_u8(sc_reader *r, unsigned char *v)
{
    const unsigned char *b = sc_take(r, 1);
    if (!b)
        return 0;
    *v = *b;
    return 1;
}

static APR_INLINE int sc_read_u16(sc_reader *r, apr_uint16_t *v)
{
    const unsigned char *b = sc_take(r, 2);
    if (!b)
        return 0;
    *v = get_u16(b);
    return 1;
}

static APR_INLINE int sc_read_u32(sc_reader *r, apr_uint32_t *v)
{
    const unsigned char *b = sc_take(r, 4);
    if (!b)
        return 0;
    *v = get_u32(b);
    return 1;
}

static APR_INLINE int sc_read_u64(sc_reader *r, apr_uint64_t *v)
{
    const unsigned char *b = sc_take(r, 8);
    if (!b)
        return 0;
    *v = get_u64(b);
    return 1;
}

/* apr_time_t as a two's complement u64 */
static APR_INLINE int sc_read_time(sc_reader *r, apr_time_t *t)
{
    apr_uint64_t v;
    if (!sc_read_u64(r, &v))
        return 0;
    *t = (apr_time_t)v;
    return 1;
}

/* Nothing left: decoders reject trailing bytes. */
static APR_INLINE int sc_read_done(const sc_reader *r)
{
    return r->left == 0;
}

/* A u16- (wide 0) or u32-prefixed (wide 1) string of at most `max` bytes,
 * copied into the pool with a NUL after it; *len may be NULL. */
int sc_read_str(sc_reader *r, int wide, apr_size_t max, apr_pool_t *p,
                const char **out, apr_size_t *len);
/* u16-prefixed: a valid id; a valid route; a backup route ("" or valid). */
int sc_read_id(sc_reader *r, apr_pool_t *p, const char **id);
int sc_read_route(sc_reader *r, apr_pool_t *p, const char **route);
int sc_read_backup(sc_reader *r, apr_pool_t *p, const char **route);
/* u32-prefixed session data or patch (sc_codec_blob_valid). */
int sc_read_blob(sc_reader *r, apr_pool_t *p, const char **data,
                 apr_size_t *len);

/* ---- a writer into a buffer sized up front -------------------------------- */

typedef struct {
    unsigned char *at;
} sc_writer;

static APR_INLINE void sc_write_u16(sc_writer *w, apr_uint16_t v) { put_u16(w->at, v); w->at += 2; }
static APR_INLINE void sc_write_u32(sc_writer *w, apr_uint32_t v) { put_u32(w->at, v); w->at += 4; }
static APR_INLINE void sc_write_u64(sc_writer *w, apr_uint64_t v) { put_u64(w->at, v); w->at += 8; }

static APR_INLINE void sc_write_bytes(sc_writer *w, const void *b, apr_size_t n)
{
    if (n)
        memcpy(w->at, b, n);
    w->at += n;
}

/* u16 length, then the string's bytes (no NUL) */
void sc_write_str16(sc_writer *w, const char *s);
/* u32 length, then n bytes */
void sc_write_blob(sc_writer *w, const char *b, apr_size_t n);

#endif
