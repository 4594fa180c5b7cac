/* sc_identity.c - mod_session's identity encoding, read in one pass (see
 * sc_identity.h). */
#include <string.h>

#include "sc_identity.h"

void sc_identity_split(char *buf, sc_identity_pair_fn fn, void *baton)
{
    char *at = buf;

    while (*at) {
        char *pair, *end, *key, *val;

        if (*at == '&') {           /* an empty segment */
            at++;
            continue;
        }
        pair = at;
        if ((end = strchr(pair, '&'))) {
            *end = '\0';
            at = end + 1;
        }
        else
            at = pair + strlen(pair);
        key = pair + strspn(pair, "=");
        if (!*key)
            continue;               /* nothing but '='s: no key */
        if ((val = strchr(key, '='))) {
            *val++ = '\0';
            if (!*val)
                val = NULL;         /* "k=": no value */
        }
        fn(baton, key, val);
    }
}
