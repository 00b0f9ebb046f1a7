/*
 * test_pinned_results.c -- training gives the same bits as the recorded runs, bit for bit.
 *
 * Why: refactors of the network code (parameter storage, the forward/backward path, the batch-1
 * path) must not change a single result. Each run below trains a fixed network on fixed data
 * and hashes what it produced; the hashes were recorded from the library as it was before such
 * a refactor. Any change of any bit of any loss, parameter or gradient changes a hash.
 *
 * What is pinned (one row of RUNS each):
 *  - every built-in optimizer (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw), at
 *    batch 128, without and with batch norm; one run with dropout (and the spec's L2 decay);
 *  - the batch-1 path (batch 1, no batch norm or dropout) with sgd, momentum and adam.
 * Every run takes STEPS = 200 descent_net_train_step calls on the spec SPEC_PLAIN / SPEC_BN /
 * SPEC_DROPOUT (sizes [64, 192, 128, 10], relu, he init, seed 1234), with the optimizer's
 * hyperparameters written out in full in the row.
 *
 * The two hashes of a run, both FNV-1a 64 (offset basis 0xcbf29ce484222325, prime
 * 0x100000001b3) over the little-endian bytes of IEEE-754 float32 bit patterns:
 *  - losses: the STEPS losses returned by descent_net_train_step, in step order;
 *  - state:  for each parameter in descent_net_param order, its values then its gradient (the
 *            last step's), followed by the loss and the accuracy descent_net_evaluate gives on
 *            EVAL_ROWS held-out samples (evaluation mode: this pins the batch-norm running
 *            averages too).
 *
 * Data: generated here, independent of numpy and of the library's generator. splitmix64
 * (seed DATA_SEED) gives every number; an input feature is (top 24 bits) * 2^-23 - 1, an exact
 * float in [-1, 1); a sample's label is the argmax of TEACHER . x, a fixed random 10 x 64 matrix
 * drawn first from the same stream, so the task is learnable and the losses fall. Training
 * batch s (s = 0..199) is the s-th block of `batch` samples of the stream after the teacher;
 * the held-out samples follow the last training batch.
 *
 * Threads: every run is made with 1 and with 2 threads and must give the recorded hashes both
 * times (the library promises results independent of the thread count).
 *
 * BLAS: OpenBLAS picks its kernels by CPU, and kernels differ in rounding. The test therefore
 * runs with OPENBLAS_CORETYPE=Haswell (AVX2 + FMA, what the library itself is compiled for:
 * -march=x86-64-v3): the test sets it and re-executes itself, so it is in place before
 * libdescent and OpenBLAS load. The hashes were recorded with OpenBLAS
 * 0.3.21 (Debian); a machine with another OpenBLAS version or kernel set reports SKIP (exit
 * code 77) instead of a false failure, after printing descent_blas_info().
 *
 * Re-recording, deliberately: only when a change is meant to change results. Run
 *     DESCENT_PINNED_RECORD=1 build/tests/test_pinned_results
 * and paste the printed rows over RUNS. A change of summation order (or any other rounding
 * change) must come with a note in the docs saying why it only changes rounding, and the
 * commit that re-records must say which change moved the bits.
 */
#define _GNU_SOURCE   /* setenv, execv */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "descent.h"

#define STEPS 200
#define FEATURES 64
#define CLASSES 10
#define TRAIN_BATCH 128
#define EVAL_ROWS 512
#define DATA_SEED 0x5eed2026u
#define SKIP_CODE 77
#define LEARNED_OVER 20

#define SIZES "\"sizes\":[64,192,128,10],\"activation\":\"relu\",\"init\":\"he\",\"seed\":1234"
static const char SPEC_PLAIN[] = "{" SIZES "}";
static const char SPEC_BN[] = "{" SIZES ",\"batchnorm\":true}";
static const char SPEC_DROPOUT[] = "{" SIZES ",\"dropout\":0.2,\"weight_decay\":0.0001}";

