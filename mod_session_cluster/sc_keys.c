/* sc_keys.c - the cluster secret and its derived keys (see sc_keys.h). */
#include <string.h>

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "sc_keys.h"

/* a key file is a key, never megabytes */
#define SC_KEY_FILE_MAX (64 * 1024)
/* what `ClusterSecretFile none` stands for: public, so it protects nothing */
#define SC_NONE_MATERIAL "mod_session_cluster: ClusterSecretFile none, no secret"

#define SC_INFO_PSK       "sc2 tls psk"
#define SC_INFO_HEARTBEAT "sc2 heartbeat"
#define SC_INFO_ID        "sc2 key id"

apr_status_t sc_keys_hkdf(const unsigned char *ikm, apr_size_t ikm_len,
                          const unsigned char *salt, apr_size_t salt_len,
                          const char *info, unsigned char *out,
                          apr_size_t out_len)
{
    char digest[] = "SHA256";
    EVP_KDF *kdf;
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[5], *at = params;
    int ok = 0;

    /* OSSL_PARAM wants non-const buffers; OpenSSL only reads them */
    *at++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
    *at++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                              (void *)ikm, ikm_len);
    if (salt_len)
        *at++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                                  (void *)salt, salt_len);
    *at++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                              (void *)info, strlen(info));
    *at = OSSL_PARAM_construct_end();
    if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) != NULL) {
        kctx = EVP_KDF_CTX_new(kdf);
        EVP_KDF_free(kdf);
    }
    if (kctx)
        ok = EVP_KDF_derive(kctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(kctx);
    if (!ok) {
        OPENSSL_cleanse(out, out_len);
        ERR_clear_error();
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* ---- what a key file may hold -------------------------------------------- */

static int is_space(unsigned char c)
{
    /* the C locale's isspace(), spelled out so no locale can change it */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
        || c == '\f';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

/* Hex digits only, an even number: decoded into out. */
static int decode_hex(const unsigned char *in, apr_size_t n, unsigned char *out,
                      apr_size_t *len)
{
    apr_size_t i;

    if (n % 2)
        return 0;
    for (i = 0; i < n; i++)
        if (hex_value(in[i]) < 0)
            return 0;
    for (i = 0; i < n / 2; i++)
        out[i] = (unsigned char)(hex_value(in[2 * i]) << 4 | hex_value(in[2 * i + 1]));
    *len = n / 2;
    return 1;
}

/* Base64, lines allowed (`openssl rand -base64 64` wraps them). */
static int decode_base64(const unsigned char *in, apr_size_t n, apr_pool_t *p,
                         unsigned char *out, apr_size_t *len)
{
    unsigned char *packed = apr_palloc(p, n + 1);
    apr_size_t i, m = 0, pad = 0;
    int got = -1;

    for (i = 0; i < n; i++) {
        if (is_space(in[i]))
            continue;
        if (!is_b64(in[i]) || (pad && in[i] != '='))
            break;
        pad += in[i] == '=';
        packed[m++] = in[i];
    }
    if (i == n && m > 0 && m % 4 == 0 && pad <= 2)
        got = EVP_DecodeBlock(out, packed, (int)m);
    OPENSSL_cleanse(packed, m);        /* it is the key, in another form */
    if (got < 0 || (apr_size_t)got < pad) {
        ERR_clear_error();
        return 0;
    }
    *len = (apr_size_t)got - pad;
    return 1;
}

/* Text a person would type: valid UTF-8 without control characters (other
 * than whitespace). Random bytes almost never are. */
static int looks_like_text(const unsigned char *in, apr_size_t n)
{
    apr_size_t i = 0, more;

    while (i < n) {
        unsigned char c = in[i++];
        if (c < 0x80) {
            if ((c < 0x20 && !is_space(c)) || c == 0x7f)
                return 0;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            more = 1;
        else if (c >= 0xe0 && c <= 0xef)
            more = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            more = 3;
        else
            return 0;
        if (more > n - i)
            return 0;
        for (; more; more--, i++)
            if ((in[i] & 0xc0) != 0x80)
                return 0;
    }
    return 1;
}

apr_status_t sc_keys_material(const unsigned char *in, apr_size_t in_len,
                              apr_pool_t *p, unsigned char **out,
                              apr_size_t *len, const char **why)
{
    apr_size_t start = 0, end = in_len;
    unsigned char *buf = apr_palloc(p, in_len + 1);

    /* an editor's UTF-8 byte order mark is not part of the key */
    if (in_len >= 3 && in[0] == 0xef && in[1] == 0xbb && in[2] == 0xbf)
        start = 3;
    while (end > start && is_space(in[end - 1]))
        end--;
    while (start < end && is_space(in[start]))
        start++;
    *out = buf;
    if (decode_hex(in + start, end - start, buf, len)
        || decode_base64(in + start, end - start, p, buf, len)) {
        if (*len >= SC_KEY_MATERIAL_MIN)
            return APR_SUCCESS;
        *why = apr_psprintf(p, "holds %" APR_SIZE_T_FMT " bytes of key "
                            "material; at least %d are needed", *len,
                            SC_KEY_MATERIAL_MIN);
        return APR_EINVAL;
    }
    if (looks_like_text(in + start, end - start)) {
        *why = "holds text that is neither hex nor base64: a passphrase is not "
               "a key";
        return APR_EINVAL;
    }
    if (in_len < SC_KEY_MATERIAL_MIN) {
        *why = apr_psprintf(p, "holds %" APR_SIZE_T_FMT " bytes; at least %d "
                            "are needed", in_len, SC_KEY_MATERIAL_MIN);
        return APR_EINVAL;
    }
    memcpy(buf, in, in_len);            /* raw bytes, whitespace and all */
    *len = in_len;
    return APR_SUCCESS;
}

/* ---- keys ------------------------------------------------------------------ */

static apr_status_t derive(sc_keys *k, int i, const unsigned char *m,
                           apr_size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char id[SC_KEY_ID_LEN / 2];
    apr_status_t rv;
    int j;

    if ((rv = sc_keys_hkdf(m, len, NULL, 0, SC_INFO_PSK, k->psk[i],
                           SC_KEY_BYTES)) != APR_SUCCESS
        || (rv = sc_keys_hkdf(m, len, NULL, 0, SC_INFO_HEARTBEAT,
                              k->heartbeat[i], SC_KEY_BYTES)) != APR_SUCCESS
        || (rv = sc_keys_hkdf(m, len, NULL, 0, SC_INFO_ID, id, sizeof(id)))
           != APR_SUCCESS)
        return rv;
    for (j = 0; j < (int)sizeof(id); j++) {
        k->id[i][2 * j] = hex[id[j] >> 4];
        k->id[i][2 * j + 1] = hex[id[j] & 15];
    }
    k->id[i][SC_KEY_ID_LEN] = '\0';
    k->n = i + 1;
    return APR_SUCCESS;
}

apr_status_t sc_keys_none(sc_keys *k)
{
    memset(k, 0, sizeof(*k));
    k->none = 1;
    return derive(k, 0, (const unsigned char *)SC_NONE_MATERIAL,
                  strlen(SC_NONE_MATERIAL));
}

static apr_status_t read_key_file(const char *path, apr_pool_t *p,
                                  unsigned char **buf, apr_size_t *n,
                                  const char **why)
{
    apr_finfo_t fi;
    apr_file_t *f;
    apr_status_t rv;

    rv = apr_stat(&fi, path, APR_FINFO_TYPE | APR_FINFO_SIZE | APR_FINFO_PROT, p);
    if (rv != APR_SUCCESS || fi.filetype != APR_REG) {
        *why = "is not a readable file";
        return rv != APR_SUCCESS ? rv : APR_EINVAL;
    }
    if (fi.protection & (APR_FPROT_GREAD | APR_FPROT_GWRITE | APR_FPROT_GEXECUTE
                         | APR_FPROT_WREAD | APR_FPROT_WWRITE | APR_FPROT_WEXECUTE)) {
        *why = "is open to group or others; the key must be readable by its "
               "owner only (chmod 600)";
        return APR_EACCES;
    }
    if (fi.size > SC_KEY_FILE_MAX) {
        *why = apr_psprintf(p, "is larger than %d bytes: not a key file",
                            SC_KEY_FILE_MAX);
        return APR_EINVAL;
    }
    *buf = apr_palloc(p, SC_KEY_FILE_MAX + 1);
    if ((rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                            APR_FPROT_OS_DEFAULT, p)) != APR_SUCCESS) {
        *why = "cannot be opened";
        return rv;
    }
    /* one byte more than allowed, so a file that grew is noticed */
    rv = apr_file_read_full(f, *buf, SC_KEY_FILE_MAX + 1, n);
    apr_file_close(f);
    if (rv == APR_SUCCESS) {
        *why = "grew while it was read";
        return APR_EINVAL;
    }
    if (!APR_STATUS_IS_EOF(rv)) {
        *why = "cannot be read";
        return rv;
    }
    return APR_SUCCESS;
}

apr_status_t sc_keys_add_file(sc_keys *k, int i, const char *path,
                              apr_pool_t *p, const char **why)
{
    apr_pool_t *tmp;
    unsigned char *buf = NULL, *m = NULL;
    apr_size_t n = 0, len = 0;
    apr_status_t rv;

    if (i < 0 || i >= SC_KEYS_MAX) {
        *why = "too many key files";
        return APR_EINVAL;
    }
    if (i == 0)
        memset(k, 0, sizeof(*k));
    if ((rv = apr_pool_create(&tmp, p)) != APR_SUCCESS) {
        *why = "out of memory";
        return rv;
    }
    apr_pool_tag(tmp, "sc_keys");
    rv = read_key_file(path, tmp, &buf, &n, why);
    if (rv == APR_SUCCESS
        && (rv = sc_keys_material(buf, n, tmp, &m, &len, why)) == APR_SUCCESS
        && (rv = derive(k, i, m, len)) != APR_SUCCESS)
        *why = "cannot derive keys (OpenSSL)";
    if (buf)
        OPENSSL_cleanse(buf, SC_KEY_FILE_MAX + 1);
    if (m)
        OPENSSL_cleanse(m, len);
    if (rv != APR_SUCCESS)
        *why = apr_pstrdup(p, *why);    /* it may live in tmp */
    apr_pool_destroy(tmp);
    if (rv == APR_SUCCESS && i == 1 && !strcmp(k->id[0], k->id[1])) {
        *why = "holds the same key as the first file";
        return APR_EINVAL;
    }
    return rv;
}

int sc_keys_find(const sc_keys *k, const char *id, apr_size_t len)
{
    int i;
    if (len != SC_KEY_ID_LEN)
        return -1;
    for (i = 0; i < k->n; i++)
        if (!memcmp(k->id[i], id, SC_KEY_ID_LEN))
            return i;
    return -1;
}

const char *sc_keys_ids(const sc_keys *k, apr_pool_t *p)
{
    if (k->none)
        return "none";
    return k->n > 1 ? apr_pstrcat(p, k->id[0], ", ", k->id[1], NULL) : k->id[0];
}
