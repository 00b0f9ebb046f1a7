/*
 * affine.c -- the affine layer's math, once, for every batch size: y = x W + b forward;
 * dW = x^T dy (+ lambda W), db = column sums of dy, dx = dy W^T backward. Shapes: x [rows][in],
 * W [in][out] row-major, b [out], y and dy [rows][out], dx [rows][in].
 *
 * A batch of rows > 1 goes to BLAS (sgemm). A single sample is a matrix-vector product, which
 * sgemm does poorly (a small-matrix kernel and its packing for one row), so it is done by the
 * vector kernels below, per range [r0, r1) of W's rows. The network's layers call the
 * whole-layer forms (dk_affine_forward, dk_affine_backward); the batch-1 schedule
 * (batch1_schedule.c) calls the same per-range kernels on each thread's row blocks. Both take
 * the forward sum in the same DK_ROW_BLOCKS blocks, added in block order, so a sample gives the
 * same bits either way and for any thread count.
 *
 * The kernels are written with 8-float vectors (GCC/Clang vector extensions: AVX on x86-64-v3,
 * two NEON registers elsewhere) because the compiler does not vectorise these loops by itself
 * without reordering float additions, and the order must stay fixed (determinism).
 */
#include <string.h>

#include "descent_kernels.h"

/* ---- one sample, a range of W's rows ---------------------------------------------------------*/

typedef float f32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));

static f32x8 load8(const float *p) { f32x8 v; memcpy(&v, p, sizeof v); return v; }
static void store8(float *p, f32x8 v) { memcpy(p, &v, sizeof v); }
static f32x8 splat8(float x) { return (f32x8){x, x, x, x, x, x, x, x}; }
typedef float f32x4 __attribute__((vector_size(16)));
static f32x4 load4(const float *p) { f32x4 v; memcpy(&v, p, sizeof v); return v; }
static void store4(float *p, f32x4 v) { memcpy(p, &v, sizeof v); }
static f32x4 splat4(float x) { return (f32x4){x, x, x, x}; }
static float sum8(f32x8 v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }

/* ps[out] = sum over i in [r0, r1) of a[i] * W[i][:], eight rows per pass so ps is loaded and
 * stored an eighth as often (measured: 1-1.4 us per step faster than four); the additions keep
 * row order, so the grouping does not change the result. */
void dk_affine_partial_one(const float *restrict a, const float *restrict w, int32_t out, int32_t r0,
                         int32_t r1, float *restrict ps) {
    enum { ROWS = 8 };
    for (int32_t j = 0; j < out; j++) ps[j] = 0.0f;
    const int32_t out8 = out & ~7;
    int32_t i = r0;
    for (; i + ROWS <= r1; i += ROWS) {
        const float *restrict w0 = w + (int64_t)i * out;
        f32x8 ak[ROWS];
        for (int k = 0; k < ROWS; k++) ak[k] = splat8(a[i + k]);
        for (int32_t j = 0; j < out8; j += 8) {
            f32x8 s = load8(ps + j);
            for (int k = 0; k < ROWS; k++) s += ak[k] * load8(w0 + (int64_t)k * out + j);
            store8(ps + j, s);
        }
        int32_t j = out8;
        if (j + 4 <= out) {   /* e.g. the last 4 of 100: as one 4-float vector */
            f32x4 s = load4(ps + j);
            for (int k = 0; k < ROWS; k++) s += splat4(a[i + k]) * load4(w0 + (int64_t)k * out + j);
            store4(ps + j, s);
            j += 4;
        }
        for (; j < out; j++) {
            float s = ps[j];
            for (int k = 0; k < ROWS; k++) s += a[i + k] * w0[(int64_t)k * out + j];
            ps[j] = s;
        }
    }
    for (; i < r1; i++) {
        const float ai = a[i];
        const float *restrict wi = w + (int64_t)i * out;
        for (int32_t j = 0; j < out; j++) ps[j] += ai * wi[j];
    }
}

/* The dot products w[r] . d over n of `rows` rows (at most 4, `stride` floats apart). Each row
 * has two 8-lane accumulators over blocks of 16 columns, then the rest, so its order of
 * additions depends on n alone, whatever `rows` is; four rows at once are four independent
 * chains, which hide the latency of the additions. */
static inline __attribute__((always_inline)) void
dots(int rows, const float *restrict w, int64_t stride, const float *restrict d, int32_t n, float *restrict out) {
    f32x8 even[4], odd[4];
    for (int r = 0; r < rows; r++) even[r] = odd[r] = splat8(0.0f);
    int32_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const f32x8 d0 = load8(d + j), d1 = load8(d + j + 8);
        for (int r = 0; r < rows; r++) {
            even[r] += load8(w + r * stride + j) * d0;
            odd[r] += load8(w + r * stride + j + 8) * d1;
        }
    }
    for (int r = 0; r < rows; r++) {
        float tail = 0.0f;
        for (int32_t t = j; t < n; t++) tail += w[r * stride + t] * d[t];
        out[r] = sum8(even[r] + odd[r]) + tail;
    }
}

