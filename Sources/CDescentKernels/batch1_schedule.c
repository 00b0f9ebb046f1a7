/*
 * batch1_schedule.c -- the training step of a plain MLP (affine + activation blocks, softmax
 * with cross-entropy) on a single sample: the same kernels as the layer-by-layer pass (affine.c,
 * the activation and softmax loops, the optimizer's step()), scheduled as one parallel region.
 *
 * Why a schedule of its own: at batch 1 every product is a matrix-vector product over a few
 * hundred KB of weights -- too small to fork threads per product -- and the optimizer then
 * reads the weights, gradients and its state again. Layer by layer, the calling thread does the
 * products and both threads then update halves of the arena, so a step streams ~4 MB between
 * the cores through L3 (the seed network has 440 KB of weights; with Adam's m and v and the
 * gradient that is 1.76 MB, more than one core's 1 MB L2). Here each thread owns fixed row
 * blocks of every weight matrix for the whole step -- forward partial sums, input gradients,
 * weight gradients and optimizer update -- so its share stays in its own caches, and the
 * threads meet at one barrier per layer.
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
 * by the shape alone) and the block sums are added in block order, as dk_affine_forward does
 * for one sample; everything else is computed per element (each dot product in an order set
 * by its length). A thread count only decides who computes which block, so results are
 * bit-identical for any thread count, and equal to the layer-by-layer pass at batch 1.
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
        const int32_t r0 = dk_row_block_begin(job->layers[0].fan_in, k), r1 = dk_row_block_begin(job->layers[0].fan_in, k + 1);
        job->layers[0].input_max[k] = dk_max_abs_or_nonfinite(job->x + r0, r1 - r0);
    }
    for (int32_t l = 0; l < job->count; l++) {
        dk_dense_layer *layer = &job->layers[l];
        const float *a = layer_input(job, l);
        for (int32_t k = b0; k < b1; k++)
            dk_affine_partial_one(a, layer->weight, layer->fan_out, dk_row_block_begin(layer->fan_in, k),
                         dk_row_block_begin(layer->fan_in, k + 1), layer->partials + (int64_t)k * layer->fan_out);
        spin_barrier_wait(&job->barrier);
        if (l + 1 < job->count) {
            /* This thread's outputs are the next layer's rows that its blocks hold: the only
             * ones it reads, in this forward pass and in the backward pass. */
            dk_dense_layer *next = &job->layers[l + 1];
            for (int32_t k = b0; k < b1; k++) {
                const int32_t j0 = dk_row_block_begin(layer->fan_out, k), j1 = dk_row_block_begin(layer->fan_out, k + 1);
                /* f(b + the partial sums in block order) */
                dk_affine_combine_one(layer->bias, layer->partials, layer->fan_out, j0, j1, layer->scratch);
                dk_activation_forward(job->activation, layer->scratch + j0, layer->output + j0, j1 - j0);
                next->input_max[k] = dk_max_abs_or_nonfinite(layer->output + j0, j1 - j0);
            }
        } else if (tid == 0) {
            dk_affine_combine_one(layer->bias, layer->partials, layer->fan_out, 0, layer->fan_out, layer->output);
            double ce = dk_softmax_cross_entropy(layer->output, &job->label, 1, layer->fan_out, 1.0f,
                                                 job->probs, layer->delta);
            job->loss = ce + job->loss_offset;
            job->loss_is_finite = isfinite(job->loss) && isfinite((float)job->loss);   /* returned as float */
            layer->delta_max[0] = dk_max_abs_or_nonfinite(layer->delta, layer->fan_out);
            for (int32_t k = 1; k < DK_ROW_BLOCKS; k++) layer->delta_max[k] = 0.0f;
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
            const int32_t r0 = dk_row_block_begin(layer->fan_in, k), r1 = dk_row_block_begin(layer->fan_in, k + 1);
            /* f'(a[i]) * (W[i][:] . delta) */
            dk_affine_input_gradient_one(layer->weight, layer->delta, layer->fan_out, r0, r1, below->scratch);
            dk_activation_backward(job->activation, layer_input(job, l) + r0, below->scratch + r0, below->delta + r0, r1 - r0);
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
        const int32_t r0 = dk_row_block_begin(layer->fan_in, b0), r1 = dk_row_block_begin(layer->fan_in, b1);
        const int64_t offset = (int64_t)r0 * layer->fan_out;
        bad |= dk_affine_weight_gradient_one(layer_input(job, l), layer->delta, layer->weight + offset, layer->fan_out, r0, r1,
                             job->weight_decay, layer->weight_grad + offset);
        if (tid == nth - 1) {
            memcpy(layer->bias_grad, layer->delta, (size_t)layer->fan_out * sizeof(float));
            bad |= dk_max_abs_or_nonfinite(layer->bias_grad, layer->fan_out) < 0.0f;
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
        const int32_t rows = dk_row_block_begin(layer->fan_in, b1) - dk_row_block_begin(layer->fan_in, b0);
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

/* The optimizer step on the n floats of the parameter arena from param (grad: their gradients). */
static int32_t step_span(const dk_dense_update *u, float *param, const float *grad, int64_t n, float *scratch) {
    float *state[DESCENT_PLUGIN_MAX_STATE];
    for (uint32_t q = 0; q < u->desc->state_count; q++) state[q] = u->slots[q] + (param - u->params);
    return dk_run_segment(u->desc, u->ctx, param, grad, state, u->l2, 0, n, scratch);
}

/* Steps chunk `chunk` of owner's rows (making its gradient rows first with make_gradients). */
static int32_t step_chunk(const step_job *job, int owner, int nth, uint32_t chunk, int make_gradients,
                          float *scratch) {
    const int b0 = DK_ROW_BLOCKS * owner / nth, b1 = DK_ROW_BLOCKS * (owner + 1) / nth;
    for (int32_t l = 0; l < job->count; l++) {
        const dk_dense_layer *layer = &job->layers[l];
        const int32_t r0 = dk_row_block_begin(layer->fan_in, b0), r1 = dk_row_block_begin(layer->fan_in, b1);
        const int32_t per = chunk_rows(layer);
        const uint32_t chunks = (uint32_t)((r1 - r0 + per - 1) / per);
        if (chunk >= chunks) {
            chunk -= chunks;
            continue;
        }
        const int32_t i = r0 + (int32_t)chunk * per, e = i + per < r1 ? i + per : r1;
        const int64_t offset = (int64_t)i * layer->fan_out, n = (int64_t)(e - i) * layer->fan_out;
        if (make_gradients)
            dk_affine_weight_gradient_one(layer_input(job, l), layer->delta, layer->weight + offset, layer->fan_out, i, e,
                          job->weight_decay, layer->weight_grad + offset);
        return step_span(job->update, layer->weight + offset, layer->weight_grad + offset, n, scratch);
    }
    return DESCENT_PLUGIN_OK;   /* not reached: chunk < owner_chunks */
}

/* The optimizer step: the last thread steps the biases, then every thread its own chunks, then
 * whatever chunks the other threads have not started. */
static void update(step_job *job, int tid, int nth, int make_gradients) {
    _Alignas(64) float scratch[DK_CHUNK];
    int32_t rc = DESCENT_PLUGIN_OK;
    if (tid == nth - 1) {
        for (int32_t l = 0; l < job->count && rc == DESCENT_PLUGIN_OK; l++) {
            const dk_dense_layer *layer = &job->layers[l];
            if (make_gradients) memcpy(layer->bias_grad, layer->delta, (size_t)layer->fan_out * sizeof(float));
            rc = step_span(job->update, layer->bias, layer->bias_grad, layer->fan_out, scratch);
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
