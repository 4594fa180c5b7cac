/* fuzz_identity.c - libFuzzer target for sc_identity: any input (up to its
 * first NUL byte) is cut into the same pairs, in the same order, as
 * mod_session's own apr_strtok walk cuts it (identity_ref.h); a difference
 * aborts, so libFuzzer keeps the input. */
#include <string.h>

#include <apr_strings.h>

#include "sc_identity.h"
#include "identity_ref.h"

#include "fuzz_init.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    apr_pool_t *p;
    const char *s;

    must(apr_pool_create(&p, root) == APR_SUCCESS);
    s = apr_pstrmemdup(p, (const char *)data, size);
    must(!strcmp(identity_ref(p, s), identity_split(p, s)));
    apr_pool_destroy(p);
    return 0;
}
