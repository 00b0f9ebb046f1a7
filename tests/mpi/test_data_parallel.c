/*
 * test_data_parallel.c -- include/descent_mpi.h against single-process training.
 *
 * Run by ctest as `mpirun --allow-run-as-root --oversubscribe -np 3 test_data_parallel`. The
 * 2-rank checks run on ranks 0 and 1 (a sub-communicator); rank 2 joins for the 3-rank ones.
 * Every rank also trains the single-process reference itself (it needs no communication), on
 * the same global batches, so each rank compares its own replica with it.
 *
 *  (a) descent_mpi_train_step: 2 ranks x 64 rows against 1 process x 128 rows, every built-in
 *      optimizer, 20 steps: losses within 1e-6 relative, and parameters bit for bit (the
 *      library sums the 2 shards of a 128-row batch as the ranks' all-reduce does); also with
 *      batch norm (synchronised) and with dropout (masks by global row), bit for bit; with
 *      weight decay (lambda*W is added after the all-reduce, where one process adds it inside
 *      shard 0's product): parameters within 1e-6 of the largest weight.
 *  (b) after every step every rank's parameters equal rank 0's bit for bit.
 *  (c) 3 ranks with 100 rows (33/33/34) against 1 process x 100 rows: losses within 1e-6
 *      relative, parameters within 1e-6 (sgd) and 1e-5 (adam, whose normalised step turns the
 *      rounding of small gradients into whole steps) of the largest weight.
 *  (d) a NaN in one rank's input, a label out of range (every rank returns the same status and
 *      message, naming the rank), rows on one rank that make the global loss overflow (every
 *      rank returns the library's message), and nothing changed on any rank
 *      (parameters against a copy, the optimizer's step count, and the next step against a
 *      reference that never saw the failed one).
 *  (e) a checkpoint saved on 2 ranks, loaded on 1 and on 3 ranks: the same parameters, and
 *      training continues as the 2-rank run does; descent_mpi_broadcast_net and the errors of
 *      broadcasting and loading.
 *  (f) descent_mpi_join (the library's own all-reduce hook), with the gradients summed layer
 *      by layer on the library's thread (overlap 1: MPI runs at MPI_THREAD_SERIALIZED here):
 *      2 ranks x 64 against 1 x 128, every built-in optimizer, plain, batch norm, dropout and
 *      both: 20 steps bit for bit, losses within 1e-6, then on to 200 steps and the test
 *      accuracy within 0.005 of one process's. With batch norm and dropout, overlap 1 and 0: a
 *      NaN on one rank fails both and changes nothing.
 *
 * Data: splitmix64 numbers, exact floats in [-1, 1); labels from the same stream.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descent_mpi.h"

enum { FEATURES = 48, CLASSES = 10, STEPS = 20, LONG_RUN = 200, MAX_BATCH = 128 };

#define SIZES "\"sizes\":[48,96,64,10],\"activation\":\"relu\",\"init\":\"he\",\"seed\":77"
static const char *const PLAIN = "{" SIZES "}";
static const char *const DECAY = "{" SIZES ",\"weight_decay\":0.01}";
static const char *const DROPOUT = "{" SIZES ",\"dropout\":0.3}";
static const char *const BATCHNORM = "{" SIZES ",\"batchnorm\":true}";
static const char *const OPTIMIZERS[][2] = {
    {"sgd", "lr=0.1"},     {"momentum", "lr=0.05"}, {"nesterov", "lr=0.05"}, {"adagrad", "lr=0.05"},
    {"rmsprop", "lr=0.01"}, {"adam", "lr=0.01"},     {"adamw", "lr=0.01"},
};
enum { OPTIMIZER_COUNT = sizeof OPTIMIZERS / sizeof *OPTIMIZERS };

static int world_rank, world_size;
static int passed, failed;

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* STEPS global batches of MAX_BATCH rows; a run of batch B uses the first B rows of each. */
static float xs[STEPS][MAX_BATCH * FEATURES];
static int32_t ys[STEPS][MAX_BATCH];

static void make_data(void) {
    uint64_t s = 2026;
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < MAX_BATCH * FEATURES; i++) xs[t][i] = (float)(splitmix64(&s) >> 40) * 0x1p-23f - 1.0f;
        for (int i = 0; i < MAX_BATCH; i++) ys[t][i] = (int32_t)(splitmix64(&s) % CLASSES);
    }
}

