/*
 * test_threads.c -- the thread rules of descent.h (issue 2 point 7).
 *
 *   1. Plugin loading is safe from any thread: several threads load the same plugin (and
 *      another one) at once; every load succeeds and each optimizer is registered once.
 *   2. The update gives bit-identical results whatever the thread count: each optimizer, run
 *      alone with descent_set_num_threads(1), (2) and (3), on tensors large enough for the
 *      parallel path (3 tensors of ~50000 > 32768 elements), 20 steps.
 *   3. Separate handles may step concurrently: all optimizers run at the same time, each on
 *      its own pthread (and each twice), and every result equals the serial one bit for bit.
 *   4. descent_last_error() is per thread while all of that happens.
 * Gradients are deterministic pseudo-random numbers (splitmix64), the same for every run.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "descent.h"

#include "plugin_dirs.h"

#define LION DESCENT_PLUGIN_DIR "/lion.so"
#define PROBE DESCENT_TEST_PLUGIN_DIR "/plugin_probe.so"

enum { TENSORS = 3, STEPS = 20 };
static const int64_t LENGTHS[TENSORS] = {50000, 50001, 49999};   /* odd sizes: partial chunks */

typedef struct opt_case {
    const char *name, *hparams;
} opt_case;

static const opt_case CASES[] = {
    {"adam", "lr=0.01"},
    {"adam", "lr=0.01,weight_decay=0.01,eps_hat=0"},   /* host L2: the chunked scratch path */
    {"momentum", "lr=0.01"},
    {"sgd", "lr=0.1"},
    {"rmsprop", NULL},
    {"nesterov", "lr=0.01,weight_decay=0.001"},
    {"adagrad", "lr=0.05"},
    {"adamw", "lr=0.01"},
    {"lion", "lr=0.001,weight_decay=0.1"},   /* skipped when lion.so cannot be loaded */
};
enum { NCASES = sizeof CASES / sizeof CASES[0] };
static int lion_loaded;

/* ---- deterministic data --------------------------------------------------------------------*/

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1), exactly representable (24 random bits) */
static float uniform(uint64_t *s) { return (float)(splitmix64(s) >> 40) / 8388608.0f - 1.0f; }

/* ---- one run -------------------------------------------------------------------------------*/

typedef struct run {
    const opt_case *c;
    uint64_t seed;
    float *params[TENSORS];   /* the result */
    int32_t status;
    char error[512];
    int own_errors_ok;        /* descent_last_error stayed this thread's own */
} run;

static void run_alloc(run *r, const opt_case *c, uint64_t seed) {
    memset(r, 0, sizeof *r);
    r->c = c;
    r->seed = seed;
    for (int k = 0; k < TENSORS; k++) r->params[k] = malloc((size_t)LENGTHS[k] * sizeof(float));
}

static void run_free(run *r) {
    for (int k = 0; k < TENSORS; k++) free(r->params[k]);
}

static void *run_optimizer(void *arg) {
    run *r = arg;
    char mine[64], expect[160];
    /* a failure only this thread makes, to check the message is still ours at the end */
    snprintf(mine, sizeof mine, "nope_%p", (void *)r);
    snprintf(expect, sizeof expect, "descent_optimizer_create: unknown optimizer '%s'; known: ", mine);
    descent_optimizer *bogus = NULL;
    descent_optimizer_create(mine, NULL, &bogus);
    r->own_errors_ok = strncmp(descent_last_error(), expect, strlen(expect)) == 0;

    descent_optimizer *opt = NULL;
    r->status = descent_optimizer_create(r->c->name, r->c->hparams, &opt);
    if (r->status != DESCENT_OK) {
        snprintf(r->error, sizeof r->error, " -- %s", descent_last_error());
        return NULL;
    }
    uint64_t s = r->seed;
    float *grads_buf[TENSORS];
    const float *grads[TENSORS];
    for (int k = 0; k < TENSORS; k++) {
        grads_buf[k] = malloc((size_t)LENGTHS[k] * sizeof(float));
        grads[k] = grads_buf[k];
        for (int64_t i = 0; i < LENGTHS[k]; i++) r->params[k][i] = uniform(&s);
    }
    for (int t = 0; t < STEPS && r->status == DESCENT_OK; t++) {
        for (int k = 0; k < TENSORS; k++)
            for (int64_t i = 0; i < LENGTHS[k]; i++) grads_buf[k][i] = uniform(&s);
        r->status = descent_optimizer_step(opt, TENSORS, r->params, grads, LENGTHS);
        if (r->status != DESCENT_OK) snprintf(r->error, sizeof r->error, " -- %s", descent_last_error());
    }
    for (int k = 0; k < TENSORS; k++) free(grads_buf[k]);
    descent_optimizer_free(opt);
    r->own_errors_ok &= r->status != DESCENT_OK || strncmp(descent_last_error(), expect, strlen(expect)) == 0;
    return NULL;
}

static int same(const run *a, const run *b) {
    for (int k = 0; k < TENSORS; k++)
        if (memcmp(a->params[k], b->params[k], (size_t)LENGTHS[k] * sizeof(float)) != 0) return 0;
    return 1;
}

