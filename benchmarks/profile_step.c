/*
 * profile_step.c -- one network of train_step's, trained for a fixed time and nothing else, so
 * that a sampling profiler sees only the step (train_step also times the OpenBLAS reference
 * and 14 networks in one process, which a profile could not tell apart).
 *
 *   profile_step [--batch 128] [--threads 1] [--optimizer sgd] [--hparams k=v,...]
 *                [--batchnorm] [--seconds 5] [--reference]
 *
 * Same network and data as train_step: 784-100-100-100-100-10, ReLU, He, seed 1, one fixed
 * synthetic batch. Prints the median time per step over blocks of 50 steps. Meant to run under
 * `perf record`; benchmarks/perf_phases.py turns the samples into shares per phase
 * (docs/benchmarks.md, section 4).
 *
 * --reference: after each block of steps, a block of the iteration's 14 matrix products alone
 * (train_step's reference: cblas_sgemm on the OpenBLAS Descent loaded, at 1 thread, same
 * shapes), so the two alternate every few milliseconds and a slow phase of a shared machine
 * hits both. Prints the median of the per-pair ratios step / products. (Not for perf: the
 * products' samples would mix with the step's.)
 */
#define _GNU_SOURCE   /* clock_gettime, RTLD_NOLOAD */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "descent.h"
#define BENCH_PROGRAM "profile_step"
#include "bench_common.h"


enum { BLOCK = 50, MAX_BLOCKS = 100000 };

/* ---- the 14 products alone (as in train_step.c) ---------------------------------------------*/

static float *ref_x, *ref_w, *ref_dy, *ref_dw;

static void products_setup(int batch) {
    find_openblas("profile_step");
    openblas.set_threads(1);   /* as Descent keeps it */
    ref_x = calloc((size_t)batch * 784, sizeof(float));
    ref_dy = calloc((size_t)batch * 784, sizeof(float));
    ref_w = calloc(784 * 100, sizeof(float));
    ref_dw = calloc(784 * 100, sizeof(float));
    if (!ref_x || !ref_dy || !ref_w || !ref_dw) { fprintf(stderr, "profile_step: out of memory\n"); exit(1); }
}

static void products(int batch) { seed_products(batch, ref_x, ref_w, ref_dy, ref_dw); }

int main(int argc, char **argv) {
    int batch = 128, threads = 1, batchnorm = 0, reference = 0;
    double duration = 5;
    const char *optimizer = "sgd", *hparams = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--optimizer")) optimizer = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--hparams")) hparams = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--seconds")) duration = atof(argv[++i]);
        else if (!strcmp(argv[i], "--batchnorm")) batchnorm = 1;
        else if (!strcmp(argv[i], "--reference")) reference = 1;
        else {
            fprintf(stderr, "usage: profile_step [--batch 128] [--threads 1] [--optimizer sgd] "
                            "[--hparams k=v,...] [--batchnorm] [--seconds 5] [--reference]\n");
            return 2;
        }
    }
    if (batch < 1 || threads < 1 || !(duration > 0)) {
        fprintf(stderr, "profile_step: batch, threads and seconds must be > 0\n");
        return 2;
    }
    CHECK(descent_set_num_threads(threads));
    char spec[256];
    snprintf(spec, sizeof spec, "{\"sizes\":[784,100,100,100,100,10],\"batchnorm\":%s,\"seed\":1}",
             batchnorm ? "true" : "false");
    descent_net *net;
    CHECK(descent_net_create(spec, &net));
    CHECK(descent_net_set_optimizer(net, optimizer, hparams));

    float *x = malloc((size_t)batch * 784 * sizeof *x);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    double *times = malloc(MAX_BLOCKS * sizeof *times), *ref = malloc(MAX_BLOCKS * sizeof *ref);
    double *ratios = malloc(MAX_BLOCKS * sizeof *ratios);
    if (!x || !y || !times || !ref || !ratios) { fprintf(stderr, "profile_step: out of memory\n"); return 1; }
    srand(1);
    for (int i = 0; i < batch * 784; i++) x[i] = (float)rand() / (float)RAND_MAX;
    for (int i = 0; i < batch; i++) y[i] = i % 10;

    if (reference) products_setup(batch);
    float loss;
    for (int i = 0; i < 20; i++) CHECK(descent_net_train_step(net, x, y, batch, &loss));   /* warm-up */
    int blocks = 0;
    const double end = seconds() + duration;
    while (blocks < MAX_BLOCKS && seconds() < end) {
        double t0 = seconds();
        for (int i = 0; i < BLOCK; i++) CHECK(descent_net_train_step(net, x, y, batch, &loss));
        times[blocks] = (seconds() - t0) / BLOCK;
        if (reference) {
            t0 = seconds();
            for (int i = 0; i < BLOCK; i++) products(batch);
            ref[blocks] = (seconds() - t0) / BLOCK;
            ratios[blocks] = times[blocks] / ref[blocks];
        }
        blocks++;
    }
    if (blocks == 0) { fprintf(stderr, "profile_step: no block finished\n"); return 1; }
    qsort(times, (size_t)blocks, sizeof *times, compare_doubles);
    printf("%s%s, batch %d, %d thread%s: median %.1f us per step over %d blocks of %d steps "
           "(p10 %.1f, p90 %.1f); last loss %.6f\n", optimizer, batchnorm ? " with batch norm" : "",
           batch, threads, threads == 1 ? "" : "s", times[blocks / 2] * 1e6, blocks, BLOCK,
           times[blocks / 10] * 1e6, times[blocks * 9 / 10] * 1e6, loss);
    if (reference)
        printf("the 14 products alone: median %.1f us; step / products, median of the per-block ratios: "
               "%.3f\n", median(ref, blocks) * 1e6, median(ratios, blocks));
    descent_net_free(net);
    free(x); free(y); free(times); free(ref); free(ratios);
    return 0;
}
