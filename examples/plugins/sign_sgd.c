/* sign_sgd.c -- the README's minimal plugin: signSGD (Bernstein et al. 2018), p -= lr*sign(g). */
#include <math.h>
#include "descent_plugin.h"

static const descent_hparam_desc sign_sgd_hparams[] = {
    {sizeof(descent_hparam_desc), DESCENT_HPARAM_MIN_EXCLUSIVE, "lr", "learning rate",
     0.01, 0.0, HUGE_VAL},
};

static int32_t sign_sgd_step(const descent_step_context *ctx, float *p, const float *g,
                             float *const *state, int64_t n) {
    (void)state;
    const float lr = (float)ctx->hparams[0];
    for (int64_t i = 0; i < n; i++) p[i] -= lr * (float)((g[i] > 0) - (g[i] < 0));
    return DESCENT_PLUGIN_OK;
}

static const descent_optimizer_desc sign_sgd = {
    sizeof(descent_optimizer_desc), DESCENT_OPTIMIZER_INFALLIBLE, "sign_sgd", "p -= lr*sign(g)",
    1, 0, sign_sgd_hparams, NULL, sign_sgd_step,
};
static const descent_optimizer_desc *const optimizers[] = {&sign_sgd};
static const descent_plugin plugin = {
    DESCENT_PLUGIN_ABI_VERSION, sizeof(descent_plugin), "sign_sgd", "1.0.0", 1, 0, optimizers,
};

DESCENT_PLUGIN_EXPORT const descent_plugin *descent_plugin_entry(const descent_host *host) {
    return DESCENT_PLUGIN_ABI_MAJOR_OF(host->abi_version) == DESCENT_PLUGIN_ABI_MAJOR ? &plugin : NULL;
}
