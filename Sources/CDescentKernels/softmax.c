/*
 * softmax.c -- the output layer: softmax with cross-entropy loss, and the predicted class.
 *
 * For each row: p = softmax(scores), loss = log(sum exp(scores)) - scores[label] (the exact
 * -log p[label], stable for any scores). Returns the sum of the rows' losses in double. With
 * dscores != NULL also writes the gradient of the mean loss over a batch of which these rows
 * are a part: (p - onehot(label)) * inv_batch, inv_batch = 1 / (the batch's rows). */
#include <math.h>

#include "descent_kernels.h"

double dk_softmax_cross_entropy(const float *restrict scores, const int32_t *restrict labels,
                                int64_t rows, int64_t classes, float inv_batch, float *restrict probs,
                                float *restrict dscores) {
    double total = 0.0;
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
                for (int64_t c = 0; c < classes; c++) d[c] = p[c] * inv_batch;
                d[label] -= inv_batch;
            }
        }
    }
    return total;
}

/* How many rows have their largest value (the first, on ties) at their label. */
int64_t dk_count_correct(const float *restrict x, const int32_t *restrict labels, int64_t rows, int64_t cols) {
    int64_t correct = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict row = x + r * cols;
        int64_t best = 0;
        for (int64_t c = 1; c < cols; c++) if (row[c] > row[best]) best = c;
        correct += best == labels[r];
    }
    return correct;
}
