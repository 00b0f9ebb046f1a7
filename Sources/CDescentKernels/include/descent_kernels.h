/*
 * descent_kernels.h -- the C layer under the Swift core: OpenMP kernels and small runtime
 * services (thread count, thread-local error text). Internal: not installed, not a public API.
 */
#ifndef DESCENT_KERNELS_H
#define DESCENT_KERNELS_H

#include <stdint.h>
#include "descent_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- handle tags -------------------------------------------------------------------------
 * The public handles are opaque to C users. Swift needs a named pointee type so that the
 * generated header prints `descent_optimizer *` rather than `void *`; the content is never read. */
struct descent_optimizer { char opaque_; };
struct descent_net { char opaque_; };

/* Function-like macros do not reach Swift; these constants do. */
static const uint32_t dk_plugin_abi_version = DESCENT_PLUGIN_ABI_VERSION;

/* Writes one line to stderr (Swift 6 cannot touch the C global `stderr` safely). */
void dk_write_stderr(const char *line);

/* ---- built-in optimizers -----------------------------------------------------------------
 * The built-ins are a plugin like any other, registered by the host at start-up. */
const descent_plugin *dk_builtin_plugin(void);


/* ---- threads -----------------------------------------------------------------------------*/
/* Threads used by parallel kernels: DESCENT_NUM_THREADS if set (>= 1), else OpenMP's default. */
int32_t dk_get_threads(void);
/* n >= 1 sets the count; n == 0 restores the default. Returns the count now in force. */
int32_t dk_set_threads(int32_t n);
/* The default the library starts with (environment or OpenMP). */
int32_t dk_default_threads(void);

/* ---- the library's own location (library_path.c) -------------------------------------------*/
/* The absolute, symlink-free folder of the file this code was loaded from (libdescent.so, or
 * the program it is linked into), malloc'ed (the caller frees it); NULL when unknown. */
char *dk_library_directory(void);

/* ---- thread-local error text -------------------------------------------------------------*/
/* Copies message into this thread's buffer; dk_error_get returns it ("" before any error). */
void dk_error_set(const char *message);
const char *dk_error_get(void);

/* ---- floating-point mode (denormals.c) ----------------------------------------------------*/
/* Sets flush-to-zero and denormals-are-zero on this thread; returns the mode to restore. */
uint32_t dk_denormals_flush_begin(void);
void dk_denormals_flush_end(uint32_t saved);
/* The raw mode (MXCSR on x86), to hand the caller's mode to OpenMP workers. */
uint32_t dk_fp_mode_get(void);
void dk_fp_mode_set(uint32_t mode);

/* ---- the step runner ---------------------------------------------------------------------*/
/* Work smaller than this many elements in total runs on the calling thread: an OpenMP
 * parallel region costs ~1 us (libomp 14), more than a small update takes. */
#define DK_PARALLEL_MIN_ELEMENTS 32768
/* Elements per chunk handed to step(); also the size of the per-thread weight-decay scratch. */
#define DK_CHUNK 4096

/* max |x[i]| over x[0, n), or -1 when some x[i] is NaN or Inf: the one finiteness test. */
float dk_max_abs_or_nonfinite(const float *x, int64_t n);

/*
 * Finds the first NaN/Inf in grads[0..count) (tensor-major, then index). Returns 1 and sets
 * *tensor, *index when one exists, else 0. Reads each gradient once, in parallel when large.
 */
int32_t dk_find_nonfinite(int64_t count, const float *const *grads, const int64_t *lengths,
                          int32_t threads, int64_t *tensor, int64_t *index);

/*
 * Runs one optimizer step over count tensors.
 *   slots[s] + offsets[i] is state slot s of tensor i: each slot is one buffer holding that
 *   slot of every tensor (a network has one tensor, its whole parameter arena, at offset 0).
 *   l2 > 0 passes grad + l2 * param to step() (computed chunk-wise in cache, not in memory).
 * ctx must be filled in (step count, hyperparameters, scalars from prepare()).
 * Returns DESCENT_PLUGIN_OK, or DESCENT_PLUGIN_ERROR when any step() call failed; then the
 * arrays are partly updated and the caller restores them.
 */
