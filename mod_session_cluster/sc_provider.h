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
 */
#ifndef SC_PROVIDER_H
#define SC_PROVIDER_H

#include <httpd.h>
#include <mod_session.h>

#define SC_REFUSE_FILTER "SESSION_CLUSTER_REFUSE"


/* In each httpd child, once. */
void sc_provider_child_init(apr_pool_t *pchild);

apr_status_t sc_provider_load(request_rec *r, session_rec **z);
apr_status_t sc_provider_save(request_rec *r, session_rec *z);

void sc_provider_insert_filter(request_rec *r);
apr_status_t sc_provider_refuse_filter(ap_filter_t *f, apr_bucket_brigade *bb);

#endif
