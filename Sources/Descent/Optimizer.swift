import CDescentKernels

#if canImport(Glibc)
import Glibc
#endif

/// An optimizer instance: hyperparameter values, the step count, and per-tensor state.
///
/// `step` updates parameters in place from gradients, the book's `optimizer.update(params, grads)`.
/// State (velocities, moment estimates) is kept per tensor position and created on the first
/// step; later steps must pass the same number of tensors with the same lengths.
///
/// One instance is used by one thread at a time; separate instances may run concurrently.
public final class Optimizer {
    /// What this optimizer is: name, hyperparameter table, state count.
    public let kind: OptimizerKind
    /// Updates taken since creation or the last reset (the `t` of bias corrections).
    public private(set) var stepCount: Int64 = 0
    /// Whether a network owns this optimizer: it goes with the network, and the C API refuses
    /// to free it or to step it with other tensors than the network's.
    public private(set) var isOwnedByNetwork = false
    /// The owning network's spec `weight_decay` (L2 in its loss), 0 when there is none: the
    /// host's L2 `weight_decay` must then stay 0, or the weights would decay twice.
    private var networkWeightDecay = 0.0

    /// Current hyperparameter values, in the kind's table order; stable address for C.
    /// These three live in checked memory (memory.c), owned so a failed init frees them.
    private let valueTable: CheckedArray<Double>
    private let scalarTable: CheckedArray<Double>
    private let reportBox: CheckedArray<dk_step_report>
    private var values: UnsafeMutablePointer<Double> { valueTable.pointer }
    private var scalars: UnsafeMutablePointer<Double> { scalarTable.pointer }
    private var report: UnsafeMutablePointer<dk_step_report> { reportBox.pointer }
    /// Lengths of the tensors the state belongs to; empty before the first step.
    private var shape: [Int64] = []
    /// state[i * stateCount + s]: state slot s of tensor i, 64-byte aligned, zero at creation.
    private var state: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>? = nil
    /// Rollback copy for fallible plugin optimizers: params then state, per tensor.
    private var snapshot: UnsafeMutablePointer<Float>? = nil
    private var snapshotCount = 0

    /// Creates an optimizer by registered name, with hyperparameters from a `"k=v,k=v"` list
    /// (nil or empty: the defaults).
    public convenience init(_ name: String, hyperparameters: String? = nil) throws {
        let kind = try OptimizerRegistry.kind(named: name)
        try self.init(kind: kind, settings: try parseHyperparameterList(hyperparameters ?? ""))
    }

