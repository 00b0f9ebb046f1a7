/*
 * gzip_writer.c -- test_gzip_write_file: zlib's gzwrite in chunks that fit its unsigned length.
 */
#include "gzip_writer.h"

#include <zlib.h>

int32_t test_gzip_write_file(const char *path, const void *data, int64_t n) {
    gzFile file = gzopen(path, "wb");
    if (!file) return -1;
    const unsigned char *in = data;
    int ok = 1;
    for (int64_t done = 0; ok && done < n;) {
        int64_t chunk = n - done > (1 << 30) ? (1 << 30) : n - done;
        ok = gzwrite(file, in + done, (unsigned)chunk) == (int)chunk;
        done += chunk;
    }
    if (gzclose_w(file) != Z_OK) ok = 0;
    return ok ? 0 : -1;
}
