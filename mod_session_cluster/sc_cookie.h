/* sc_cookie.h - the session cookie (httpd children): its name, its
 * attributes, reading the id it carries and writing a new one.
 *
 * Contract:
 *  - The cookie is <name>=<base>.<route> (sc_id), name from
 *    SessionClusterCookieName, JSESSIONID by default.
 *  - Attributes are the configured ones, read by name, plus the safe
 *    defaults the admin did not set: Path=/, HttpOnly, SameSite=Lax, and
 *    Secure when the client used https (mod_ssl, ServerName https://, or
 *    HTTPS=on set from a trusted balancer's X-Forwarded-Proto) or when the
 *    configuration says `secure`.
 *  - Used by the provider and by the status page; knows nothing of the
 *    store or the cluster.
 */
#ifndef SC_COOKIE_H
#define SC_COOKIE_H

#include <httpd.h>

#include "sc_config.h"

const char *sc_cookie_name(const sc_dir_conf *d);
const char *sc_cookie_attrs(request_rec *r, const sc_dir_conf *d);

/* Give the client the cookie for id base `id` and `route`. */
void sc_cookie_set(request_rec *r, const sc_dir_conf *d, const char *id,
                   const char *route);

/* What the request's cookie names: the id base (NULL when none or
 * malformed) and the route it carried. */
void sc_cookie_id(request_rec *r, const char **base, const char **route);

#endif
