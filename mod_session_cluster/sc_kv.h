/* sc_kv.h - per-key patches of mod_session's encoded form.
 *
 * Contract:
 *  - Session data is mod_session's encoding "k1=v1&k2=v2": keys and values are
 *    already URL-escaped by mod_session, so here they are opaque byte strings
 *    that contain neither '&' nor '='.
 *  - Parsing follows mod_session's own decoder where it is lenient and is
 *    strict elsewhere: empty segments ("a=1&&b=2", a trailing '&') are
 *    skipped; a pair without '=', with an empty key or with a second '=' is
 *    malformed (APR_EINVAL). In data, a pair with an empty value ("k=") means
 *    the key is absent (mod_session drops such pairs when it decodes). When a
 *    key repeats, the last occurrence wins and the first one's place is kept.
 *  - A patch has the same syntax: "k=v" sets or replaces k, "k=" removes it.
 *  - sc_kv_diff(old, new) lists the keys whose value changed or that were
 *    added, as "k=v" in new's order, then the removed keys as "k=" in old's
 *    order; "" when both hold the same keys and values.
 *  - sc_kv_apply(data, patch) replaces keys in place (the data's order is
 *    kept), appends new keys at the end in the patch's order and drops
 *    removed ones. The result is normalised: no empty values, no repeated
 *    keys, no empty segments.
 *  - apply(old, diff(old, new)) holds exactly new's keys and values (only the
 *    position of added keys may differ), and patches that touch different keys
 *    commute, so concurrent requests changing different keys both survive.
 *  - A NULL string is taken as "" (an empty session). Results are allocated
 *    from p. Only APR is used here.
 *  - Runs in httpd children (a request's changes merged into the
 *    session) and in clusterd (peers' deltas applied); no state.
 */
#ifndef SC_KV_H
#define SC_KV_H

#include <apr_pools.h>

/* *patch: the changes that turn old into new ("" when none). APR_EINVAL when
 * either input is malformed. */
apr_status_t sc_kv_diff(apr_pool_t *p, const char *old, const char *new,
                        const char **patch);

/* 1 when data is already in the form sc_kv_apply() gives its results
 * (well-formed, non-empty, no empty values or segments, no repeated keys):
 * it can be stored as it is. */
int sc_kv_normal(apr_pool_t *p, const char *data);

/* *out: data with patch applied. APR_EINVAL when either input is malformed. */
apr_status_t sc_kv_apply(apr_pool_t *p, const char *data, const char *patch,
                         const char **out);

#endif
