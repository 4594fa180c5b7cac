/* fuzz_init.h - what every fuzzer here starts with: APR initialised once,
 * a root pool, and must() that aborts (a finding) when a property fails. */
#ifndef FUZZ_INIT_H
#define FUZZ_INIT_H

#include <stdlib.h>

#include <apr_general.h>
#include <apr_pools.h>

static apr_pool_t *root;

static void must(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    must(apr_initialize() == APR_SUCCESS);
    must(apr_pool_create(&root, NULL) == APR_SUCCESS);
    return 0;
}

#endif
