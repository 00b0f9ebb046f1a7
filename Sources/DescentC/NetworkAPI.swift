import CDescentKernels
import Descent

/// The network behind `net`, claimed for the duration of `body`. A handle is used by one
/// thread at a time; a second thread that calls in while the first is inside gets
/// DESCENT_ERR_INVALID_ARGUMENT naming the handle, instead of racing it (the claim is one
/// atomic exchange, nothing measurable next to a step).
func withNetwork<T>(_ net: UnsafePointer<descent_net>?, _ body: (Network) throws -> T) throws -> T {
    let handle = try required(net, "net")
    let network = unbox(handle, as: Network.self)
    guard network.claim() else { throw DescentError(.invalidArgument, inUseMessage(handle)) }
    defer { network.unclaim() }
    return try body(network)
}

/// Parameter `index` of `network`; an index out of range is an error naming the valid range.
func parameter(_ network: Network, _ index: Int64) throws -> Parameter {
    guard index >= 0, index < Int64(network.parameters.count) else {
        throw DescentError(.invalidArgument, "index is \(index): must be in [0, \(network.parameters.count))")
    }
    return network.parameters[Int(index)]
}

/// "net 0x55d0c2a1e2b0 is in use by another thread ..." (the address as printf's %p shows it).
func inUseMessage(_ handle: UnsafePointer<descent_net>) -> String {
    "net 0x\(String(UInt(bitPattern: handle), radix: 16)) is in use by another thread (a handle is used by one thread at a time)"
}

/// Creates a network from a JSON spec, e.g.
/// {"sizes":[784,100,100,10], "activation":"relu", "init":"he", "batchnorm":false,
///  "dropout":0.0, "weight_decay":0.0, "seed":42}.
/// Only "sizes" is required (inputs, hidden widths..., classes; at least 2 entries, all >= 1,
/// classes >= 2). activation: relu | sigmoid | tanh; init: he (std sqrt(2/fan_in)), xavier
/// (sqrt(1/fan_in)), std:X, zeros; dropout in [0, 1); weight_decay >= 0 (0.5*lambda*sum W^2 in
/// the loss); seed: a whole number that fixes initialisation and dropout masks.
/// The optimizer starts as sgd with lr 0.01; see `descent_net_set_optimizer`.
///
/// On success `*out` receives a new handle, else NULL.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL, unknown field, bad value: the message names the
/// field; a spec over 1 MiB), DESCENT_ERR_FORMAT (not strict JSON, a key given twice, or arrays
/// and objects nested more than 64 deep: the message gives the line, column and byte),
/// DESCENT_ERR_NOT_FOUND (OpenBLAS cannot be loaded), DESCENT_ERR_OUT_OF_MEMORY.
/// Memory: free the handle with `descent_net_free`. Threads: safe from any thread.
@c(descent_net_create) public func descent_net_create(
    _ spec_json: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<descent_net>?>?
) -> Int32 {
    out?.pointee = nil
    return guarded("descent_net_create") {
        try required(out, "out").pointee = box(try Network(json: try string(spec_json, "spec_json")), as: descent_net.self)
    }
}

/// Frees a network, its buffers and its optimizer. NULL is ignored. Pointers obtained from
/// `descent_net_param`, `descent_net_arena` and `descent_net_activations` become invalid.
///
/// Threads: not while another thread uses the same handle. If another thread is inside a call
/// on it, nothing is freed and `descent_last_error()` says so (the handle stays valid).
@c(descent_net_free) public func descent_net_free(_ net: UnsafeMutablePointer<descent_net>?) {
    guard let net else { return }
    guard unbox(net, as: Network.self).claim() else {
        dk_error_set("descent_net_free: \(inUseMessage(net)): not freed")
        return
    }
    release(net, as: Network.self)
}