typedef struct {
    const char *spec;
    const char *optimizer;
    const char *hparams;
    int64_t batch;
    uint64_t losses;   /* FNV-1a 64 of the STEPS losses */
    uint64_t state;    /* FNV-1a 64 of the final parameters, gradients and evaluation */
} pinned_run;

/* Recorded on 2026-12-02 after batches of 128 rows became 2 shards (AMD EPYC, OpenBLAS 0.3.21, kernels Haswell). */
static const pinned_run RUNS[] = {
    {SPEC_PLAIN, "sgd", "lr=0.05", 128, 0x71c858fc05f86c34, 0x0a46961bdbcf8c82},
    {SPEC_PLAIN, "momentum", "lr=0.02,momentum=0.9", 128, 0xd29c9a6ddb7db949, 0x125bac82e8d5d7b3},
    {SPEC_PLAIN, "nesterov", "lr=0.02,momentum=0.9", 128, 0x8f195b3cbcea615e, 0xd74ef85c680e0672},
    {SPEC_PLAIN, "adagrad", "lr=0.02,eps=1e-10", 128, 0x9da83d4fd0c00fdc, 0xd648f5984b61dcc7},
    {SPEC_PLAIN, "rmsprop", "lr=0.001,decay=0.9,eps=1e-08", 128, 0x69ec99ace931345a, 0x5041035c82c68709},
    {SPEC_PLAIN, "adam", "lr=0.001,beta1=0.9,beta2=0.999,eps=1e-07,eps_hat=1", 128, 0x98e10621950e5bd0, 0xc9663df552283de9},
    {SPEC_PLAIN, "adamw", "lr=0.001,beta1=0.9,beta2=0.999,eps=1e-08,weight_decay=0.01", 128, 0xe53b2355b576384b, 0x7987869d6103c79f},
    {SPEC_BN, "sgd", "lr=0.05", 128, 0x2a248692f3be89e7, 0x2fac157d52c67b8e},
    {SPEC_BN, "momentum", "lr=0.02,momentum=0.9", 128, 0x30eb12f7c3aaa5c5, 0x493379e65bd92eca},
    {SPEC_BN, "nesterov", "lr=0.02,momentum=0.9", 128, 0x21186738fc9dd5bb, 0x191d6d82e6572ddd},
    {SPEC_BN, "adagrad", "lr=0.02,eps=1e-10", 128, 0x5ce7ba2c2fc0da10, 0x51066b8fdc059783},
    {SPEC_BN, "rmsprop", "lr=0.001,decay=0.9,eps=1e-08", 128, 0xc1a8a8537c4b9076, 0x0a574f9d341006d1},
    {SPEC_BN, "adam", "lr=0.001,beta1=0.9,beta2=0.999,eps=1e-07,eps_hat=1", 128, 0x10b5c9c1b1044194, 0xe07d9b15a5f094a0},
    {SPEC_BN, "adamw", "lr=0.001,beta1=0.9,beta2=0.999,eps=1e-08,weight_decay=0.01", 128, 0x056e7748c16a52c2, 0x29ad3dc6b0f1aba0},
    {SPEC_DROPOUT, "adam", "lr=0.001,beta1=0.9,beta2=0.999,eps=1e-07,eps_hat=1", 128, 0xb985b75d51047f41, 0x8c54e127530bafc3},
    {SPEC_PLAIN, "sgd", "lr=0.01", 1, 0xa8cec117347e4b0b, 0xea32713cb1cf98cb},
    {SPEC_PLAIN, "momentum", "lr=0.005,momentum=0.9", 1, 0x29e72786b17e887e, 0x99becb40bc49271d},
    {SPEC_PLAIN, "adam", "lr=0.0005,beta1=0.9,beta2=0.999,eps=1e-07,eps_hat=1", 1, 0xf4b5ae7c28c4c4fe, 0xbc544fe1c59b14db},
};

