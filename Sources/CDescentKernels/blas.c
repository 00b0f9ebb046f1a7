/*
 * blas.c -- matrix products through OpenBLAS, loaded at run time.
 *
 * Why dlopen and not a link: Debian's OpenBLAS 0.3.21 does not recognise recent Intel CPUs
 * (Sapphire Rapids) and falls back to its "Prescott" kernels, ~4x slower for sgemm. OpenBLAS
 * (built with DYNAMIC_ARCH) reads OPENBLAS_CORETYPE once, when it is loaded, and has no call to
 * change the kernel set afterwards; so the only way to pick the right one without asking every
 * user to set a variable is to set it ourselves (only when the user has not) before OpenBLAS
 * loads. A link would load OpenBLAS before any code of ours runs; dlopen loads it on first use.
 *
 * When the variable is set: once, in a constructor that runs while libdescent itself is loaded
 * (before main for a linked program, inside dlopen for Python), never at an arbitrary later
 * time. setenv is not safe against getenv in other threads, and at load time the library has
 * started none. The process's environment, and its children's, then hold the variable.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descent_kernels.h"

typedef void (*sgemm_fn)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc);
typedef void (*sgemv_fn)(int order, int trans, int m, int n, float alpha, const float *a, int lda,
                         const float *x, int incx, float beta, float *y, int incy);
typedef char *(*text_fn)(void);
typedef void (*set_threads_fn)(int);

static struct {
    sgemm_fn sgemm;
    sgemv_fn sgemv;
    char text[256];   /* the description once loaded, else why not */
} blas;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static const char *chosen_coretype;   /* what choose_coretype set, or NULL */

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

/* At load (see the top of the file): OPENBLAS_CORETYPE for this CPU, unless the user set one. */
__attribute__((constructor)) static void choose_coretype(void) {
    if (getenv("OPENBLAS_CORETYPE")) return;
    const char *core = preferred_coretype();
    if (core && setenv("OPENBLAS_CORETYPE", core, 0) == 0) chosen_coretype = core;
}

static void load(void) {
    const char *core = getenv("OPENBLAS_CORETYPE");
    const char *chosen_by = !core ? "OpenBLAS's own detection"
                            : chosen_coretype && !strcmp(core, chosen_coretype) ? "chosen by Descent for this CPU"
                                                                                : "OPENBLAS_CORETYPE set by the user";
    void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(blas.text, sizeof blas.text, "cannot load OpenBLAS (libopenblas.so.0): %s", dlerror());
        return;
    }
    blas.sgemm = (sgemm_fn)dlsym(lib, "cblas_sgemm");
    blas.sgemv = (sgemv_fn)dlsym(lib, "cblas_sgemv");
    set_threads_fn set_threads = (set_threads_fn)dlsym(lib, "openblas_set_num_threads");
    text_fn corename = (text_fn)dlsym(lib, "openblas_get_corename");
    text_fn config = (text_fn)dlsym(lib, "openblas_get_config");
    if (!blas.sgemm || !blas.sgemv) {
        blas.sgemm = NULL;
        snprintf(blas.text, sizeof blas.text, "libopenblas.so.0 lacks cblas_sgemm or cblas_sgemv");
        return;
    }
    /* OpenBLAS runs single-threaded inside our own OpenMP threads (see dk_sgemm): its own
     * pthread pool splits these small products poorly and its spinning workers slow the
     * OpenMP kernels next to them. */
    if (set_threads) set_threads(1);
    snprintf(blas.text, sizeof blas.text, "%s; kernels %s (%s)", config ? config() : "OpenBLAS",
             corename ? corename() : "unknown", chosen_by);
}

int32_t dk_blas_ready(void) {
    pthread_once(&load_once, load);
    return blas.sgemm != NULL;
}

const char *dk_blas_description(void) {
    pthread_once(&load_once, load);
    return blas.text;
}

/* Work below this many multiply-adds runs in one call: the split's fork costs ~1 us. */
#define DK_SGEMM_PARALLEL_MIN (1 << 19)

/* One call of OpenBLAS: row-major C = alpha * op(A) * op(B) + beta * C. A single row of C
 * (batch 1) is a matrix-vector product, c = op(B)^T a, which sgemv does several times faster
 * than sgemm's small-matrix kernels. */
