/*
 * descent_plugin.h -- the Descent optimizer plugin ABI.
 *
 * A plugin is a shared library that exports one symbol, descent_plugin_entry, and describes
 * one or more optimizers with the structs below. It needs this header only: it does not link
 * libdescent. The built-in optimizers (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw)
 * are described with exactly these structs too.
 *
 * The host owns all memory. For every optimizer it
 *   - parses and range-checks hyperparameters against the table the plugin gives,
 *   - allocates zero-initialised state: one float buffer per state slot (state_count) holding
 *     that slot for every element of every tensor,
 *   - checks gradients for NaN/Inf before any update (its `check_finite` hyperparameter, which
 *     it adds to every optimizer; the name is reserved: a plugin may not declare it),
 *   - adds L2 weight decay (grad + weight_decay * param) unless the optimizer declares a
 *     hyperparameter named "weight_decay" itself: declaring one turns the host's L2 off, and
 *     step() then receives the raw gradient and applies its own decay (a decoupled one, as
 *     adamw and lion do, or any other),
 *   - calls prepare() once per step, then step() on chunks of every tensor, from several
 *     threads at once (OpenMP) when the tensors are large. A network steps its whole parameter
 *     arena as one tensor, so a chunk may end in one parameter and go on, through a few floats
 *     of zero padding (zero gradient, zero state), into the next: step() is elementwise and
 *     never needs to know where a tensor starts,
 *   - saves state in checkpoints, and resets it when the user swaps optimizers.
 * So a plugin's step() is a plain elementwise loop.
 *
 * Versioning (CLAP style): every struct begins with its size and only ever grows at the end.
 * A host reads a field only when the plugin's struct_size covers it, so plugins built against
 * an older minor version keep loading. A different ABI major version is refused at load time.
 *
 * Thread rules: descent_plugin_entry is called once per library, under the host's registry
 * lock. prepare() is called from the thread that runs the step; step() may run concurrently
 * on disjoint chunks of the same tensor and must not keep global mutable state.
 */
#ifndef DESCENT_PLUGIN_H
#define DESCENT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI version: major changes break compatibility, minor ones only append. */
#define DESCENT_PLUGIN_ABI_MAJOR 1u
#define DESCENT_PLUGIN_ABI_MINOR 0u
#define DESCENT_PLUGIN_ABI_VERSION ((DESCENT_PLUGIN_ABI_MAJOR << 16) | DESCENT_PLUGIN_ABI_MINOR)
#define DESCENT_PLUGIN_ABI_MAJOR_OF(v) ((uint32_t)(v) >> 16)

/* The one symbol every plugin exports (type: descent_plugin_entry_fn). */
#define DESCENT_PLUGIN_ENTRY_SYMBOL "descent_plugin_entry"

/* Limits the host enforces when it loads a descriptor. */
#define DESCENT_PLUGIN_MAX_STATE 8u       /* state buffers per element */
#define DESCENT_PLUGIN_MAX_SCALARS 16u    /* per-step scalars written by prepare() */
#define DESCENT_PLUGIN_MAX_HPARAMS 32u    /* hyperparameters per optimizer */
#define DESCENT_PLUGIN_MAX_NAME 31u       /* characters in an optimizer or hyperparameter name */

/* Return values of prepare() and step(). */
#define DESCENT_PLUGIN_OK 0
#define DESCENT_PLUGIN_ERROR 1

/* descent_hparam_desc.flags */
#define DESCENT_HPARAM_MIN_EXCLUSIVE 0x1u /* value must be > min_value (default: >=) */
#define DESCENT_HPARAM_MAX_EXCLUSIVE 0x2u /* value must be < max_value (default: <=) */
#define DESCENT_HPARAM_BOOLEAN 0x4u       /* value must be exactly 0 or 1 */

/* One hyperparameter. Tables of these are indexed with stride hparams[0].struct_size. */
typedef struct descent_hparam_desc {
    uint32_t struct_size;   /* sizeof(descent_hparam_desc) as the plugin was built */
    uint32_t flags;         /* DESCENT_HPARAM_* */
    const char *name;       /* [a-z][a-z0-9_]*, at most DESCENT_PLUGIN_MAX_NAME characters */
    const char *help;       /* one line for users; may be NULL */
    double default_value;   /* must lie in the range */
    double min_value;       /* -HUGE_VAL for no lower bound */
    double max_value;       /* +HUGE_VAL for no upper bound */
} descent_hparam_desc;

