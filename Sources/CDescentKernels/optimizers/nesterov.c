/*
 * nesterov.c -- Nesterov's accelerated gradient, in the book's form.
 */
#include "builtin_optimizer.h"

/* p += momentum^2*v_old - (1+momentum)*lr*g; v = momentum*v_old - lr*g.
 * Uses the old velocity, which makes it equal PyTorch's nesterov=True at constant lr. */
static int32_t nesterov_step(const descent_step_context *ctx, float *restrict p,
                             const float *restrict g, float *const *state, int64_t n) {
    const float lr = HP(MOM_LR), mu = HP(MOM_MOMENTUM);
    const float mu2 = mu * mu, lr_g = (1.0f + mu) * lr;
    float *restrict v = state[0];
    for (int64_t i = 0; i < n; i++) {
        float vi = v[i];
        p[i] += mu2 * vi - lr_g * g[i];
        v[i] = mu * vi - lr * g[i];
    }
    return OK;
}

const descent_optimizer_desc dk_nesterov = OPTIMIZER(
    "nesterov", "p += momentum^2*v - (1+momentum)*lr*g; v = momentum*v - lr*g",
    dk_momentum_hparams, 1, NULL, nesterov_step);