static const char *label(const opt_case *c) { return sfmt("%s \"%s\"", c->name, c->hparams ? c->hparams : ""); }

static int has_lion(void) {
    char *names = names_string();
    int found = names && list_has(names, "lion");
    free(names);
    return found;
}

/* ---- 1. concurrent plugin loads ---------------------------------------------------------------*/

typedef struct load_job {
    const char *path;
    int32_t status;
    char error[512];
} load_job;

static pthread_barrier_t load_barrier;

static void *load_plugin(void *arg) {
    load_job *j = arg;
    pthread_barrier_wait(&load_barrier);   /* all threads call descent_plugin_load together */
    j->status = descent_plugin_load(j->path);
    if (j->status != DESCENT_OK) snprintf(j->error, sizeof j->error, "%s", descent_last_error());
    return NULL;
}

static void test_concurrent_loads(void) {
    printf("\n-- 8 threads load plugins at the same time (6 x lion.so, 2 x plugin_probe.so)\n");
    enum { N = 8 };
    pthread_t threads[N];
    load_job jobs[N];
    pthread_barrier_init(&load_barrier, NULL, N);
    for (int i = 0; i < N; i++) {
        jobs[i].path = i % 4 == 3 ? PROBE : LION;
        jobs[i].status = -1;
        jobs[i].error[0] = '\0';
        pthread_create(&threads[i], NULL, load_plugin, &jobs[i]);
    }
    int all_ok = 1;
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        if (jobs[i].status != DESCENT_OK) {
            all_ok = 0;
            printf("     thread %d (%s): %s %s\n", i, jobs[i].path, descent_status_name(jobs[i].status), jobs[i].error);
        }
    }
    pthread_barrier_destroy(&load_barrier);
    CHECK(all_ok, "every concurrent descent_plugin_load succeeded");
    char *names = names_string();
    CHECK(names && list_count(names, "lion") == 1 && list_count(names, "probe_sgd") == 1 &&
              list_count(names, "probe_ctx") == 1,
          "lion, probe_sgd and probe_ctx are each registered once (names: %s)", names ? names : "(NULL)");
    free(names);
    lion_loaded = has_lion();
}

/* ---- 2 and 3 -----------------------------------------------------------------------------------*/

static void test_thread_counts(run serial[NCASES]) {
    printf("\n-- each optimizer alone with 1, 2 and 3 threads: bit-identical results\n");
    for (int c = 0; c < NCASES; c++) {
        if (strcmp(CASES[c].name, "lion") == 0 && !lion_loaded) {
            printf("     (lion not loadable: skipped)\n");
            continue;
        }
        run_alloc(&serial[c], &CASES[c], 1000 + (uint64_t)c);
        descent_set_num_threads(1);
        run_optimizer(&serial[c]);
        CHECK(serial[c].status == DESCENT_OK, "%s: 20 steps with 1 thread%s", label(&CASES[c]), serial[c].error);
        for (int nth = 2; nth <= 3; nth++) {
            run r;
            run_alloc(&r, &CASES[c], 1000 + (uint64_t)c);
            descent_set_num_threads(nth);
            run_optimizer(&r);
            CHECK(r.status == DESCENT_OK && same(&r, &serial[c]), "%s: %d threads == 1 thread, bit for bit",
                  label(&CASES[c]), nth);
            run_free(&r);
        }
    }
    descent_set_num_threads(0);
}

static void test_concurrent_runs(run serial[NCASES]) {
    printf("\n-- all optimizers at once, each on its own pthread (twice), 2 threads per step\n");
    descent_set_num_threads(2);
    run runs[2 * NCASES];
    pthread_t threads[2 * NCASES];
    int started[2 * NCASES];
    for (int i = 0; i < 2 * NCASES; i++) {
        int c = i % NCASES;
        started[i] = 0;
        if (strcmp(CASES[c].name, "lion") == 0 && !lion_loaded) continue;
        run_alloc(&runs[i], &CASES[c], 1000 + (uint64_t)c);
        started[i] = pthread_create(&threads[i], NULL, run_optimizer, &runs[i]) == 0;
        CHECK(started[i], "start a thread for %s", label(&CASES[c]));
    }
    for (int i = 0; i < 2 * NCASES; i++) {
        if (!started[i]) continue;
        pthread_join(threads[i], NULL);
        int c = i % NCASES;
        CHECK(runs[i].status == DESCENT_OK && same(&runs[i], &serial[c]),
              "%s (copy %d) on its own thread equals the serial run bit for bit%s", label(&CASES[c]), i / NCASES + 1,
              runs[i].error);
        CHECK(runs[i].own_errors_ok, "  ...and its thread saw only its own descent_last_error()");
        run_free(&runs[i]);
    }
    descent_set_num_threads(0);
}

int main(void) {
    unsetenv("DESCENT_PLUGIN_PATH");
    printf("test_threads: concurrency and thread-count independence (%d tensors of ~50000, %d steps)\n", TENSORS, STEPS);
    test_concurrent_loads();
    run serial[NCASES];
    memset(serial, 0, sizeof serial);
    test_thread_counts(serial);
    test_concurrent_runs(serial);
    for (int c = 0; c < NCASES; c++)
        if (serial[c].c) run_free(&serial[c]);
    return check_summary();
}