/* A check every rank of `comm` makes: it passes only if it holds on every rank; rank 0 of comm
 * prints one line, and the ranks where it failed say so. Returns the agreed result. */
static int expect(MPI_Comm comm, int cond, const char *format, ...) {
    int rank, all;
    MPI_Comm_rank(comm, &rank);
    MPI_Allreduce(&cond, &all, 1, MPI_INT, MPI_MIN, comm);
    if (!cond) printf("     (world rank %d: not so)\n", world_rank);
    fflush(stdout);
    MPI_Barrier(comm);
    if (rank == 0) {
        va_list ap;
        va_start(ap, format);
        fputs(all ? "ok   " : "FAIL ", stdout);
        vprintf(format, ap);
        va_end(ap);
        fputc('\n', stdout);
        fflush(stdout);
    }
    if (all) passed++;
    else failed++;
    return all;
}

/* Creates a network with an optimizer; NULL (and a message) on failure. */
static descent_net *make_net(const char *spec, const char *optimizer, const char *hparams) {
    descent_net *net = NULL;
    if (descent_net_create(spec, &net) != DESCENT_OK || descent_net_set_optimizer(net, optimizer, hparams) != DESCENT_OK) {
        printf("     world rank %d: setup failed: %s\n", world_rank, descent_last_error());
        descent_net_free(net);
        return NULL;
    }
    return net;
}

static float *arena(descent_net *net, int64_t *length) {
    float *params = NULL;
    descent_net_arena(net, &params, NULL, length);
    return params;
}

/* A malloc'ed copy of the parameter arena. */
static float *copy_params(descent_net *net) {
    int64_t length = 0;
    float *params = arena(net, &length);
    float *copy = malloc((size_t)length * sizeof *copy);
    memcpy(copy, params, (size_t)length * sizeof *copy);
    return copy;
}

/* Whether every rank of comm holds rank 0's parameters bit for bit. Not itself a check. */
static int same_on_every_rank(descent_net *net, MPI_Comm comm) {
    int64_t length = 0;
    float *params = arena(net, &length);
    float *root = malloc((size_t)length * sizeof *root);
    memcpy(root, params, (size_t)length * sizeof *root);
    MPI_Bcast(root, (int)length, MPI_FLOAT, 0, comm);
    int same = memcmp(root, params, (size_t)length * sizeof *root) == 0, all;
    free(root);
    MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, comm);
    return all;
}

/* The largest |a - b| over an arena, relative to the largest |b|: how far apart two runs'
 * parameters are on the scale of the weights. */
static double max_relative(const float *a, const float *b, int64_t n) {
    double worst = 0.0, scale = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > worst || d != d) worst = d;
        scale = fmax(scale, fabs((double)b[i]));
    }
    return worst / scale;
}

/* Rows [first, first + count) of global batch `step`, with `batch` rows in all, on this rank. */
static void shard(int rank, int size, int64_t batch, int64_t *first, int64_t *count) {
    *first = batch * rank / size;
    *count = batch * (rank + 1) / size - *first;
}

/* One reference step on the whole global batch. */
/* The index of the largest of row[0..9]: a label a network can learn from the row. */
static int32_t largest_of_first_10(const float *row) {
    int32_t best = 0;
    for (int32_t c = 1; c < CLASSES; c++)
        if (row[c] > row[best]) best = c;
    return best;
}

static int reference_step(descent_net *ref, int step, int64_t batch, float *loss) {
    return descent_net_train_step(ref, xs[step], ys[step], batch, loss) == DESCENT_OK;
}

/* One distributed step: this rank's rows of global batch `step`. */
static int32_t distributed_step(descent_net *net, MPI_Comm comm, int step, int64_t batch, float *loss) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int64_t first, count;
    shard(rank, size, batch, &first, &count);
    return descent_mpi_train_step(net, comm, xs[step] + first * FEATURES, ys[step] + first, count, loss);
}

/* (a), (b), (c): STEPS steps on `comm` against the reference; `bitwise` asks for parameters
 * equal to the reference's bit for bit, else within `tolerance` relative. */
