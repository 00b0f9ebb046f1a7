/*
 * bench_common.h -- what the benchmark programs share: a monotonic clock, medians, the CPU's
 * name, the load average, and the seed network's reference work (the 14 matrix products of
 * one training iteration as plain cblas_sgemm calls on the OpenBLAS that Descent loaded).
 */
#ifndef DESCENT_BENCH_COMMON_H
#define DESCENT_BENCH_COMMON_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Exits with the library's message when a Descent call fails. Define BENCH_PROGRAM (the
 * program's name, for the message) before including this header. */
#define CHECK(call)                                                                         \
    do {                                                                                    \
        if ((call) != DESCENT_OK) {                                                         \
            fprintf(stderr, "%s: %s: %s\n", BENCH_PROGRAM, #call, descent_last_error());   \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v and returns its median. */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The CPU's model name ("model name" in /proc/cpuinfo), or "unknown": timings mean little
 * without it. */
static inline void cpu_model(char *model, size_t size) {
    snprintf(model, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && colon) {
            snprintf(model, size, "%s", colon + 1 + (colon[1] == ' '));
            model[strcspn(model, "\n")] = 0;
            break;
        }
    }
    fclose(f);
}

/* The 1-minute load average, or -1: says whether something else ran during a measurement. */
static inline double load_average(void) {
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1) load = -1;
        fclose(f);
    }
    return load;
}

/* The seed network: 784-100-100-100-100-10. */
static const int seed_sizes[] = {784, 100, 100, 100, 100, 10};
enum { SEED_LAYERS = 5 };

/* OpenBLAS as Descent loaded it (descent_blas_info loads it), with its kernel set. */
enum { CBLAS_ROW = 101, CBLAS_N = 111, CBLAS_T = 112 };
static struct {
    void (*sgemm)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                  float, float *, int);
    void (*set_threads)(int);
    int (*get_threads)(void);
} openblas;

static void find_openblas(const char *program) {
    void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
    if (!lib) { fprintf(stderr, "%s: libopenblas.so.0 is not loaded\n", program); exit(1); }
    *(void **)&openblas.sgemm = dlsym(lib, "cblas_sgemm");
    *(void **)&openblas.set_threads = dlsym(lib, "openblas_set_num_threads");
    *(void **)&openblas.get_threads = dlsym(lib, "openblas_get_num_threads");
    if (!openblas.sgemm || !openblas.set_threads || !openblas.get_threads) {
        fprintf(stderr, "%s: OpenBLAS lacks cblas_sgemm or openblas_set/get_num_threads\n", program);
        exit(1);
    }
}

/* One iteration's 14 products at `batch`: forward X W, backward X^T dY, and dY W^T except for
 * layer 1. x and dy hold batch * 784 floats, w and dw 784 * 100. */
static void seed_products(int batch, float *x, float *w, float *dy, float *dw) {
    for (int l = 0; l < SEED_LAYERS; l++) {
        int in = seed_sizes[l], out = seed_sizes[l + 1];
        openblas.sgemm(CBLAS_ROW, CBLAS_N, CBLAS_N, batch, out, in, 1, x, in, w, out, 0, dy, out);
        openblas.sgemm(CBLAS_ROW, CBLAS_T, CBLAS_N, in, out, batch, 1, x, in, dy, out, 0, dw, out);
        if (l > 0) openblas.sgemm(CBLAS_ROW, CBLAS_N, CBLAS_T, batch, in, out, 1, dy, out, w, out, 0, x, in);
    }
}

#endif
