/*
 * adam_element.h -- Adam's update of one element (or of eight side by side), written once so
 * that adam_step (builtin_optimizers.c) and the batch-1 step that fuses it with the making of
 * the gradient (single_sample.c) compute the same bits. Internal to the kernels.
 *
 *   m += (1-beta1)*(g-m);  v += (1-beta2)*(g^2-v);
 *   p  = decay*p - step_size*m / (sqrt(v)*inv_sqrt_bc2 + eps)
 *
 * The multiply-adds are written as explicit fused multiply-adds (one rounding each), so the
 * result does not depend on what the compiler would contract, and a scalar loop, its
 * vectorisation and an explicit 8-float vector all agree. Fused, the loop also issues fewer
 * instructions: with every operation rounded on its own, the batch-1 Adam step was 4-8 us
 * slower (paired runs; the machine's busy phases take issue slots away).
 */
#ifndef DK_ADAM_ELEMENT_H
#define DK_ADAM_ELEMENT_H

#include "descent_kernels.h"

/* T is float or an 8-float vector type; SQRT and FMA the matching square root and fused
 * multiply-add (FMA(a, b, c) = a*b + c, rounded once). g is read; m, v, p are lvalues
 * updated in place; k holds the constants (dk_adam_constants or the same fields as T). */
#define DK_ADAM_ELEMENT(T, SQRT, FMA, g, m, v, p, k)                                  \
    do {                                                                              \
        const T dk_g_ = (g);                                                          \
        (m) = FMA((k).one_minus_b1, dk_g_ - (m), (m));                                \
        (v) = FMA((k).one_minus_b2, FMA(dk_g_, dk_g_, -(v)), (v));                    \
        const T dk_q_ = (k).step_size * (m) / FMA(SQRT(v), (k).inv_sqrt_bc2, (k).eps); \
        (p) = FMA((k).decay, (p), -dk_q_);                                            \
    } while (0)

#endif