static void compare_runs(MPI_Comm comm, const char *what, const char *spec, const char *optimizer,
                         const char *hparams, int64_t batch, int bitwise, double tolerance) {
    int size;
    MPI_Comm_size(comm, &size);
    descent_net *ref = make_net(spec, optimizer, hparams), *net = make_net(spec, optimizer, hparams);
    int ok = ref && net && descent_mpi_broadcast_parameters(net, comm, 0) == DESCENT_OK;
    double worst_loss = 0.0, worst_param = 0.0;
    int trained = ok, equal_ranks = ok, equal_params = ok;
    for (int t = 0; t < STEPS && trained; t++) {
        float ref_loss = 0.0f, loss = 0.0f;
        trained = reference_step(ref, t, batch, &ref_loss) && distributed_step(net, comm, t, batch, &loss) == DESCENT_OK;
        if (!trained) {
            printf("     world rank %d, %s, step %d: %s / %s\n", world_rank, what, t, descent_last_error(),
                   descent_mpi_last_error());
            break;
        }
        worst_loss = fmax(worst_loss, fabs((double)loss - (double)ref_loss) / fabs((double)ref_loss));
        int64_t n = 0;
        float *p = arena(net, &n), *r = arena(ref, &n);
        if (bitwise) equal_params = equal_params && memcmp(p, r, (size_t)n * sizeof *p) == 0;
        worst_param = fmax(worst_param, max_relative(p, r, n));
        equal_ranks = equal_ranks && same_on_every_rank(net, comm);
    }
    expect(comm, trained, "%s: %d ranks train %d steps", what, size, STEPS);
    expect(comm, worst_loss <= 1e-6, "%s: losses within 1e-6 relative of 1 process x %lld rows (worst %.3g)", what,
           (long long)batch, worst_loss);
    if (bitwise)
        expect(comm, equal_params, "%s: parameters equal the 1-process run's bit for bit after every step", what);
    else
        expect(comm, worst_param <= tolerance, "%s: parameters within %.0e of the 1-process run's, on the scale of the largest weight (worst %.3g)",
               what, tolerance, worst_param);
    expect(comm, equal_ranks, "%s: every rank's parameters equal rank 0's bit for bit after every step", what);
    descent_net_free(ref);
    descent_net_free(net);
}

/* (f) descent_mpi_join: the library's own data parallelism. 2 ranks x 64 against 1 process x
 * 128, for one spec and optimizer: parameters equal bit for bit after every one of the first
 * STEPS steps and every loss within 1e-6 (synchronised batch norm, masks by global row, the 2
 * ranks' sum in the order of the library's 2 shards); then on to LONG_RUN steps of a task that
 * can be learnt and the test accuracy within 0.005 of one process's. With `failures`, then a
 * NaN on rank 1 fails both ranks, naming it, and changes nothing; and join's errors. */
