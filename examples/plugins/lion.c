/*
Lion, as a Descent optimizer plugin.

Lion ("EvoLved Sign Momentum") is from Chen et al. 2023, "Symbolic Discovery of Optimization
Algorithms" (arXiv:2302.06675). It keeps one buffer per parameter, the momentum m, and moves
every parameter by exactly lr per step in the direction of the sign of an interpolation between
m and the current gradient g:

    c = beta1 * m + (1 - beta1) * g        // the update direction
    p = p - lr * (sign(c) + wd * p)        // sign(0) = 0; wd is decoupled weight decay
    m = beta2 * m + (1 - beta2) * g        // momentum, with a slower decay than c uses

Because the update is a sign, its size does not depend on the gradient's scale: the paper
suggests a learning rate 3-10x smaller than AdamW's and a weight decay 3-10x larger.

This file is a complete plugin: it includes descent_plugin.h and nothing else of Descent, and
it does not link libdescent. Build it, then load it from any host:

    cc -std=c11 -O2 -fPIC -shared -I include examples/plugins/lion.c -o lion.so
    descent_plugin_load("./lion.so");                 // or put it in DESCENT_PLUGIN_PATH
    descent_optimizer_create("lion", "lr=1e-4,weight_decay=0.1", &opt);

What the host does for us (see descent_plugin.h): it parses and range-checks the
hyperparameters against the table below, allocates the state buffer m (zeroed) for every
tensor, checks gradients for NaN/Inf, and calls lion_step() on chunks of each tensor, from
several threads when tensors are large. It also would add L2 weight decay to the gradient,
but Lion declares its own "weight_decay", so the host leaves the gradient alone and the decay
is the decoupled one of the paper.
*/
#include <math.h>   // HUGE_VAL only (a constant: no libm needed)
#include <stdint.h>

#include "descent_plugin.h"

// ----------------------------------------------------------------------------
// hyperparameters: the order of this table is the order of ctx->hparams[]

enum { LION_LR, LION_BETA1, LION_BETA2, LION_WEIGHT_DECAY, LION_NUM_HPARAMS };

static const descent_hparam_desc lion_hparams[LION_NUM_HPARAMS] = {
    // struct_size, flags, name, help, default, min, max
    {sizeof(descent_hparam_desc), DESCENT_HPARAM_MIN_EXCLUSIVE, "lr",
     "learning rate: every parameter moves by lr per step (3-10x smaller than AdamW's)",
     1e-4, 0.0, HUGE_VAL},
    {sizeof(descent_hparam_desc), DESCENT_HPARAM_MAX_EXCLUSIVE, "beta1",
     "interpolation between momentum and gradient for the update direction, in [0, 1)",
     0.9, 0.0, 1.0},
    {sizeof(descent_hparam_desc), DESCENT_HPARAM_MAX_EXCLUSIVE, "beta2",
     "decay of the momentum, in [0, 1)",
     0.99, 0.0, 1.0},
    {sizeof(descent_hparam_desc), 0, "weight_decay",
     "decoupled weight decay: p -= lr*weight_decay*p (3-10x larger than AdamW's)",
     0.0, 0.0, HUGE_VAL},
};

// ----------------------------------------------------------------------------
// the update

static inline float sign_of(float x) {
    // sign(0) = 0, as in the paper's reference implementation (torch.sign)
    return (float)(x > 0.0f) - (float)(x < 0.0f);
}

// Updates param[0..n) in place. The host calls this on disjoint chunks, possibly from several
// threads at once, so it only touches the elements it is given and keeps no global state.
static int32_t lion_step(const descent_step_context *ctx, float *param, const float *grad,
                         float *const *state, int64_t n) {
    // Hyperparameters arrive as doubles. 1 - beta is formed in double before rounding to float:
    // in float, 1.0f - 0.99f would be off by 1e-6 relative (0.99f is not 0.99).
    const float lr = (float)ctx->hparams[LION_LR];
    const float beta1 = (float)ctx->hparams[LION_BETA1];
    const float one_minus_beta1 = (float)(1.0 - ctx->hparams[LION_BETA1]);
    const float beta2 = (float)ctx->hparams[LION_BETA2];
    const float one_minus_beta2 = (float)(1.0 - ctx->hparams[LION_BETA2]);
    const float wd = (float)ctx->hparams[LION_WEIGHT_DECAY];
    float *m = state[0];
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        float c = beta1 * m[i] + one_minus_beta1 * g;       // update direction
        param[i] = param[i] - lr * (sign_of(c) + wd * param[i]);
        m[i] = beta2 * m[i] + one_minus_beta2 * g;          // momentum, after the update
    }
    return DESCENT_PLUGIN_OK;
}

// ----------------------------------------------------------------------------
// the descriptors

static const descent_optimizer_desc lion_desc = {
    .struct_size = sizeof(descent_optimizer_desc),
    // lion_step cannot fail, so the host needs no rollback copy of params and state
    .flags = DESCENT_OPTIMIZER_INFALLIBLE,
    .name = "lion",
    .description = "Lion (Chen et al. 2023): c = beta1*m + (1-beta1)*g; "
                   "p -= lr*(sign(c) + weight_decay*p); m = beta2*m + (1-beta2)*g",
    .hparam_count = LION_NUM_HPARAMS,
    .state_count = 1,   // m
    .hparams = lion_hparams,
    .prepare = NULL,    // nothing is constant per step beyond the hyperparameters
    .step = lion_step,
};

static const descent_optimizer_desc *const lion_optimizers[] = {&lion_desc};

static const descent_plugin lion_plugin = {
    .abi_version = DESCENT_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(descent_plugin),
    .name = "lion",
    .version = "1.0.0",
    .optimizer_count = 1,
    .optimizers = lion_optimizers,
};

// The one symbol the host looks up. It is called once, under the host's registry lock.
DESCENT_PLUGIN_EXPORT const descent_plugin *descent_plugin_entry(const descent_host *host) {
    // A host of another major ABI version lays its structs out differently: refuse politely.
    // (The host also checks our abi_version; this is the plugin's half of the handshake.)
    if (host == NULL || DESCENT_PLUGIN_ABI_MAJOR_OF(host->abi_version) != DESCENT_PLUGIN_ABI_MAJOR) {
        if (host != NULL && host->struct_size >= sizeof(descent_host) && host->log != NULL)
            host->log(3, "lion: this plugin was built for plugin ABI major version 1");
        return NULL;
    }
    return &lion_plugin;
}
