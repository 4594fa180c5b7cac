/* sc_bytes.h - integers in network byte order, for every encoder of the
 * module (wire frames, payloads, state chunks, the children's requests). */
#ifndef SC_BYTES_H
#define SC_BYTES_H

#include <apr.h>

static APR_INLINE void put_u16(unsigned char *b, apr_uint16_t v)
{
    b[0] = (unsigned char)(v >> 8);
    b[1] = (unsigned char)v;
}

static APR_INLINE void put_u32(unsigned char *b, apr_uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

static APR_INLINE void put_u64(unsigned char *b, apr_uint64_t v)
{
    put_u32(b, (apr_uint32_t)(v >> 32));
    put_u32(b + 4, (apr_uint32_t)v);
}

static APR_INLINE apr_uint16_t get_u16(const unsigned char *b)
{
    return (apr_uint16_t)((b[0] << 8) | b[1]);
}

static APR_INLINE apr_uint32_t get_u32(const unsigned char *b)
{
    return ((apr_uint32_t)b[0] << 24) | ((apr_uint32_t)b[1] << 16)
         | ((apr_uint32_t)b[2] << 8) | b[3];
}

static APR_INLINE apr_uint64_t get_u64(const unsigned char *b)
{
    return ((apr_uint64_t)get_u32(b) << 32) | get_u32(b + 4);
}

#endif
