/*
 * builtin_optimizers.c -- the seven built-in optimizers, described with the plugin ABI's own
 * structs (the host registers them exactly like a loaded plugin).
 *
 * Every step() is one fused pass over memory: each element of param, grad and state is read
 * once and written at most once. Constants that depend only on the step (bias corrections)
 * come from prepare() through ctx->scalars, computed once per step in double precision.
 * Formulas: the book's forms, written above each step() and in each optimizer's description
 * (adam's eps_hat=0 and adamw are PyTorch's). Symbols below: p param, g grad, t the 1-based step.
 */
#include <math.h>

#include "descent_kernels.h"

#define OK DESCENT_PLUGIN_OK
#define HP(field) (float)ctx->hparams[field]

/* Hyperparameter table entries. */
#define HPARAM(nm, def, lo, hi, fl, text) \
    { sizeof(descent_hparam_desc), (fl), (nm), (text), (def), (lo), (hi) }
#define LR(def) HPARAM("lr", def, 0.0, HUGE_VAL, DESCENT_HPARAM_MIN_EXCLUSIVE, "learning rate")
#define UNIT_OPEN(nm, def, text) HPARAM(nm, def, 0.0, 1.0, DESCENT_HPARAM_MAX_EXCLUSIVE, text)
#define EPS(def) \
    HPARAM("eps", def, 0.0, HUGE_VAL, DESCENT_HPARAM_MIN_EXCLUSIVE, "added to the denominator for stability")

/* ---- sgd: p -= lr*g ------------------------------------------------------------------------*/
enum { SGD_LR };
static const descent_hparam_desc sgd_hparams[] = { LR(0.01) };

static int32_t sgd_step(const descent_step_context *ctx, float *restrict p, const float *restrict g,
                        float *const *state, int64_t n) {
    (void)state;
    const float lr = HP(SGD_LR);
    for (int64_t i = 0; i < n; i++) p[i] -= lr * g[i];
    return OK;
}

/* ---- momentum: v = momentum*v - lr*g; p += v ------------------------------------------------*/
enum { MOM_LR, MOM_MOMENTUM };
static const descent_hparam_desc momentum_hparams[] = {
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

/* ---- nesterov: p += momentum^2*v_old - (1+momentum)*lr*g; v = momentum*v_old - lr*g ---------
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

/* ---- adagrad: h += g^2; p -= lr*g/(sqrt(h)+eps) ---------------------------------------------*/
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

/* ---- rmsprop: h = decay*h + (1-decay)*g^2; p -= lr*g/(sqrt(h)+eps) ---------------------------*/
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

/* ---- adam and adamw ---------------------------------------------------------------------------
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

static void adam_corrections(const descent_step_context *ctx, double lr, double beta1,
                             double beta2, int book_form, double *scalars) {
    double t = (double)ctx->step;
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    scalars[SCALAR_STEP_SIZE] = book_form ? lr * sqrt(bc2) / bc1 : lr / bc1;
    scalars[SCALAR_INV_SQRT_BC2] = book_form ? 1.0 : 1.0 / sqrt(bc2);
}

static int32_t adam_prepare(const descent_step_context *ctx, double *scalars) {
    const double *h = ctx->hparams;
    adam_corrections(ctx, h[ADAM_LR], h[ADAM_BETA1], h[ADAM_BETA2], h[ADAM_EPS_HAT] != 0.0, scalars);
    scalars[SCALAR_DECAY] = 1.0;
    return OK;
}

static int32_t adamw_prepare(const descent_step_context *ctx, double *scalars) {
    const double *h = ctx->hparams;
    adam_corrections(ctx, h[ADAMW_LR], h[ADAMW_BETA1], h[ADAMW_BETA2], 0, scalars);
    scalars[SCALAR_DECAY] = 1.0 - h[ADAMW_LR] * h[ADAMW_WEIGHT_DECAY];
    return OK;
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

/* ---- the table -------------------------------------------------------------------------------*/
#define COUNT(a) (uint32_t)(sizeof(a) / sizeof((a)[0]))
#define OPTIMIZER(nm, text, table, states, prep, fn) \
    { sizeof(descent_optimizer_desc), DESCENT_OPTIMIZER_INFALLIBLE, (nm), (text), \
      COUNT(table), (states), (table), (prep), (fn) }

static const descent_optimizer_desc sgd = OPTIMIZER(
    "sgd", "p -= lr*g", sgd_hparams, 0, NULL, sgd_step);
static const descent_optimizer_desc momentum = OPTIMIZER(
    "momentum", "v = momentum*v - lr*g; p += v", momentum_hparams, 1, NULL, momentum_step);
static const descent_optimizer_desc nesterov = OPTIMIZER(
    "nesterov", "p += momentum^2*v - (1+momentum)*lr*g; v = momentum*v - lr*g",
    momentum_hparams, 1, NULL, nesterov_step);
static const descent_optimizer_desc adagrad = OPTIMIZER(
    "adagrad", "h += g^2; p -= lr*g/(sqrt(h)+eps)", adagrad_hparams, 1, NULL, adagrad_step);
static const descent_optimizer_desc rmsprop = OPTIMIZER(
    "rmsprop", "h = decay*h + (1-decay)*g^2; p -= lr*g/(sqrt(h)+eps)", rmsprop_hparams, 1, NULL,
    rmsprop_step);
static const descent_optimizer_desc adam = OPTIMIZER(
    "adam", "m += (1-beta1)(g-m); v += (1-beta2)(g^2-v); p -= lr*sqrt(1-beta2^t)/(1-beta1^t)*m/(sqrt(v)+eps)",
    adam_hparams, 2, adam_prepare, adam_step);
static const descent_optimizer_desc adamw = OPTIMIZER(
    "adamw", "p -= lr*weight_decay*p; then adam with PyTorch's bias correction (eps after it)",
    adamw_hparams, 2, adamw_prepare, adam_step);

static const descent_optimizer_desc *const builtin_optimizers[] = {
    &sgd, &momentum, &nesterov, &adagrad, &rmsprop, &adam, &adamw,
};

/* The built-in optimizers ship with the library and carry its version, which Package.swift defines
 * from Sources/Descent/Version.swift. "unknown" only where this file is compiled outside SwiftPM. */
#ifndef DESCENT_VERSION
#define DESCENT_VERSION "unknown"
#endif

static const descent_plugin builtin_plugin = {
    DESCENT_PLUGIN_ABI_VERSION, sizeof(descent_plugin), "built-in", DESCENT_VERSION,
    COUNT(builtin_optimizers), 0, builtin_optimizers,
};

const descent_plugin *dk_builtin_plugin(void) { return &builtin_plugin; }
