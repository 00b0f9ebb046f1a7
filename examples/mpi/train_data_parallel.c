/*
 * train_data_parallel.c -- the seed network on Fashion-MNIST, data-parallel over MPI ranks.
 *
 *   mpirun -np 2 train_data_parallel [--data DIR] [--optimizer NAME] [--hparams "lr=0.001"]
 *                                    [--iterations N] [--batch N] [--seed N] [--batchnorm]
 *                                    [--overlap] [--checkpoint PATH] [--resume]
 *
 * Every rank draws the same global batch of --batch rows (the same seeded generator) and trains
 * on its contiguous slice of it: rows [B*r/N, B*(r+1)/N) on rank r of N. descent_mpi_join makes
 * the library sum what crosses ranks inside its own step (the gradients, and with --batchnorm
 * the batch-norm statistics), so descent_net_train_step on the slice is the step of the global
 * batch whatever N is. Rank 0 prints the training loss and the test accuracy once per epoch and saves
 * the checkpoint at the end; --resume loads it (on any number of ranks, from rank 0's file) and
 * continues at the iteration it had reached, drawing the batches the run would have drawn.
 * --overlap sums each layer's gradients on a thread of the library's while the backward pass
 * goes on: for ranks with a core to spare (the same results; see docs/distributed.md).
 *
 * Defaults: the seed network (784-100-100-100-100-10, ReLU, He), Adam with the book's defaults,
 * 2000 iterations of a global batch of 128, data from Debian's dataset-fashion-mnist.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descent_mpi.h"
#include "../fashion_mnist.h"

/* A failed collective call fails on every rank alike, so every rank may stop on it. */
#define CHECK(call)                                                                  \
    do {                                                                             \
        if ((call) != DESCENT_OK) {                                                  \
            fprintf(stderr, "error: %s\n", descent_last_error());                    \
            MPI_Abort(MPI_COMM_WORLD, 1);                                            \
        }                                                                            \
    } while (0)
#define CHECK_MPI(call)                                                              \
    do {                                                                             \
        if ((call) != DESCENT_OK) {                                                  \
            if (rank == 0) fprintf(stderr, "error: %s\n", descent_mpi_last_error()); \
            MPI_Finalize();                                                          \
            return 1;                                                                \
        }                                                                            \
    } while (0)

static const char *value_of(int *i, int argc, char **argv) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "error: %s needs a value\n", argv[*i]);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return argv[++*i];
}

