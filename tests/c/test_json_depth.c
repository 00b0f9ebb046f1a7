/*
 * test_json_depth.c -- JSON at the C API, on a thread with a small stack.
 *
 * descent_net_create and descent_net_load are "safe from any thread", and a thread may have a
 * small stack: here 256 KB (musl's default is 128 KB). Specs and checkpoint headers that nest
 * 500 levels deep used to overflow it inside the JSON decoder (SIGSEGV, the whole process
 * gone); now each call returns an error status with the exact message, a spec nested right up
 * to the 64-level limit is read, and JSON errors say where they are.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "descent.h"

enum { STACK_BYTES = 256 * 1024, DEEP = 500 };

static char directory[] = "/tmp/descent-json-depth-XXXXXX";

/* "<prefix>" + depth x open + inner + depth x close + "<suffix>", malloc'd. */
static char *nested(const char *prefix, const char *open, const char *inner, const char *close,
                    int depth, const char *suffix) {
    size_t size = strlen(prefix) + depth * (strlen(open) + strlen(close)) + strlen(inner) + strlen(suffix) + 1;
    char *text = malloc(size), *end = text;
    end = stpcpy(end, prefix);
    for (int i = 0; i < depth; i++) end = stpcpy(end, open);
    end = stpcpy(end, inner);
    for (int i = 0; i < depth; i++) end = stpcpy(end, close);
    stpcpy(end, suffix);
    return text;
}

/* A safetensors file holding `header` and no data; returns its path (static buffer). */
static const char *header_file(const char *name, const char *header) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s.safetensors", directory, name);
    FILE *f = fopen(path, "wb");
    uint64_t length = strlen(header);
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++) prefix[i] = (unsigned char)(length >> (8 * i));
    fwrite(prefix, 1, 8, f);
    fwrite(header, 1, length, f);
    fclose(f);
    return path;
}

/* Expects descent_net_load(path) to fail with `status` and "descent_net_load: '<path>': <message>". */
static void check_load_error(const char *path, int32_t status, const char *message, const char *what) {
    char expected[1024];
    snprintf(expected, sizeof expected, "descent_net_load: '%s': %s", path, message);
    descent_net *net = (descent_net *)1;
    CHECK_ERROR(descent_net_load(path, &net), status, expected, what);
    CHECK(net == NULL, "%s: *out is NULL", what);
}

static void check_create_error(const char *spec, int32_t status, const char *message, const char *what) {
    descent_net *net = (descent_net *)1;
    CHECK_ERROR(descent_net_create(spec, &net), status, message, what);
    CHECK(net == NULL, "%s: *out is NULL", what);
}

static void *run(void *finished) {
    /* specs: the 65th level opens at byte 9 + 63 (arrays) and 5 * 64 (objects) */
    char *arrays = nested("{\"sizes\":", "[", "", "]", DEEP, "}");
    check_create_error(arrays, DESCENT_ERR_FORMAT,
        "descent_net_create: the network spec nests arrays and objects more than 64 levels deep at line 1, column 73 (byte 72)",
        "descent_net_create, 500 nested arrays");
    char *objects = nested("", "{\"a\":", "1", "}", DEEP, "");
    check_create_error(objects, DESCENT_ERR_FORMAT,
        "descent_net_create: the network spec nests arrays and objects more than 64 levels deep at line 1, column 321 (byte 320)",
        "descent_net_create, 500 nested objects");
    char *at_limit = nested("{\"sizes\":", "[", "", "]", 63, "}");
    check_create_error(at_limit, DESCENT_ERR_INVALID_ARGUMENT,
        "descent_net_create: spec field 'sizes[0]' must be a whole number in 1...16777216, got an array",
        "descent_net_create, nested exactly 64 levels: read, then refused for its content");
    check_create_error("{\"sizes\":[784,10]]", DESCENT_ERR_FORMAT,
        "descent_net_create: the network spec is not valid JSON: expected ',' or '}' after an object member, found ']' at line 1, column 18 (byte 17)",
        "descent_net_create, a stray ']'");
    check_create_error("{\"sizes\":[784,\n 010]}", DESCENT_ERR_FORMAT,
        "descent_net_create: the network spec is not valid JSON: leading zeros are not allowed in a number at line 2, column 2 (byte 16)",
        "descent_net_create, a leading zero on line 2");
    descent_net *net = NULL;
    CHECK_STATUS(descent_net_create("{\"sizes\":[4,3,2]}", &net), DESCENT_OK, "descent_net_create, a plain spec on the same thread");
    descent_net_free(net);

    /* checkpoint headers */
    char *header = nested("{\"a\":", "[", "", "]", DEEP, "}");
    check_load_error(header_file("arrays", header), DESCENT_ERR_FORMAT,
        "tensor 'a' must be an object with dtype, shape and data_offsets, got an array",
        "descent_net_load, a header entry of 500 nested arrays");
    free(header);
    header = nested("", "{\"a\":", "1", "}", DEEP, "");
    check_load_error(header_file("objects", header), DESCENT_ERR_FORMAT,
        "tensor 'a' has an unknown field 'a' (allowed: dtype, shape, data_offsets)",
        "descent_net_load, a header of 500 nested objects");
    free(header);
    /* a well-formed header whose spec nests 500 levels (the spec is a JSON string in it) */
    header = nested("{\"__metadata__\":{\"format\":\"descent-checkpoint\",\"format_version\":\"1\",\"spec\":\"{\\\"sizes\\\":",
                    "[", "", "]", DEEP, "}\"}}");
    check_load_error(header_file("spec", header), DESCENT_ERR_FORMAT,
        "__metadata__ 'spec' is not a valid network spec: the network spec nests arrays and objects more than 64 levels deep at line 1, column 73 (byte 72)",
        "descent_net_load, a spec of 500 nested arrays in the metadata");
    free(header);
    check_load_error(header_file("syntax", "{\"a\":{\"dtype\":\"F32\",\n\"shape\":[2,],\"data_offsets\":[0,8]}}"),
        DESCENT_ERR_FORMAT,
        "the header is not valid JSON: expected a value, found ']' at line 2, column 12 (byte 32)",
        "descent_net_load, a trailing comma in a shape");

    free(arrays);
    free(objects);
    free(at_limit);
    *(int *)finished = 1;
    return NULL;
}

int main(void) {
    if (!mkdtemp(directory)) {
        perror("mkdtemp");
        return 1;
    }
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    CHECK(pthread_attr_setstacksize(&attributes, STACK_BYTES) == 0, "a thread with a %d KB stack", STACK_BYTES / 1024);
    pthread_t thread;
    int finished = 0;
    CHECK(pthread_create(&thread, &attributes, run, &finished) == 0, "pthread_create");
    pthread_join(thread, NULL);
    pthread_attr_destroy(&attributes);
    CHECK(finished, "the thread ran every call to the end");

    const char *names[] = {"arrays", "objects", "spec", "syntax"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s.safetensors", directory, names[i]);
        unlink(path);
    }
    rmdir(directory);
    return check_summary();
}
