/*
 * shards.c -- a batch split into shards: fixed blocks of rows that each go through the whole
 * network on one thread, and the fixed-order sums that join their results.
 *
 * Why shards: one training step is ~14 small matrix products (batch 128 x 100-wide layers).
 * Cut by shape, they keep a second core only partly busy; two halves of the batch, each on its
 * own core with single-threaded OpenBLAS, keep both busy. Why fixed: the shard layout depends on
 * the batch size alone (dk_shard_count), never on the thread count, and every sum across shards
 * adds them in shard order; one thread runs the same shards one after another, so losses and
 * parameters are bit-identical for any thread count.
 */
#include <omp.h>

#include "descent_kernels.h"

/* Set while this thread runs a shard of a batch of several (dk_in_shard). */
static _Thread_local int32_t in_shard;

int32_t dk_in_shard(void) { return in_shard; }

/* Runs fn(ctx, phase, shard) for every phase in order and, within a phase, for every shard;
 * no shard starts phase p + 1 before every shard has finished phase p (a barrier). Shard s runs
 * on thread s mod T, the same thread in every phase, so its rows stay in that core's cache. */
void dk_run_shards(int32_t phases, int32_t shards, int32_t threads, dk_shard_fn fn, void *ctx) {
    if (threads > shards) threads = shards;
    if (threads < 2) {
        in_shard = shards > 1;
        for (int32_t p = 0; p < phases; p++)
            for (int32_t s = 0; s < shards; s++) fn(ctx, p, s);
        in_shard = 0;
        return;
    }
    /* OpenMP workers do not inherit the caller's floating-point mode (denormals.c): pass it on. */
    const uint32_t caller_mode = dk_fp_mode_get();
#pragma omp parallel num_threads(threads)
    {
        const uint32_t mode = dk_fp_mode_get();
        dk_fp_mode_set(caller_mode);
        const int32_t t = omp_get_thread_num(), team = omp_get_num_threads();
        in_shard = 1;
        for (int32_t p = 0; p < phases; p++) {
            for (int32_t s = t; s < shards; s += team) fn(ctx, p, s);
#pragma omp barrier
        }
        in_shard = 0;
        dk_fp_mode_set(mode);
    }
}

/* out[i] = scale * (blocks[i] + blocks[stride + i] + ... ), count blocks added in order from the
 * first; i in [0, n). The first two blocks are added in one pass. With one block and scale 1
 * this copies; scale 1 never rounds. */
void dk_sum_blocks(const float *restrict blocks, int64_t stride, int32_t count, int64_t n, float scale,
                   float *restrict out) {
    if (count == 1) {
        for (int64_t i = 0; i < n; i++) out[i] = blocks[i];
    } else {
        const float *restrict second = blocks + stride;
        for (int64_t i = 0; i < n; i++) out[i] = blocks[i] + second[i];
    }
    for (int32_t k = 2; k < count; k++) {
        const float *restrict block = blocks + (int64_t)k * stride;
        for (int64_t i = 0; i < n; i++) out[i] += block[i];
    }
    if (scale != 1.0f)
        for (int64_t i = 0; i < n; i++) out[i] *= scale;
}
