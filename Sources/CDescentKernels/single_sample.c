/*
 * single_sample.c -- one training step of a plain MLP (affine + activation blocks, softmax
 * with cross-entropy) on a single sample, as one parallel region.
 *
 * Why a separate path: at batch 1 every product is a matrix-vector product over a few hundred
 * KB of weights -- too small to fork threads per product -- and the optimizer then reads the
 * weights, gradients and its state again. In the generic path the calling thread does the
 * products and both threads then update halves of a flat list of tensors, so a step streams
 * ~4 MB between the cores through L3 (the seed network has 440 KB of weights; with Adam's m
 * and v and the gradient that is 1.76 MB, more than one core's 1 MB L2). Here each thread owns
 * fixed row blocks of every weight matrix for the whole step -- forward partial sums, input
 * gradients, weight gradients and optimizer update -- so its share stays in its own caches,
 * and the threads meet at one barrier per layer.
 *
 * Order of a step: forward (one barrier per layer); the backward chain of deltas (one per
 * layer); then, when the deltas prove every gradient finite (gradients_certainly_finite), each
 * weight-gradient row is made and stepped at once, a 16 KB chunk at a time, while in cache:
 * this fused update serves every optimizer whose step() cannot fail (the descriptor's
 * DESCENT_OPTIMIZER_INFALLIBLE), built-in or plugin, through its own step(). Otherwise all
 * gradients are made and scanned first and the update waits for the verdict. A thread that
 * runs out of update chunks takes the other threads' last ones.
 *
 * Shapes (layer l, 0-based, of count): a_l [fan_in] is the input (x for l = 0, else the
 * previous layer's output), W_l [fan_in][fan_out], b_l [fan_out]; z_l = a_l W_l + b_l.
 * Hidden layers output a_{l+1} = f(z_l); the last layer's z is the scores.
 *   delta_l = dLoss/dz_l;   dW_l[i][j] = a_l[i] * delta_l[j] (+ lambda * W_l[i][j]);
 *   db_l = delta_l;         delta_{l-1}[i] = f'(a_l[i]) * sum_j W_l[i][j] * delta_l[j]
 *
 * Determinism: the forward sum over i is taken per fixed row block (DK_ROW_BLOCKS blocks, set
 * by the shape alone) and the block sums are added in block order; everything else is
 * computed per element (each dot product in an order set by its length). A thread count only
 * decides who computes which block, so results are bit-identical for any thread count.
 */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "descent_kernels.h"

/* ---- a barrier for the few threads of one step ---------------------------------------------
 * libomp's barrier takes ~0.5 us on this machine; a step has one per layer. Two threads that
 * spin on one counter meet in ~0.2 us. Spinning yields after a while, so an oversubscribed
 * machine still makes progress. */
typedef struct spin_barrier {
    _Alignas(64) atomic_int arrived;
    _Alignas(64) atomic_int generation;
    int threads;
} spin_barrier;

static void spin_barrier_wait(spin_barrier *b) {
    if (b->threads == 1) return;
    const int generation = atomic_load_explicit(&b->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) == b->threads - 1) {
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        atomic_store_explicit(&b->generation, generation + 1, memory_order_release);
        return;
    }
    for (unsigned spins = 0; atomic_load_explicit(&b->generation, memory_order_acquire) == generation; spins++) {
        if (spins < 2000) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            sched_yield();
        }
    }
}

/* ---- the kernels, one row range at a time ----------------------------------------------------
 * Written with 8-float vectors (GCC/Clang vector extensions: AVX on x86-64-v3, two NEON
 * registers elsewhere) because the compiler does not vectorise these loops by itself without
 * reordering float additions, and the order must stay fixed (determinism). */

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

/* First row of block k of n rows. */
static int32_t block_begin(int32_t n, int32_t k) { return (int32_t)((int64_t)n * k / DK_ROW_BLOCKS); }

/* ps[out] = sum over i in [r0, r1) of a[i] * W[i][:], eight rows per pass so ps is loaded and
 * stored an eighth as often (measured: 1-1.4 us per step faster than four); the additions keep
 * row order, so the grouping does not change the result. */