int main(int argc, char **argv) {
    /* MPI_THREAD_SERIALIZED lets --overlap sum each layer's gradients on the library's thread
     * while the backward pass goes on. */
    int level;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &level);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    const char *data = "/usr/share/datasets/fashion-mnist", *optimizer = "adam", *hparams = "";
    const char *checkpoint = "data_parallel.safetensors";
    long iterations = 2000, batch = 128, seed = 1;
    int resume = 0, batchnorm = 0, overlap = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--data")) data = value_of(&i, argc, argv);
        else if (!strcmp(a, "--optimizer")) optimizer = value_of(&i, argc, argv);
        else if (!strcmp(a, "--hparams")) hparams = value_of(&i, argc, argv);
        else if (!strcmp(a, "--iterations")) iterations = atol(value_of(&i, argc, argv));
        else if (!strcmp(a, "--batch")) batch = atol(value_of(&i, argc, argv));
        else if (!strcmp(a, "--seed")) seed = atol(value_of(&i, argc, argv));
        else if (!strcmp(a, "--checkpoint")) checkpoint = value_of(&i, argc, argv);
        else if (!strcmp(a, "--resume")) resume = 1;
        else if (!strcmp(a, "--batchnorm")) batchnorm = 1;
        else if (!strcmp(a, "--overlap")) overlap = 1;
        else {
            if (rank == 0) fprintf(stderr, "usage: see the comment at the top of train_data_parallel.c\n");
            MPI_Finalize();
            return 2;
        }
    }
    if (iterations < 1 || batch < size) {
        if (rank == 0) fprintf(stderr, "error: --iterations must be >= 1 and --batch >= the number of ranks (%d)\n", size);
        MPI_Finalize();
        return 2;
    }
    CHECK_MPI(descent_mpi_share_cores(MPI_COMM_WORLD));   /* the ranks on one machine share its cores */

    /* Every rank reads the data set (each needs its rows of every batch, and the batches are
     * drawn from all of it); only rank 0 evaluates. */
    dataset train, test;
    CHECK(load_dataset(data, "train", &train));
    CHECK(load_dataset(data, "t10k", &test));

    descent_net *net = NULL;
    long done = 0;
    if (resume) {
        CHECK_MPI(descent_mpi_load(checkpoint, MPI_COMM_WORLD, 0, &net));
        descent_optimizer *opt;
        double step = 0.0;
        CHECK(descent_net_optimizer(net, &opt));
        CHECK(descent_optimizer_get(opt, "step", &step));
        done = (long)step;
    } else {
        char spec[256];
        snprintf(spec, sizeof spec, "{\"sizes\":[784,100,100,100,100,10],\"activation\":\"relu\",\"init\":\"he\","
                                    "\"batchnorm\":%s,\"seed\":%ld}", batchnorm ? "true" : "false", seed);
        CHECK(descent_net_create(spec, &net));
        CHECK(descent_net_set_optimizer(net, optimizer, hparams));
        CHECK_MPI(descent_mpi_broadcast_parameters(net, MPI_COMM_WORLD, 0));
    }
    MPI_Comm world = MPI_COMM_WORLD;   /* descent_mpi_join keeps its address: it must outlive the job */
    CHECK_MPI(descent_mpi_join(net, &world, overlap));
    const int64_t first = batch * rank / size, rows = batch * (rank + 1) / size - first;
    if (rank == 0)
        printf("Fashion-MNIST from %s; %d ranks, global batch %ld (rank 0: %lld rows), threads per rank: %d%s\n", data,
               size, batch, (long long)rows, descent_get_num_threads(), resume ? "; resumed" : "");

    float *x = malloc((size_t)rows * (size_t)train.features * sizeof *x);
    int32_t *y = malloc((size_t)rows * sizeof *y);
    if (!x || !y) {
        fprintf(stderr, "error: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    /* The batches drawn so far are skipped, so a resumed run draws those the run would have. */
    uint64_t rng = (uint64_t)seed;
    for (long i = 0; i < done * batch; i++) next_random(&rng);

    long per_epoch = (long)(train.count / batch);
    double loss_sum = 0.0, train_time = 0.0;
    long in_epoch = 0;
    if (rank == 0) printf("%9s %12s %10s %10s\n", "iteration", "train loss", "test acc", "ms/iter");
    for (long it = done + 1; it <= iterations; it++) {
        for (long r = 0; r < batch; r++) {
            int64_t k = (int64_t)(next_random(&rng) % (uint64_t)train.count);
            if (r < first || r >= first + rows) continue;
            memcpy(x + (r - first) * train.features, train.images + k * train.features,
                   (size_t)train.features * sizeof *x);
            y[r - first] = train.labels[k];
        }
        float loss = 0.0f;
        double t0 = MPI_Wtime();
        CHECK(descent_net_train_step(net, x, y, rows, &loss));   /* fails alike on every rank */
        train_time += MPI_Wtime() - t0;
        loss_sum += loss;
        in_epoch++;
        if (rank == 0 && (it % per_epoch == 0 || it == iterations)) {
            float test_loss, accuracy;
            CHECK(descent_net_evaluate(net, test.images, test.labels, test.count, &test_loss, &accuracy));
            printf("%9ld %12.4f %10.4f %10.3f\n", it, loss_sum / (double)in_epoch, accuracy,
                   1e3 * train_time / (double)(it - done));
            fflush(stdout);
            loss_sum = 0.0;
            in_epoch = 0;
        }
    }
    CHECK_MPI(descent_mpi_save(net, checkpoint, MPI_COMM_WORLD, 0));
    if (rank == 0) printf("saved %s\n", checkpoint);

    free(x);
    free(y);
    descent_net_free(net);
    descent_dataset_free(train.images, train.labels);
    descent_dataset_free(test.images, test.labels);
    MPI_Finalize();
    return 0;
}
