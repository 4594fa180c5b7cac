/* Unit tests for the managers' rules (sc_manager.h, sc_mgr_delta.c,
 * sc_mgr_backup.c), without httpd: new sessions' backups round-robin in
 * member order; take-over, save and pass rules; a cluster of nodes
 * simulated in memory, each with its own view and counter, for the slides'
 * 4-node example (30 sessions per node, backups 10/10/10; D fails: 40
 * primaries per node, backups 20/20; D comes back: it gets every third
 * backup) and a 3-node drop; what the delta manager does (nothing placed,
 * merge on join); sc_mgr_place on a real store: one new version per
 * change, none when placed already, tombstones and proxies untouched.
 * Runs under ASan/UBSan. */
#include <stdio.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "sc_manager.h"
#include "sc_test.h"
#include "store_fixture.h"

static apr_pool_t *pool;

/* ---- a node's view ------------------------------------------------------ */

typedef struct {
    sc_mgr_ctx c;
    apr_uint32_t turn;
} view;

/* self and the others of routes[0..n-1], all up */
static void view_init(view *v, const char *self, const char *const *routes, int n)
{
    int i;
    memset(v, 0, sizeof(*v));
    v->c.self = self;
    v->c.turn = &v->turn;
    for (i = 0; i < n; i++) {
        if (!strcmp(routes[i], self))
            continue;
        v->c.members[v->c.n].route = routes[i];
        v->c.members[v->c.n].up = 1;
        v->c.n++;
    }
}

static void view_set(view *v, const char *route, int up)
{
    int i;
    for (i = 0; i < v->c.n; i++)
        if (!strcmp(v->c.members[i].route, route))
            v->c.members[i].up = up;
}

static sc_session session(const char *owner, const char *backup)
{
    sc_session s;
    memset(&s, 0, sizeof(s));
    apr_cpystrn(s.id, "id", sizeof(s.id));
    apr_cpystrn(s.owner, owner, sizeof(s.owner));
    apr_cpystrn(s.backup, backup, sizeof(s.backup));
    s.version = 3;
    return s;
}

static const char *const ABC[] = { "A", "B", "C" };
static const char *const ABCD[] = { "A", "B", "C", "D" };

/* ---- the backup manager's rules, one at a time -------------------------- */

static void test_new_backups_round_robin_in_member_order(void)
{
    const sc_manager *m = &sc_mgr_backup;
    char b[SC_ROUTE_MAX];
    view v;
    int i;

    view_init(&v, "A", ABCD, 4);
    for (i = 0; i < 6; i++) {
        m->place_new(&v.c, NULL, b);
        CHECK(!strcmp(b, ABCD[1 + i % 3]));         /* B C D B C D */
    }
    view_set(&v, "C", 0);
    for (i = 0; i < 4; i++) {
        m->place_new(&v.c, NULL, b);
        CHECK(strcmp(b, "C") && strcmp(b, "A") && *b);
    }
    /* kept while up (id rotation keeps the session's backup) */
    m->place_new(&v.c, "B", b);
    CHECK(!strcmp(b, "B"));
    m->place_new(&v.c, "C", b);
    CHECK(strcmp(b, "C") && *b);
    /* nobody up: no backup, and clusterd is asked for a pass */
    view_set(&v, "B", 0);
    view_set(&v, "D", 0);
    m->place_new(&v.c, NULL, b);
    CHECK(!strcmp(b, ""));
    {
        sc_session s = session("A", b);
        CHECK(m->unplaced(&v.c, &s));
        s.tombstone = 1;
        CHECK(!m->unplaced(&v.c, &s));
    }
}

