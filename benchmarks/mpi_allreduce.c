/*
 * mpi_allreduce.c -- what the gradient reduction of descent_mpi_train_step costs per step
 * (docs/distributed.md).
 *
 *   cmake --build build --target mpi_allreduce      (CMake builds it when it finds MPI)
 *   mpirun -np 2 build/benchmarks/mpi_allreduce [--reps N] [--batch B]
 *
 * Open MPI runs ranks that wait busy-polling, unless it is given --oversubscribe (or more ranks
 * than cores), when they yield the CPU: the reduction is then about 3 times slower here.
 *
 * On the seed network (784-100-100-100-100-10), after warm-up, rank 0 prints the medians over
 * --reps (default 1000) repetitions of:
 *  - MPI_Allreduce (sum, in place) of the whole gradient arena, descent_net_arena's length floats,
 *    each repetition after an MPI_Barrier so that the ranks start together;
 *  - a whole descent_mpi_train_step on B / N rows per rank (default B = 128), Adam;
 *  - descent_net_train_step on the rank's B / N rows alone (no communication),
 *  - descent_net_train_step in a job (descent_net_set_allreduce over MPI), with each layer's
 *    gradients summed on the library's thread while the backward pass goes on (overlap 1), and
 *    with all of them summed after it (overlap 0): two networks, stepped in turn, so that both
 *    figures come from the same moments of a noisy machine,
 * and the arena's size. Each rank runs 1 thread (descent_set_num_threads(1)), so that N ranks
 * on N cores do not compete for them.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descent_mpi.h"

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median over the ranks' medians' maximum: a collective step is as slow as its slowest rank. */
static double median_us(double *t, int n, MPI_Comm comm) {
    qsort(t, (size_t)n, sizeof *t, compare);
    double mine = 1e6 * t[n / 2], slowest;
    MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm);
    return slowest;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

int main(int argc, char **argv) {
    int level, rank, size, reps = 1000;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &level);
    long batch = 128;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atol(argv[i + 1]);
    }
    if (reps < 1 || batch < size) {
        if (rank == 0) fprintf(stderr, "--reps must be >= 1 and --batch >= the number of ranks\n");
        MPI_Finalize();
        return 2;
    }
    descent_set_num_threads(1);
    descent_net *net;
    if (descent_net_create("{\"sizes\":[784,100,100,100,100,10],\"seed\":1}", &net) != DESCENT_OK ||
        descent_net_set_optimizer(net, "adam", "") != DESCENT_OK) {
        fprintf(stderr, "%s\n", descent_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    descent_mpi_broadcast_parameters(net, MPI_COMM_WORLD, 0);
    float *grads;
    int64_t length;
    descent_net_arena(net, NULL, &grads, &length);

    const int64_t rows = batch * (rank + 1) / size - batch * rank / size;
    float *x = malloc((size_t)rows * 784 * sizeof *x);
    int32_t *y = malloc((size_t)rows * sizeof *y);
    double *t = malloc((size_t)reps * sizeof *t);
    uint64_t s = 1 + (uint64_t)rank;
    for (int64_t i = 0; i < rows * 784; i++) x[i] = (float)(splitmix64(&s) >> 40) * 0x1p-24f;
    for (int64_t i = 0; i < rows; i++) y[i] = (int32_t)(splitmix64(&s) % 10);

    /* Warm-up: the first calls set up MPI's connections and the network's buffers. */
    for (int i = 0; i < 50; i++) descent_mpi_train_step(net, MPI_COMM_WORLD, x, y, rows, NULL);

    for (int i = 0; i < reps; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, grads, (int)length, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t[i] = MPI_Wtime() - t0;
    }
    double allreduce = median_us(t, reps, MPI_COMM_WORLD);
    for (int i = 0; i < reps; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (descent_mpi_train_step(net, MPI_COMM_WORLD, x, y, rows, NULL) != DESCENT_OK) {
            fprintf(stderr, "%s\n", descent_mpi_last_error());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        t[i] = MPI_Wtime() - t0;
    }
    double step = median_us(t, reps, MPI_COMM_WORLD);
    for (int i = 0; i < reps; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        descent_net_train_step(net, x, y, rows, NULL);
        t[i] = MPI_Wtime() - t0;
    }
    double local = median_us(t, reps, MPI_COMM_WORLD);

    /* The library's own job, with and without the overlap, in turn. */
    descent_net *job[2] = {NULL, NULL};
    double *times[2] = {malloc((size_t)reps * sizeof(double)), malloc((size_t)reps * sizeof(double))};
    MPI_Comm comm = MPI_COMM_WORLD;
    for (int k = 0; k < 2; k++) {
        if (descent_net_create("{\"sizes\":[784,100,100,100,100,10],\"seed\":1}", &job[k]) != DESCENT_OK ||
            descent_net_set_optimizer(job[k], "adam", "") != DESCENT_OK ||
            descent_net_set_allreduce(job[k], descent_mpi_allreduce_, &comm, rank, size,
                                      k == 0 && level >= MPI_THREAD_SERIALIZED) != DESCENT_OK) {
            fprintf(stderr, "%s\n", descent_last_error());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        for (int i = 0; i < 50; i++) descent_net_train_step(job[k], x, y, rows, NULL);
    }
    for (int i = 0; i < reps; i++)
        for (int k = 0; k < 2; k++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            if (descent_net_train_step(job[k], x, y, rows, NULL) != DESCENT_OK) {
                fprintf(stderr, "%s\n", descent_last_error());
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
            times[k][i] = MPI_Wtime() - t0;
        }
    double overlapped = median_us(times[0], reps, MPI_COMM_WORLD), after = median_us(times[1], reps, MPI_COMM_WORLD);
    if (rank == 0)
        printf("ranks %d, arena %lld floats (%.1f KB), rows per rank %lld, %d repetitions (medians, slowest rank)\n"
               "  MPI_Allreduce of the arena   %8.1f us\n"
               "  descent_mpi_train_step       %8.1f us\n"
               "  descent_net_train_step alone %8.1f us\n"
               "  joined, overlap 1            %8.1f us%s\n"
               "  joined, overlap 0            %8.1f us\n",
               size, (long long)length, 4.0 * (double)length / 1e3, (long long)rows, reps, allreduce, step, local,
               overlapped, level >= MPI_THREAD_SERIALIZED ? "" : " (MPI lacks MPI_THREAD_SERIALIZED: no overlap)", after);
    for (int k = 0; k < 2; k++) {
        descent_net_free(job[k]);
        free(times[k]);
    }
    free(x);
    free(y);
    free(t);
    descent_net_free(net);
    MPI_Finalize();
    return 0;
}
