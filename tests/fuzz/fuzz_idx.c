/*
 * fuzz_idx.c -- libFuzzer target for descent_dataset_load_idx: an images file and a labels file,
 * each raw or gzip-compressed.
 *
 * Input: one mode byte, then the images file's bytes, the separator "=LABELS=", and the labels
 * file's bytes (no separator: the labels file is empty). Mode bit 0 (1) gzips the images
 * file and bit 1 (2) the labels file before they are written, so the fuzzer mutates what the
 * reader sees after decompression; with a bit clear the bytes are written as they are, and
 * bytes that start with 1f 8b are a gzip stream of the fuzzer's making (corrupt ones included).
 * Both files are memfds passed as /proc/self/fd/N.
 *
 * Checked on every input (a violation aborts): on failure every output is NULL/0 and
 * descent_last_error() names the function; on success the counts are positive, every pixel is
 * in [0, 1] (all of them are read, so ASan checks the array's size), and the file the reader
 * accepted has exactly the length its header describes.
 */
#include "fuzz_input.h"   /* first: it defines _GNU_SOURCE */

#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "descent.h"

static const char SEPARATOR[] = "=LABELS=";

/* gzip of `data` (a fresh buffer the caller frees). */
static uint8_t *gzip_bytes(const uint8_t *data, size_t size, size_t *out_size) {
    z_stream z;
    memset(&z, 0, sizeof z);
    FUZZ_REQUIRE(deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
    size_t cap = deflateBound(&z, size) + 32;
    uint8_t *out = malloc(cap);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    FUZZ_REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate");
    *out_size = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* The length an IDX file with this (already accepted) header must have. */
static size_t idx_length(const uint8_t *file, int64_t count, int64_t features) {
    return 4 + 4 * (size_t)file[3] + (size_t)(count * features);
}

/* Writes one part as a memfd, gzipped when asked. */
static int write_part(const uint8_t *data, size_t size, int gzip, char path[40]) {
    if (!gzip) return fuzz_memfile(data, size, path);
    size_t n;
    uint8_t *packed = gzip_bytes(data, size, &n);
    int fd = fuzz_memfile(packed, n, path);
    free(packed);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_input in = {data, size};
    uint8_t mode = fuzz_u8(&in);
    const uint8_t *images = in.data, *labels = in.data + in.size;
    size_t images_size = in.size, labels_size = 0;
    const uint8_t *sep = memmem(in.data, in.size, SEPARATOR, sizeof SEPARATOR - 1);
    if (sep) {
        images_size = (size_t)(sep - in.data);
        labels = sep + sizeof SEPARATOR - 1;
        labels_size = (size_t)(in.data + in.size - labels);
    }
    int gzip_images = mode & 1, gzip_labels = (mode >> 1) & 1;
    char images_path[40], labels_path[40];
    int images_fd = write_part(images, images_size, gzip_images, images_path);
    int labels_fd = write_part(labels, labels_size, gzip_labels, labels_path);

    float *x = (float *)1;
    int32_t *y = (int32_t *)1;
    int64_t count = -1, features = -1;
    int32_t status = descent_dataset_load_idx(images_path, labels_path, &x, &y, &count, &features);
    if (status != DESCENT_OK) {
        FUZZ_REQUIRE(x == NULL && y == NULL && count == 0 && features == 0,
                     "outputs not cleared on error %d", (int)status);
        FUZZ_REQUIRE(fuzz_error_names(descent_last_error(), "descent_dataset_load_idx"),
                     "error message \"%s\"", descent_last_error());
    } else {
        FUZZ_REQUIRE(x != NULL && y != NULL && count > 0 && features > 0, "bad success outputs");
        for (int64_t i = 0; i < count * features; i++)
            FUZZ_REQUIRE(x[i] >= 0.0f && x[i] <= 1.0f, "pixel %lld is %g", (long long)i, (double)x[i]);
        for (int64_t i = 0; i < count; i++)
            FUZZ_REQUIRE(y[i] >= 0 && y[i] <= 255, "label %lld is %d", (long long)i, (int)y[i]);
        /* What the reader accepted has exactly the length its header describes (for bytes
         * written as they are; the fuzzer's own gzip streams are not decompressed here). */
        int images_raw = !gzip_images && !(images_size >= 2 && images[0] == 0x1f && images[1] == 0x8b);
        if (images_raw || gzip_images)
            FUZZ_REQUIRE(images_size == idx_length(images, count, features), "images length %zu", images_size);
        int labels_raw = !gzip_labels && !(labels_size >= 2 && labels[0] == 0x1f && labels[1] == 0x8b);
        if (labels_raw || gzip_labels)
            FUZZ_REQUIRE(labels_size == idx_length(labels, count, 1), "labels length %zu", labels_size);
        descent_dataset_free(x, y);
    }
    close(images_fd);
    close(labels_fd);
    return 0;
}