/* out[i] = W[i][:] . d for rows [r0, r1). */
void dk_affine_input_gradient_one(const float *restrict w, const float *restrict d, int32_t n, int32_t r0, int32_t r1,
                     float *restrict out) {
    int32_t i = r0;
    for (; i + 4 <= r1; i += 4) dots(4, w + (int64_t)i * n, n, d, n, out + i);
    for (; i < r1; i++) dots(1, w + (int64_t)i * n, n, d, n, out + i);
}

/* 1 when some value in x[0, n) is NaN or Inf. */
static int any_nonfinite(const float *restrict x, int64_t n) { return dk_max_abs_or_nonfinite(x, n) < 0.0f; }

/* One element of dW: a_i * delta_j (+ lambda * w_ij), rounded after each operation exactly as
 * in the vector lanes. Contraction into a fused multiply-add is off here and in
 * store_gradient: an element is computed in a scalar head or tail or in a vector lane
 * depending on where a thread's rows start, and both must give the same bits. */
static float gradient_element(float ai, float dj, float wij, float lambda) {
#pragma STDC FP_CONTRACT OFF
    float g = ai * dj;
    if (lambda > 0.0f) g += lambda * wij;
    return g;
}

/* Stores eight products a_i * delta_j (+ lambda * w), flagging NaN or Inf lanes in *bad. */
static inline __attribute__((always_inline)) void
store_gradient(f32x8 g, const float *w, float lambda, float *restrict out, i32x8 *bad) {
#pragma STDC FP_CONTRACT OFF
    const i32x8 exponent = {0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000,
                            0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000};
    if (lambda > 0.0f) g += splat8(lambda) * load8(w);
    store8(out, g);
    i32x8 bits;
    memcpy(&bits, &g, sizeof bits);
    *bad |= (bits & exponent) == exponent;
}

/* Rows [r0, r1) of dW = a^T delta (+ lambda W), written to rows [0, (r1 - r0) * out) (w and rows
 * start at row r0); 1 when one of them is NaN or Inf, checked in the same pass as the stores.
 *
 * The rows are contiguous, so they are written as one run of 8-float vectors aligned to the
 * output. A row-by-row loop would start every other row of a fan_out like 100 off the 32-byte
 * grid and split half its stores across cache lines (measured: 2.2x slower for fan_out 100
 * than for 104). A vector that straddles two rows takes its first k lanes from the end of one
 * row and the rest from the start of the next: a from a blend, delta from `wrap` (the last 8
 * and the first 8 values of delta side by side). Every lane is the same product as its
 * scalar form (gradient_element). Needs out >= 8, so a vector spans at most two rows. */
static inline __attribute__((always_inline)) int
weight_gradient_run(const float *restrict a, const float *restrict delta, const float *w, int32_t out,
                    int32_t r0, int32_t r1, float lambda, float *restrict rows) {
    const i32x8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
    float wrap[16];
    memcpy(wrap, delta + out - 8, 8 * sizeof(float));
    memcpy(wrap + 8, delta, 8 * sizeof(float));
    const int64_t n = (int64_t)(r1 - r0) * out;
    int32_t i = r0, c = 0;   /* row and column of rows[f] */
    int64_t f = 0;
    int bad = 0;
    /* Up to 7 elements until rows + f sits on the 32-byte grid. */
    const int64_t head = (int64_t)((32 - (uintptr_t)rows % 32) % 32 / sizeof(float));
    for (; f < head && f < n; f++) {
        rows[f] = gradient_element(a[i], delta[c], w[f], lambda);
        bad |= any_nonfinite(rows + f, 1);
        if (++c == out) { c = 0; i++; }
    }
    i32x8 bad8 = {0};
    while (f + 8 <= n) {
        /* The whole vectors left in row i, then the one that straddles into row i + 1. */
        int64_t whole = (out - c) / 8;
        if (whole > (n - f) / 8) whole = (n - f) / 8;
        const f32x8 a8 = splat8(a[i]);
        for (int64_t t = 0; t < whole; t++) {
            const int64_t at = f + 8 * t;
            store_gradient(a8 * load8(delta + c + 8 * t), w + at, lambda, rows + at, &bad8);
        }
        f += 8 * whole;
        c += (int32_t)(8 * whole);
        if (c == out) { c = 0; i++; continue; }
        if (f + 8 > n) break;
        const int32_t k = out - c;   /* lanes [0, k) end row i, lanes [k, 8) start row i + 1 */
        const i32x8 first = lane < k;
        const f32x8 a_next = splat8(a[i + 1]);
        i32x8 this_bits, next_bits;
        memcpy(&this_bits, &a8, sizeof this_bits);
        memcpy(&next_bits, &a_next, sizeof next_bits);
        const i32x8 blend = (this_bits & first) | (next_bits & ~first);
        f32x8 a_lanes;
        memcpy(&a_lanes, &blend, sizeof a_lanes);
        store_gradient(a_lanes * load8(wrap + 8 - k), w + f, lambda, rows + f, &bad8);
        f += 8;
        c = 8 - k;
        i++;
    }
    for (; f < n; f++) {
        rows[f] = gradient_element(a[i], delta[c], w[f], lambda);
        bad |= any_nonfinite(rows + f, 1);
        if (++c == out) { c = 0; i++; }
    }
    for (int k = 0; k < 8; k++) bad |= bad8[k] != 0;
    return bad;
}

