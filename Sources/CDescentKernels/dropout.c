/*
 * dropout.c -- inverted dropout. Training keeps each unit with probability 1-ratio and scales
 * kept ones by 1/(1-ratio), so evaluation is the identity. mask holds 0 or the scale; backward
 * is dx = dy * mask.
 */
#include "descent_kernels.h"

void dk_dropout_forward(const float *restrict x, float *restrict y, float *restrict mask, int64_t n,
                        float ratio, dk_rng *rng) {
    const float scale = 1.0f / (1.0f - ratio);
    for (int64_t i = 0; i < n; i++) {
        float keep = dk_rng_uniform(rng) >= ratio ? scale : 0.0f;
        mask[i] = keep;
        y[i] = x[i] * keep;
    }
}

void dk_multiply(const float *restrict a, const float *restrict b, float *restrict out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}
