/* sc_id.c - session ids and cookie values (see sc_id.h). */
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>

#include <openssl/evp.h>

#include "sc_id.h"

static const char sc_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int sc_name_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

apr_status_t sc_id_generate(char *base)
{
    unsigned char raw[SC_ID_RANDOM_BYTES];
    apr_status_t rv = apr_generate_random_bytes(raw, sizeof(raw));
    int i, o = 0;

    if (rv != APR_SUCCESS)
        return rv;
    for (i = 0; i < SC_ID_RANDOM_BYTES; i += 3) {
        apr_uint32_t v = (raw[i] << 16) | (raw[i + 1] << 8) | raw[i + 2];
        base[o++] = sc_b64url[(v >> 18) & 63];
        base[o++] = sc_b64url[(v >> 12) & 63];
        base[o++] = sc_b64url[(v >> 6) & 63];
        base[o++] = sc_b64url[v & 63];
    }
    base[o] = '\0';
    return APR_SUCCESS;
}

int sc_route_valid(const char *route)
{
    apr_size_t n = 0;

    if (!route || !*route)
        return 0;
    for (; route[n]; n++) {
        if (n >= SC_ROUTE_LEN_MAX || !sc_name_char(route[n]))
            return 0;
    }
    return 1;
}

apr_status_t sc_id_parse(apr_pool_t *p, const char *value, char *base,
                         const char **route)
{
    int i;

    if (!value)
        return APR_EINVAL;
    for (i = 0; i < SC_ID_BASE_LEN; i++) {
        if (!sc_name_char(value[i]))
            return APR_EINVAL;
    }
    if (value[i] == '\0') {
        *route = "";
    }
    else if (value[i] == '.' && sc_route_valid(value + i + 1)) {
        *route = apr_pstrdup(p, value + i + 1);
    }
    else {
        return APR_EINVAL;
    }
    memcpy(base, value, SC_ID_BASE_LEN);
    base[SC_ID_BASE_LEN] = '\0';
    return APR_SUCCESS;
}

const char *sc_id_cookie_value(apr_pool_t *p, const char *base,
                               const char *route)
{
    return apr_pstrcat(p, base, ".", route, NULL);
}

const char *sc_id_digest(apr_pool_t *p, const char *id)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char *hex = apr_palloc(p, SC_ID_DIGEST_LEN + 1);

    if (!id || !EVP_Digest(id, strlen(id), md, &len, EVP_sha256(), NULL)
        || len < SC_ID_DIGEST_LEN / 2)
        return "?";
    apr_snprintf(hex, SC_ID_DIGEST_LEN + 1, "%02x%02x%02x%02x%02x%02x", md[0],
                 md[1], md[2], md[3], md[4], md[5]);
    return hex;
}
