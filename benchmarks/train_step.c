/*
 * train_step.c -- how fast one training step of the seed network is, against the time the
 * iteration's matrix products take on OpenBLAS alone, measured in the same run.
 *
 *   train_step [--batch 128] [--iterations 2000] [--threads N] [--optimizers sgd,adam,...]
 *              [--hparams "check_finite=0"]   (given to every optimizer; default: its defaults)
 *              [--baseline OLD/libdescent.so [--pairs 10] [--run-seconds 0.3]]
 *
 * Network: 784-100-100-100-100-10, ReLU, He (the book's seed network), with and without batch
 * norm (at batch 1 without only: batch norm refuses to train on one sample), one fixed
 * synthetic batch (timing does not depend on the values). All 14 networks (7 optimizers x
 * batch norm off/on) are timed in interleaved blocks of iterations, so slow phases of a shared
 * machine hit them alike; each figure is the median over blocks of block time / iterations.
 *
 * Reference ("sgemm alone"): the iteration's 14 matrix products (per layer: forward X W, weight
 * gradient X^T dY, and dY W^T for every layer but the first) as cblas_sgemm calls on the
 * OpenBLAS that Descent loaded (same kernel set), same shapes, timed
 *   - with OpenBLAS at 1 thread (how Descent keeps it: Descent splits large products across
 *     its own OpenMP threads instead), and
 *   - with openblas_set_num_threads(N) for this run's thread count N (restored to 1 after).
 * Both are measured in alternating rounds, half before the networks and half after, so a slow
 * phase of the machine does not land on one of them only. The ratio uses the faster of the two;
 * the output says which.
 *
 * With --baseline LIB (baseline.h) the program compares instead of measuring against sgemm:
 * for each network it builds the same network in both libraries and alternates runs of
 * about --run-seconds of each (A B, then B A, ...), --pairs pairs; each pair gives the ratio
 * (this library's time per step) / (the baseline's), and the median ratio is printed, with the
 * range. Both networks take exactly the same steps, so the last loss also tells whether the
 * two libraries compute the same bits.
 *
 * Targets (issue 3): adam under 0.7 ms per iteration at batch 128 on this 2-core machine, and
 * under 60 us per step at batch 1.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "baseline.h"
#define BENCH_PROGRAM "train_step"
#include "bench_common.h"
#include "descent.h"


enum { MAX_NETS = 32 };

/* FLOPs of one iteration: forward X W, backward X^T dY, and dY W^T except for layer 1. */
static double flops_per_iteration(int batch) {
    double f = 0;
    for (int l = 0; l < SEED_LAYERS; l++) f += 2.0 * batch * seed_sizes[l] * seed_sizes[l + 1] * (l == 0 ? 2 : 3);
    return f;
}

/* ---- the OpenBLAS reference ----------------------------------------------------------------*/

/* Appends `reps` timings (seconds) of one iteration's 14 sgemm calls to t[*n]. */
static void time_products(int batch, int reps, double *t, int *n) {
    float *x = calloc((size_t)batch * 784, sizeof(float)), *w = calloc(784 * 100, sizeof(float));
    float *dy = calloc((size_t)batch * 784, sizeof(float)), *dw = calloc(784 * 100, sizeof(float));
    if (!x || !w || !dy || !dw) { fprintf(stderr, "train_step: out of memory\n"); exit(1); }
    for (int r = 0; r < reps; r++) {
        double t0 = seconds();
        seed_products(batch, x, w, dy, dw);
        t[(*n)++] = seconds() - t0;
    }
    free(x); free(w); free(dy); free(dw);
}

/* Rounds alternating OpenBLAS at `threads` threads and at 1 thread; ends at 1 thread, after a
 * pause that lets OpenBLAS's workers stop spinning before anything else is timed. */
static void reference_rounds(int batch, int threads, int reps, double *t1, int *n1, double *tn, int *nn) {
    enum { ROUNDS = 5 };
    for (int r = 0; r < ROUNDS; r++) {
        if (threads > 1) {
            openblas.set_threads(threads);
            time_products(batch, reps / ROUNDS, tn, nn);
            openblas.set_threads(1);
        }
        time_products(batch, reps / ROUNDS, t1, n1);
    }
    usleep(300000);
}