/// Swaps the network's optimizer by name (a built-in or a plugin's), at any time: weights are
/// kept, the new optimizer's state starts fresh. `hparams` as in `descent_optimizer_create`.
///
/// Weight decay: the spec's `weight_decay` (L2 in the loss, on weights only) and the
/// optimizer's host-provided L2 `weight_decay` (g + weight_decay*p, on every parameter) are the
/// same regularisation, so a network whose spec has `weight_decay` > 0 refuses a host L2
/// `weight_decay` > 0. A decoupled decay that an optimizer declares itself (adamw, lion) is a
/// different update and combines with the spec's L2: both then shrink the weights.
///
/// Errors: as `descent_optimizer_create`, and DESCENT_ERR_INVALID_ARGUMENT for the doubled L2
/// ("descent_net_set_optimizer: sgd's weight_decay=0.001 (L2 on the gradients) would decay the
/// weights a second time: the network's spec has weight_decay=0.01 (L2 in the loss); keep one
/// of the two at 0"). On error the old optimizer stays, untouched.
/// Memory: a handle from `descent_net_optimizer` for the old optimizer becomes invalid (only
/// when the call succeeds). Threads: one handle, one thread at a time.
@c(descent_net_set_optimizer) public func descent_net_set_optimizer(
    _ net: UnsafeMutablePointer<descent_net>?, _ name: UnsafePointer<CChar>?, _ hparams: UnsafePointer<CChar>?
) -> Int32 {
    guarded("descent_net_set_optimizer") {
        try withNetwork(net) { network in
            try network.setOptimizer(try string(name, "name"), hyperparameters: hparams.map { String(cString: $0) })
        }
    }
}

/// The network's current optimizer, borrowed: `*out` receives a handle on which
/// `descent_optimizer_get`, `descent_optimizer_set` (hyperparameters change mid-run; state and
/// step count are kept, so this is how a network's learning-rate schedule is written),
/// `descent_optimizer_name` and `descent_optimizer_reset` work as on any optimizer. Checkpoints
/// save the values in force. Setting a host L2 `weight_decay` > 0 on it is refused when the
/// spec has `weight_decay` > 0 (see `descent_net_set_optimizer`).
///
/// The network owns it: `descent_optimizer_free` refuses it (DESCENT_ERR_INVALID_ARGUMENT, the
/// optimizer stays), and `descent_optimizer_step` refuses it too, since the network steps it
/// with its own tensors (`descent_net_train_step`, `descent_net_apply_update`).
///
/// On success `*out` receives the handle, else NULL.
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL net or out).
/// Memory: valid until the next successful `descent_net_set_optimizer` on this network, or
/// `descent_net_free`; calling this again is cheap and always gives the current one.
/// Threads: the handle is part of the network: one thread at a time for both together.
@c(descent_net_optimizer) public func descent_net_optimizer(
    _ net: UnsafeMutablePointer<descent_net>?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<descent_optimizer>?>?
) -> Int32 {
    out?.pointee = nil
    return guarded("descent_net_optimizer") {
        let network = unbox(try required(net, "net"), as: Network.self)
        try required(out, "out").pointee = borrow(network.optimizer, as: descent_optimizer.self)
    }
}

