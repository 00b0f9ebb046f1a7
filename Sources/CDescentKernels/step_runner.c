/*
 * step_runner.c -- how the host drives an optimizer's elementwise step() over many tensors:
 * the gradient finiteness scan, host-side L2 weight decay, and the split of the work into
 * chunks for OpenMP threads. One parallel region per step, not one per tensor.
 */
#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <string.h>

#include "descent_kernels.h"

static int64_t chunks_of(int64_t length) { return (length + DK_CHUNK - 1) / DK_CHUNK; }

/* The chunks of all count tensors; *nth receives how many threads a pass over them uses (1: no
 * OpenMP region at all, since even a serialised one (if(0)) costs ~0.2-0.4 us in libomp). */
static int64_t plan_chunks(int64_t count, const int64_t *lengths, int32_t threads, int *nth) {
    int64_t chunks = 0, elements = 0;
    for (int64_t i = 0; i < count; i++) {
        chunks += chunks_of(lengths[i]);
        elements += lengths[i];
    }
    *nth = elements >= DK_PARALLEL_MIN_ELEMENTS && threads > 1 ? threads : 1;
    return chunks;
}

/* Runs BODY with i, begin and end set to every element range [begin, end) of tensor i that
 * lies in thread tid's slice (of nth) of the chunks [0, total), in tensor order. Static,
 * contiguous slices keep each thread on its own pages from step to step. */
#define FOR_EACH_SEGMENT(count, lengths, total, tid, nth, BODY)                          \
    do {                                                                                 \
        const int64_t k0_ = (total) * (tid) / (nth), k1_ = (total) * ((tid) + 1) / (nth); \
        int64_t first_chunk_ = 0;                                                        \
        for (int64_t i = 0; i < (count) && first_chunk_ < k1_; i++) {                    \
            int64_t c_ = chunks_of((lengths)[i]);                                        \
            int64_t a_ = k0_ > first_chunk_ ? k0_ : first_chunk_;                        \
            int64_t b_ = k1_ < first_chunk_ + c_ ? k1_ : first_chunk_ + c_;              \
            if (a_ < b_) {                                                               \
                int64_t begin = (a_ - first_chunk_) * DK_CHUNK;                          \
                int64_t end = (b_ - first_chunk_) * DK_CHUNK;                            \
                if (end > (lengths)[i]) end = (lengths)[i];                              \
                BODY                                                                     \
            }                                                                            \
            first_chunk_ += c_;                                                          \
        }                                                                                \
    } while (0)

/* ---- finiteness scan ---------------------------------------------------------------------*/

/* max |x[i]| over x[0, n), or -1 when some x[i] is NaN or Inf. For a float without its sign
 * bit, the integer order of the bits is the order of the values, and NaN and Inf are the
 * patterns from 0x7f800000 up: so one integer maximum answers both questions. An integer
 * maximum may be taken in any order, so the compiler vectorises and interleaves this loop
 * (with float comparisons it could not): it runs at memory speed. */
float dk_max_abs_or_nonfinite(const float *restrict x, int64_t n) {
    uint32_t m = 0;
    for (int64_t j = 0; j < n; j++) {
        uint32_t bits;
        memcpy(&bits, x + j, sizeof bits);
        bits &= 0x7fffffffu;
        m = bits > m ? bits : m;
    }
    if (m >= 0x7f800000u) return -1.0f;
    float value;
    memcpy(&value, &m, sizeof value);
    return value;
}

/* Index of the first NaN/Inf in x[begin, end), or -1: one pass at memory speed answers for the
 * whole range (the usual case); only a range that holds a bad value is searched again, element
 * by element (an error path). */
static int64_t first_nonfinite(const float *x, int64_t begin, int64_t end) {
    if (dk_max_abs_or_nonfinite(x + begin, end - begin) >= 0.0f) return -1;
    for (int64_t j = begin; j < end; j++)
        if (!isfinite(x[j])) return j;
    return -1;
}

/* The first non-finite (tensor, index) in thread tid's slice, or tensor -1. */
static void scan_slice(int64_t count, const float *const *grads, const int64_t *lengths,
                       int64_t total, int tid, int nth, int64_t *tensor, int64_t *index) {
    int64_t found_tensor = -1, found_index = -1;
    FOR_EACH_SEGMENT(count, lengths, total, tid, nth, {
        if (found_tensor < 0) {
            int64_t j = first_nonfinite(grads[i], begin, end);
            if (j >= 0) { found_tensor = i; found_index = j; }
        }
    });
    *tensor = found_tensor;
    *index = found_index;
}

