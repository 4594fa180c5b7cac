/* sc_misses.c - recently found nowhere (see sc_misses.h). */
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "sc_misses.h"
#include "sc_store.h"

typedef struct {
    char id[SC_ID_MAX];
    apr_time_t at;
} sc_miss;

struct sc_misses {
    apr_thread_mutex_t *mu;
    sc_miss slot[SC_MISSES_SLOTS];
};

static sc_miss *slot_of(sc_misses *m, const char *id)
{
    apr_uint32_t h = 2166136261u;       /* FNV-1a */
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return &m->slot[h % SC_MISSES_SLOTS];
}

apr_status_t sc_misses_create(sc_misses **out, apr_pool_t *p)
{
    sc_misses *m = apr_pcalloc(p, sizeof(*m));
    apr_status_t rv = apr_thread_mutex_create(&m->mu, APR_THREAD_MUTEX_DEFAULT, p);

    if (rv == APR_SUCCESS)
        *out = m;
    return rv;
}

void sc_misses_add(sc_misses *m, const char *id, apr_time_t now)
{
    sc_miss *s = slot_of(m, id);

    apr_thread_mutex_lock(m->mu);
    apr_cpystrn(s->id, id, sizeof(s->id));
    s->at = now;
    apr_thread_mutex_unlock(m->mu);
}

int sc_misses_recent(sc_misses *m, const char *id, apr_time_t now)
{
    sc_miss *s = slot_of(m, id);
    int recent;

    apr_thread_mutex_lock(m->mu);
    recent = s->at && !strcmp(s->id, id) && now - s->at < SC_MISSES_TTL;
    apr_thread_mutex_unlock(m->mu);
    return recent;
}
