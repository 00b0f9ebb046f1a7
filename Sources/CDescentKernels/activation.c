/*
 * activation.c -- the hidden layers' activation functions, elementwise over [rows][width], by
 * dk_activation_* code: forward y = f(x); backward dx = dy * f'(x), written with y.
 */
#include <math.h>

#include "descent_kernels.h"

void dk_activation_forward(int32_t function, const float *restrict x, float *restrict y, int64_t n) {
    if (function == dk_activation_sigmoid)
        for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
    else if (function == dk_activation_tanh)
        for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
    else   /* ReLU */
        for (int64_t i = 0; i < n; i++) y[i] = x[i] <= 0.0f ? 0.0f : x[i];
}

void dk_activation_backward(int32_t function, const float *restrict y, const float *restrict dy,
                            float *restrict dx, int64_t n) {
    if (function == dk_activation_sigmoid)
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
    else if (function == dk_activation_tanh)
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
    else   /* ReLU */
        for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
