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
 *    A descent_net call made while another thread is inside one on the same network fails with
 *    DESCENT_ERR_INVALID_ARGUMENT ("net 0x... is in use by another thread") instead of racing.
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
typedef struct descent_net descent_net;
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

/// Which BLAS does the matrix products and which kernel set it runs, e.g.
/// "OpenBLAS 0.3.21 ... ; kernels SkylakeX (chosen by Descent for this CPU)". Loads it if needed.
/// Memory: a static string. Threads: safe from any thread.
char const * descent_blas_info(void);

/// Frees the arrays that `descent_dataset_load_idx` returned. Either pointer may be NULL
/// (ignored); do not pass other pointers, and free each array only once.
/// Threads: safe from any thread.
void descent_dataset_free(float * images, int32_t * labels);

/// Loads a labelled data set from two IDX (MNIST-format) files, e.g. Fashion-MNIST's
/// "train-images-idx3-ubyte.gz" and "train-labels-idx1-ubyte.gz" (Debian's
/// dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist). Each file may be
/// raw or gzip-compressed; gzip is recognised by its magic bytes, not by the file name.
/// Images: type 0x08 (unsigned byte) with at least 2 dimensions (count, then the sample's
/// shape, e.g. 0x00000803: count x rows x columns). Labels: type 0x08 with 1 dimension (count).
/// `*images` receives [*count][*features] row-major floats, each pixel byte divided by 255
/// (so in [0, 1]), and `*labels` *count class indices as stored (0..255). `*features` is
/// the product of the image dimensions after the first (784 for 28 x 28).
/// Every header field is validated before data are read: magic bytes, data type, dimension
/// count, every dimension > 0, at most 2^31 elements per file, equal image and label counts,
/// and the exact file length (after decompression): a file cut short and a file with extra
/// bytes are both errors that give the expected and the actual size. A header claiming more
/// data than the file holds never causes an allocation of the claimed size.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (a NULL argument), DESCENT_ERR_NOT_FOUND (a file does
/// not exist; the message names it), DESCENT_ERR_IO (a file cannot be opened or read, or is a
/// directory), DESCENT_ERR_FORMAT (bad contents or corrupt gzip data: the message names the
/// file and the field, e.g. "magic is 0x00000D03: data type 0x0D (32-bit float) is not
/// supported"), DESCENT_ERR_OUT_OF_MEMORY. On error `*images` and `*labels` are set to NULL
/// and `*count` and `*features` to 0 (those that are not NULL), and nothing is allocated.
/// Memory: the caller owns both arrays (allocated by the library, 64-byte aligned) and frees
/// them with `descent_dataset_free`. Threads: safe from any thread.
int32_t descent_dataset_load_idx(char const * images_path, char const * labels_path, float * * images, int32_t * * labels, int64_t * count, int64_t * features);

/// The number of threads the parallel kernels use now (>= 1).
/// Threads: safe from any thread.
int32_t descent_get_num_threads(void);

/// The message of the most recent failing call made on this thread, e.g.
/// "descent_optimizer_step: grads[2] contains NaN at index 17". "" before any failure.
/// Successful calls do not clear it.
/// Memory: owned by the library, valid until the next failing call on this thread; copy it
/// to keep it. Threads: each thread has its own message.
char const * descent_last_error(void);

/// The output of hidden layer `layer` (0-based; after its activation function, before dropout)
/// from the last forward pass: `*data` is [*rows][*cols] row-major.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL, layer out of range, no forward pass yet).
/// Memory: owned by the network, valid until its next forward pass or `descent_net_free`.
/// Threads: one handle, one thread at a time.
int32_t descent_net_activations(descent_net * net, int64_t layer, float const * * data, int64_t * rows, int64_t * cols);

/// The second half of `descent_net_train_step`: one optimizer step on the current gradients.
/// Each `descent_net_forward_backward` result is applied at most once.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (no gradients pending), DESCENT_ERR_NUMERIC (a gradient
/// holds NaN/Inf: the message names the parameter and index; nothing changes), and the
/// optimizer's errors. Threads: one handle, one thread at a time.
int32_t descent_net_apply_update(descent_net * net);

