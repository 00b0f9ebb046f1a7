/*
 * test_rank_dies.c -- a rank that dies ends the job, and the last checkpoint stays intact.
 *
 *   mpirun -np 2 test_rank_dies train DIR   2 ranks in a job (descent_mpi_join, overlap 1) train
 *                                           on synthetic rows, save DIR/model.safetensors after
 *                                           step 5 (rank 0 writes; it also keeps the saved
 *                                           parameters in DIR/saved.bin), and rank 1 kills
 *                                           itself (SIGKILL) at step 8, while rank 0 has gone on
 *                                           into that step's all-reduce. mpirun must then end
 *                                           the job, with a non-zero status.
 *   test_rank_dies check DIR                one process: the checkpoint loads, and its
 *                                           parameters are those saved, bit for bit.
 *
 * ctest `mpi_rank_dies` runs both (tests/mpi/rank_dies.sh) and fails when mpirun hangs (its
 * timeout) or succeeds.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descent_mpi.h"

enum { FEATURES = 16, CLASSES = 4, ROWS = 32, SAVE_AFTER = 5, DIE_AT = 8, STEPS = 12 };
static const char SPEC[] = "{\"sizes\":[16,32,4],\"batchnorm\":true,\"seed\":3}";

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int fail(const char *what, const char *message) {
    fprintf(stderr, "test_rank_dies: %s: %s\n", what, message);
    return 1;
}

static int train(const char *dir) {
    int level, rank, size;
    MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &level);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm world = MPI_COMM_WORLD;
    descent_net *net = NULL;
    if (size != 2 || level < MPI_THREAD_SERIALIZED) return fail("train", "needs 2 ranks and MPI_THREAD_SERIALIZED");
    if (descent_net_create(SPEC, &net) != DESCENT_OK || descent_net_set_optimizer(net, "adam", "") != DESCENT_OK)
        return fail("create", descent_last_error());
    if (descent_mpi_join(net, &world, 1) != DESCENT_OK) return fail("join", descent_mpi_last_error());
    char path[4096], saved[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(saved, sizeof saved, "%s/saved.bin", dir);
    static float x[ROWS * FEATURES];
    static int32_t y[ROWS];
    uint64_t s = 11 + (uint64_t)rank;
    for (int step = 0; step < STEPS; step++) {
        if (step == DIE_AT && rank == 1) raise(SIGKILL);   /* rank 0 waits for it in the all-reduce */
        for (int i = 0; i < ROWS * FEATURES; i++) x[i] = (float)(splitmix64(&s) >> 40) * 0x1p-23f - 1.0f;
        for (int i = 0; i < ROWS; i++) y[i] = (int32_t)(splitmix64(&s) % CLASSES);
        if (descent_net_train_step(net, x, y, ROWS, NULL) != DESCENT_OK) return fail("step", descent_last_error());
        if (step + 1 == SAVE_AFTER) {
            if (descent_mpi_save(net, path, MPI_COMM_WORLD, 0) != DESCENT_OK) return fail("save", descent_mpi_last_error());
            float *params;
            int64_t length;
            descent_net_arena(net, &params, NULL, &length);
            FILE *f = rank == 0 ? fopen(saved, "wb") : NULL;
            if (rank == 0 && (!f || fwrite(params, sizeof *params, (size_t)length, f) != (size_t)length || fclose(f)))
                return fail("write", saved);
            printf("rank %d: saved after step %d\n", rank, step + 1);
            fflush(stdout);
        }
    }
    /* Not reached: rank 1 died at DIE_AT, and rank 0 cannot finish that step without it. */
    printf("rank %d: finished %d steps\n", rank, STEPS);
    descent_net_free(net);
    MPI_Finalize();
    return 0;
}

static int check(const char *dir) {
    char path[4096], saved[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(saved, sizeof saved, "%s/saved.bin", dir);
    descent_net *net = NULL;
    if (descent_net_load(path, &net) != DESCENT_OK) return fail("load", descent_last_error());
    float *params;
    int64_t length;
    descent_net_arena(net, &params, NULL, &length);
    float *want = malloc((size_t)length * sizeof *want);
    FILE *f = fopen(saved, "rb");
    const int same = want && f && fread(want, sizeof *want, (size_t)length, f) == (size_t)length &&
                     memcmp(want, params, (size_t)length * sizeof *want) == 0;
    if (f) fclose(f);
    free(want);
    descent_net_free(net);
    if (!same) return fail("check", "the checkpoint's parameters differ from those saved");
    printf("ok   the checkpoint saved before rank 1 died loads, with the parameters saved (%lld floats)\n",
           (long long)length);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "train")) return train(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "check")) return check(argv[2]);
    fprintf(stderr, "usage: mpirun -np 2 test_rank_dies train DIR; then test_rank_dies check DIR\n");
    return 2;
}
