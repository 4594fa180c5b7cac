/* sc_cookie.c - the session cookie (see sc_cookie.h). */
#include <strings.h>

#include <apr_strings.h>

#include <httpd.h>
#include <http_protocol.h>
#include <util_cookies.h>

#include "sc_cookie.h"
#include "sc_id.h"

#define SC_DEFAULT_COOKIE "JSESSIONID"

const char *sc_cookie_name(const sc_dir_conf *d)
{
    return d->cookie_name ? d->cookie_name : SC_DEFAULT_COOKIE;
}

/* 1 if the cookie attribute list `attrs` ("a=b;c;...") has an attribute
 * called `name` (case-insensitive, by name: "domain=x.secure.example" is
 * a Domain, not a Secure). */
static int has_attr(apr_pool_t *p, const char *attrs, const char *name)
{
    char *list = apr_pstrdup(p, attrs), *last, *a;

    for (a = apr_strtok(list, ";", &last); a; a = apr_strtok(NULL, ";", &last)) {
        char *eq = strchr(a, '=');
        if (eq)
            *eq = '\0';
        apr_collapse_spaces(a, a);
        if (!strcasecmp(a, name))
            return 1;
    }
    return 0;
}

/* The client reached us over https: this server speaks TLS (mod_ssl,
 * or ServerName https://... behind a TLS-terminating proxy), or the
 * configuration says so with HTTPS=on (the SetEnvIfExpr recipe for a
 * trusted balancer's X-Forwarded-Proto, see balancer_conf/). */
static int client_used_https(request_rec *r)
{
    const char *https = apr_table_get(r->subprocess_env, "HTTPS");

    return !strcasecmp(ap_http_scheme(r), "https")
        || (https && !strcasecmp(https, "on"));
}

/* Configured attributes plus the safe defaults the admin did not override. */
const char *sc_cookie_attrs(request_rec *r, const sc_dir_conf *d)
{
    const char *a = d->cookie_attrs && *d->cookie_attrs ? d->cookie_attrs : "path=/";

    if (!has_attr(r->pool, a, "path"))
        a = apr_pstrcat(r->pool, "path=/;", a, NULL);
    if (!has_attr(r->pool, a, "httponly"))
        a = apr_pstrcat(r->pool, a, ";HttpOnly", NULL);
    if (!has_attr(r->pool, a, "samesite"))
        a = apr_pstrcat(r->pool, a, ";SameSite=Lax", NULL);
    if (!has_attr(r->pool, a, "secure") && client_used_https(r))
        a = apr_pstrcat(r->pool, a, ";Secure", NULL);
    return a;
}

void sc_cookie_set(request_rec *r, const sc_dir_conf *d, const char *id,
                   const char *route)
{
    ap_cookie_write(r, sc_cookie_name(d), sc_id_cookie_value(r->pool, id, route),
                    sc_cookie_attrs(r, d), 0, r->err_headers_out, NULL);
}

void sc_cookie_id(request_rec *r, const char **base, const char **route)
{
    sc_dir_conf *d = sc_config_dir(r);
    const char *val = NULL;
    char *b = apr_palloc(r->pool, SC_ID_BASE_LEN + 1);

    *base = NULL;
    *route = NULL;
    if (ap_cookie_read(r, sc_cookie_name(d), &val, 0) == APR_SUCCESS && val
        && sc_id_parse(r->pool, val, b, route) == APR_SUCCESS)
        *base = b;
}