    /// Creates an optimizer with hyperparameters given as a dictionary.
    public convenience init(_ name: String, _ hyperparameters: [String: Double]) throws {
        let kind = try OptimizerRegistry.kind(named: name)
        try self.init(kind: kind, settings: hyperparameters.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    private init(kind: OptimizerKind, settings: [(key: String, value: Double)]) throws {
        var initial = kind.defaults
        for (key, value) in settings {
            guard let i = kind.index(of: key) else { throw Self.unknownKey(key, kind) }
            try kind.hyperparameters[i].validate(value)
            initial[i] = value
        }
        self.kind = kind
        valueTable = try CheckedArray(count: initial.count, for: "the hyperparameters of \(kind.name)")
        valueTable.pointer.update(from: initial, count: initial.count)
        scalarTable = try CheckedArray(count: Int(DESCENT_PLUGIN_MAX_SCALARS), for: "the step scalars of \(kind.name)")
        reportBox = try CheckedArray(count: 1, for: "the step report of \(kind.name)")
    }

    deinit {
        freeState()
    }

    /// The current value of a hyperparameter. The read-only key `step` gives the step count.
    public func value(_ key: String) throws -> Double {
        if key == "step" { return Double(stepCount) }
        guard let i = kind.index(of: key) else { throw Self.unknownKey(key, kind) }
        return values[i]
    }

    /// Changes a hyperparameter; state and step count are kept (a learning-rate schedule).
    public func set(_ key: String, _ value: Double) throws {
        guard let i = kind.index(of: key) else { throw Self.unknownKey(key, kind) }
        try kind.hyperparameters[i].validate(value)
        if i == kind.hostWeightDecayIndex, value > 0, networkWeightDecay > 0 {
            throw Self.doubleWeightDecay(kind: kind, value: value, networkWeightDecay: networkWeightDecay)
        }
        values[i] = value
    }

    /// The host's L2 `weight_decay` in force (0 for optimizers that declare their own, such as
    /// adamw's decoupled decay).
    public var hostWeightDecay: Double { kind.hostWeightDecayIndex.map { values[$0] } ?? 0 }

    /// Hands this optimizer to a network whose spec has L2 `weight_decay` `networkWeightDecay`.
    /// Refuses (and changes nothing) when the host's L2 is on too: one L2 term is enough.
    func attachToNetwork(weightDecay networkWeightDecay: Double) throws {
        if networkWeightDecay > 0, hostWeightDecay > 0 {
            throw Self.doubleWeightDecay(kind: kind, value: hostWeightDecay, networkWeightDecay: networkWeightDecay)
        }
        isOwnedByNetwork = true
        self.networkWeightDecay = networkWeightDecay
    }

    /// The network let go of this optimizer (it was replaced).
    func detachFromNetwork() {
        isOwnedByNetwork = false
        networkWeightDecay = 0
    }

    static func doubleWeightDecay(kind: OptimizerKind, value: Double, networkWeightDecay: Double) -> DescentError {
        DescentError(.invalidArgument,
            "\(kind.name)'s weight_decay=\(Hyperparameter.format(value)) (L2 on the gradients) would decay the weights "
                + "a second time: the network's spec has weight_decay=\(Hyperparameter.format(networkWeightDecay)) "
                + "(L2 in the loss); keep one of the two at 0")
    }

    /// Current values by name.
    public var hyperparameters: [String: Double] {
        Dictionary(uniqueKeysWithValues: kind.hyperparameters.enumerated().map { ($1.name, values[$0]) })
    }

    /// Forgets the state and the step count: the next step is t = 1 with zero state.
    public func reset() {
        freeState()
        stepCount = 0
    }

    /// Tensor lengths the state was created for (empty before the first step).
    public var stateShape: [Int64] { shape }

    /// Read access to state slot `slot` of tensor `tensor` (nil before the first step).
    public func state(tensor: Int, slot: Int) -> UnsafeBufferPointer<Float>? {
        guard let state, tensor >= 0, tensor < shape.count, slot >= 0, slot < kind.stateCount else { return nil }
        return UnsafeBufferPointer(start: state[tensor * kind.stateCount + slot], count: Int(shape[tensor]))
    }

    /// Updates parameters in place: Swift convenience over buffers.
    public func step(parameters: [UnsafeMutableBufferPointer<Float>], gradients: [UnsafeBufferPointer<Float>]) throws {
        guard parameters.count == gradients.count else {
            throw DescentError.invalid("\(parameters.count) parameter tensors but \(gradients.count) gradient tensors")
        }
        var lengths: [Int64] = []
        for (i, (p, g)) in zip(parameters, gradients).enumerated() {
            guard p.count == g.count else {
                throw DescentError.invalid("params[\(i)] has \(p.count) elements but grads[\(i)] has \(g.count)")
            }
            lengths.append(Int64(p.count))
        }
        let params = parameters.map { $0.baseAddress }
        let grads = gradients.map { $0.baseAddress }
        try params.withUnsafeBufferPointer { pp in
            try grads.withUnsafeBufferPointer { gp in
                try lengths.withUnsafeBufferPointer { lp in
                    try step(count: Int64(parameters.count), params: pp.baseAddress, grads: gp.baseAddress,
                             lengths: lp.baseAddress)
                }
            }
        }
    }

    /// Updates `count` tensors in place: `params[i][0..<lengths[i]] -= update(grads[i], state)`.
    /// Validates everything before touching anything: on any error, parameters, state and the
    /// step count are as they were. Allocates only on the first step (the state).
    public func step(count: Int64, params: UnsafePointer<UnsafeMutablePointer<Float>?>?,
                     grads: UnsafePointer<UnsafePointer<Float>?>?, lengths: UnsafePointer<Int64>?) throws {
        let (params, grads, lengths) = try validate(count: count, params: params, grads: grads, lengths: lengths)
        let n = Int(count)
        let threads = dk_get_threads()
        var badTensor: Int64 = 0, badIndex: Int64 = 0
        if checksFiniteness, dk_find_nonfinite(count, grads, lengths, threads, &badTensor, &badIndex) != 0 {
            throw Self.nonFinite(grads: grads, tensor: badTensor, index: badIndex)
        }
        try takeStep(lengths: lengths, count: n) { desc, ctx, state, l2 in
            if kind.isFallible { try takeSnapshot(params: params, n: n) }
            guard dk_run_step(desc, ctx, count, params, grads, lengths, state, l2, threads) == DESCENT_PLUGIN_OK else {
                restoreSnapshot(params: params, n: n)
                return false
            }
            return true
        }
    }

    /// What a kernel that computes the gradients and takes the step in one pass needs.
    struct FusedStep {
        let descriptor: UnsafePointer<descent_optimizer_desc>
        let context: UnsafePointer<descent_step_context>
        /// state[i * stateCount + s], as in `dk_run_step`.
        let state: UnsafePointer<UnsafeMutablePointer<Float>?>
        let l2: Float
        let checkFinite: Bool
    }

    /// Whether `fusedStep` may be used: it keeps no rollback copy, so the optimizer's step()
    /// must never fail (built-ins and plugins flagged DESCENT_OPTIMIZER_INFALLIBLE).
    var canFuse: Bool { !kind.isFallible }

    /// The step with the kernel supplied by the caller (the network's one-sample path): as
    /// `step`, but `body` runs step() over the tensors itself, checking gradients when
    /// `checkFinite` says so (then it throws, and nothing has changed). `body` returns false
    /// when a step() call failed. The tensors must not be read before `body` runs: their
    /// gradients may not exist yet.
    func fusedStep(count: Int64, params: UnsafePointer<UnsafeMutablePointer<Float>?>,
                   grads: UnsafePointer<UnsafePointer<Float>?>, lengths: UnsafePointer<Int64>,
                   _ body: (FusedStep) throws -> Bool) throws {
        assert(canFuse, "fusedStep needs an infallible optimizer")
        _ = try validate(count: count, params: params, grads: grads, lengths: lengths)
        let checkFinite = checksFiniteness
        try takeStep(lengths: lengths, count: Int(count)) { desc, ctx, state, l2 in
            try body(FusedStep(descriptor: desc, context: ctx, state: state, l2: l2, checkFinite: checkFinite))
        }
    }

    /// The error for a NaN/Inf found in grads[tensor][index].
    static func nonFinite(grads: UnsafePointer<UnsafePointer<Float>?>, tensor: Int64, index: Int64) -> DescentError {
        let value = grads[Int(tensor)]![Int(index)]
        return DescentError(.numeric,
            "grads[\(tensor)] contains \(value.isNaN ? "NaN" : (value < 0 ? "-Inf" : "Inf")) at index \(index)")
    }

    private var checksFiniteness: Bool { values[kind.checkFiniteIndex] != 0 }

    /// Checks the arguments and that they match the state's shape.
    private func validate(count: Int64, params: UnsafePointer<UnsafeMutablePointer<Float>?>?,
                          grads: UnsafePointer<UnsafePointer<Float>?>?, lengths: UnsafePointer<Int64>?) throws
        -> (UnsafePointer<UnsafeMutablePointer<Float>?>, UnsafePointer<UnsafePointer<Float>?>, UnsafePointer<Int64>) {
        guard count >= 1 else { throw DescentError.invalid("count is \(count): must be >= 1") }
        guard let params else { throw DescentError.invalid("params is NULL") }
        guard let grads else { throw DescentError.invalid("grads is NULL") }
        guard let lengths else { throw DescentError.invalid("lengths is NULL") }
        let n = Int(count)
        for i in 0..<n {
            let length = lengths[i]
            guard length >= 0 else { throw DescentError.invalid("lengths[\(i)] is \(length): must be >= 0") }
            if length > 0 {
                guard params[i] != nil else { throw DescentError.invalid("params[\(i)] is NULL") }
                guard grads[i] != nil else { throw DescentError.invalid("grads[\(i)] is NULL") }
            }
        }
        if state != nil {
            var same = shape.count == n
            if same { for i in 0..<n where shape[i] != lengths[i] { same = false; break } }
            guard same else {
                let got = (0..<n).map { String(lengths[$0]) }.joined(separator: ", ")
                throw DescentError(.shapeMismatch,
                    "the state was created for \(tensors(shape.count)) of lengths [\(shape.map(String.init).joined(separator: ", "))], "
                        + "but this step has \(tensors(n)) of lengths [\(got)]; call reset to start over")
            }
        }
        return (params, grads, lengths)
    }

    /// Creates the state if needed, fills in and prepares the step context, and lets `run`
    /// take the step (false: a step() call failed). Counts the step only when it succeeded;
    /// state created for a step that did not succeed is freed again.
    private func takeStep(lengths: UnsafePointer<Int64>, count n: Int,
                          _ run: (UnsafePointer<descent_optimizer_desc>, UnsafePointer<descent_step_context>,
                                  UnsafePointer<UnsafeMutablePointer<Float>?>, Float) throws -> Bool) throws {
        let createsState = state == nil
        if createsState { try allocateState(lengths: UnsafeBufferPointer(start: lengths, count: n)) }
        var succeeded = false
        defer { if createsState && !succeeded { freeState() } }

        let l2 = kind.hostWeightDecayIndex.map { Float(values[$0]) } ?? 0
        var ctx = descent_step_context(
            struct_size: UInt32(MemoryLayout<descent_step_context>.size), reserved: 0,
            step: stepCount + 1, hparams: UnsafePointer(values), scalars: UnsafePointer(scalars),
            report_error: dk_report_error, host_data: UnsafeMutableRawPointer(report))
        dk_step_report_clear(report)
        if let prepare = kind.descriptor.pointee.prepare {
            guard prepare(&ctx, scalars) == DESCENT_PLUGIN_OK else {
                throw pluginFailure(during: "prepare")
            }
        }
        let stepped = try withUnsafePointer(to: &ctx) { try run(kind.descriptor, $0, UnsafePointer(state!), l2) }
        guard stepped else { throw pluginFailure(during: "step") }
        stepCount += 1
        succeeded = true
    }

    /// Replaces the state with zeroed buffers for tensors of `lengths`, lets `fill` write
    /// each (tensor, slot) buffer, and sets the step count: how checkpoints are restored.
    /// If `fill` throws, the optimizer is left as it was.
    public func restoreState(stepCount: Int64, lengths: [Int64],
                             fill: (_ tensor: Int, _ slot: Int, UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        guard stepCount >= 0, lengths.allSatisfy({ $0 >= 0 }) else {
            throw DescentError.invalid("step count and lengths must be >= 0")
        }
        let oldState = state, oldShape = shape
        state = nil
        shape = []
        do {
            if stepCount > 0 {
                try lengths.withUnsafeBufferPointer { try allocateState(lengths: $0) }
                for tensor in 0..<lengths.count {
                    for slot in 0..<kind.stateCount {
                        try fill(tensor, slot, UnsafeMutableBufferPointer(start: state![tensor * kind.stateCount + slot],
                                                                          count: Int(lengths[tensor])))
                    }
                }
            }
        } catch {
            freeState()
            state = oldState
            shape = oldShape
            throw error
        }
        if let oldState {
            for j in 0..<(oldShape.count * kind.stateCount) { dk_free(oldState[j]) }
            dk_free(oldState)
        }
        self.stepCount = stepCount
    }

    // MARK: - internals

    private func tensors(_ n: Int) -> String { n == 1 ? "1 tensor" : "\(n) tensors" }

    static func unknownKey(_ key: String, _ kind: OptimizerKind) -> DescentError {
        DescentError(.notFound,
            "unknown hyperparameter '\(key)' for \(kind.name); known: \(kind.hyperparameters.map(\.name).joined(separator: ", "))")
    }

    private func pluginFailure(during phase: String) -> DescentError {
        let text = withUnsafeBytes(of: report.pointee.message) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        let reason = text.isEmpty ? "it gave no reason" : text
        return DescentError(.plugin,
            "optimizer '\(kind.name)' (\(kind.origin)) failed in \(phase): \(reason); parameters and state are unchanged")
    }

    private func allocateState(lengths: UnsafeBufferPointer<Int64>) throws {
        let slots = kind.stateCount
        guard let raw = dk_alloc_zeroed(Int64(lengths.count * slots), Int64(MemoryLayout<UnsafeMutablePointer<Float>?>.stride)) else {
            throw DescentError(.outOfMemory, "cannot allocate the optimizer's state table (\(lengths.count * slots) buffers)")
        }
        let table = raw.bindMemory(to: UnsafeMutablePointer<Float>?.self, capacity: max(1, lengths.count * slots))
        for (i, length) in lengths.enumerated() {
            for s in 0..<slots {
                let bytes = max(64, (Int(length) * MemoryLayout<Float>.size + 63) / 64 * 64)
                guard let raw = dk_alloc_zeroed(length, Int64(MemoryLayout<Float>.size)) else {
                    for j in 0..<(lengths.count * slots) { dk_free(table[j]) }
                    dk_free(table)
                    throw DescentError(.outOfMemory, "cannot allocate \(bytes) bytes of optimizer state for tensor \(i)")
                }
                table[i * slots + s] = raw.assumingMemoryBound(to: Float.self)
            }
        }
        state = table
        shape = Array(lengths)
    }

    private func freeState() {
        if let state {
            for j in 0..<(shape.count * kind.stateCount) { dk_free(state[j]) }
            dk_free(state)
        }
        state = nil
        shape = []
        free(snapshot)
        snapshot = nil
        snapshotCount = 0
    }

    /// Copies params and state of every tensor, so a failing plugin step can be undone.
    private func takeSnapshot(params: UnsafePointer<UnsafeMutablePointer<Float>?>, n: Int) throws {
        let total = shape.reduce(0) { $0 + Int($1) } * (1 + kind.stateCount)
        if snapshotCount < total {
            free(snapshot)
            snapshot = nil
            snapshotCount = 0
            guard let raw = malloc(max(1, total) * MemoryLayout<Float>.size) else {
                throw DescentError(.outOfMemory, "cannot allocate the rollback copy (\(total) floats)")
            }
            snapshot = raw.assumingMemoryBound(to: Float.self)
            snapshotCount = total
        }
        forEachBuffer(params: params, n: n) { buffer, copy, length in copy.update(from: buffer, count: length) }
    }

    private func restoreSnapshot(params: UnsafePointer<UnsafeMutablePointer<Float>?>, n: Int) {
        guard snapshot != nil else { return }
        forEachBuffer(params: params, n: n) { buffer, copy, length in buffer.update(from: copy, count: length) }
    }

    /// Visits (live buffer, its place in the snapshot, length) for every param and state buffer.
    private func forEachBuffer(params: UnsafePointer<UnsafeMutablePointer<Float>?>, n: Int,
                               _ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) {
        guard let snapshot, let state else { return }
        var offset = 0
        for i in 0..<n {
            let length = Int(shape[i])
            guard length > 0 else { continue }
            body(params[i]!, snapshot + offset, length)
            offset += length
            for s in 0..<kind.stateCount {
                body(state[i * kind.stateCount + s]!, snapshot + offset, length)
                offset += length
            }
        }
    }
}
