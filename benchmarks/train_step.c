/*
 * train_step.c -- how fast one training step of the seed network is, against the time the
 * iteration's matrix products take on OpenBLAS alone, measured in the same run.
 *
 *   train_step [--batch 128] [--iterations 2000] [--threads N] [--optimizers sgd,adam,...]
 *              [--hparams "check_finite=0"]   (given to every optimizer; default: its defaults)
 *              [--baseline OLD/libdescent.so [--pairs 10] [--run-seconds 0.3]]
 *   train_step --scaling [--batch 128] [--iterations 2000] [--threads 2] [--optimizers sgd,adam]
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
 * With --scaling the program times each network (default: sgd and adam, with and without batch
 * norm) at 1 thread and at N threads (--threads, default 2) in the same run: blocks at 1 and at
 * N threads alternate, and so does which of the two runs first. The reference is then the 14
 * products of HALF the batch (batch / 2 rows) on OpenBLAS at 1 thread: a step that splits the
 * batch into two shards, one per thread, each on single-threaded OpenBLAS, can at best take
 * that long at 2 threads. Per network it prints both times, the scaling (1-thread time /
 * N-thread time) and N-thread time / half-batch products (a reference that assumes 2 shards,
 * hence 2 threads).
 *
 * Targets. At batch 128 and 2 threads, the Adam step costs at most 1.25x the half-batch
 * products (1.5x with batch norm), and 2 threads run it at least 1.7x as fast as 1 thread
 * (--scaling prints these verdicts). Older ones (the default mode prints them): Adam under
 * 0.7 ms per iteration at batch 128 on a 2-core machine, and under 60 us per step at batch 1.
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

/* One fixed synthetic batch: pixels in [0, 1], labels 0..9 in turn (timing does not depend on them). */
static void synthetic_batch(int batch, float **x, int32_t **y) {
    *x = malloc((size_t)batch * 784 * sizeof **x);
    *y = malloc((size_t)batch * sizeof **y);
    if (!*x || !*y) { fprintf(stderr, "train_step: out of memory\n"); exit(1); }
    srand(1);
    for (int i = 0; i < batch * 784; i++) (*x)[i] = (float)rand() / (float)RAND_MAX;
    for (int i = 0; i < batch; i++) (*y)[i] = i % 10;
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

    float *x;
    int32_t *y;
    synthetic_batch(batch, &x, &y);
    double *ratios = malloc((size_t)pairs * sizeof *ratios), *times[2];
    for (int k = 0; k < 2; k++) times[k] = malloc((size_t)pairs * sizeof(double));
    if (!ratios || !times[0] || !times[1]) { fprintf(stderr, "train_step: out of memory\n"); return 1; }

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

/* ---- the networks, and their timing in interleaved blocks ----------------------------------*/

typedef struct {
    char name[32];
    int batchnorm;
    descent_net *net;
    double *times[2];   /* per block, seconds per step: [0] the default mode's, or (--scaling) 1 thread; [1] N threads */
} config;

/* The seed network for every optimizer in `list`, without and then with batch norm (not at
 * batch 1: batch norm cannot train on one sample), each after 20 warm-up steps. Returns the count. */
static int create_networks(const char *list, const char *hparams, int batch, int blocks, const float *x,
                           const int32_t *y, config *cfg) {
    int nc = 0;
    for (int bn = 0; bn <= (batch > 1); bn++) {
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
            for (int k = 0; k < 2; k++)
                if (!(c->times[k] = malloc((size_t)blocks * sizeof(double)))) {
                    fprintf(stderr, "train_step: out of memory\n");
                    exit(1);
                }
            float loss;
            for (int w = 0; w < 20; w++) CHECK(descent_net_train_step(c->net, x, y, batch, &loss));
        }
    }
    return nc;
}

/* Block `b` of every network, `per_block` steps each, into times[k][b]; the order of the
 * networks rotates with b, so none always runs right after another. Returns the last loss. */
static float time_block(config *cfg, int nc, int b, int k, int per_block, const float *x, const int32_t *y,
                        int batch) {
    float loss = 0;
    for (int j = 0; j < nc; j++) {
        config *c = &cfg[(j + b) % nc];
        double t0 = seconds();
        for (int i = 0; i < per_block; i++) CHECK(descent_net_train_step(c->net, x, y, batch, &loss));
        c->times[k][b] = (seconds() - t0) / per_block;
    }
    return loss;
}

static void free_networks(config *cfg, int nc) {
    for (int i = 0; i < nc; i++) {
        descent_net_free(cfg[i].net);
        free(cfg[i].times[0]);
        free(cfg[i].times[1]);
    }
}