static void test_take_over(void)
{
    const sc_manager *m = &sc_mgr_backup;
    sc_session cur, out;
    view v;

    view_init(&v, "B", ABC, 3);
    /* B was backup of A (A presumed dead): B primary, a new backup, never A */
    cur = session("A", "B");
    CHECK(m->take_over(&v.c, &cur, NULL, &out) == 1);
    CHECK(!strcmp(out.owner, "B") && !strcmp(out.backup, "C"));
    CHECK(out.version == cur.version);      /* the store write adds one */
    /* a proxy taking over from A keeps A's live backup C (walkthrough case 2) */
    cur = session("A", "C");
    CHECK(m->take_over(&v.c, &cur, NULL, &out) == 1);
    CHECK(!strcmp(out.owner, "B") && !strcmp(out.backup, "C"));
    /* placed like that already: nothing to write */
    cur = session("B", "C");
    CHECK(m->take_over(&v.c, &cur, NULL, &out) == 0);
    /* asked for a backup that is up: moved there; one that is down: kept */
    CHECK(m->take_over(&v.c, &cur, "A", &out) == 1 && !strcmp(out.backup, "A"));
    view_set(&v, "A", 0);
    CHECK(m->take_over(&v.c, &cur, "A", &out) == 0 && !strcmp(out.backup, "C"));
    /* the primary it replaces is the only other member up: no backup (the
     * next pass gives it one once that member is seen alive) */
    view_set(&v, "A", 1);
    view_set(&v, "C", 0);
    cur = session("A", "C");
    CHECK(m->take_over(&v.c, &cur, NULL, &out) == 1);
    CHECK(!strcmp(out.owner, "B") && !strcmp(out.backup, ""));
    CHECK(m->unplaced(&v.c, &out));
    /* ... and that pass, for a primary without a backup, takes A */
    {
        const char *want = "x";
        sc_mgr_pass pass;
        memset(&pass, 0, sizeof(pass));
        CHECK(m->pass_one(&v.c, &pass, &out, &want) == 1 && want == NULL);
        cur = out;
        CHECK(m->take_over(&v.c, &cur, want, &out) == 1);
        CHECK(!strcmp(out.owner, "B") && !strcmp(out.backup, "A"));
    }
}

static void test_save(void)
{
    const sc_manager *m = &sc_mgr_backup;
    sc_session cur, out;
    view v;

    view_init(&v, "A", ABC, 3);
    cur = session("A", "B");
    out = cur;
    CHECK(m->on_save(&v.c, &cur, &out) == 0);
    CHECK(!strcmp(out.owner, "A") && !strcmp(out.backup, "B"));
    /* its backup is gone: a new one, and the save travels with its location */
    view_set(&v, "B", 0);
    out = cur;
    CHECK(m->on_save(&v.c, &cur, &out) == 1);
    CHECK(!strcmp(out.owner, "A") && !strcmp(out.backup, "C"));
    /* served here, primary elsewhere: this node becomes primary, a live
     * backup is kept */
    view_set(&v, "B", 1);
    cur = session("C", "B");
    out = cur;
    CHECK(m->on_save(&v.c, &cur, &out) == 1);
    CHECK(!strcmp(out.owner, "A") && !strcmp(out.backup, "B"));
    /* served here, this node was the backup: never its own backup, not the
     * primary it replaces */
    cur = session("C", "A");
    out = cur;
    CHECK(m->on_save(&v.c, &cur, &out) == 1);
    CHECK(!strcmp(out.owner, "A") && !strcmp(out.backup, "B"));
}

static void test_claim_and_roles(void)
{
    const sc_manager *m = &sc_mgr_backup;
    sc_session s;
    view v;

    view_init(&v, "A", ABC, 3);
    CHECK(m->needs_claim(&v.c, 0, NULL, 1));            /* not here: ask */
    CHECK(!m->needs_claim(&v.c, 0, NULL, 0));           /* a stranger's route */
    s = session("A", "B");
    CHECK(!m->needs_claim(&v.c, 1, &s, 1));             /* primary, backed */
    CHECK(m->role(&v.c, &s) == SC_ROLE_PRIMARY);
    view_set(&v, "B", 0);
    CHECK(m->needs_claim(&v.c, 1, &s, 1));              /* its backup is gone */
    s = session("B", "A");
    CHECK(m->needs_claim(&v.c, 1, &s, 1));              /* backup here */
    CHECK(m->role(&v.c, &s) == SC_ROLE_BACKUP);
    s = session("B", "C");
    s.proxy = 1;
    CHECK(m->needs_claim(&v.c, 1, &s, 1));              /* location only */
    CHECK(m->role(&v.c, &s) == SC_ROLE_PROXY);
    s.proxy = 0;
    s.tombstone = 1;
    CHECK(!m->needs_claim(&v.c, 1, &s, 1));             /* invalidated */
    CHECK(!strcmp(m->data_target(v.c.self, "C"), "C"));
    CHECK(!strcmp(m->data_target(v.c.self, ""), "A"));      /* nobody */
    CHECK(sc_mgr_member_known(&v.c, "A") && sc_mgr_member_known(&v.c, "B"));
    CHECK(!sc_mgr_member_known(&v.c, "Z"));
    CHECK(!sc_mgr_up(&v.c, "A"));                       /* never itself */
    CHECK(!sc_mgr_up(&v.c, "B") && sc_mgr_up(&v.c, "C") && !sc_mgr_up(&v.c, ""));
}