int32_t dk_run_step(const descent_optimizer_desc *desc, const descent_step_context *ctx,
                    int64_t count, float *const *params, const float *const *grads,
                    const int64_t *lengths, float *const *slots, const int64_t *offsets, float l2,
                    int32_t threads);

/* step() on elements [begin, end) of one tensor (state = its state_count slots), with l2 as
 * in dk_run_step; scratch holds DK_CHUNK floats. The unit dk_run_step splits work into. */
int32_t dk_run_segment(const descent_optimizer_desc *desc, const descent_step_context *ctx,
                       float *param, const float *grad, float *const *state, float l2,
                       int64_t begin, int64_t end, float *scratch);

/* Where a step's report_error() messages go: ctx->host_data points at one. The first message
 * of a step wins; later ones are dropped. Zero it (dk_step_report_clear) before each step. */
typedef struct dk_step_report {
    int32_t claimed;          /* atomic flag, 0 = no message yet */
    char message[512];
} dk_step_report;
void dk_step_report_clear(dk_step_report *report);
void dk_report_error(const descent_step_context *ctx, const char *message);

/* ---- the checked allocator (memory.c) ----------------------------------------------------
 * count * element_size bytes (rounded up to 64, at least 64), 64-byte aligned and zeroed; NULL
 * when memory runs out or the size overflows. */
void *dk_alloc_zeroed(int64_t count, int64_t element_size);
void dk_free(void *p);
/* A 64-byte aligned address for buffers of no elements (never written, never freed). */
float *dk_empty_floats(void);

/* ---- random numbers (rng.c) --------------------------------------------------------------*/
typedef struct dk_rng { uint64_t s[4]; } dk_rng;
void dk_rng_seed(dk_rng *rng, uint64_t seed);
uint64_t dk_rng_next(dk_rng *rng);
float dk_rng_uniform(dk_rng *rng);
float dk_rng_at(uint64_t key, uint64_t index);
void dk_rng_normal(dk_rng *rng, float *x, int64_t n, double std);

/* ---- matrix products (blas.c) ------------------------------------------------------------*/
/* Loads OpenBLAS once (choosing its kernel set for this CPU); 1 when sgemm is usable. */
int32_t dk_blas_ready(void);
/* What was loaded and which kernels run, or why loading failed. */
const char *dk_blas_description(void);
/* Row-major C = alpha * op(A) * op(B) + beta * C, op = transpose when trans_* != 0. */
void dk_sgemm(int32_t trans_a, int32_t trans_b, int32_t m, int32_t n, int32_t k, float alpha,
              const float *a, int32_t lda, const float *b, int32_t ldb, float beta, float *c,
              int32_t ldc);

/* ---- shards of a batch (shards.c) ---------------------------------------------------------
 * A training step at batch B runs dk_shard_count(B) shards of consecutive rows; shard s holds
 * rows [dk_shard_begin(B, S, s), dk_shard_begin(B, S, s + 1)). The layout depends on B alone:
 * below 2 * DK_SHARD_MIN_ROWS rows one shard (measured: smaller shards do not pay, see
 * docs/parallel-step.md), then the largest power of two of shards with at least
 * DK_SHARD_MIN_ROWS rows each, at most DK_MAX_SHARDS (each shard has its own gradient arena,
 * so the cap bounds the memory). Powers of two divide evenly among 2, 4 or 8 threads. */
