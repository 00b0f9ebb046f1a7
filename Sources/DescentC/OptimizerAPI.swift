import CDescentKernels
import Descent

/// Creates an optimizer by name: a built-in ("sgd", "momentum", "nesterov", "adagrad",
/// "rmsprop", "adam", "adamw") or one a plugin registered.
///
/// `hparams` is a comma-separated list of key=value pairs, e.g. "lr=0.01,momentum=0.9";
/// NULL or "" keeps every default. Keys must be hyperparameters of that optimizer and values
/// finite and inside their ranges (`descent_optimizer_describe` lists them). Every optimizer
/// without its own weight_decay also takes `weight_decay` (L2: the gradient becomes
/// g + weight_decay*p), and every optimizer takes `check_finite` (1, the default: refuse
/// gradients holding NaN/Inf before writing anything; 0: skip that extra read of the gradients).
///
/// Plugins in the folders of DESCENT_PLUGIN_PATH and in the installed plugin folder are loaded
/// before the first name is looked up (see `descent_plugin_search_path`).
///
/// On success `*out` receives a new handle; on failure `*out` is set to NULL.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL name or out, malformed list, value out of
/// range), DESCENT_ERR_NOT_FOUND (unknown optimizer or key; the message lists the known ones,
/// and for an unknown optimizer the plugin folders searched: "descent_optimizer_create: unknown
/// optimizer 'lion'; known: sgd, ..., adamw; plugin folders searched: /usr/local/lib/descent/plugins").
/// Memory: the caller owns the handle and frees it with `descent_optimizer_free`.
/// Threads: safe from any thread.
@c(descent_optimizer_create) public func descent_optimizer_create(
    _ name: UnsafePointer<CChar>?, _ hparams: UnsafePointer<CChar>?,
    _ out: UnsafeMutablePointer<UnsafeMutablePointer<descent_optimizer>?>?
) -> Int32 {
    out?.pointee = nil
    return guarded("descent_optimizer_create") {
        try required(out, "out").pointee =
            box(try Optimizer(try string(name, "name"), hyperparameters: hparams.map { String(cString: $0) }), as: descent_optimizer.self)
    }
}

/// Takes one optimizer step: updates `count` parameter tensors in place from their gradients.
/// Tensor i is `params[i][0 .. lengths[i])` with gradient `grads[i][0 .. lengths[i])`.
///
/// State (velocities, moments) is kept per tensor position and created, zeroed, on the first
/// step after creation or `descent_optimizer_reset`; later steps must pass the same count and
/// lengths. Before anything is written, every gradient is checked for NaN/Inf, unless the
/// optimizer's `check_finite` is 0 (then NaN/Inf reach parameters and state; for callers that
/// guarantee finite gradients and want the step at full memory speed).
///
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
@c(descent_optimizer_step) public func descent_optimizer_step(
    _ opt: UnsafeMutablePointer<descent_optimizer>?, _ count: Int64,
    _ params: UnsafePointer<UnsafeMutablePointer<Float>?>?,
    _ grads: UnsafePointer<UnsafePointer<Float>?>?, _ lengths: UnsafePointer<Int64>?
) -> Int32 {
    guarded("descent_optimizer_step") {
        let optimizer = unbox(try required(opt, "opt"), as: Optimizer.self)
        guard !optimizer.isOwnedByNetwork else {
            throw DescentError(.invalidArgument, "opt is a network's optimizer (from descent_net_optimizer): it steps only with "
                + "the network's tensors, through descent_net_train_step or descent_net_apply_update")
        }
        try optimizer.step(count: count, params: params, grads: grads, lengths: lengths)
    }
}

/// Sets a hyperparameter, e.g. ("lr", 0.001). State and step count are kept, so this is how
/// learning-rate schedules are written; on a network's optimizer (`descent_net_optimizer`)
/// the network's next step uses the new value.
///
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL, non-finite or out-of-range value; a host L2
/// `weight_decay` > 0 on the optimizer of a network whose spec has `weight_decay` > 0, see
/// `descent_net_set_optimizer`; the optimizer is unchanged), DESCENT_ERR_NOT_FOUND (unknown
/// key; the message lists the known ones).
/// Threads: one handle, one thread at a time.
@c(descent_optimizer_set) public func descent_optimizer_set(
    _ opt: UnsafeMutablePointer<descent_optimizer>?, _ key: UnsafePointer<CChar>?, _ value: Double
) -> Int32 {
    guarded("descent_optimizer_set") {
        try unbox(try required(opt, "opt"), as: Optimizer.self).set(try string(key, "key"), value)
    }
}

