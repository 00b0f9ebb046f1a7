/*
 * train_step.c -- how fast one training step of the seed network is, against this machine's
 * sgemm speed on the same matrix shapes, measured in the same run.
 *
 *   train_step [--iterations N] [--batch N] [--optimizers sgd,adam,...] [--threads N]
 *
 * Network: 784-100-100-100-100-10, ReLU, He (the book's seed network), with and without batch
 * norm, synthetic inputs (timing does not depend on the values). Per optimizer it prints the
 * median ms per iteration over blocks of iterations, samples/s, achieved GFLOP/s and the ratio
 * to the sgemm-only time of one iteration's 14 matrix products.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "descent.h"

#define CHECK(call)                                                                  \
    do {                                                                             \
        if ((call) != DESCENT_OK) {                                                  \
            fprintf(stderr, "error: %s\n", descent_last_error());                    \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static const int sizes[] = {784, 100, 100, 100, 100, 10};
enum { LAYERS = 5 };

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* FLOPs of one iteration: forward x*W, backward x^T*dy, and dy*W^T except for layer 1. */
static double flops_per_iteration(int batch) {
    double f = 0;
    for (int l = 0; l < LAYERS; l++) {
        double mnk = 2.0 * batch * sizes[l] * sizes[l + 1];
        f += mnk * (l == 0 ? 2 : 3);
    }
    return f;
}

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *,
                         int, float, float *, int);

/* Median seconds for the 14 sgemm calls of one iteration, on the BLAS Descent loaded. */
static double sgemm_seconds(int batch, int reps) {
    void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
    sgemm_fn sgemm = lib ? (sgemm_fn)dlsym(lib, "cblas_sgemm") : NULL;
    if (!sgemm) return 0;
    enum { ROW = 101, N = 111, T = 112 };
    float *a = calloc((size_t)batch * 784, sizeof(float)), *w = calloc(784 * 100, sizeof(float));
    float *c = calloc((size_t)batch * 784, sizeof(float)), *dw = calloc(784 * 100, sizeof(float));
    double *times = malloc((size_t)reps * sizeof *times);
    for (int r = 0; r < reps; r++) {
        double t0 = seconds();
        for (int l = 0; l < LAYERS; l++) {
            int in = sizes[l], out = sizes[l + 1];
            sgemm(ROW, N, N, batch, out, in, 1, a, in, w, out, 1, c, out);
            sgemm(ROW, T, N, in, out, batch, 1, a, in, c, out, 0, dw, out);
            if (l > 0) sgemm(ROW, N, T, batch, in, out, 1, c, out, w, out, 0, a, in);
        }
        times[r] = seconds() - t0;
    }
    double m = median(times, reps);
    free(a); free(w); free(c); free(dw); free(times);
    return m;
}

int main(int argc, char **argv) {
    int iterations = 2000, batch = 128, threads = 0;
    const char *list = "sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--iterations")) iterations = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--optimizers")) list = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    }
    if (threads > 0) CHECK(descent_set_num_threads(threads));
    printf("Descent %s, %d threads\nBLAS: %s\n", descent_version(), descent_get_num_threads(),
           descent_blas_info());

    float *x = malloc((size_t)batch * 784 * sizeof *x);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    srand(1);
    for (int i = 0; i < batch * 784; i++) x[i] = (float)rand() / (float)RAND_MAX;
    for (int i = 0; i < batch; i++) y[i] = i % 10;

    double gemm = sgemm_seconds(batch, 2000);
    double flops = flops_per_iteration(batch);
    printf("batch %d, %d iterations; one iteration = %.1f MFLOP; sgemm alone: %.3f ms = %.1f GFLOP/s\n\n",
           batch, iterations, flops / 1e6, gemm * 1e3, flops / gemm / 1e9);
    printf("%-10s %-9s %10s %12s %9s %13s\n", "optimizer", "batchnorm", "ms/iter", "samples/s",
           "GFLOP/s", "vs sgemm-only");

    char names[256];
    snprintf(names, sizeof names, "%s", list);
    for (int bn = 0; bn <= 1; bn++) {
        char spec[256];
        snprintf(spec, sizeof spec, "{\"sizes\":[784,100,100,100,100,10],\"batchnorm\":%s,\"seed\":1}",
                 bn ? "true" : "false");
        char copy[256];
        memcpy(copy, names, sizeof copy);
        for (char *name = strtok(copy, ","); name; name = strtok(NULL, ",")) {
            descent_net *net;
            CHECK(descent_net_create(spec, &net));
            CHECK(descent_net_set_optimizer(net, name, NULL));
            float loss;
            for (int i = 0; i < 20; i++) CHECK(descent_net_train_step(net, x, y, batch, &loss));
            enum { BLOCK = 50 };
            int blocks = iterations / BLOCK > 0 ? iterations / BLOCK : 1;
            double *times = malloc((size_t)blocks * sizeof *times);
            for (int b = 0; b < blocks; b++) {
                double t0 = seconds();
                for (int i = 0; i < BLOCK; i++) CHECK(descent_net_train_step(net, x, y, batch, &loss));
                times[b] = (seconds() - t0) / BLOCK;
            }
            double t = median(times, blocks);
            printf("%-10s %-9s %10.3f %12.0f %9.1f %12.2fx\n", name, bn ? "yes" : "no", t * 1e3,
                   batch / t, flops / t / 1e9, t / gemm);
            free(times);
            descent_net_free(net);
        }
    }
    free(x);
    free(y);
    return 0;
}