/// Creates a network from a JSON spec, e.g.
/// {"sizes":[784,100,100,10], "activation":"relu", "init":"he", "batchnorm":false,
/// "dropout":0.0, "weight_decay":0.0, "seed":42}.
/// Only "sizes" is required (inputs, hidden widths..., classes; at least 2 entries, all >= 1,
/// classes >= 2). activation: relu | sigmoid | tanh; init: he (std sqrt(2/fan_in)), xavier
/// (sqrt(1/fan_in)), std:X, zeros; dropout in [0, 1); weight_decay >= 0 (0.5<em>lambda</em>sum W^2 in
/// the loss); seed: a whole number that fixes initialisation and dropout masks.
/// The optimizer starts as sgd with lr 0.01; see `descent_net_set_optimizer`.
/// On success `*out` receives a new handle, else NULL.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL, unknown field, bad value: the message names the
/// field; a spec over 1 MiB), DESCENT_ERR_FORMAT (not strict JSON, a key given twice, or arrays
/// and objects nested more than 64 deep: the message gives the line, column and byte),
/// DESCENT_ERR_NOT_FOUND (OpenBLAS cannot be loaded), DESCENT_ERR_OUT_OF_MEMORY.
/// Memory: free the handle with `descent_net_free`. Threads: safe from any thread.
int32_t descent_net_create(char const * spec_json, descent_net * * out);

/// Mean loss (cross-entropy plus the weight-decay term) and accuracy (fraction of argmax hits)
/// over n samples in evaluation mode, processed in chunks of 1000 rows. Either output may be
/// NULL.
/// Errors: as `descent_net_train_step` (n plays the role of batch); nothing is trained.
/// Threads: one handle, one thread at a time.
int32_t descent_net_evaluate(descent_net * net, float const * x, int32_t const * labels, int64_t n, float * loss, float * accuracy);

/// The first half of `descent_net_train_step`: forward and backward, filling the gradients
/// without updating. Between this and `descent_net_apply_update` the gradients may be read
/// and rewritten through `descent_net_param` (e.g. averaged across processes with MPI).
/// Batch-norm running averages are updated here.
/// Errors: as `descent_net_train_step` (batch 1 with batch norm included). Threads: one handle, one thread at a time.
int32_t descent_net_forward_backward(descent_net * net, float const * x, int32_t const * labels, int64_t batch, float * loss);

/// Frees a network, its buffers and its optimizer. NULL is ignored. Pointers obtained from
/// `descent_net_param` and `descent_net_activations` become invalid.
/// Threads: not while another thread uses the same handle. If another thread is inside a call
/// on it, nothing is freed and `descent_last_error()` says so (the handle stays valid).
void descent_net_free(descent_net * net);

/// Loads a checkpoint written by `descent_net_save` into a new network: parameters, batch-norm
/// running averages, the optimizer with its hyperparameters, step count and state, and the
/// dropout generator's state. A checkpoint made with a plugin's optimizer needs that plugin
/// loaded first.
/// Everything is checked before the network is built: the safetensors structure (sizes and
/// offsets against the real file size; the header is at most 100 MB of strict JSON, with at
/// most 100,000 tensors and 100,000 metadata entries), the metadata, the spec,
/// the optimizer and its hyperparameters, and every tensor's name, dtype (F32) and shape. A
/// truncated, oversized or hostile file is an error, never a crash or an out-of-bounds read.
/// On success `*out` receives a new handle, else NULL.
/// Errors (the message starts with the path): DESCENT_ERR_INVALID_ARGUMENT (NULL, empty path),
/// DESCENT_ERR_NOT_FOUND (no such file; or the checkpoint's optimizer is not registered: the
/// message names it), DESCENT_ERR_IO (cannot be read, a directory), DESCENT_ERR_FORMAT (not
/// safetensors, not a Descent checkpoint, an unsupported format_version, or any inconsistency:
/// the message names the tensor or metadata field; a spec `weight_decay` > 0 together with the
/// optimizer's host L2 `weight_decay` > 0 is one, see `descent_net_set_optimizer`),
/// DESCENT_ERR_NUMERIC (a tensor holds NaN or Inf), DESCENT_ERR_OUT_OF_MEMORY.
/// Memory: free the handle with `descent_net_free`. Threads: safe from any thread.
int32_t descent_net_load(char const * path, descent_net * * out);

