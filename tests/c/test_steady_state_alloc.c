/*
 * test_steady_state_alloc.c -- once a batch size has been seen, a training step allocates
 * nothing on the heap (issue 3, "Speed"). The test program interposes malloc and friends (an
 * executable's definitions win over libc's for every library in the process, libdescent and
 * the Swift runtime included) and counts the calls made during steps 6..55 of a network with
 * batch norm and dropout, trained with Adam, at batch 64 (one shard) and at batch 256 (four
 * shards, whose train_step takes the optimizer step inside the pass; with host L2, which needs
 * scratch); then the same for the split forward_backward/apply_update path, predict, evaluate
 * and a standalone optimizer step; and batch-1
 * steps of a network without batch norm and dropout, which take the one-pass path
 * (batch1_schedule.c) on several threads.
 *
 * Calls made by OpenBLAS itself are counted apart and only reported: Debian's OpenBLAS 0.3.21
 * mallocs a small packing buffer inside its SkylakeX small-matrix sgemm kernel on every call.
 * That is the BLAS's own business; everything Descent does (Swift, kernels, OpenMP as Descent
 * uses it) must not allocate.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "descent.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_int counting;
static atomic_long allocations, blas_allocations;

/* Attributes one allocation to its caller's library. */
static void note(void *caller) {
    if (!atomic_load_explicit(&counting, memory_order_relaxed)) return;
    Dl_info info;
    if (dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "libopenblas"))
        atomic_fetch_add(&blas_allocations, 1);
    else
        atomic_fetch_add(&allocations, 1);
}

