/*
 * adam_element.h -- Adam's update of one element (or of eight side by side), written once so
 * that adam_step (builtin_optimizers.c) and the batch-1 step that fuses it with the making of
 * the gradient (single_sample.c) compute the same bits. Internal to the kernels.
 *
 *   m += (1-beta1)*(g-m);  v += (1-beta2)*(g^2-v);
 *   p  = decay*p - step_size*m / (sqrt(v)*inv_sqrt_bc2 + eps)
 *
 * Every operation is rounded on its own: the expansions sit in blocks where contraction into
 * fused multiply-adds is off (DK_ADAM_ELEMENT opens one), so a scalar loop, the compiler's
 * vectorisation of it and an explicit 8-float vector all agree.
 */
#ifndef DK_ADAM_ELEMENT_H
#define DK_ADAM_ELEMENT_H

#include "descent_kernels.h"

/* T is float or an 8-float vector type; SQRT the matching square root. g is read; m, v, p are
 * lvalues updated in place; k is a dk_adam_constants. */
#define DK_ADAM_ELEMENT(T, SQRT, g, m, v, p, k)                                       \
    do {                                                                              \
        _Pragma("STDC FP_CONTRACT OFF")                                               \
        const T dk_g_ = (g);                                                          \
        (m) = (m) + (k).one_minus_b1 * (dk_g_ - (m));                                 \
        (v) = (v) + (k).one_minus_b2 * (dk_g_ * dk_g_ - (v));                         \
        (p) = (k).decay * (p) - (k).step_size * (m) / (SQRT(v) * (k).inv_sqrt_bc2 + (k).eps); \
    } while (0)

#endif