/* ---- --scaling: 1 thread against N, and against the products of half the batch ------------*/

static int measure_scaling(const char *list, const char *hparams, int batch, int threads, int iterations) {
    if (batch < 2) { fprintf(stderr, "train_step: --scaling needs a batch of at least 2\n"); return 2; }
    if (threads == 1) { fprintf(stderr, "train_step: --scaling compares 1 thread with --threads N >= 2\n"); return 2; }
    if (threads == 0) threads = 2;
    const int half = batch / 2;
    const char *blas = descent_blas_info();   /* loads OpenBLAS */
    find_openblas("train_step");
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    printf("# Descent %s: seed network training step at 1 and %d threads, batch %d\n\n", descent_version(),
           threads, batch);
    printf("- CPU: %s, %ld logical CPUs online; load average before: %.2f\n", cpu,
           sysconf(_SC_NPROCESSORS_ONLN), load_average());
    printf("- BLAS: %s\n", blas);
    if (hparams) printf("- optimizer hyperparameters: %s (besides the defaults)\n", hparams);

    /* The reference, half before and half after the networks (reference_rounds at 1 thread). */
    const int ref_reps = 1000;
    double *ref = malloc(2 * ref_reps * sizeof(double));
    int nref = 0, unused = 0;
    if (!ref) { fprintf(stderr, "train_step: out of memory\n"); return 1; }
    reference_rounds(half, 1, ref_reps, ref, &nref, NULL, &unused);

    float *x;
    int32_t *y;
    synthetic_batch(batch, &x, &y);
    const int blocks = iterations >= 40 ? 40 : iterations, per_block = iterations / blocks;
    config cfg[MAX_NETS];
    const int nc = create_networks(list, hparams, batch, blocks, x, y, cfg);
    const int counts[2] = {1, threads};
    float loss = 0;
    for (int b = 0; b < blocks; b++)
        for (int s = 0; s < 2; s++) {
            const int k = (b + s) % 2;   /* 1 then N, then N then 1: neither always runs first */
            CHECK(descent_set_num_threads(counts[k]));
            CHECK(descent_net_train_step(cfg[0].net, x, y, batch, &loss));   /* untimed: threads settle */
            loss = time_block(cfg, nc, b, k, per_block, x, y, batch);
        }
    reference_rounds(half, 1, ref_reps, ref, &nref, NULL, &unused);
    if (openblas.get_threads() != 1) { fprintf(stderr, "train_step: OpenBLAS not back at 1 thread\n"); return 1; }
    const double t_ref = median(ref, nref);

    printf("- reference: the 14 products of half the batch (%d rows) as cblas_sgemm calls, OpenBLAS at "
           "1 thread: %.1f us = %.1f GFLOP/s\n", half, t_ref * 1e6, flops_per_iteration(half) / t_ref / 1e9);
    printf("- %d iterations per network and thread count: %d blocks of %d, 1- and %d-thread blocks "
           "alternating; medians over blocks\n", blocks * per_block, blocks, per_block, threads);
    printf("- load average after: %.2f\n\n", load_average());
    printf("| network | 1 thread (ms) | %d threads (ms) | scaling (t1/t%d) | %d-thread time / half-batch "
           "products (1 thread) | target |\n", threads, threads, threads);
    printf("|---|---:|---:|---:|---:|---:|\n");
    char verdicts[1024] = "";
    for (int i = 0; i < nc; i++) {
        config *c = &cfg[i];
        const double t1 = median(c->times[0], blocks), tn = median(c->times[1], blocks);
        const double ratio = tn / t_ref, target = c->batchnorm ? 1.5 : 1.25;
        printf("| %s%s | %.4f | %.4f | %.2fx | %.2fx | <= %.2fx |\n", c->name, c->batchnorm ? " + batch norm" : "",
               t1 * 1e3, tn * 1e3, t1 / tn, ratio, target);
        if (!strcmp(c->name, "adam")) {
            size_t used = strlen(verdicts);
            snprintf(verdicts + used, sizeof verdicts - used,
                     "- adam%s: %.2fx the half-batch products (<= %.2fx): %s; scaling %.2fx (>= 1.7x): %s\n",
                     c->batchnorm ? " + batch norm" : "", ratio, target, ratio <= target ? "MET" : "MISSED",
                     t1 / tn, t1 / tn >= 1.7 ? "MET" : "MISSED");
        }
    }
    if (batch == 128 && threads == 2 && verdicts[0])
        printf("\nTargets at batch 128, 2 threads:\n%s", verdicts);
    free_networks(cfg, nc);
    free(x); free(y); free(ref);
    return isfinite(loss) ? 0 : 1;
}

