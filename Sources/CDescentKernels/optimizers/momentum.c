/*
 * momentum.c -- momentum: v = momentum*v - lr*g; p += v.
 */
#include "builtin_optimizer.h"

const descent_hparam_desc dk_momentum_hparams[2] = {
    LR(0.01), UNIT_OPEN("momentum", 0.9, "velocity decay, in [0, 1)"),
};

static int32_t momentum_step(const descent_step_context *ctx, float *restrict p,
                             const float *restrict g, float *const *state, int64_t n) {
    const float lr = HP(MOM_LR), mu = HP(MOM_MOMENTUM);
    float *restrict v = state[0];
    for (int64_t i = 0; i < n; i++) {
        float vi = mu * v[i] - lr * g[i];
        v[i] = vi;
        p[i] += vi;
    }
    return OK;
}

const descent_optimizer_desc dk_momentum = OPTIMIZER(
    "momentum", "v = momentum*v - lr*g; p += v", dk_momentum_hparams, 1, NULL, momentum_step);
