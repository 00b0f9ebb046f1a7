/*
 * test_blas_coretype.c -- when libdescent sets OPENBLAS_CORETYPE, and what it reports.
 *
 * OpenBLAS 0.3.21 mis-detects recent Intel CPUs and falls back to slow kernels; it reads
 * OPENBLAS_CORETYPE once, when it loads. libdescent therefore sets the variable for this CPU
 * (SkylakeX with AVX-512 F/BW/VL, Haswell with AVX2 and FMA) unless the user set it, and does
 * so only while libdescent itself loads (a constructor), never later from a running program.
 *
 * The test re-executes itself twice so that each case starts from a known environment:
 *   1. OPENBLAS_CORETYPE unset: it is already set when main starts (before any call into the
 *      library), to the kernel set for this CPU, and descent_blas_info() says Descent chose it;
 *   2. OPENBLAS_CORETYPE=Haswell set by the user: kept, and reported as the user's.
 */
#define _GNU_SOURCE   /* setenv, unsetenv, execv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "descent.h"

/* The library's choice for this CPU (blas.c), written out independently. */
static const char *expected_coretype(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

int main(int argc, char **argv) {
    (void)argc;
    const char *stage = getenv("DESCENT_CORETYPE_STAGE");
    if (!stage) {   /* re-execute without the variable: case 1 */
        unsetenv("OPENBLAS_CORETYPE");
        setenv("DESCENT_CORETYPE_STAGE", "unset", 1);
        execv("/proc/self/exe", argv);
        printf("FAIL cannot re-execute\n");
        return 1;
    }
    const char *core = getenv("OPENBLAS_CORETYPE");   /* read before any call into the library */
    if (!strcmp(stage, "unset")) {
        const char *want = expected_coretype();
        if (!want) {
            printf("SKIP no kernel set is chosen for this CPU (neither AVX-512 nor AVX2 + FMA)\n");
            return 77;
        }
        CHECK(core && !strcmp(core, want), "OPENBLAS_CORETYPE is set when main starts, before any call: %s (want %s)",
              core ? core : "(unset)", want);
        const char *info = descent_blas_info();
        CHECK(strstr(info, sfmt("kernels %s (chosen by Descent for this CPU)", want)) != NULL,
              "descent_blas_info: \"%s\"", info);
        int rc = check_summary();
        if (rc != 0) return rc;
        setenv("OPENBLAS_CORETYPE", "Haswell", 1);   /* case 2 */
        setenv("DESCENT_CORETYPE_STAGE", "user", 1);
        fflush(stdout);   /* execv drops unwritten output */
        execv("/proc/self/exe", argv);
        printf("FAIL cannot re-execute\n");
        return 1;
    }
    CHECK(core && !strcmp(core, "Haswell"), "the user's OPENBLAS_CORETYPE=Haswell is kept");
    const char *info = descent_blas_info();
    CHECK(strstr(info, "kernels Haswell (OPENBLAS_CORETYPE set by the user)") != NULL, "descent_blas_info: \"%s\"", info);
    return check_summary();
}
