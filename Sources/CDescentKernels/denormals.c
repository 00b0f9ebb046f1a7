/*
 * denormals.c -- flush subnormal floats to zero while Descent's kernels run.
 *
 * Why: Adam's moments of weights that rarely get a gradient (pixels that are always 0, dead
 * ReLU units) decay geometrically (m *= 0.9, v *= 0.999 per step) and after a few hundred steps
 * become subnormal, where x86 arithmetic is ~100x slower: one Adam step of the seed network at
 * batch 1 went from ~50 us to over 1 ms. Values below 1.2e-38 carry nothing for training, so
 * the kernels run with FTZ (results flushed) and DAZ (inputs treated as zero), as TensorFlow
 * and oneDNN do. The caller's floating-point mode is restored afterwards: a host program never
 * sees the change.
 */
#include "descent_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

enum { FLUSH_TO_ZERO = 0x8000, DENORMALS_ARE_ZERO = 0x0040 };

uint32_t dk_fp_mode_get(void) { return _mm_getcsr(); }
void dk_fp_mode_set(uint32_t mode) { _mm_setcsr(mode); }
static uint32_t with_flush(uint32_t mode) { return mode | FLUSH_TO_ZERO | DENORMALS_ARE_ZERO; }
#else
uint32_t dk_fp_mode_get(void) { return 0; }
void dk_fp_mode_set(uint32_t mode) { (void)mode; }
static uint32_t with_flush(uint32_t mode) { return mode; }
#endif

uint32_t dk_denormals_flush_begin(void) {
    uint32_t saved = dk_fp_mode_get();
    dk_fp_mode_set(with_flush(saved));
    return saved;
}

void dk_denormals_flush_end(uint32_t saved) { dk_fp_mode_set(saved); }
