/*
 * test_errors.c -- every bad input of issue 2 point 6 that needs no plugin fixture: the exact
 * status code, the exact descent_last_error() text, and that the failing call changed nothing.
 *
 * "Changed nothing" is checked on a rig: an optimizer that has taken two steps on two tensors
 * and a twin that took the same steps. After each failing call
 *   - the parameters are byte-identical to a copy taken before it (memcmp),
 *   - the step count equals the twin's,
 *   - hyperparameters equal the twin's,
 *   - and one more valid step on both gives byte-identical parameters, which can only happen
 *     when the hidden state (velocities, moments) and the bias-correction step t are untouched.
 * Plugin failures (ABI, collisions, failing steps) are in test_plugins.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "descent.h"

#define KNOWN "sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw"
/* An unknown optimizer's message ends with the plugin folders searched (a %s for searched_folders()). */
#define FOLDERS "; plugin folders searched: %s"
#define ADAM_KEYS "lr, beta1, beta2, eps, eps_hat, weight_decay, check_finite"

/* ---- the rig ------------------------------------------------------------------------------*/

enum { LA = 3, LB = 4 };

typedef struct rig {
    descent_optimizer *opt, *twin;
    float a[LA], b[LB];          /* the optimizer's parameters */
    float ta[LA], tb[LB];        /* the twin's */
    float ga[LA], gb[LB];        /* gradients of the next valid step */
    float saved_a[LA], saved_b[LB];
    int64_t lengths[2];
    float *params[2], *twin_params[2];
    const float *grads[2];
    int round;                   /* varies the gradients from step to step */
} rig;

static void rig_gradients(rig *r) {
    r->round++;
    for (int i = 0; i < LA; i++) r->ga[i] = 0.1f * (float)(i + 1) * (r->round % 2 ? 1.0f : -0.5f);
    for (int i = 0; i < LB; i++) r->gb[i] = -0.2f + 0.05f * (float)(i * r->round);
}

/* Both take one valid step with the same gradients. Returns 1 when both succeeded. */
static int rig_valid_step(rig *r) {
    rig_gradients(r);
    int32_t s1 = descent_optimizer_step(r->opt, 2, r->params, r->grads, r->lengths);
    int32_t s2 = descent_optimizer_step(r->twin, 2, r->twin_params, r->grads, r->lengths);
    return s1 == DESCENT_OK && s2 == DESCENT_OK;
}

static void rig_init(rig *r, const char *name, const char *hparams) {
    memset(r, 0, sizeof *r);
    r->lengths[0] = LA;
    r->lengths[1] = LB;
    r->params[0] = r->a;
    r->params[1] = r->b;
    r->twin_params[0] = r->ta;
    r->twin_params[1] = r->tb;
    r->grads[0] = r->ga;
    r->grads[1] = r->gb;
    for (int i = 0; i < LA; i++) r->a[i] = r->ta[i] = 1.0f - 0.5f * (float)i;
    for (int i = 0; i < LB; i++) r->b[i] = r->tb[i] = -2.0f + 0.75f * (float)i;
    int ok = descent_optimizer_create(name, hparams, &r->opt) == DESCENT_OK &&
             descent_optimizer_create(name, hparams, &r->twin) == DESCENT_OK;
    ok = ok && rig_valid_step(r) && rig_valid_step(r);
    CHECK(ok, "rig: %s (%s) and its twin took 2 steps on 2 tensors", name, hparams ? hparams : "defaults");
}

static void rig_save(rig *r) {
    memcpy(r->saved_a, r->a, sizeof r->a);
    memcpy(r->saved_b, r->b, sizeof r->b);
}

/* The heart of "changes nothing". */
static void rig_verify(rig *r, const char *after) {
    int same_params = memcmp(r->a, r->saved_a, sizeof r->a) == 0 && memcmp(r->b, r->saved_b, sizeof r->b) == 0;
    double step = get_value(r->opt, "step"), twin_step = get_value(r->twin, "step");
    double lr = get_value(r->opt, "lr"), twin_lr = get_value(r->twin, "lr");
    double wd = get_value(r->opt, "weight_decay"), twin_wd = get_value(r->twin, "weight_decay");
    int next = rig_valid_step(r);
    int same_next = next && memcmp(r->a, r->ta, sizeof r->a) == 0 && memcmp(r->b, r->tb, sizeof r->b) == 0;
    CHECK(same_params && step == twin_step && lr == twin_lr && wd == twin_wd && same_next,
          "  ...changed nothing after %s: params %s, step %g == %g, hyperparameters %s, next step %s", after,
          same_params ? "identical" : "CHANGED", step, twin_step, lr == twin_lr && wd == twin_wd ? "kept" : "CHANGED",
          same_next ? "matches the twin bit for bit" : "DIFFERS from the twin");
}

static void rig_free(rig *r) {
    descent_optimizer_free(r->opt);
    descent_optimizer_free(r->twin);
}

/* Control: the rig must notice a change of hidden state alone. Take a step on the optimizer
 * only, then put its parameters back: the parameters no longer tell, but the step count and
 * the next step must. */
static void test_rig_control(void) {
    printf("\n-- control: the rig detects a hidden state change\n");
    rig r;
    rig_init(&r, "adam", "lr=0.01");
    rig_save(&r);
    rig_gradients(&r);
    descent_optimizer_step(r.opt, 2, r.params, r.grads, r.lengths);
    memcpy(r.a, r.saved_a, sizeof r.a);
    memcpy(r.b, r.saved_b, sizeof r.b);
    CHECK(get_value(r.opt, "step") != get_value(r.twin, "step"), "the step counts differ after a hidden step");
    int next = rig_valid_step(&r);
    CHECK(next && (memcmp(r.a, r.ta, sizeof r.a) != 0 || memcmp(r.b, r.tb, sizeof r.b) != 0),
          "the next step differs from the twin's after a hidden step (so a match means state was kept)");
    rig_free(&r);
}

