/*
 * batchnorm.c -- batch normalisation per feature over a batch [rows][cols], in stages, so that
 * a batch split into shards (shards.c) is normalised by the statistics of the whole batch.
 *
 * Training, N the batch's rows: mean = sum x / N, var = sum (x - mean)^2 / N (biased),
 *   xhat = (x - mean) * inv_std,  inv_std = 1/sqrt(var + eps),  y = gamma*xhat + beta.
 * Each shard sums its own rows (dk_column_sums, then dk_batchnorm_deviation_sums around the
 * whole batch's mean); dk_sum_blocks adds the shards' sums in shard order and divides by N.
 * Evaluation uses the running averages instead. Backward:
 *   dbeta = sum dy,  dgamma = sum dy*xhat   (each shard's rows: dk_batchnorm_parameter_sums),
 *   dx = gamma*inv_std/N * (N*dy - dbeta - xhat*dgamma)   (dk_batchnorm_input_gradient).
 */
#include <math.h>
#include <string.h>

#include "descent_kernels.h"

/* sums[c] = sum over the rows of (x[r][c] - mean[c])^2. */
void dk_batchnorm_deviation_sums(const float *restrict x, int64_t rows, int64_t cols, const float *restrict mean,
                                 float *restrict sums) {
    memset(sums, 0, (size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict row = x + r * cols;
        for (int64_t c = 0; c < cols; c++) {
            float d = row[c] - mean[c];
            sums[c] += d * d;
        }
    }
}

/* inv_std[c] = 1/sqrt(var[c] + eps). */
void dk_batchnorm_inverse_std(const float *restrict var, int64_t cols, float eps, float *restrict inv_std) {
    for (int64_t c = 0; c < cols; c++) inv_std[c] = 1.0f / sqrtf(var[c] + eps);
}

/* xhat and y for the rows, from the whole batch's mean and inv_std. */
void dk_batchnorm_normalize(const float *restrict x, int64_t rows, int64_t cols, const float *restrict mean,
                            const float *restrict inv_std, const float *restrict gamma,
                            const float *restrict beta, float *restrict xhat, float *restrict y) {
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict row = x + r * cols;
        float *restrict xh = xhat + r * cols;
        float *restrict out = y + r * cols;
        for (int64_t c = 0; c < cols; c++) {
            xh[c] = (row[c] - mean[c]) * inv_std[c];
            out[c] = gamma[c] * xh[c] + beta[c];
        }
    }
}

/* running = momentum*running + (1-momentum)*batch, for mean and variance. */
void dk_batchnorm_update_running(const float *restrict mean, const float *restrict var, int64_t cols,
                                 float momentum, float *restrict running_mean,
                                 float *restrict running_var) {
    for (int64_t c = 0; c < cols; c++) {
        running_mean[c] = momentum * running_mean[c] + (1.0f - momentum) * mean[c];
        running_var[c] = momentum * running_var[c] + (1.0f - momentum) * var[c];
    }
}

void dk_batchnorm_forward_eval(const float *restrict x, int64_t rows, int64_t cols,
                               const float *restrict gamma, const float *restrict beta, float eps,
                               const float *restrict running_mean, const float *restrict running_var,
                               float *restrict y) {
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict row = x + r * cols;
        float *restrict out = y + r * cols;
        for (int64_t c = 0; c < cols; c++)
            out[c] = gamma[c] * (row[c] - running_mean[c]) / sqrtf(running_var[c] + eps) + beta[c];
    }
}

/* dbeta = sum dy and dgamma = sum dy*xhat over the rows, in one pass over dy. */
void dk_batchnorm_parameter_sums(const float *restrict dy, const float *restrict xhat, int64_t rows, int64_t cols,
                                 float *restrict dgamma, float *restrict dbeta) {
    memset(dbeta, 0, (size_t)cols * sizeof(float));
    memset(dgamma, 0, (size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict d = dy + r * cols;
        const float *restrict xh = xhat + r * cols;
        for (int64_t c = 0; c < cols; c++) {
            dbeta[c] += d[c];
            dgamma[c] += d[c] * xh[c];
        }
    }
}

/* Columns per block of the dx pass: the per-column factors of one block live on the stack. */
enum { DK_BN_BLOCK = 256 };

/* dx for the rows, from the whole batch's dgamma and dbeta; n is the batch's rows. */
void dk_batchnorm_input_gradient(const float *restrict dy, const float *restrict xhat, const float *restrict inv_std,
                                 const float *restrict gamma, int64_t rows, int64_t cols, float n,
                                 const float *restrict dgamma, const float *restrict dbeta, float *restrict dx) {
    /* gamma*inv_std/N depends on the column only: computed once per column. */
    float factor[DK_BN_BLOCK];
    for (int64_t c0 = 0; c0 < cols; c0 += DK_BN_BLOCK) {
        const int64_t width = cols - c0 < DK_BN_BLOCK ? cols - c0 : DK_BN_BLOCK;
        for (int64_t c = 0; c < width; c++) factor[c] = gamma[c0 + c] * inv_std[c0 + c] / n;
        const float *restrict db = dbeta + c0;
        const float *restrict dg = dgamma + c0;
        for (int64_t r = 0; r < rows; r++) {
            const float *restrict d = dy + r * cols + c0;
            const float *restrict xh = xhat + r * cols + c0;
            float *restrict out = dx + r * cols + c0;
            for (int64_t c = 0; c < width; c++) out[c] = factor[c] * (n * d[c] - db[c] - xh[c] * dg[c]);
        }
    }
}
