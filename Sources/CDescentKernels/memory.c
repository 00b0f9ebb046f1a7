/*
 * memory.c -- the checked allocator: every block of memory the library owns whose size comes
 * from the caller (float buffers sized by a network spec, optimizer state and tables, pointer
 * tables, the generator state) is allocated here, so running out of memory is an error the
 * library can report and undo, never a crash.
 *
 * Why this covers the out-of-memory a user can cause: the large requests are these buffers
 * (a spec such as {"sizes":[100000,100000,10]} asks for 40 GB of weights), and each one fails
 * here with NULL, which Swift turns into DescentError(.outOfMemory). What is not allocated here
 * is the Swift runtime's own small, spec-independent bookkeeping (objects, arrays, strings, a
 * few hundred bytes per layer): swift_slowAlloc traps when malloc returns NULL, which cannot be
 * recovered from, and a process that cannot get those few bytes cannot do anything else either.
 *
 * Blocks are 64-byte aligned (a cache line and an AVX-512 vector) and zeroed; free them with
 * dk_free (plain free(3): the C API hands some of them to callers who release them with free).
 */
#include <stdlib.h>
#include <string.h>

#include "descent_kernels.h"

void *dk_alloc_zeroed(int64_t count, int64_t element_size) {
    if (count < 0 || element_size <= 0 || count > (INT64_MAX - 63) / element_size) return NULL;
    /* aligned_alloc wants a multiple of the alignment; never 0 bytes, so NULL means failure. */
    size_t bytes = (size_t)((count * element_size + 63) / 64 * 64);
    if (bytes == 0) bytes = 64;
    void *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void dk_free(void *p) { free(p); }

/* What an empty FloatBuffer points to: no allocation, so creating one cannot fail. Nothing is
 * ever written through it (its count is 0). */
static _Alignas(64) float empty_floats[16];

float *dk_empty_floats(void) { return empty_floats; }