#ifndef DK_SHARD_MIN_ROWS   /* benchmarks build variants with other values (-Xcc -DDK_SHARD_MIN_ROWS=N) */
#define DK_SHARD_MIN_ROWS 64
#endif
#define DK_MAX_SHARDS 8
static inline int32_t dk_shard_count(int64_t batch) {
    int32_t shards = 1;
    while (shards < DK_MAX_SHARDS && batch >= 2 * shards * (int64_t)DK_SHARD_MIN_ROWS) shards *= 2;
    return shards;
}
static inline int64_t dk_shard_begin(int64_t batch, int32_t shards, int32_t s) { return batch * s / shards; }
typedef void (*dk_shard_fn)(void *ctx, int32_t phase, int32_t shard);
void dk_run_shards(int32_t phases, int32_t shards, int32_t threads, dk_shard_fn fn, void *ctx);
/* 1 while the calling thread runs a shard of a batch of several shards: its products are one
 * OpenBLAS call each (dk_sgemm), whichever thread count runs the shards. */
int32_t dk_in_shard(void);
void dk_sum_blocks(const float *blocks, int64_t stride, int32_t count, int64_t n, float scale, float *out);

/* ---- a data-parallel network's communication thread (allreduce_thread.c) --------------------
 * The caller's all-reduce (replaces data[0..count) by the sum over the processes; 0 on success),
 * run in order on a thread of its own so that it overlaps the backward pass. */
typedef int32_t (*dk_allreduce_fn)(void *context, float *data, int64_t count);
typedef struct dk_allreduce_thread dk_allreduce_thread;
/* NULL when the thread cannot be made (out of memory or threads). */
dk_allreduce_thread *dk_allreduce_thread_start(dk_allreduce_fn allreduce, void *context);
/* Runs what is still queued, then ends the thread and frees t. NULL is a no-op. */
void dk_allreduce_thread_stop(dk_allreduce_thread *t);
/* Queues allreduce(context, data, count); data must stay untouched until dk_allreduce_wait. */
void dk_allreduce_submit(dk_allreduce_thread *t, float *data, int64_t count);
/* Waits until every queued call has run; returns the first non-zero result among them, else 0. */
int32_t dk_allreduce_wait(dk_allreduce_thread *t);
/* dk_allreduce_wait, then the call on the calling thread; the first non-zero result, else 0. */
int32_t dk_allreduce_call(dk_allreduce_thread *t, float *data, int64_t count);

/* ---- the affine layer (affine.c): y = x W + b, for every batch size -------------------------
 * Whole layer: x [rows][in], W [in][out], b [out], y/dy [rows][out], dx [rows][in]. BLAS for
 * rows > 1; for one sample, the per-range kernels below over DK_ROW_BLOCKS row blocks of W.
 * partials holds DK_ROW_BLOCKS * out floats (used when rows == 1). */
void dk_affine_forward(const float *x, int64_t rows, const float *w, const float *b, int32_t in, int32_t out,
                       float *partials, float *y);
/* dW = x^T dy (+ lambda W), db = column sums of dy, and dx = dy W^T unless dx is NULL. */
void dk_affine_backward(const float *x, const float *dy, int64_t rows, const float *w, int32_t in, int32_t out,
                        float lambda, float *dw, float *db, float *dx);

/* The forward sum of one sample is split into this many fixed blocks of W's rows, whatever the
 * thread count (determinism); it is also the most threads the batch-1 schedule uses. */
#define DK_ROW_BLOCKS 4
/* First row of block k (0..DK_ROW_BLOCKS) of n rows. */
static inline int32_t dk_row_block_begin(int32_t n, int32_t k) { return (int32_t)((int64_t)n * k / DK_ROW_BLOCKS); }

/* One sample, rows [r0, r1) of W:
 *   partial_one:         partial[out] = sum over i in [r0, r1) of a[i] W[i][:]
 *   combine_one:         z[j0, j1) = b + the DK_ROW_BLOCKS partials [k][out], in block order
 *   input_gradient_one:  dx[i] = W[i][:] . delta for i in [r0, r1)
 *   weight_gradient_one: rows [r0, r1) of dW = a^T delta (+ lambda W), written from dw (w and
 *                        dw point at row r0); 1 when one of them is NaN or Inf, else 0 */
