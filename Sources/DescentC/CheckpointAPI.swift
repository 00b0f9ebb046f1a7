import CDescentKernels
import Descent

/// Saves a network as a checkpoint in safetensors format, readable by numpy, PyTorch and the
/// `safetensors` package: every parameter under its name (W1 [fan_in][fan_out], b1, gamma1,
/// beta1, ...), the batch-norm running averages (running_mean1, running_var1, ...), the
/// optimizer's state buffers ("optimizer.W1.0", "optimizer.W1.1", ... once it has taken a
/// step), all F32; and in `__metadata__` the spec, the optimizer's name, hyperparameters (the
/// values in force, also those set through `descent_net_optimizer`) and step count, and the
/// dropout generator's state. `descent_net_load` then continues training
/// exactly as if it had never stopped (same inputs, same thread count: bit-identical losses).
/// Gradients are not saved: save after `descent_net_train_step` or `descent_net_apply_update`.
///
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
@c(descent_net_save) public func descent_net_save(
    _ net: UnsafePointer<descent_net>?, _ path: UnsafePointer<CChar>?
) -> Int32 {
    guarded("descent_net_save") {
        try withNetwork(net) { try $0.save(to: try string(path, "path")) }
    }
}

/// Loads a checkpoint written by `descent_net_save` into a new network: parameters, batch-norm
/// running averages, the optimizer with its hyperparameters, step count and state, and the
/// dropout generator's state. A checkpoint made with a plugin's optimizer needs that plugin
/// loaded first.
///
/// Everything is checked before the network is built: the safetensors structure (sizes and
/// offsets against the real file size; the header is at most 100 MB of strict JSON, with at
/// most 100,000 tensors and 100,000 metadata entries), the metadata, the spec,
/// the optimizer and its hyperparameters, and every tensor's name, dtype (F32) and shape. A
/// truncated, oversized or hostile file is an error, never a crash or an out-of-bounds read.
///
/// On success `*out` receives a new handle, else NULL.
/// Errors (the message starts with the path): DESCENT_ERR_INVALID_ARGUMENT (NULL, empty path),
/// DESCENT_ERR_NOT_FOUND (no such file; or the checkpoint's optimizer is not registered: the
/// message names it), DESCENT_ERR_IO (cannot be read, a directory), DESCENT_ERR_FORMAT (not
/// safetensors, not a Descent checkpoint, an unsupported format_version, or any inconsistency:
/// the message names the tensor or metadata field; a spec `weight_decay` > 0 together with the
/// optimizer's host L2 `weight_decay` > 0 is one, see `descent_net_set_optimizer`),
/// DESCENT_ERR_NUMERIC (a tensor holds NaN or Inf), DESCENT_ERR_OUT_OF_MEMORY.
/// Memory: free the handle with `descent_net_free`. Threads: safe from any thread.
@c(descent_net_load) public func descent_net_load(
    _ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<descent_net>?>?
) -> Int32 {
    out?.pointee = nil
    return guarded("descent_net_load") {
        try required(out, "out").pointee = box(try Network.load(from: try string(path, "path")), as: descent_net.self)
    }
}
