/*
 * rmsprop.c -- RMSProp: h = decay*h + (1-decay)*g^2; p -= lr*g/(sqrt(h)+eps).
 */
#include "builtin_optimizer.h"

enum { RMS_LR, RMS_DECAY, RMS_EPS };
static const descent_hparam_desc rmsprop_hparams[] = {
    LR(0.01), UNIT_OPEN("decay", 0.99, "decay of the squared-gradient average, in [0, 1)"), EPS(1e-7),
};

static int32_t rmsprop_step(const descent_step_context *ctx, float *restrict p,
                            const float *restrict g, float *const *state, int64_t n) {
    const float lr = HP(RMS_LR), decay = HP(RMS_DECAY), eps = HP(RMS_EPS);
    const float keep = (float)(1.0 - ctx->hparams[RMS_DECAY]);   /* in double: 1 - (float)0.99 is off by 1e-6 */
    float *restrict h = state[0];
    for (int64_t i = 0; i < n; i++) {
        float hi = decay * h[i] + keep * g[i] * g[i];
        h[i] = hi;
        p[i] -= lr * g[i] / (sqrtf(hi) + eps);
    }
    return OK;
}

const descent_optimizer_desc dk_rmsprop = OPTIMIZER(
    "rmsprop", "h = decay*h + (1-decay)*g^2; p -= lr*g/(sqrt(h)+eps)", rmsprop_hparams, 1, NULL,
    rmsprop_step);