void dk_affine_partial_one(const float *a, const float *w, int32_t out, int32_t r0, int32_t r1, float *partial);
void dk_affine_combine_one(const float *bias, const float *partials, int32_t out, int32_t j0, int32_t j1, float *z);
void dk_affine_input_gradient_one(const float *w, const float *delta, int32_t out, int32_t r0, int32_t r1,
                                  float *dx);
int32_t dk_affine_weight_gradient_one(const float *a, const float *delta, const float *w, int32_t out,
                                      int32_t r0, int32_t r1, float lambda, float *dw);

/* ---- the other layers' loops; matrices are row-major [rows][cols] ----------------------------
 * Small loops on the calling thread (a batch of 128 x 100 features is 12,800 floats, ~5 us:
 * an OpenMP fork would cost more than it saves). affine.c: broadcast, column sums, scale, and
 * the weight-decay penalty's sum of squares; activation.c, dropout.c, batchnorm.c, softmax.c. */
void dk_broadcast_rows(float *y, const float *bias, int64_t rows, int64_t cols);
void dk_column_sums(const float *x, int64_t rows, int64_t cols, float *sums);
void dk_add_scaled(const float *x, float scale, float *y, int64_t n);
double dk_sum_squares(const float *x, int64_t n);
/* ReLU, sigmoid and tanh by code; activation.c is the one place that maps a code to a function. */
static const int32_t dk_activation_relu = 0, dk_activation_sigmoid = 1, dk_activation_tanh = 2;
void dk_activation_forward(int32_t function, const float *x, float *y, int64_t n);
void dk_activation_backward(int32_t function, const float *y, const float *dy, float *dx, int64_t n);
void dk_dropout_forward(const float *x, float *y, float *mask, int64_t first, int64_t n, float ratio, uint64_t key);
void dk_multiply(const float *a, const float *b, float *out, int64_t n);
void dk_batchnorm_deviation_sums(const float *x, int64_t rows, int64_t cols, const float *mean, float *sums);
void dk_batchnorm_inverse_std(const float *var, int64_t cols, float eps, float *inv_std);
void dk_batchnorm_normalize(const float *x, int64_t rows, int64_t cols, const float *mean, const float *inv_std,
                            const float *gamma, const float *beta, float *xhat, float *y);
void dk_batchnorm_update_running(const float *mean, const float *var, int64_t cols, float momentum,
                                 float *running_mean, float *running_var);
void dk_batchnorm_forward_eval(const float *x, int64_t rows, int64_t cols, const float *gamma,
                               const float *beta, float eps, const float *running_mean,
                               const float *running_var, float *y);
void dk_batchnorm_parameter_sums(const float *dy, const float *xhat, int64_t rows, int64_t cols, float *dgamma,
                                 float *dbeta);
void dk_batchnorm_input_gradient(const float *dy, const float *xhat, const float *inv_std, const float *gamma,
                                 int64_t rows, int64_t cols, float n, const float *dgamma, const float *dbeta,
                                 float *dx);
double dk_softmax_cross_entropy(const float *scores, const int32_t *labels, int64_t rows,
                                int64_t classes, float inv_batch, float *probs, float *dscores);
int64_t dk_count_correct(const float *x, const int32_t *labels, int64_t rows, int64_t cols);

/* ---- the batch-1 training step (batch1_schedule.c) -------------------------------------------
 * A plain MLP (affine + activation blocks, softmax cross-entropy; no batch norm, no dropout) at
 * batch 1: the affine kernels above run as one parallel region in which each thread owns the
 * same row blocks of every weight matrix for forward, backward and update, so they stay in its
 * own caches. */

