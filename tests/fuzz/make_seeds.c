/*
 * make_seeds.c -- writes the committed seed corpora of the fuzz targets (tests/fuzz/corpus/),
 * made by the library itself where it can: real checkpoints saved by descent_net_save after a
 * few training steps, real IDX files (a slice of Fashion-MNIST's test set when Debian's
 * dataset-fashion-mnist is installed, else hand-made digits), spec and hyperparameter texts.
 * Run by `scripts/fuzz.sh seeds`; the output is deterministic (fixed seeds, one thread).
 *
 *   make_seeds <corpus dir>
 */
#include "fuzz_input.h"   /* first: it defines _GNU_SOURCE */

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "descent.h"

static const char *root;

static void write_file(const char *target, const char *name, const void *data, size_t size) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, target);
    FUZZ_REQUIRE(mkdir(path, 0777) == 0 || errno == EEXIST, "mkdir %s", path);
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    FUZZ_REQUIRE(f && fwrite(data, 1, size, f) == size && fclose(f) == 0, "write %s", path);
}

/* A string literal's bytes, embedded NULs included (not its terminating NUL). */
#define WRITE_LITERAL(target, name, literal) write_file(target, name, literal, sizeof literal - 1)

/* ---- checkpoints -----------------------------------------------------------------------------*/

static void checkpoint(const char *name, const char *spec, const char *optimizer, const char *hparams, int steps) {
    descent_net *net = NULL;
    FUZZ_REQUIRE(descent_net_create(spec, &net) == DESCENT_OK, "%s", descent_last_error());
    FUZZ_REQUIRE(descent_net_set_optimizer(net, optimizer, hparams) == DESCENT_OK, "%s", descent_last_error());
    int64_t w1 = 0, b1 = 0;
    descent_net_param(net, 0, NULL, NULL, NULL, &w1);
    descent_net_param(net, 1, NULL, NULL, NULL, &b1);
    int64_t inputs = w1 / b1;
    float x[2 * 64];
    int32_t labels[2] = {0, 1};
    for (int64_t i = 0; i < 2 * inputs; i++) x[i] = (float)((i * 7) % 11) / 11.0f;
    for (int s = 0; s < steps; s++)
        FUZZ_REQUIRE(descent_net_train_step(net, x, labels, 2, NULL) == DESCENT_OK, "%s", descent_last_error());
    char path[512];
    snprintf(path, sizeof path, "%s/checkpoint/%s", root, name);
    FUZZ_REQUIRE(descent_net_save(net, path) == DESCENT_OK, "%s", descent_last_error());
    descent_net_free(net);
}

/* ---- IDX ---------------------------------------------------------------------------------------*/

/* Appends an IDX file (unsigned bytes) with the given dimensions and data to buf. */
static size_t idx_file(uint8_t *buf, const uint32_t *dims, int rank, const uint8_t *data) {
    size_t n = 0, elements = 1;
    buf[n++] = 0, buf[n++] = 0, buf[n++] = 0x08, buf[n++] = (uint8_t)rank;
    for (int i = 0; i < rank; i++) {
        for (int b = 3; b >= 0; b--) buf[n++] = (uint8_t)(dims[i] >> (8 * b));
        elements *= dims[i];
    }
    memcpy(buf + n, data, elements);
    return n + elements;
}

/* A fuzz_idx input: mode byte, images file, "=LABELS=", labels file. */
static void idx_seed(const char *name, uint8_t mode, const uint32_t *image_dims, int rank,
                     const uint8_t *pixels, const uint8_t *labels) {
    static uint8_t buf[1 << 16];
    size_t n = 0;
    buf[n++] = mode;
    n += idx_file(buf + n, image_dims, rank, pixels);
    memcpy(buf + n, "=LABELS=", 8);
    n += 8;
    n += idx_file(buf + n, image_dims, 1, labels);
    write_file("idx", name, buf, n);
}

