/*
 * test_oom_cleanup.c -- a call that runs out of memory fails cleanly: it returns
 * DESCENT_ERR_OUT_OF_MEMORY with a message naming the function, and frees everything it had
 * allocated (before the fix, descent_net_create leaked the 32-byte generator state, and the
 * pointer tables, on every failure).
 *
 * The program interposes the C allocator (an executable's malloc and friends win over libc's
 * for every library in the process) and keeps the live heap: allocations minus frees, in count
 * and in usable bytes. Then, for descent_net_create, descent_net_set_optimizer,
 * descent_net_load, descent_optimizer_create, an optimizer's first descent_optimizer_step and
 * descent_dataset_load_idx, it makes the library's own allocations fail one at a time: the Nth for
 * N = 1, 2, ... until the call succeeds. Only calls made from libdescent's code are failed
 * (the checked allocations: float buffers, optimizer state and tables, the generator); the
 * Swift runtime's own allocations (objects, arrays, strings) trap on NULL by design and are
 * left alone. After each failed call the live heap (and the open file descriptors) must be
 * exactly as before it.
 *
 * Each sequence runs twice: the first pass warms up what a process allocates once and keeps
 * (Swift metadata caches, the thread's error-message buffer at its largest); the second is
 * the one checked.
 *
 * Last, the realistic case: a network far larger than the address space allowed (the limit is
 * set with setrlimit here) fails the same way, with no injected failure at all.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <link.h>
#include <malloc.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "descent.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

/* ---- the interposed allocator ----------------------------------------------------------------*/

static atomic_long live_count, live_bytes;
/* The library allocation to fail (1-based, counted since arming); 0 = fail none. */
static atomic_long fail_at, library_calls;
/* libdescent's loaded segments, found once with dl_iterate_phdr. */
static uintptr_t library_start, library_end;

static void note_allocated(void *p) {
    if (!p) return;
    atomic_fetch_add(&live_count, 1);
    atomic_fetch_add(&live_bytes, (long)malloc_usable_size(p));
}

static void note_freed(void *p) {
    if (!p) return;
    atomic_fetch_sub(&live_count, 1);
    atomic_fetch_sub(&live_bytes, (long)malloc_usable_size(p));
}

/* Whether this allocation, made from `caller`, is the one to fail. */
static int should_fail(void *caller) {
    if (!atomic_load_explicit(&fail_at, memory_order_relaxed)) return 0;
    uintptr_t at = (uintptr_t)caller;
    if (at < library_start || at >= library_end) return 0;
    return atomic_fetch_add(&library_calls, 1) + 1 == atomic_load(&fail_at);
}

#define CALLER __builtin_return_address(0)
void *malloc(size_t n) {
    if (should_fail(CALLER)) return NULL;
    void *p = __libc_malloc(n);
    note_allocated(p);
    return p;
}
void *calloc(size_t c, size_t n) {
    if (should_fail(CALLER)) return NULL;
    void *p = __libc_calloc(c, n);
    note_allocated(p);
    return p;
}
void *realloc(void *old, size_t n) {
    if (should_fail(CALLER)) return NULL;
    long old_bytes = old ? (long)malloc_usable_size(old) : 0;
    void *p = __libc_realloc(old, n);
    if (!p && n) return NULL;   /* the old block is untouched */
    if (old) {
        atomic_fetch_sub(&live_count, 1);
        atomic_fetch_sub(&live_bytes, old_bytes);
    }
    note_allocated(p);
    return p;
}
void free(void *p) {
    note_freed(p);
    __libc_free(p);
}
void *aligned_alloc(size_t a, size_t n) {
    if (should_fail(CALLER)) return NULL;
    void *p = __libc_memalign(a, n);
    note_allocated(p);
    return p;
}
void *memalign(size_t a, size_t n) {
    if (should_fail(CALLER)) return NULL;
    void *p = __libc_memalign(a, n);
    note_allocated(p);
    return p;
}
int posix_memalign(void **out, size_t a, size_t n) {
    if (should_fail(CALLER)) return 12; /* ENOMEM */
    void *p = __libc_memalign(a, n);
    if (!p) return 12;
    note_allocated(p);
    *out = p;
    return 0;
}