/// The network's current optimizer, borrowed: `*out` receives a handle on which
/// `descent_optimizer_get`, `descent_optimizer_set` (hyperparameters change mid-run; state and
/// step count are kept, so this is how a network's learning-rate schedule is written),
/// `descent_optimizer_name` and `descent_optimizer_reset` work as on any optimizer. Checkpoints
/// save the values in force. Setting a host L2 `weight_decay` > 0 on it is refused when the
/// spec has `weight_decay` > 0 (see `descent_net_set_optimizer`).
/// The network owns it: `descent_optimizer_free` refuses it (DESCENT_ERR_INVALID_ARGUMENT, the
/// optimizer stays), and `descent_optimizer_step` refuses it too, since the network steps it
/// with its own tensors (`descent_net_train_step`, `descent_net_apply_update`).
/// On success `*out` receives the handle, else NULL.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL net or out).
/// Memory: valid until the next successful `descent_net_set_optimizer` on this network, or
/// `descent_net_free`; calling this again is cheap and always gives the current one.
/// Threads: the handle is part of the network: one thread at a time for both together.
int32_t descent_net_optimizer(descent_net * net, descent_optimizer * * out);

/// Zero-copy access to parameter `index` (0-based, in the order of `descent_net_param_count`):
/// its name ("W1", "b1", "gamma1", "beta1", ...), its values and its gradient (both `*length`
/// floats; weights are [fan_in][fan_out] row-major). Writing through `*data` changes the
/// network; `*grad` holds the last backward pass's gradient. Any output may be NULL.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL net, index out of range).
/// Memory: all pointers are owned by the network and valid until `descent_net_free`.
/// Threads: one handle, one thread at a time.
int32_t descent_net_param(descent_net * net, int64_t index, char const * * name, float * * data, float * * grad, int64_t * length);

/// The number of parameter tensors (W1, b1, [gamma1, beta1,] W2, ...), or -1 for NULL.
/// Threads: one handle, one thread at a time.
int64_t descent_net_param_count(descent_net const * net);

/// Class probabilities for a batch, in evaluation mode (batch-norm running averages, no
/// dropout): `probs` receives [batch][classes] floats.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL, batch <= 0), DESCENT_ERR_NUMERIC (NaN/Inf in x).
/// Threads: one handle, one thread at a time.
int32_t descent_net_predict(descent_net * net, float const * x, int64_t batch, float * probs);

/// Saves a network as a checkpoint in safetensors format, readable by numpy, PyTorch and the
/// `safetensors` package: every parameter under its name (W1 [fan_in][fan_out], b1, gamma1,
/// beta1, ...), the batch-norm running averages (running_mean1, running_var1, ...), the
/// optimizer's state buffers ("optimizer.W1.0", "optimizer.W1.1", ... once it has taken a
/// step), all F32; and in `__metadata__` the spec, the optimizer's name, hyperparameters (the
/// values in force, also those set through `descent_net_optimizer`) and step count, and the
/// dropout generator's state. `descent_net_load` then continues training
/// exactly as if it had never stopped (same inputs, same thread count: bit-identical losses).
/// Gradients are not saved: save after `descent_net_train_step` or `descent_net_apply_update`.
/// Atomic: the file is written to a temporary file `.descent-checkpoint-XXXXXX` (six random
/// letters or digits) in the same directory, fsync'd and renamed over `path`, and the directory
/// is fsync'd; so a crash or an error never leaves a partial file, and a previous file at `path`
/// stays intact unless the save succeeds. On an error the temporary file is removed. A process
/// killed during a save leaves its temporary file behind; the next save into that directory
/// removes it. Each save holds an exclusive flock(2) on its temporary file until the rename, and
/// removes only temporary files it can lock, so those of saves still running, in any process,
/// are left alone (on a filesystem without flock, leftovers stay). Only names of exactly that
/// pattern are touched. The network is not changed.
/// Permissions: those of any newly created file, 0666 minus the umask (and the directory's
/// default ACL); those of a file that is replaced are not kept.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL, empty path), DESCENT_ERR_IO (the directory does
/// not exist or is not writable, `path` is a directory, the disk is full, ...), with the message
/// "descent_net_save: cannot write '<path>': <what failed>: <the system's reason>", e.g.
/// "descent_net_save: cannot write 'a/b': cannot open the directory 'a': No such file or directory".
/// Memory: `path` is only read during the call.
/// Threads: one handle, one thread at a time (saving reads the network).
int32_t descent_net_save(descent_net const * net, char const * path);