static void joined_runs(MPI_Comm comm, int overlap, const char *spec_name, const char *spec, const char *optimizer,
                        const char *hparams, int failures) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    descent_net *ref = make_net(spec, optimizer, hparams), *net = make_net(spec, optimizer, hparams);
    int ok = ref && net && descent_mpi_join(net, &comm, overlap) == DESCENT_OK;
    int equal = ok, same = ok;
    double worst_loss = 0;
    for (int t = 0; t < STEPS && ok; t++) {
        float ref_loss, loss;
        int64_t first, count;
        shard(rank, size, 128, &first, &count);
        ok = reference_step(ref, t, 128, &ref_loss) &&
             descent_net_train_step(net, xs[t] + first * FEATURES, ys[t] + first, count, &loss) == DESCENT_OK;
        if (!ok) {
            printf("     world rank %d, joined, step %d: %s\n", world_rank, t, descent_last_error());
            break;
        }
        int64_t n = 0;
        float *p = arena(net, &n), *r = arena(ref, &n);
        equal = equal && memcmp(p, r, (size_t)n * sizeof *p) == 0;
        same = same && same_on_every_rank(net, comm);
        const double d = fabs((double)loss - ref_loss) / fabs((double)ref_loss);
        if (d > worst_loss) worst_loss = d;
    }

    /* On to LONG_RUN steps of a task that can be learnt (the label is the largest of the first
     * 10 features; the batches repeat), then both evaluated on 512 rows they never saw. */
    static int32_t learnable[STEPS][MAX_BATCH];
    for (int t = 0; t < STEPS; t++)
        for (int i = 0; i < MAX_BATCH; i++) learnable[t][i] = largest_of_first_10(xs[t] + i * FEATURES);
    for (int t = STEPS; t < LONG_RUN && ok; t++) {
        int64_t first, count;
        shard(rank, size, 128, &first, &count);
        const float *x = xs[t % STEPS];
        const int32_t *y = learnable[t % STEPS];
        ok = descent_net_train_step(ref, x, y, 128, NULL) == DESCENT_OK &&
             descent_net_train_step(net, x + first * FEATURES, y + first, count, NULL) == DESCENT_OK;
    }
    static float test_x[512 * FEATURES];
    static int32_t test_y[512];
    uint64_t seed = 4242;
    for (int i = 0; i < 512 * FEATURES; i++) test_x[i] = (float)(splitmix64(&seed) >> 40) * 0x1p-23f - 1.0f;
    for (int i = 0; i < 512; i++) test_y[i] = largest_of_first_10(test_x + i * FEATURES);
    float ref_test_loss = 0, ref_accuracy = 0, test_loss = 0, accuracy = -1;
    ok = ok && descent_net_evaluate(ref, test_x, test_y, 512, &ref_test_loss, &ref_accuracy) == DESCENT_OK &&
         descent_net_evaluate(net, test_x, test_y, 512, &test_loss, &accuracy) == DESCENT_OK;
    expect(comm, ok && equal && same && worst_loss <= 1e-6 && fabsf(accuracy - ref_accuracy) <= 0.005f &&
                     same_on_every_rank(net, comm),
           "joined (overlap %d), %s, %s: %d steps bit for bit with 1 process x 128 (every rank equal, losses within "
           "%.1g), and after %d steps the test accuracy within 0.005 of 1 process's (%.4f against %.4f)",
           overlap, spec_name, optimizer, STEPS, worst_loss, LONG_RUN, accuracy, ref_accuracy);
    if (!failures) {
        descent_mpi_leave(net);
        descent_net_free(ref);
        descent_net_free(net);
        return;
    }

    static float x[64 * FEATURES];
    memcpy(x, xs[0] + rank * 64 * FEATURES, sizeof x);
    if (rank == 1) x[2 * FEATURES + 5] = NAN;
    float *before = copy_params(net);
    int64_t n = 0;
    float loss;
    int32_t status = descent_net_train_step(net, x, ys[0] + rank * 64, 64, &loss);
    const char *want = rank == 1 ? "descent_net_train_step: x contains NaN at index 101 (row 2, column 5)"
                                 : "descent_net_train_step: the step failed on process 1: x contains NaN at index 101 "
                                   "(row 2, column 5); nothing changed";
    expect(comm, status == DESCENT_ERR_NUMERIC && !strcmp(descent_last_error(), want),
           "joined: a NaN on rank 1 fails every rank; rank 1 names it, rank 0 names rank 1 (rank %d: %s)", rank,
           descent_last_error());
    expect(comm, memcmp(arena(net, &n), before, (size_t)n * sizeof *before) == 0, "joined: nothing changed on any rank");
    free(before);
    expect(comm, descent_mpi_join(net, &comm, 2) == DESCENT_ERR_INVALID_ARGUMENT &&
                 !strcmp(descent_mpi_last_error(), "descent_mpi_join: overlap is 2: must be 0 or 1") &&
                 descent_mpi_join(NULL, &comm, 1) == DESCENT_ERR_INVALID_ARGUMENT &&
                 !strcmp(descent_mpi_last_error(), "descent_mpi_join: descent_net_set_allreduce: net is NULL"),
           "joined: descent_mpi_join refuses overlap 2 and a NULL net, naming them (%s)", descent_mpi_last_error());
    descent_mpi_leave(net);
    descent_net_free(ref);
    descent_net_free(net);
}

