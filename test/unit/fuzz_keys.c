/* fuzz_keys.c - libFuzzer target for sc_keys_material, the decoder of a key
 * file's contents (ClusterSecretFile).
 *
 * Any input is either refused with a reason, or yields at least
 * SC_KEY_MATERIAL_MIN bytes that are exactly one of:
 *   - the hex text's bytes (the input, surrounding whitespace trimmed, is
 *     an even number of hex digits; they re-encode to it, case aside);
 *   - the base64 text's bytes (the input without whitespace is base64 with
 *     at most 2 '=' at its end; they re-encode to the same length and decode
 *     back from their own encoding);
 *   - the input itself, byte for byte, when it is not text (raw key
 *     material): text is valid UTF-8 without control characters other than
 *     whitespace.
 * A leading UTF-8 byte order mark is not part of hex or base64 text. So
 * text that is neither hex nor base64 (a passphrase, in any script) never
 * passes. The input is also fed behind whitespace and a newline, as an editor
 * or `openssl rand -base64` writes it, which must decode alike; and the
 * input's own hex and (line-wrapped) base64 encodings must decode back to it
 * when it is long enough. Any violation
 * aborts, so libFuzzer keeps the input; ASan/UBSan watch every read. */
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>

#include <openssl/evp.h>

#include "sc_keys.h"

#include "fuzz_init.h"

static int space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Valid UTF-8 (shortest forms, up to U+10FFFF-ish lead bytes) without
 * control characters but whitespace: what a person types. */
static int text(const unsigned char *s, size_t n)
{
    size_t i = 0, k, more;

    while (i < n) {
        unsigned char c = s[i++];
        if (c < 0x80) {
            if ((c < 0x20 && !space(c)) || c == 0x7f)
                return 0;
            continue;
        }
        more = (c >= 0xc2 && c <= 0xdf) ? 1 : (c >= 0xe0 && c <= 0xef) ? 2
               : (c >= 0xf0 && c <= 0xf4) ? 3 : 0;
        if (!more || more > n - i)
            return 0;
        for (k = 0; k < more; k++)
            if ((s[i++] & 0xc0) != 0x80)
                return 0;
    }
    return 1;
}

static int hexdigit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The input as hex: trimmed, only hex digits, and out is what they say. */
static int is_hex_of(const unsigned char *s, size_t n, const unsigned char *out,
                     apr_size_t len)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    while (n && space(s[n - 1]))
        n--;
    while (n && space(*s)) {
        s++;
        n--;
    }
    if (n != 2 * len)
        return 0;
    for (i = 0; i < n; i++)
        if (!hexdigit(s[i]))
            return 0;
    for (i = 0; i < len; i++) {
        unsigned char hi = (unsigned char)(s[2 * i] | 0x20), lo = (unsigned char)(s[2 * i + 1] | 0x20);
        if (hi != (unsigned char)digits[out[i] >> 4] || lo != (unsigned char)digits[out[i] & 15])
            return 0;
    }
    return 1;
}

/* The input as base64: without whitespace, 4k characters ending in at most
 * two '=', decoding to len bytes; out survives its own encoding. */
static int is_base64_of(apr_pool_t *p, const unsigned char *s, size_t n,
                        const unsigned char *out, apr_size_t len)
{
    unsigned char *packed = apr_palloc(p, n + 1), *enc, *dec;
    size_t m = 0, i, pad = 0;
    int got;

    for (i = 0; i < n; i++) {
        if (space(s[i]))
            continue;
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '/'
              || s[i] == '='))
            return 0;
        if (pad && s[i] != '=')
            return 0;
        pad += s[i] == '=';
        packed[m++] = s[i];
    }
    if (m == 0 || m % 4 || pad > 2 || len != m / 4 * 3 - pad)
        return 0;
    enc = apr_palloc(p, 4 * ((len + 2) / 3) + 1);
    got = EVP_EncodeBlock(enc, out, (int)len);
    if ((size_t)got != m)
        return 0;
    dec = apr_palloc(p, (size_t)got);
    return EVP_DecodeBlock(dec, enc, got) == (int)(m / 4 * 3) && !memcmp(dec, out, len);
}

