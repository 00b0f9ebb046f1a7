/*
 * plugin_collide.c -- test fixture: declares two optimizers, "collide_ok" (a fresh name) and
 * "adam" (taken by a built-in). Loading must fail with DESCENT_ERR_PLUGIN naming the collision,
 * and register neither optimizer: a library's optimizers are registered all or none.
 */
#include <math.h>
#include <stdint.h>

#include "descent_plugin.h"

static const descent_hparam_desc hparams[] = {
    {sizeof(descent_hparam_desc), DESCENT_HPARAM_MIN_EXCLUSIVE, "lr", "learning rate", 0.01, 0.0, HUGE_VAL},
};

static int32_t step(const descent_step_context *ctx, float *p, const float *g, float *const *state,
                    int64_t n) {
    (void)state;
    for (int64_t i = 0; i < n; i++) p[i] -= (float)ctx->hparams[0] * g[i];
    return DESCENT_PLUGIN_OK;
}

static const descent_optimizer_desc ok_desc = {
    sizeof(descent_optimizer_desc), DESCENT_OPTIMIZER_INFALLIBLE, "collide_ok", "p -= lr*g",
    1, 0, hparams, NULL, step,
};
static const descent_optimizer_desc adam_desc = {
    sizeof(descent_optimizer_desc), DESCENT_OPTIMIZER_INFALLIBLE, "adam", "not the real adam",
    1, 0, hparams, NULL, step,
};
static const descent_optimizer_desc *const optimizers[] = {&ok_desc, &adam_desc};

static const descent_plugin plugin = {
    DESCENT_PLUGIN_ABI_VERSION, sizeof(descent_plugin), "collide", "1.0.0", 2, 0, optimizers,
};

DESCENT_PLUGIN_EXPORT const descent_plugin *descent_plugin_entry(const descent_host *host) {
    (void)host;
    return &plugin;
}