/// One training step on a mini-batch: forward, backward, optimizer update.
/// `x` is [batch][features] row-major floats, `labels` [batch] class indices in [0, classes).
/// `*loss` receives the mean cross-entropy plus the weight-decay term, before the update
/// (`loss` may be NULL).
///
/// Errors change nothing (weights, optimizer state, batch-norm averages, random state):
/// DESCENT_ERR_INVALID_ARGUMENT (NULL, batch <= 0, a label out of range: the message names the
/// index; batch 1 on a network with batch norm, whose batch variance is then undefined:
/// "descent_net_train_step: batch is 1, but training a network with batch norm needs at least
/// 2 samples per batch (the variance of a single sample is undefined); predict and evaluate
/// accept 1"), DESCENT_ERR_NUMERIC (NaN/Inf in x, or a non-finite loss or gradient).
/// A failed step leaves no gradients to apply. Afterwards the gradients of this step stay
/// readable through `descent_net_param`; the result is bit-identical to
/// `descent_net_forward_backward` + `descent_net_apply_update`.
/// Parallelism: a batch of 128 rows or more is split into 2, 4 or 8 shards of at least 64 rows,
/// a layout that depends on the batch size alone; each runs forward and backward on one thread
/// and their gradients are added in shard order, so the results are bit-identical for any
/// thread count (`descent_set_num_threads`). With an optimizer flagged
/// DESCENT_OPTIMIZER_INFALLIBLE (as the built-ins are) each thread then steps the part of the
/// parameters whose gradients it summed. At batch 1, a network without batch norm and dropout
/// (and such an optimizer) takes the whole step in one parallel pass in which each thread
/// keeps its rows of every weight matrix in its own cache.
/// Memory: the caller's arrays are only read during the call.
/// Threads: one handle, one thread at a time. Allocates only when a larger batch is first seen.
@c(descent_net_train_step) public func descent_net_train_step(
    _ net: UnsafeMutablePointer<descent_net>?, _ x: UnsafePointer<Float>?, _ labels: UnsafePointer<Int32>?,
    _ batch: Int64, _ loss: UnsafeMutablePointer<Float>?
) -> Int32 {
    guarded("descent_net_train_step") {
        let value = try withNetwork(net) { try $0.trainStep(x: x, labels: labels, batch: Int(clamping: batch)) }
        loss?.pointee = value
    }
}

/// The first half of `descent_net_train_step`: forward and backward, filling the gradients
/// without updating. Between this and `descent_net_apply_update` the gradients may be read
/// and rewritten through `descent_net_param`, or all at once through `descent_net_arena`'s
/// gradient arena (e.g. averaged across processes with MPI).
/// Batch-norm running averages are updated here.
///
/// Errors: as `descent_net_train_step` (batch 1 with batch norm included). Threads: one handle, one thread at a time.
@c(descent_net_forward_backward) public func descent_net_forward_backward(
    _ net: UnsafeMutablePointer<descent_net>?, _ x: UnsafePointer<Float>?, _ labels: UnsafePointer<Int32>?,
    _ batch: Int64, _ loss: UnsafeMutablePointer<Float>?
) -> Int32 {
    guarded("descent_net_forward_backward") {
        let value = try withNetwork(net) { try $0.forwardBackward(x: x, labels: labels, batch: Int(clamping: batch)) }
        loss?.pointee = value
    }
}