int32_t dk_find_nonfinite(int64_t count, const float *const *grads, const int64_t *lengths,
                          int32_t threads, int64_t *tensor, int64_t *index) {
    int nth;
    const int64_t total = plan_chunks(count, lengths, threads, &nth);
    /* Lexicographic minimum (tensor, index) over the threads' first finds. */
    int64_t best_tensor = -1, best_index = -1;
    if (nth == 1) {
        scan_slice(count, grads, lengths, total, 0, 1, &best_tensor, &best_index);
    } else {
#pragma omp parallel num_threads(nth)
        {
            int64_t found_tensor, found_index;
            scan_slice(count, grads, lengths, total, omp_get_thread_num(), omp_get_num_threads(),
                       &found_tensor, &found_index);
            if (found_tensor >= 0) {
#pragma omp critical(dk_find_nonfinite)
                if (best_tensor < 0 || found_tensor < best_tensor ||
                    (found_tensor == best_tensor && found_index < best_index)) {
                    best_tensor = found_tensor;
                    best_index = found_index;
                }
            }
        }
    }
    if (best_tensor < 0) return 0;
    *tensor = best_tensor;
    *index = best_index;
    return 1;
}

/* ---- the step ----------------------------------------------------------------------------*/

/* Runs step() on elements [begin, end) of one tensor. With l2 > 0 the optimizer sees
 * grad + l2 * param, built one cache-sized chunk at a time in scratch, so weight decay adds
 * no memory traffic. */
int32_t dk_run_segment(const descent_optimizer_desc *desc, const descent_step_context *ctx,
                           float *param, const float *grad, float *const *state, float l2,
                           int64_t begin, int64_t end, float *scratch) {
    float *slots[DESCENT_PLUGIN_MAX_STATE];
    uint32_t state_count = desc->state_count;
    if (l2 == 0.0f) {
        for (uint32_t s = 0; s < state_count; s++) slots[s] = state[s] + begin;
        return desc->step(ctx, param + begin, grad + begin, slots, end - begin);
    }
    for (int64_t offset = begin; offset < end; offset += DK_CHUNK) {
        int64_t n = end - offset < DK_CHUNK ? end - offset : DK_CHUNK;
        const float *restrict g = grad + offset;
        const float *restrict p = param + offset;
        for (int64_t j = 0; j < n; j++) scratch[j] = g[j] + l2 * p[j];
        for (uint32_t s = 0; s < state_count; s++) slots[s] = state[s] + offset;
        int32_t rc = desc->step(ctx, param + offset, scratch, slots, n);
        if (rc != DESCENT_PLUGIN_OK) return rc;
    }
    return DESCENT_PLUGIN_OK;
}

/* Runs step() on every segment in thread tid's slice, with subnormals flushed; sets *failed
 * when one fails. */
static void run_slice(const descent_optimizer_desc *desc, const descent_step_context *ctx,
                      int64_t count, float *const *params, const float *const *grads,
                      const int64_t *lengths, float *const *slots, const int64_t *offsets, float l2,
                      int64_t total, int tid, int nth, atomic_int *failed) {
    _Alignas(64) float scratch[DK_CHUNK];
    float *state[DESCENT_PLUGIN_MAX_STATE];
    uint32_t mode = dk_denormals_flush_begin();
    FOR_EACH_SEGMENT(count, lengths, total, tid, nth, {
        if (!atomic_load_explicit(failed, memory_order_relaxed)) {
            for (uint32_t s = 0; s < desc->state_count; s++) state[s] = slots[s] + offsets[i];
            int32_t rc = dk_run_segment(desc, ctx, params[i], grads[i], state, l2, begin, end, scratch);
            if (rc != DESCENT_PLUGIN_OK) atomic_store(failed, 1);
        }
    });
    dk_denormals_flush_end(mode);
}

int32_t dk_run_step(const descent_optimizer_desc *desc, const descent_step_context *ctx,
                    int64_t count, float *const *params, const float *const *grads,
                    const int64_t *lengths, float *const *slots, const int64_t *offsets, float l2,
                    int32_t threads) {
    int nth;
    const int64_t total = plan_chunks(count, lengths, threads, &nth);
    atomic_int failed = 0;
    if (nth == 1) {
        run_slice(desc, ctx, count, params, grads, lengths, slots, offsets, l2, total, 0, 1, &failed);
    } else {
#pragma omp parallel num_threads(nth)
        run_slice(desc, ctx, count, params, grads, lengths, slots, offsets, l2, total,
                  omp_get_thread_num(), omp_get_num_threads(), &failed);
    }
    return atomic_load(&failed) ? DESCENT_PLUGIN_ERROR : DESCENT_PLUGIN_OK;
}
/* ---- error reports from plugins ---------------------------------------------------------*/

void dk_step_report_clear(dk_step_report *report) {
    __atomic_store_n(&report->claimed, 0, __ATOMIC_RELAXED);
    report->message[0] = '\0';
}

void dk_report_error(const descent_step_context *ctx, const char *message) {
    dk_step_report *report = ctx ? (dk_step_report *)ctx->host_data : NULL;
    if (!report) return;
    int32_t expected = 0;
    if (!__atomic_compare_exchange_n(&report->claimed, &expected, 1, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
        return;   /* an earlier message of this step wins */
    if (!message) message = "(no message)";
    size_t n = strlen(message);
    if (n >= sizeof report->message) n = sizeof report->message - 1;
    memcpy(report->message, message, n);
    report->message[n] = '\0';
}