static void sgemm_call(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha,
                       const float *a, int32_t lda, const float *b, int32_t ldb, float beta, float *c,
                       int32_t ldc) {
    enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };
    if (m == 1) {
        /* the row of op(A): A's first row (stride 1), or A^T's (A's first column, stride lda) */
        const int incx = trans_a ? lda : 1;
        if (trans_b)   /* B is [n][k]: c[n] = B a */
            blas.sgemv(ROW_MAJOR, NO_TRANS, n, k, alpha, b, ldb, a, incx, beta, c, 1);
        else           /* B is [k][n]: c[n] = B^T a */
            blas.sgemv(ROW_MAJOR, TRANS, k, n, alpha, b, ldb, a, incx, beta, c, 1);
        return;
    }
    blas.sgemm(ROW_MAJOR, trans_a ? TRANS : NO_TRANS, trans_b ? TRANS : NO_TRANS, m, n, k, alpha, a,
               lda, b, ldb, beta, c, ldc);
}

/* The products of part p of C, the rows or columns [p * part, min((p + 1) * part, length)):
 * rows of C take rows of op(A) (a row of A, or a column of A^T); columns take columns of op(B). */
static void sgemm_part(int split_rows, int32_t p, int32_t part, int32_t length, int32_t trans_a, int32_t trans_b,
                       int32_t m, int32_t n, int32_t k, float alpha, const float *a, int32_t lda,
                       const float *b, int32_t ldb, float beta, float *c, int32_t ldc) {
    const int32_t begin = p * part, size = (p + 1) * part < length ? part : length - begin;
    if (split_rows) {
        const float *a_part = trans_a ? a + begin : a + (int64_t)begin * lda;
        sgemm_call(trans_a, trans_b, size, n, k, alpha, a_part, lda, b, ldb, beta,
                   c + (int64_t)begin * ldc, ldc);
    } else {
        const float *b_part = trans_b ? b + (int64_t)begin * ldb : b + begin;
        sgemm_call(trans_a, trans_b, m, size, k, alpha, a, lda, b_part, ldb, beta, c + begin, ldc);
    }
}

/*
 * Row-major C[m][n] = alpha * op(A)[m][k] * op(B)[k][n] + beta * C. Call only after
 * dk_blas_ready() returned 1.
 *
 * Inside a shard of a batch split into several (shards.c), one OpenBLAS call: each thread
 * already has a part of the batch. Otherwise large products are cut into parts along the
 * longer side of C, and the parts run on
 * Descent's threads (OpenBLAS itself stays single-threaded). Each element of C is still one
 * dot product over all of k inside one OpenBLAS call, so no reduction is needed. The cut
 * depends on the shape alone, never on the thread count: one thread runs the same calls one
 * after another, so results are bit-identical for any thread count.
 */
void dk_sgemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha,
              const float *a, int32_t lda, const float *b, int32_t ldb, float beta, float *c,
              int32_t ldc) {
    const int split_rows = m >= n;
    const int32_t length = split_rows ? m : n;
    /* Parts of at least 64 rows (OpenBLAS is efficient from there), about a quarter of the
     * side, on multiples of 16 so the parts' vectors stay aligned with the kernels. */
    int32_t part = ((length + 3) / 4 + 15) & ~15;
    if (part < 64) part = 64;
    const int32_t parts = (length + part - 1) / part;
    /* In a shard the thread already has its own part of the batch: one call. */
    if (dk_in_shard() || (int64_t)m * n * k < DK_SGEMM_PARALLEL_MIN || parts < 2) {
        sgemm_call(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int threads = dk_get_threads();
    if (threads > parts) threads = parts;
    if (threads < 2) {
        for (int32_t p = 0; p < parts; p++)
            sgemm_part(split_rows, p, part, length, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* OpenMP workers do not inherit the caller's floating-point mode (denormals.c): pass it on. */
    const uint32_t caller_mode = dk_fp_mode_get();
#pragma omp parallel num_threads(threads)
    {
        const uint32_t mode = dk_fp_mode_get();
        dk_fp_mode_set(caller_mode);
        /* Parts dealt out by hand: libomp 14 allocates on every `omp for`, and a training
         * step must not allocate. */
        for (int32_t p = omp_get_thread_num(); p < parts; p += omp_get_num_threads())
            sgemm_part(split_rows, p, part, length, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        dk_fp_mode_set(mode);
    }
}
