/*
 * descent_mpi.h -- data-parallel training over MPI with Descent's C API.
 *
 * Header-only: every function is `static inline`, compiled by the program that includes this
 * header, with that program's MPI (build it with mpicc, or CMake's MPI::MPI_C). libdescent.so
 * itself does not link MPI, so programs that do not include this header need nothing new.
 *
 * The scheme is synchronous data parallelism, as in Horovod and PyTorch's DDP. Every rank of a
 * communicator holds a replica of the same network. Each step, every rank runs forward and
 * backward on its own shard of the global batch; the gradient arenas (descent_net_arena: one
 * pointer and one length) are summed across ranks with one MPI_Allreduce, each rank's gradient
 * weighted by its share of the global batch; then every rank applies the same update to the same
 * parameters, so the replicas stay bit-identical.
 *
 *     MPI_Init(&argc, &argv);
 *     descent_net *net;
 *     descent_net_create(spec, &net);                   same spec and optimizer on every rank
 *     descent_net_set_optimizer(net, "adam", "lr=0.001");
 *     descent_mpi_broadcast_parameters(net, MPI_COMM_WORLD, 0);   rank 0's weights everywhere
 *     for (...) {
 *         ... x, labels: this rank's rows of the global batch ...
 *         if (descent_mpi_train_step(net, MPI_COMM_WORLD, x, labels, rows, &loss) != DESCENT_OK)
 *             fprintf(stderr, "%s\n", descent_mpi_last_error());   the same status on every rank
 *     }
 *     descent_mpi_save(net, "model.safetensors", MPI_COMM_WORLD, 0);   rank 0 writes
 *
 * Conventions (those of descent.h, plus):
 *  - Collective: every function taking an MPI_Comm must be called by every rank of that
 *    communicator, in the same order, as any MPI collective. Each returns the same status on
 *    every rank: the ranks agree on the outcome (with small MPI collectives) before anything is
 *    changed, so one rank's failure is every rank's failure and no rank is left waiting.
 *  - Errors: the message of the last failure is `descent_mpi_last_error()`, not
 *    `descent_last_error()` (this header cannot set the library's message). It names the
 *    function, the failing rank and that rank's own message, e.g. "descent_mpi_train_step:
 *    rank 1 of 2 failed: x contains NaN at index 17 (row 0, column 17)". When several ranks
 *    fail, the lowest-numbered one's status and message are reported, on every rank.
 *  - MPI errors: MPI's default error handler (MPI_ERRORS_ARE_FATAL) ends the job. A
 *    communicator with MPI_ERRORS_RETURN makes a failed MPI call return DESCENT_ERR_IO with
 *    MPI's error string; the ranks may then disagree, as MPI gives no guarantee after an error.
 *  - Threads: MPI must be initialised (any thread level; with several threads calling MPI,
 *    MPI_THREAD_SERIALIZED or more). One network and one communicator are used by one thread at
 *    a time, as each handle in descent.h. The message buffer is per thread.
 *  - Builds: needs C11 or C++11 (thread-local storage) and POSIX 2008 (mkstemp, fseeko), as
 *    any MPI program on Linux: with -std=c11 (CMake's C_EXTENSIONS OFF) define
 *    _POSIX_C_SOURCE 200809L before the first #include.
 *
 * Two ways to train, with the same results: descent_mpi_join makes `net` a rank of a job, after
 * which every descent_net_train_step on the rank's rows is the global batch's step, and
 * descent_mpi_train_step takes one such step (joining for that step alone) with the inputs
 * checked first, so that a bad input on any rank is reported on every rank with its rank.
 *
 * Known limitation: optimizer state is reachable only through checkpoints, so
 * descent_mpi_broadcast_net and descent_mpi_load send a checkpoint's bytes through temporary
 * files.
 * docs/distributed.md explains what is exact, the failures and the cost of the reduction.
 */
#ifndef DESCENT_MPI_H
#define DESCENT_MPI_H

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>
#include <unistd.h>

#include "descent.h"

#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#error "descent_mpi.h needs POSIX 2008 (mkstemp, fseeko): define _POSIX_C_SOURCE 200809L before the first #include, or compile with -std=gnu11"
#endif

#if defined(__cplusplus)
#define DESCENT_MPI_THREAD_LOCAL thread_local
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define DESCENT_MPI_THREAD_LOCAL _Thread_local
#else
#error "descent_mpi.h needs C11 (or C++11) for its per-thread error message"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* =============================================================================================
 * Errors
 * ========================================================================================== */

/* The size of the message buffer, NUL included; longer messages are cut. */
#define DESCENT_MPI_MESSAGE_SIZE 1024

/* Internal: this thread's message buffer. (A static inline function has one copy per
 * translation unit, so the message is that of the last failure in this file's calls.) */