/* ---- FNV-1a 64 over little-endian float32 bit patterns ------------------------------------*/
typedef uint64_t fnv1a;
#define FNV_OFFSET 0xcbf29ce484222325u
#define FNV_PRIME 0x100000001b3u

static void fnv_float(fnv1a *h, float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    for (int byte = 0; byte < 4; byte++) {   /* least significant byte first, whatever the host */
        *h ^= (bits >> (8 * byte)) & 0xffu;
        *h *= FNV_PRIME;
    }
}

static void fnv_floats(fnv1a *h, const float *values, int64_t n) {
    for (int64_t i = 0; i < n; i++) fnv_float(h, values[i]);
}

/* ---- the test's own data ------------------------------------------------------------------*/
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Exact: a 24-bit integer times a power of two, minus 1. */
static float uniform(uint64_t *s) { return (float)(splitmix64(s) >> 40) * 0x1p-23f - 1.0f; }

typedef struct {
    uint64_t state;
    float teacher[CLASSES][FEATURES];
} data_stream;

static void stream_start(data_stream *d) {
    d->state = DATA_SEED;
    for (int c = 0; c < CLASSES; c++)
        for (int f = 0; f < FEATURES; f++) d->teacher[c][f] = uniform(&d->state);
}

/* The next `rows` samples: x [rows][FEATURES], labels [rows]. The teacher's sums are in double
 * (exact for these magnitudes up to ties, which only pick the lower class). */
static void stream_next(data_stream *d, int64_t rows, float *x, int32_t *labels) {
    for (int64_t r = 0; r < rows; r++) {
        float *row = x + r * FEATURES;
        for (int f = 0; f < FEATURES; f++) row[f] = uniform(&d->state);
        int best = 0;
        double best_score = 0;
        for (int c = 0; c < CLASSES; c++) {
            double score = 0;
            for (int f = 0; f < FEATURES; f++) score += (double)d->teacher[c][f] * row[f];
            if (c == 0 || score > best_score) best = c, best_score = score;
        }
        labels[r] = best;
    }
}

/* ---- one run ------------------------------------------------------------------------------*/
/* Trains as `run` says on `threads` threads; writes both hashes and whether the mean loss of the
 * last LEARNED_OVER steps is below 0.8 times that of the first. Returns 0 when a call failed. */
static int train(const pinned_run *run, int32_t threads, uint64_t *losses_hash, uint64_t *state_hash,
                 int *learned) {
    static float x[TRAIN_BATCH > EVAL_ROWS ? TRAIN_BATCH * FEATURES : EVAL_ROWS * FEATURES];
    static int32_t labels[TRAIN_BATCH > EVAL_ROWS ? TRAIN_BATCH : EVAL_ROWS];
    static data_stream data;
    descent_net *net = NULL;
    int ok = descent_set_num_threads(threads) == DESCENT_OK &&
             descent_net_create(run->spec, &net) == DESCENT_OK &&
             descent_net_set_optimizer(net, run->optimizer, run->hparams) == DESCENT_OK;
    stream_start(&data);
    fnv1a losses = FNV_OFFSET, state = FNV_OFFSET;
    double first = 0, last = 0;   /* loss sums of the first and the last LEARNED_OVER steps */
    for (int step = 0; ok && step < STEPS; step++) {
        float loss = 0;
        stream_next(&data, run->batch, x, labels);
        ok = descent_net_train_step(net, x, labels, run->batch, &loss) == DESCENT_OK;
        fnv_float(&losses, loss);
        if (step < LEARNED_OVER) first += loss;
        if (step >= STEPS - LEARNED_OVER) last += loss;
    }
    /* Not degenerate: the recorded runs learn (and so would notice NaN or a frozen network). */
    *learned = ok && last < 0.8 * first;
    int64_t count = ok ? descent_net_param_count(net) : 0;
    for (int64_t i = 0; ok && i < count; i++) {
        float *values = NULL, *grad = NULL;
        int64_t length = 0;
        ok = descent_net_param(net, i, NULL, &values, &grad, &length) == DESCENT_OK;
        if (ok) fnv_floats(&state, values, length), fnv_floats(&state, grad, length);
    }
    if (ok) {
        float loss = 0, accuracy = 0;
        stream_next(&data, EVAL_ROWS, x, labels);
        ok = descent_net_evaluate(net, x, labels, EVAL_ROWS, &loss, &accuracy) == DESCENT_OK;
        fnv_float(&state, loss);
        fnv_float(&state, accuracy);
    }
    if (!ok) printf("       %s on %s: %s\n", run->optimizer, run->spec, descent_last_error());
    descent_net_free(net);
    *losses_hash = losses;
    *state_hash = state;
    return ok;
}