static int find_library(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    (void)data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "libdescent")) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
        if (!library_start || start < library_start) library_start = start;
        if (end > library_end) library_end = end;
    }
    return 1;
}

static int open_descriptors(void) {
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) return -1;
    int n = 0;
    while (readdir(dir)) n++;
    closedir(dir);
    return n;
}

/* ---- failing each allocation in turn ---------------------------------------------------------*/

typedef struct operation {
    const char *function;   /* the C function, which every message must name first */
    int32_t (*run)(void *arg);
    void (*undo)(void *arg); /* after a success */
    void *arg;
} operation;

typedef struct outcome {
    int failures;            /* calls that failed before the first success */
    int bad_status, bad_message, leaked, succeeded;
} outcome;

static outcome fail_each(const operation *op, int report) {
    outcome o = {0};
    for (long n = 1; n < 10000; n++) {
        long count = atomic_load(&live_count), bytes = atomic_load(&live_bytes);
        int fds = open_descriptors();
        atomic_store(&library_calls, 0);
        atomic_store(&fail_at, n);
        int32_t status = op->run(op->arg);
        atomic_store(&fail_at, 0);
        if (status == DESCENT_OK) {
            op->undo(op->arg);
            o.succeeded = 1;
            break;
        }
        o.failures++;
        const char *message = descent_last_error();
        long count_now = atomic_load(&live_count), bytes_now = atomic_load(&live_bytes);
        int fds_now = open_descriptors();
        size_t prefix = strlen(op->function);
        int named = strncmp(message, op->function, prefix) == 0 && strncmp(message + prefix, ": ", 2) == 0;
        if (status != DESCENT_ERR_OUT_OF_MEMORY && o.bad_status++ == 0 && report)
            printf("       allocation %ld failing: got %s \"%s\"\n", n, descent_status_name(status), message);
        if ((!named || !strstr(message, "allocate")) && o.bad_message++ == 0 && report)
            printf("       allocation %ld failing: message \"%s\"\n", n, message);
        if ((count_now != count || bytes_now != bytes || fds_now != fds) && o.leaked++ == 0 && report)
            printf("       allocation %ld failing: %ld blocks / %ld bytes / %d descriptors left behind\n", n,
                   count_now - count, bytes_now - bytes, fds_now - fds);
    }
    return o;
}

static void check_cleanup(const operation *op, int at_least) {
    fail_each(op, 0);   /* warm-up */
    outcome o = fail_each(op, 1);
    CHECK(o.succeeded, "%s succeeds once no allocation fails", op->function);
    CHECK(o.failures >= at_least, "%s: %d fallible allocations (at least %d expected)", op->function, o.failures,
          at_least);
    CHECK(o.bad_status == 0, "%s: each failing allocation gives DESCENT_ERR_OUT_OF_MEMORY (%d did not)",
          op->function, o.bad_status);
    CHECK(o.bad_message == 0, "%s: each message starts \"%s: \" and says what it could not allocate (%d did not)",
          op->function, op->function, o.bad_message);
    CHECK(o.leaked == 0, "%s: each failure leaves the heap and the open files as they were (%d did not)",
          op->function, o.leaked);
}

/* ---- the operations ------------------------------------------------------------------------*/

typedef struct net_call {
    const char *spec, *path, *optimizer, *hparams;
    descent_net *net;
} net_call;

static int32_t create(void *arg) {
    net_call *c = arg;
    return descent_net_create(c->spec, &c->net);
}
static int32_t load(void *arg) {
    net_call *c = arg;
    return descent_net_load(c->path, &c->net);
}
static void free_net(void *arg) {
    net_call *c = arg;
    descent_net_free(c->net);
    c->net = NULL;
}
static int32_t set_optimizer(void *arg) {
    net_call *c = arg;
    return descent_net_set_optimizer(c->net, c->optimizer, c->hparams);
}
static void nothing(void *arg) { (void)arg; }

typedef struct optimizer_call {
    descent_optimizer *opt;
    float *params[2];
    const float *grads[2];
    int64_t lengths[2];
} optimizer_call;

