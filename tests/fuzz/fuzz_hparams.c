/*
 * fuzz_hparams.c -- libFuzzer target for the optimizer API driven by strings and numbers:
 * descent_optimizer_create's hyperparameter list, then a sequence of set / get / step / reset.
 *
 * Input: a selector byte (low bits: a built-in optimizer, or a name read from the input up to
 * '\n'; bit 7: hparams NULL), the hparams text up to '\n', then operations, each an opcode byte
 * and its operands: a key (a byte choosing a known name, or >= 0xF0: text up to ';'), a double,
 * tensor counts and lengths, gradient floats (NaN and Inf included).
 *
 * Checked on every input (a violation aborts): a failure leaves *out NULL and names the
 * function; a successful set reads back exactly; a failed set leaves the value as it was; a
 * failed step leaves parameters and the step count as they were; a successful step counts one
 * more; reset brings the count to 0.
 */
#include "fuzz_input.h"   /* first: it defines _GNU_SOURCE */

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "descent.h"

static const char *const OPTIMIZERS[] = {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"};
enum { NOPT = sizeof OPTIMIZERS / sizeof OPTIMIZERS[0] };
static const char *const KEYS[] = {"lr", "momentum", "beta1", "beta2", "eps", "eps_hat", "decay",
                                   "weight_decay", "check_finite", "step"};
enum { NKEYS = sizeof KEYS / sizeof KEYS[0], MAX_OPS = 64, MAX_TENSORS = 3, MAX_LENGTH = 40 };

/* A key: one of KEYS, or text from the input. The caller frees it. */
static char *read_key(fuzz_input *in) {
    uint8_t k = fuzz_u8(in);
    if (k >= 0xF0) return fuzz_string(in, ';');
    return strdup(KEYS[k % NKEYS]);
}

static double step_count(descent_optimizer *opt) {
    double t = -1;
    FUZZ_REQUIRE(descent_optimizer_get(opt, "step", &t) == DESCENT_OK, "get step");
    return t;
}

static void op_set(descent_optimizer *opt, fuzz_input *in) {
    char *key = read_key(in);
    double value = fuzz_double(in), before = NAN, after = NAN;
    int had = descent_optimizer_get(opt, key, &before) == DESCENT_OK;
    int32_t status = descent_optimizer_set(opt, key, value);
    if (status == DESCENT_OK) {
        FUZZ_REQUIRE(isfinite(value), "set %s = %g accepted", key, value);
        FUZZ_REQUIRE(descent_optimizer_get(opt, key, &after) == DESCENT_OK && after == value,
                     "set %s = %.17g reads back %.17g", key, value, after);
    } else {
        FUZZ_REQUIRE(fuzz_error_names(descent_last_error(), "descent_optimizer_set"), "error \"%s\"", descent_last_error());
        if (had) {
            FUZZ_REQUIRE(descent_optimizer_get(opt, key, &after) == DESCENT_OK, "get %s after a failed set", key);
            FUZZ_REQUIRE(memcmp(&after, &before, sizeof after) == 0, "failed set changed %s", key);
        }
    }
    free(key);
}

static void op_get(descent_optimizer *opt, fuzz_input *in) {
    char *key = read_key(in);
    double value = NAN;
    int32_t status = descent_optimizer_get(opt, key, &value);
    if (status == DESCENT_OK) FUZZ_REQUIRE(isfinite(value), "%s = %g", key, value);
    else FUZZ_REQUIRE(fuzz_error_names(descent_last_error(), "descent_optimizer_get"), "error \"%s\"", descent_last_error());
    free(key);
}

static void op_step(descent_optimizer *opt, fuzz_input *in) {
    int64_t count = 1 + fuzz_u8(in) % MAX_TENSORS, lengths[MAX_TENSORS];
    float *params[MAX_TENSORS], *copies[MAX_TENSORS];
    const float *grads[MAX_TENSORS];
    for (int64_t i = 0; i < count; i++) {
        lengths[i] = fuzz_u8(in) % (MAX_LENGTH + 1);
        size_t n = (size_t)lengths[i] + 1;   /* never a zero-size allocation */
        params[i] = malloc(n * sizeof(float));
        copies[i] = malloc(n * sizeof(float));
        float *g = malloc(n * sizeof(float));
        for (int64_t j = 0; j < lengths[i]; j++) {
            params[i][j] = (float)(j % 9) * 0.25f - 1.0f;
            g[j] = fuzz_float(in);
        }
        memcpy(copies[i], params[i], n * sizeof(float));
        grads[i] = g;
    }
    double before = step_count(opt);
    int32_t status = descent_optimizer_step(opt, count, params, grads, lengths);
    double after = step_count(opt);
    if (status == DESCENT_OK) {
        FUZZ_REQUIRE(after == before + 1, "step count %g -> %g", before, after);
    } else {
        FUZZ_REQUIRE(fuzz_error_names(descent_last_error(), "descent_optimizer_step"), "error \"%s\"", descent_last_error());
        FUZZ_REQUIRE(after == before, "failed step changed the count %g -> %g", before, after);
        for (int64_t i = 0; i < count; i++)
            FUZZ_REQUIRE(memcmp(params[i], copies[i], (size_t)lengths[i] * sizeof(float)) == 0,
                         "failed step (%s) changed params[%lld]", descent_last_error(), (long long)i);
    }
    for (int64_t i = 0; i < count; i++) {
        free(params[i]);
        free(copies[i]);
        free((void *)grads[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_input in = {data, size};
    uint8_t selector = fuzz_u8(&in);
    unsigned choice = (selector & 0x7f) % (NOPT + 1);
    char *name = choice < NOPT ? strdup(OPTIMIZERS[choice]) : fuzz_string(&in, '\n');
    char *hparams = fuzz_string(&in, '\n');
    descent_optimizer *opt = (descent_optimizer *)1;
    int32_t status = descent_optimizer_create(name, (selector & 0x80) ? NULL : hparams, &opt);
    if (status != DESCENT_OK) {
        FUZZ_REQUIRE(opt == NULL, "out not cleared on error");
        FUZZ_REQUIRE(fuzz_error_names(descent_last_error(), "descent_optimizer_create"), "error \"%s\"", descent_last_error());
    } else {
        for (int op = 0; op < MAX_OPS && in.size > 0; op++) {
            switch (fuzz_u8(&in) % 4) {
            case 0: op_set(opt, &in); break;
            case 1: op_get(opt, &in); break;
            case 2: op_step(opt, &in); break;
            default:
                FUZZ_REQUIRE(descent_optimizer_reset(opt) == DESCENT_OK && step_count(opt) == 0, "reset");
            }
        }
        descent_optimizer_free(opt);
    }
    free(name);
    free(hparams);
    return 0;
}
