/*
 * builtin_optimizer.h -- what the built-in optimizers' files share: the plugin ABI's structs
 * (the host registers the built-ins exactly like a loaded plugin), shorthands for their
 * hyperparameter tables, and the descriptor of each (builtin_optimizers.c lists them).
 *
 * Every step() is one fused pass over memory: each element of param, grad and state is read
 * once and written at most once. Constants that depend only on the step (bias corrections)
 * come from prepare() through ctx->scalars, computed once per step in double precision.
 * Formulas: the book's forms, written above each step() and in each optimizer's description
 * (adam's eps_hat=0 and adamw are PyTorch's). Symbols: p param, g grad, t the 1-based step.
 */
#ifndef DK_BUILTIN_OPTIMIZER_H
#define DK_BUILTIN_OPTIMIZER_H

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

/* A built-in's descriptor: every built-in step() is infallible. */
#define COUNT(a) (uint32_t)(sizeof(a) / sizeof((a)[0]))
#define OPTIMIZER(nm, text, table, states, prep, fn) \
    { sizeof(descent_optimizer_desc), DESCENT_OPTIMIZER_INFALLIBLE, (nm), (text), \
      COUNT(table), (states), (table), (prep), (fn) }

/* momentum and nesterov share a hyperparameter table (momentum.c). */
enum { MOM_LR, MOM_MOMENTUM };
extern const descent_hparam_desc dk_momentum_hparams[2];

extern const descent_optimizer_desc dk_sgd, dk_momentum, dk_nesterov, dk_adagrad, dk_rmsprop, dk_adam,
    dk_adamw;

#endif
