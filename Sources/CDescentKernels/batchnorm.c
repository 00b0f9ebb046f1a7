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

void dk_batchnorm_backward(const float *restrict dy, const float *restrict xhat,
                           const float *restrict inv_std, const float *restrict gamma, int64_t rows,
                           int64_t cols, float *restrict dgamma, float *restrict dbeta,
                           float *restrict dx) {
    dk_column_sums(dy, rows, cols, dbeta);
    memset(dgamma, 0, (size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict d = dy + r * cols;
        const float *restrict xh = xhat + r * cols;
        for (int64_t c = 0; c < cols; c++) dgamma[c] += d[c] * xh[c];
    }
    const float n = (float)rows;
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict d = dy + r * cols;
        const float *restrict xh = xhat + r * cols;
        float *restrict out = dx + r * cols;
        for (int64_t c = 0; c < cols; c++)
            out[c] = gamma[c] * inv_std[c] / n * (n * d[c] - dbeta[c] - xh[c] * dgamma[c]);
    }
}
