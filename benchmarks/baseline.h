/*
 * baseline.h -- a second libdescent in the same process, for old-against-new timings.
 *
 * The host's speed drifts by up to 1.45x over minutes, so two libraries timed minutes apart
 * (or in two processes) cannot be compared to a few percent. A benchmark given --baseline LIB
 * instead loads LIB next to the libdescent it is linked with and alternates short runs of the
 * two; the median of the ratios of adjacent runs cancels the drift.
 *
 * LIB is loaded with dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND): its symbols do not replace
 * the linked library's, and (DEEPBIND) its own calls between its internal functions stay inside
 * it. Without DEEPBIND the dynamic linker binds those calls to the linked library's copy of
 * each dk_* function, which is first in the global scope: the baseline would time the new
 * kernels, and crash when an internal signature changed. The benchmark reaches both libraries
 * through a descent_api table of function pointers.
 * Both copies share the process's Swift runtime, libomp and OpenBLAS (each library sets its
 * own thread count). glibc loads a file only once, so the same file cannot be its own
 * baseline: copy it first (cp build/.../libdescent.so /tmp/libdescent-copy.so) to compare a
 * library with itself.
 */
#ifndef DESCENT_BENCH_BASELINE_H
#define DESCENT_BENCH_BASELINE_H

#include <dlfcn.h>
#include <stdio.h>

#include "descent.h"

/* The C API functions the benchmarks call, from one library. */
typedef struct {
    const char *origin;   /* "linked" or the baseline's path */
    const char *(*version)(void);
    const char *(*last_error)(void);
    const char *(*blas_info)(void);
    int32_t (*set_num_threads)(int32_t n);
    int32_t (*net_create)(const char *spec, descent_net **out);
    int32_t (*net_set_optimizer)(descent_net *net, const char *name, const char *hparams);
    int32_t (*net_train_step)(descent_net *net, const float *x, const int32_t *labels, int64_t batch,
                              float *loss);
    void (*net_free)(descent_net *net);
    int32_t (*optimizer_create)(const char *name, const char *hparams, descent_optimizer **out);
    int32_t (*optimizer_step)(descent_optimizer *opt, int64_t count, float *const *params,
                              const float *const *grads, const int64_t *lengths);
    int32_t (*optimizer_free)(descent_optimizer *opt);
} descent_api;

/* The library the benchmark is linked with. */
static inline descent_api descent_api_linked(void) {
    descent_api api = {
        "linked", descent_version, descent_last_error, descent_blas_info, descent_set_num_threads,
        descent_net_create, descent_net_set_optimizer, descent_net_train_step, descent_net_free,
        descent_optimizer_create, descent_optimizer_step, descent_optimizer_free,
    };
    return api;
}

/* Loads the library at `path` as a baseline. Returns 0 and prints why on stderr on failure
 * (not loadable, a symbol missing, or the linked library's own file). */
static inline int descent_api_load(const char *path, descent_api *api) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!lib) {
        fprintf(stderr, "--baseline: cannot load '%s': %s\n", path, dlerror());
        return 0;
    }
    api->origin = path;
#define DESCENT_API_SYMBOL(field, symbol)                                                   \
    if (!(*(void **)&api->field = dlsym(lib, #symbol))) {                                   \
        fprintf(stderr, "--baseline: '%s' has no %s: not a libdescent\n", path, #symbol);   \
        return 0;                                                                           \
    }
    DESCENT_API_SYMBOL(version, descent_version)
    DESCENT_API_SYMBOL(last_error, descent_last_error)
    DESCENT_API_SYMBOL(blas_info, descent_blas_info)
    DESCENT_API_SYMBOL(set_num_threads, descent_set_num_threads)
    DESCENT_API_SYMBOL(net_create, descent_net_create)
    DESCENT_API_SYMBOL(net_set_optimizer, descent_net_set_optimizer)
    DESCENT_API_SYMBOL(net_train_step, descent_net_train_step)
    DESCENT_API_SYMBOL(net_free, descent_net_free)
    DESCENT_API_SYMBOL(optimizer_create, descent_optimizer_create)
    DESCENT_API_SYMBOL(optimizer_step, descent_optimizer_step)
    DESCENT_API_SYMBOL(optimizer_free, descent_optimizer_free)
#undef DESCENT_API_SYMBOL
    if (api->version == descent_version) {
        fprintf(stderr, "--baseline: '%s' is the linked library itself (glibc loads a file once): "
                        "copy it to another path to compare it with itself\n", path);
        return 0;
    }
    return 1;
}

#endif /* DESCENT_BENCH_BASELINE_H */
