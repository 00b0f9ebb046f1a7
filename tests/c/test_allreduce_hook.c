/*
 * test_allreduce_hook.c -- descent_net_set_allreduce: a data-parallel job's step is the step
 * of its global batch, and fails alike everywhere.
 *
 * The "processes" here are threads of one program, each with its own network (same spec and
 * seed, so they start equal). Their all-reduce is a shared-memory one: every rank posts its
 * buffer, waits for the others, adds the posted buffers in rank order and copies the sum back,
 * so every rank gets the same bits, as MPI_Allreduce gives them. What is checked:
 *
 *   1. 2 ranks x 64 rows against 1 process x 128 rows (which the library splits into 2 shards
 *      of 64, added in shard order: the same order as the ranks'), every built-in optimizer,
 *      plain, with batch norm (synchronised: the global batch's statistics), with dropout
 *      (masks follow the global row) and both, 200 steps over 20 batches of a task that can be
 *      learnt: every rank's parameters equal the single process's bit for bit at the end, every
 *      step's loss agrees to 1e-6, and the test accuracy to 0.005 (here: equal), as does the
 *      test loss (which reads the batch-norm running averages).
 *   2. With weight decay (added once, after the all-reduce) and 3 ranks of 34/33/33 rows
 *      against 1 x 100: parameters within rounding of the single process's (see below).
 *   3. A NaN in rank 1's input: every rank fails with DESCENT_ERR_NUMERIC; rank 1 names the
 *      NaN, rank 0 names process 1 and repeats its message (the NaN also spoiled rank 0's
 *      synchronised batch-norm statistics, but the cause is named); nothing changed on either,
 *      and the next step matches a job that never saw the failure.
 *   4. A bad label on rank 0: every rank fails with DESCENT_ERR_INVALID_ARGUMENT, rank 1 with
 *      rank 0's message; nothing changed.
 *   5. An all-reduce that fails: DESCENT_ERR_IO, nothing changed. Rank 1's rows make the loss
 *      overflow: the loss is the global batch's, so every rank fails with the same message and
 *      nothing changed. Bad rank/ranks/overlap arguments.
 *   6. Overlap: 1 and 0 give the same bits (checks 1 to 5 run both ways). With overlap 1 each
 *      layer with parameters has its gradients summed in a call of its own, on a thread other
 *      than the caller's, and no two calls of one rank ever run at once; with overlap 0 every
 *      call is on the caller's thread. 2 ranks x 128 rows (2 shards each, summed per layer
 *      before the all-reduce) against 1 process x 256 rows (4 shards).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "descent.h"

/* STEPS batches, repeated over LONG_RUN steps; checks of rounding alone run ROUNDING_STEPS. */
enum { FEATURES = 20, CLASSES = 5, MAX_RANKS = 3, STEPS = 20, ROUNDING_STEPS = 4, LONG_RUN = 200, MAX_BATCH = 256, EVAL_ROWS = 200 };

/* ---- a shared-memory all-reduce among threads -----------------------------------------------*/
typedef struct {
    pthread_barrier_t barrier;
    int ranks;
    float *posted[MAX_RANKS];
    int fail;   /* when set, every all-reduce returns 1 */
    int lie;    /* when set, every all-reduce returns NaN for the sums, and 0 */
} group;

typedef struct {
    group *g;
    int rank;
    /* What the calls looked like: the thread that called the step, calls made on another
     * thread, calls running at once (never more than 1), and calls in all. */
    pthread_t caller;
    int elsewhere, running, most_running, calls;
} member;

static int32_t thread_allreduce(void *context, float *data, int64_t count) {
    member *m = context;
    group *g = m->g;
    const int now = __atomic_add_fetch(&m->running, 1, __ATOMIC_SEQ_CST);
    if (now > m->most_running) m->most_running = now;
    if (!pthread_equal(pthread_self(), m->caller)) m->elsewhere++;
    m->calls++;
    g->posted[m->rank] = data;
    pthread_barrier_wait(&g->barrier);
    float *sum = malloc((size_t)count * sizeof(float));
    for (int64_t i = 0; i < count; i++) {
        float s = g->posted[0][i];
        for (int r = 1; r < g->ranks; r++) s += g->posted[r][i];
        sum[i] = s;
    }
    pthread_barrier_wait(&g->barrier);   /* everyone has read every buffer */
    memcpy(data, sum, (size_t)count * sizeof(float));
    if (g->lie)
        for (int64_t i = 0; i < count; i++) data[i] = NAN;
    free(sum);
    pthread_barrier_wait(&g->barrier);
    __atomic_sub_fetch(&m->running, 1, __ATOMIC_SEQ_CST);
    return g->fail ? 1 : 0;
}