/// Makes `net`'s training steps data-parallel over the `ranks` processes of a job, this one
/// being `rank`: each process then calls `descent_net_train_step` (or `forward_backward` +
/// `apply_update`) with its own part of every global batch, and each step is that of the whole
/// global batch. The loss and gradients are its means, batch norm normalises by its statistics
/// (synchronised batch norm), dropout masks follow each row's place in it (process k's rows
/// come after those of processes 0..k-1), and weight decay is added once.
///
/// `allreduce(context, data, count)` must replace data[0..count) by the element-wise sum over
/// the processes, giving every process the same bits (MPI_Allreduce with MPI_SUM; see
/// include/descent_mpi.h), and return 0, or anything else on failure. The library makes the
/// same calls in the same order on every process: once to agree on the batch sizes (a process
/// whose arguments are refused makes every process fail alike), three times per batch-norm
/// layer, on the gradients, and once to agree on the outcome; a step that fails on any process
/// then fails on all, and changes nothing on any. The failing process gets its own error; the
/// others get its status and message, naming it (one more call, on failure only).
///
/// `overlap` 1: the gradients are summed layer by layer, each layer's as soon as its backward
/// pass is done, on a thread the library starts for this network, while the backward pass of
/// the layers below goes on. `allreduce` is then called from that thread and from the thread
/// that called the step, never from both at once (with MPI: MPI_THREAD_SERIALIZED or higher).
/// `overlap` 0: every call is made on the thread that called the step, and the gradients are
/// summed in one call on the whole arena after the backward pass. Both give the same bits. Steps keep every process's network bitwise equal to the others' when they
/// start equal. Prediction and evaluation stay local. The global batch must stay below 2^24 rows.
/// `allreduce` NULL ends the job for this network (it trains alone again); `context` is the
/// caller's, never read by the library.
///
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL net, rank outside [0, ranks), ranks outside
/// [1, 1048576], overlap not 0 or 1); DESCENT_ERR_OUT_OF_MEMORY (the thread cannot be started);
/// a step whose `allreduce` fails gets DESCENT_ERR_IO. Threads: one handle, one thread at a
/// time; the library's thread ends when the job does (`allreduce` NULL, or descent_net_free).
@c(descent_net_set_allreduce) public func descent_net_set_allreduce(
    _ net: UnsafeMutablePointer<descent_net>?,
    _ allreduce: (@convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<Float>?, Int64) -> Int32)?,
    _ context: UnsafeMutableRawPointer?, _ rank: Int32, _ ranks: Int32, _ overlap: Int32
) -> Int32 {
    guarded("descent_net_set_allreduce") {
        try withNetwork(net) { network in
            guard let allreduce else { return network.join(nil) }
            guard overlap == 0 || overlap == 1 else { throw DescentError(.invalidArgument, "overlap is \(overlap): must be 0 or 1") }
            network.join(try ProcessGroup(allreduce: allreduce, context: context, rank: Int(rank), size: Int(ranks),
                                          overlap: overlap == 1))
        }
    }
}

/// The second half of `descent_net_train_step`: one optimizer step on the current gradients.
/// Each `descent_net_forward_backward` result is applied at most once.
///
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (no gradients pending), DESCENT_ERR_NUMERIC (a gradient
/// holds NaN/Inf: the message names the parameter and index; nothing changes), and the
/// optimizer's errors. Threads: one handle, one thread at a time.
@c(descent_net_apply_update) public func descent_net_apply_update(_ net: UnsafeMutablePointer<descent_net>?) -> Int32 {
    guarded("descent_net_apply_update") {
        try withNetwork(net) { try $0.applyUpdate() }
    }
}

/// Class probabilities for a batch, in evaluation mode (batch-norm running averages, no
/// dropout): `probs` receives [batch][classes] floats.
///
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL, batch <= 0), DESCENT_ERR_NUMERIC (NaN/Inf in x).
/// Threads: one handle, one thread at a time.
@c(descent_net_predict) public func descent_net_predict(
    _ net: UnsafeMutablePointer<descent_net>?, _ x: UnsafePointer<Float>?, _ batch: Int64,
    _ probs: UnsafeMutablePointer<Float>?
) -> Int32 {
    guarded("descent_net_predict") {
        try withNetwork(net) { try $0.predict(x: x, batch: Int(clamping: batch), probabilities: probs) }
    }
}

/// Mean loss (cross-entropy plus the weight-decay term) and accuracy (fraction of argmax hits)
/// over n samples in evaluation mode, processed in chunks of 1000 rows, each split into shards
/// as a training batch is. Either output may be NULL.
///
/// Errors: as `descent_net_train_step` (n plays the role of batch); nothing is trained.
/// Threads: one handle, one thread at a time.
@c(descent_net_evaluate) public func descent_net_evaluate(
    _ net: UnsafeMutablePointer<descent_net>?, _ x: UnsafePointer<Float>?, _ labels: UnsafePointer<Int32>?,
    _ n: Int64, _ loss: UnsafeMutablePointer<Float>?, _ accuracy: UnsafeMutablePointer<Float>?
) -> Int32 {
    guarded("descent_net_evaluate") {
        let result = try withNetwork(net) { try $0.evaluate(x: x, labels: labels, count: Int(clamping: n)) }
        loss?.pointee = Float(result.loss)
        accuracy?.pointee = Float(result.accuracy)
    }
}

