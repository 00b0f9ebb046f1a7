/*
 * blas.c -- matrix products through OpenBLAS, loaded at run time.
 *
 * Why dlopen and not a link: Debian's OpenBLAS 0.3.21 does not recognise recent Intel CPUs
 * (Sapphire Rapids) and falls back to its "Prescott" kernels, ~4x slower for sgemm. The kernel
 * set is chosen from OPENBLAS_CORETYPE when the library loads, so the only way to pick the
 * right one without asking every user to set a variable is to set it ourselves (only when the
 * user has not) and then load the library. See TOOLCHAIN.md, "BLAS: beware CPU detection".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descent_kernels.h"

typedef void (*sgemm_fn)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc);
typedef char *(*corename_fn)(void);
typedef char *(*config_fn)(void);
typedef void (*set_threads_fn)(int);

static struct {
    sgemm_fn sgemm;
    set_threads_fn set_threads;
    char description[256];
    char error[256];
} blas;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded;   /* set once, under load_once */

/* The kernel set for this CPU, when OpenBLAS's own detection is known to be wrong or slow. */
static const char *preferred_coretype(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

static void load(void) {
    const char *chosen_by = "OPENBLAS_CORETYPE set by the user";
    if (!getenv("OPENBLAS_CORETYPE")) {
        const char *core = preferred_coretype();
        if (core) {
            setenv("OPENBLAS_CORETYPE", core, 0);
            chosen_by = "chosen by Descent for this CPU";
        } else {
            chosen_by = "OpenBLAS's own detection";
        }
    }
    const char *names[] = {"libopenblas.so.0", "libopenblas.so"};
    void *lib = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(blas.error, sizeof blas.error, "cannot load OpenBLAS (libopenblas.so.0): %s",
                 dlerror());
        return;
    }
    blas.sgemm = (sgemm_fn)dlsym(lib, "cblas_sgemm");
    blas.set_threads = (set_threads_fn)dlsym(lib, "openblas_set_num_threads");
    corename_fn corename = (corename_fn)dlsym(lib, "openblas_get_corename");
    config_fn config = (config_fn)dlsym(lib, "openblas_get_config");
    if (!blas.sgemm) {
        snprintf(blas.error, sizeof blas.error, "libopenblas.so.0 has no cblas_sgemm");
        return;
    }
    if (blas.set_threads) blas.set_threads(dk_get_threads());
    __atomic_store_n(&loaded, 1, __ATOMIC_RELEASE);
    snprintf(blas.description, sizeof blas.description, "%s; kernels %s (%s)",
             config ? config() : "OpenBLAS", corename ? corename() : "unknown", chosen_by);
}

int32_t dk_blas_ready(void) {
    pthread_once(&load_once, load);
    return blas.sgemm != NULL;
}

const char *dk_blas_error(void) { return blas.error; }

const char *dk_blas_description(void) {
    pthread_once(&load_once, load);
    return blas.sgemm ? blas.description : blas.error;
}

/* Follows descent_set_num_threads; does not load OpenBLAS just for this. */
void dk_blas_set_threads(int32_t n) {
    if (__atomic_load_n(&loaded, __ATOMIC_ACQUIRE) && blas.set_threads) blas.set_threads(n);
}

/* Row-major C = alpha * op(A) * op(B) + beta * C. Call only after dk_blas_ready() returned 1. */
void dk_sgemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha,
              const float *a, int32_t lda, const float *b, int32_t ldb, float beta, float *c,
              int32_t ldc) {
    enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };
    blas.sgemm(ROW_MAJOR, trans_a ? TRANS : NO_TRANS, trans_b ? TRANS : NO_TRANS, m, n, k, alpha,
               a, lda, b, ldb, beta, c, ldc);
}