/* Rows [r0, r1) of dW, as weight_gradient_run; row by row when rows are shorter than a
 * vector. */
static inline __attribute__((always_inline)) int
weight_gradient_rows(const float *restrict a, const float *restrict delta, const float *w, int32_t out,
                     int32_t r0, int32_t r1, float lambda, float *restrict rows) {
    if (out >= 8) return weight_gradient_run(a, delta, w, out, r0, r1, lambda, rows);
    int bad = 0;
    for (int32_t i = r0; i < r1; i++) {
        const int64_t row = (int64_t)(i - r0) * out;
        for (int32_t j = 0; j < out; j++) rows[row + j] = gradient_element(a[i], delta[j], w[row + j], lambda);
        bad |= any_nonfinite(rows + row, out);
    }
    return bad;
}

/* The two forms below inline weight_gradient_rows twice, once with lambda the constant 0 (no
 * network weight decay, the usual case), so that loop has no test of lambda at all. */

/* The gradient rows; 1 when one of them is NaN or Inf. */
int32_t dk_affine_weight_gradient_one(const float *restrict a, const float *restrict delta, const float *w, int32_t out,
                         int32_t r0, int32_t r1, float lambda, float *restrict rows) {
    if (lambda > 0.0f) return weight_gradient_rows(a, delta, w, out, r0, r1, lambda, rows);
    return weight_gradient_rows(a, delta, w, out, r0, r1, 0.0f, rows);
}

/* z[j0, j1) = b + the DK_ROW_BLOCKS partial sums [k][out], added in block order. */
void dk_affine_combine_one(const float *restrict bias, const float *restrict partials, int32_t out, int32_t j0,
                           int32_t j1, float *restrict z) {
    for (int32_t j = j0; j < j1; j++) {
        float s = bias[j];
        for (int32_t k = 0; k < DK_ROW_BLOCKS; k++) s += partials[(int64_t)k * out + j];
        z[j] = s;
    }
}

/* ---- the whole layer, any batch ---------------------------------------------------------------*/

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
static void scaled_copy(const float *restrict x, float scale, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = scale * x[i];
}

/* y += scale * x (weight decay's lambda*W, added once after a data-parallel job's all-reduce). */
void dk_add_scaled(const float *restrict x, float scale, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += scale * x[i];
}

/* sum of x^2 in double (weight decay's penalty 0.5*lambda*sum W^2). */
double dk_sum_squares(const float *restrict x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}


void dk_affine_forward(const float *x, int64_t rows, const float *w, const float *b, int32_t in, int32_t out,
                       float *partials, float *y) {
    if (rows == 1) {
        for (int32_t k = 0; k < DK_ROW_BLOCKS; k++)
            dk_affine_partial_one(x, w, out, dk_row_block_begin(in, k), dk_row_block_begin(in, k + 1),
                                  partials + (int64_t)k * out);
        dk_affine_combine_one(b, partials, out, 0, out, y);
        return;
    }
    /* y = b (broadcast), then y += x W */
    dk_broadcast_rows(y, b, rows, out);
    dk_sgemm(0, 0, (int32_t)rows, out, in, 1.0f, x, in, w, out, 1.0f, y, out);
}

void dk_affine_backward(const float *x, const float *dy, int64_t rows, const float *w, int32_t in, int32_t out,
                        float lambda, float *dw, float *db, float *dx) {
    if (rows == 1) {
        dk_affine_weight_gradient_one(x, dy, w, out, 0, in, lambda, dw);
        memcpy(db, dy, (size_t)out * sizeof(float));
        if (dx) dk_affine_input_gradient_one(w, dy, out, 0, in, dx);
        return;
    }
    /* dW = lambda W (written first), then dW += x^T dy */
    float beta = 0.0f;
    if (lambda > 0.0f) {
        scaled_copy(w, lambda, dw, (int64_t)in * out);
        beta = 1.0f;
    }
    dk_sgemm(1, 0, in, out, (int32_t)rows, 1.0f, x, in, dy, out, beta, dw, out);
    dk_column_sums(dy, rows, out, db);
    if (dx) dk_sgemm(0, 1, (int32_t)rows, in, out, 1.0f, dy, out, w, out, 0.0f, dx, in);
}