/// Swaps the network's optimizer by name (a built-in or a plugin's), at any time: weights are
/// kept, the new optimizer's state starts fresh. `hparams` as in `descent_optimizer_create`.
/// Weight decay: the spec's `weight_decay` (L2 in the loss, on weights only) and the
/// optimizer's host-provided L2 `weight_decay` (g + weight_decay*p, on every parameter) are the
/// same regularisation, so a network whose spec has `weight_decay` > 0 refuses a host L2
/// `weight_decay` > 0. A decoupled decay that an optimizer declares itself (adamw, lion) is a
/// different update and combines with the spec's L2: both then shrink the weights.
/// Errors: as `descent_optimizer_create`, and DESCENT_ERR_INVALID_ARGUMENT for the doubled L2
/// ("descent_net_set_optimizer: sgd's weight_decay=0.001 (L2 on the gradients) would decay the
/// weights a second time: the network's spec has weight_decay=0.01 (L2 in the loss); keep one
/// of the two at 0"). On error the old optimizer stays, untouched.
/// Memory: a handle from `descent_net_optimizer` for the old optimizer becomes invalid (only
/// when the call succeeds). Threads: one handle, one thread at a time.
int32_t descent_net_set_optimizer(descent_net * net, char const * name, char const * hparams);

/// Writes the network's spec as JSON (all fields, defaults filled in).
/// Buffer contract as `descent_optimizer_names`. Threads: one handle, one thread at a time.
int32_t descent_net_spec(descent_net const * net, char * buf, int64_t cap, int64_t * needed);

/// One training step on a mini-batch: forward, backward, optimizer update.
/// `x` is [batch][features] row-major floats, `labels` [batch] class indices in [0, classes).
/// `*loss` receives the mean cross-entropy plus the weight-decay term, before the update
/// (`loss` may be NULL).
/// Errors change nothing (weights, optimizer state, batch-norm averages, random state):
/// DESCENT_ERR_INVALID_ARGUMENT (NULL, batch <= 0, a label out of range: the message names the
/// index; batch 1 on a network with batch norm, whose batch variance is then undefined:
/// "descent_net_train_step: batch is 1, but training a network with batch norm needs at least
/// 2 samples per batch (the variance of a single sample is undefined); predict and evaluate
/// accept 1"), DESCENT_ERR_NUMERIC (NaN/Inf in x, or a non-finite loss or gradient).
/// Afterwards the gradients of this step stay readable through `descent_net_param`; the
/// result is bit-identical to `descent_net_forward_backward` + `descent_net_apply_update`.
/// At batch 1, a network without batch norm and dropout (and an optimizer flagged
/// DESCENT_OPTIMIZER_INFALLIBLE, as the built-ins are) takes the whole step in one parallel
/// pass in which each thread keeps its rows of every weight matrix in its own cache.
/// Memory: the caller's arrays are only read during the call.
/// Threads: one handle, one thread at a time. Allocates only when a larger batch is first seen.
int32_t descent_net_train_step(descent_net * net, float const * x, int32_t const * labels, int64_t batch, float * loss);

/// Creates an optimizer by name: a built-in ("sgd", "momentum", "nesterov", "adagrad",
/// "rmsprop", "adam", "adamw") or one a plugin registered.
/// `hparams` is a comma-separated list of key=value pairs, e.g. "lr=0.01,momentum=0.9";
/// NULL or "" keeps every default. Keys must be hyperparameters of that optimizer and values
/// finite and inside their ranges (`descent_optimizer_describe` lists them). Every optimizer
/// without its own weight_decay also takes `weight_decay` (L2: the gradient becomes
/// g + weight_decay*p), and every optimizer takes `check_finite` (1, the default: refuse
/// gradients holding NaN/Inf before writing anything; 0: skip that extra read of the gradients).
/// Plugins in the folders of DESCENT_PLUGIN_PATH and in the installed plugin folder are loaded
/// before the first name is looked up (see `descent_plugin_search_path`).
/// On success `*out` receives a new handle; on failure `*out` is set to NULL.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL name or out, malformed list, value out of
/// range), DESCENT_ERR_NOT_FOUND (unknown optimizer or key; the message lists the known ones,
/// and for an unknown optimizer the plugin folders searched: "descent_optimizer_create: unknown
/// optimizer 'lion'; known: sgd, ..., adamw; plugin folders searched: /usr/local/lib/descent/plugins").
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