#define CALLER __builtin_return_address(0)
void *malloc(size_t n) { note(CALLER); return __libc_malloc(n); }
void *calloc(size_t c, size_t n) { note(CALLER); return __libc_calloc(c, n); }
void *realloc(void *p, size_t n) { note(CALLER); return __libc_realloc(p, n); }
void *aligned_alloc(size_t a, size_t n) { note(CALLER); return __libc_memalign(a, n); }
void *memalign(size_t a, size_t n) { note(CALLER); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    note(CALLER);
    void *p = __libc_memalign(a, n);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

static long count_during(void (*work)(void *), void *arg) {
    atomic_store(&allocations, 0);
    atomic_store(&blas_allocations, 0);
    atomic_store(&counting, 1);
    work(arg);
    atomic_store(&counting, 0);
    printf("     (OpenBLAS's own allocations meanwhile: %ld)\n", atomic_load(&blas_allocations));
    return atomic_load(&allocations);
}

enum { MAX_BATCH = 256, FEATURES = 50, CLASSES = 10, STEPS = 50 };

typedef struct {
    descent_net *net;
    int64_t batch;
    float *x;
    int32_t *y;
    float *probs;
    int failures;
} run;

static void train_steps(void *arg) {
    run *r = arg;
    float loss;
    for (int i = 0; i < STEPS; i++)
        if (descent_net_train_step(r->net, r->x, r->y, r->batch, &loss) != DESCENT_OK) r->failures++;
}

static void split_steps(void *arg) {
    run *r = arg;
    float loss;
    for (int i = 0; i < STEPS; i++) {
        if (descent_net_forward_backward(r->net, r->x, r->y, r->batch, &loss) != DESCENT_OK) r->failures++;
        if (descent_net_apply_update(r->net) != DESCENT_OK) r->failures++;
    }
}

static void predictions(void *arg) {
    run *r = arg;
    for (int i = 0; i < STEPS; i++)
        if (descent_net_predict(r->net, r->x, r->batch, r->probs) != DESCENT_OK) r->failures++;
}

static void evaluations(void *arg) {
    run *r = arg;
    float loss, accuracy;
    for (int i = 0; i < STEPS; i++)
        if (descent_net_evaluate(r->net, r->x, r->y, r->batch, &loss, &accuracy) != DESCENT_OK) r->failures++;
}

typedef struct {
    descent_optimizer *opt;
    float *params[2];
    const float *grads[2];
    int64_t lengths[2];
    int failures;
} opt_run;

static void optimizer_steps(void *arg) {
    opt_run *o = arg;
    for (int i = 0; i < STEPS; i++)
        if (descent_optimizer_step(o->opt, 2, o->params, o->grads, o->lengths) != DESCENT_OK) o->failures++;
}

/* Runs work (STEPS calls) while counting allocations, and checks that every call succeeded
 * (*failures counts the failed ones) and that none of them allocated. */
static void expect_no_allocations(void (*work)(void *), void *arg, int *failures, const char *calls,
                                  const char *allocate_nothing) {
    *failures = 0;
    const long n = count_during(work, arg);
    CHECK(*failures == 0, "%d %s succeeded", STEPS, calls);
    CHECK(n == 0, "%s (%ld allocations)", allocate_nothing, n);
}

int main(void) {
    static float x[MAX_BATCH * FEATURES], probs[MAX_BATCH * CLASSES];
    static int32_t y[MAX_BATCH];
    for (int i = 0; i < MAX_BATCH * FEATURES; i++) x[i] = (float)((i * 37) % 101) / 101.0f;
    for (int i = 0; i < MAX_BATCH; i++) y[i] = i % CLASSES;

    const int64_t batches[] = {64, MAX_BATCH};
    for (int b = 0; b < 2; b++) {
        run r = {.batch = batches[b], .x = x, .y = y, .probs = probs};
        printf("     batch %lld (%s)\n", (long long)r.batch, b == 0 ? "one shard" : "four shards");
        CHECK_STATUS(descent_net_create("{\"sizes\":[50,300,40,10],\"batchnorm\":true,\"dropout\":0.2,\"seed\":3}", &r.net),
                     DESCENT_OK, "create the network");
        CHECK_STATUS(descent_net_set_optimizer(r.net, "adam", b == 0 ? NULL : "weight_decay=0.001"), DESCENT_OK, "adam");
        train_steps(&r);            /* warm-up: buffers, optimizer state, BLAS and OpenMP pools */
        split_steps(&r);
        predictions(&r);
        evaluations(&r);
        expect_no_allocations(train_steps, &r, &r.failures, "train steps",
                              "train_step allocates nothing once the batch size was seen");
        expect_no_allocations(split_steps, &r, &r.failures, "forward_backward + apply_update",
                              "forward_backward + apply_update allocate nothing");
        expect_no_allocations(predictions, &r, &r.failures, "predictions", "predict allocates nothing");
        expect_no_allocations(evaluations, &r, &r.failures, "evaluations", "evaluate allocates nothing");
        descent_net_free(r.net);
    }

    /* Batch 1, no batch norm or dropout, 37,200 weights: the one-pass path on all threads. */
    static float x1[300];
    for (int i = 0; i < 300; i++) x1[i] = (float)((i * 53) % 97) / 97.0f;
    run one = {.batch = 1, .x = x1, .y = y, .probs = probs};
    CHECK_STATUS(descent_net_create("{\"sizes\":[300,120,10],\"seed\":4}", &one.net), DESCENT_OK, "create the batch-1 network");
    CHECK_STATUS(descent_net_set_optimizer(one.net, "adam", "weight_decay=0.01"), DESCENT_OK, "adam with L2");
    train_steps(&one);
    split_steps(&one);
    expect_no_allocations(train_steps, &one, &one.failures, "batch-1 train steps",
                          "a batch-1 train_step allocates nothing");
    expect_no_allocations(split_steps, &one, &one.failures, "batch-1 forward_backward + apply_update",
                          "batch-1 forward_backward + apply_update allocate nothing");
    descent_net_free(one.net);

    static float p0[100000], g0[100000], p1[7], g1[7];
    for (int i = 0; i < 100000; i++) g0[i] = 1e-3f * (float)(i % 13);
    opt_run o = {.params = {p0, p1}, .grads = {g0, g1}, .lengths = {100000, 7}};
    CHECK_STATUS(descent_optimizer_create("adam", NULL, &o.opt), DESCENT_OK, "create adam");
    optimizer_steps(&o);
    expect_no_allocations(optimizer_steps, &o, &o.failures, "optimizer steps",
                          "descent_optimizer_step allocates nothing after the first step");
    descent_optimizer_free(o.opt);
    return check_summary();
}
