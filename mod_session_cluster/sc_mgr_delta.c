/* sc_mgr_delta.c - the delta manager (Tomcat's DeltaManager): every node
 * holds every session, every change goes to every member that is up.
 *
 * Nothing is placed: no backup, no take-over, no location. A member that
 * comes back may have been cut off rather than dead (a partition, a
 * freeze), so it is merged with both ways (SC_MGR_RESYNC). The cookie's
 * route moves to a node when that node saves the session. */
#include <apr_strings.h>

#include "sc_manager.h"

static const char *delta_data_target(const char *self, const char *backup)
{
    (void)self;
    (void)backup;
    return "";                      /* every member up */
}

static void delta_place_new(const sc_mgr_ctx *c, const char *keep, char *backup)
{
    (void)c;
    (void)keep;
    *backup = '\0';
}

static int delta_needs_claim(const sc_mgr_ctx *c, int found,
                             const sc_session *s, int member)
{
    (void)c;
    (void)found;
    (void)s;
    (void)member;
    return 0;                       /* every node holds it already */
}

static int delta_take_over(const sc_mgr_ctx *c, const sc_session *cur,
                           const char *want, sc_session *out)
{
    (void)c;
    (void)want;
    *out = *cur;
    return 0;
}

static int delta_on_save(const sc_mgr_ctx *c, const sc_session *cur,
                         sc_session *out)
{
    (void)cur;
    apr_cpystrn(out->owner, c->self, sizeof(out->owner));
    return 0;
}

static int delta_unplaced(const sc_mgr_ctx *c, const sc_session *s)
{
    (void)c;
    (void)s;
    return 0;
}

static int delta_on_member(const sc_mgr_ctx *c, const char *route, int up,
                           int restarted)
{
    (void)c;
    (void)restarted;
    return route && up ? SC_MGR_RESYNC : 0;
}

static int delta_pass_one(const sc_mgr_ctx *c, sc_mgr_pass *pass,
                          const sc_session *s, const char **want)
{
    (void)c;
    (void)pass;
    (void)s;
    *want = NULL;
    return 0;
}

static sc_mgr_role delta_role(const sc_mgr_ctx *c, const sc_session *s)
{
    (void)c;
    (void)s;
    return SC_ROLE_PRIMARY;
}

const sc_manager sc_mgr_delta = {
    "delta",
    0,                              /* locations */
    0,                              /* rehome_at_load */
    delta_data_target,
    delta_place_new,
    delta_needs_claim,
    delta_take_over,
    delta_on_save,
    delta_unplaced,
    delta_on_member,
    delta_pass_one,
    0,                              /* walks_roles */
    delta_role,
};
