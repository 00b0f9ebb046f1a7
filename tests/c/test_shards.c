/*
 * test_shards.c -- a training step splits its batch into shards whose layout depends on the
 * batch size alone, so results are bit-identical for any thread count.
 *
 * For every spec below (plain, batch norm, dropout, both) and batch size 1, 7, 64, 128 and 1000
 * (one shard up to 127 rows, then 2, 4 or 8 of at least 64 rows), the same network is trained for
 * STEPS steps with 1, 2, 3 and 4 threads (descent_set_num_threads), then evaluated on 1000
 * held-out rows (evaluation is sharded the same way). The losses, the whole parameter and
 * gradient arenas (after several adam steps the parameters depend on the optimizer state too)
 * and the evaluation must equal the 1-thread run's bit for bit. Batch norm cannot train on one
 * sample, so its batch-1 runs are skipped.
 *
 * Data: splitmix64 numbers, exact floats in [-1, 1); labels from the same stream.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "descent.h"

enum { FEATURES = 48, CLASSES = 10, STEPS = 3, EVAL_ROWS = 1000, MAX_BATCH = 1000 };

#define SIZES "\"sizes\":[48,96,64,10],\"activation\":\"relu\",\"init\":\"he\",\"seed\":77"
static const char *const SPECS[] = {
    "{" SIZES "}",
    "{" SIZES ",\"batchnorm\":true}",
    "{" SIZES ",\"dropout\":0.3,\"weight_decay\":0.001}",
    "{" SIZES ",\"batchnorm\":true,\"dropout\":0.2}",
};
static const char *const SPEC_NAMES[] = {"plain", "batch norm", "dropout", "batch norm + dropout"};
static const int64_t BATCHES[] = {1, 7, 64, 128, 1000};
static const int THREADS[] = {1, 2, 3, 4};

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static float x_train[STEPS * MAX_BATCH * FEATURES], x_eval[EVAL_ROWS * FEATURES];
static int32_t y_train[STEPS * MAX_BATCH], y_eval[EVAL_ROWS];

static void make_data(void) {
    uint64_t s = 2026;
    for (size_t i = 0; i < sizeof x_train / sizeof *x_train; i++) x_train[i] = (float)(splitmix64(&s) >> 40) * 0x1p-23f - 1.0f;
    for (size_t i = 0; i < sizeof x_eval / sizeof *x_eval; i++) x_eval[i] = (float)(splitmix64(&s) >> 40) * 0x1p-23f - 1.0f;
    for (size_t i = 0; i < sizeof y_train / sizeof *y_train; i++) y_train[i] = (int32_t)(splitmix64(&s) % CLASSES);
    for (size_t i = 0; i < sizeof y_eval / sizeof *y_eval; i++) y_eval[i] = (int32_t)(splitmix64(&s) % CLASSES);
}

/* What a run produced, compared bit for bit. */
typedef struct {
    float losses[STEPS];
    float eval_loss, eval_accuracy;
    float *params, *grads;
    int64_t length;
} outcome;

static int train(const char *spec, int64_t batch, int threads, outcome *out) {
    descent_net *net = NULL;
    if (descent_set_num_threads(threads) != DESCENT_OK || descent_net_create(spec, &net) != DESCENT_OK ||
        descent_net_set_optimizer(net, "adam", "lr=0.01") != DESCENT_OK) {
        printf("     setup failed: %s\n", descent_last_error());
        descent_net_free(net);
        return 0;
    }
    int ok = 1;
    for (int s = 0; s < STEPS && ok; s++)
        ok = descent_net_train_step(net, x_train + (int64_t)s * batch * FEATURES, y_train + (int64_t)s * batch, batch,
                                    &out->losses[s]) == DESCENT_OK;
    ok = ok && descent_net_evaluate(net, x_eval, y_eval, EVAL_ROWS, &out->eval_loss, &out->eval_accuracy) == DESCENT_OK;
    float *params = NULL, *grads = NULL;
    ok = ok && descent_net_arena(net, &params, &grads, &out->length) == DESCENT_OK;
    if (ok) {
        out->params = malloc((size_t)out->length * sizeof(float));
        out->grads = malloc((size_t)out->length * sizeof(float));
        memcpy(out->params, params, (size_t)out->length * sizeof(float));
        memcpy(out->grads, grads, (size_t)out->length * sizeof(float));
    } else {
        printf("     training failed: %s\n", descent_last_error());
    }
    descent_net_free(net);
    return ok;
}

static int same(const outcome *a, const outcome *b) {
    return !memcmp(a->losses, b->losses, sizeof a->losses) && !memcmp(&a->eval_loss, &b->eval_loss, sizeof(float)) &&
           !memcmp(&a->eval_accuracy, &b->eval_accuracy, sizeof(float)) && a->length == b->length &&
           !memcmp(a->params, b->params, (size_t)a->length * sizeof(float)) &&
           !memcmp(a->grads, b->grads, (size_t)a->length * sizeof(float));
}

int main(void) {
    make_data();
    for (size_t sp = 0; sp < sizeof SPECS / sizeof *SPECS; sp++) {
        for (size_t b = 0; b < sizeof BATCHES / sizeof *BATCHES; b++) {
            const int64_t batch = BATCHES[b];
            if (batch == 1 && strstr(SPECS[sp], "batchnorm")) continue;
            outcome first = {0};
            if (!CHECK(train(SPECS[sp], batch, THREADS[0], &first), "%s, batch %lld: trains on 1 thread",
                       SPEC_NAMES[sp], (long long)batch))
                continue;
            for (size_t t = 1; t < sizeof THREADS / sizeof *THREADS; t++) {
                outcome other = {0};
                CHECK(train(SPECS[sp], batch, THREADS[t], &other) && same(&first, &other),
                      "%s, batch %lld: %d threads give the 1-thread run's losses, parameters, gradients and "
                      "evaluation bit for bit", SPEC_NAMES[sp], (long long)batch, THREADS[t]);
                free(other.params);
                free(other.grads);
            }
            free(first.params);
            free(first.grads);
        }
    }
    descent_set_num_threads(0);
    return check_summary();
}
