/*
 * idx_io.c -- the C side of the IDX (MNIST-format) reader: zlib's stream, which decompresses
 * gzip files and reads any other file as it is, and the byte -> float/int32 conversions
 * (vectorised here at -O3 whatever the Swift build configuration). Header validation and all
 * error messages live in Swift (Sources/Descent/Data/IDXReader.swift).
 */
#include <string.h>
#include <zlib.h>

#include "descent_kernels.h"

/* A dk_gzip is zlib's gzFile under an opaque name, so descent_kernels.h need not include
 * zlib.h (and Swift never sees zlib's API). */
static gzFile as_gz(dk_gzip *gz) { return (gzFile)(void *)gz; }

dk_gzip *dk_gzip_open_fd(int32_t fd) {
    gzFile file = gzdopen(fd, "rb");
    if (!file) return NULL;
    gzbuffer(file, 1u << 18);   /* 256 KiB of compressed input per read(2), not zlib's 8 KiB */
    return (dk_gzip *)(void *)file;
}

int64_t dk_gzip_read(dk_gzip *gz, void *buffer, int64_t n) {
    const z_size_t got = gzfread(buffer, 1, (z_size_t)n, as_gz(gz));   /* any size, unlike gzread */
    if (got == (z_size_t)n) return n;
    /* End of data, or an error that zlib reports only through gzerror (a stream cut short is
     * Z_BUF_ERROR, with the bytes before the cut returned). */
    int code = Z_OK;
    gzerror(as_gz(gz), &code);
    return code == Z_OK ? (int64_t)got : -1;
}

const char *dk_gzip_error(dk_gzip *gz, int32_t *kind) {
    int code = Z_OK;
    const char *message = gzerror(as_gz(gz), &code);
    if (kind) *kind = code == Z_ERRNO ? dk_gzip_io_error
                    : code == Z_MEM_ERROR ? dk_gzip_memory_error
                    : dk_gzip_format_error;
    if (code == Z_BUF_ERROR) return "the gzip stream ends early (unexpected end of file)";
    if (!message || !*message) return "unknown zlib error";
    /* zlib prefixes the file's name, which for gzdopen is "<fd:N>: "; the caller names the file. */
    if (strncmp(message, "<fd:", 4) == 0) {
        const char *rest = strstr(message, ">: ");
        if (rest) return rest + 3;
    }
    return message;
}

int32_t dk_gzip_is_raw(dk_gzip *gz) { return gzdirect(as_gz(gz)) != 0; }

void dk_gzip_close(dk_gzip *gz) {
    if (gz) gzclose_r(as_gz(gz));
}

void dk_bytes_to_unit_floats(const uint8_t *restrict bytes, float *restrict out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)bytes[i] / 255.0f;
}

void dk_bytes_to_int32(const uint8_t *restrict bytes, int32_t *restrict out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = bytes[i];
}
