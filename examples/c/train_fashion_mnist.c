/*
 * train_fashion_mnist.c -- train the book's network on Fashion-MNIST through the C API.
 *
 *   train_fashion_mnist [--data DIR] [--optimizer NAME] [--hparams "lr=0.001"]
 *                       [--iterations N] [--batch N] [--seed N] [--sizes 784,100,100,100,100,10]
 *                       [--batchnorm] [--dropout R] [--weight-decay L] [--init he]
 *                       [--plugin PATH] [--checkpoint PATH]
 *
 * Defaults: the seed network (784-100-100-100-100-10, ReLU, He), Adam with the book's defaults,
 * 2000 iterations of batch 128, data from Debian's dataset-fashion-mnist. Prints the training
 * loss and the test accuracy once per epoch (and at the end), then saves a checkpoint.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "descent.h"
#include "../fashion_mnist.h"

#define CHECK(call)                                                                  \
    do {                                                                             \
        if ((call) != DESCENT_OK) {                                                  \
            fprintf(stderr, "error: %s\n", descent_last_error());                    \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const char *value_of(int *i, int argc, char **argv) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "error: %s needs a value\n", argv[*i]);
        exit(2);
    }
    return argv[++*i];
}

int main(int argc, char **argv) {
    const char *data = "/usr/share/datasets/fashion-mnist", *optimizer = "adam", *hparams = "";
    const char *sizes = "784,100,100,100,100,10", *init = "he", *plugin = NULL;
    const char *checkpoint = "fashion_mnist.safetensors";
    long iterations = 2000, batch = 128, seed = 1;
    double dropout = 0.0, weight_decay = 0.0;
    int batchnorm = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--data")) data = value_of(&i, argc, argv);
        else if (!strcmp(a, "--optimizer")) optimizer = value_of(&i, argc, argv);
        else if (!strcmp(a, "--hparams")) hparams = value_of(&i, argc, argv);
        else if (!strcmp(a, "--iterations")) iterations = atol(value_of(&i, argc, argv));
        else if (!strcmp(a, "--batch")) batch = atol(value_of(&i, argc, argv));
        else if (!strcmp(a, "--seed")) seed = atol(value_of(&i, argc, argv));
        else if (!strcmp(a, "--sizes")) sizes = value_of(&i, argc, argv);
        else if (!strcmp(a, "--init")) init = value_of(&i, argc, argv);
        else if (!strcmp(a, "--batchnorm")) batchnorm = 1;
        else if (!strcmp(a, "--dropout")) dropout = atof(value_of(&i, argc, argv));
        else if (!strcmp(a, "--weight-decay")) weight_decay = atof(value_of(&i, argc, argv));
        else if (!strcmp(a, "--plugin")) plugin = value_of(&i, argc, argv);
        else if (!strcmp(a, "--checkpoint")) checkpoint = value_of(&i, argc, argv);
        else {
            fprintf(stderr, "usage: see the comment at the top of train_fashion_mnist.c\n");
            return 2;
        }
    }
    if (iterations < 1 || batch < 1) {
        fprintf(stderr, "error: --iterations and --batch must be >= 1\n");
        return 2;
    }
    if (plugin) CHECK(descent_plugin_load(plugin));

    dataset train, test;
    CHECK(load_dataset(data, "train", &train));
    CHECK(load_dataset(data, "t10k", &test));
    printf("Fashion-MNIST from %s: %lld training and %lld test images of %lld pixels\n", data,
           (long long)train.count, (long long)test.count, (long long)train.features);

    char spec[1024];
    snprintf(spec, sizeof spec,
             "{\"sizes\":[%s],\"activation\":\"relu\",\"init\":\"%s\",\"batchnorm\":%s,"
             "\"dropout\":%g,\"weight_decay\":%g,\"seed\":%ld}",
             sizes, init, batchnorm ? "true" : "false", dropout, weight_decay, seed);
    descent_net *net;
    CHECK(descent_net_create(spec, &net));
    CHECK(descent_net_set_optimizer(net, optimizer, hparams));
    printf("network %s\noptimizer %s %s\nBLAS: %s\n", spec, optimizer, hparams, descent_blas_info());

    float *x = malloc((size_t)batch * (size_t)train.features * sizeof *x);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    if (!x || !y) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    uint64_t rng = (uint64_t)seed;
    long per_epoch = (long)(train.count / batch);
    double loss_sum = 0.0, train_time = 0.0;
    long in_epoch = 0;
    printf("%9s %12s %10s %10s\n", "iteration", "train loss", "test acc", "ms/iter");
    for (long it = 1; it <= iterations; it++) {
        for (long r = 0; r < batch; r++) {
            int64_t k = (int64_t)(next_random(&rng) % (uint64_t)train.count);
            memcpy(x + r * train.features, train.images + k * train.features,
                   (size_t)train.features * sizeof *x);
            y[r] = train.labels[k];
        }
        float loss;
        double t0 = seconds();
        CHECK(descent_net_train_step(net, x, y, batch, &loss));
        train_time += seconds() - t0;
        loss_sum += loss;
        in_epoch++;
        if (it % per_epoch == 0 || it == iterations) {
            float test_loss, accuracy;
            CHECK(descent_net_evaluate(net, test.images, test.labels, test.count, &test_loss, &accuracy));
            printf("%9ld %12.4f %10.4f %10.3f\n", it, loss_sum / (double)in_epoch, accuracy,
                   1e3 * train_time / (double)it);
            loss_sum = 0.0;
            in_epoch = 0;
        }
    }
    CHECK(descent_net_save(net, checkpoint));
    printf("saved %s\n", checkpoint);

    free(x);
    free(y);
    descent_net_free(net);
    descent_dataset_free(train.images, train.labels);
    descent_dataset_free(test.images, test.labels);
    return 0;
}