/* (d): a failed step on one rank fails on every rank and changes nothing anywhere. */
static void failures(MPI_Comm comm) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    descent_net *net = make_net(PLAIN, "adam", "lr=0.01"), *ref = make_net(PLAIN, "adam", "lr=0.01");
    if (!expect(comm, net && ref, "failures: networks created")) return;
    float loss;
    /* Two good steps first, so that the optimizer has state to lose. */
    for (int t = 0; t < 2; t++) {
        distributed_step(net, comm, t, 128, &loss);
        reference_step(ref, t, 128, &loss);
    }
    descent_optimizer *opt = NULL;
    descent_net_optimizer(net, &opt);
    double steps_before = 0.0, steps_after = 0.0;
    descent_optimizer_get(opt, "step", &steps_before);
    float *before = copy_params(net);
    int64_t n = 0;
    arena(net, &n);

    static float bad[64 * FEATURES];
    static int32_t labels[64];
    memcpy(bad, xs[2] + rank * 64 * FEATURES, sizeof bad);
    memcpy(labels, ys[2] + rank * 64, sizeof labels);

    /* A NaN in rank 1's rows. */
    if (rank == 1) bad[17] = NAN;
    float untouched = -1.0f;
    int32_t status = descent_mpi_train_step(net, comm, bad, labels, 64, &untouched);
    const char *want = "descent_mpi_train_step: rank 1 of 2 failed: x contains NaN at index 17 (row 0, column 17)";
    expect(comm, status == DESCENT_ERR_NUMERIC && strcmp(descent_mpi_last_error(), want) == 0,
           "NaN on rank 1: every rank returns DESCENT_ERR_NUMERIC \"%s\"", want);
    if (status != DESCENT_ERR_NUMERIC || strcmp(descent_mpi_last_error(), want) != 0)
        printf("     world rank %d got %s \"%s\"\n", world_rank, descent_status_name(status), descent_mpi_last_error());
    descent_optimizer_get(opt, "step", &steps_after);
    expect(comm, memcmp(before, arena(net, &n), (size_t)n * sizeof *before) == 0 && steps_after == steps_before &&
                     untouched == -1.0f,
           "NaN on rank 1: no rank's parameters, step count (%g) or loss output changed", steps_after);
    if (rank == 1) bad[17] = xs[2][64 * FEATURES + 17];

    /* Both ranks fail: the lowest-numbered rank's status and message are everyone's. */
    if (rank == 0) labels[3] = CLASSES;
    if (rank == 1) bad[5] = INFINITY;
    status = descent_mpi_train_step(net, comm, bad, labels, 64, NULL);
    want = "descent_mpi_train_step: rank 0 of 2 failed: labels[3] is 10: must be in [0, 10)";
    expect(comm, status == DESCENT_ERR_INVALID_ARGUMENT && strcmp(descent_mpi_last_error(), want) == 0,
           "label out of range on rank 0, Inf on rank 1: every rank returns rank 0's \"%s\"", want);
    if (rank == 0) labels[3] = ys[2][3];
    if (rank == 1) bad[5] = xs[2][64 * FEATURES + 5];

    /* Finite rows on rank 1 that make the global batch's loss overflow: the library finds it
     * inside the step, on every rank alike; nothing is applied. */
    if (rank == 1)
        for (int i = 0; i < 64 * FEATURES; i++) bad[i] = 3e38f;
    status = descent_mpi_train_step(net, comm, bad, labels, 64, NULL);
    want = "descent_mpi_train_step: descent_net_train_step: the loss is NaN (the weights or inputs are too large, "
           "or the learning rate is)";
    expect(comm, status == DESCENT_ERR_NUMERIC && strcmp(descent_mpi_last_error(), want) == 0,
           "overflow on rank 1: every rank returns DESCENT_ERR_NUMERIC \"%s\"", want);
    if (strcmp(descent_mpi_last_error(), want) != 0)
        printf("     world rank %d got \"%s\"\n", world_rank, descent_mpi_last_error());
    descent_optimizer_get(opt, "step", &steps_after);
    expect(comm, memcmp(before, arena(net, &n), (size_t)n * sizeof *before) == 0 && steps_after == steps_before,
           "overflow on rank 1: no rank's parameters or step count changed");

    /* The optimizer state is intact: the next good step equals the reference's, which never
     * saw the failed steps. */
    int ok = distributed_step(net, comm, 2, 128, &loss) == DESCENT_OK && reference_step(ref, 2, 128, &loss);
    float *p = arena(net, &n), *r = arena(ref, &n);
    expect(comm, ok && memcmp(p, r, (size_t)n * sizeof *p) == 0,
           "after the failures the next step equals a run that never saw them, bit for bit");
    free(before);
    descent_net_free(net);
    descent_net_free(ref);
}