static const char *spec_name(const char *spec) {
    return spec == SPEC_BN ? "SPEC_BN" : spec == SPEC_DROPOUT ? "SPEC_DROPOUT" : "SPEC_PLAIN";
}

/* The OpenBLAS the hashes were recorded with; anything else cannot be compared bit for bit. */
static int recorded_blas(const char *info) {
    return strstr(info, "OpenBLAS 0.3.21") && strstr(info, "kernels Haswell");
}

int main(int argc, char **argv) {
    (void)argc;
    /* libdescent sets OPENBLAS_CORETYPE when it loads (before main), OpenBLAS reads it on first
     * use: the test re-executes itself once with the variable already set to Haswell. */
    if (!getenv("DESCENT_PINNED_REEXECUTED")) {
        setenv("OPENBLAS_CORETYPE", "Haswell", 1);
        setenv("DESCENT_PINNED_REEXECUTED", "1", 1);
        execv("/proc/self/exe", argv);
        printf("FAIL cannot re-execute with OPENBLAS_CORETYPE=Haswell\n");
        return 1;
    }
    const char *info = descent_blas_info();
    printf("BLAS: %s\n", info);
    const int record = getenv("DESCENT_PINNED_RECORD") != NULL;
    if (!record && !recorded_blas(info)) {
        printf("SKIP the hashes were recorded with OpenBLAS 0.3.21, kernels Haswell\n");
        return SKIP_CODE;
    }
    const int32_t thread_counts[] = {1, 2};
    for (size_t r = 0; r < sizeof RUNS / sizeof RUNS[0]; r++) {
        const pinned_run *run = &RUNS[r];
        uint64_t first_losses = 0, first_state = 0;
        for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
            uint64_t losses = 0, state = 0;
            int learned = 0;
            int ok = train(run, thread_counts[t], &losses, &state, &learned);
            if (t == 0)
                CHECK(learned, "%s %s batch %lld learns: the loss falls by more than 20%%", spec_name(run->spec),
                      run->optimizer, (long long)run->batch);
            if (record) {
                if (t == 0) first_losses = losses, first_state = state;
                if (t == 0)
                    printf("    {%s, \"%s\", \"%s\", %lld, 0x%016llx, 0x%016llx},\n", spec_name(run->spec),
                           run->optimizer, run->hparams, (long long)run->batch,
                           (unsigned long long)losses, (unsigned long long)state);
                else if (!ok || losses != first_losses || state != first_state)
                    printf("       (threads %d differ: 0x%016llx, 0x%016llx)\n", thread_counts[t],
                           (unsigned long long)losses, (unsigned long long)state);
                continue;
            }
            CHECK(ok && losses == run->losses && state == run->state,
                  "%-12s %-8s %-28s batch %3lld, %d thread(s): losses 0x%016llx state 0x%016llx",
                  spec_name(run->spec), run->optimizer, run->hparams, (long long)run->batch,
                  thread_counts[t], (unsigned long long)losses, (unsigned long long)state);
        }
    }
    return check_summary();
}