static inline char *descent_mpi_message_buffer_(void) {
    static DESCENT_MPI_THREAD_LOCAL char buffer[DESCENT_MPI_MESSAGE_SIZE];
    return buffer;
}

/// The message of the most recent failing descent_mpi_* call on this thread, e.g.
/// "descent_mpi_train_step: rank 1 of 2 failed: x contains NaN at index 17 (row 0, column 17)";
/// "" before any failure. Successful calls do not clear it.
///
/// Memory: a per-thread buffer of this header's; valid until the next failing descent_mpi_*
/// call on this thread. Calls compiled in other source files keep their own buffer.
/// Threads: each thread has its own message.
static inline const char *descent_mpi_last_error(void) { return descent_mpi_message_buffer_(); }

/* Internal: sets the message (printf-style) and returns `status`. */
static inline int32_t descent_mpi_fail_(int32_t status, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    vsnprintf(descent_mpi_message_buffer_(), DESCENT_MPI_MESSAGE_SIZE, format, ap);
    va_end(ap);
    return status;
}

/* Internal: the error of a failed MPI call (only reached with MPI_ERRORS_RETURN). */
static inline int32_t descent_mpi_mpi_error_(const char *function, const char *call, int code) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", code);
    return descent_mpi_fail_(DESCENT_ERR_IO, "%s: %s failed: %s", function, call, text);
}

#define DESCENT_MPI_CALL_(function, call)                                          \
    do {                                                                           \
        int descent_mpi_rc_ = (call);                                              \
        if (descent_mpi_rc_ != MPI_SUCCESS)                                        \
            return descent_mpi_mpi_error_((function), #call, descent_mpi_rc_);     \
    } while (0)

/* Internal: the second half of an agreement, run by every rank once a collective has shown
 * that at least one rank failed. Finds the lowest-numbered failing rank, sends its status and
 * message to every rank, and sets this thread's message to
 * "<function>: rank R of N failed: <that rank's message>". Returns that rank's status. */
static inline int32_t descent_mpi_report_failure_(MPI_Comm comm, const char *function, int32_t status,
                                                  const char *message) {
    int rank = 0, size = 0, failing = INT_MAX;
    DESCENT_MPI_CALL_(function, MPI_Comm_rank(comm, &rank));
    DESCENT_MPI_CALL_(function, MPI_Comm_size(comm, &size));
    int candidate = status != DESCENT_OK ? rank : INT_MAX;
    DESCENT_MPI_CALL_(function, MPI_Allreduce(&candidate, &failing, 1, MPI_INT, MPI_MIN, comm));
    char text[DESCENT_MPI_MESSAGE_SIZE] = "";
    int32_t agreed = status;
    if (rank == failing) snprintf(text, sizeof text, "%s", message ? message : "");
    DESCENT_MPI_CALL_(function, MPI_Bcast(&agreed, 1, MPI_INT32_T, failing, comm));
    DESCENT_MPI_CALL_(function, MPI_Bcast(text, (int)sizeof text, MPI_CHAR, failing, comm));
    text[sizeof text - 1] = '\0';
    return descent_mpi_fail_(agreed, "%s: rank %d of %d failed: %s", function, failing, size, text);
}

/* Internal: a whole agreement (one MPI_Allreduce when every rank succeeded). Every rank passes
 * its own status and, when it failed, its message; every rank returns the same status. */
static inline int32_t descent_mpi_agree_(MPI_Comm comm, const char *function, int32_t status,
                                         const char *message) {
    int failed = status != DESCENT_OK, any = 0;
    DESCENT_MPI_CALL_(function, MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, comm));
    return any ? descent_mpi_report_failure_(comm, function, status, message) : DESCENT_OK;
}

/* =============================================================================================
 * Threads
 * ========================================================================================== */

/// Shares this machine's cores among the ranks that run on it: sets `descent_set_num_threads`
/// to the library's default thread count (DESCENT_NUM_THREADS if set, else the number of cores)
/// divided by the number of ranks of `comm` on this machine, at least 1. Two ranks on two cores
/// then run one thread each instead of four threads fighting for two cores.
///
/// Collective over `comm` (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED).
/// Returns DESCENT_OK, or DESCENT_ERR_IO when an MPI call fails (see the conventions).
/// Threads: changes a process-wide setting (see `descent_set_num_threads`).
static inline int32_t descent_mpi_share_cores(MPI_Comm comm) {
    static const char *const function = "descent_mpi_share_cores";
    MPI_Comm node;
    int local = 1;
    DESCENT_MPI_CALL_(function, MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
    int rc = MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
    if (rc != MPI_SUCCESS) return descent_mpi_mpi_error_(function, "MPI_Comm_size", rc);
    if (descent_set_num_threads(0) != DESCENT_OK)
        return descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT, "%s: %s", function, descent_last_error());
    int32_t threads = descent_get_num_threads() / (local > 0 ? local : 1);
    if (descent_set_num_threads(threads < 1 ? 1 : threads) != DESCENT_OK)
        return descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT, "%s: %s", function, descent_last_error());
    return DESCENT_OK;
}

