/* fuzz_kv.c - libFuzzer target for sc_kv.
 *
 * The input is split at its first NUL byte into two strings a and b (b is ""
 * when there is none). Both go to sc_kv_apply(a, b), sc_kv_apply(b, a) and
 * sc_kv_diff(a, b). When a and b are both well-formed, the properties of
 * sc_kv.h must hold, checked through sc_kv itself:
 *   apply(a, diff(a, b)) has b's keys and values: diff(that, b) == "";
 *   apply(x, "") == apply(apply(x, ""), "")  (the result is normalised);
 *   diff(a, a) == "".
 * Any violation aborts, so libFuzzer keeps the input. */
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "sc_kv.h"

#include "fuzz_init.h"

static int well_formed(apr_pool_t *p, const char *s, const char **norm)
{
    return sc_kv_apply(p, s, "", norm) == APR_SUCCESS;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    apr_pool_t *p;
    const char *a, *b, *nul, *out, *patch, *na, *nb, *again, *back;

    must(apr_pool_create(&p, root) == APR_SUCCESS);
    nul = memchr(data, '\0', size);
    a = apr_pstrmemdup(p, (const char *)data, nul ? (apr_size_t)(nul - (const char *)data)
                                                  : size);
    b = nul ? apr_pstrmemdup(p, nul + 1, size - (apr_size_t)(nul + 1 - (const char *)data))
            : "";

    (void)sc_kv_apply(p, a, b, &out);
    (void)sc_kv_apply(p, b, a, &out);
    if (sc_kv_diff(p, a, b, &patch) == APR_SUCCESS) {
        /* diff accepts exactly what apply accepts as data */
        must(well_formed(p, a, &na) && well_formed(p, b, &nb));
        must(sc_kv_apply(p, a, patch, &out) == APR_SUCCESS);
        must(sc_kv_diff(p, out, b, &back) == APR_SUCCESS && !*back);
        must(sc_kv_diff(p, a, a, &back) == APR_SUCCESS && !*back);
        /* normalised output is a fixed point, and means the same data */
        must(well_formed(p, na, &again) && !strcmp(again, na));
        must(sc_kv_diff(p, na, a, &back) == APR_SUCCESS && !*back);
        /* the patch itself is a well-formed patch with no repeated work */
        must(sc_kv_apply(p, "", patch, &out) == APR_SUCCESS);
    }
    else {
        must(!well_formed(p, a, &na) || !well_formed(p, b, &nb));
    }
    apr_pool_destroy(p);
    return 0;
}
