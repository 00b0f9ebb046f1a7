/*
 * adagrad.c -- AdaGrad: h += g^2; p -= lr*g/(sqrt(h)+eps).
 */
#include "builtin_optimizer.h"

enum { ADAGRAD_LR, ADAGRAD_EPS };
static const descent_hparam_desc adagrad_hparams[] = { LR(0.01), EPS(1e-7) };

static int32_t adagrad_step(const descent_step_context *ctx, float *restrict p,
                            const float *restrict g, float *const *state, int64_t n) {
    const float lr = HP(ADAGRAD_LR), eps = HP(ADAGRAD_EPS);
    float *restrict h = state[0];
    for (int64_t i = 0; i < n; i++) {
        float hi = h[i] + g[i] * g[i];
        h[i] = hi;
        p[i] -= lr * g[i] / (sqrtf(hi) + eps);
    }
    return OK;
}

const descent_optimizer_desc dk_adagrad = OPTIMIZER(
    "adagrad", "h += g^2; p -= lr*g/(sqrt(h)+eps)", adagrad_hparams, 1, NULL, adagrad_step);
