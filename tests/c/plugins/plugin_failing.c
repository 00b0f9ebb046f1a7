/*
 * plugin_failing.c -- test fixture: an optimizer whose step can fail on demand, to check that
 * the host rolls back parameters AND state when a plugin's step() returns an error.
 *
 * "failing" keeps one state buffer s (a running sum of gradients) and updates
 *     s += g;  p -= lr * s
 * It is not flagged DESCENT_OPTIMIZER_INFALLIBLE, so the host snapshots before each step.
 * Hyperparameters:
 *   lr                  learning rate
 *   fail_at             t at which step() fails (0 = never). It fails AFTER writing p and s of
 *                       the chunk it was given: the partial writes the host must undo.
 *   fail_prepare_at     t at which prepare() fails (0 = never), before anything is written
 *   silent              1: fail without calling report_error (the host says "no reason")
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "descent_plugin.h"

enum { LR, FAIL_AT, FAIL_PREPARE_AT, SILENT };

static const descent_hparam_desc hparams[] = {
    {sizeof(descent_hparam_desc), DESCENT_HPARAM_MIN_EXCLUSIVE, "lr", "learning rate", 0.1, 0.0, HUGE_VAL},
    {sizeof(descent_hparam_desc), 0, "fail_at", "step() fails at this t (0 = never)", 0.0, 0.0, HUGE_VAL},
    {sizeof(descent_hparam_desc), 0, "fail_prepare_at", "prepare() fails at this t (0 = never)", 0.0, 0.0, HUGE_VAL},
    {sizeof(descent_hparam_desc), DESCENT_HPARAM_BOOLEAN, "silent", "fail without a message", 0.0, 0.0, 1.0},
};

static int32_t prepare(const descent_step_context *ctx, double *scalars) {
    (void)scalars;
    if ((double)ctx->step == ctx->hparams[FAIL_PREPARE_AT]) {
        char message[128];
        snprintf(message, sizeof message, "failing: prepare asked to fail at step %lld",
                 (long long)ctx->step);
        if (ctx->hparams[SILENT] == 0.0) ctx->report_error(ctx, message);
        return DESCENT_PLUGIN_ERROR;
    }
    return DESCENT_PLUGIN_OK;
}

static int32_t step(const descent_step_context *ctx, float *p, const float *g, float *const *state,
                    int64_t n) {
    const float lr = (float)ctx->hparams[LR];
    float *s = state[0];
    for (int64_t i = 0; i < n; i++) {
        s[i] += g[i];
        p[i] -= lr * s[i];
    }
    if ((double)ctx->step == ctx->hparams[FAIL_AT]) {
        char message[128];
        snprintf(message, sizeof message, "failing: asked to fail at step %lld", (long long)ctx->step);
        if (ctx->hparams[SILENT] == 0.0) ctx->report_error(ctx, message);
        return DESCENT_PLUGIN_ERROR;
    }
    return DESCENT_PLUGIN_OK;
}

static const descent_optimizer_desc desc = {
    sizeof(descent_optimizer_desc), 0 /* fallible */, "failing", "s += g; p -= lr*s; fails on demand",
    4, 1, hparams, prepare, step,
};
static const descent_optimizer_desc *const optimizers[] = {&desc};

static const descent_plugin plugin = {
    DESCENT_PLUGIN_ABI_VERSION, sizeof(descent_plugin), "failing", "1.0.0", 1, 0, optimizers,
};

DESCENT_PLUGIN_EXPORT const descent_plugin *descent_plugin_entry(const descent_host *host) {
    if (DESCENT_PLUGIN_ABI_MAJOR_OF(host->abi_version) != DESCENT_PLUGIN_ABI_MAJOR) return NULL;
    return &plugin;
}
