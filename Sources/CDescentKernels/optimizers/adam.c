/*
 * adam.c -- Adam (the book's form, or PyTorch's with eps_hat=0) and AdamW.
 */
#include "builtin_optimizer.h"

/*
 * m += (1-beta1)*(g-m); v += (1-beta2)*(g^2-v); then one of two equivalent-in-exact-arithmetic
 * forms, written as p -= step_size * m / (sqrt(v)*inv_sqrt_bc2 + eps):
 *   book (eps_hat=1):    step_size = lr*sqrt(1-beta2^t)/(1-beta1^t), inv_sqrt_bc2 = 1
 *   PyTorch (eps_hat=0): step_size = lr/(1-beta1^t),                 inv_sqrt_bc2 = 1/sqrt(1-beta2^t)
 * adamw first decays p by (1 - lr*weight_decay), then takes the PyTorch form. */
enum { ADAM_LR, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, ADAM_EPS_HAT };
enum { ADAMW_LR, ADAMW_BETA1, ADAMW_BETA2, ADAMW_EPS, ADAMW_WEIGHT_DECAY };
enum { SCALAR_STEP_SIZE, SCALAR_INV_SQRT_BC2, SCALAR_DECAY };

#define BETAS                                                                   \
    UNIT_OPEN("beta1", 0.9, "decay of the first-moment average, in [0, 1)"),    \
    UNIT_OPEN("beta2", 0.999, "decay of the second-moment average, in [0, 1)")

static const descent_hparam_desc adam_hparams[] = {
    LR(0.001), BETAS, EPS(1e-7),
    HPARAM("eps_hat", 1.0, 0.0, 1.0, DESCENT_HPARAM_BOOLEAN,
           "1: book form, eps added to sqrt(v) before bias correction; 0: PyTorch form"),
};
static const descent_hparam_desc adamw_hparams[] = {
    LR(0.001), BETAS, EPS(1e-8),
    HPARAM("weight_decay", 0.01, 0.0, HUGE_VAL, 0, "decoupled decay: p -= lr*weight_decay*p"),
};

/* Both tables keep lr, beta1 and beta2 at the same positions (as adam_step relies on too). */
static int32_t prepare(const descent_step_context *ctx, int book_form, double decay, double *scalars) {
    const double lr = ctx->hparams[ADAM_LR], t = (double)ctx->step;
    const double bc1 = 1.0 - pow(ctx->hparams[ADAM_BETA1], t), bc2 = 1.0 - pow(ctx->hparams[ADAM_BETA2], t);
    scalars[SCALAR_STEP_SIZE] = book_form ? lr * sqrt(bc2) / bc1 : lr / bc1;
    scalars[SCALAR_INV_SQRT_BC2] = book_form ? 1.0 : 1.0 / sqrt(bc2);
    scalars[SCALAR_DECAY] = decay;
    return OK;
}

static int32_t adam_prepare(const descent_step_context *ctx, double *scalars) {
    return prepare(ctx, ctx->hparams[ADAM_EPS_HAT] != 0.0, 1.0, scalars);
}

static int32_t adamw_prepare(const descent_step_context *ctx, double *scalars) {
    return prepare(ctx, 0, 1.0 - ctx->hparams[ADAMW_LR] * ctx->hparams[ADAMW_WEIGHT_DECAY], scalars);
}

/* Shared by adam and adamw: both tables keep beta1, beta2, eps at the same positions.
 * 1 - beta is taken in double, then rounded once: (float)0.999 is 0.99899995, so
 * 1 - (float)beta2 would be 1.3e-5 too small (PyTorch also takes 1 - beta in double).
 * The multiply-adds are explicit fused multiply-adds (one rounding each), so the result does
 * not depend on what the compiler contracts: the scalar loop and its vectorisation agree. */
static int32_t adam_step(const descent_step_context *ctx, float *restrict p, const float *restrict g,
                         float *const *state, int64_t n) {
    const float one_minus_b1 = (float)(1.0 - ctx->hparams[ADAM_BETA1]);
    const float one_minus_b2 = (float)(1.0 - ctx->hparams[ADAM_BETA2]);
    const float eps = HP(ADAM_EPS);
    const float step_size = (float)ctx->scalars[SCALAR_STEP_SIZE];
    const float inv_sqrt_bc2 = (float)ctx->scalars[SCALAR_INV_SQRT_BC2];
    const float decay = (float)ctx->scalars[SCALAR_DECAY];
    float *restrict m = state[0];
    float *restrict v = state[1];
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float mi = fmaf(one_minus_b1, gi - m[i], m[i]);            /* m += (1-beta1)*(g-m) */
        const float vi = fmaf(one_minus_b2, fmaf(gi, gi, -v[i]), v[i]);  /* v += (1-beta2)*(g^2-v) */
        m[i] = mi;
        v[i] = vi;
        p[i] = fmaf(decay, p[i], -(step_size * mi / fmaf(sqrtf(vi), inv_sqrt_bc2, eps)));
    }
    return OK;
}

const descent_optimizer_desc dk_adam = OPTIMIZER(
    "adam", "m += (1-beta1)(g-m); v += (1-beta2)(g^2-v); p -= lr*sqrt(1-beta2^t)/(1-beta1^t)*m/(sqrt(v)+eps)",
    adam_hparams, 2, adam_prepare, adam_step);
const descent_optimizer_desc dk_adamw = OPTIMIZER(
    "adamw", "p -= lr*weight_decay*p; then adam with PyTorch's bias correction (eps after it)",
    adamw_hparams, 2, adamw_prepare, adam_step);
