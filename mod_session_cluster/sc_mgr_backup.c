/* sc_mgr_backup.c - the backup manager (Tomcat's BackupManager): a
 * session's primary is the node that serves it, its backup one other member
 * that is up, picked round-robin; every other member holds a proxy entry,
 * the session's location only (shared/seeds/backup-manager-*.txt).
 *
 * Rules: a new session's backup is the next up member in this node's
 * rotation (one counter for a node's children and its clusterd). A request
 * for a session this node does not hold as primary with a live backup
 * takes it over; a take-over keeps a live backup, else picks one, never
 * the primary it replaces (presumed dead: its link may not know yet). When
 * a member drops, its backups here become primaries with a new backup;
 * when one joins, every share-th of this node's primaries moves its backup
 * there, so backups spread evenly again (Tomcat leaves them where they
 * are). A primary left without a backup asks clusterd for a pass. */
#include <string.h>

#include <apr_atomic.h>
#include <apr_strings.h>

#include "sc_manager.h"

/* The next backup in the rotation over the up members other than `avoid`
 * (may be NULL); "" when there is none. */
static const char *pick(const sc_mgr_ctx *c, const char *avoid)
{
    const char *up[SC_MAX_MEMBERS];
    apr_uint32_t turn;
    int i, n = 0;

    for (i = 0; i < c->n; i++)
        if (c->members[i].up && (!avoid || strcmp(c->members[i].route, avoid)))
            up[n++] = c->members[i].route;
    if (!n)
        return "";
    turn = apr_atomic_inc32(c->turn);
    return up[turn % (apr_uint32_t)n];
}

static const char *backup_data_target(const char *self, const char *backup)
{
    return backup && *backup ? backup : self;
}

static void backup_place_new(const sc_mgr_ctx *c, const char *keep, char *backup)
{
    apr_cpystrn(backup, keep && sc_mgr_up(c, keep) ? keep : pick(c, NULL),
                SC_ROUTE_MAX);
}

/* Yes when this node holds no data (a proxy, or nothing, for a cookie
 * naming a member, this node included: it may have restarted), or data it
 * is not primary of, or a primary without a live backup. */
static int backup_needs_claim(const sc_mgr_ctx *c, int found,
                              const sc_session *s, int member)
{
    if (!found)
        return member;
    return !s->tombstone && (s->proxy || strcmp(s->owner, c->self)
                             || !sc_mgr_up(c, s->backup));
}

static int backup_take_over(const sc_mgr_ctx *c, const sc_session *cur,
                            const char *want, sc_session *out)
{
    const char *former = strcmp(cur->owner, c->self) ? cur->owner : NULL;
    const char *backup;

    if (want && sc_mgr_up(c, want))
        backup = want;
    else if (sc_mgr_up(c, cur->backup))
        backup = cur->backup;
    else
        backup = pick(c, former);
    *out = *cur;
    if (!former && !strcmp(cur->backup, backup))
        return 0;
    apr_cpystrn(out->owner, c->self, sizeof(out->owner));
    apr_cpystrn(out->backup, backup, sizeof(out->backup));
    return 1;
}

/* Served here: this node is primary; a backup that is gone is replaced
 * (not by the primary this node takes the session from). */
static int backup_on_save(const sc_mgr_ctx *c, const sc_session *cur,
                          sc_session *out)
{
    int backup_gone = !sc_mgr_up(c, cur->backup);
    int moved = strcmp(cur->owner, c->self) || backup_gone;

    apr_cpystrn(out->owner, c->self, sizeof(out->owner));
    if (backup_gone)
        apr_cpystrn(out->backup, pick(c, cur->owner), sizeof(out->backup));
    return moved;
}

static int backup_unplaced(const sc_mgr_ctx *c, const sc_session *s)
{
    return !s->tombstone && !s->proxy && !*s->backup
           && !strcmp(s->owner, c->self);
}

static int backup_on_member(const sc_mgr_ctx *c, const char *route, int up,
                            int restarted)
{
    (void)c;
    if (!route)                     /* clusterd started: catch up */
        return SC_MGR_PLACE_DROPPED;
    if (restarted)                  /* down and up again: both passes */
        return SC_MGR_PLACE_DROPPED | SC_MGR_PLACE_JOINED;
    return up ? SC_MGR_PLACE_JOINED : SC_MGR_PLACE_DROPPED;
}

/* The index of a backup among the context's members; SC_MAX_MEMBERS for
 * none or a route that is no member. */
static int member_index(const sc_mgr_ctx *c, const char *route)
{
    int i;
    for (i = 0; i < c->n; i++)
        if (!strcmp(c->members[i].route, route))
            return i;
    return SC_MAX_MEMBERS;
}

/* Primary here: keep a live backup, or hand it to the member that joined
 * when it is the share-th of those on its holder (every holder gives the
 * same share, so backups end up even: 20/20 and a join become 13/13/14,
 * where every share-th primary regardless of holder gave 8/18/14); a dead
 * backup is replaced. Backup here and the primary gone: take over. Anything
 * else is the primary's call. */
static int backup_pass_one(const sc_mgr_ctx *c, sc_mgr_pass *pass,
                           const sc_session *s, const char **want)
{
    *want = NULL;
    if (s->proxy || s->tombstone)
        return 0;
    if (!strcmp(s->owner, c->self)) {
        if (pass->joined && pass->share
            && pass->seen[member_index(c, s->backup)]++
               % (apr_uint32_t)pass->share == 0) {
            *want = pass->joined;
            return 1;
        }
        return !sc_mgr_up(c, s->backup);
    }
    return !strcmp(s->backup, c->self) && !sc_mgr_up(c, s->owner);
}

static sc_mgr_role backup_role(const sc_mgr_ctx *c, const sc_session *s)
{
    if (s->proxy)
        return SC_ROLE_PROXY;
    return strcmp(s->owner, c->self) ? SC_ROLE_BACKUP : SC_ROLE_PRIMARY;
}

const sc_manager sc_mgr_backup = {
    "backup",
    1,                              /* locations */
    1,                              /* rehome_at_load */
    backup_data_target,
    backup_place_new,
    backup_needs_claim,
    backup_take_over,
    backup_on_save,
    backup_unplaced,
    backup_on_member,
    backup_pass_one,
    1,                              /* walks_roles */
    backup_role,
};
