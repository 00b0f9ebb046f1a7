/*
 * dropout.c -- inverted dropout. Training keeps each unit with probability 1-ratio and scales
 * kept ones by 1/(1-ratio), so evaluation is the identity. mask holds 0 or the scale; backward
 * is dx = dy * mask.
 *
 * Unit i of a training pass (i = row * width + column over the whole batch) is kept when
 * dk_rng_at(key, i) >= ratio, with one key drawn from the network's generator per layer and
 * pass: a mask depends on the seed and the unit's place in the batch, not on which thread or
 * shard computes it.
 */
#include "descent_kernels.h"

/* Units [first, first + n) of the pass keyed by key; x, y and mask point at unit first. */
void dk_dropout_forward(const float *restrict x, float *restrict y, float *restrict mask, int64_t first, int64_t n,
                        float ratio, uint64_t key) {
    const float scale = 1.0f / (1.0f - ratio);
    for (int64_t i = 0; i < n; i++) {
        float keep = dk_rng_at(key, (uint64_t)(first + i)) >= ratio ? scale : 0.0f;
        mask[i] = keep;
        y[i] = x[i] * keep;
    }
}

void dk_multiply(const float *restrict a, const float *restrict b, float *restrict out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}
