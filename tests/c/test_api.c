/*
 * test_api.c -- every entry point of descent.h, used the way the header documents it.
 *
 * Covers: descent_version, descent_status_name (every code and unknown ones), descent_last_error
 * (empty at first, kept by successful calls, per thread), descent_set/get_num_threads,
 * descent_optimizer_create/step/set/get ("step" included)/reset/free, descent_optimizer_names
 * (measure, exact fit, too small) and descent_optimizer_describe (valid JSON, its fields).
 * Bad inputs in depth are test_errors.c's job; plugins are test_plugins.c's.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "descent.h"

static void test_version(void) {
    const char *v = descent_version();
    CHECK(v != NULL, "descent_version() is not NULL");
    if (!v) return;
    /* MAJOR.MINOR.PATCH, digits only, optionally followed by a pre-release tag */
    int dots = 0, ok = isdigit((unsigned char)v[0]);
    const char *p = v;
    for (; *p && *p != '-' && *p != '+'; p++) {
        if (*p == '.') dots++;
        else if (!isdigit((unsigned char)*p)) ok = 0;
    }
    CHECK(ok && dots == 2, "descent_version() \"%s\" is semantic MAJOR.MINOR.PATCH", v);
    CHECK(descent_version() == v, "descent_version() returns the same static string every time");
    /* The header's macros come from the same single source as the library's string. */
    char from_macros[32];
    snprintf(from_macros, sizeof from_macros, "%d.%d.%d", DESCENT_VERSION_MAJOR, DESCENT_VERSION_MINOR,
             DESCENT_VERSION_PATCH);
    CHECK(strcmp(from_macros, DESCENT_VERSION_STRING) == 0, "DESCENT_VERSION_STRING \"%s\" equals the macros' %s",
          DESCENT_VERSION_STRING, from_macros);
    CHECK(strcmp(v, DESCENT_VERSION_STRING) == 0, "descent_version() \"%s\" equals the header's \"%s\"", v,
          DESCENT_VERSION_STRING);
}