static void partial_rows(const float *restrict a, const float *restrict w, int32_t out, int32_t r0,
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

/* One row's dot product w . d over n: two 8-lane accumulators over blocks of 16 columns, then
 * the rest, so the order of additions depends on n alone. */
static float dot(const float *restrict w, const float *restrict d, int32_t n) {
    f32x8 even = splat8(0.0f), odd = splat8(0.0f);
    int32_t j = 0;
    for (; j + 16 <= n; j += 16) {
        even += load8(w + j) * load8(d + j);
        odd += load8(w + j + 8) * load8(d + j + 8);
    }
    float tail = 0.0f;
    for (; j < n; j++) tail += w[j] * d[j];
    return sum8(even + odd) + tail;
}

/* Four rows' dot products with d at once, each in dot()'s order (so each gives dot()'s bits):
 * four independent chains hide the latency of the additions. */
static void dot4(const float *restrict w, int64_t stride, const float *restrict d, int32_t n,
                 float *restrict out) {
    f32x8 even[4], odd[4];
    for (int r = 0; r < 4; r++) even[r] = odd[r] = splat8(0.0f);
    int32_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const f32x8 d0 = load8(d + j), d1 = load8(d + j + 8);
        for (int r = 0; r < 4; r++) {
            even[r] += load8(w + r * stride + j) * d0;
            odd[r] += load8(w + r * stride + j + 8) * d1;
        }
    }
    for (int r = 0; r < 4; r++) {
        float tail = 0.0f;
        for (int32_t t = j; t < n; t++) tail += w[r * stride + t] * d[t];
        out[r] = sum8(even[r] + odd[r]) + tail;
    }
}

/* out[i] = W[i][:] . d for rows [r0, r1). */
static void row_dots(const float *restrict w, const float *restrict d, int32_t n, int32_t r0, int32_t r1,
                     float *restrict out) {
    int32_t i = r0;
    for (; i + 4 <= r1; i += 4) dot4(w + (int64_t)i * n, n, d, n, out + i);
    for (; i < r1; i++) out[i] = dot(w + (int64_t)i * n, d, n);
}

/* 1 when some value in x[0, n) is NaN or Inf. */
static int any_nonfinite(const float *restrict x, int32_t n) { return dk_max_abs_or_nonfinite(x, n) < 0.0f; }

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

/* The gradient rows alone; 1 when one of them is NaN or Inf. */
static int gradient_rows(const float *restrict a, const float *restrict delta, const float *w, int32_t out,
                         int32_t r0, int32_t r1, float lambda, float *restrict rows) {
    if (lambda > 0.0f) return weight_gradient_rows(a, delta, w, out, r0, r1, lambda, rows);
    return weight_gradient_rows(a, delta, w, out, r0, r1, 0.0f, rows);
}

/* Rows [r0, r1) of the previous layer's delta: f'(a[i]) * (W[i][:] . delta). */
static void input_gradient_rows(const float *restrict w, const float *restrict delta, int32_t out,
                                const float *restrict a, int32_t activation, int32_t r0, int32_t r1,
                                float *restrict before_activation, float *restrict delta_below) {
    row_dots(w, delta, out, r0, r1, before_activation);
    const int64_t n = r1 - r0;
    if (activation == dk_activation_sigmoid)
        dk_sigmoid_backward(a + r0, before_activation + r0, delta_below + r0, n);
    else if (activation == dk_activation_tanh)
        dk_tanh_backward(a + r0, before_activation + r0, delta_below + r0, n);
    else
        dk_relu_backward(a + r0, before_activation + r0, delta_below + r0, n);
}

/* out[j0, j1) = f(b + partial sums in block order); f is the identity for the scores. */
static void finish_outputs(const dk_dense_layer *layer, int32_t activation, int hidden, int32_t j0,
                           int32_t j1) {
    const int32_t out = layer->fan_out;
    float *restrict z = hidden ? layer->scratch : layer->output;
    for (int32_t j = j0; j < j1; j++) {
        float s = layer->bias[j];
        for (int32_t k = 0; k < DK_ROW_BLOCKS; k++) s += layer->partials[(int64_t)k * out + j];
        z[j] = s;
    }
    if (!hidden) return;
    const int64_t n = j1 - j0;
    if (activation == dk_activation_sigmoid) dk_sigmoid_forward(z + j0, layer->output + j0, n);
    else if (activation == dk_activation_tanh) dk_tanh_forward(z + j0, layer->output + j0, n);
    else dk_relu_forward(z + j0, layer->output + j0, n);
}

