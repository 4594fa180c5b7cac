/* sc_provider.h - mod_session storage provider backed by the cluster store.
 *
 * Contract:
 *  - session_load/session_save decline unless "SessionCluster On" applies.
 *  - The cookie carries "<base>.<route>"; only ids this store issued and still
 *    holds are adopted, anything else yields a fresh id on the first save.
 *  - A save whose data differs from what was loaded is a change (new version);
 *    otherwise it only moves the expiry (a touch). Saving an empty session
 *    invalidates it and removes the cookie.
 *  - A session served under another node's route is re-issued with ours.
 *  - A request whose session cannot be stored (store full) is answered 503.
 *  - A loaded session, and the application's SessionHeader onto it, are
 *    decoded here (session_decode, an output filter just before
 *    mod_session's), to exactly what httpd 2.4's mod_session makes of them,
 *    without the cost of its decoder (sc_identity).
 */
#ifndef SC_PROVIDER_H
#define SC_PROVIDER_H

#include <httpd.h>
#include <mod_session.h>

#define SC_REFUSE_FILTER "SESSION_CLUSTER_REFUSE"
#define SC_HEADER_FILTER "SESSION_CLUSTER_HEADER"


/* In each httpd child, once. */
void sc_provider_child_init(apr_pool_t *pchild);

apr_status_t sc_provider_load(request_rec *r, session_rec **z);
apr_status_t sc_provider_save(request_rec *r, session_rec *z);
/* session_decode, just before mod_session's identity decoder: the session
 * this provider loaded, decoded to the same entries and expiry in one pass
 * (sc_identity); others are left to mod_session. */
apr_status_t sc_provider_decode(request_rec *r, session_rec *z);

void sc_provider_insert_filter(request_rec *r);
/* Just before mod_session's output filter: the application's SessionHeader
 * onto the session this provider loaded, as mod_session would take it. */
apr_status_t sc_provider_header_filter(ap_filter_t *f, apr_bucket_brigade *bb);
apr_status_t sc_provider_refuse_filter(ap_filter_t *f, apr_bucket_brigade *bb);

#endif
