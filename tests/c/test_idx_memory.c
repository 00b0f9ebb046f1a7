/*
 * test_idx_memory.c -- an IDX header's claim is never allocated before the data are there.
 *
 * A gzip file's decompressed length is unknown until it has been read, so the reader grows its
 * buffer with the bytes actually decompressed (from 16 MiB) instead of reserving what the
 * header claims. Checked here under an address-space limit (RLIMIT_AS) of the process's size
 * plus 256 MiB: a 2 GB allocation then fails (checked first, so the test can fail), and a
 * gzip pair whose headers claim 2,000,000,000 samples but hold 1000 bytes must be refused as
 * truncated (DESCENT_ERR_FORMAT), not as DESCENT_ERR_OUT_OF_MEMORY. An honest pair loads under
 * the same limit. The files are written with zlib by the test itself.
 */
#define _POSIX_C_SOURCE 200809L   /* mkdtemp */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "descent.h"

#define CLAIM 2000000000u
#define HEADROOM (256l << 20)

/* An IDX file: magic 00 00 08 <rank>, big-endian dimensions, then `n` data bytes (all 3),
 * gzip-compressed into `path`. */
static int write_idx_gzip(const char *path, const uint32_t *dims, int rank, size_t n) {
    gzFile file = gzopen(path, "wb");
    if (!file) return 0;
    unsigned char header[4 + 4 * 3] = {0, 0, 0x08, (unsigned char)rank};
    for (int d = 0; d < rank; d++)
        for (int b = 0; b < 4; b++) header[4 + 4 * d + b] = (unsigned char)(dims[d] >> (24 - 8 * b));
    unsigned char *data = malloc(n ? n : 1);
    if (!data) return 0;
    memset(data, 3, n);
    int ok = gzwrite(file, header, (unsigned)(4 + 4 * rank)) == 4 + 4 * rank &&
             (n == 0 || gzwrite(file, data, (unsigned)n) == (int)n);
    free(data);
    return gzclose(file) == Z_OK && ok;
}

/* The process's current address-space size in bytes (first field of /proc/self/statm). */
static long address_space_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = -1;
    if (f && fscanf(f, "%ld", &pages) != 1) pages = -1;
    if (f) fclose(f);
    return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}

int main(void) {
    char dir[] = "/tmp/descent-idx-memory-XXXXXX";
    if (!mkdtemp(dir)) { printf("FAIL mkdtemp\n"); return 1; }
    char lying_images[128], lying_labels[128], images[128], labels[128];
    snprintf(lying_images, sizeof lying_images, "%s/lying-images.gz", dir);
    snprintf(lying_labels, sizeof lying_labels, "%s/lying-labels.gz", dir);
    snprintf(images, sizeof images, "%s/images.gz", dir);
    snprintf(labels, sizeof labels, "%s/labels.gz", dir);
    const uint32_t claim_images[] = {CLAIM, 1}, claim_labels[] = {CLAIM};
    const uint32_t honest_images[] = {1000, 1}, honest_labels[] = {1000};
    CHECK(write_idx_gzip(lying_images, claim_images, 2, 1000) && write_idx_gzip(lying_labels, claim_labels, 1, 1000) &&
          write_idx_gzip(images, honest_images, 2, 1000) && write_idx_gzip(labels, honest_labels, 1, 1000),
          "wrote the gzip files in %s", dir);

    /* Everything the library sets up on its first calls, before the limit. */
    (void)descent_get_num_threads();
    long size = address_space_bytes();
    struct rlimit limit = {(rlim_t)(size + HEADROOM), (rlim_t)(size + HEADROOM)};
    CHECK(size > 0 && setrlimit(RLIMIT_AS, &limit) == 0, "address space limited to %ld MiB (now %ld MiB)",
          (size + HEADROOM) >> 20, size >> 20);
    void *claimed = malloc(CLAIM);
    CHECK(claimed == NULL, "under the limit, malloc(2 GB) fails (so a reservation of the claim would)");
    free(claimed);

    float *x = NULL;
    int32_t *y = NULL;
    int64_t count = -1, features = -1;
    CHECK_ERROR(descent_dataset_load_idx(lying_images, lying_labels, &x, &y, &count, &features), DESCENT_ERR_FORMAT,
                sfmt("descent_dataset_load_idx: images file '%s' is truncated: 1012 bytes after decompression, "
                     "expected 2000000012 (12-byte header + 2000000000 data bytes for 2000000000 x 1)", lying_images),
                "headers claiming 2e9 samples, 1000 bytes of data");
    CHECK(x == NULL && y == NULL && count == 0 && features == 0, "nothing returned");
    CHECK_STATUS(descent_dataset_load_idx(images, labels, &x, &y, &count, &features), DESCENT_OK,
                 "an honest pair of 1000 samples under the same limit");
    CHECK(count == 1000 && features == 1 && x && y && x[999] == 3.0f / 255.0f && y[999] == 3,
          "its count, features and last sample");
    descent_dataset_free(x, y);

    unlink(lying_images), unlink(lying_labels), unlink(images), unlink(labels);
    rmdir(dir);
    return check_summary();
}