/* ---- the step ---------------------------------------------------------------------------------*/

/* One thread's update chunks not yet taken (see update), on a cache line of its own. */
typedef struct chunk_queue {
    _Alignas(64) _Atomic uint64_t range;
} chunk_queue;

typedef struct step_job {
    dk_dense_layer *layers;
    int32_t count;
    int32_t activation;
    float weight_decay;
    const float *x;
    int32_t label;
    double loss_offset;
    const dk_dense_update *update;
    float *probs;
    /* results and shared flags (written before a barrier, read after it) */
    double loss;
    int32_t loss_is_finite;
    atomic_int gradient_not_finite;
    atomic_int step_failed;
    spin_barrier barrier;
    chunk_queue queues[DK_ROW_BLOCKS];   /* per thread: update chunks not yet taken */
} step_job;

static const float *layer_input(const step_job *job, int32_t l) {
    return l == 0 ? job->x : job->layers[l - 1].output;
}

static void forward(step_job *job, int tid, int b0, int b1) {
    for (int32_t k = b0; k < b1; k++) {
        const int32_t r0 = block_begin(job->layers[0].fan_in, k), r1 = block_begin(job->layers[0].fan_in, k + 1);
        job->layers[0].input_max[k] = dk_max_abs_or_nonfinite(job->x + r0, r1 - r0);
    }
    for (int32_t l = 0; l < job->count; l++) {
        const dk_dense_layer *layer = &job->layers[l];
        const float *a = layer_input(job, l);
        for (int32_t k = b0; k < b1; k++)
            partial_rows(a, layer->weight, layer->fan_out, block_begin(layer->fan_in, k),
                         block_begin(layer->fan_in, k + 1), layer->partials + (int64_t)k * layer->fan_out);
        spin_barrier_wait(&job->barrier);
        if (l + 1 < job->count) {
            /* This thread's outputs are the next layer's rows that its blocks hold: the only
             * ones it reads, in this forward pass and in the backward pass. */
            dk_dense_layer *next = &job->layers[l + 1];
            for (int32_t k = b0; k < b1; k++) {
                const int32_t j0 = block_begin(layer->fan_out, k), j1 = block_begin(layer->fan_out, k + 1);
                finish_outputs(layer, job->activation, 1, j0, j1);
                next->input_max[k] = dk_max_abs_or_nonfinite(layer->output + j0, j1 - j0);
            }
        } else if (tid == 0) {
            finish_outputs(layer, job->activation, 0, 0, layer->fan_out);
            double ce = dk_softmax_cross_entropy(layer->output, &job->label, 1, layer->fan_out,
                                                 job->probs, layer->delta);
            job->loss = ce + job->loss_offset;
            job->loss_is_finite = isfinite(job->loss) && isfinite((float)job->loss);   /* returned as float */
            dk_dense_layer *last = &job->layers[l];
            last->delta_max[0] = dk_max_abs_or_nonfinite(last->delta, last->fan_out);
            for (int32_t k = 1; k < DK_ROW_BLOCKS; k++) last->delta_max[k] = 0.0f;
        }
    }
    spin_barrier_wait(&job->barrier);
}

/* The backward chain: this thread's rows of the delta of every hidden layer, one barrier
 * per layer (the layer below needs all of it). */
static void backward_deltas(step_job *job, int b0, int b1) {
    for (int32_t l = job->count - 1; l > 0; l--) {
        const dk_dense_layer *layer = &job->layers[l];
        dk_dense_layer *below = &job->layers[l - 1];
        for (int32_t k = b0; k < b1; k++) {
            const int32_t r0 = block_begin(layer->fan_in, k), r1 = block_begin(layer->fan_in, k + 1);
            input_gradient_rows(layer->weight, layer->delta, layer->fan_out, layer_input(job, l), job->activation,
                                r0, r1, below->scratch, below->delta);
            below->delta_max[k] = dk_max_abs_or_nonfinite(below->delta + r0, r1 - r0);
        }
        spin_barrier_wait(&job->barrier);
    }
}