/* =============================================================================================
 * Parameters and whole networks: from one rank to every rank
 * ========================================================================================== */

/* Internal messages: a rank's own failure is described without the function's name, which
 * descent_mpi_report_failure_ puts in front with the rank's number; failures every rank sees
 * alike (a bad root, an MPI error) are returned directly, with the function's name. */

/* Internal: the parameter and gradient arenas, or a status with the message set. */
static inline int32_t descent_mpi_arena_(descent_net *net, float **params, float **grads, int64_t *length) {
    int32_t status = descent_net_arena(net, params, grads, length);
    return status == DESCENT_OK ? DESCENT_OK : descent_mpi_fail_(status, "%s", descent_last_error());
}

/* Internal: this rank's number in `comm`, after checking that `root` is a rank of `comm` (every
 * rank sees the same root and size, so no agreement is needed). */
static inline int32_t descent_mpi_rank_with_root_(MPI_Comm comm, const char *function, int root, int *rank) {
    int size = 0;
    DESCENT_MPI_CALL_(function, MPI_Comm_rank(comm, rank));
    DESCENT_MPI_CALL_(function, MPI_Comm_size(comm, &size));
    if (root < 0 || root >= size)
        return descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT, "%s: root is %d: must be a rank of comm, in [0, %d)",
                                 function, root, size);
    return DESCENT_OK;
}

/* Internal: checks collectively that `root` is a rank of `comm` and that every rank's value of
 * `length` is the same (the networks' arenas must match before one is copied over another). */
static inline int32_t descent_mpi_check_same_(MPI_Comm comm, const char *function, int root, int64_t length,
                                              int32_t status, const char *message) {
    int rank = 0;
    int32_t checked = descent_mpi_rank_with_root_(comm, function, root, &rank);
    if (checked != DESCENT_OK) return checked;
    /* {length, -length} under MPI_MAX gives the largest and the smallest length at once. */
    int64_t local[3] = {status != DESCENT_OK, length, -length}, global[3];
    DESCENT_MPI_CALL_(function, MPI_Allreduce(local, global, 3, MPI_INT64_T, MPI_MAX, comm));
    if (global[0]) return descent_mpi_report_failure_(comm, function, status, message);
    if (global[1] != -global[2])
        return descent_mpi_fail_(DESCENT_ERR_SHAPE,
                                 "%s: the ranks' networks differ: their parameter arenas hold from %lld to %lld "
                                 "floats (every rank must create the same spec)",
                                 function, (long long)-global[2], (long long)global[1]);
    return DESCENT_OK;
}

/// Copies rank `root`'s parameters (every weight, bias, and batch norm's gamma and beta: the
/// parameter arena of `descent_net_arena`) into every other rank's network, with one
/// MPI_Bcast. Call it once after creating the networks, so that every replica starts from the
/// same weights whatever each rank's seed. Optimizer state, batch-norm running averages and
/// the dropout generator are not sent: a fresh optimizer's state is zero on every rank anyway;
/// `descent_mpi_broadcast_net` sends everything.
///
/// Collective over `comm`. Every rank's network must have the same spec: the arena lengths
/// are compared first (DESCENT_ERR_SHAPE on every rank when they differ, nothing changed).
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL net, root not a rank of comm), DESCENT_ERR_SHAPE,
/// DESCENT_ERR_IO (an MPI call failed, see the conventions).
/// Memory: nothing is allocated. Threads: one network, one thread at a time.
static inline int32_t descent_mpi_broadcast_parameters(descent_net *net, MPI_Comm comm, int root) {
    static const char *const function = "descent_mpi_broadcast_parameters";
    float *params = NULL;
    int64_t length = 0;
    int32_t status = net ? descent_mpi_arena_(net, &params, NULL, &length)
                         : descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT, "net is NULL");
    status = descent_mpi_check_same_(comm, function, root, length, status, descent_mpi_last_error());
    if (status != DESCENT_OK) return status;
    for (int64_t done = 0; done < length;) {   /* MPI counts are ints: at most 2^30 floats a call */
        int count = (int)(length - done < (1 << 30) ? length - done : (1 << 30));
        DESCENT_MPI_CALL_(function, MPI_Bcast(params + done, count, MPI_FLOAT, root, comm));
        done += count;
    }
    return DESCENT_OK;
}