/* ---- create -------------------------------------------------------------------------------*/

/* create must fail with `status` and `message`, and set *out to NULL. */
static void expect_create_error(const char *name, const char *hparams, int32_t status, const char *message,
                                const char *what) {
    descent_optimizer *out = (descent_optimizer *)&out;   /* non-NULL sentinel */
    CHECK_ERROR(descent_optimizer_create(name, hparams, &out), status, message, what);
    CHECK(out == NULL, "  ...and *out is NULL");
    if (out && out != (descent_optimizer *)&out) descent_optimizer_free(out);
}

static void expect_create_ok(const char *name, const char *hparams, const char *key, double value) {
    descent_optimizer *out = NULL;
    int32_t status = descent_optimizer_create(name, hparams, &out);
    double got = status == DESCENT_OK ? get_value(out, key) : NAN;
    CHECK(status == DESCENT_OK && got == value, "create %s \"%s\" is accepted: %s == %g (got %s, %g)", name, hparams,
          key, value, descent_status_name(status), got);
    descent_optimizer_free(out);
}

static void test_create_errors(void) {
    printf("\n-- descent_optimizer_create: NULLs, unknown names and keys\n");
    expect_create_error(NULL, NULL, DESCENT_ERR_INVALID_ARGUMENT, "descent_optimizer_create: name is NULL",
                        "create(NULL, NULL, &out)");
    CHECK_ERROR(descent_optimizer_create("sgd", NULL, NULL), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_create: out is NULL", "create(\"sgd\", NULL, NULL)");
    expect_create_error("nope", NULL, DESCENT_ERR_NOT_FOUND,
                        sfmt("descent_optimizer_create: unknown optimizer 'nope'; known: " KNOWN FOLDERS, searched_folders()),
                        "create an unknown optimizer (the message lists the known ones)");
    expect_create_error("", NULL, DESCENT_ERR_NOT_FOUND,
                        sfmt("descent_optimizer_create: unknown optimizer ''; known: " KNOWN FOLDERS, searched_folders()),
                        "create with an empty name");
    expect_create_error("Adam", NULL, DESCENT_ERR_NOT_FOUND,
                        sfmt("descent_optimizer_create: unknown optimizer 'Adam'; known: " KNOWN FOLDERS, searched_folders()),
                        "names are case-sensitive");
    expect_create_error("adam", "lr=0.01,gamma=2", DESCENT_ERR_NOT_FOUND,
                        "descent_optimizer_create: unknown hyperparameter 'gamma' for adam; known: " ADAM_KEYS,
                        "an unknown hyperparameter key");
    expect_create_error("sgd", "momentum=0.9", DESCENT_ERR_NOT_FOUND,
                        "descent_optimizer_create: unknown hyperparameter 'momentum' for sgd; known: lr, weight_decay, "
                        "check_finite",
                        "a key of another optimizer");
    expect_create_error("adamw", "eps_hat=0", DESCENT_ERR_NOT_FOUND,
                        "descent_optimizer_create: unknown hyperparameter 'eps_hat' for adamw; known: lr, beta1, beta2, "
                        "eps, weight_decay, check_finite",
                        "adamw has no eps_hat");
    expect_create_error("momentum", "step=3", DESCENT_ERR_NOT_FOUND,
                        "descent_optimizer_create: unknown hyperparameter 'step' for momentum; known: lr, momentum, "
                        "weight_decay, check_finite",
                        "\"step\" is read-only, not a hyperparameter");

    printf("\n-- descent_optimizer_create: values out of range\n");
    static const struct { const char *name, *hparams, *message; } ranges[] = {
        {"sgd", "lr=0", "hyperparameter 'lr' = 0 is out of range (0, inf)"},
        {"sgd", "lr=-0.5", "hyperparameter 'lr' = -0.5 is out of range (0, inf)"},
        {"adam", "lr=-1e-300", "hyperparameter 'lr' = -1e-300 is out of range (0, inf)"},
        {"momentum", "momentum=1", "hyperparameter 'momentum' = 1 is out of range [0, 1)"},
        {"momentum", "momentum=-0.1", "hyperparameter 'momentum' = -0.1 is out of range [0, 1)"},
        {"nesterov", "momentum=1.5", "hyperparameter 'momentum' = 1.5 is out of range [0, 1)"},
        {"adam", "beta1=1", "hyperparameter 'beta1' = 1 is out of range [0, 1)"},
        {"adam", "beta1=-0.25", "hyperparameter 'beta1' = -0.25 is out of range [0, 1)"},
        {"adam", "beta2=1", "hyperparameter 'beta2' = 1 is out of range [0, 1)"},
        {"adamw", "beta2=2", "hyperparameter 'beta2' = 2 is out of range [0, 1)"},
        {"adamw", "beta1=1.0000001", "hyperparameter 'beta1' = 1.0000001 is out of range [0, 1)"},
        {"rmsprop", "decay=1", "hyperparameter 'decay' = 1 is out of range [0, 1)"},
        {"adagrad", "eps=0", "hyperparameter 'eps' = 0 is out of range (0, inf)"},
        {"adam", "eps=-1e-8", "hyperparameter 'eps' = -1e-08 is out of range (0, inf)"},
        {"rmsprop", "eps=-1", "hyperparameter 'eps' = -1 is out of range (0, inf)"},
        {"sgd", "weight_decay=-0.1", "hyperparameter 'weight_decay' = -0.1 is out of range [0, inf)"},
        {"adamw", "weight_decay=-1", "hyperparameter 'weight_decay' = -1 is out of range [0, inf)"},
        {"adam", "eps_hat=0.5", "hyperparameter 'eps_hat' = 0.5 is out of range {0, 1}"},
        {"adam", "eps_hat=2", "hyperparameter 'eps_hat' = 2 is out of range {0, 1}"},
        {"sgd", "check_finite=0.5", "hyperparameter 'check_finite' = 0.5 is out of range {0, 1}"},
        {"adamw", "check_finite=2", "hyperparameter 'check_finite' = 2 is out of range {0, 1}"},
        {"momentum", "check_finite=-1", "hyperparameter 'check_finite' = -1 is out of range {0, 1}"},
        {"sgd", "lr=1e999", "hyperparameter 'lr' must be finite, got inf"},
        {"sgd", "lr=-1e999", "hyperparameter 'lr' must be finite, got -inf"},
        {"momentum", "lr=0.1,momentum=0.9,weight_decay=-2",
         "hyperparameter 'weight_decay' = -2 is out of range [0, inf)"},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        char message[256], what[128];
        snprintf(message, sizeof message, "descent_optimizer_create: %s", ranges[i].message);
        snprintf(what, sizeof what, "create %s \"%s\"", ranges[i].name, ranges[i].hparams);
        expect_create_error(ranges[i].name, ranges[i].hparams, DESCENT_ERR_INVALID_ARGUMENT, message, what);
    }
    /* the edges that are inside the ranges */
    expect_create_ok("momentum", "momentum=0", "momentum", 0.0);
    expect_create_ok("adam", "beta1=0,beta2=0", "beta2", 0.0);
    expect_create_ok("adam", "beta1=0.999999", "beta1", 0.999999);
    expect_create_ok("sgd", "weight_decay=0", "weight_decay", 0.0);
    expect_create_ok("adam", "eps_hat=0", "eps_hat", 0.0);
    expect_create_ok("sgd", "check_finite=0", "check_finite", 0.0);
    expect_create_ok("adamw", "check_finite=1", "check_finite", 1.0);
    expect_create_ok("adagrad", "eps=1e-30", "eps", 1e-30);
    expect_create_ok("sgd", "lr=1e-12", "lr", 1e-12);

    printf("\n-- descent_optimizer_create: malformed hyperparameter lists\n");
    static const struct { const char *hparams, *message; } malformed[] = {
        {"lr", "malformed hyperparameters \"lr\": item 1 \"lr\" is not key=value"},
        {"lr:0.1", "malformed hyperparameters \"lr:0.1\": item 1 \"lr:0.1\" is not key=value"},
        {"lr=0.1,,momentum=0.9", "malformed hyperparameters \"lr=0.1,,momentum=0.9\": item 2 \"\" is not key=value"},
        {"lr=0.1,", "malformed hyperparameters \"lr=0.1,\": item 2 \"\" is not key=value"},
        {",lr=0.1", "malformed hyperparameters \",lr=0.1\": item 1 \"\" is not key=value"},
        {",", "malformed hyperparameters \",\": item 1 \"\" is not key=value"},
        {"lr=0.1,momentum", "malformed hyperparameters \"lr=0.1,momentum\": item 2 \"momentum\" is not key=value"},
        {"=0.1", "malformed hyperparameters \"=0.1\": item 1 has no key"},
        {"lr=0.1, =0.5", "malformed hyperparameters \"lr=0.1, =0.5\": item 2 has no key"},
        {"lr=", "malformed hyperparameters \"lr=\": value of 'lr' is \"\", not a number"},
        {"lr=abc", "malformed hyperparameters \"lr=abc\": value of 'lr' is \"abc\", not a number"},
        {"lr=0.1x", "malformed hyperparameters \"lr=0.1x\": value of 'lr' is \"0.1x\", not a number"},
        {"lr=1=2", "malformed hyperparameters \"lr=1=2\": value of 'lr' is \"1=2\", not a number"},
        {"lr=0.5 0.1", "malformed hyperparameters \"lr=0.5 0.1\": value of 'lr' is \"0.5 0.1\", not a number"},
        {"lr=0.1;momentum=0.9",
         "malformed hyperparameters \"lr=0.1;momentum=0.9\": value of 'lr' is \"0.1;momentum=0.9\", not a number"},
        {"lr=nan", "malformed hyperparameters \"lr=nan\": value of 'lr' is \"nan\", not a number"},
        {"lr=inf", "malformed hyperparameters \"lr=inf\": value of 'lr' is \"inf\", not a number"},
        {"lr=-inf", "malformed hyperparameters \"lr=-inf\": value of 'lr' is \"-inf\", not a number"},
        {"lr=0x10", "malformed hyperparameters \"lr=0x10\": value of 'lr' is \"0x10\", not a number"},
        {"lr=0.1,lr=0.2", "malformed hyperparameters \"lr=0.1,lr=0.2\": 'lr' is given twice"},
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        char message[256], what[128];
        snprintf(message, sizeof message, "descent_optimizer_create: %s", malformed[i].message);
        snprintf(what, sizeof what, "create momentum \"%s\"", malformed[i].hparams);
        expect_create_error("momentum", malformed[i].hparams, DESCENT_ERR_INVALID_ARGUMENT, message, what);
    }
    /* well-formed lists that look odd */
    expect_create_ok("momentum", " lr = 0.5 , momentum=0.25 ", "momentum", 0.25);
    expect_create_ok("momentum", "   ", "lr", 0.01);
    expect_create_ok("sgd", "lr=5e-1", "lr", 0.5);
    expect_create_ok("sgd", "lr=+0.5", "lr", 0.5);
}

/* ---- set / get / reset --------------------------------------------------------------------*/

static void test_set_get_errors(void) {
    printf("\n-- descent_optimizer_set / get / reset\n");
    rig r;
    rig_init(&r, "adam", "lr=0.01,weight_decay=0.1");

    CHECK_ERROR(descent_optimizer_set(NULL, "lr", 0.1), DESCENT_ERR_INVALID_ARGUMENT, "descent_optimizer_set: opt is NULL",
                "set(NULL, ...)");
    rig_save(&r);
    CHECK_ERROR(descent_optimizer_set(r.opt, NULL, 0.1), DESCENT_ERR_INVALID_ARGUMENT, "descent_optimizer_set: key is NULL",
                "set(opt, NULL, 0.1)");
    rig_verify(&r, "set with a NULL key");

    static const struct { const char *key; double value; int32_t status; const char *message; } bad_sets[] = {
        {"gamma", 1.0, DESCENT_ERR_NOT_FOUND,
         "descent_optimizer_set: unknown hyperparameter 'gamma' for adam; known: " ADAM_KEYS},
        {"step", 5.0, DESCENT_ERR_NOT_FOUND,
         "descent_optimizer_set: unknown hyperparameter 'step' for adam; known: " ADAM_KEYS},
        {"lr", 0.0, DESCENT_ERR_INVALID_ARGUMENT, "descent_optimizer_set: hyperparameter 'lr' = 0 is out of range (0, inf)"},
        {"lr", -1.0, DESCENT_ERR_INVALID_ARGUMENT, "descent_optimizer_set: hyperparameter 'lr' = -1 is out of range (0, inf)"},
        {"lr", NAN, DESCENT_ERR_INVALID_ARGUMENT, "descent_optimizer_set: hyperparameter 'lr' must be finite, got nan"},
        {"lr", INFINITY, DESCENT_ERR_INVALID_ARGUMENT, "descent_optimizer_set: hyperparameter 'lr' must be finite, got inf"},
        {"eps", -INFINITY, DESCENT_ERR_INVALID_ARGUMENT,
         "descent_optimizer_set: hyperparameter 'eps' must be finite, got -inf"},
        {"beta1", 1.0, DESCENT_ERR_INVALID_ARGUMENT,
         "descent_optimizer_set: hyperparameter 'beta1' = 1 is out of range [0, 1)"},
        {"beta2", -0.5, DESCENT_ERR_INVALID_ARGUMENT,
         "descent_optimizer_set: hyperparameter 'beta2' = -0.5 is out of range [0, 1)"},
        {"eps", 0.0, DESCENT_ERR_INVALID_ARGUMENT, "descent_optimizer_set: hyperparameter 'eps' = 0 is out of range (0, inf)"},
        {"weight_decay", -0.5, DESCENT_ERR_INVALID_ARGUMENT,
         "descent_optimizer_set: hyperparameter 'weight_decay' = -0.5 is out of range [0, inf)"},
        {"eps_hat", 0.5, DESCENT_ERR_INVALID_ARGUMENT,
         "descent_optimizer_set: hyperparameter 'eps_hat' = 0.5 is out of range {0, 1}"},
        {"check_finite", 0.5, DESCENT_ERR_INVALID_ARGUMENT,
         "descent_optimizer_set: hyperparameter 'check_finite' = 0.5 is out of range {0, 1}"},
        {"check_finite", NAN, DESCENT_ERR_INVALID_ARGUMENT,
         "descent_optimizer_set: hyperparameter 'check_finite' must be finite, got nan"},
    };
    for (size_t i = 0; i < sizeof bad_sets / sizeof bad_sets[0]; i++) {
        char what[96];
        snprintf(what, sizeof what, "set(adam, \"%s\", %g)", bad_sets[i].key, bad_sets[i].value);
        rig_save(&r);
        CHECK_ERROR(descent_optimizer_set(r.opt, bad_sets[i].key, bad_sets[i].value), bad_sets[i].status,
                    bad_sets[i].message, what);
        rig_verify(&r, what);
    }
    CHECK(get_value(r.opt, "eps_hat") == 1.0 && get_value(r.opt, "beta1") == 0.9 && get_value(r.opt, "beta2") == 0.999 &&
              get_value(r.opt, "eps") == 1e-7 && get_value(r.opt, "check_finite") == 1.0,
          "after all rejected sets, every hyperparameter has its old value");

    descent_optimizer *m = NULL;
    if (descent_optimizer_create("momentum", NULL, &m) == DESCENT_OK) {
        CHECK_ERROR(descent_optimizer_set(m, "momentum", 1.0), DESCENT_ERR_INVALID_ARGUMENT,
                    "descent_optimizer_set: hyperparameter 'momentum' = 1 is out of range [0, 1)", "set momentum = 1");
        CHECK_ERROR(descent_optimizer_set(m, "momentum", -0.01), DESCENT_ERR_INVALID_ARGUMENT,
                    "descent_optimizer_set: hyperparameter 'momentum' = -0.01 is out of range [0, 1)", "set momentum = -0.01");
        CHECK(get_value(m, "momentum") == 0.9, "momentum is still 0.9");
        descent_optimizer_free(m);
    }

    double v = 42.0;
    CHECK_ERROR(descent_optimizer_get(NULL, "lr", &v), DESCENT_ERR_INVALID_ARGUMENT, "descent_optimizer_get: opt is NULL",
                "get(NULL, \"lr\", &v)");
    CHECK_ERROR(descent_optimizer_get(r.opt, "lr", NULL), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_get: value is NULL", "get(opt, \"lr\", NULL)");
    CHECK_ERROR(descent_optimizer_get(r.opt, NULL, &v), DESCENT_ERR_INVALID_ARGUMENT, "descent_optimizer_get: key is NULL",
                "get(opt, NULL, &v)");
    CHECK_ERROR(descent_optimizer_get(r.opt, "gamma", &v), DESCENT_ERR_NOT_FOUND,
                "descent_optimizer_get: unknown hyperparameter 'gamma' for adam; known: " ADAM_KEYS,
                "get an unknown key");
    CHECK(v == 42.0, "failed gets leave *value untouched");
    CHECK_ERROR(descent_optimizer_reset(NULL), DESCENT_ERR_INVALID_ARGUMENT, "descent_optimizer_reset: opt is NULL",
                "reset(NULL)");
    rig_free(&r);
}

/* ---- step ---------------------------------------------------------------------------------*/

static void test_step_errors(void) {
    printf("\n-- descent_optimizer_step: bad arguments\n");
    rig r;
    rig_init(&r, "adam", "lr=0.01,weight_decay=0.1");
    float *params[3] = {r.a, r.b, NULL};
    const float *grads[3] = {r.ga, r.gb, NULL};
    int64_t lengths[3] = {LA, LB, 2};
    float extra[2] = {0, 0}, gextra[2] = {0, 0};
    params[2] = extra;
    grads[2] = gextra;

#define STEP_ERROR(call, status, message, what) \
    do {                                        \
        rig_save(&r);                           \
        CHECK_ERROR(call, status, message, what); \
        rig_verify(&r, what);                   \
    } while (0)

    STEP_ERROR(descent_optimizer_step(NULL, 2, params, grads, lengths), DESCENT_ERR_INVALID_ARGUMENT,
               "descent_optimizer_step: opt is NULL", "step(NULL, ...)");
    STEP_ERROR(descent_optimizer_step(r.opt, 0, params, grads, lengths), DESCENT_ERR_INVALID_ARGUMENT,
               "descent_optimizer_step: count is 0: must be >= 1", "step with count 0");
    STEP_ERROR(descent_optimizer_step(r.opt, -1, params, grads, lengths), DESCENT_ERR_INVALID_ARGUMENT,
               "descent_optimizer_step: count is -1: must be >= 1", "step with count -1");
    STEP_ERROR(descent_optimizer_step(r.opt, INT64_MIN, params, grads, lengths), DESCENT_ERR_INVALID_ARGUMENT,
               "descent_optimizer_step: count is -9223372036854775808: must be >= 1", "step with count INT64_MIN");
    STEP_ERROR(descent_optimizer_step(r.opt, 2, NULL, grads, lengths), DESCENT_ERR_INVALID_ARGUMENT,
               "descent_optimizer_step: params is NULL", "step with params NULL");
    STEP_ERROR(descent_optimizer_step(r.opt, 2, params, NULL, lengths), DESCENT_ERR_INVALID_ARGUMENT,
               "descent_optimizer_step: grads is NULL", "step with grads NULL");
    STEP_ERROR(descent_optimizer_step(r.opt, 2, params, grads, NULL), DESCENT_ERR_INVALID_ARGUMENT,
               "descent_optimizer_step: lengths is NULL", "step with lengths NULL");

    lengths[1] = -1;
    STEP_ERROR(descent_optimizer_step(r.opt, 2, params, grads, lengths), DESCENT_ERR_INVALID_ARGUMENT,
               "descent_optimizer_step: lengths[1] is -1: must be >= 0", "step with lengths[1] = -1");
    lengths[1] = INT64_MIN;
    STEP_ERROR(descent_optimizer_step(r.opt, 2, params, grads, lengths), DESCENT_ERR_INVALID_ARGUMENT,
               "descent_optimizer_step: lengths[1] is -9223372036854775808: must be >= 0",
               "step with lengths[1] = INT64_MIN");
    lengths[1] = LB;
    lengths[0] = -5;
    STEP_ERROR(descent_optimizer_step(r.opt, 2, params, grads, lengths), DESCENT_ERR_INVALID_ARGUMENT,
               "descent_optimizer_step: lengths[0] is -5: must be >= 0", "step with lengths[0] = -5");
    lengths[0] = LA;

    params[1] = NULL;
    STEP_ERROR(descent_optimizer_step(r.opt, 2, params, grads, lengths), DESCENT_ERR_INVALID_ARGUMENT,
               "descent_optimizer_step: params[1] is NULL", "step with params[1] NULL");
    params[1] = r.b;
    grads[0] = NULL;
    STEP_ERROR(descent_optimizer_step(r.opt, 2, params, grads, lengths), DESCENT_ERR_INVALID_ARGUMENT,
               "descent_optimizer_step: grads[0] is NULL", "step with grads[0] NULL");
    grads[0] = r.ga;

    printf("\n-- descent_optimizer_step: NaN / Inf in a gradient\n");
    /* Gradients with one bad value; the library must not write anything. */
    float bad_a[LA], bad_b[LB];
    const float *bad_grads[2] = {bad_a, bad_b};
    static const struct { int tensor, index; float value; const char *message; } bad[] = {
        {1, 2, NAN, "descent_optimizer_step: grads[1] contains NaN at index 2"},
        {0, 0, INFINITY, "descent_optimizer_step: grads[0] contains Inf at index 0"},
        {1, 3, -INFINITY, "descent_optimizer_step: grads[1] contains -Inf at index 3"},
        {0, 2, -NAN, "descent_optimizer_step: grads[0] contains NaN at index 2"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        for (int i = 0; i < LA; i++) bad_a[i] = 0.5f;
        for (int i = 0; i < LB; i++) bad_b[i] = -0.5f;
        (bad[k].tensor == 0 ? bad_a : bad_b)[bad[k].index] = bad[k].value;
        char what[96];
        snprintf(what, sizeof what, "step with %s in grads[%d][%d]",
                 isnan(bad[k].value) ? "NaN" : (bad[k].value > 0 ? "+Inf" : "-Inf"), bad[k].tensor, bad[k].index);
        STEP_ERROR(descent_optimizer_step(r.opt, 2, params, bad_grads, lengths), DESCENT_ERR_NUMERIC, bad[k].message,
                   what);
    }
    /* two bad values: the first in tensor order is named */
    for (int i = 0; i < LA; i++) bad_a[i] = 0.5f;
    for (int i = 0; i < LB; i++) bad_b[i] = -0.5f;
    bad_b[0] = NAN;
    bad_a[2] = INFINITY;
    bad_a[1] = -INFINITY;
    STEP_ERROR(descent_optimizer_step(r.opt, 2, params, bad_grads, lengths), DESCENT_ERR_NUMERIC,
               "descent_optimizer_step: grads[0] contains -Inf at index 1", "step with three bad values: the first is named");

    printf("\n-- descent_optimizer_step: shape changes between steps\n");
    STEP_ERROR(descent_optimizer_step(r.opt, 1, params, grads, lengths), DESCENT_ERR_SHAPE,
               "descent_optimizer_step: the state was created for 2 tensors of lengths [3, 4], but this step has 1 "
               "tensor of lengths [3]; call reset to start over",
               "step with 1 tensor instead of 2");
    STEP_ERROR(descent_optimizer_step(r.opt, 3, params, grads, lengths), DESCENT_ERR_SHAPE,
               "descent_optimizer_step: the state was created for 2 tensors of lengths [3, 4], but this step has 3 "
               "tensors of lengths [3, 4, 2]; call reset to start over",
               "step with 3 tensors instead of 2");
    lengths[1] = 3;
    STEP_ERROR(descent_optimizer_step(r.opt, 2, params, grads, lengths), DESCENT_ERR_SHAPE,
               "descent_optimizer_step: the state was created for 2 tensors of lengths [3, 4], but this step has 2 "
               "tensors of lengths [3, 3]; call reset to start over",
               "step with lengths [3, 3] instead of [3, 4]");
    lengths[0] = 4;
    lengths[1] = 3;
    float *swapped[2] = {r.b, r.a};
    const float *swapped_g[2] = {r.gb, r.ga};
    STEP_ERROR(descent_optimizer_step(r.opt, 2, swapped, swapped_g, lengths), DESCENT_ERR_SHAPE,
               "descent_optimizer_step: the state was created for 2 tensors of lengths [3, 4], but this step has 2 "
               "tensors of lengths [4, 3]; call reset to start over",
               "step with the tensors swapped ([4, 3])");
    lengths[0] = 0;
    lengths[1] = 4;
    STEP_ERROR(descent_optimizer_step(r.opt, 2, params, grads, lengths), DESCENT_ERR_SHAPE,
               "descent_optimizer_step: the state was created for 2 tensors of lengths [3, 4], but this step has 2 "
               "tensors of lengths [0, 4]; call reset to start over",
               "step with lengths [0, 4] instead of [3, 4]");
    lengths[0] = LA;

    /* after a reset the new shape is accepted */
    CHECK_STATUS(descent_optimizer_reset(r.opt), DESCENT_OK, "reset");
    CHECK_STATUS(descent_optimizer_step(r.opt, 3, params, grads, lengths), DESCENT_OK,
                 "after reset, 3 tensors [3, 4, 2] are accepted");
    CHECK(get_value(r.opt, "step") == 1.0, "step count is 1");
    rig_free(&r);
#undef STEP_ERROR
}

/* A failure on the very first step must not create the state: the shape is still free. */
static void test_first_step_failure(void) {
    printf("\n-- a failing first step leaves no state behind\n");
    descent_optimizer *opt = NULL;
    if (descent_optimizer_create("momentum", "lr=0.5", &opt) != DESCENT_OK) {
        CHECK(0, "create momentum: %s", descent_last_error());
        return;
    }
    float p[3] = {1, 2, 3}, saved[3] = {1, 2, 3};
    float g[3] = {1, NAN, 1};
    float *params[1] = {p};
    const float *grads[1] = {g};
    int64_t lengths[1] = {3};
    CHECK_ERROR(descent_optimizer_step(opt, 1, params, grads, lengths), DESCENT_ERR_NUMERIC,
                "descent_optimizer_step: grads[0] contains NaN at index 1", "first step with a NaN gradient");
    CHECK(memcmp(p, saved, sizeof p) == 0, "  ...params untouched");
    CHECK(get_value(opt, "step") == 0.0, "  ...step count still 0");
    g[1] = 1;
    lengths[0] = 2;
    CHECK_STATUS(descent_optimizer_step(opt, 1, params, grads, lengths), DESCENT_OK,
                 "  ...and a first step with another shape (1 tensor of 2) is accepted");
    CHECK(p[0] == 0.5f && p[1] == 1.5f && p[2] == 3.0f && get_value(opt, "step") == 1.0,
          "  ...which starts from zero velocity at t = 1: p = [0.5, 1.5, 3]");
    descent_optimizer_free(opt);
}

/* Large tensors take the parallel scan; the first bad value in (tensor, index) order is named. */
static void test_parallel_scan(void) {
    printf("\n-- NaN/Inf in large gradients (parallel scan)\n");
    const int64_t n = 200000;
    float *p = malloc((size_t)n * sizeof *p), *q = malloc((size_t)n * sizeof *q);
    float *gp = malloc((size_t)n * sizeof *gp), *gq = malloc((size_t)n * sizeof *gq);
    float *saved = malloc((size_t)n * sizeof *saved);
    descent_optimizer *opt = NULL;
    if (!p || !q || !gp || !gq || !saved || descent_optimizer_create("rmsprop", NULL, &opt) != DESCENT_OK) {
        CHECK(0, "setup");
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        p[i] = q[i] = (float)(i % 17) * 0.125f;
        gp[i] = gq[i] = (float)(i % 5) - 2.0f;
    }
    float *params[2] = {p, q};
    const float *grads[2] = {gp, gq};
    const int64_t lengths[2] = {n, n};
    descent_set_num_threads(2);
    CHECK_STATUS(descent_optimizer_step(opt, 2, params, grads, lengths), DESCENT_OK, "a valid step on 2 x 200000");
    memcpy(saved, p, (size_t)n * sizeof *p);

    gq[150000] = NAN;
    gq[40000] = INFINITY;   /* the first one in index order */
    gq[199999] = -INFINITY;
    CHECK_ERROR(descent_optimizer_step(opt, 2, params, grads, lengths), DESCENT_ERR_NUMERIC,
                "descent_optimizer_step: grads[1] contains Inf at index 40000", "three bad values in grads[1]");
    gp[n - 1] = NAN;
    CHECK_ERROR(descent_optimizer_step(opt, 2, params, grads, lengths), DESCENT_ERR_NUMERIC,
                "descent_optimizer_step: grads[0] contains NaN at index 199999",
                "a bad value at the very end of grads[0] comes before those of grads[1]");
    CHECK(memcmp(saved, p, (size_t)n * sizeof *p) == 0 && get_value(opt, "step") == 1.0,
          "  ...params and step count untouched");
    descent_set_num_threads(0);
    descent_optimizer_free(opt);
    free(p);
    free(q);
    free(gp);
    free(gq);
    free(saved);
}

/* check_finite=0: the host skips the NaN/Inf scan, so a bad gradient reaches params and state
 * and the step succeeds; check_finite=1 (the default) refuses the same gradient. */
static void test_check_finite(void) {
    printf("\n-- check_finite: 0 skips the NaN/Inf scan, 1 (the default) refuses\n");
    descent_optimizer *on = NULL, *off = NULL;
    if (descent_optimizer_create("momentum", "lr=0.5", &on) != DESCENT_OK ||
        descent_optimizer_create("momentum", "lr=0.5,check_finite=0", &off) != DESCENT_OK) {
        CHECK(0, "create momentum: %s", descent_last_error());
        descent_optimizer_free(on);
        return;
    }
    CHECK(get_value(on, "check_finite") == 1.0, "check_finite defaults to 1");
    CHECK(get_value(off, "check_finite") == 0.0, "\"check_finite=0\" is read back as 0");

    float p[3] = {1, 2, 3}, q[3] = {1, 2, 3};
    const float g[3] = {1, NAN, 1};
    float *pp[1] = {p}, *qq[1] = {q};
    const float *gg[1] = {g};
    const int64_t lengths[1] = {3};
    CHECK_ERROR(descent_optimizer_step(on, 1, pp, gg, lengths), DESCENT_ERR_NUMERIC,
                "descent_optimizer_step: grads[0] contains NaN at index 1", "check_finite=1: a NaN gradient is refused");
    CHECK(p[0] == 1.0f && p[1] == 2.0f && p[2] == 3.0f && get_value(on, "step") == 0.0,
          "  ...params untouched, step count 0");

    CHECK_STATUS(descent_optimizer_step(off, 1, qq, gg, lengths), DESCENT_OK,
                 "check_finite=0: the same step succeeds");
    CHECK(isnan(q[1]) && q[0] == 0.5f && q[2] == 2.5f,
          "  ...the NaN reached the parameter, the others were updated: q = [0.5, nan, 2.5] (got [%g, %g, %g])",
          q[0], q[1], q[2]);
    CHECK(get_value(off, "step") == 1.0, "  ...step count 1");
    /* The NaN is in the velocity too: a finite gradient next keeps q[1] NaN. */
    const float g2[3] = {1, 1, 1};
    const float *gg2[1] = {g2};
    CHECK_STATUS(descent_optimizer_step(off, 1, qq, gg2, lengths), DESCENT_OK, "  ...a second, finite step");
    CHECK(isnan(q[1]) && !isnan(q[0]) && !isnan(q[2]) && get_value(off, "step") == 2.0,
          "  ...q[1] stays NaN (the state holds the NaN), step count 2");

    /* Inf goes through too: sgd moves the parameter to -Inf. */
    descent_optimizer *sgd = NULL;
    if (descent_optimizer_create("sgd", "lr=0.5, check_finite=0", &sgd) == DESCENT_OK) {
        float s[2] = {1, 2};
        const float gs[2] = {INFINITY, 2};
        float *sp[1] = {s};
        const float *sg[1] = {gs};
        const int64_t sl[1] = {2};
        CHECK_STATUS(descent_optimizer_step(sgd, 1, sp, sg, sl), DESCENT_OK, "sgd check_finite=0 with +Inf in grads");
        CHECK(isinf(s[0]) && s[0] < 0 && s[1] == 1.0f, "  ...s = [-inf, 1] (got [%g, %g])", s[0], s[1]);
        descent_optimizer_free(sgd);
    } else {
        CHECK(0, "create sgd check_finite=0: %s", descent_last_error());
    }

    /* set() switches the scan on and off between steps. */
    CHECK_STATUS(descent_optimizer_set(on, "check_finite", 0), DESCENT_OK, "set(check_finite, 0)");
    CHECK_STATUS(descent_optimizer_step(on, 1, pp, gg, lengths), DESCENT_OK, "  ...then the NaN step succeeds");
    CHECK(isnan(p[1]) && get_value(on, "step") == 1.0, "  ...p[1] is NaN, step count 1");
    CHECK_STATUS(descent_optimizer_set(on, "check_finite", 1), DESCENT_OK, "set(check_finite, 1)");
    float saved[3];
    memcpy(saved, p, sizeof saved);
    CHECK_ERROR(descent_optimizer_step(on, 1, pp, gg, lengths), DESCENT_ERR_NUMERIC,
                "descent_optimizer_step: grads[0] contains NaN at index 1", "  ...then it is refused again");
    CHECK(memcmp(saved, p, sizeof saved) == 0 && get_value(on, "step") == 1.0, "  ...params and step count untouched");
    CHECK_ERROR(descent_optimizer_set(on, "check_finite", 0.5), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_set: hyperparameter 'check_finite' = 0.5 is out of range {0, 1}",
                "set(check_finite, 0.5)");
    CHECK(get_value(on, "check_finite") == 1.0, "  ...check_finite is still 1");
    descent_optimizer_free(on);
    descent_optimizer_free(off);

    /* Large tensors (the threaded update path) with the scan off. */
    const int64_t n = 100000;
    float *big = calloc((size_t)n, sizeof *big), *gbig = calloc((size_t)n, sizeof *gbig);
    descent_optimizer *adam = NULL;
    if (big && gbig && descent_optimizer_create("adam", "check_finite=0", &adam) == DESCENT_OK) {
        gbig[n / 2] = NAN;
        float *bp[1] = {big};
        const float *bg[1] = {gbig};
        const int64_t bl[1] = {n};
        descent_set_num_threads(2);
        CHECK_STATUS(descent_optimizer_step(adam, 1, bp, bg, bl), DESCENT_OK,
                     "adam check_finite=0 on 100000 elements with a NaN, 2 threads");
        int others_zero = 1;
        for (int64_t i = 0; i < n; i++) if (i != n / 2 && big[i] != 0.0f) others_zero = 0;
        CHECK(isnan(big[n / 2]) && others_zero, "  ...only the NaN's element became NaN");
        descent_set_num_threads(0);
    } else {
        CHECK(0, "setup of the large check_finite=0 case: %s", descent_last_error());
    }
    descent_optimizer_free(adam);
    free(big);
    free(gbig);
}

/* ---- names, describe, plugin paths --------------------------------------------------------*/

static void test_other_errors(void) {
    printf("\n-- descent_optimizer_names / describe\n");
    int64_t needed = -1;
    char buf[16];
    CHECK_ERROR(descent_optimizer_names(buf, -1, &needed), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_names: cap is -1: must be >= 0", "names with cap -1");
    CHECK_ERROR(descent_optimizer_names(NULL, 5, &needed), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_names: buf is NULL but cap is 5", "names with buf NULL and cap 5");
    CHECK_ERROR(descent_optimizer_names(NULL, 0, NULL), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_names: buf and needed are both NULL", "names(NULL, 0, NULL)");
    CHECK_ERROR(descent_optimizer_describe(NULL, buf, sizeof buf, &needed), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_describe: name is NULL", "describe(NULL)");
    CHECK_ERROR(descent_optimizer_describe("nope", buf, sizeof buf, &needed), DESCENT_ERR_NOT_FOUND,
                sfmt("descent_optimizer_describe: unknown optimizer 'nope'; known: " KNOWN FOLDERS, searched_folders()),
                "describe an unknown optimizer");
    CHECK_ERROR(descent_optimizer_describe("adam", buf, -3, &needed), DESCENT_ERR_INVALID_ARGUMENT,
                "descent_optimizer_describe: cap is -3: must be >= 0", "describe with cap -3");

    printf("\n-- descent_plugin_load / load_dir: bad paths\n");
    CHECK_ERROR(descent_plugin_load(NULL), DESCENT_ERR_INVALID_ARGUMENT, "descent_plugin_load: path is NULL",
                "plugin_load(NULL)");
    CHECK_ERROR(descent_plugin_load(""), DESCENT_ERR_INVALID_ARGUMENT, "descent_plugin_load: path is empty",
                "plugin_load(\"\")");
    CHECK_ERROR(descent_plugin_load("/nonexistent/dir/lion.so"), DESCENT_ERR_NOT_FOUND,
                "descent_plugin_load: no such file: /nonexistent/dir/lion.so", "plugin_load of a missing file");
    CHECK_ERROR(descent_plugin_load_dir(NULL), DESCENT_ERR_INVALID_ARGUMENT, "descent_plugin_load_dir: dir is NULL",
                "plugin_load_dir(NULL)");
    CHECK_ERROR(descent_plugin_load_dir(""), DESCENT_ERR_INVALID_ARGUMENT, "descent_plugin_load_dir: directory is empty",
                "plugin_load_dir(\"\")");
    CHECK_ERROR(descent_plugin_load_dir("/nonexistent/dir"), DESCENT_ERR_NOT_FOUND,
                "descent_plugin_load_dir: cannot open directory '/nonexistent/dir': No such file or directory",
                "plugin_load_dir of a missing folder");

    /* A file that is not a shared library at all. dlerror()'s wording is glibc's, so only the
     * library's own part of the message is compared. */
    char path[] = "/tmp/descent_test_garbage_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) {
        const char junk[] = "this is not an ELF file\n";
        if (write(fd, junk, sizeof junk - 1) < 0) perror("write");
        close(fd);
        int32_t status = descent_plugin_load(path);
        char prefix[128];
        snprintf(prefix, sizeof prefix, "descent_plugin_load: cannot load '%s': ", path);
        CHECK(status == DESCENT_ERR_PLUGIN && strncmp(descent_last_error(), prefix, strlen(prefix)) == 0,
              "plugin_load of a text file -> DESCENT_ERR_PLUGIN \"%s<dlerror>\" (got %s \"%s\")", prefix,
              descent_status_name(status), descent_last_error());
        unlink(path);
    }
    char *names = names_string();
    CHECK(names && strcmp(names, "sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw") == 0,
          "after all these failures only the built-ins are registered (\"%s\")", names ? names : "(NULL)");
    free(names);
}

int main(void) {
    /* The messages list the known optimizers: keep plugins from the environment out. */
    unsetenv("DESCENT_PLUGIN_PATH");
    printf("test_errors: bad input gets a clear error and changes nothing\n");
    test_rig_control();
    test_create_errors();
    test_set_get_errors();
    test_step_errors();
    test_first_step_failure();
    test_parallel_scan();
    test_check_finite();
    test_other_errors();
    return check_summary();
}