static void check(apr_pool_t *p, const unsigned char *data, size_t size,
                  unsigned char **keep, apr_size_t *keep_len)
{
    unsigned char *out = NULL;
    apr_size_t len = 0;
    const char *why = NULL;
    apr_status_t rv = sc_keys_material(data, size, p, &out, &len, &why);
    size_t bom;

    *keep = NULL;
    if (rv != APR_SUCCESS) {
        must(rv == APR_EINVAL && why && *why);
        return;
    }
    must(out && len >= SC_KEY_MATERIAL_MIN && len <= size);
    bom = size >= 3 && data[0] == 0xef && data[1] == 0xbb && data[2] == 0xbf ? 3 : 0;
    if (is_hex_of(data + bom, size - bom, out, len)
        || is_base64_of(p, data + bom, size - bom, out, len))
        ;
    else
        must(!text(data + bom, size - bom) && len == size && !memcmp(out, data, size));
    *keep = out;
    *keep_len = len;
}

/* The input as a key written the usual ways: hex (upper or lower case) and
 * base64 wrapped every 1..64 characters, with a final newline. Decoding
 * gives the input back when it has SC_KEY_MATERIAL_MIN bytes, or refuses. */
static void encoded(apr_pool_t *p, const unsigned char *data, size_t size)
{
    static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";
    const char *digits = size && data[0] & 1 ? upper : lower;
    size_t i, wrap = size ? (size_t)data[size - 1] % 64 + 1 : 64, at = 0, end;
    unsigned char *hex = apr_palloc(p, 2 * size + 1), *b64, *text, *out = NULL;
    apr_size_t len = 0;
    const char *why = NULL;
    apr_status_t rv;
    int n, hexlike;

    for (i = 0; i < size; i++) {
        hex[2 * i] = (unsigned char)digits[data[i] >> 4];
        hex[2 * i + 1] = (unsigned char)digits[data[i] & 15];
    }
    hex[2 * size] = '\n';
    rv = sc_keys_material(hex, 2 * size + 1, p, &out, &len, &why);
    if (size >= SC_KEY_MATERIAL_MIN)
        must(rv == APR_SUCCESS && len == size && !memcmp(out, data, size));
    else
        must(rv == APR_EINVAL && why);

    b64 = apr_palloc(p, 4 * ((size + 2) / 3) + 1);
    n = EVP_EncodeBlock(b64, data, (int)size);
    text = apr_palloc(p, (size_t)n + (size_t)n / wrap + 2);
    for (i = 0; i < (size_t)n; i++) {
        text[at++] = b64[i];
        if ((i + 1) % wrap == 0)
            text[at++] = '\n';
    }
    text[at++] = '\n';
    why = NULL;
    rv = sc_keys_material(text, at, p, &out, &len, &why);
    /* base64 made of hex digits only (e.g. "AAAAD09A...") is also hex, and
     * read as hex: half as many bytes, refused when under the minimum. A
     * real key never is: `openssl rand -base64 32` ends in '=' */
    for (end = at; end && space(text[end - 1]); end--)
        ;
    for (i = 0, hexlike = end % 2 == 0; i < end && hexlike; i++)
        hexlike = hexdigit(text[i]);
    if (hexlike)
        must(rv == APR_SUCCESS ? is_hex_of(text, at, out, len) && 2 * len == end
                               : rv == APR_EINVAL && why && end / 2 < SC_KEY_MATERIAL_MIN);
    else if (size >= SC_KEY_MATERIAL_MIN)
        must(rv == APR_SUCCESS && len == size && !memcmp(out, data, size));
    else
        must(rv == APR_EINVAL && why);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    apr_pool_t *p;
    unsigned char *copy, *a, *b;
    apr_size_t alen = 0, blen = 0;

    if (size > 64 * 1024)
        return 0;
    must(apr_pool_create(&p, root) == APR_SUCCESS);
    /* an exact-size copy, so ASan sees any read past the end */
    copy = malloc(size ? size : 1);
    if (size)
        memcpy(copy, data, size);
    check(p, copy, size, &a, &alen);
    free(copy);
    /* behind whitespace, with a newline after: the same answer for text
     * (that does not start with a byte order mark: it only counts first) */
    if (text(data, size)
        && !(size >= 3 && data[0] == 0xef && data[1] == 0xbb && data[2] == 0xbf)) {
        copy = malloc(size + 3);
        memcpy(copy, " \t", 2);
        if (size)
            memcpy(copy + 2, data, size);
        copy[size + 2] = '\n';
        check(p, copy, size + 3, &b, &blen);
        free(copy);
        must(!a == !b && (!a || (alen == blen && !memcmp(a, b, alen))));
    }
    if (size <= 16 * 1024)
        encoded(p, data, size);
    apr_pool_destroy(p);
    return 0;
}
