/* store_fixture.h - a real store for tests and benchmarks: anonymous shared
 * memory plus SC_STORE_LOCKS global mutexes, usable across fork(). */
#ifndef STORE_FIXTURE_H
#define STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <apr_general.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_global_mutex.h>

#include "sc_store.h"

typedef struct {
    apr_shm_t *shm;
    apr_size_t bytes;
    apr_global_mutex_t *locks[SC_STORE_LOCKS];
    sc_store *st;
} store_fixture;

static inline void fixture_die(const char *what, apr_status_t rv)
{
    char buf[256];
    fprintf(stderr, "fixture: %s: %s\n", what, apr_strerror(rv, buf, sizeof(buf)));
    exit(2);
}

static inline void fixture_open(store_fixture *f, apr_size_t bytes, apr_pool_t *p)
{
    apr_status_t rv;
    int i;

    if ((rv = apr_shm_create(&f->shm, bytes, NULL, p)) != APR_SUCCESS)
        fixture_die("apr_shm_create", rv);
    f->bytes = apr_shm_size_get(f->shm);
    if ((rv = sc_store_format(apr_shm_baseaddr_get(f->shm), f->bytes)) != APR_SUCCESS)
        fixture_die("sc_store_format", rv);
    for (i = 0; i < SC_STORE_LOCKS; i++) {
        const char *file = apr_psprintf(p, "/tmp/sc_unit_lock.%ld.%d",
                                        (long)getpid(), i);
        if ((rv = apr_global_mutex_create(&f->locks[i], file, APR_LOCK_DEFAULT, p))
            != APR_SUCCESS)
            fixture_die("apr_global_mutex_create", rv);
    }
    if ((rv = sc_store_attach(&f->st, apr_shm_baseaddr_get(f->shm), f->bytes,
                              f->locks, p)) != APR_SUCCESS)
        fixture_die("sc_store_attach", rv);
}

/* In a forked child: re-open the mutexes and bind again. */
static inline void fixture_child(store_fixture *f, apr_pool_t *p)
{
    apr_status_t rv;
    int i;
    for (i = 0; i < SC_STORE_LOCKS; i++) {
        if ((rv = apr_global_mutex_child_init(&f->locks[i],
                        apr_global_mutex_lockfile(f->locks[i]), p)) != APR_SUCCESS)
            fixture_die("apr_global_mutex_child_init", rv);
    }
    if ((rv = sc_store_attach(&f->st, apr_shm_baseaddr_get(f->shm), f->bytes,
                              f->locks, p)) != APR_SUCCESS)
        fixture_die("sc_store_attach (child)", rv);
}

static inline sc_session fixture_session(const char *id, const char *data,
                                  apr_time_t expires)
{
    sc_session s;
    memset(&s, 0, sizeof(s));
    apr_cpystrn(s.id, id, sizeof(s.id));
    apr_cpystrn(s.owner, "node1", sizeof(s.owner));
    s.data = data;
    s.len = strlen(data);
    s.expires = expires;
    return s;
}

#endif