/* This thread's rows of every weight gradient and (last thread) the bias gradients, from the
 * deltas; raises gradient_not_finite when one holds NaN or Inf. */
static void weight_gradients(step_job *job, int tid, int nth, int b0, int b1) {
    int bad = 0;
    for (int32_t l = 0; l < job->count; l++) {
        const dk_dense_layer *layer = &job->layers[l];
        const int32_t r0 = block_begin(layer->fan_in, b0), r1 = block_begin(layer->fan_in, b1);
        const int64_t offset = (int64_t)r0 * layer->fan_out;
        bad |= gradient_rows(layer_input(job, l), layer->delta, layer->weight + offset, layer->fan_out, r0, r1,
                             job->weight_decay, layer->weight_grad + offset);
        if (tid == nth - 1) {
            memcpy(layer->bias_grad, layer->delta, (size_t)layer->fan_out * sizeof(float));
            bad |= any_nonfinite(layer->bias_grad, layer->fan_out);
        }
    }
    if (bad) atomic_store_explicit(&job->gradient_not_finite, 1, memory_order_relaxed);
}

/* The largest of a layer's per-block maxima, or -1 when a block holds NaN or Inf. */
static float block_max(const float *maxima) {
    float m = 0.0f;
    for (int32_t k = 0; k < DK_ROW_BLOCKS; k++) {
        if (maxima[k] < 0.0f) return -1.0f;
        m = maxima[k] > m ? maxima[k] : m;
    }
    return m;
}

/* Whether every weight and bias gradient is certainly finite, known from the deltas and layer
 * inputs alone (after the backward chain), so the update may run row by row as each gradient
 * row is made. Without network weight decay dW[i][j] = a[i] * delta[j]: with a and delta
 * finite and max|a| * max|delta| <= FLT_MAX (exact in double) no product can round past
 * FLT_MAX. The maxima were taken per row block by the threads that made the values (forward,
 * backward_deltas) and are read after the last barrier, so every thread reaches the same
 * answer. 0 means "not known": the gradients are then computed and scanned first. */
static int gradients_certainly_finite(const step_job *job) {
    if (job->weight_decay > 0.0f) return 0;
    for (int32_t l = 0; l < job->count; l++) {
        const float a = block_max(job->layers[l].input_max), d = block_max(job->layers[l].delta_max);
        if (a < 0.0f || d < 0.0f || (double)a * (double)d > (double)FLT_MAX) return 0;
    }
    return 1;
}

/* ---- the update, in chunks that idle threads may take over ---------------------------------
 * Each thread steps the rows it owns, a chunk of rows at a time, and with make_gradients makes
 * each chunk's gradient rows just before, so they are written and read back while in cache.
 * The host is noisy: one thread often finishes its share several microseconds after the other
 * (measured: |difference| ~3 us at the median). So a thread that has run out of chunks takes
 * the other threads' last ones. Every element is computed the same way whoever takes its
 * chunk, so results do not change. */

/* 16 KB of gradient per step() call: measured against 4, 8 and 32 KB (paired runs, Adam at
 * batch 1), 16 KB was fastest, 2.4 us per step ahead of 4 KB. */
enum { CHUNK_FLOATS = 4096 };

/* Rows per chunk of a layer. */
static int32_t chunk_rows(const dk_dense_layer *layer) {
    return layer->fan_out < CHUNK_FLOATS ? CHUNK_FLOATS / layer->fan_out : 1;
}

/* Chunks of the rows of `owner` (of nth threads) in every layer, layer by layer. */
static uint32_t owner_chunks(const step_job *job, int owner, int nth) {
    const int b0 = DK_ROW_BLOCKS * owner / nth, b1 = DK_ROW_BLOCKS * (owner + 1) / nth;
    uint32_t chunks = 0;
    for (int32_t l = 0; l < job->count; l++) {
        const dk_dense_layer *layer = &job->layers[l];
        const int32_t rows = block_begin(layer->fan_in, b1) - block_begin(layer->fan_in, b0);
        chunks += (uint32_t)((rows + chunk_rows(layer) - 1) / chunk_rows(layer));
    }
    return chunks;
}