/* Internal: a checkpoint's bytes, malloc'ed. */
typedef struct {
    unsigned char *data;
    int64_t size;
} descent_mpi_bytes_;

/* Internal: reads a whole file. Returns a status with the message set on failure. */
static inline int32_t descent_mpi_read_file_(const char *path, descent_mpi_bytes_ *out) {
    out->data = NULL;
    out->size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return descent_mpi_fail_(DESCENT_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    off_t size = -1;
    if (fseeko(f, 0, SEEK_END) == 0) size = ftello(f);
    if (size < 0 || fseeko(f, 0, SEEK_SET) != 0) {
        int e = errno;
        fclose(f);
        return descent_mpi_fail_(DESCENT_ERR_IO, "cannot read '%s': %s", path, strerror(e));
    }
    out->data = (unsigned char *)malloc(size > 0 ? (size_t)size : 1);
    if (!out->data) {
        fclose(f);
        return descent_mpi_fail_(DESCENT_ERR_OUT_OF_MEMORY, "cannot allocate %lld bytes for '%s'", (long long)size,
                                 path);
    }
    size_t got = fread(out->data, 1, (size_t)size, f);
    int failed = ferror(f) || got != (size_t)size;
    fclose(f);
    if (failed) {
        free(out->data);
        out->data = NULL;
        return descent_mpi_fail_(DESCENT_ERR_IO, "cannot read '%s': read %zu of %lld bytes", path, got,
                                 (long long)size);
    }
    out->size = (int64_t)size;
    return DESCENT_OK;
}

/* Internal: a new private file in $TMPDIR (or /tmp); `path` receives its name. */
static inline int32_t descent_mpi_temp_file_(char *path, size_t cap, int *fd) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    if ((size_t)snprintf(path, cap, "%s/descent-mpi-XXXXXX", dir) >= cap)
        return descent_mpi_fail_(DESCENT_ERR_IO, "TMPDIR '%s' is too long", dir);
    *fd = mkstemp(path);
    if (*fd < 0)
        return descent_mpi_fail_(DESCENT_ERR_IO, "cannot create a temporary file in '%s': %s", dir, strerror(errno));
    return DESCENT_OK;
}

/* Internal: loads a network from checkpoint bytes through a temporary file (descent_net_load
 * reads files only), which is removed again. */
