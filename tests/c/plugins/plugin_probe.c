/*
 * plugin_probe.c -- test fixture: a valid plugin that lets a test observe what the host does.
 *
 * It is built as ABI 1.5 (a newer minor than the host's 1.0) and with descriptor structs larger
 * than the host's, as a plugin built against a later, appended-to header would be: the host
 * must load it, stride over its hyperparameter table by the plugin's struct_size, and ignore
 * the fields it does not know.
 *
 *   probe_sgd   p -= lr*g, with no weight_decay of its own: the host adds L2 (g + wd*p)
 *   probe_ctx   shows the step context: prepare() writes scalars[0] = 100*t and
 *               scalars[1] = k + j; step() does s += 1 (its one state buffer) and then
 *               p = scalars[0] + scalars[1] + s/1000, so p reveals t, the hyperparameters,
 *               that prepare ran, and that the state persists (and starts at zero).
 */
#include <math.h>
#include <stdint.h>

#include "descent_plugin.h"

/* What a future header might append to descent_hparam_desc. */
typedef struct probe_hparam {
    descent_hparam_desc base;
    double future_field;
} probe_hparam;

/* ... and to descent_optimizer_desc. */
typedef struct probe_desc {
    descent_optimizer_desc base;
    void *future_pointer;
    uint64_t future_flags;
} probe_desc;

#define PSIZE sizeof(probe_hparam)

static const probe_hparam sgd_hparams[] = {
    {{PSIZE, DESCENT_HPARAM_MIN_EXCLUSIVE, "lr", "learning rate", 0.01, 0.0, HUGE_VAL}, 123.0},
};
static const probe_hparam ctx_hparams[] = {
    {{PSIZE, 0, "k", "added to the parameter", 1.0, 0.0, 10.0}, 456.0},
    {{PSIZE, 0, "j", "also added", 0.0, -5.0, 5.0}, 789.0},
};

static int32_t sgd_step(const descent_step_context *ctx, float *p, const float *g,
                        float *const *state, int64_t n) {
    (void)state;
    const float lr = (float)ctx->hparams[0];
    for (int64_t i = 0; i < n; i++) p[i] -= lr * g[i];
    return DESCENT_PLUGIN_OK;
}

static int32_t ctx_prepare(const descent_step_context *ctx, double *scalars) {
    scalars[0] = 100.0 * (double)ctx->step;
    scalars[1] = ctx->hparams[0] + ctx->hparams[1];
    return DESCENT_PLUGIN_OK;
}

static int32_t ctx_step(const descent_step_context *ctx, float *p, const float *g,
                        float *const *state, int64_t n) {
    (void)g;
    float *s = state[0];
    for (int64_t i = 0; i < n; i++) {
        s[i] += 1.0f;
        p[i] = (float)(ctx->scalars[0] + ctx->scalars[1]) + s[i] / 1000.0f;
    }
    return DESCENT_PLUGIN_OK;
}

/* The host sees only .base, through pointers to it; the struct sizes say there is more. */
static const probe_desc sgd_desc = {
    {sizeof(probe_desc), DESCENT_OPTIMIZER_INFALLIBLE, "probe_sgd", "p -= lr*g (host adds L2)",
     1, 0, &sgd_hparams[0].base, NULL, sgd_step},
    NULL, 0,
};
static const probe_desc ctx_desc = {
    {sizeof(probe_desc), DESCENT_OPTIMIZER_INFALLIBLE, "probe_ctx", "p = 100*t + k + j + s/1000",
     2, 1, &ctx_hparams[0].base, ctx_prepare, ctx_step},
    NULL, 0,
};
static const descent_optimizer_desc *const optimizers[] = {&sgd_desc.base, &ctx_desc.base};

/* A descent_plugin from a later minor version, with a field appended. */
typedef struct probe_plugin {
    descent_plugin base;
    const char *future_text;
} probe_plugin;

static const probe_plugin plugin = {
    {(1u << 16) | 5u /* ABI 1.5 */, sizeof(probe_plugin), "probe", "1.0.0", 2, 0, optimizers},
    "ignored by a 1.0 host",
};

DESCENT_PLUGIN_EXPORT const descent_plugin *descent_plugin_entry(const descent_host *host) {
    if (DESCENT_PLUGIN_ABI_MAJOR_OF(host->abi_version) != DESCENT_PLUGIN_ABI_MAJOR) return NULL;
    if (host->log) host->log(1, "probe: loaded (a test fixture)");
    return &plugin.base;
}
