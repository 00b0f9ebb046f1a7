/*
 * fuzz_input.h -- what the C fuzz targets share: reading typed values off the front of a
 * fuzzer's input, in-memory files with a path, and a check that aborts (so libFuzzer reports
 * the input) when the library breaks a promise of descent.h.
 */
#ifndef DESCENT_FUZZ_INPUT_H
#define DESCENT_FUZZ_INPUT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* memfd_create, memmem, strdup: include this header first */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A broken promise is a finding: print it and abort, so libFuzzer keeps the input. */
#define FUZZ_REQUIRE(cond, ...)                                                          \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz: %s:%d: %s: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* A cursor over the input; reading past the end gives zeros (a short input is still used). */
typedef struct fuzz_input {
    const uint8_t *data;
    size_t size;
} fuzz_input;

static inline uint8_t fuzz_u8(fuzz_input *in) {
    if (in->size == 0) return 0;
    uint8_t v = in->data[0];
    in->data++;
    in->size--;
    return v;
}

static inline void fuzz_bytes(fuzz_input *in, void *out, size_t n) {
    size_t take = n < in->size ? n : in->size;
    memcpy(out, in->data, take);
    memset((uint8_t *)out + take, 0, n - take);
    in->data += take;
    in->size -= take;
}

static inline uint32_t fuzz_u32(fuzz_input *in) { uint32_t v; fuzz_bytes(in, &v, sizeof v); return v; }
static inline double fuzz_double(fuzz_input *in) { double v; fuzz_bytes(in, &v, sizeof v); return v; }
static inline float fuzz_float(fuzz_input *in) { float v; fuzz_bytes(in, &v, sizeof v); return v; }

/* A NUL-terminated copy of the bytes up to `end` (or the end of the input), which is consumed.
 * The caller frees it. Embedded NULs stay in the copy: C sees the string up to the first. */
static inline char *fuzz_string(fuzz_input *in, uint8_t end) {
    size_t n = 0;
    while (n < in->size && in->data[n] != end) n++;
    char *s = malloc(n + 1);
    memcpy(s, in->data, n);
    s[n] = '\0';
    size_t used = n < in->size ? n + 1 : n;
    in->data += used;
    in->size -= used;
    return s;
}

/* An in-memory file (memfd) holding `data`, reachable by `path` (/proc/self/fd/N): the library
 * opens paths, and this keeps every execution off the disk. Returns the descriptor; the caller
 * closes it, which frees the file. */
static inline int fuzz_memfile(const void *data, size_t size, char path[40]) {
    int fd = memfd_create("descent-fuzz", MFD_CLOEXEC);
    FUZZ_REQUIRE(fd >= 0, "memfd_create failed");
    const uint8_t *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        FUZZ_REQUIRE(n > 0, "write to a memfd failed");
        p += n;
        size -= (size_t)n;
    }
    snprintf(path, 40, "/proc/self/fd/%d", fd);
    return fd;
}

/* descent_last_error() after a failure: "<function>: <problem>", a problem that is not empty. */
static inline int fuzz_error_names(const char *message, const char *function) {
    size_t n = strlen(function);
    return strncmp(message, function, n) == 0 && message[n] == ':' && message[n + 1] == ' ' &&
           message[n + 2] != '\0';
}

#endif
