/*
 * layer_kernels.c -- the elementwise and per-feature loops of the network layers.
 *
 * Activations are row-major matrices [rows = batch][cols = features]. These loops are small
 * (a batch of 128 x 100 features is 12,800 floats, ~5 us) and run on the calling thread:
 * at this size an OpenMP fork costs more than it saves. Matrix products are in blas.c.
 */
#include <math.h>
#include <string.h>

#include "descent_kernels.h"

/* ---- affine helpers ----------------------------------------------------------------------*/

/* y[r][c] = bias[c]: the starting value the sgemm then accumulates onto (beta = 1). */
void dk_broadcast_rows(float *restrict y, const float *restrict bias, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) memcpy(y + r * cols, bias, (size_t)cols * sizeof(float));
}

/* sums[c] = sum over r of x[r][c] (the bias gradient). Rows outer so the inner loop vectorises. */
void dk_column_sums(const float *restrict x, int64_t rows, int64_t cols, float *restrict sums) {
    memset(sums, 0, (size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict row = x + r * cols;
        for (int64_t c = 0; c < cols; c++) sums[c] += row[c];
    }
}

/* y = scale * x (weight decay's lambda*W, written into dW before the sgemm adds X^T dY). */
void dk_scale(const float *restrict x, float scale, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = scale * x[i];
}

/* sum of x^2 in double (weight decay's penalty 0.5*lambda*sum W^2). */
double dk_sum_squares(const float *restrict x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

/* ---- activations: forward y = f(x); backward dx = dy * f'(x), written with y ------------*/

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

/* ---- dropout (inverted) --------------------------------------------------------------------
 * Training keeps each unit with probability 1-ratio and scales kept ones by 1/(1-ratio), so
 * evaluation is the identity. mask holds 0 or the scale; backward is dx = dy * mask. */

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

/* ---- batch normalisation -------------------------------------------------------------------
 * Training: per feature c, mean and biased variance over the batch,
 *   xhat = (x - mean) * inv_std,  inv_std = 1/sqrt(var + eps),  y = gamma*xhat + beta.
 * Evaluation uses the running averages instead. Backward (with N = rows):
 *   dbeta = sum dy,  dgamma = sum dy*xhat,
 *   dx = gamma*inv_std/N * (N*dy - dbeta - xhat*dgamma). */

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

/* ---- softmax with cross-entropy ------------------------------------------------------------
 * For each row: p = softmax(scores), loss = log(sum exp(scores)) - scores[label] (the exact
 * -log p[label], stable for any scores). Returns the mean loss over rows in double. With
 * dscores != NULL also writes the gradient of the mean loss: (p - onehot(label)) / rows. */
double dk_softmax_cross_entropy(const float *restrict scores, const int32_t *restrict labels,
                                int64_t rows, int64_t classes, float *restrict probs,
                                float *restrict dscores) {
    double total = 0.0;
    const float inv_rows = 1.0f / (float)rows;
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict s = scores + r * classes;
        float *restrict p = probs + r * classes;
        float max = s[0];
        for (int64_t c = 1; c < classes; c++) max = s[c] > max ? s[c] : max;
        float sum = 0.0f;
        for (int64_t c = 0; c < classes; c++) {
            p[c] = expf(s[c] - max);
            sum += p[c];
        }
        const float inv_sum = 1.0f / sum;
        for (int64_t c = 0; c < classes; c++) p[c] *= inv_sum;
        if (labels) {
            int32_t label = labels[r];
            total += (double)logf(sum) + (double)max - (double)s[label];
            if (dscores) {
                float *restrict d = dscores + r * classes;
                for (int64_t c = 0; c < classes; c++) d[c] = p[c] * inv_rows;
                d[label] -= inv_rows;
            }
        }
    }
    return total / (double)rows;
}

/* Index of the largest value in each row (first one on ties). */
void dk_argmax_rows(const float *restrict x, int64_t rows, int64_t cols, int32_t *restrict out) {
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict row = x + r * cols;
        int64_t best = 0;
        for (int64_t c = 1; c < cols; c++) if (row[c] > row[best]) best = c;
        out[r] = (int32_t)best;
    }
}