/* (d) with dropout: forward_backward commits the dropout generator, so a rank whose inputs are
 * fine must not run it when another rank's are bad. Checked by the masks of the next steps:
 * they must be those of a run that never saw the failed step. */
static void failure_keeps_dropout_state(MPI_Comm comm) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    descent_net *net = make_net(DROPOUT, "adam", "lr=0.01"), *clean = make_net(DROPOUT, "adam", "lr=0.01");
    static float bad[64 * FEATURES];
    memcpy(bad, xs[1] + rank * 64 * FEATURES, sizeof bad);
    if (rank == 1) bad[3] = NAN;
    int ok = distributed_step(net, comm, 0, 128, NULL) == DESCENT_OK &&
             distributed_step(clean, comm, 0, 128, NULL) == DESCENT_OK &&
             descent_mpi_train_step(net, comm, bad, ys[1] + rank * 64, 64, NULL) == DESCENT_ERR_NUMERIC;
    for (int t = 1; t < 3 && ok; t++)
        ok = distributed_step(net, comm, t, 128, NULL) == DESCENT_OK && distributed_step(clean, comm, t, 128, NULL) == DESCENT_OK;
    int64_t n = 0;
    float *p = arena(net, &n), *c = arena(clean, &n);
    expect(comm, ok && memcmp(p, c, (size_t)n * sizeof *p) == 0,
           "dropout: after a NaN on rank 1, the next steps draw the masks of a run without the failed step "
           "(no rank's dropout generator moved), bit for bit");
    descent_net_free(net);
    descent_net_free(clean);
}

/* Errors of the broadcasts and of loading. */
static void broadcast_errors(MPI_Comm comm) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    descent_net *net = make_net(rank == 1 ? "{\"sizes\":[48,96,10]}" : PLAIN, "sgd", "");
    int64_t n = 0;
    float *before = copy_params(net);
    int32_t status = descent_mpi_broadcast_parameters(net, comm, 0);
    const char *want = "descent_mpi_broadcast_parameters: the ranks' networks differ: their parameter arenas hold from "
                       "5680 to 11568 floats (every rank must create the same spec)";
    expect(comm, status == DESCENT_ERR_SHAPE && strcmp(descent_mpi_last_error(), want) == 0 &&
                     memcmp(before, arena(net, &n), (size_t)n * sizeof *before) == 0,
           "different specs: every rank returns DESCENT_ERR_SHAPE \"%s\", nothing copied", want);
    if (strcmp(descent_mpi_last_error(), want) != 0) printf("     got \"%s\"\n", descent_mpi_last_error());
    status = descent_mpi_broadcast_parameters(net, comm, size);
    expect(comm, status == DESCENT_ERR_INVALID_ARGUMENT &&
                     strcmp(descent_mpi_last_error(),
                            "descent_mpi_broadcast_parameters: root is 3: must be a rank of comm, in [0, 3)") == 0,
           "root out of range: DESCENT_ERR_INVALID_ARGUMENT naming it");
    free(before);
    descent_net_free(net);

    descent_net *loaded = (descent_net *)&status;   /* must become NULL */
    status = descent_mpi_load("no-such-checkpoint.safetensors", comm, 0, &loaded);
    const char *prefix = "descent_mpi_load: rank 0 of 3 failed: descent_net_load: ";
    expect(comm, status == DESCENT_ERR_NOT_FOUND && loaded == NULL &&
                     strncmp(descent_mpi_last_error(), prefix, strlen(prefix)) == 0,
           "loading a missing file: every rank returns DESCENT_ERR_NOT_FOUND \"%s...\", *out NULL", prefix);
    if (strncmp(descent_mpi_last_error(), prefix, strlen(prefix)) != 0) printf("     got \"%s\"\n", descent_mpi_last_error());
}