static inline int32_t descent_mpi_load_bytes_(const descent_mpi_bytes_ *bytes, descent_net **out) {
    char path[4096];
    int fd = -1;
    *out = NULL;
    int32_t status = descent_mpi_temp_file_(path, sizeof path, &fd);
    if (status != DESCENT_OK) return status;
    for (int64_t done = 0; done < bytes->size;) {
        ssize_t n = write(fd, bytes->data + done, (size_t)(bytes->size - done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            status = descent_mpi_fail_(DESCENT_ERR_IO, "cannot write the temporary file '%s': %s", path,
                                       n < 0 ? strerror(errno) : "no progress");
            break;
        }
        done += n;
    }
    if (close(fd) != 0 && status == DESCENT_OK)
        status = descent_mpi_fail_(DESCENT_ERR_IO, "cannot write the temporary file '%s': %s", path, strerror(errno));
    if (status == DESCENT_OK && (status = descent_net_load(path, out)) != DESCENT_OK)
        descent_mpi_fail_(status, "%s", descent_last_error());
    unlink(path);
    return status;
}

/* Internal: the second half of loading or broadcasting a checkpoint, collective. The root holds
 * `bytes` (and its own network, `root_net`); the bytes are sent to every other rank, which
 * loads them into `*loaded`. On any rank's failure every rank returns the same status and no
 * rank keeps a loaded network. */
static inline int32_t descent_mpi_share_checkpoint_(MPI_Comm comm, const char *function, int root,
                                                    descent_mpi_bytes_ *bytes, descent_net **loaded) {
    int rank = 0;
    DESCENT_MPI_CALL_(function, MPI_Comm_rank(comm, &rank));
    *loaded = NULL;
    int64_t size = bytes->size;
    DESCENT_MPI_CALL_(function, MPI_Bcast(&size, 1, MPI_INT64_T, root, comm));
    int32_t status = DESCENT_OK;
    if (rank != root) {
        bytes->size = size;
        bytes->data = (unsigned char *)malloc(size > 0 ? (size_t)size : 1);
    }
    /* A rank that cannot hold the bytes says so before any of them are sent. */
    if (!bytes->data)
        status = descent_mpi_fail_(DESCENT_ERR_OUT_OF_MEMORY, "cannot allocate %lld bytes for the checkpoint",
                                   (long long)size);
    status = descent_mpi_agree_(comm, function, status, descent_mpi_last_error());
    if (status != DESCENT_OK) return status;
    for (int64_t done = 0; done < size;) {   /* MPI counts are ints: at most 1 GiB a call */
        int count = (int)(size - done < (1 << 30) ? size - done : (1 << 30));
        DESCENT_MPI_CALL_(function, MPI_Bcast(bytes->data + done, count, MPI_BYTE, root, comm));
        done += count;
    }
    if (rank != root) status = descent_mpi_load_bytes_(bytes, loaded);
    status = descent_mpi_agree_(comm, function, status, descent_mpi_last_error());
    if (status != DESCENT_OK) {
        descent_net_free(*loaded);
        *loaded = NULL;
    }
    return status;
}

/// Makes every rank's network a copy of rank `root`'s: parameters, optimizer (name,
/// hyperparameters, step count and state), batch-norm running averages and the dropout
/// generator. The public C API reaches optimizer state only through checkpoints, so this is a
/// checkpoint: `root` saves its network to a temporary file (descent_net_save), broadcasts its
/// bytes, and every other rank loads them (descent_net_load) from a temporary file of its own,
/// then frees its old network and stores the new handle in `*net`. Use it to join ranks to a
/// run in progress; at the start, `descent_mpi_broadcast_parameters` is enough and cheaper.
///
/// On `root`, `*net` is unchanged. On the other ranks `*net` is a new handle, and every pointer
/// taken from the old one (descent_net_arena, descent_net_param, descent_net_optimizer) is
/// invalid: take them again. Temporary files go to $TMPDIR (default /tmp) and are removed.
///
/// Collective over `comm`; the arena lengths are compared first (DESCENT_ERR_SHAPE).
/// Errors: every rank returns the same status, and then every `*net` is as it was:
/// DESCENT_ERR_INVALID_ARGUMENT (net or *net NULL, root not a rank of comm),
/// DESCENT_ERR_SHAPE, descent_net_save's and descent_net_load's errors, DESCENT_ERR_IO
/// (a temporary file or an MPI call), DESCENT_ERR_OUT_OF_MEMORY.
/// Memory: the old handle is freed with descent_net_free; the caller frees the new one as any.
/// Threads: one network, one thread at a time.
static inline int32_t descent_mpi_broadcast_net(descent_net **net, MPI_Comm comm, int root) {
    static const char *const function = "descent_mpi_broadcast_net";
    int rank = 0;
    DESCENT_MPI_CALL_(function, MPI_Comm_rank(comm, &rank));
    int64_t length = 0;
    int32_t status = net && *net ? descent_mpi_arena_(*net, NULL, NULL, &length)
                                 : descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT, net ? "*net is NULL" : "net is NULL");
    status = descent_mpi_check_same_(comm, function, root, length, status, descent_mpi_last_error());
    if (status != DESCENT_OK) return status;
    descent_mpi_bytes_ bytes = {NULL, 0};
    if (rank == root) {
        char path[4096];
        int fd = -1;
        status = descent_mpi_temp_file_(path, sizeof path, &fd);
        if (status == DESCENT_OK) {
            close(fd);   /* descent_net_save replaces the file atomically */
            if ((status = descent_net_save(*net, path)) != DESCENT_OK)
                descent_mpi_fail_(status, "%s", descent_last_error());
            else
                status = descent_mpi_read_file_(path, &bytes);
            unlink(path);
        }
    }
    status = descent_mpi_agree_(comm, function, status, descent_mpi_last_error());
    descent_net *loaded = NULL;
    if (status == DESCENT_OK) status = descent_mpi_share_checkpoint_(comm, function, root, &bytes, &loaded);
    free(bytes.data);
    if (status != DESCENT_OK) return status;
    if (rank != root) {
        descent_net_free(*net);
        *net = loaded;
    }
    return DESCENT_OK;
}

/* =============================================================================================
 * Checkpoints: rank 0 saves, any number of ranks load
 * ========================================================================================== */

/// Saves the network as a checkpoint (descent_net_save: atomic, with optimizer state) on rank
/// `root` only. After `descent_mpi_train_step` every rank holds the same parameters and
/// optimizer state, so one file is the whole run's; batch-norm running averages are `root`'s
/// (see the limitations). Every rank waits for the outcome and returns the same status, so a
/// failed save (a full disk on root) stops every rank alike.
///
/// Collective over `comm`. `path` matters only on `root` (other ranks may pass NULL).
/// Errors: descent_net_save's (DESCENT_ERR_INVALID_ARGUMENT, DESCENT_ERR_IO, with its message
/// after "rank R of N failed: "); DESCENT_ERR_INVALID_ARGUMENT (root not a rank of comm).
/// Threads: one network, one thread at a time.
static inline int32_t descent_mpi_save(descent_net *net, const char *path, MPI_Comm comm, int root) {
    static const char *const function = "descent_mpi_save";
    int rank = 0;
    int32_t checked = descent_mpi_rank_with_root_(comm, function, root, &rank);
    if (checked != DESCENT_OK) return checked;
    int32_t status = DESCENT_OK;
    if (rank == root && (status = descent_net_save(net, path)) != DESCENT_OK)
        descent_mpi_fail_(status, "%s", descent_last_error());
    return descent_mpi_agree_(comm, function, status, descent_mpi_last_error());
}