/* What prepare() and step() see. The host fills it; plugins only read it. */
typedef struct descent_step_context {
    uint32_t struct_size;
    uint32_t reserved;
    int64_t step;              /* t: 1 on the first update after creation or reset */
    /* Current values: hparams[0 .. hparam_count) in the order of the optimizer's table, then
     * the host's own: hparams[hparam_count] is "weight_decay" (the host's L2, already added to
     * the gradient step() sees) when the optimizer declares no "weight_decay", and the last
     * entry is always "check_finite" (1 or 0). Plugins need not read the host's entries. */
    const double *hparams;
    const double *scalars;     /* values prepare() wrote for this step (zeros without prepare) */
    /* Records why step() or prepare() is about to return DESCENT_PLUGIN_ERROR. Thread-safe;
     * the first message of a step wins. The host copies the string. */
    void (*report_error)(const struct descent_step_context *ctx, const char *message);
    void *host_data;           /* the host's; do not touch */
} descent_step_context;

/* descent_optimizer_desc.flags */
/* step() never returns an error (prepare() still may), so the host need not snapshot parameters and state to roll
 * them back when it does. Without this flag the host keeps such a snapshot for every step. */
#define DESCENT_OPTIMIZER_INFALLIBLE 0x1u

/* One optimizer. */
typedef struct descent_optimizer_desc {
    uint32_t struct_size;      /* sizeof(descent_optimizer_desc) as the plugin was built */
    uint32_t flags;            /* DESCENT_OPTIMIZER_* */
    const char *name;          /* unique across everything loaded: [a-z][a-z0-9_]* */
    const char *description;   /* one line, e.g. the update rule */
    uint32_t hparam_count;     /* entries in hparams, at most DESCENT_PLUGIN_MAX_HPARAMS */
    uint32_t state_count;      /* per-element state buffers, at most DESCENT_PLUGIN_MAX_STATE */
    const descent_hparam_desc *hparams;
    /* Optional (may be NULL). Called once per step before any step() call, to compute values
     * that are the same for every element (bias corrections), so they are not recomputed per
     * element. Writes at most DESCENT_PLUGIN_MAX_SCALARS values to scalars. May return
     * DESCENT_PLUGIN_ERROR (after ctx->report_error) whatever the flags, also with
     * DESCENT_OPTIMIZER_INFALLIBLE: nothing has been written yet, so the step fails with
     * parameters, state and the step count unchanged. */
    int32_t (*prepare)(const descent_step_context *ctx, double *scalars);
    /* Required. Updates param[0..n) in place from grad[0..n) and the state buffers
     * state[0..state_count)[0..n). Called on disjoint chunks, possibly concurrently. The
     * pointers are already advanced to the chunk, and step() is told neither which tensor it
     * belongs to nor where in it the chunk starts: the update of an element may depend only on
     * that element's param, grad and state, ctx->hparams, ctx->scalars and ctx->step. */
    int32_t (*step)(const descent_step_context *ctx, float *param, const float *grad,
                    float *const *state, int64_t n);
} descent_optimizer_desc;

/* What the host offers a plugin when it loads it. */
typedef struct descent_host {
    uint32_t struct_size;
    uint32_t abi_version;      /* the host's DESCENT_PLUGIN_ABI_VERSION */
    const char *host_version;  /* e.g. "0.1.0" */
    /* Writes a line to the host's log (stderr). level: 0 debug, 1 info, 2 warning, 3 error. */
    void (*log)(int32_t level, const char *message);
} descent_host;

/* What a plugin returns from its entry point. Must stay valid until the process exits. */
typedef struct descent_plugin {
    uint32_t abi_version;      /* DESCENT_PLUGIN_ABI_VERSION the plugin was built with */
    uint32_t struct_size;      /* sizeof(descent_plugin) as the plugin was built */
    const char *name;          /* the library's name, e.g. "lion" */
    const char *version;       /* the library's own version, e.g. "1.0.0" */
    uint32_t optimizer_count;
    uint32_t reserved;
    const descent_optimizer_desc *const *optimizers;
} descent_plugin;

/* The entry point's type. Returns NULL to refuse loading (after host->log says why). */
typedef const descent_plugin *(*descent_plugin_entry_fn)(const descent_host *host);

#if defined(_WIN32)
#define DESCENT_PLUGIN_EXPORT __declspec(dllexport)
#else
#define DESCENT_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DESCENT_PLUGIN_H */