/// Reads a hyperparameter's current value into `*value`. The read-only key "step" gives the
/// number of steps taken since creation or the last reset.
///
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL), DESCENT_ERR_NOT_FOUND (unknown key).
/// Threads: one handle, one thread at a time.
@c(descent_optimizer_get) public func descent_optimizer_get(
    _ opt: UnsafePointer<descent_optimizer>?, _ key: UnsafePointer<CChar>?,
    _ value: UnsafeMutablePointer<Double>?
) -> Int32 {
    guarded("descent_optimizer_get") {
        let optimizer = unbox(try required(opt, "opt"), as: Optimizer.self)
        try required(value, "value").pointee = try optimizer.value(try string(key, "key"))
    }
}

/// Forgets all state and the step count; hyperparameters are kept. The next step starts at
/// t = 1 with zero state and may use new tensor shapes.
///
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL). Threads: one handle, one thread at a time.
@c(descent_optimizer_reset) public func descent_optimizer_reset(
    _ opt: UnsafeMutablePointer<descent_optimizer>?
) -> Int32 {
    guarded("descent_optimizer_reset") {
        unbox(try required(opt, "opt"), as: Optimizer.self).reset()
    }
}

/// Frees an optimizer from `descent_optimizer_create` and its state. NULL is ignored
/// (DESCENT_OK). The handle must not be used afterwards.
///
/// A network's optimizer (from `descent_net_optimizer`) is not freed: it belongs to the network
/// and goes with `descent_net_free`. Passing one is refused and changes nothing, so a binding
/// that frees every handle it wraps cannot free it twice.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT ("descent_optimizer_free: opt is a network's optimizer
/// (from descent_net_optimizer): it is freed with the network by descent_net_free").
/// Threads: not while another thread uses the same handle.
@c(descent_optimizer_free) public func descent_optimizer_free(
    _ opt: UnsafeMutablePointer<descent_optimizer>?
) -> Int32 {
    guarded("descent_optimizer_free") {
        guard let opt else { return }
        guard !unbox(opt, as: Optimizer.self).isOwnedByNetwork else {
            throw DescentError(.invalidArgument,
                "opt is a network's optimizer (from descent_net_optimizer): it is freed with the network by descent_net_free")
        }
        release(opt, as: Optimizer.self)
    }
}

/// The registered name of an optimizer, e.g. "adam", or a plugin's "lion"; for a network's
/// optimizer (`descent_net_optimizer`) the one in use.
///
/// On success `*name` receives the name, else NULL.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL opt or name).
/// Memory: a string owned by the library (by the plugin for a plugin's optimizer, and plugins
/// are never unloaded), valid until the process exits, even after the handle is freed.
/// Threads: safe from any thread while the handle is alive (the name never changes).
@c(descent_optimizer_name) public func descent_optimizer_name(
    _ opt: UnsafePointer<descent_optimizer>?, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?
) -> Int32 {
    name?.pointee = nil
    return guarded("descent_optimizer_name") {
        let optimizer = unbox(try required(opt, "opt"), as: Optimizer.self)
        try required(name, "name").pointee = optimizer.kind.cName
    }
}

/// Writes the names of all registered optimizers, comma-separated and NUL-terminated, e.g.
/// "sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw,lion": built-ins first, then plugins
/// in load order.
///
/// `*needed` always receives the size the text needs, NUL included. Call with buf = NULL and
/// cap = 0 to measure. Errors: DESCENT_ERR_BUFFER_TOO_SMALL (cap < *needed; buf untouched),
/// DESCENT_ERR_INVALID_ARGUMENT (cap < 0, or buf NULL with cap > 0).
/// Memory: buf is the caller's. Threads: safe from any thread.
@c(descent_optimizer_names) public func descent_optimizer_names(
    _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int64, _ needed: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded("descent_optimizer_names") {
        try copyOut(OptimizerRegistry.names.joined(separator: ","), buf, cap, needed)
    }
}

/// Writes a JSON description of an optimizer: {"name", "description", "origin" ("built-in" or
/// the plugin's path), "state_buffers", "hyperparameters": [{"name", "default", "min", "max"
/// (null when unbounded), "min_exclusive", "max_exclusive", "boolean", "range" (e.g. "[0, 1)"),
/// "provided_by" ("optimizer" or "host"), "help"}]}.
///
/// Buffer contract as `descent_optimizer_names`. Errors: DESCENT_ERR_NOT_FOUND (unknown
/// name), DESCENT_ERR_INVALID_ARGUMENT, DESCENT_ERR_BUFFER_TOO_SMALL.
/// Threads: safe from any thread.
@c(descent_optimizer_describe) public func descent_optimizer_describe(
    _ name: UnsafePointer<CChar>?, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int64,
    _ needed: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded("descent_optimizer_describe") {
        let kind = try OptimizerRegistry.kind(named: try string(name, "name"))
        try copyOut(kind.describeJSON, buf, cap, needed)
    }
}