/// Loads a checkpoint on every rank of `comm`, whatever the number of ranks that saved it:
/// rank `root` loads `path` (descent_net_load, with all its checks), reads the file's bytes and
/// broadcasts them; every other rank loads them from a temporary file of its own. So the file
/// needs to exist on `root` only (no shared file system), and every rank gets the same network:
/// parameters, optimizer with its state and step count, batch-norm running averages, dropout
/// generator. The file must not be replaced while the call runs (descent_net_save replaces a
/// checkpoint by renaming over it, which an open reader does not see).
///
/// On success `*out` receives a new handle on every rank; on failure every rank returns the
/// same status and `*out` is NULL everywhere.
/// Collective over `comm`. `path` matters only on `root`.
/// Errors: descent_net_load's (DESCENT_ERR_NOT_FOUND, DESCENT_ERR_FORMAT, ...), DESCENT_ERR_IO
/// (reading the file, a temporary file, an MPI call), DESCENT_ERR_OUT_OF_MEMORY,
/// DESCENT_ERR_INVALID_ARGUMENT (out NULL, root not a rank of comm).
/// Memory: free the handle with descent_net_free. Threads: safe from any thread.
static inline int32_t descent_mpi_load(const char *path, MPI_Comm comm, int root, descent_net **out) {
    static const char *const function = "descent_mpi_load";
    int rank = 0;
    int32_t checked = descent_mpi_rank_with_root_(comm, function, root, &rank);
    if (checked != DESCENT_OK) return checked;
    descent_net *mine = NULL;
    descent_mpi_bytes_ bytes = {NULL, 0};
    int32_t status = out ? DESCENT_OK : descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT, "out is NULL");
    if (status == DESCENT_OK && rank == root) {
        if ((status = descent_net_load(path, &mine)) != DESCENT_OK)
            descent_mpi_fail_(status, "%s", descent_last_error());
        else
            status = descent_mpi_read_file_(path, &bytes);
    }
    status = descent_mpi_agree_(comm, function, status, descent_mpi_last_error());
    descent_net *loaded = NULL;
    if (status == DESCENT_OK) status = descent_mpi_share_checkpoint_(comm, function, root, &bytes, &loaded);
    free(bytes.data);
    if (status != DESCENT_OK) {
        descent_net_free(mine);
        if (out) *out = NULL;
        return status;
    }
    *out = rank == root ? mine : loaded;
    return DESCENT_OK;
}

/* =============================================================================================
 * Training
 * ========================================================================================== */

/* Internal: what the header checks before a step (see descent_mpi_train_step). */
typedef struct {
    int64_t features, classes;
} descent_mpi_shape_;

/* Internal: the network's input width and class count, read through the public API (W1 is
 * [features][width], the last parameter is the output bias). */
static inline int32_t descent_mpi_shape_of_(descent_net *net, descent_mpi_shape_ *shape) {
    int64_t count = descent_net_param_count(net), dims[8] = {0}, classes = 0;
    int32_t rank = 0;
    if (count < 2 || descent_net_param_shape(net, 0, &rank, dims, 8) != DESCENT_OK ||
        descent_net_param(net, count - 1, NULL, NULL, NULL, &classes) != DESCENT_OK)
        return descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT, "%s", count < 0 ? "net is NULL" : descent_last_error());
    shape->features = dims[0];
    shape->classes = classes;
    return DESCENT_OK;
}

/* Internal: the checks of a rank's inputs that the library makes too, made first so that a bad
 * input on one rank is reported on every rank with that rank's number and message. The
 * messages are the library's. */