/// The number of parameter tensors (W1, b1, [gamma1, beta1,] W2, ...), or -1 for NULL.
///
/// Threads: one handle, one thread at a time.
@c(descent_net_param_count) public func descent_net_param_count(_ net: UnsafePointer<descent_net>?) -> Int64 {
    guard let net else {
        dk_error_set("descent_net_param_count: net is NULL")
        return -1
    }
    return Int64(unbox(net, as: Network.self).parameters.count)
}

/// Zero-copy access to parameter `index` (0-based, in the order of `descent_net_param_count`):
/// its name ("W1", "b1", "gamma1", "beta1", ...), its values and its gradient (both `*length`
/// floats; weights are [fan_in][fan_out] row-major). Writing through `*data` changes the
/// network; `*grad` holds the last backward pass's gradient. Any output may be NULL.
///
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL net, index out of range).
/// Memory: all pointers are owned by the network and valid until `descent_net_free`.
/// Threads: one handle, one thread at a time.
@c(descent_net_param) public func descent_net_param(
    _ net: UnsafeMutablePointer<descent_net>?, _ index: Int64, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
    _ data: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?,
    _ grad: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, _ length: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded("descent_net_param") {
        let network = unbox(try required(net, "net"), as: Network.self)
        let p = try parameter(network, index)
        name?.pointee = UnsafePointer(p.cNamePointer)
        data?.pointee = p.value.pointer
        grad?.pointee = p.gradient.pointer
        length?.pointee = Int64(p.count)
    }
}

/// The shape of parameter `index` (0-based, as in `descent_net_param`): `*rank` dimensions,
/// written to `dims[0]` ... `dims[*rank - 1]`, outermost first. Weights W<i> are
/// [fan_in][fan_out] (rank 2, row-major, as `descent_net_param`'s data); biases b<i> and batch
/// norm's gamma<i>, beta<i> are [width] (rank 1). The product of the dims is `descent_net_param`'s
/// `*length`. Pass `dims` NULL and `cap` 0 to learn only the rank (at most 8).
///
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL net or rank, index out of range, cap < 0, dims NULL
/// with cap > 0), DESCENT_ERR_BUFFER_TOO_SMALL (cap < rank: `*rank` is set, `dims` untouched).
/// Threads: one handle, one thread at a time.
@c(descent_net_param_shape) public func descent_net_param_shape(
    _ net: UnsafePointer<descent_net>?, _ index: Int64, _ rank: UnsafeMutablePointer<Int32>?,
    _ dims: UnsafeMutablePointer<Int64>?, _ cap: Int32
) -> Int32 {
    guarded("descent_net_param_shape") {
        let network = unbox(try required(net, "net"), as: Network.self)
        let rank = try required(rank, "rank")
        let shape = try parameter(network, index).shape
        guard cap >= 0 else { throw DescentError(.invalidArgument, "cap is \(cap): must be >= 0") }
        guard dims != nil || cap == 0 else { throw DescentError(.invalidArgument, "dims is NULL but cap is \(cap)") }
        rank.pointee = Int32(shape.count)
        guard let dims else { return }
        guard Int(cap) >= shape.count else {
            throw DescentError(.bufferTooSmall, "cap is \(cap) but parameter \(index) has rank \(shape.count)")
        }
        for (i, d) in shape.enumerated() { dims[i] = Int64(d) }
    }
}