/* (e): save on the 2 ranks of `pair`, resume on 1 rank and on all 3. */
static void checkpoints(MPI_Comm pair, MPI_Comm world) {
    enum { BEFORE = 5, AFTER = 5 };
    const char *path = "mpi_checkpoint.safetensors";
    float *saved = NULL, *final = NULL;
    int64_t n = 0;
    if (pair != MPI_COMM_NULL) {
        descent_net *net = make_net(PLAIN, "adam", "lr=0.01");
        for (int t = 0; t < BEFORE; t++) distributed_step(net, pair, t, 128, NULL);
        int32_t status = descent_mpi_save(net, path, pair, 0);
        expect(pair, status == DESCENT_OK, "2 ranks: rank 0 saves %s", path);
        status = descent_mpi_save(net, "no-such-dir/x.safetensors", pair, 0);
        const char *prefix = "descent_mpi_save: rank 0 of 2 failed: descent_net_save: cannot write 'no-such-dir/x.safetensors'";
        expect(pair, status == DESCENT_ERR_IO && strncmp(descent_mpi_last_error(), prefix, strlen(prefix)) == 0,
               "2 ranks: a failed save is DESCENT_ERR_IO on every rank \"%s...\"", prefix);
        saved = copy_params(net);
        for (int t = BEFORE; t < BEFORE + AFTER; t++) distributed_step(net, pair, t, 128, NULL);
        final = copy_params(net);
        arena(net, &n);
        descent_net_free(net);
    }
    /* Rank 0 holds what the 2-rank run saved and where it ended; every rank gets them. */
    MPI_Bcast(&n, 1, MPI_INT64_T, 0, world);
    if (!saved) saved = malloc((size_t)n * sizeof *saved), final = malloc((size_t)n * sizeof *final);
    MPI_Bcast(saved, (int)n, MPI_FLOAT, 0, world);
    MPI_Bcast(final, (int)n, MPI_FLOAT, 0, world);

    /* On 1 rank (each rank alone, MPI_COMM_SELF): 1 x 128 rows equals 2 x 64 bit for bit. */
    descent_net *one = NULL;
    int ok = descent_mpi_load(path, MPI_COMM_SELF, 0, &one) == DESCENT_OK;
    int64_t m = 0;
    ok = ok && memcmp(arena(one, &m), saved, (size_t)n * sizeof *saved) == 0;
    for (int t = BEFORE; t < BEFORE + AFTER && ok; t++) ok = distributed_step(one, MPI_COMM_SELF, t, 128, NULL) == DESCENT_OK;
    expect(world, ok && memcmp(arena(one, &m), final, (size_t)n * sizeof *final) == 0,
           "resumed on 1 rank: the saved parameters, and %d more steps end where the 2-rank run did, bit for bit", AFTER);
    descent_net_free(one);

    /* On 3 ranks: rows 42/43/43, so the sums round differently; same parameters when loaded. */
    descent_net *three = NULL;
    ok = descent_mpi_load(path, world, 0, &three) == DESCENT_OK;
    int loaded_same = ok && memcmp(arena(three, &m), saved, (size_t)n * sizeof *saved) == 0;
    for (int t = BEFORE; t < BEFORE + AFTER && ok; t++) ok = distributed_step(three, world, t, 128, NULL) == DESCENT_OK;
    double worst = ok ? max_relative(arena(three, &m), final, n) : INFINITY;
    expect(world, loaded_same, "resumed on 3 ranks: every rank holds the saved parameters bit for bit");
    expect(world, ok && worst <= 1e-6 && same_on_every_rank(three, world),
           "resumed on 3 ranks: %d more steps end within 1e-6 of the 2-rank run on the weights' scale (worst %.3g), "
           "every rank equal", AFTER, worst);
    descent_net_free(three);
    free(saved);
    free(final);
    if (world_rank == 0) remove(path);
}

/* descent_mpi_broadcast_net: optimizer state and step count travel too. */
static void broadcast_whole_net(MPI_Comm comm) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    /* Rank 0 trains 3 steps; the others have a fresh network of another seed. */
    descent_net *net = make_net(rank == 0 ? PLAIN : "{" "\"sizes\":[48,96,64,10],\"seed\":5" "}", "adam", "lr=0.01");
    if (rank == 0)
        for (int t = 0; t < 3; t++) reference_step(net, t, 128, NULL);
    descent_net *old = net;
    int32_t status = descent_mpi_broadcast_net(&net, comm, 0);
    descent_optimizer *opt = NULL;
    double steps = 0.0;
    descent_net_optimizer(net, &opt);
    descent_optimizer_get(opt, "step", &steps);
    expect(comm, status == DESCENT_OK && steps == 3.0 && (rank == 0) == (net == old) && same_on_every_rank(net, comm),
           "broadcast_net: every rank holds rank 0's parameters and its optimizer at step %g", steps);
    /* The same step on every rank from the same state: still equal (adam's moments came along). */
    reference_step(net, 3, 128, NULL);
    expect(comm, same_on_every_rank(net, comm), "broadcast_net: one more local step on the same rows agrees on every rank");
    descent_net_free(net);
}

