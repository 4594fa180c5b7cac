/* sc_seal.c - AES-256-GCM seal and open, and the sender key (see sc_seal.h). */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "sc_bytes.h"
#include "sc_keys.h"
#include "sc_seal.h"

#define SC_NONCE_BYTES    12
#define SC_SEAL_INFO      "sc2 heartbeat sender"

apr_status_t sc_seal_key(const unsigned char *key, const unsigned char *random,
                         unsigned char *out)
{
    return sc_keys_hkdf(key, SC_WIRE_KEY_BYTES, random, SC_WIRE_RANDOM_BYTES,
                        SC_SEAL_INFO, out, SC_WIRE_KEY_BYTES);
}

static void make_nonce(unsigned char *nonce, apr_uint64_t counter)
{
    memset(nonce, 0, 4);
    put_u64(nonce + 4, counter);
}

apr_status_t sc_seal(const unsigned char *key, apr_uint64_t counter,
                     const unsigned char *aad, apr_size_t aad_len,
                     const unsigned char *in, apr_size_t len,
                     unsigned char *out, unsigned char *tag)
{
    unsigned char nonce[SC_NONCE_BYTES];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n, ok;

    if (!ctx)
        return APR_ENOMEM;
    make_nonce(nonce, counter);
    ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1
      && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SC_NONCE_BYTES,
                             NULL) == 1
      && EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1
      && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1
      && (len == 0 || (EVP_EncryptUpdate(ctx, out, &n, in, (int)len) == 1
                       && (apr_size_t)n == len))
      && EVP_EncryptFinal_ex(ctx, out + len, &n) == 1 && n == 0
      && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SC_WIRE_TAG_BYTES,
                             tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        ERR_clear_error();
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t sc_seal_open(const unsigned char *key, apr_uint64_t counter,
                          const unsigned char *aad, apr_size_t aad_len,
                          const unsigned char *in, apr_size_t len,
                          const unsigned char *tag, unsigned char *out)
{
    unsigned char nonce[SC_NONCE_BYTES], t[SC_WIRE_TAG_BYTES];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n, ok;

    if (!ctx)
        return APR_ENOMEM;
    make_nonce(nonce, counter);
    memcpy(t, tag, sizeof(t));
    ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1
      && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SC_NONCE_BYTES,
                             NULL) == 1
      && EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1
      && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1
      && (len == 0 || (EVP_DecryptUpdate(ctx, out, &n, in, (int)len) == 1
                       && (apr_size_t)n == len))
      && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SC_WIRE_TAG_BYTES,
                             t) == 1
      && EVP_DecryptFinal_ex(ctx, out + len, &n) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(out, len);
        ERR_clear_error();
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}