static void test_member_events(void)
{
    view v;

    view_init(&v, "A", ABC, 3);
    CHECK(sc_mgr_backup.on_member(&v.c, NULL, 0, 0) == SC_MGR_PLACE_DROPPED);
    CHECK(sc_mgr_backup.on_member(&v.c, "B", 0, 0) == SC_MGR_PLACE_DROPPED);
    CHECK(sc_mgr_backup.on_member(&v.c, "B", 1, 0) == SC_MGR_PLACE_JOINED);
    CHECK(sc_mgr_backup.on_member(&v.c, "B", 1, 1)
          == (SC_MGR_PLACE_DROPPED | SC_MGR_PLACE_JOINED));
    CHECK(sc_mgr_delta.on_member(&v.c, NULL, 0, 0) == 0);
    CHECK(sc_mgr_delta.on_member(&v.c, "B", 0, 0) == 0);
    CHECK(sc_mgr_delta.on_member(&v.c, "B", 1, 0) == SC_MGR_RESYNC);
    CHECK(sc_mgr_delta.on_member(&v.c, "B", 1, 1) == SC_MGR_RESYNC);
}

/* ---- the delta manager places nothing ----------------------------------- */

static void test_delta(void)
{
    const sc_manager *m = &sc_mgr_delta;
    char b[SC_ROUTE_MAX] = "x";
    sc_session cur, out;
    const char *want;
    sc_mgr_pass pass = { "B", 3, { 0 } };
    view v;

    view_init(&v, "A", ABC, 3);
    m->place_new(&v.c, "B", b);
    CHECK(!strcmp(b, ""));
    CHECK(!strcmp(m->data_target(v.c.self, "B"), ""));     /* every member */
    cur = session("B", "");
    CHECK(!m->needs_claim(&v.c, 1, &cur, 1) && !m->needs_claim(&v.c, 0, NULL, 1));
    out = cur;
    CHECK(m->on_save(&v.c, &cur, &out) == 0 && !strcmp(out.owner, "A"));
    CHECK(!m->unplaced(&v.c, &out));
    CHECK(!m->pass_one(&v.c, &pass, &cur, &want));
    CHECK(m->role(&v.c, &cur) == SC_ROLE_PRIMARY);
    CHECK(!m->locations && !m->walks_roles && !m->rehome_at_load);
    CHECK(sc_mgr_backup.locations && sc_mgr_backup.walks_roles
          && sc_mgr_backup.rehome_at_load);
    CHECK(sc_manager_get(0) == &sc_mgr_delta && sc_manager_get(1) == &sc_mgr_backup);
    CHECK(!strcmp(sc_manager_get(1)->name, "backup"));
}

/* ---- a cluster simulated in memory --------------------------------------
 * One record per session (what every node agrees on once replication is
 * done); each node has its own view and counter, and a pass of node X
 * visits the records X holds data of, in creation order, as its store walk
 * would. The rules give each session to one node only (its primary if
 * alive, else its backup), so passes may run one after another. */

#define SIM_NODES    4
#define SIM_SESSIONS 160

typedef struct {
    int nodes;
    const char *const *routes;
    view v[SIM_NODES];
    int alive[SIM_NODES];
    sc_session s[SIM_SESSIONS];
    int n;
} sim;

static void sim_init(sim *c, const char *const *routes, int nodes)
{
    int i;
    memset(c, 0, sizeof(*c));
    c->nodes = nodes;
    c->routes = routes;
    for (i = 0; i < nodes; i++) {
        view_init(&c->v[i], routes[i], routes, nodes);
        c->alive[i] = 1;
    }
}

static void sim_create(sim *c, int node, int count)
{
    int i;
    for (i = 0; i < count && c->n < SIM_SESSIONS; i++) {
        sc_session *s = &c->s[c->n++];
        *s = session(c->routes[node], "");
        sprintf(s->id, "s%d", c->n);
        s->version = 1;
        sc_mgr_backup.place_new(&c->v[node].c, NULL, s->backup);
    }
}