/* descent_net_set_allreduce's overlap argument for the jobs below. */
static int overlap = 1;

/* ---- data ------------------------------------------------------------------------------------*/
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static float x_all[STEPS][MAX_BATCH * FEATURES], x_eval[EVAL_ROWS * FEATURES];
static int32_t y_all[STEPS][MAX_BATCH], y_eval[EVAL_ROWS];

/* A label a network can learn: the index of the largest of the row's first CLASSES features. */
static int32_t label_of(const float *row) {
    int32_t best = 0;
    for (int32_t c = 1; c < CLASSES; c++)
        if (row[c] > row[best]) best = c;
    return best;
}

static void make_data(void) {
    uint64_t s = 99;
    for (int t = 0; t < STEPS; t++)
        for (int i = 0; i < MAX_BATCH * FEATURES; i++) x_all[t][i] = (float)(splitmix64(&s) >> 40) * 0x1p-23f - 1.0f;
    for (int t = 0; t < STEPS; t++)
        for (int i = 0; i < MAX_BATCH; i++) y_all[t][i] = label_of(x_all[t] + i * FEATURES);
    for (int i = 0; i < EVAL_ROWS * FEATURES; i++) x_eval[i] = (float)(splitmix64(&s) >> 40) * 0x1p-23f - 1.0f;
    for (int i = 0; i < EVAL_ROWS; i++) y_eval[i] = label_of(x_eval + i * FEATURES);
}

/* ---- one rank's training, on a thread ----------------------------------------------------------*/
typedef struct {
    member m;
    const char *spec, *optimizer;
    int64_t begin, rows;   /* this rank's rows of each global batch */
    int steps;
    /* results */
    int32_t status[LONG_RUN];
    float loss[LONG_RUN];
    float *params;
    int64_t length;
    float eval_loss, eval_accuracy;
    descent_net *net;
    int keep;   /* leave net open for the caller */
} rank_job;

static float *arena_copy(descent_net *net, int64_t *length) {
    float *params, *grads;
    if (descent_net_arena(net, &params, &grads, length) != DESCENT_OK) return NULL;
    float *copy = malloc((size_t)*length * sizeof(float));
    memcpy(copy, params, (size_t)*length * sizeof(float));
    return copy;
}

static void *run_rank(void *arg) {
    rank_job *j = arg;
    j->m.caller = pthread_self();
    if (!j->net) {
        descent_net_create(j->spec, &j->net);
        descent_net_set_optimizer(j->net, j->optimizer, NULL);
        if (j->m.g) descent_net_set_allreduce(j->net, thread_allreduce, &j->m, j->m.rank, j->m.g->ranks, overlap);
    }
    for (int t = 0; t < j->steps; t++)
        j->status[t] = descent_net_train_step(j->net, x_all[t % STEPS] + j->begin * FEATURES, y_all[t % STEPS] + j->begin,
                                              j->rows, &j->loss[t]);
    descent_net_evaluate(j->net, x_eval, y_eval, EVAL_ROWS, &j->eval_loss, &j->eval_accuracy);
    j->params = arena_copy(j->net, &j->length);
    if (!j->keep) {
        descent_net_free(j->net);
        j->net = NULL;
    }
    return NULL;
}

/* The single process's test accuracy in the last compare_job. */
static float last_accuracy;

/* Runs `ranks` ranks (threads) over global batches of `batch` rows, split as evenly as the
 * library splits shards, and the same training in one process; returns the largest parameter
 * difference between any rank and the single process (and whether all ranks are equal). */
