/*
 * descent.h -- the C API of Descent, a deep-learning training library.
 *
 * GENERATED from the @c declarations in Sources/DescentC by scripts/generate_header.py.
 * Do not edit: change the Swift doc comments and regenerate (a test fails when this is stale).
 *
 * Conventions
 *  - Every function that can fail returns an int32_t status: DESCENT_OK (0) or a
 *    DESCENT_ERR_* code. On failure descent_last_error() returns a message naming the function,
 *    the argument and the problem, and the call has changed nothing: parameters, optimizer
 *    state and files are as they were.
 *  - Handles (descent_optimizer, descent_net) are opaque. Functions that create one write it
 *    through an out-parameter; the caller frees it with the matching *_free function.
 *  - Strings passed in are NUL-terminated UTF-8 and are copied when kept. Strings returned as
 *    `const char *` are owned by the library (see each function for how long they live).
 *  - Threads: separate handles may be used from different threads at the same time; one handle
 *    is used by one thread at a time. Functions without a handle are safe from any thread.
 *
 * Link with -ldescent (pkg-config descent, or CMake find_package(Descent)).
 * Optimizer plugins are written against descent_plugin.h alone.
 */
#ifndef DESCENT_H
#define DESCENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque handles. */
typedef struct descent_optimizer descent_optimizer;

/// Status codes. Every function that can fail returns one of these as an `int32_t`; 0 is
/// success. On failure, `descent_last_error()` says which function, which argument and what
/// is wrong. New codes may be added at the end; treat unknown non-zero codes as errors.
typedef enum descent_status {
/// Success.
    DESCENT_OK = 0,
/// An argument is NULL, out of range, malformed, non-finite or of the wrong size.
    DESCENT_ERR_INVALID_ARGUMENT = 1,
/// A name (optimizer, hyperparameter, file, directory) does not exist.
    DESCENT_ERR_NOT_FOUND = 2,
/// NaN or Inf in data that must be finite (gradients, inputs).
    DESCENT_ERR_NUMERIC = 3,
/// Tensor count or lengths differ from those the optimizer state was created for.
    DESCENT_ERR_SHAPE = 4,
/// Reading or writing a file failed.
    DESCENT_ERR_IO = 5,
/// A file's contents are not in the expected format.
    DESCENT_ERR_FORMAT = 6,
/// A plugin could not be loaded, collides with a loaded name, or its optimizer failed.
    DESCENT_ERR_PLUGIN = 7,
/// Memory could not be allocated.
    DESCENT_ERR_OUT_OF_MEMORY = 8,
/// The caller's buffer is too small; the needed size was written to `*needed`.
    DESCENT_ERR_BUFFER_TOO_SMALL = 9,
} descent_status;

/// The number of threads the parallel kernels use now (>= 1).
/// Threads: safe from any thread.
int32_t descent_get_num_threads(void);

/// The message of the most recent failing call made on this thread, e.g.
/// "descent_optimizer_step: grads[2] contains NaN at index 17". "" before any failure.
/// Successful calls do not clear it.
/// Memory: owned by the library, valid until the next failing call on this thread; copy it
/// to keep it. Threads: each thread has its own message.
char const * descent_last_error(void);

/// Creates an optimizer by name: a built-in ("sgd", "momentum", "nesterov", "adagrad",
/// "rmsprop", "adam", "adamw") or one a plugin registered.
/// `hparams` is a comma-separated list of key=value pairs, e.g. "lr=0.01,momentum=0.9";
/// NULL or "" keeps every default. Keys must be hyperparameters of that optimizer and values
/// finite and inside their ranges (`descent_optimizer_describe` lists them). Every optimizer
/// without its own weight_decay also takes `weight_decay` (L2: the gradient becomes
/// g + weight_decay*p), and every optimizer takes `check_finite` (1, the default: refuse
/// gradients holding NaN/Inf before writing anything; 0: skip that extra read of the gradients).
/// On success `*out` receives a new handle; on failure `*out` is set to NULL.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL name or out, malformed list, value out of
/// range), DESCENT_ERR_NOT_FOUND (unknown optimizer or key; the message lists the known ones).
/// Memory: the caller owns the handle and frees it with `descent_optimizer_free`.
/// Threads: safe from any thread.
int32_t descent_optimizer_create(char const * name, char const * hparams, descent_optimizer * * out);

/// Writes a JSON description of an optimizer: {"name", "description", "origin" ("built-in" or
/// the plugin's path), "state_buffers", "hyperparameters": [{"name", "default", "min", "max"
/// (null when unbounded), "min_exclusive", "max_exclusive", "boolean", "range" (e.g. "[0, 1)"),
/// "provided_by" ("optimizer" or "host"), "help"}]}.
/// Buffer contract as `descent_optimizer_names`. Errors: DESCENT_ERR_NOT_FOUND (unknown
/// name), DESCENT_ERR_INVALID_ARGUMENT, DESCENT_ERR_BUFFER_TOO_SMALL.
/// Threads: safe from any thread.
int32_t descent_optimizer_describe(char const * name, char * buf, int64_t cap, int64_t * needed);

/// Frees an optimizer and its state. NULL is ignored. The handle must not be used afterwards.
/// Threads: not while another thread uses the same handle.
void descent_optimizer_free(descent_optimizer * opt);