/* every live node sees `route` up or down */
static void sim_member(sim *c, int node, int up)
{
    int i;
    c->alive[node] = up;
    for (i = 0; i < c->nodes; i++)
        if (i != node)
            view_set(&c->v[i], c->routes[node], up);
}

/* node's placement pass (joined: the member that came up, or NULL) */
static int sim_pass(sim *c, int node, const char *joined)
{
    const sc_manager *m = &sc_mgr_backup;
    view *v = &c->v[node];
    sc_mgr_pass pass;
    int i, placed = 0;

    memset(&pass, 0, sizeof(pass));
    pass.joined = joined;
    for (i = 0; joined && i < v->c.n; i++)
        pass.share += v->c.members[i].up;
    for (i = 0; i < c->n; i++) {
        sc_session *s = &c->s[i], out;
        const char *want;
        if (strcmp(s->owner, v->c.self) && strcmp(s->backup, v->c.self))
            continue;                       /* a proxy here */
        if (!m->pass_one(&v->c, &pass, s, &want))
            continue;
        if (m->take_over(&v->c, s, want, &out)) {
            out.version = s->version + 1;
            *s = out;
            placed++;
        }
    }
    return placed;
}

/* backups of primary p on b */
static int sim_count(const sim *c, const char *p, const char *b)
{
    int i, n = 0;
    for (i = 0; i < c->n; i++)
        n += !strcmp(c->s[i].owner, p) && !strcmp(c->s[i].backup, b);
    return n;
}

static int sim_primaries(const sim *c, const char *p)
{
    int i, n = 0;
    for (i = 0; i < c->n; i++)
        n += !strcmp(c->s[i].owner, p);
    return n;
}

/* every session on a live primary with a live backup other than itself */
static int sim_settled(const sim *c)
{
    int i, j;
    for (i = 0; i < c->n; i++) {
        int p = -1, b = -1;
        for (j = 0; j < c->nodes; j++) {
            if (!strcmp(c->s[i].owner, c->routes[j]))
                p = j;
            if (!strcmp(c->s[i].backup, c->routes[j]))
                b = j;
        }
        if (p < 0 || b < 0 || p == b || !c->alive[p] || !c->alive[b])
            return 0;
    }
    return 1;
}

static sim big;

static void test_slides_four_nodes(void)
{
    sim *c = &big;
    int p, b;

    sim_init(c, ABCD, 4);
    for (p = 0; p < 4; p++)
        sim_create(c, p, 30);
    CHECK(c->n == 120 && sim_settled(c));
    for (p = 0; p < 4; p++)
        for (b = 0; b < 4; b++)
            if (p != b)
                CHECK(sim_count(c, ABCD[p], ABCD[b]) == 10);

    /* D fails: A, B, C each take over its sessions they backed (10 each)
     * and re-back their own whose backup was D: 40 / 20+20 */
    sim_member(c, 3, 0);
    for (p = 0; p < 3; p++)
        CHECK(sim_pass(c, p, NULL) == 20);
    CHECK(sim_settled(c));
    for (p = 0; p < 3; p++) {
        CHECK(sim_primaries(c, ABCD[p]) == 40);
        for (b = 0; b < 3; b++)
            if (p != b)
                CHECK(sim_count(c, ABCD[p], ABCD[b]) == 20);
    }
    /* a second pass changes nothing */
    for (p = 0; p < 3; p++)
        CHECK(sim_pass(c, p, NULL) == 0);

    /* D comes back (empty): every third backup of each node moves to it */
    sim_member(c, 3, 1);
    for (p = 0; p < 3; p++)
        CHECK(sim_pass(c, p, "D") == 14);           /* ceil(40 / 3) */
    CHECK(sim_settled(c));
    for (p = 0; p < 3; p++) {
        CHECK(sim_primaries(c, ABCD[p]) == 40);
        CHECK(sim_count(c, ABCD[p], "D") == 14);
        for (b = 0; b < 3; b++)             /* each holder gave 7 of 20 */
            if (p != b)
                CHECK(sim_count(c, ABCD[p], ABCD[b]) == 13);
    }
}