int main(int argc, char **argv) {
    int level;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &level);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    if (level < MPI_THREAD_SERIALIZED) {
        if (world_rank == 0) fprintf(stderr, "test_data_parallel: this MPI does not provide MPI_THREAD_SERIALIZED\n");
        MPI_Finalize();
        return 1;
    }
    if (world_size != 3) {
        if (world_rank == 0) fprintf(stderr, "test_data_parallel: run it on 3 ranks (mpirun -np 3)\n");
        MPI_Finalize();
        return 2;
    }
    /* One thread per rank: the ranks share the machine's cores, and the references then run on
     * one thread too (the results do not depend on the count anyway). */
    descent_set_num_threads(1);
    make_data();
    MPI_Comm pair;
    MPI_Comm_split(MPI_COMM_WORLD, world_rank < 2 ? 0 : MPI_UNDEFINED, world_rank, &pair);

    if (pair != MPI_COMM_NULL) {
        for (int o = 0; o < OPTIMIZER_COUNT; o++) {
            char what[128];
            snprintf(what, sizeof what, "2 x 64 vs 1 x 128, %s", OPTIMIZERS[o][0]);
            compare_runs(pair, what, PLAIN, OPTIMIZERS[o][0], OPTIMIZERS[o][1], 128, 1, 0.0);
        }
        compare_runs(pair, "2 x 64 vs 1 x 128, weight decay 0.01, adam", DECAY, "adam", "lr=0.01", 128, 0, 1e-6);
        compare_runs(pair, "2 x 64 vs 1 x 128, batch norm, adam", BATCHNORM, "adam", "lr=0.01", 128, 1, 0.0);
        compare_runs(pair, "2 x 64 vs 1 x 128, dropout 0.3, adam", DROPOUT, "adam", "lr=0.01", 128, 1, 0.0);
        failures(pair);
        failure_keeps_dropout_state(pair);
        static const char *const JOB_SPECS[][2] = {
            {"plain", "{" SIZES "}"}, {"batch norm", "{" SIZES ",\"batchnorm\":true}"},
            {"dropout", "{" SIZES ",\"dropout\":0.2}"}, {"batch norm + dropout", "{" SIZES ",\"batchnorm\":true,\"dropout\":0.2}"},
        };
        for (int k = 0; k < 4; k++)
            for (int o = 0; o < OPTIMIZER_COUNT; o++)
                joined_runs(pair, 1, JOB_SPECS[k][0], JOB_SPECS[k][1], OPTIMIZERS[o][0], OPTIMIZERS[o][1], 0);
        for (int overlap = 1; overlap >= 0; overlap--)
            joined_runs(pair, overlap, JOB_SPECS[3][0], JOB_SPECS[3][1], "adam", "lr=0.01", 1);
    }
    compare_runs(MPI_COMM_WORLD, "3 x 33/33/34 vs 1 x 100, sgd", PLAIN, "sgd", "lr=0.1", 100, 0, 1e-6);
    compare_runs(MPI_COMM_WORLD, "3 x 33/33/34 vs 1 x 100, adam", PLAIN, "adam", "lr=0.01", 100, 0, 1e-5);
    broadcast_errors(MPI_COMM_WORLD);
    broadcast_whole_net(MPI_COMM_WORLD);
    checkpoints(pair, MPI_COMM_WORLD);

    if (pair != MPI_COMM_NULL) MPI_Comm_free(&pair);
    int total[2] = {passed, failed};
    if (world_rank == 0) printf("\n%d passed, %d failed\n", total[0], total[1]);
    MPI_Finalize();
    return failed == 0 ? 0 : 1;
}
