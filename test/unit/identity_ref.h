/* identity_ref.h - what mod_session's identity decoder makes of a string,
 * its pairs listed in order: the reference sc_identity_split is held to.
 *
 * mod_session (session_identity_decode, httpd 2.4.48 and later) walks the
 * string with apr_strtok: a pair is each "&"-separated token; within it the
 * key is the first "="-separated token, and only when there is one, the
 * value is the rest of the pair after it (taken with the "&" separator,
 * which a pair never holds); a pair without a key is skipped, one without a
 * value removes the key. This walk is written here from that description,
 * on apr_strtok as mod_session uses it, and renders the pairs as one
 * string ("key" 0x01 "value" 0x02 per pair, the value 0x03 when there is
 * none) so two walks compare with strcmp(). */
#ifndef IDENTITY_REF_H
#define IDENTITY_REF_H

#include <apr_strings.h>
#include <apr_tables.h>

#include "sc_identity.h"

/* One pair appended to the rendering (sc_identity_pair_fn). */
static void identity_ref_render(void *baton, char *key, char *val)
{
    apr_array_header_t *out = baton;
    *(const char **)apr_array_push(out) = key;
    *(const char **)apr_array_push(out) = "\x01";
    *(const char **)apr_array_push(out) = val ? val : "\x03";
    *(const char **)apr_array_push(out) = "\x02";
}

/* mod_session's walk over a copy of s. */
static const char *identity_ref(apr_pool_t *p, const char *s)
{
    apr_array_header_t *out = apr_array_make(p, 16, sizeof(const char *));
    char *last = NULL, *pair;

    pair = apr_strtok(apr_pstrdup(p, s), "&", &last);
    while (pair && pair[0]) {
        char *plast = NULL;
        char *key = apr_strtok(pair, "=", &plast);
        if (key && *key) {
            char *val = apr_strtok(NULL, "&", &plast);
            identity_ref_render(out, key, val && *val ? val : NULL);
        }
        pair = apr_strtok(NULL, "&", &last);
    }
    return apr_array_pstrcat(p, out, 0);
}

/* sc_identity_split's walk over a copy of s, rendered the same way. */
static const char *identity_split(apr_pool_t *p, const char *s)
{
    apr_array_header_t *out = apr_array_make(p, 16, sizeof(const char *));
    sc_identity_split(apr_pstrdup(p, s), identity_ref_render, out);
    return apr_array_pstrcat(p, out, 0);
}

#endif