static void test_three_nodes_drop_and_second_drop(void)
{
    sim *c = &big;
    int i, p;

    sim_init(c, ABC, 3);
    sim_create(c, 0, 6);                            /* 6 on A: backups B/C */
    CHECK(sim_count(c, "A", "B") == 3 && sim_count(c, "A", "C") == 3);
    sim_member(c, 0, 0);
    CHECK(sim_pass(c, 1, NULL) == 3 && sim_pass(c, 2, NULL) == 3);
    CHECK(sim_settled(c));
    for (i = 0; i < 6; i++)                         /* old backup primary,
                                                       the other one backup */
        CHECK(strcmp(c->s[i].owner, c->s[i].backup)
              && strcmp(c->s[i].owner, "A") && strcmp(c->s[i].backup, "A"));
    /* C dies as well: B keeps everything (its own 3, whose backup was C,
     * and C's 3, which it backed), without a backup: nobody is up; once A
     * is back, B's join pass gives every session a backup on A */
    sim_member(c, 2, 0);
    CHECK(sim_pass(c, 1, NULL) == 6);
    CHECK(sim_primaries(c, "B") == 6 && sim_count(c, "B", "") == 6);
    for (i = 0; i < 6; i++)
        CHECK(sc_mgr_backup.unplaced(&c->v[1].c, &c->s[i]));
    sim_member(c, 0, 1);
    p = sim_pass(c, 1, "A");
    CHECK(p == 6 && sim_count(c, "B", "A") == 6);
    for (i = 0; i < 6; i++)
        CHECK(c->s[i].version >= 3);                /* each move a new version */
}

/* ---- sc_mgr_place on a real store ---------------------------------------- */

static void test_place_in_store(void)
{
    store_fixture f;
    sc_session s, out;
    view v;
    int moved;
    apr_time_t now = apr_time_now();

    fixture_open(&f, 1024 * 1024, pool);
    view_init(&v, "B", ABC, 3);
    s = session("A", "B");
    apr_cpystrn(s.id, "placeme", sizeof(s.id));
    s.data = "k=v";
    s.len = 3;
    s.expires = now + apr_time_from_sec(60);
    CHECK(sc_store_create(f.st, &s, now) == APR_SUCCESS);
    /* A gone: B takes over, one new version, C its backup */
    view_set(&v, "A", 0);
    CHECK(sc_mgr_place(&sc_mgr_backup, &v.c, f.st, "placeme", NULL, pool, &out,
                       &moved) == APR_SUCCESS && moved);
    CHECK(out.version == 2 && !strcmp(out.owner, "B") && !strcmp(out.backup, "C"));
    CHECK(sc_store_get(f.st, "placeme", now, pool, &s) == APR_SUCCESS);
    CHECK(s.version == 2 && !strcmp(s.owner, "B") && !strcmp(s.data, "k=v"));
    /* again: placed already, no new version */
    CHECK(sc_mgr_place(&sc_mgr_backup, &v.c, f.st, "placeme", NULL, pool, &out,
                       &moved) == APR_SUCCESS && !moved);
    CHECK(sc_store_get(f.st, "placeme", now, pool, &s) == APR_SUCCESS
          && s.version == 2);
    /* a tombstone is never placed (nor revived) */
    CHECK(sc_store_invalidate(f.st, "placeme", now + apr_time_from_sec(300), now)
          == APR_SUCCESS);
    CHECK(sc_mgr_place(&sc_mgr_backup, &v.c, f.st, "placeme", NULL, pool, &out,
                       &moved) == APR_NOTFOUND && !moved);
    CHECK(sc_store_get(f.st, "placeme", now, pool, &s) == APR_SUCCESS && s.tombstone);
    /* nor an id this node does not hold */
    CHECK(sc_mgr_place(&sc_mgr_backup, &v.c, f.st, "absent", NULL, pool, &out,
                       &moved) == APR_NOTFOUND);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    RUN(test_new_backups_round_robin_in_member_order);
    RUN(test_take_over);
    RUN(test_save);
    RUN(test_claim_and_roles);
    RUN(test_member_events);
    RUN(test_delta);
    RUN(test_slides_four_nodes);
    RUN(test_three_nodes_drop_and_second_drop);
    RUN(test_place_in_store);
    apr_pool_destroy(pool);
    apr_terminate();
    return sc_test_report("test_manager");
}