static double compare_job(const char *spec, const char *optimizer, int ranks, int64_t batch, int steps, int *ranks_equal,
                          double *loss_difference, double *eval_difference, member *rank0) {
    group g = {.ranks = ranks};
    pthread_barrier_init(&g.barrier, NULL, (unsigned)ranks);
    rank_job jobs[MAX_RANKS] = {0};
    pthread_t threads[MAX_RANKS];
    for (int r = 0; r < ranks; r++) {
        jobs[r] = (rank_job){.m = {&g, r}, .spec = spec, .optimizer = optimizer, .begin = batch * r / ranks,
                             .rows = batch * (r + 1) / ranks - batch * r / ranks, .steps = steps};
        pthread_create(&threads[r], NULL, run_rank, &jobs[r]);
    }
    for (int r = 0; r < ranks; r++) pthread_join(threads[r], NULL);
    pthread_barrier_destroy(&g.barrier);
    rank_job alone = {.spec = spec, .optimizer = optimizer, .begin = 0, .rows = batch, .steps = steps};
    run_rank(&alone);

    double worst = 0, worst_loss = 0;
    *ranks_equal = 1;
    for (int r = 0; r < ranks; r++) {
        for (int t = 0; t < steps; t++) {
            if (jobs[r].status[t] != DESCENT_OK || alone.status[t] != DESCENT_OK) worst = INFINITY;
            double d = fabs((double)jobs[r].loss[t] - alone.loss[t]) / fabs(alone.loss[t]);
            if (d > worst_loss) worst_loss = d;
        }
        if (!jobs[r].params || jobs[r].length != alone.length) return INFINITY;
        for (int64_t i = 0; i < alone.length; i++) {
            double d = fabs((double)jobs[r].params[i] - alone.params[i]);
            if (d > worst || d != d) worst = d != d ? INFINITY : d;
        }
        if (memcmp(jobs[r].params, jobs[0].params, (size_t)alone.length * sizeof(float))) *ranks_equal = 0;
    }
    *loss_difference = worst_loss;
    *eval_difference = fabs((double)jobs[0].eval_loss - alone.eval_loss) + fabs((double)jobs[0].eval_accuracy - alone.eval_accuracy);
    if (rank0) *rank0 = jobs[0].m;
    last_accuracy = alone.eval_accuracy;
    for (int r = 0; r < ranks; r++) free(jobs[r].params);
    free(alone.params);
    return worst;
}

#define SIZES "\"sizes\":[20,32,24,5],\"activation\":\"relu\",\"init\":\"he\",\"seed\":5"
static const char *const SPECS[] = {"{" SIZES "}", "{" SIZES ",\"batchnorm\":true}", "{" SIZES ",\"dropout\":0.3}",
                                    "{" SIZES ",\"batchnorm\":true,\"dropout\":0.2}"};
