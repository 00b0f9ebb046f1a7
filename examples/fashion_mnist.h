/*
 * fashion_mnist.h -- what the Fashion-MNIST examples share: reading an MNIST-format folder
 * through the library's IDX reader, and the caller's own seeded generator for sampling
 * mini-batches (the library never samples).
 */
#ifndef DESCENT_EXAMPLES_FASHION_MNIST_H
#define DESCENT_EXAMPLES_FASHION_MNIST_H

#include <stdint.h>
#include <stdio.h>

#include "descent.h"

typedef struct {
    float *images;      /* [count][features], scaled to [0, 1] */
    int32_t *labels;    /* [count] */
    int64_t count, features;
} dataset;

/* Reads <dir>/<prefix>-images-idx3-ubyte.gz and the matching labels (prefix "train" or "t10k").
 * Returns descent_dataset_load_idx's status; its message is descent_last_error(). */
static inline int32_t load_dataset(const char *dir, const char *prefix, dataset *out) {
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    return descent_dataset_load_idx(images, labels, &out->images, &out->labels, &out->count, &out->features);
}

/* splitmix64: the next number of the stream `state` holds (seed it with any value). */
static inline uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