static inline int32_t descent_mpi_check_inputs_(descent_net *net, const float *x, const int32_t *labels,
                                                int64_t batch) {
    descent_mpi_shape_ shape = {0, 0};
    int32_t status = descent_mpi_shape_of_(net, &shape);
    if (status != DESCENT_OK) return status;
    if (batch < 1 || batch > INT32_MAX / (shape.features > shape.classes ? shape.features : shape.classes))
        return descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT,
                                 "local_batch is %lld: must be >= 1 (and local_batch*features < 2^31)",
                                 (long long)batch);
    if (!x) return descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT, "x is NULL");
    if (!labels) return descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT, "labels is NULL");
    for (int64_t i = 0; i < batch; i++)
        if (labels[i] < 0 || labels[i] >= shape.classes)
            return descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT, "labels[%lld] is %d: must be in [0, %lld)",
                                     (long long)i, (int)labels[i], (long long)shape.classes);
    for (int64_t i = 0, n = batch * shape.features; i < n; i++)
        if (!isfinite(x[i]))
            return descent_mpi_fail_(DESCENT_ERR_NUMERIC, "x contains %s at index %lld (row %lld, column %lld)",
                                     isnan(x[i]) ? "NaN" : x[i] < 0 ? "-Inf" : "Inf", (long long)i,
                                     (long long)(i / shape.features), (long long)(i % shape.features));
    return DESCENT_OK;
}

/* =============================================================================================
 * The library's own data parallelism (descent_net_set_allreduce)
 * ========================================================================================== */

/* Internal: the all-reduce descent_net_set_allreduce calls, over the communicator `context`
 * points at: MPI_Allreduce in place with MPI_SUM, in calls of at most 2^30 floats. */
static inline int32_t descent_mpi_allreduce_(void *context, float *data, int64_t count) {
    const MPI_Comm comm = *(const MPI_Comm *)context;
    for (int64_t done = 0; done < count;) {
        const int n = (int)(count - done < (1 << 30) ? count - done : (1 << 30));
        if (MPI_Allreduce(MPI_IN_PLACE, data + done, n, MPI_FLOAT, MPI_SUM, comm) != MPI_SUCCESS) return 1;
        done += n;
    }
    return 0;
}

/// Makes `net` this rank's replica in a data-parallel job over `*comm`, run by the library
/// itself: afterwards `descent_net_train_step` (or `descent_net_forward_backward` +
/// `descent_net_apply_update`) on this rank's rows of a global batch takes the step of the
/// whole global batch, with none of the limitations listed at the top of this header:
///  - batch norm normalises by the global batch's statistics (synchronised batch norm), and
///    every rank's running averages are the same;
///  - dropout masks follow each row's place in the global batch (rank k's rows after those of
///    ranks 0..k-1), so N ranks draw a single process's masks;
///  - the ranks agree on the batch sizes before the pass and on its outcome after it, inside the
///    library: a step that fails on any rank fails on every rank with the same status and
///    changes nothing on any (batch-norm averages and the dropout generator included). The
///    failing rank's descent_last_error() gives its own reason; the others' name that rank and
///    repeat its message.
/// With 2 ranks of equal rows the steps equal a single process's on the whole batch bit for
/// bit, batch norm and dropout included (the library sums its 2 shards of a 128-255-row batch
/// in the same order). Start from equal replicas (descent_mpi_broadcast_parameters).
///
/// `overlap` 1: each layer's gradients are summed as soon as its backward pass is done, on a
/// thread of the library's, while the layers below still compute; MPI must then run at
/// MPI_THREAD_SERIALIZED or higher (MPI_Init_thread), since MPI is called from that thread and
/// from the caller's, never from both at once. It pays where a rank has a core to spare for
/// communication. On a machine where the ranks fill every core it costs more than it hides
/// (docs/distributed.md has the figures). `overlap` 0: every MPI call stays on the calling
/// thread and the gradients are summed in one call after the backward pass. Both give the
/// same bits.
///
/// `comm` is read at every step: the MPI_Comm it points at must stay valid, at the same address,
/// until descent_mpi_leave(net) or descent_net_free(net). Not collective (it only registers;
/// the steps are).
/// Errors (message in descent_mpi_last_error()): DESCENT_ERR_INVALID_ARGUMENT for NULL, an
/// overlap other than 0 or 1, overlap 1 under an MPI thread level below MPI_THREAD_SERIALIZED,
/// and descent_net_set_allreduce's errors (its message follows "descent_mpi_join: ");
/// DESCENT_ERR_IO when MPI_Comm_rank, MPI_Comm_size or MPI_Query_thread fails.
/// Threads: one network and one communicator, one thread at a time.
static inline int32_t descent_mpi_join(descent_net *net, MPI_Comm *comm, int overlap) {
    static const char *const function = "descent_mpi_join";
    int rank = 0, size = 0, level = MPI_THREAD_SINGLE;
    if (!comm) return descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT, "%s: comm is NULL", function);
    if (overlap != 0 && overlap != 1)
        return descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT, "%s: overlap is %d: must be 0 or 1", function, overlap);
    if (MPI_Comm_rank(*comm, &rank) != MPI_SUCCESS || MPI_Comm_size(*comm, &size) != MPI_SUCCESS ||
        MPI_Query_thread(&level) != MPI_SUCCESS)
        return descent_mpi_fail_(DESCENT_ERR_IO, "%s: MPI_Comm_rank, MPI_Comm_size or MPI_Query_thread failed", function);
    if (overlap && level < MPI_THREAD_SERIALIZED)
        return descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT,
                                 "%s: overlap 1 calls MPI from a thread of the library's as well as from this one, which "
                                 "needs MPI_THREAD_SERIALIZED or higher (MPI_Init_thread); MPI runs at level %d", function, level);
    const int32_t status = descent_net_set_allreduce(net, descent_mpi_allreduce_, comm, rank, size, overlap);
    return status == DESCENT_OK ? DESCENT_OK : descent_mpi_fail_(status, "%s: %s", function, descent_last_error());
}