/* ---- --baseline: this library against another, in alternating runs -------------------------*/

static void api_check(const descent_api *api, int32_t status, const char *call) {
    if (status != DESCENT_OK) {
        fprintf(stderr, "train_step: %s (%s library): %s\n", call, api->origin, api->last_error());
        exit(1);
    }
}

/* Seconds per step over `steps` steps of `net`; the last loss goes to *loss. */
static double run_steps(const descent_api *api, descent_net *net, const float *x, const int32_t *y,
                        int batch, int steps, float *loss) {
    double t0 = seconds();
    for (int i = 0; i < steps; i++) api_check(api, api->net_train_step(net, x, y, batch, loss), "descent_net_train_step");
    return (seconds() - t0) / steps;
}

static int compare_with_baseline(const char *path, const char *list, const char *hparams, int batch,
                                 int threads, int pairs, double run_seconds) {
    descent_api lib[2] = {descent_api_linked(), {0}};   /* [0] this library, [1] the baseline */
    if (!descent_api_load(path, &lib[1])) return 1;
    for (int k = 0; k < 2; k++)
        if (threads > 0) api_check(&lib[k], lib[k].set_num_threads(threads), "descent_set_num_threads");
    threads = descent_get_num_threads();
    printf("# Descent %s (linked) against the baseline %s (Descent %s): seed network, batch %d, %d thread%s\n\n",
           lib[0].version(), path, lib[1].version(), batch, threads, threads == 1 ? "" : "s");
    printf("- BLAS: %s\n", lib[0].blas_info());
    if (hparams) printf("- optimizer hyperparameters: %s (besides the defaults)\n", hparams);
    printf("- per network: %d pairs of runs of about %.2f s each, alternating A B / B A; "
           "ratio = linked time per step / baseline time per step, per pair\n\n", pairs, run_seconds);
    printf("| optimizer | batch norm | ms/iter linked | ms/iter baseline | median ratio | ratio range | same last loss |\n");
    printf("|---|---|---:|---:|---:|---|---|\n");

    float *x = malloc((size_t)batch * 784 * sizeof *x);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    double *ratios = malloc((size_t)pairs * sizeof *ratios), *times[2];
    for (int k = 0; k < 2; k++) times[k] = malloc((size_t)pairs * sizeof(double));
    if (!x || !y || !ratios || !times[0] || !times[1]) { fprintf(stderr, "train_step: out of memory\n"); return 1; }
    srand(1);
    for (int i = 0; i < batch * 784; i++) x[i] = (float)rand() / (float)RAND_MAX;
    for (int i = 0; i < batch; i++) y[i] = i % 10;

    double all_ratios_product = 1;
    int networks = 0;
    for (int bn = 0; bn <= (batch > 1); bn++) {   /* batch norm cannot train on batches of 1 */
        char copy[256];
        snprintf(copy, sizeof copy, "%s", list);
        for (char *name = strtok(copy, ","); name; name = strtok(NULL, ",")) {
            char spec[256];
            snprintf(spec, sizeof spec, "{\"sizes\":[784,100,100,100,100,10],\"batchnorm\":%s,\"seed\":1}",
                     bn ? "true" : "false");
            descent_net *net[2];
            float loss[2] = {0, 0};
            for (int k = 0; k < 2; k++) {
                api_check(&lib[k], lib[k].net_create(spec, &net[k]), "descent_net_create");
                api_check(&lib[k], lib[k].net_set_optimizer(net[k], name, hparams), "descent_net_set_optimizer");
                run_steps(&lib[k], net[k], x, y, batch, 20, &loss[k]);   /* warm-up */
            }
            /* Steps per run: about run_seconds on the baseline (both take the same steps). */
            double per_step = run_steps(&lib[1], net[1], x, y, batch, 20, &loss[1]);
            run_steps(&lib[0], net[0], x, y, batch, 20, &loss[0]);
            int steps = (int)(run_seconds / per_step) + 1;
            for (int p = 0; p < pairs; p++) {
                for (int j = 0; j < 2; j++) {
                    int k = (p + j) % 2;   /* A B, then B A: neither always runs first */
                    times[k][p] = run_steps(&lib[k], net[k], x, y, batch, steps, &loss[k]);
                }
                ratios[p] = times[0][p] / times[1][p];
            }
            double ratio = median(ratios, pairs);   /* sorts ratios */
            all_ratios_product *= ratio;
            networks++;
            printf("| %s | %s | %.4f | %.4f | %.3f | %.3f-%.3f | %s |\n", name, bn ? "yes" : "no",
                   median(times[0], pairs) * 1e3, median(times[1], pairs) * 1e3, ratio, ratios[0],
                   ratios[pairs - 1], memcmp(&loss[0], &loss[1], sizeof(float)) == 0 ? "yes" : "NO");
            for (int k = 0; k < 2; k++) lib[k].net_free(net[k]);
        }
    }
    printf("\nGeometric mean of the median ratios over the %d networks: %.3f (< 1: the linked library is faster).\n",
           networks, pow(all_ratios_product, 1.0 / networks));
    free(x); free(y); free(ratios); free(times[0]); free(times[1]);
    return 0;
}