/* A queue's chunks not yet taken, [front, back), packed with front in the high half so one
 * compare-and-swap takes a chunk from either end. */
static uint64_t pack_range(uint32_t front, uint32_t back) { return (uint64_t)front << 32 | back; }

static void fill_queues(step_job *job, int nth) {
    for (int t = 0; t < nth; t++) atomic_store_explicit(&job->queues[t].range, pack_range(0, owner_chunks(job, t, nth)), memory_order_relaxed);
}

/* Takes the first (from_front) or the last chunk left in q; 0 when none is left. */
static int take_chunk(chunk_queue *q, int from_front, uint32_t *chunk) {
    uint64_t range = atomic_load_explicit(&q->range, memory_order_relaxed);
    for (;;) {
        const uint32_t front = (uint32_t)(range >> 32), back = (uint32_t)range;
        if (front >= back) return 0;
        const uint64_t rest = from_front ? pack_range(front + 1, back) : pack_range(front, back - 1);
        if (atomic_compare_exchange_weak_explicit(&q->range, &range, rest, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *chunk = from_front ? front : back - 1;
            return 1;
        }
    }
}

/* Steps chunk `chunk` of owner's rows (making its gradient rows first with make_gradients). */
static int32_t step_chunk(const step_job *job, int owner, int nth, uint32_t chunk, int make_gradients,
                          float *scratch) {
    const dk_dense_update *u = job->update;
    const uint32_t slots = u->desc->state_count;
    const int b0 = DK_ROW_BLOCKS * owner / nth, b1 = DK_ROW_BLOCKS * (owner + 1) / nth;
    for (int32_t l = 0; l < job->count; l++) {
        const dk_dense_layer *layer = &job->layers[l];
        const int32_t r0 = block_begin(layer->fan_in, b0), r1 = block_begin(layer->fan_in, b1);
        const int32_t per = chunk_rows(layer);
        const uint32_t chunks = (uint32_t)((r1 - r0 + per - 1) / per);
        if (chunk >= chunks) {
            chunk -= chunks;
            continue;
        }
        const int32_t i = r0 + (int32_t)chunk * per, e = i + per < r1 ? i + per : r1;
        const int64_t offset = (int64_t)i * layer->fan_out, n = (int64_t)(e - i) * layer->fan_out;
        if (make_gradients)
            gradient_rows(layer_input(job, l), layer->delta, layer->weight + offset, layer->fan_out, i, e,
                          job->weight_decay, layer->weight_grad + offset);
        float *state[DESCENT_PLUGIN_MAX_STATE];
        for (uint32_t q = 0; q < slots; q++) state[q] = u->slots[q] + (layer->weight - u->params) + offset;
        return dk_run_segment(u->desc, u->ctx, layer->weight + offset, layer->weight_grad + offset, state, u->l2,
                              0, n, scratch);
    }
    return DESCENT_PLUGIN_OK;   /* not reached: chunk < owner_chunks */
}

/* The optimizer step: the last thread steps the biases, then every thread its own chunks, then
 * whatever chunks the other threads have not started. */
static void update(step_job *job, int tid, int nth, int make_gradients) {
    const dk_dense_update *u = job->update;
    _Alignas(64) float scratch[DK_CHUNK];
    int32_t rc = DESCENT_PLUGIN_OK;
    if (tid == nth - 1) {
        const uint32_t slots = u->desc->state_count;
        for (int32_t l = 0; l < job->count && rc == DESCENT_PLUGIN_OK; l++) {
            const dk_dense_layer *layer = &job->layers[l];
            if (make_gradients) memcpy(layer->bias_grad, layer->delta, (size_t)layer->fan_out * sizeof(float));
            float *state[DESCENT_PLUGIN_MAX_STATE];
            for (uint32_t q = 0; q < slots; q++) state[q] = u->slots[q] + (layer->bias - u->params);
            rc = dk_run_segment(u->desc, u->ctx, layer->bias, layer->bias_grad, state, u->l2, 0, layer->fan_out,
                                scratch);
        }
    }
    uint32_t chunk;
    while (rc == DESCENT_PLUGIN_OK && take_chunk(&job->queues[tid], 1, &chunk))
        rc = step_chunk(job, tid, nth, chunk, make_gradients, scratch);
    for (int k = 1; k < nth; k++) {
        const int owner = (tid + k) % nth;
        while (rc == DESCENT_PLUGIN_OK && take_chunk(&job->queues[owner], 0, &chunk))
            rc = step_chunk(job, owner, nth, chunk, make_gradients, scratch);
    }
    if (rc != DESCENT_PLUGIN_OK) atomic_store(&job->step_failed, 1);
}

static void run_thread(step_job *job, int tid, int nth) {
    /* This thread's row blocks: the same ones in every layer and every step. */
    const int b0 = DK_ROW_BLOCKS * tid / nth, b1 = DK_ROW_BLOCKS * (tid + 1) / nth;
    forward(job, tid, b0, b1);
    if (!job->loss_is_finite) return;
    backward_deltas(job, b0, b1);
    if (!job->update) {
        weight_gradients(job, tid, nth, b0, b1);
        return;
    }
    /* Nothing may be written before every gradient is known to be finite. When the deltas
     * prove it (the usual case), each gradient row is made right before its step; else all
     * gradients are made and scanned first, and the threads compare notes at a barrier. */
    if (!job->update->check_finite || gradients_certainly_finite(job)) {
        update(job, tid, nth, 1);
        return;
    }
    weight_gradients(job, tid, nth, b0, b1);
    spin_barrier_wait(&job->barrier);
    if (atomic_load_explicit(&job->gradient_not_finite, memory_order_relaxed)) return;
    update(job, tid, nth, 0);
}

int32_t dk_dense_step_one(dk_dense_layer *layers, int32_t count, int32_t activation,
                          float weight_decay, const float *x, int32_t label, double loss_offset,
                          const dk_dense_update *update, int32_t threads, float *probs, double *loss) {
    step_job job = {
        .layers = layers, .count = count, .activation = activation, .weight_decay = weight_decay,
        .x = x, .label = label, .loss_offset = loss_offset, .update = update, .probs = probs,
    };
    int64_t weights = 0;
    for (int32_t l = 0; l < count; l++) weights += (int64_t)layers[l].fan_in * layers[l].fan_out;
    int nth = threads < DK_ROW_BLOCKS ? threads : DK_ROW_BLOCKS;
    if (weights < DK_PARALLEL_MIN_ELEMENTS || nth < 1) nth = 1;
    job.barrier.threads = nth;
    fill_queues(&job, nth);

    if (nth == 1) {
        run_thread(&job, 0, 1);   /* no OpenMP region at all (see step_runner.c) */
    } else {
        /* OpenMP workers do not inherit the caller's floating-point mode (denormals.c). */
        const uint32_t caller_mode = dk_fp_mode_get();
#pragma omp parallel num_threads(nth)
        {
            const uint32_t mode = dk_fp_mode_get();
            dk_fp_mode_set(caller_mode);
            /* A team smaller than asked for (nested or limited OpenMP) runs the blocks of the
             * missing threads too: ownership changes, results do not. */
            const int team = omp_get_num_threads();
            if (team == nth) {
                run_thread(&job, omp_get_thread_num(), nth);
            } else if (omp_get_thread_num() == 0) {
                job.barrier.threads = 1;
                fill_queues(&job, 1);
                run_thread(&job, 0, 1);
            }
            dk_fp_mode_set(mode);
        }
    }
    *loss = job.loss;
    if (!job.loss_is_finite) return dk_dense_loss_not_finite;
    if (atomic_load(&job.gradient_not_finite) && (!update || update->check_finite))
        return dk_dense_gradient_not_finite;
    if (atomic_load(&job.step_failed)) return dk_dense_step_failed;
    return dk_dense_ok;
}