/// Frees an optimizer from `descent_optimizer_create` and its state. NULL is ignored
/// (DESCENT_OK). The handle must not be used afterwards.
/// A network's optimizer (from `descent_net_optimizer`) is not freed: it belongs to the network
/// and goes with `descent_net_free`. Passing one is refused and changes nothing, so a binding
/// that frees every handle it wraps cannot free it twice.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT ("descent_optimizer_free: opt is a network's optimizer
/// (from descent_net_optimizer): it is freed with the network by descent_net_free").
/// Threads: not while another thread uses the same handle.
int32_t descent_optimizer_free(descent_optimizer * opt);

/// Reads a hyperparameter's current value into `*value`. The read-only key "step" gives the
/// number of steps taken since creation or the last reset.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL), DESCENT_ERR_NOT_FOUND (unknown key).
/// Threads: one handle, one thread at a time.
int32_t descent_optimizer_get(descent_optimizer const * opt, char const * key, double * value);

/// The registered name of an optimizer, e.g. "adam", or a plugin's "lion"; for a network's
/// optimizer (`descent_net_optimizer`) the one in use.
/// On success `*name` receives the name, else NULL.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL opt or name).
/// Memory: a string owned by the library (by the plugin for a plugin's optimizer, and plugins
/// are never unloaded), valid until the process exits, even after the handle is freed.
/// Threads: safe from any thread while the handle is alive (the name never changes).
int32_t descent_optimizer_name(descent_optimizer const * opt, char const * * name);

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
/// learning-rate schedules are written; on a network's optimizer (`descent_net_optimizer`)
/// the network's next step uses the new value.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL, non-finite or out-of-range value; a host L2
/// `weight_decay` > 0 on the optimizer of a network whose spec has `weight_decay` > 0, see
/// `descent_net_set_optimizer`; the optimizer is unchanged), DESCENT_ERR_NOT_FOUND (unknown
/// key; the message lists the known ones).
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
/// DESCENT_ERR_INVALID_ARGUMENT (NULL pointers, count <= 0, a negative length; `opt` is a
/// network's optimizer from `descent_net_optimizer`, which steps only with its network),
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
/// `path` is a file path, absolute or relative to the working directory, also without a slash:
/// "adabelief.so" is the file in the working directory (dlopen alone would search the library
/// path for it). Loading the same library again succeeds and changes nothing. Plugins are never
/// unloaded. The first time any optimizer name is looked up, the libraries in the folders of
/// `descent_plugin_search_path` are loaded automatically.
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

/// Writes the folders searched for plugins, colon-separated and NUL-terminated, in the order
/// they are searched: the folders of the environment variable DESCENT_PLUGIN_PATH
/// (colon-separated, read once per process), then the plugin folder installed with the library,
/// `descent/plugins` next to the loaded libdescent.so (`<prefix>/lib/descent/plugins`, where
/// `cmake --install` puts the example plugins; found with dladdr, so it follows the library
/// wherever the prefix is). Each folder appears once. Every "*.so" in them is loaded, in name
/// order per folder, the first time any optimizer name is looked up (this call counts); a
/// library that fails to load is reported on stderr and skipped, and so is a folder of
/// DESCENT_PLUGIN_PATH that cannot be opened; a missing installed folder is not reported.
/// An unknown optimizer name's DESCENT_ERR_NOT_FOUND message lists these folders too.
/// Buffer contract as `descent_optimizer_names`.
/// Threads: safe from any thread.
int32_t descent_plugin_search_path(char * buf, int64_t cap, int64_t * needed);

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