static int32_t create_optimizer(void *arg) {
    return descent_optimizer_create("adam", "lr=0.01", &((optimizer_call *)arg)->opt);
}
static void free_optimizer(void *arg) { descent_optimizer_free(((optimizer_call *)arg)->opt); }
/* The first step allocates the optimizer's state; reset frees it again. */
static int32_t first_step(void *arg) {
    optimizer_call *c = arg;
    return descent_optimizer_step(c->opt, 2, c->params, c->grads, c->lengths);
}
static void reset_optimizer(void *arg) { descent_optimizer_reset(((optimizer_call *)arg)->opt); }

typedef struct dataset_call {
    const char *images, *labels;
    float *x;
    int32_t *y;
    int64_t count, features;
} dataset_call;

static int32_t load_dataset(void *arg) {
    dataset_call *c = arg;
    return descent_dataset_load_idx(c->images, c->labels, &c->x, &c->y, &c->count, &c->features);
}
static void free_dataset(void *arg) {
    dataset_call *c = arg;
    descent_dataset_free(c->x, c->y);
}

/* An IDX file of `count` samples of `rank - 1` dimensions of 2 (bytes of i % 251). */
static void write_idx(const char *path, int rank, uint32_t count, int gzipped) {
    unsigned char data[4 + 4 * 3 + 5 * 4] = {0, 0, 8, (unsigned char)rank};
    size_t n = 4, elements = count;
    for (int d = 0; d < rank; d++) {
        uint32_t size = d == 0 ? count : 2;
        if (d > 0) elements *= 2;
        data[n++] = (unsigned char)(size >> 24), data[n++] = (unsigned char)(size >> 16);
        data[n++] = (unsigned char)(size >> 8), data[n++] = (unsigned char)size;
    }
    for (size_t i = 0; i < elements; i++) data[n++] = (unsigned char)(i % 251);
    if (gzipped) {
        /* The library's own writer is not public; a stored (uncompressed) gzip member is simple
         * enough to write here: header, one final stored deflate block, CRC-32, length. */
        unsigned crc = 0xFFFFFFFFu;
        for (size_t i = 0; i < n; i++) {
            crc ^= data[i];
            for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
        crc ^= 0xFFFFFFFFu;
        FILE *f = fopen(path, "wb");
        const unsigned char head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
        const unsigned char block[5] = {1, (unsigned char)n, (unsigned char)(n >> 8), (unsigned char)~n,
                                        (unsigned char)(~n >> 8)};
        fwrite(head, 1, sizeof head, f);
        fwrite(block, 1, sizeof block, f);
        fwrite(data, 1, n, f);
        const unsigned char tail[8] = {(unsigned char)crc, (unsigned char)(crc >> 8), (unsigned char)(crc >> 16),
                                       (unsigned char)(crc >> 24), (unsigned char)n, (unsigned char)(n >> 8), 0, 0};
        fwrite(tail, 1, sizeof tail, f);
        fclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

int main(void) {
    dl_iterate_phdr(find_library, NULL);
    if (!CHECK(library_end > library_start, "libdescent's segments found")) return check_summary();

    /* Batch norm and dropout: 10 parameters (W, b, gamma, beta) in the parameter and the
     * gradient arena (one allocation each), their names, running averages, layer buffers, the
     * generator and the optimizer's tables: 27 allocations (47 when each parameter had its own
     * value and gradient buffer). */
    net_call bn = {.spec = "{\"sizes\":[20,16,12,4],\"batchnorm\":true,\"dropout\":0.25,\"seed\":5}"};
    check_cleanup(&(operation){"descent_net_create", create, free_net, &bn}, 27);
    /* Neither: 6 parameters in the two arenas, and the batch-1 path's buffers (24; 36 before). */
    net_call plain = {.spec = "{\"sizes\":[20,16,12,4],\"seed\":5}"};
    check_cleanup(&(operation){"descent_net_create", create, free_net, &plain}, 24);

    CHECK_STATUS(descent_net_create(bn.spec, &bn.net), DESCENT_OK, "create a network");
    bn.optimizer = "adam";
    bn.hparams = "lr=0.01,beta1=0.8";
    check_cleanup(&(operation){"descent_net_set_optimizer", set_optimizer, nothing, &bn}, 1);

    /* A checkpoint with everything: batch-norm averages and Adam's state after a step (each
     * state slot is one buffer with the arena's layout: 33 allocations, 53 with a buffer per
     * tensor and slot). */
    float x[3 * 20];
    int32_t y[3] = {0, 1, 3};
    for (int i = 0; i < 3 * 20; i++) x[i] = (float)((i * 7) % 11) / 11.0f;
    CHECK_STATUS(descent_net_train_step(bn.net, x, y, 3, NULL), DESCENT_OK, "one Adam step");
    char path[] = "oom_cleanup_checkpoint.safetensors";
    CHECK_STATUS(descent_net_save(bn.net, path), DESCENT_OK, "save it");
    descent_net_free(bn.net);
    net_call loading = {.path = path};
    check_cleanup(&(operation){"descent_net_load", load, free_net, &loading}, 33);
    remove(path);

    optimizer_call adam = {0};
    check_cleanup(&(operation){"descent_optimizer_create", create_optimizer, free_optimizer, &adam}, 3);
    static float p0[100], g0[100], p1[3], g1[3];
    for (int i = 0; i < 100; i++) g0[i] = 0.01f * (float)(i % 7);
    adam.params[0] = p0, adam.params[1] = p1, adam.grads[0] = g0, adam.grads[1] = g1;
    adam.lengths[0] = 100, adam.lengths[1] = 3;
    CHECK_STATUS(descent_optimizer_create("adam", NULL, &adam.opt), DESCENT_OK, "create adam");
    /* One buffer per state slot, holding both tensors' state. */
    check_cleanup(&(operation){"descent_optimizer_step", first_step, reset_optimizer, &adam}, 2);
    descent_optimizer_free(adam.opt);

    /* Data sets: the data buffer, then the float and label arrays handed to the caller. */
    write_idx("oom_images", 3, 5, 0);
    write_idx("oom_labels", 1, 5, 0);
    write_idx("oom_images.gz", 3, 5, 1);
    dataset_call raw = {.images = "oom_images", .labels = "oom_labels"};
    check_cleanup(&(operation){"descent_dataset_load_idx", load_dataset, free_dataset, &raw}, 4);
    dataset_call gz = {.images = "oom_images.gz", .labels = "oom_labels"};
    check_cleanup(&(operation){"descent_dataset_load_idx", load_dataset, free_dataset, &gz}, 4);
    CHECK_STATUS(load_dataset(&gz), DESCENT_OK, "the gzip file loads");
    CHECK(gz.count == 5 && gz.features == 4 && gz.y[4] == 4 && fabsf(gz.x[19] - 19.0f / 255.0f) < 1e-7f,
          "5 samples of 4 features, the values as written");
    free_dataset(&gz);
    remove("oom_images");
    remove("oom_labels");
    remove("oom_images.gz");

    /* A spec that needs 40 GB of weights in a process allowed 4 GB more address space than it
     * has: a plain out-of-memory error, nothing left behind. */
    long pages = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (statm) {
        if (fscanf(statm, "%ld", &pages) != 1) pages = 0;
        fclose(statm);
    }
    struct rlimit old, limit;
    getrlimit(RLIMIT_AS, &old);
    limit = old;
    limit.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (4ul << 30);
    CHECK(pages > 0 && setrlimit(RLIMIT_AS, &limit) == 0, "address space limited to 4 GB above the current size");
    long count = atomic_load(&live_count), bytes = atomic_load(&live_bytes);
    descent_net *huge = (descent_net *)1;
    int32_t status = descent_net_create("{\"sizes\":[100000,100000,10]}", &huge);
    const char *message = descent_last_error();
    CHECK_STATUS(status, DESCENT_ERR_OUT_OF_MEMORY, "a network of 10^10 weights");
    /* W1 10^10 floats, b1 10^5, W2 10^6, b2 10 padded to 16: 40004400064 bytes in one block. */
    CHECK(strcmp(message, "descent_net_create: the parameter arena: cannot allocate 10001100016 floats "
                          "(40004400064 bytes)") == 0,
          "its message names the function, the arena and its size: \"%s\"", message);
    CHECK(huge == NULL, "*out is NULL");
    CHECK(atomic_load(&live_count) == count && atomic_load(&live_bytes) == bytes,
          "the heap is as it was (%ld blocks, %ld bytes left behind)", atomic_load(&live_count) - count,
          atomic_load(&live_bytes) - bytes);
    setrlimit(RLIMIT_AS, &old);
    return check_summary();
}