/* One affine layer and the buffers the step works in. All vectors hold one sample. */
typedef struct dk_dense_layer {
    int32_t fan_in, fan_out;
    float *weight, *weight_grad;   /* [fan_in][fan_out] row-major */
    float *bias, *bias_grad;       /* [fan_out] */
    float *output;                 /* [fan_out]: f(z) for hidden layers, the scores z for the last */
    float *delta;                  /* [fan_out]: dLoss/dz */
    float *scratch;                /* [fan_out]: z (forward), W_{l+1} delta_{l+1} (backward); hidden only */
    float *partials;               /* [DK_ROW_BLOCKS][fan_out]: forward sums per row block */
    /* Written by the step: max |input| over each row block of fan_in, and max |delta| over each
     * row block of fan_out (the next layer's fan_in); -1 for a block that holds NaN or Inf. */
    float input_max[DK_ROW_BLOCKS], delta_max[DK_ROW_BLOCKS];
} dk_dense_layer;

/* The optimizer step fused after the backward pass. The layers' weights and biases lie in one
 * parameter arena starting at params; each state slot has the arena's layout, so the state of
 * the float at params + k is slots[s] + k. */
typedef struct dk_dense_update {
    const descent_optimizer_desc *desc;
    const descent_step_context *ctx;   /* filled in and prepare()d by the caller */
    float *const *slots;
    const float *params;
    float l2;                          /* as in dk_run_step */
    int32_t check_finite;              /* 1: no update when any gradient is NaN/Inf */
} dk_dense_update;

static const int32_t dk_dense_ok = 0;
static const int32_t dk_dense_loss_not_finite = 1;       /* nothing after the forward pass ran */
static const int32_t dk_dense_gradient_not_finite = 2;   /* gradients written, nothing updated */
static const int32_t dk_dense_step_failed = 3;           /* a step() call failed: partly updated */

/*
 * Forward pass on x [layers[0].fan_in] with class label, loss = cross-entropy + loss_offset
 * (the caller's weight-decay penalty) into *loss and class probabilities into probs; then, if
 * the loss is finite, the backward pass writing every weight_grad and bias_grad (weight_decay
 * adds lambda * W to dW); then, if update is not NULL, the optimizer step. Returns a
 * dk_dense_* code. Call with subnormals flushed (dk_denormals_flush_begin).
 */
int32_t dk_dense_step_one(dk_dense_layer *layers, int32_t count, int32_t activation,
                          float weight_decay, const float *x, int32_t label, double loss_offset,
                          const dk_dense_update *update, int32_t threads, float *probs, double *loss);

/* ---- IDX data files (idx_io.c) -----------------------------------------------------------*/
/* zlib's file reader under an opaque name (this header does not include zlib.h). */
typedef struct dk_gzip dk_gzip;
/* What dk_gzip_error reports: corrupt or truncated data, a failed read, no memory. */
static const int32_t dk_gzip_format_error = 0, dk_gzip_io_error = 1, dk_gzip_memory_error = 2;
/* Reads the file open on fd: decompressed when it is gzip, else as it is. On success the handle
 * owns fd (dk_gzip_close closes it); NULL when out of memory, and then fd stays the caller's. */
dk_gzip *dk_gzip_open_fd(int32_t fd);
/* Whether the file is read as it is (not gzip). */
int32_t dk_gzip_is_raw(dk_gzip *gz);
/* Reads up to n decompressed bytes into buffer: the count (less than n only at the end of the
 * data), or -1 when the data are corrupt or truncated or the file cannot be read. */
int64_t dk_gzip_read(dk_gzip *gz, void *buffer, int64_t n);
/* Why the last dk_gzip_read failed; *kind (may be NULL) receives a dk_gzip_*_error. */
const char *dk_gzip_error(dk_gzip *gz, int32_t *kind);
void dk_gzip_close(dk_gzip *gz);   /* NULL is ignored */
/* out[i] = bytes[i] / 255.0f (pixels to [0, 1]); out[i] = bytes[i] (labels). */
void dk_bytes_to_unit_floats(const uint8_t *bytes, float *out, int64_t n);
void dk_bytes_to_int32(const uint8_t *bytes, int32_t *out, int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* DESCENT_KERNELS_H */
