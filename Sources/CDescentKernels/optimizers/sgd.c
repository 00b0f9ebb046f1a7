/*
 * sgd.c -- stochastic gradient descent: p -= lr*g.
 */
#include "builtin_optimizer.h"

enum { SGD_LR };
static const descent_hparam_desc sgd_hparams[] = { LR(0.01) };

static int32_t sgd_step(const descent_step_context *ctx, float *restrict p, const float *restrict g,
                        float *const *state, int64_t n) {
    (void)state;
    const float lr = HP(SGD_LR);
    for (int64_t i = 0; i < n; i++) p[i] -= lr * g[i];
    return OK;
}

const descent_optimizer_desc dk_sgd = OPTIMIZER("sgd", "p -= lr*g", sgd_hparams, 0, NULL, sgd_step);