/* ---- main ----------------------------------------------------------------------------------*/

int main(int argc, char **argv) {
    int iterations = 2000, batch = 128, threads = 0, scaling = 0;
    const char *list = NULL, *hparams = NULL;
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
        else if (!strcmp(argv[i], "--scaling")) scaling = 1;
        else {
            fprintf(stderr, "usage: train_step [--batch 128] [--iterations 2000] [--threads N] "
                            "[--optimizers sgd,adam,...] [--hparams k=v,...]\n"
                            "                  [--baseline OLD/libdescent.so [--pairs 10] [--run-seconds 0.3]]\n"
                            "       train_step --scaling [--batch 128] [--iterations 2000] [--threads 2] "
                            "[--optimizers sgd,adam] [--hparams k=v,...]\n");
            return 2;
        }
    }
    if (batch < 1 || iterations < 1) { fprintf(stderr, "train_step: batch and iterations must be >= 1\n"); return 2; }
    if (pairs < 1 || !(run_seconds > 0)) { fprintf(stderr, "train_step: pairs and run-seconds must be > 0\n"); return 2; }
    if (scaling && baseline) { fprintf(stderr, "train_step: --scaling and --baseline do not combine\n"); return 2; }
    if (scaling) return measure_scaling(list ? list : "sgd,adam", hparams, batch, threads, iterations);
    if (!list) list = "sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw";
    if (baseline) return compare_with_baseline(baseline, list, hparams, batch, threads, pairs, run_seconds);
    if (threads > 0) CHECK(descent_set_num_threads(threads));
    threads = descent_get_num_threads();
    const char *blas = descent_blas_info();   /* loads OpenBLAS */
    find_openblas("train_step");
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    printf("# Descent %s: seed network training step, batch %d, %d thread%s\n\n", descent_version(),
           batch, threads, threads == 1 ? "" : "s");
    printf("- CPU: %s, %ld logical CPUs online\n", cpu, sysconf(_SC_NPROCESSORS_ONLN));
    printf("- BLAS: %s\n", blas);
    if (hparams) printf("- optimizer hyperparameters: %s (besides the defaults)\n", hparams);

    const double flops = flops_per_iteration(batch);
    const int ref_reps = batch >= 32 ? 1000 : 10000;   /* per half: before and after the nets */
    double *ref_1 = malloc(2 * ref_reps * sizeof(double)), *ref_n = malloc(2 * ref_reps * sizeof(double));
    int n1 = 0, nn = 0;
    reference_rounds(batch, threads, ref_reps, ref_1, &n1, ref_n, &nn);

    float *x;
    int32_t *y;
    synthetic_batch(batch, &x, &y);
    /* Blocks of iterations, interleaved over all networks with the order rotated each round. */
    const int blocks = iterations >= 40 ? 40 : iterations, per_block = iterations / blocks;
    config cfg[MAX_NETS];
    const int nc = create_networks(list, hparams, batch, blocks, x, y, cfg);
    float loss = 0;
    for (int b = 0; b < blocks; b++) loss = time_block(cfg, nc, b, 0, per_block, x, y, batch);
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
        double t = median(c->times[0], blocks);
        printf("| %s | %s | %.4f | %.0f | %.2f | %.2f |\n", c->name, c->batchnorm ? "yes" : "no",
               t * 1e3, batch / t, flops / t / 1e9, ref / t);
        if (!strcmp(c->name, "adam")) *(c->batchnorm ? &adam_bn_ms : &adam_ms) = t * 1e3;
        if (t * 1e3 > worst_ms) { worst_ms = t * 1e3; worst = i; }
    }
    printf("\nGFLOP/s vs reference = step GFLOP/s / reference GFLOP/s = reference time / step time.\n");
    if (batch == 128 && adam_ms >= 0)
        printf("Target: adam at batch 128 under 0.7 ms/iteration: %.3f ms: %s "
               "(with batch norm: %.3f ms)\n", adam_ms, adam_ms < 0.7 ? "MET" : "MISSED", adam_bn_ms);
    if (batch == 1 && adam_ms >= 0)
        printf("Target: under 60 us per step at batch 1: adam %.1f us: %s; slowest, %s%s: "
               "%.1f us: %s\n", adam_ms * 1e3, adam_ms < 0.06 ? "MET" : "MISSED", cfg[worst].name,
               cfg[worst].batchnorm ? " with batch norm" : "", worst_ms * 1e3, worst_ms < 0.06 ? "MET" : "MISSED");
    free_networks(cfg, nc);
    free(x); free(y); free(ref_1); free(ref_n);
    return isfinite(loss) ? 0 : 1;
}