/* Reads the first `count` images (28 x 28) and labels of Fashion-MNIST's test set. */
static int fashion_slice(int count, uint8_t *pixels, uint8_t *labels) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char path[256];
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", dir);
    gzFile f = gzopen(path, "rb");
    if (!f) return 0;
    uint8_t header[16];
    int ok = gzread(f, header, 16) == 16 && gzread(f, pixels, (unsigned)(count * 784)) == count * 784;
    gzclose(f);
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", dir);
    f = gzopen(path, "rb");
    if (!f) return 0;
    ok = ok && gzread(f, header, 8) == 8 && gzread(f, labels, (unsigned)count) == count;
    gzclose(f);
    return ok;
}

/* The same file as the fuzzer's own gzip stream: mode 0, bytes 1f 8b ... as written. */
static void idx_gzip_stream_seed(const char *name, const uint32_t *dims, int rank, const uint8_t *pixels,
                                 const uint8_t *labels) {
    static uint8_t file[1 << 16], packed[1 << 16], buf[1 << 17];
    size_t n = idx_file(file, dims, rank, pixels);
    z_stream z;
    memset(&z, 0, sizeof z);
    FUZZ_REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
    z.next_in = file, z.avail_in = (uInt)n, z.next_out = packed, z.avail_out = sizeof packed;
    FUZZ_REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate");
    size_t packed_size = sizeof packed - z.avail_out;
    deflateEnd(&z);
    size_t m = 0;
    buf[m++] = 0;
    memcpy(buf + m, packed, packed_size);
    m += packed_size;
    memcpy(buf + m, "=LABELS=", 8);
    m += 8;
    m += idx_file(buf + m, dims, 1, labels);
    write_file("idx", name, buf, m);
}

