/* sc_heartbeat.c - multicast heartbeat datagrams (see sc_heartbeat.h).
 *
 * A malformed datagram or a sealed/unsealed mismatch is APR_EINVAL, a tag
 * no key verifies APR_EGENERAL; *why says which in a few static words.
 */
#include <string.h>

#include <apr_general.h>

#include <openssl/crypto.h>

#include "sc_codec.h"
#include "sc_frame.h"
#include "sc_heartbeat.h"
#include "sc_id.h"

#define SC_HB_MAGIC "SCHB"

/* host:port as ClusterListen takes it: names, IPv4, [IPv6] */
static int listen_valid(const char *s, apr_size_t len)
{
    apr_size_t i;
    if (len == 0 || len >= SC_HB_LISTEN_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!sc_name_char(c) && c != '.' && c != ':' && c != '['
            && c != ']')
            return 0;
    }
    return 1;
}

apr_status_t sc_heartbeat_sender_init(sc_heartbeat_sender *snd,
                                      const unsigned char *key)
{
    apr_status_t rv;

    memset(snd, 0, sizeof(*snd));
    if ((rv = apr_generate_random_bytes(snd->random, sizeof(snd->random)))
        != APR_SUCCESS)
        return rv;
    snd->sealed = key != NULL;
    return key ? sc_seal_key(key, snd->random, snd->key) : APR_SUCCESS;
}

apr_status_t sc_heartbeat_seal(const sc_heartbeat_sender *snd,
                               const sc_heartbeat *hb, apr_pool_t *p,
                               char **out, apr_size_t *len)
{
    apr_size_t header, body;
    unsigned char *buf;
    sc_writer w;

    if (!hb->route || !sc_route_valid(hb->route) || !hb->listen
        || !listen_valid(hb->listen, strlen(hb->listen))
        || hb->manager < 0 || hb->manager > 255 || hb->ready < 0 || hb->ready > 1)
        return APR_EINVAL;
    header = 4 + 1 + 1 + SC_WIRE_RANDOM_BYTES + 2 + strlen(hb->route) + 8;
    body = 2 + strlen(hb->listen) + 8 + 1 + 1;
    *len = header + body + (snd->sealed ? SC_WIRE_TAG_BYTES : 0);
    buf = apr_palloc(p, *len);
    w.at = buf;
    sc_write_bytes(&w, SC_HB_MAGIC, 4);
    *w.at++ = SC_WIRE_VERSION;
    *w.at++ = snd->sealed ? SC_HB_F_SEALED : 0;
    sc_write_bytes(&w, snd->random, SC_WIRE_RANDOM_BYTES);
    sc_write_str16(&w, hb->route);
    sc_write_u64(&w, hb->stamp);
    sc_write_str16(&w, hb->listen);
    sc_write_u64(&w, hb->epoch);
    *w.at++ = (unsigned char)hb->manager;
    *w.at++ = (unsigned char)hb->ready;
    *out = (char *)buf;
    if (!snd->sealed)
        return APR_SUCCESS;
    return sc_seal(snd->key, hb->stamp, buf, header, buf + header, body,
                    buf + header, buf + header + body);
}

apr_status_t sc_heartbeat_open(const unsigned char (*keys)[SC_WIRE_KEY_BYTES],
                               int nkeys, const char *in,
                               apr_size_t len, apr_pool_t *p, sc_heartbeat *hb,
                               const char **why)
{
    const unsigned char *b = (const unsigned char *)in, *random;
    unsigned char flags, version, manager, ready, key[SC_WIRE_KEY_BYTES];
    unsigned char *plain;
    apr_size_t header, body, listen_len;
    sc_reader r;
    apr_status_t rv = APR_EGENERAL;
    int i, sealed = keys && nkeys > 0;

    *why = "malformed heartbeat";
    if (!in || len > SC_HB_MAX || len < 4 || memcmp(b, SC_HB_MAGIC, 4))
        return APR_EINVAL;
    r.at = b + 4;
    r.left = len - 4;
    if (!sc_read_u8(&r, &version) || version != SC_WIRE_VERSION
        || !sc_read_u8(&r, &flags) || (flags & ~SC_HB_F_SEALED)
        || !(random = sc_take(&r, SC_WIRE_RANDOM_BYTES))
        || !sc_read_route(&r, p, &hb->route) || !sc_read_u64(&r, &hb->stamp))
        return APR_EINVAL;
    if (((flags & SC_HB_F_SEALED) != 0) != sealed) {
        *why = sealed ? "unsealed heartbeat, but ClusterSecretFile is set here"
                      : "sealed heartbeat, but ClusterSecretFile is none here";
        return APR_EINVAL;
    }
    header = len - r.left;
    body = r.left;
    if (sealed) {
        if (body < SC_WIRE_TAG_BYTES)
            return APR_EINVAL;
        body -= SC_WIRE_TAG_BYTES;
    }
    plain = apr_palloc(p, body + 1);
    /* any key held may have sealed it: the newest, or the one rotated out */
    for (i = 0; sealed && i < nkeys && rv != APR_SUCCESS; i++) {
        rv = sc_seal_key(keys[i], random, key);
        if (rv == APR_SUCCESS)
            rv = sc_seal_open(key, hb->stamp, b, header, b + header, body,
                          b + header + body, plain);
        OPENSSL_cleanse(key, sizeof(key));
    }
    if (sealed && rv != APR_SUCCESS) {
        *why = "heartbeat authentication failed (another secret, or tampered)";
        return APR_EGENERAL;
    }
    if (!sealed && body)
        memcpy(plain, b + header, body);
    r.at = plain;
    r.left = body;
    if (!sc_read_str(&r, 0, SC_HB_LISTEN_MAX - 1, p, &hb->listen, &listen_len)
        || !listen_valid(hb->listen, listen_len)
        || !sc_read_u64(&r, &hb->epoch) || !sc_read_u8(&r, &manager)
        || !sc_read_u8(&r, &ready) || ready > 1 || !sc_read_done(&r))
        return APR_EINVAL;
    hb->manager = manager;
    hb->ready = ready;
    return APR_SUCCESS;
}
