/*
 * activation.c -- the hidden layers' activation functions, elementwise over [rows][width]:
 * forward y = f(x); backward dx = dy * f'(x), written with y (ReLU, sigmoid, tanh).
 */
#include <math.h>

#include "descent_kernels.h"

void dk_relu_forward(const float *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] <= 0.0f ? 0.0f : x[i];
}

void dk_relu_backward(const float *restrict y, const float *restrict dy, float *restrict dx, int64_t n) {
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void dk_sigmoid_forward(const float *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

void dk_sigmoid_backward(const float *restrict y, const float *restrict dy, float *restrict dx, int64_t n) {
    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

void dk_tanh_forward(const float *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

void dk_tanh_backward(const float *restrict y, const float *restrict dy, float *restrict dx, int64_t n) {
    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

/* One of the above by its dk_activation_* code. */
void dk_activation_forward(int32_t function, const float *x, float *y, int64_t n) {
    if (function == dk_activation_sigmoid) dk_sigmoid_forward(x, y, n);
    else if (function == dk_activation_tanh) dk_tanh_forward(x, y, n);
    else dk_relu_forward(x, y, n);
}

void dk_activation_backward(int32_t function, const float *y, const float *dy, float *dx, int64_t n) {
    if (function == dk_activation_sigmoid) dk_sigmoid_backward(y, dy, dx, n);
    else if (function == dk_activation_tanh) dk_tanh_backward(y, dy, dx, n);
    else dk_relu_backward(y, dy, dx, n);
}