int main(int argc, char **argv) {
    FUZZ_REQUIRE(argc == 2, "usage: make_seeds <corpus dir>");
    root = argv[1];
    descent_set_num_threads(1);

    /* Checkpoints: small networks, each optimizer family, with and without state. */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/checkpoint", root);
    FUZZ_REQUIRE(mkdir(dir, 0777) == 0 || errno == EEXIST, "mkdir %s", dir);
    checkpoint("seed-sgd-fresh.safetensors", "{\"sizes\":[4,3,2]}", "sgd", "lr=0.1", 0);
    checkpoint("seed-adam-3-steps.safetensors", "{\"sizes\":[5,4,3],\"seed\":7}", "adam", "lr=0.01", 3);
    checkpoint("seed-momentum-batchnorm.safetensors", "{\"sizes\":[3,4,4,2],\"batchnorm\":true,\"activation\":\"tanh\"}",
               "momentum", "lr=0.05,momentum=0.8", 2);
    checkpoint("seed-rmsprop-dropout.safetensors", "{\"sizes\":[6,5,2],\"dropout\":0.25,\"init\":\"std:0.01\"}",
               "rmsprop", NULL, 1);

    /* Specs. */
    WRITE_LITERAL("spec", "seed-minimal.json", "{\"sizes\":[4,3,2]}");
    WRITE_LITERAL("spec", "seed-full.json",
               "{\"sizes\":[8,6,4,3],\"activation\":\"sigmoid\",\"init\":\"xavier\",\"batchnorm\":true,"
               "\"dropout\":0.5,\"weight_decay\":0.001,\"seed\":42}");
    WRITE_LITERAL("spec", "seed-std-init.json", "{\"sizes\":[2,2],\"init\":\"std:0.01\",\"activation\":\"tanh\",\"seed\":0}");
    WRITE_LITERAL("spec", "seed-zeros.json", "{\"sizes\":[3,5,2],\"init\":\"zeros\",\"dropout\":0.0,\"weight_decay\":1e-3}");

    /* Hyperparameters: selector byte, name (selector 7 only), hparams line, operations. */
    WRITE_LITERAL("hparams", "seed-adam-ops", "\x05lr=0.001, beta1=0.9,beta2=0.999,eps=1e-8\n"
                  "\x00\x00" "\x00\x00\x00\x00\x00\x00\xe0\x3f"                     /* set lr = 0.5 */
                  "\x02\x00\x03" "\x00\x00\x80\x3f\x00\x00\x00\xbf\x00\x00\x00\x00"  /* step [1, -0.5, 0] */
                  "\x01\x09"                                                 /* get step */
                  "\x03");                                                    /* reset */
    WRITE_LITERAL("hparams", "seed-sgd-empty", "\x00\n");
    WRITE_LITERAL("hparams", "seed-momentum-wd", "\x01lr=0.01,momentum=0.9,weight_decay=0.0001,check_finite=0\n\x02\x00\x02");
    WRITE_LITERAL("hparams", "seed-rmsprop-null", "\x84\n");
    WRITE_LITERAL("hparams", "seed-adamw-bad", "\x06lr=abc,,=1\n");
    WRITE_LITERAL("hparams", "seed-named", "\x07nesterov\nlr = 1e-2 ,momentum= 0.5\n\x01\x00");

    /* IDX: a slice of Fashion-MNIST (raw, gzip by the harness, both), and tiny hand-made sets. */
    static uint8_t pixels[3 * 784], labels[3];
    uint32_t fashion_dims[3] = {3, 28, 28};
    if (fashion_slice(3, pixels, labels)) {
        idx_seed("seed-fashion3-raw", 0, fashion_dims, 3, pixels, labels);
        idx_seed("seed-fashion3-gzip-both", 3, fashion_dims, 3, pixels, labels);
    } else {
        fprintf(stderr, "make_seeds: no Fashion-MNIST in /usr/share/datasets/fashion-mnist: hand-made IDX only\n");
    }
    static const uint8_t tiny_pixels[] = {0, 255, 128, 1, 2, 3, 4, 5, 6, 7, 8, 9}, tiny_labels[] = {9, 0, 3};
    uint32_t dims_3x2x2[3] = {3, 2, 2}, dims_2x6[2] = {2, 6}, dims_1x2x2x3[4] = {1, 2, 2, 3};
    idx_seed("seed-tiny-raw", 0, dims_3x2x2, 3, tiny_pixels, tiny_labels);
    idx_seed("seed-tiny-gzip-images", 1, dims_3x2x2, 3, tiny_pixels, tiny_labels);
    idx_seed("seed-rank2-gzip-labels", 2, dims_2x6, 2, tiny_pixels, tiny_labels);
    idx_seed("seed-rank4", 0, dims_1x2x2x3, 4, tiny_pixels, tiny_labels);
    idx_gzip_stream_seed("seed-own-gzip-stream", dims_3x2x2, 3, tiny_pixels, tiny_labels);

    /* Plugin descriptors, in fuzz_plugin_descriptor.swift's input format: a valid plugin with one
     * optimizer of two hyperparameters, and one with two optimizers (its own weight_decay, a
     * boolean flag). Doubles: a byte < 32 picks a special value (0: 0, 1: 1, 4: inf, 12: 0.9),
     * 0x20 is followed by 8 raw bytes. */
    WRITE_LITERAL("plugin_descriptor", "seed-one-optimizer",
                  "\x01\x00" "\x00" "\x04test" "\x05" "1.0.0" "\x0b" "\x01"     /* plugin, 1 optimizer */
                  "\x01" "\x00" "\x01" "\x04" "fast" "\x03" "x+y" "\x13" "\x0b"   /* 2 hparams, 1 state */
                  "\x01" "\x00"                                                /* table, real stride */
                  "\x01\x01" "\x02lr" "\xf0" "\x20\x7b\x14\xae\x47\xe1\x7a\x84\x3f" "\x00" "\x04"
                  "\x01\x00" "\x04" "beta" "\x05" "decay" "\x0c" "\x00" "\x01"
                  "\x03");                                                      /* prepare + step */
    WRITE_LITERAL("plugin_descriptor", "seed-two-optimizers",
                  "\x01\x00" "\x00" "\x02pp" "\xf0" "\x13" "\x01"            /* plugin, 2 optimizers */
                  "\x01" "\x00" "\x00" "\x03" "one" "\xf0" "\x0b" "\x03" "\x01" "\x00"
                  "\x01\x00" "\x0c" "weight_decay" "\x00" "\x00" "\x00" "\x04"
                  "\x02"
                  "\x01" "\x00" "\x01" "\x03" "two" "\x00" "\x0b" "\x03" "\x01" "\x00"
                  "\x01\x04" "\x04" "flag" "\x00" "\x01" "\x00" "\x01"
                  "\x02");
    return 0;
}
