/*
 * batchnorm.c -- batch normalisation per feature over a batch [rows][cols].
 *
 * Training: per feature c, mean and biased variance over the batch,
 *   xhat = (x - mean) * inv_std,  inv_std = 1/sqrt(var + eps),  y = gamma*xhat + beta.
 * Evaluation uses the running averages instead. Backward (with N = rows):
 *   dbeta = sum dy,  dgamma = sum dy*xhat,
 *   dx = gamma*inv_std/N * (N*dy - dbeta - xhat*dgamma).
 */
#include <math.h>
#include <string.h>

#include "descent_kernels.h"

void dk_batchnorm_forward_train(const float *restrict x, int64_t rows, int64_t cols,
                                const float *restrict gamma, const float *restrict beta, float eps,
                                float *restrict mean, float *restrict var, float *restrict inv_std,
                                float *restrict xhat, float *restrict y) {
    const float inv_n = 1.0f / (float)rows;
    dk_column_sums(x, rows, cols, mean);
    for (int64_t c = 0; c < cols; c++) mean[c] *= inv_n;
    memset(var, 0, (size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict row = x + r * cols;
        for (int64_t c = 0; c < cols; c++) {
            float d = row[c] - mean[c];
            var[c] += d * d;
        }
    }
    for (int64_t c = 0; c < cols; c++) {
        var[c] *= inv_n;
        inv_std[c] = 1.0f / sqrtf(var[c] + eps);
    }
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

/* Columns per block of the dx pass: the per-column factors of one block live on the stack. */
enum { DK_BN_BLOCK = 256 };

void dk_batchnorm_backward(const float *restrict dy, const float *restrict xhat,
                           const float *restrict inv_std, const float *restrict gamma, int64_t rows,
                           int64_t cols, float *restrict dgamma, float *restrict dbeta,
                           float *restrict dx) {
    /* dbeta and dgamma in one pass over dy: each sum still adds the rows in order from 0, so
     * the bits are those of two separate passes. */
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
    /* gamma*inv_std/N depends on the column only: computed once per column, not once per
     * element (it held a division in the inner loop). Same operations in the same order, so
     * the same bits. */
    const float n = (float)rows;
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
