/*
 * plugin_abi2.c -- test fixture: a plugin built for plugin ABI 2.0, a major version this host
 * does not speak. Everything else is valid; the host must refuse it with a message naming both
 * versions ("2.0" and the host's "1.0") and register nothing (not even "abi2_sgd").
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

static const descent_optimizer_desc desc = {
    sizeof(descent_optimizer_desc), DESCENT_OPTIMIZER_INFALLIBLE, "abi2_sgd", "p -= lr*g",
    1, 0, hparams, NULL, step,
};
static const descent_optimizer_desc *const optimizers[] = {&desc};

static const descent_plugin plugin = {
    (2u << 16) | 0u,   /* ABI 2.0 */
    sizeof(descent_plugin), "abi2", "1.0.0", 1, 0, optimizers,
};

DESCENT_PLUGIN_EXPORT const descent_plugin *descent_plugin_entry(const descent_host *host) {
    (void)host;   /* a real 2.x plugin would check; this one pretends the host is 2.x */
    return &plugin;
}