static const char BOTH[] = "{" SIZES ",\"batchnorm\":true,\"dropout\":0.2}", PLAIN[] = "{" SIZES "}";
/* The loss is the global batch's: when one rank's rows make it overflow, every rank sees it. */
#define LOSS_IS_NAN "descent_net_train_step: the loss is NaN (the weights or inputs are too large, or the learning rate is)"
static const char *const SPEC_NAMES[] = {"plain", "batch norm", "dropout", "batch norm + dropout"};
static const char *const OPTIMIZERS[] = {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"};

/* ---- failures ----------------------------------------------------------------------------------*/
typedef struct {
    member m;
    descent_net *net;
    const float *x;
    const int32_t *y;
    int64_t rows;
    int32_t status;
    char message[512];
} failing_step;

static void *one_step(void *arg) {
    failing_step *f = arg;
    f->m.caller = pthread_self();
    float loss;
    f->status = descent_net_train_step(f->net, f->x, f->y, f->rows, &loss);
    snprintf(f->message, sizeof f->message, "%s", f->status ? descent_last_error() : "");
    return NULL;
}

/* Two ranks with batch norm and dropout take one good step, then rank `bad`'s input is spoiled
 * by `spoil`; both must fail with `status`, change nothing, and the next good step must give
 * what a job without the failure gives. */
static void failing_job(const char *what, const char *spec, int bad, void (*spoil)(float *x, int32_t *y), int32_t status,
                        const char *bad_message, const char *other_message, int hook_fails) {
    group g = {.ranks = 2};
    pthread_barrier_init(&g.barrier, NULL, 2);
    failing_step f[2];
    static float x[2][64 * FEATURES];
    static int32_t y[2][64];
    for (int r = 0; r < 2; r++) {
        f[r] = (failing_step){.m = {&g, r}, .rows = 64};
        descent_net_create(spec, &f[r].net);
        descent_net_set_optimizer(f[r].net, "adam", NULL);
        descent_net_set_allreduce(f[r].net, thread_allreduce, &f[r].m, r, 2, overlap);
    }
    pthread_t t[2];
    for (int step = 0; step < 3; step++) {   /* good, spoiled, good */
        float *before[2];
        int64_t length = 0;
        for (int r = 0; r < 2; r++) {
            memcpy(x[r], x_all[step] + r * 64 * FEATURES, sizeof x[r]);
            memcpy(y[r], y_all[step] + r * 64, sizeof y[r]);
            if (step == 1 && r == bad && spoil) spoil(x[r], y[r]);
            f[r].x = x[r];
            f[r].y = y[r];
            before[r] = arena_copy(f[r].net, &length);
        }
        g.fail = step == 1 && hook_fails;
        for (int r = 0; r < 2; r++) pthread_create(&t[r], NULL, one_step, &f[r]);
        for (int r = 0; r < 2; r++) pthread_join(t[r], NULL);
        if (step == 1) {
            for (int r = 0; r < 2; r++) {
                CHECK(f[r].status == status, "%s: rank %d fails with status %d (got %d: %s)", what, r, status, f[r].status,
                      f[r].message);
                const char *want = r == bad ? bad_message : other_message;
                CHECK(!strcmp(f[r].message, want), "%s: rank %d says \"%s\" (got \"%s\")", what, r, want, f[r].message);
                int64_t n;
                float *after = arena_copy(f[r].net, &n);
                CHECK(!memcmp(after, before[r], (size_t)n * sizeof(float)), "%s: rank %d's parameters are unchanged", what, r);
                free(after);
            }
        }
        for (int r = 0; r < 2; r++) free(before[r]);
    }
    g.fail = 0;
    /* The same job without the failed step: two good steps. */
    group g2 = {.ranks = 2};
    pthread_barrier_init(&g2.barrier, NULL, 2);
    rank_job clean[2];
    for (int r = 0; r < 2; r++) {
        clean[r] = (rank_job){.m = {&g2, r}, .spec = spec, .optimizer = "adam", .begin = r * 64, .rows = 64};
        clean[r].steps = 1;
        clean[r].keep = 1;
    }
    for (int r = 0; r < 2; r++) pthread_create(&t[r], NULL, run_rank, &clean[r]);   /* step 0 */
    for (int r = 0; r < 2; r++) pthread_join(t[r], NULL);
    for (int r = 0; r < 2; r++) free(clean[r].params);
    /* step 2's data as the second step */
    failing_step again[2];
    for (int r = 0; r < 2; r++) {
        again[r] = (failing_step){.m = clean[r].m, .net = clean[r].net, .x = x_all[2] + r * 64 * FEATURES,
                                  .y = y_all[2] + r * 64, .rows = 64};
        descent_net_set_allreduce(clean[r].net, thread_allreduce, &again[r].m, r, 2, overlap);
    }
    for (int r = 0; r < 2; r++) pthread_create(&t[r], NULL, one_step, &again[r]);
    for (int r = 0; r < 2; r++) pthread_join(t[r], NULL);
    for (int r = 0; r < 2; r++) {
        int64_t n1, n2;
        float *a = arena_copy(f[r].net, &n1), *b = arena_copy(clean[r].net, &n2);
        CHECK(n1 == n2 && !memcmp(a, b, (size_t)n1 * sizeof(float)),
              "%s: rank %d's next step gives what a job that never saw the failure gives", what, r);
        free(a);
        free(b);
        descent_net_free(f[r].net);
        descent_net_free(clean[r].net);
    }
    pthread_barrier_destroy(&g.barrier);
    pthread_barrier_destroy(&g2.barrier);
}

static void spoil_x(float *x, int32_t *y) { (void)y; x[5 * FEATURES + 3] = NAN; }
static void spoil_label(float *x, int32_t *y) { (void)x; y[7] = CLASSES; }
static void spoil_scale(float *x, int32_t *y) {
    (void)y;
    for (int i = 0; i < FEATURES; i++) x[3 * FEATURES + i] = 3e38f;   /* finite, but the loss overflows */
}

int main(void) {
    make_data();
    descent_set_num_threads(1);   /* the ranks are the parallelism here */

    for (overlap = 1; overlap >= 0; overlap--) {
    printf("# overlap %d\n", overlap);
    for (size_t s = 0; s < sizeof SPECS / sizeof *SPECS; s++)
        for (size_t o = 0; o < sizeof OPTIMIZERS / sizeof *OPTIMIZERS; o++) {
            int equal;
            double loss_d, eval_d;
            member calls;
            double d = compare_job(SPECS[s], OPTIMIZERS[o], 2, 128, LONG_RUN, &equal, &loss_d, &eval_d, &calls);
            CHECK(d == 0 && equal && loss_d <= 1e-6 && eval_d <= 0.005,
                  "%s, %s: 2 ranks x 64 = 1 process x 128 bit for bit over %d steps (parameter difference %g, ranks "
                  "equal %d, loss %.2g, test loss and accuracy %.2g; accuracy %.3f)", SPEC_NAMES[s], OPTIMIZERS[o],
                  LONG_RUN, d, equal, loss_d, eval_d, last_accuracy);
            if (o > 0) continue;
            /* Per step: the batch sizes, 3 sums per batch-norm layer, the gradients, the outcome.
             * The spec has 3 affine layers and, with batch norm, 2 batch-norm layers. */
            const int batch_norm = s == 1 || s == 3, layers = 3 + 2 * batch_norm;
            const int per_step = 2 + 3 * 2 * batch_norm + (overlap ? layers : 1);
            CHECK(calls.calls == LONG_RUN * per_step && calls.most_running == 1 &&
                  calls.elsewhere == (overlap ? LONG_RUN * layers : 0),
                  "%s: %d calls per step, one at a time, %d of them on the library's thread (got %d calls in %d steps, "
                  "%d at once, %d elsewhere)", SPEC_NAMES[s], per_step, overlap ? layers : 0, calls.calls, LONG_RUN,
                  calls.most_running, calls.elsewhere);
        }
    {
        int equal;
        double loss_d, eval_d;
        /* Weight decay: one process adds lambda*W inside shard 0's product, a job adds it after
         * the all-reduce; rounding apart (tolerances as for 3 ranks below). */
        double d = compare_job("{" SIZES ",\"batchnorm\":true,\"weight_decay\":0.01}", "sgd", 2, 128, ROUNDING_STEPS, &equal, &loss_d, &eval_d, NULL);
        CHECK(d <= 1e-6 && equal && loss_d <= 1e-5, "weight decay, sgd: 2 ranks within 1e-6 of 1 process (%g, loss %.2g), ranks equal",
              d, loss_d);
        d = compare_job("{" SIZES ",\"batchnorm\":true,\"weight_decay\":0.01}", "adam", 2, 128, ROUNDING_STEPS, &equal, &loss_d, &eval_d, NULL);
        CHECK(d <= 1e-4 && equal && loss_d <= 1e-5, "weight decay, adam: 2 ranks within 1e-4 of 1 process (%g, loss %.2g), ranks equal",
              d, loss_d);
        /* 100 rows are one shard in one process, so its sums are one product where the ranks add
         * three: rounding apart. sgd moves the weights by lr * gradient: they stay within 1e-6.
         * Adam divides by sqrt(v), which turns rounding-sized gradients into steps of up to lr
         * (0.001): 1e-4 after 4 steps. */
        d = compare_job("{" SIZES ",\"batchnorm\":true,\"dropout\":0.2}", "sgd", 3, 100, ROUNDING_STEPS, &equal, &loss_d, &eval_d, NULL);
        CHECK(d <= 1e-6 && equal && loss_d <= 1e-5, "3 ranks of 34/33/33, sgd: within 1e-6 of 1 process x 100 (%g, loss %.2g), "
              "ranks equal", d, loss_d);
        d = compare_job("{" SIZES ",\"batchnorm\":true,\"dropout\":0.2}", "adam", 3, 100, ROUNDING_STEPS, &equal, &loss_d, &eval_d, NULL);
        CHECK(d <= 1e-4 && equal && loss_d <= 1e-5, "3 ranks of 34/33/33, adam: within 1e-4 of 1 process x 100 (%g, loss %.2g), "
              "ranks equal", d, loss_d);
        /* 2 shards per rank, added layer by layer before the all-reduce: (s0 + s1) + (s2 + s3)
         * where one process adds ((s0 + s1) + s2) + s3. Rounding apart, as above. */
        d = compare_job("{" SIZES ",\"batchnorm\":true,\"dropout\":0.2}", "sgd", 2, 256, ROUNDING_STEPS, &equal, &loss_d, &eval_d, NULL);
        CHECK(d <= 1e-6 && equal && loss_d <= 1e-5, "2 ranks of 128 rows (2 shards each), sgd: within 1e-6 of 1 process x 256 "
              "(%g, loss %.2g), ranks equal", d, loss_d);
    }
    }

    for (overlap = 1; overlap >= 0; overlap--) {
        failing_job("NaN on rank 1", BOTH, 1, spoil_x, DESCENT_ERR_NUMERIC,
                    "descent_net_train_step: x contains NaN at index 103 (row 5, column 3)",
                    "descent_net_train_step: the step failed on process 1: x contains NaN at index 103 (row 5, column 3); "
                    "nothing changed", 0);
        failing_job("bad label on rank 0", BOTH, 0, spoil_label, DESCENT_ERR_INVALID_ARGUMENT,
                    "descent_net_train_step: labels[7] is 5: must be in [0, 5)",
                    "descent_net_train_step: process 0 refused its part of the batch: labels[7] is 5: must be in [0, 5); "
                    "nothing changed", 0);
        failing_job("failing all-reduce", BOTH, 0, NULL, DESCENT_ERR_IO,
                    "descent_net_train_step: the all-reduce failed on process 0 (the caller's function returned non-zero)",
                    "descent_net_train_step: the all-reduce failed on process 1 (the caller's function returned non-zero)", 1);
        failing_job("loss overflow on rank 1", PLAIN, 1, spoil_scale, DESCENT_ERR_NUMERIC, LOSS_IS_NAN, LOSS_IS_NAN, 0);
    }

    {
        /* An all-reduce that returns NaN (and 0): refused with an error, no trap, nothing changed. */
        group g = {.ranks = 1, .lie = 1};
        pthread_barrier_init(&g.barrier, NULL, 1);
        member m = {.g = &g, .rank = 0, .caller = pthread_self()};
        descent_net *liar;
        int64_t n = 0;
        descent_net_create("{" SIZES "}", &liar);
        descent_net_set_allreduce(liar, thread_allreduce, &m, 0, 1, 0);
        float *before = arena_copy(liar, &n), loss;
        CHECK_ERROR(descent_net_train_step(liar, x_all[0], y_all[0], 64, &loss), DESCENT_ERR_IO,
                    "descent_net_train_step: the all-reduce gave process 0 batch sizes that no process sent (it must "
                    "return the element-wise sum over the processes)", "an all-reduce that returns NaN");
        float *after = arena_copy(liar, &n);
        CHECK(!memcmp(before, after, (size_t)n * sizeof(float)), "an all-reduce that returns NaN: nothing changed");
        free(before);
        free(after);
        descent_net_free(liar);
        pthread_barrier_destroy(&g.barrier);
    }

    descent_net *net;
    CHECK_STATUS(descent_net_create("{" SIZES "}", &net), DESCENT_OK, "create");
    CHECK_ERROR(descent_net_set_allreduce(net, thread_allreduce, NULL, 2, 2, 1), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_set_allreduce: rank is 2: must be in [0, 2)", "rank outside [0, ranks)");
    CHECK_ERROR(descent_net_set_allreduce(net, thread_allreduce, NULL, 0, 0, 1), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_set_allreduce: ranks is 0: must be in [1, 1048576]", "ranks 0");
    CHECK_ERROR(descent_net_set_allreduce(NULL, thread_allreduce, NULL, 0, 1, 1), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_set_allreduce: net is NULL", "NULL net");
    CHECK_ERROR(descent_net_set_allreduce(net, thread_allreduce, NULL, 0, 1, 2), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_net_set_allreduce: overlap is 2: must be 0 or 1", "overlap 2");
    CHECK_STATUS(descent_net_set_allreduce(net, NULL, NULL, 0, 0, 0), DESCENT_OK, "NULL all-reduce: alone again");
    descent_net_free(net);
    descent_set_num_threads(0);
    return check_summary();
}
