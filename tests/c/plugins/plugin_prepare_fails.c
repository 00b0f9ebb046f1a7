/*
 * plugin_prepare_fails.c -- test fixture: an optimizer flagged DESCENT_OPTIMIZER_INFALLIBLE
 * whose prepare() fails on demand, to check that a failing prepare() is reported and changes
 * nothing even where the host keeps no rollback copy (the network's one-pass batch-1 step).
 *
 * "prepare_fails" is plain SGD, p -= lr * g. Hyperparameters:
 *   lr                  learning rate
 *   fail_prepare_at     t at which prepare() fails (0 = never)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "descent_plugin.h"

enum { LR, FAIL_PREPARE_AT };

static const descent_hparam_desc hparams[] = {
    {sizeof(descent_hparam_desc), DESCENT_HPARAM_MIN_EXCLUSIVE, "lr", "learning rate", 0.1, 0.0, HUGE_VAL},
    {sizeof(descent_hparam_desc), 0, "fail_prepare_at", "prepare() fails at this t (0 = never)", 0.0, 0.0, HUGE_VAL},
};

static int32_t prepare(const descent_step_context *ctx, double *scalars) {
    (void)scalars;
    if ((double)ctx->step != ctx->hparams[FAIL_PREPARE_AT]) return DESCENT_PLUGIN_OK;
    char message[128];
    snprintf(message, sizeof message, "prepare_fails: asked to fail at step %lld", (long long)ctx->step);
    ctx->report_error(ctx, message);
    return DESCENT_PLUGIN_ERROR;
}

static int32_t step(const descent_step_context *ctx, float *p, const float *g, float *const *state,
                    int64_t n) {
    (void)state;
    const float lr = (float)ctx->hparams[LR];
    for (int64_t i = 0; i < n; i++) p[i] -= lr * g[i];
    return DESCENT_PLUGIN_OK;
}

static const descent_optimizer_desc desc = {
    sizeof(descent_optimizer_desc), DESCENT_OPTIMIZER_INFALLIBLE, "prepare_fails",
    "p -= lr*g; prepare() fails on demand", 2, 0, hparams, prepare, step,
};
static const descent_optimizer_desc *const optimizers[] = {&desc};

static const descent_plugin plugin = {
    DESCENT_PLUGIN_ABI_VERSION, sizeof(descent_plugin), "prepare_fails", "1.0.0", 1, 0, optimizers,
};

DESCENT_PLUGIN_EXPORT const descent_plugin *descent_plugin_entry(const descent_host *host) {
    if (DESCENT_PLUGIN_ABI_MAJOR_OF(host->abi_version) != DESCENT_PLUGIN_ABI_MAJOR) return NULL;
    return &plugin;
}