/* ---- main ----------------------------------------------------------------------------------*/

typedef struct {
    char name[32];
    int batchnorm;
    descent_net *net;
    double *times;
} config;

int main(int argc, char **argv) {
    int iterations = 2000, batch = 128, threads = 0;
    const char *list = "sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw", *hparams = NULL;
    const char *baseline = NULL;
    int pairs = 10;
    double run_seconds = 0.3;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--iterations")) iterations = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--optimizers")) list = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--hparams")) hparams = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--baseline")) baseline = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--pairs")) pairs = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--run-seconds")) run_seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: train_step [--batch 128] [--iterations 2000] [--threads N] "
                            "[--optimizers sgd,adam,...] [--hparams k=v,...]\n"
                            "                  [--baseline OLD/libdescent.so [--pairs 10] [--run-seconds 0.3]]\n");
            return 2;
        }
    }
    if (batch < 1 || iterations < 1) { fprintf(stderr, "train_step: batch and iterations must be >= 1\n"); return 2; }
    if (pairs < 1 || !(run_seconds > 0)) { fprintf(stderr, "train_step: pairs and run-seconds must be > 0\n"); return 2; }
    if (baseline) return compare_with_baseline(baseline, list, hparams, batch, threads, pairs, run_seconds);
    if (threads > 0) CHECK(descent_set_num_threads(threads));
    threads = descent_get_num_threads();
    const char *blas = descent_blas_info();   /* loads OpenBLAS */
    find_openblas("train_step");
    printf("# Descent %s: seed network training step, batch %d, %d thread%s\n\n", descent_version(),
           batch, threads, threads == 1 ? "" : "s");
    printf("- BLAS: %s\n", blas);
    if (hparams) printf("- optimizer hyperparameters: %s (besides the defaults)\n", hparams);

    const double flops = flops_per_iteration(batch);
    const int ref_reps = batch >= 32 ? 1000 : 10000;   /* per half: before and after the nets */
    double *ref_1 = malloc(2 * ref_reps * sizeof(double)), *ref_n = malloc(2 * ref_reps * sizeof(double));
    int n1 = 0, nn = 0;
    reference_rounds(batch, threads, ref_reps, ref_1, &n1, ref_n, &nn);

    float *x = malloc((size_t)batch * 784 * sizeof *x);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    srand(1);
    for (int i = 0; i < batch * 784; i++) x[i] = (float)rand() / (float)RAND_MAX;
    for (int i = 0; i < batch; i++) y[i] = i % 10;

    /* Blocks of iterations, interleaved over all networks with the order rotated each round. */
    const int blocks = iterations >= 40 ? 40 : iterations, per_block = iterations / blocks;
    config cfg[MAX_NETS];
    int nc = 0;
    for (int bn = 0; bn <= (batch > 1); bn++) {   /* batch norm cannot train on batches of 1 */
        char copy[256];
        snprintf(copy, sizeof copy, "%s", list);
        for (char *name = strtok(copy, ","); name && nc < MAX_NETS; name = strtok(NULL, ",")) {
            config *c = &cfg[nc++];
            snprintf(c->name, sizeof c->name, "%s", name);
            c->batchnorm = bn;
            char spec[256];
            snprintf(spec, sizeof spec,
                     "{\"sizes\":[784,100,100,100,100,10],\"batchnorm\":%s,\"seed\":1}", bn ? "true" : "false");
            CHECK(descent_net_create(spec, &c->net));
            CHECK(descent_net_set_optimizer(c->net, name, hparams));
            c->times = malloc((size_t)blocks * sizeof *c->times);
        }
    }
    float loss;
    for (int i = 0; i < nc; i++)
        for (int w = 0; w < 20; w++) CHECK(descent_net_train_step(cfg[i].net, x, y, batch, &loss));
    for (int b = 0; b < blocks; b++)
        for (int j = 0; j < nc; j++) {
            config *c = &cfg[(j + b) % nc];
            double t0 = seconds();
            for (int i = 0; i < per_block; i++) CHECK(descent_net_train_step(c->net, x, y, batch, &loss));
            c->times[b] = (seconds() - t0) / per_block;
        }
    reference_rounds(batch, threads, ref_reps, ref_1, &n1, ref_n, &nn);
    if (openblas.get_threads() != 1) { fprintf(stderr, "train_step: OpenBLAS not back at 1 thread\n"); return 1; }

    const double t_1 = median(ref_1, n1), t_n = nn ? median(ref_n, nn) : 0;
    const double ref = nn && t_n < t_1 ? t_n : t_1;
    printf("- one iteration = %.2f MFLOP in 14 matrix products\n", flops / 1e6);
    printf("- sgemm alone (the 14 products as cblas_sgemm calls), OpenBLAS at 1 thread: %.1f us = %.1f GFLOP/s\n",
           t_1 * 1e6, flops / t_1 / 1e9);
    if (nn)
        printf("- sgemm alone, OpenBLAS at %d threads: %.1f us = %.1f GFLOP/s\n", threads, t_n * 1e6,
               flops / t_n / 1e9);
    printf("- reference for the ratio (the faster): sgemm alone, OpenBLAS at %d thread%s\n",
           ref == t_1 ? 1 : threads, ref == t_1 ? "" : "s");
    printf("- %d iterations per network: %d interleaved blocks of %d, after 20 warm-up steps\n\n",
           blocks * per_block, blocks, per_block);

    printf("| optimizer | batch norm | ms/iter | samples/s | GFLOP/s | GFLOP/s vs reference |\n");
    printf("|---|---|---:|---:|---:|---:|\n");
    double adam_ms = -1, adam_bn_ms = -1, worst_ms = 0;
    int worst = 0;
    for (int i = 0; i < nc; i++) {
        config *c = &cfg[i];
        double t = median(c->times, blocks);
        printf("| %s | %s | %.4f | %.0f | %.2f | %.2f |\n", c->name, c->batchnorm ? "yes" : "no",
               t * 1e3, batch / t, flops / t / 1e9, ref / t);
        if (!strcmp(c->name, "adam")) *(c->batchnorm ? &adam_bn_ms : &adam_ms) = t * 1e3;
        if (t * 1e3 > worst_ms) { worst_ms = t * 1e3; worst = i; }
        descent_net_free(c->net);
        free(c->times);
    }
    printf("\nGFLOP/s vs reference = step GFLOP/s / reference GFLOP/s = reference time / step time.\n");
    if (batch == 128 && adam_ms >= 0)
        printf("Target (issue 3): adam at batch 128 under 0.7 ms/iteration: %.3f ms: %s "
               "(with batch norm: %.3f ms)\n", adam_ms, adam_ms < 0.7 ? "MET" : "MISSED", adam_bn_ms);
    if (batch == 1 && adam_ms >= 0)
        printf("Target (issue 3): under 60 us per step at batch 1: adam %.1f us: %s; slowest, %s%s: "
               "%.1f us: %s\n", adam_ms * 1e3, adam_ms < 0.06 ? "MET" : "MISSED", cfg[worst].name,
               cfg[worst].batchnorm ? " with batch norm" : "", worst_ms * 1e3, worst_ms < 0.06 ? "MET" : "MISSED");
    free(x); free(y); free(ref_1); free(ref_n);
    return isfinite(loss) ? 0 : 1;
}