/// Zero-copy access to all parameters and all gradients at once: `*params` and `*grads` point
/// at two arenas of `*length` floats each, 64-byte aligned, with the same layout: every
/// parameter in the order of `descent_net_param` (W1, b1, [gamma1, beta1,] W2, ...), each
/// starting on a 64-byte boundary at the offset `descent_net_param_offset` gives, so that
/// `*params + offset` is `descent_net_param`'s `*data` and `*grads + offset` its `*grad`.
/// `*length` includes the padding between tensors. The padding is zero and the network never
/// reads it; the update, one elementwise pass over the whole arena, first sets the gradients'
/// padding back to zero, so whatever a caller writes there has no effect.
///
/// Writing the gradient arena between `descent_net_forward_backward` and
/// `descent_net_apply_update` is the way to replace the gradients, e.g. by an all-reduce of the
/// whole arena across processes (MPI_Allreduce on `*grads`, `*length` floats, then divide by
/// the number of processes). Writing the parameter arena changes the network, as writing
/// through `descent_net_param` does. Any output may be NULL.
///
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL net).
/// Memory: owned by the network, valid until `descent_net_free` (they never move).
/// Threads: one handle, one thread at a time.
@c(descent_net_arena) public func descent_net_arena(
    _ net: UnsafeMutablePointer<descent_net>?, _ params: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?,
    _ grads: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, _ length: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded("descent_net_arena") {
        let arena = unbox(try required(net, "net"), as: Network.self).arena
        params?.pointee = arena.values.pointer
        grads?.pointee = arena.gradients.pointer
        length?.pointee = Int64(arena.length)
    }
}

/// Where parameter `index` (0-based, as in `descent_net_param`) starts in the arenas of
/// `descent_net_arena`: `*offset` floats from their start, a multiple of 16 (64 bytes), the
/// same in the parameter and the gradient arena. Offsets increase with the index, and each
/// tensor ends before the next one starts.
///
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL net or offset, index out of range).
/// Threads: one handle, one thread at a time.
@c(descent_net_param_offset) public func descent_net_param_offset(
    _ net: UnsafePointer<descent_net>?, _ index: Int64, _ offset: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded("descent_net_param_offset") {
        let network = unbox(try required(net, "net"), as: Network.self)
        try required(offset, "offset").pointee = Int64(try parameter(network, index).offset)
    }
}

/// The output of hidden layer `layer` (0-based; after its activation function, before dropout)
/// from the last forward pass: `*data` is [*rows][*cols] row-major.
///
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL, layer out of range, no forward pass yet).
/// Memory: owned by the network, valid until its next forward pass or `descent_net_free`.
/// Threads: one handle, one thread at a time.
@c(descent_net_activations) public func descent_net_activations(
    _ net: UnsafeMutablePointer<descent_net>?, _ layer: Int64, _ data: UnsafeMutablePointer<UnsafePointer<Float>?>?,
    _ rows: UnsafeMutablePointer<Int64>?, _ cols: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded("descent_net_activations") {
        let a = try withNetwork(net) { try $0.activations(layer: Int(clamping: layer)) }
        data?.pointee = a.data
        rows?.pointee = Int64(a.rows)
        cols?.pointee = Int64(a.columns)
    }
}

/// Writes the network's spec as JSON (all fields, defaults filled in).
///
/// Buffer contract as `descent_optimizer_names`. Threads: one handle, one thread at a time.
@c(descent_net_spec) public func descent_net_spec(
    _ net: UnsafePointer<descent_net>?, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int64,
    _ needed: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded("descent_net_spec") {
        try copyOut(unbox(try required(net, "net"), as: Network.self).spec.json, buf, cap, needed)
    }
}

/// Which BLAS does the matrix products and which kernel set it runs, e.g.
/// "OpenBLAS 0.3.21 ... ; kernels SkylakeX (chosen by Descent for this CPU)". Loads it if needed.
/// OpenBLAS 0.3.21 mis-detects recent Intel CPUs and falls back to kernels ~4x slower, and it
/// reads its kernel set from the environment variable OPENBLAS_CORETYPE only when it loads. So
/// when libdescent itself is loaded (and only then) it sets OPENBLAS_CORETYPE for this CPU
/// (SkylakeX with AVX-512, Haswell with AVX2 and FMA) unless the variable is already set; the
/// process's environment keeps it. Set it before loading libdescent to choose yourself.
///
/// Memory: a static string. Threads: safe from any thread.
@c(descent_blas_info) public func descent_blas_info() -> UnsafePointer<CChar>? {
    dk_blas_description()
}