/// Reads a hyperparameter's current value into `*value`. The read-only key "step" gives the
/// number of steps taken since creation or the last reset.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL), DESCENT_ERR_NOT_FOUND (unknown key).
/// Threads: one handle, one thread at a time.
int32_t descent_optimizer_get(descent_optimizer const * opt, char const * key, double * value);

/// Writes the names of all registered optimizers, comma-separated and NUL-terminated, e.g.
/// "sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw,lion": built-ins first, then plugins
/// in load order.
/// `*needed` always receives the size the text needs, NUL included. Call with buf = NULL and
/// cap = 0 to measure. Errors: DESCENT_ERR_BUFFER_TOO_SMALL (cap < *needed; buf untouched),
/// DESCENT_ERR_INVALID_ARGUMENT (cap < 0, or buf NULL with cap > 0).
/// Memory: buf is the caller's. Threads: safe from any thread.
int32_t descent_optimizer_names(char * buf, int64_t cap, int64_t * needed);

/// Forgets all state and the step count; hyperparameters are kept. The next step starts at
/// t = 1 with zero state and may use new tensor shapes.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL). Threads: one handle, one thread at a time.
int32_t descent_optimizer_reset(descent_optimizer * opt);

/// Sets a hyperparameter, e.g. ("lr", 0.001). State and step count are kept, so this is how
/// learning-rate schedules are written.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL, non-finite or out-of-range value; the optimizer
/// is unchanged), DESCENT_ERR_NOT_FOUND (unknown key; the message lists the known ones).
/// Threads: one handle, one thread at a time.
int32_t descent_optimizer_set(descent_optimizer * opt, char const * key, double value);

/// Takes one optimizer step: updates `count` parameter tensors in place from their gradients.
/// Tensor i is `params[i][0 .. lengths[i])` with gradient `grads[i][0 .. lengths[i])`.
/// State (velocities, moments) is kept per tensor position and created, zeroed, on the first
/// step after creation or `descent_optimizer_reset`; later steps must pass the same count and
/// lengths. Before anything is written, every gradient is checked for NaN/Inf, unless the
/// optimizer's `check_finite` is 0 (then NaN/Inf reach parameters and state; for callers that
/// guarantee finite gradients and want the step at full memory speed).
/// Errors leave parameters, state and the step count exactly as they were:
/// DESCENT_ERR_INVALID_ARGUMENT (NULL pointers, count <= 0, a negative length),
/// DESCENT_ERR_NUMERIC (a gradient holds NaN/Inf and check_finite is 1; the message names
/// tensor and index),
/// DESCENT_ERR_SHAPE (count or lengths differ from the state's; the message names both),
/// DESCENT_ERR_PLUGIN (a plugin's step failed; its message is included),
/// DESCENT_ERR_OUT_OF_MEMORY (state could not be allocated on the first step).
/// Memory: the caller owns all arrays; the library keeps no pointer to them after the call.
/// Threads: one handle is used by one thread at a time; separate handles may step
/// concurrently. The update itself runs on `descent_get_num_threads()` threads when the
/// tensors hold at least 32768 elements in total, and gives bit-identical results either way.
int32_t descent_optimizer_step(descent_optimizer * opt, int64_t count, float * const * params, float const * const * grads, int64_t const * lengths);

/// Loads an optimizer plugin (a shared library built against descent_plugin.h) and registers
/// its optimizers, so `descent_optimizer_create` and `descent_net_set_optimizer` find them by
/// name. All of the library's optimizers are registered, or none.
/// Loading the same library again succeeds and changes nothing. Plugins are never unloaded.
/// Libraries in the folders of DESCENT_PLUGIN_PATH (colon-separated) are loaded automatically
/// the first time any optimizer name is looked up.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL or empty path), DESCENT_ERR_NOT_FOUND (no such
/// file), DESCENT_ERR_PLUGIN (not loadable, no descent_plugin_entry symbol, built for another
/// ABI major version (the message names both), an invalid descriptor, or an optimizer name
/// that is already taken by another library).
/// Threads: safe from any thread; loads are serialised.
int32_t descent_plugin_load(char const * path);

/// Loads every "*.so" in a folder, in name order, as `descent_plugin_load` does. Stops at the
/// first library that fails and returns its error; the ones loaded before it stay loaded.
/// Errors: as `descent_plugin_load`, and DESCENT_ERR_NOT_FOUND when the folder cannot be opened.
/// Threads: safe from any thread.
int32_t descent_plugin_load_dir(char const * dir);

/// Sets how many threads the parallel kernels use: n >= 1 sets it, n == 0 restores the
/// default (DESCENT_NUM_THREADS if set, else the number of cores). Results do not depend on
/// the count: every element is computed by the same arithmetic whichever thread runs it.
/// Returns DESCENT_OK, or DESCENT_ERR_INVALID_ARGUMENT for n < 0 or n > 1024.
/// Threads: a process-wide setting, safe to call from any thread; steps already running
/// keep the count they started with.
int32_t descent_set_num_threads(int32_t n);

/// The C name of a status code, e.g. "DESCENT_ERR_NUMERIC"; "DESCENT_ERR_UNKNOWN" for codes
/// this version does not know.
/// Memory: a static string; do not free it. Threads: safe from any thread.
char const * descent_status_name(int32_t status);

/// The library's version, e.g. "0.1.0" (semantic versioning).
/// Memory: a static string owned by the library; do not free it.
/// Threads: safe from any thread.
char const * descent_version(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DESCENT_H */