/// Ends `net`'s part in its job: it trains alone again. Errors: DESCENT_ERR_INVALID_ARGUMENT for NULL.
static inline int32_t descent_mpi_leave(descent_net *net) { return descent_net_set_allreduce(net, NULL, NULL, 0, 0, 0); }

/// One synchronous data-parallel training step. Each rank passes its own rows of the global
/// batch: `x` is [local_batch][features] row-major floats and `labels` local_batch class
/// indices, as for `descent_net_train_step`; ranks may hold different numbers of rows (a
/// global batch of 100 over 3 ranks: 33, 33 and 34). In order:
///
///  1. each rank checks its inputs (NULL, local_batch >= 1, labels in range, x finite) and the
///     ranks agree on the outcome (one small MPI_Allreduce);
///  2. descent_net_train_step on the rank's rows, as a rank of a job over `comm` for this step
///     alone (descent_mpi_join with overlap 0, then descent_mpi_leave): the library sums the
///     gradients and batch norm's statistics over the ranks inside its step, and the step is
///     the global batch's. `net` must not be in a job of descent_mpi_join already.
///
/// `*loss` (may be NULL) receives the global batch's mean loss (cross-entropy plus the
/// weight-decay term) before the update, the same on every rank. Batch norm normalises by the
/// global batch's statistics and dropout masks follow each row's place in the global batch
/// (rank k's rows after those of ranks 0..k-1), so parameters, optimizer state and batch-norm
/// averages stay bit-identical across ranks, and 2 ranks of equal rows compute one process's
/// step on the whole batch bit for bit.
///
/// Errors: every rank returns the same status, and nothing changes on any rank (parameters,
/// optimizer state, batch-norm averages, dropout generator). A failure in step 1
/// (DESCENT_ERR_INVALID_ARGUMENT: NULL, local_batch < 1, a label out of range; DESCENT_ERR_NUMERIC:
/// NaN/Inf in x) is the lowest-numbered failing rank's, whose message descent_mpi_last_error()
/// gives on every rank ("descent_mpi_train_step: rank 1 of 2 failed: x contains NaN at index 17
/// (row 0, column 17)"). A failure in step 2 (DESCENT_ERR_NUMERIC: a loss or batch-norm
/// statistics that overflow float32 over the global batch; DESCENT_ERR_INVALID_ARGUMENT: 1 row in
/// all with batch norm; the optimizer's errors) gives every rank the library's message after
/// "descent_mpi_train_step: ". DESCENT_ERR_IO: an MPI call failed (see the conventions).
/// Cost: besides the step itself, one pass over x (the finiteness check) and one small
/// MPI_Allreduce; the step's own all-reduces are descent_mpi_join's.
/// Memory: the caller's arrays are only read during the call.
/// Threads: one network and one communicator, one thread at a time.
static inline int32_t descent_mpi_train_step(descent_net *net, MPI_Comm comm, const float *x, const int32_t *labels,
                                             int64_t local_batch, float *loss) {
    static const char *const function = "descent_mpi_train_step";
    int32_t status = net ? descent_mpi_check_inputs_(net, x, labels, local_batch)
                         : descent_mpi_fail_(DESCENT_ERR_INVALID_ARGUMENT, "net is NULL");
    /* 1. The inputs, agreed on before any rank starts the step. */
    if ((status = descent_mpi_agree_(comm, function, status, descent_mpi_last_error())) != DESCENT_OK) return status;

    /* 2. The step, as a rank of a one-step job. */
    MPI_Comm job = comm;   /* the job reads it through this address during the step */
    if ((status = descent_mpi_join(net, &job, 0)) != DESCENT_OK)
        return descent_mpi_fail_(status, "%s: %s", function, descent_mpi_last_error());
    status = descent_net_train_step(net, x, labels, local_batch, loss);
    if (status != DESCENT_OK) descent_mpi_fail_(status, "%s: %s", function, descent_last_error());
    descent_mpi_leave(net);
    return status;
}

#undef DESCENT_MPI_CALL_

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DESCENT_MPI_H */