static void test_status_names(void) {
    static const struct { int32_t code; const char *name; } known[] = {
        {DESCENT_OK, "DESCENT_OK"},
        {DESCENT_ERR_INVALID_ARGUMENT, "DESCENT_ERR_INVALID_ARGUMENT"},
        {DESCENT_ERR_NOT_FOUND, "DESCENT_ERR_NOT_FOUND"},
        {DESCENT_ERR_NUMERIC, "DESCENT_ERR_NUMERIC"},
        {DESCENT_ERR_SHAPE, "DESCENT_ERR_SHAPE"},
        {DESCENT_ERR_IO, "DESCENT_ERR_IO"},
        {DESCENT_ERR_FORMAT, "DESCENT_ERR_FORMAT"},
        {DESCENT_ERR_PLUGIN, "DESCENT_ERR_PLUGIN"},
        {DESCENT_ERR_OUT_OF_MEMORY, "DESCENT_ERR_OUT_OF_MEMORY"},
        {DESCENT_ERR_BUFFER_TOO_SMALL, "DESCENT_ERR_BUFFER_TOO_SMALL"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const char *name = descent_status_name(known[i].code);
        CHECK(name && strcmp(name, known[i].name) == 0, "descent_status_name(%d) == \"%s\" (got \"%s\")",
              (int)known[i].code, known[i].name, name ? name : "(NULL)");
    }
    CHECK(DESCENT_OK == 0, "DESCENT_OK is 0");
    const int32_t unknown[] = {10, 11, 100, -1, -2, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *name = descent_status_name(unknown[i]);
        CHECK(name && strcmp(name, "DESCENT_ERR_UNKNOWN") == 0,
              "descent_status_name(%ld) == \"DESCENT_ERR_UNKNOWN\" (got \"%s\")", (long)unknown[i],
              name ? name : "(NULL)");
    }
    CHECK(descent_status_name(DESCENT_ERR_NUMERIC) == descent_status_name(DESCENT_ERR_NUMERIC),
          "descent_status_name returns static strings (same pointer each call)");
}

/* A thread that has made no call yet sees "" and its own messages only. */
static void *last_error_thread(void *arg) {
    int *result = arg;
    const char *before = descent_last_error();
    int empty = before && before[0] == '\0';
    int32_t rc = descent_set_num_threads(-7);
    const char *mine = descent_last_error();
    int own = rc == DESCENT_ERR_INVALID_ARGUMENT && mine &&
              strcmp(mine, "descent_set_num_threads: n is -7: must be 0 (default) or 1...1024") == 0;
    *result = empty * 1 + own * 2;
    return NULL;
}

static void test_last_error(void) {
    const char *first = descent_last_error();
    CHECK(first && strcmp(first, "") == 0, "descent_last_error() is \"\" before any failure");

    CHECK_ERROR(descent_set_num_threads(-1), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_set_num_threads: n is -1: must be 0 (default) or 1...1024",
                "a failing call sets the message");
    int64_t needed = 0;
    CHECK_STATUS(descent_optimizer_names(NULL, 0, &needed), DESCENT_OK, "a successful call");
    descent_optimizer *opt = NULL;
    CHECK_STATUS(descent_optimizer_create("sgd", NULL, &opt), DESCENT_OK, "another successful call");
    descent_optimizer_free(opt);
    CHECK(strcmp(descent_last_error(), "descent_set_num_threads: n is -1: must be 0 (default) or 1...1024") == 0,
          "successful calls do not clear descent_last_error()");

    pthread_t thread;
    int result = 0;
    if (pthread_create(&thread, NULL, last_error_thread, &result) == 0) {
        pthread_join(thread, NULL);
        CHECK(result & 1, "a new thread sees \"\" although this thread has a message (thread-local)");
        CHECK(result & 2, "a new thread sees its own message");
    } else {
        CHECK(0, "pthread_create");
    }
    CHECK(strcmp(descent_last_error(), "descent_set_num_threads: n is -1: must be 0 (default) or 1...1024") == 0,
          "the other thread's failure did not change this thread's message");
}

static void test_threads(void) {
    int32_t initial = descent_get_num_threads();
    CHECK(initial >= 1, "descent_get_num_threads() >= 1 (got %d)", (int)initial);
    CHECK_STATUS(descent_set_num_threads(3), DESCENT_OK, "descent_set_num_threads(3)");
    CHECK(descent_get_num_threads() == 3, "descent_get_num_threads() == 3 after set(3)");
    CHECK_STATUS(descent_set_num_threads(1), DESCENT_OK, "descent_set_num_threads(1)");
    CHECK(descent_get_num_threads() == 1, "descent_get_num_threads() == 1 after set(1)");
    CHECK_STATUS(descent_set_num_threads(1024), DESCENT_OK, "descent_set_num_threads(1024) (the maximum)");
    CHECK(descent_get_num_threads() == 1024, "descent_get_num_threads() == 1024");
    CHECK_STATUS(descent_set_num_threads(2), DESCENT_OK, "descent_set_num_threads(2)");
    CHECK_ERROR(descent_set_num_threads(-1), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_set_num_threads: n is -1: must be 0 (default) or 1...1024", "descent_set_num_threads(-1)");
    CHECK(descent_get_num_threads() == 2, "a rejected set leaves the count at 2");
    CHECK_ERROR(descent_set_num_threads(1025), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_set_num_threads: n is 1025: must be 0 (default) or 1...1024",
                "descent_set_num_threads(1025)");
    CHECK_ERROR(descent_set_num_threads(INT32_MIN), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_set_num_threads: n is -2147483648: must be 0 (default) or 1...1024",
                "descent_set_num_threads(INT32_MIN)");
    CHECK(descent_get_num_threads() == 2, "the count is still 2");
    CHECK_STATUS(descent_set_num_threads(0), DESCENT_OK, "descent_set_num_threads(0) restores the default");
    CHECK(descent_get_num_threads() == initial, "the default is the count the library started with (%d)",
          (int)initial);
}

/* The documented defaults, read back with descent_optimizer_get. */
static void test_defaults(void) {
    static const struct { const char *name, *key; double value; } defaults[] = {
        {"sgd", "lr", 0.01}, {"sgd", "weight_decay", 0.0},
        {"momentum", "lr", 0.01}, {"momentum", "momentum", 0.9}, {"momentum", "weight_decay", 0.0},
        {"nesterov", "lr", 0.01}, {"nesterov", "momentum", 0.9}, {"nesterov", "weight_decay", 0.0},
        {"adagrad", "lr", 0.01}, {"adagrad", "eps", 1e-7}, {"adagrad", "weight_decay", 0.0},
        {"rmsprop", "lr", 0.01}, {"rmsprop", "decay", 0.99}, {"rmsprop", "eps", 1e-7},
        {"rmsprop", "weight_decay", 0.0},
        {"adam", "lr", 0.001}, {"adam", "beta1", 0.9}, {"adam", "beta2", 0.999}, {"adam", "eps", 1e-7},
        {"adam", "eps_hat", 1.0}, {"adam", "weight_decay", 0.0},
        {"adamw", "lr", 0.001}, {"adamw", "beta1", 0.9}, {"adamw", "beta2", 0.999},
        {"adamw", "eps", 1e-8}, {"adamw", "weight_decay", 0.01},
        /* the host's check_finite, on every optimizer */
        {"sgd", "check_finite", 1.0}, {"momentum", "check_finite", 1.0}, {"nesterov", "check_finite", 1.0},
        {"adagrad", "check_finite", 1.0}, {"rmsprop", "check_finite", 1.0}, {"adam", "check_finite", 1.0},
        {"adamw", "check_finite", 1.0},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        descent_optimizer *opt = NULL;
        if (descent_optimizer_create(defaults[i].name, NULL, &opt) != DESCENT_OK) {
            CHECK(0, "create %s: %s", defaults[i].name, descent_last_error());
            continue;
        }
        double v = get_value(opt, defaults[i].key);
        CHECK(v == defaults[i].value, "default %s.%s == %g (got %g)", defaults[i].name, defaults[i].key,
              defaults[i].value, v);
        descent_optimizer_free(opt);
    }
}

static void test_optimizer_lifecycle(void) {
    descent_optimizer *opt = (descent_optimizer *)&opt;   /* a non-NULL sentinel */
    CHECK_STATUS(descent_optimizer_create("momentum", "lr=0.5, momentum=0.5", &opt), DESCENT_OK,
                 "create momentum with \"lr=0.5, momentum=0.5\"");
    CHECK(opt != NULL && opt != (descent_optimizer *)&opt, "create wrote a handle");
    CHECK(get_value(opt, "lr") == 0.5, "get lr == 0.5 (from hparams)");
    CHECK(get_value(opt, "momentum") == 0.5, "get momentum == 0.5 (from hparams)");
    CHECK(get_value(opt, "weight_decay") == 0.0, "get weight_decay == 0 (host default)");
    CHECK(get_value(opt, "check_finite") == 1.0, "get check_finite == 1 (host default)");
    CHECK(get_value(opt, "step") == 0.0, "get step == 0 before any step");

    /* Two tensors; p = [1, 2, 3], q = [-1]; g = [1, 1, 1], [2]. */
    float p[3] = {1, 2, 3}, q[1] = {-1};
    const float gp[3] = {1, 1, 1}, gq[1] = {2};
    float *params[2] = {p, q};
    const float *grads[2] = {gp, gq};
    const int64_t lengths[2] = {3, 1};
    CHECK_STATUS(descent_optimizer_step(opt, 2, params, grads, lengths), DESCENT_OK, "step 1");
    /* v = -0.5*g; p += v */
    CHECK(p[0] == 0.5f && p[1] == 1.5f && p[2] == 2.5f && q[0] == -2.0f,
          "step 1: p = [0.5, 1.5, 2.5], q = [-2] (got [%g, %g, %g], [%g])", p[0], p[1], p[2], q[0]);
    CHECK(get_value(opt, "step") == 1.0, "get step == 1");
    CHECK_STATUS(descent_optimizer_step(opt, 2, params, grads, lengths), DESCENT_OK, "step 2");
    /* v = 0.5*(-0.5) - 0.5*1 = -0.75 for g = 1; 0.5*(-1) - 0.5*2 = -1.5 for g = 2 */
    CHECK(p[0] == -0.25f && p[1] == 0.75f && p[2] == 1.75f && q[0] == -3.5f,
          "step 2: p = [-0.25, 0.75, 1.75], q = [-3.5] (got [%g, %g, %g], [%g])", p[0], p[1], p[2], q[0]);
    CHECK(get_value(opt, "step") == 2.0, "get step == 2");

    /* set keeps state and step count */
    CHECK_STATUS(descent_optimizer_set(opt, "lr", 0.25), DESCENT_OK, "set lr = 0.25");
    CHECK(get_value(opt, "lr") == 0.25, "get lr == 0.25 after set");
    CHECK(get_value(opt, "step") == 2.0, "set keeps the step count");
    CHECK_STATUS(descent_optimizer_step(opt, 2, params, grads, lengths), DESCENT_OK, "step 3 (lr 0.25)");
    /* v = 0.5*(-0.75) - 0.25*1 = -0.625; q: v = 0.5*(-1.5) - 0.25*2 = -1.25 (the velocity was kept) */
    CHECK(p[0] == -0.875f && q[0] == -4.75f, "step 3 uses the kept velocity: p[0] = -0.875, q = -4.75 (got %g, %g)",
          p[0], q[0]);

    /* reset: step count 0, state zero, new shapes allowed, hyperparameters kept */
    CHECK_STATUS(descent_optimizer_reset(opt), DESCENT_OK, "reset");
    CHECK(get_value(opt, "step") == 0.0, "get step == 0 after reset");
    CHECK(get_value(opt, "lr") == 0.25 && get_value(opt, "momentum") == 0.5, "reset keeps hyperparameters");
    float r[2] = {0, 0};
    const float gr[2] = {4, -4};
    float *rp[1] = {r};
    const float *rg[1] = {gr};
    const int64_t rl[1] = {2};
    CHECK_STATUS(descent_optimizer_step(opt, 1, rp, rg, rl), DESCENT_OK, "after reset, a step with a new shape (1 tensor of 2)");
    CHECK(r[0] == -1.0f && r[1] == 1.0f, "the first step after reset starts from zero velocity: r = [-1, 1] (got [%g, %g])",
          r[0], r[1]);
    CHECK(get_value(opt, "step") == 1.0, "get step == 1 after reset + step");

    /* weight_decay is settable on every optimizer without its own */
    CHECK_STATUS(descent_optimizer_set(opt, "weight_decay", 0.125), DESCENT_OK, "set weight_decay = 0.125");
    CHECK(get_value(opt, "weight_decay") == 0.125, "get weight_decay == 0.125");
    /* and check_finite on every optimizer */
    CHECK_STATUS(descent_optimizer_set(opt, "check_finite", 0), DESCENT_OK, "set check_finite = 0");
    CHECK(get_value(opt, "check_finite") == 0.0, "get check_finite == 0");
    CHECK_STATUS(descent_optimizer_set(opt, "check_finite", 1), DESCENT_OK, "set check_finite = 1");

    /* zero-length tensors may have NULL pointers */
    descent_optimizer *sgd = NULL;
    CHECK_STATUS(descent_optimizer_create("sgd", "", &sgd), DESCENT_OK, "create sgd with \"\" (defaults)");
    float a[1] = {1};
    const float ga[1] = {100};
    float *zp[2] = {NULL, a};
    const float *zg[2] = {NULL, ga};
    const int64_t zl[2] = {0, 1};
    CHECK_STATUS(descent_optimizer_step(sgd, 2, zp, zg, zl), DESCENT_OK,
                 "step with a zero-length tensor whose pointers are NULL");
    CHECK_NEAR(a[0], 0.0, 1e-6, "the other tensor was updated: 1 - 0.01*100 = 0 (float lr 0.01 is inexact)");
    descent_optimizer_free(sgd);

    descent_optimizer_free(opt);
    descent_optimizer_free(NULL);
    CHECK(1, "descent_optimizer_free(NULL) is a no-op");
}

static void test_names(void) {
    int64_t needed = -1;
    CHECK_STATUS(descent_optimizer_names(NULL, 0, &needed), DESCENT_OK, "names(NULL, 0, &needed) measures");
    const char *builtins = "sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw";
    CHECK(needed >= (int64_t)strlen(builtins) + 1, "needed (%lld) covers at least the built-ins and the NUL",
          (long long)needed);
    if (needed <= 0 || needed > 1 << 20) return;

    char *exact = malloc((size_t)needed);
    int64_t needed2 = -1;
    CHECK_STATUS(descent_optimizer_names(exact, needed, &needed2), DESCENT_OK, "names with cap == needed");
    CHECK(needed2 == needed, "needed is reported again on success (%lld)", (long long)needed2);
    CHECK((int64_t)strlen(exact) + 1 == needed, "the text is needed - 1 characters long, NUL-terminated");
    CHECK(strncmp(exact, builtins, strlen(builtins)) == 0 &&
              (exact[strlen(builtins)] == '\0' || exact[strlen(builtins)] == ','),
          "the built-ins come first, in order: \"%s\"", exact);

    /* too small by one: fails, reports needed, leaves the buffer untouched */
    char *small = malloc((size_t)needed);
    memset(small, 'X', (size_t)needed);
    int64_t needed3 = -1;
    CHECK_ERROR(descent_optimizer_names(small, needed - 1, &needed3), DESCENT_ERR_BUFFER_TOO_SMALL,
                sfmt("descent_optimizer_names: cap is %lld bytes but %lld are needed", (long long)(needed - 1),
                     (long long)needed),
                "names with cap == needed - 1");
    CHECK(needed3 == needed, "needed is reported when the buffer is too small (%lld)", (long long)needed3);
    int untouched = 1;
    for (int64_t i = 0; i < needed; i++) untouched &= small[i] == 'X';
    CHECK(untouched, "a too-small buffer is left untouched");
    memset(small, 'X', (size_t)needed);
    CHECK_STATUS(descent_optimizer_names(small, 1, &needed3), DESCENT_ERR_BUFFER_TOO_SMALL, "names with cap == 1");
    CHECK(small[0] == 'X', "cap 1: not even a NUL is written");

    /* a larger buffer works, and needed may be NULL when a buffer is given */
    char big[4096];
    CHECK_STATUS(descent_optimizer_names(big, sizeof big, NULL), DESCENT_OK, "names into a large buffer, needed = NULL");
    CHECK(strcmp(big, exact) == 0, "same text as before");
    free(small);
    free(exact);
}

static void test_describe(void) {
    int64_t needed = -1;
    CHECK_STATUS(descent_optimizer_describe("adam", NULL, 0, &needed), DESCENT_OK, "describe(adam) measures");
    CHECK(needed > 2, "needed = %lld", (long long)needed);
    char *adam = describe_string("adam");
    CHECK(adam != NULL, "describe(adam) into a buffer of the measured size");
    if (!adam) return;
    printf("     adam: %s\n", adam);
    CHECK((int64_t)strlen(adam) + 1 == needed, "the text fills exactly the measured size");
    CHECK(json_valid(adam), "describe(adam) is well-formed JSON");
    CHECK(strstr(adam, "\"name\":\"adam\"") != NULL, "has \"name\":\"adam\"");
    CHECK(strstr(adam, "\"origin\":\"built-in\"") != NULL, "has \"origin\":\"built-in\"");
    CHECK(strstr(adam, "\"state_buffers\":2") != NULL, "has \"state_buffers\":2");
    CHECK(strstr(adam, "\"description\":\"") != NULL, "has a description");
    CHECK(strstr(adam, "{\"name\":\"lr\",\"default\":0.001,\"min\":0,\"max\":null,\"min_exclusive\":true,"
                       "\"max_exclusive\":false,\"boolean\":false,\"range\":\"(0, inf)\",\"provided_by\":\"optimizer\"") != NULL,
          "lr: default 0.001, range (0, inf), min exclusive, max null");
    CHECK(strstr(adam, "{\"name\":\"beta1\",\"default\":0.9,\"min\":0,\"max\":1,\"min_exclusive\":false,"
                       "\"max_exclusive\":true,\"boolean\":false,\"range\":\"[0, 1)\"") != NULL,
          "beta1: default 0.9, range [0, 1)");
    CHECK(strstr(adam, "\"name\":\"eps_hat\",\"default\":1,") != NULL && strstr(adam, "\"boolean\":true") != NULL &&
              strstr(adam, "\"range\":\"{0, 1}\"") != NULL,
          "eps_hat: default 1, boolean, range {0, 1}");
    CHECK(strstr(adam, "{\"name\":\"weight_decay\",\"default\":0,\"min\":0,\"max\":null,\"min_exclusive\":false,"
                       "\"max_exclusive\":false,\"boolean\":false,\"range\":\"[0, inf)\",\"provided_by\":\"host\"") != NULL,
          "adam's weight_decay is provided by the host (L2), range [0, inf)");
    static const char check_finite_entry[] =
        "{\"name\":\"check_finite\",\"default\":1,\"min\":0,\"max\":1,\"min_exclusive\":false,"
        "\"max_exclusive\":false,\"boolean\":true,\"range\":\"{0, 1}\",\"provided_by\":\"host\",\"help\":\"";
    const char *cf = strstr(adam, check_finite_entry);
    CHECK(cf != NULL, "adam's check_finite: default 1, boolean, range {0, 1}, provided by the host");
    CHECK(cf && strstr(cf + 1, "{\"name\":") == NULL && strcmp(adam + strlen(adam) - 4, "\"}]}") == 0,
          "check_finite is the last hyperparameter");
    CHECK(strstr(adam, "\"help\":\"") != NULL, "hyperparameters have help");
    free(adam);

    char *adamw = describe_string("adamw");
    CHECK(adamw && json_valid(adamw), "describe(adamw) is well-formed JSON");
    CHECK(adamw && strstr(adamw, "{\"name\":\"weight_decay\",\"default\":0.01,\"min\":0,\"max\":null,"
                              "\"min_exclusive\":false,\"max_exclusive\":false,\"boolean\":false,"
                              "\"range\":\"[0, inf)\",\"provided_by\":\"optimizer\"") != NULL,
          "adamw's weight_decay (default 0.01) is its own, not the host's");
    CHECK(adamw && strstr(adamw, check_finite_entry) != NULL,
          "adamw still gets the host's check_finite");
    const char *host = adamw ? strstr(adamw, "\"provided_by\":\"host\"") : NULL;
    CHECK(host && strstr(host + 1, "\"provided_by\":\"host\"") == NULL,
          "adamw's only host-provided hyperparameter is check_finite");
    free(adamw);

    static const char *const all[] = {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"};
    static const int states[] = {0, 1, 1, 1, 1, 2, 2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        char *d = describe_string(all[i]);
        char want[64];
        snprintf(want, sizeof want, "\"state_buffers\":%d", states[i]);
        CHECK(d && json_valid(d) && strstr(d, want),
              "describe(%s) is valid JSON with %s", all[i], want);
        CHECK(d && strstr(d, check_finite_entry) != NULL, "describe(%s) has the host's check_finite", all[i]);
        free(d);
    }

    char tiny[8];
    memset(tiny, 'X', sizeof tiny);
    CHECK_STATUS(descent_optimizer_describe("sgd", tiny, sizeof tiny, &needed), DESCENT_ERR_BUFFER_TOO_SMALL,
                 "describe(sgd) into 8 bytes");
    CHECK(tiny[0] == 'X' && tiny[7] == 'X', "the too-small buffer is untouched");
}

int main(void) {
    printf("test_api: every entry point of descent.h (libdescent %s)\n\n", descent_version());
    test_last_error();   /* first: checks "" before any failure */
    test_version();
    test_status_names();
    test_threads();
    test_defaults();
    test_optimizer_lifecycle();
    test_names();
    test_describe();
    return check_summary();
}
