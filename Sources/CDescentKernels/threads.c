/* threads.c -- the thread count every parallel kernel uses. */
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "descent_kernels.h"

static atomic_int current_threads;   /* 0 until first use */
static int default_threads = 1;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

/* DESCENT_NUM_THREADS wins when it is a whole number >= 1; anything else is ignored. */
static void compute_default(void) {
    int n = omp_get_max_threads();
    const char *env = getenv("DESCENT_NUM_THREADS");
    if (env && *env) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (end && *end == '\0' && v >= 1 && v <= 1024) n = (int)v;
    }
    default_threads = n < 1 ? 1 : n;
}

int32_t dk_default_threads(void) {
    pthread_once(&default_once, compute_default);
    return default_threads;
}

int32_t dk_get_threads(void) {
    int n = atomic_load_explicit(&current_threads, memory_order_relaxed);
    return n > 0 ? n : dk_default_threads();
}

int32_t dk_set_threads(int32_t n) {
    atomic_store_explicit(&current_threads, n > 0 ? n : 0, memory_order_relaxed);
    return dk_get_threads();
}
