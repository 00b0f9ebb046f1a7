import CDescentKernels

#if canImport(Glibc)
import Glibc
#endif

/// An optimizer instance: hyperparameter values, the step count, and its state.
///
/// `step` updates parameters in place from gradients, the book's `optimizer.update(params, grads)`.
/// State (velocities, moment estimates) is created on the first step and kept per tensor
/// position; later steps must pass the same number of tensors with the same lengths. Each state
/// slot is one buffer holding that slot of every tensor, each tensor's part starting on a
/// 64-byte boundary: for a network, whose one tensor is its whole parameter arena, a slot has
/// the arena's layout, and the update is one elementwise pass per slot.
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
    /// Where tensor i's state starts in every slot buffer, in floats (a multiple of 16).
    private var offsets: [Int64] = []
    /// One zero-initialised buffer per state slot (empty before the first step), and their
    /// addresses for C (`slotTable.pointer[s]` is `slots[s].pointer`).
    private var slots: [FloatBuffer] = []
    private let slotTable: CheckedArray<UnsafeMutablePointer<Float>?>
    /// Rollback copy for fallible plugin optimizers: the params of every tensor, then the slots.
    private var snapshot: FloatBuffer? = nil

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
        slotTable = try CheckedArray(count: Int(DESCENT_PLUGIN_MAX_STATE), for: "the state table of \(kind.name)")
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
        guard tensor >= 0, tensor < shape.count, slot >= 0, slot < slots.count else { return nil }
        return UnsafeBufferPointer(start: slots[slot].pointer + Int(offsets[tensor]), count: Int(shape[tensor]))
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
        try step(count: Int64(parameters.count), params: parameters.map { $0.baseAddress },
                 grads: gradients.map { UnsafePointer($0.baseAddress) }, lengths: lengths)
    }

    /// Updates `count` tensors in place: `params[i][0..<lengths[i]] -= update(grads[i], state)`.
    /// Validates everything before touching anything: on any error, parameters, state and the
    /// step count are as they were. Allocates only on the first step (the state).
    public func step(count: Int64, params: UnsafePointer<UnsafeMutablePointer<Float>?>?,
                     grads: UnsafePointer<UnsafePointer<Float>?>?, lengths: UnsafePointer<Int64>?) throws {
        try step(count: count, params: params, grads: grads, lengths: lengths, scanned: false)
    }

    /// `step`; with `scanned` the caller (a network) has already checked the gradients for
    /// NaN/Inf when `checksFiniteness` asks for it, and named the tensor in its own terms.
    func step(count: Int64, params: UnsafePointer<UnsafeMutablePointer<Float>?>?,
              grads: UnsafePointer<UnsafePointer<Float>?>?, lengths: UnsafePointer<Int64>?, scanned: Bool) throws {
        let (params, grads, lengths) = try validate(count: count, params: params, grads: grads, lengths: lengths)
        let n = Int(count)
        let threads = dk_get_threads()
        if checksFiniteness, !scanned,
           let error = nonFiniteError(count, grads, lengths, { "grads[\($0)] contains \($2) at index \($1)" }) { throw error }
        try takeStep(lengths: lengths, count: n) { desc, ctx, slots, l2 in
            if kind.isFallible { try takeSnapshot(params: params, n: n) }
            guard dk_run_step(desc, ctx, count, params, grads, lengths, slots, offsets, l2, threads) == DESCENT_PLUGIN_OK else {
                copySnapshot(params: params, n: n, restoring: true)
                return false
            }
            return true
        }
    }

    /// What a kernel that computes the gradients and takes the step in one pass needs.
    struct FusedStep {
        let descriptor: UnsafePointer<descent_optimizer_desc>
        let context: UnsafePointer<descent_step_context>
        /// The state slots; the one tensor's state starts at offset 0 of each.
        let slots: UnsafePointer<UnsafeMutablePointer<Float>?>
        let l2: Float
        let checkFinite: Bool
    }

    /// Whether `fusedStep` may be used: it keeps no rollback copy, so the optimizer's step()
    /// must never fail (built-ins and plugins flagged DESCENT_OPTIMIZER_INFALLIBLE).
    var canFuse: Bool { !kind.isFallible }

    /// The step with the kernel supplied by the caller (the network's one-sample path): as
    /// `step` over one tensor of `length` floats (the parameter arena), but `body` runs step()
    /// itself, checking gradients when `checkFinite` says so (then it throws, and nothing has
    /// changed). `body` returns false when a step() call failed. The gradients must not be
    /// read before `body` runs: they may not exist yet.
    func fusedStep(length: Int64, _ body: (FusedStep) throws -> Bool) throws {
        assert(canFuse, "fusedStep needs an infallible optimizer")
        var length = length
        try checkShape(count: 1, lengths: &length)
        let checkFinite = checksFiniteness
        try takeStep(lengths: &length, count: 1) { desc, ctx, slots, l2 in
            try body(FusedStep(descriptor: desc, context: ctx, slots: slots, l2: l2, checkFinite: checkFinite))
        }
    }

    /// Whether steps refuse NaN/Inf gradients (the `check_finite` hyperparameter).
    var checksFiniteness: Bool { values[kind.checkFiniteIndex] != 0 }

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
        try checkShape(count: n, lengths: lengths)
        return (params, grads, lengths)
    }

    /// Refuses tensors of other lengths than those the state was created for.
    private func checkShape(count n: Int, lengths: UnsafePointer<Int64>) throws {
        guard !shape.isEmpty else { return }
        var same = shape.count == n
        if same { for i in 0..<n where shape[i] != lengths[i] { same = false; break } }
        guard same else {
            let got = (0..<n).map { String(lengths[$0]) }.joined(separator: ", ")
            throw DescentError(.shapeMismatch,
                "the state was created for \(tensors(shape.count)) of lengths [\(shape.map(String.init).joined(separator: ", "))], "
                    + "but this step has \(tensors(n)) of lengths [\(got)]; call reset to start over")
        }
    }

    /// Creates the state if needed, fills in and prepares the step context, and lets `run`
    /// take the step (false: a step() call failed). Counts the step only when it succeeded;
    /// state created for a step that did not succeed is freed again.
    private func takeStep(lengths: UnsafePointer<Int64>, count n: Int,
                          _ run: (UnsafePointer<descent_optimizer_desc>, UnsafePointer<descent_step_context>,
                                  UnsafePointer<UnsafeMutablePointer<Float>?>, Float) throws -> Bool) throws {
        let createsState = shape.isEmpty
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
        let stepped = try withUnsafePointer(to: &ctx) { try run(kind.descriptor, $0, UnsafePointer(slotTable.pointer), l2) }
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
        let old = (shape: shape, offsets: offsets, slots: slots)
        do {
            freeState()
            if stepCount > 0 {
                try allocateState(lengths: lengths)
                for tensor in 0..<lengths.count {
                    for (index, slot) in slots.enumerated() {
                        try fill(tensor, index,
                                 UnsafeMutableBufferPointer(start: slot.pointer + Int(offsets[tensor]), count: Int(lengths[tensor])))
                    }
                }
            }
        } catch {
            (shape, offsets) = (old.shape, old.offsets)
            setSlots(old.slots)
            throw error
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
        let text = String(cCharArray: report.pointee.message)
        let reason = text.isEmpty ? "it gave no reason" : text
        return DescentError(.plugin,
            "optimizer '\(kind.name)' (\(kind.origin)) failed in \(phase): \(reason); parameters and state are unchanged")
    }

    /// Zeroed state for tensors of `lengths`: one buffer per slot, each tensor's part starting
    /// on a 64-byte boundary (as in a network's arena). On error the state stays empty.
    private func allocateState<Lengths: Collection<Int64>>(lengths: Lengths) throws {
        let alignment = Int64(ParameterArena.alignment)
        var offsets: [Int64] = []
        var end: Int64 = 0
        for length in lengths {
            offsets.append(end)
            let (next, overflow) = end.addingReportingOverflow((length + alignment - 1) / alignment * alignment)
            guard !overflow, length <= Int64.max - alignment else {
                throw DescentError(.outOfMemory, "cannot allocate the optimizer's state: the lengths add up to more than \(Int64.max) floats")
            }
            end = next
        }
        let slots = try (0..<kind.stateCount).map { slot in
            try withErrorPrefix("state slot \(slot) of \(kind.name)") { try FloatBuffer(count: Int(end)) }
        }
        shape = Array(lengths)
        self.offsets = offsets
        setSlots(slots)
    }

    private func setSlots(_ slots: [FloatBuffer]) {
        self.slots = slots
        for s in 0..<Int(DESCENT_PLUGIN_MAX_STATE) { slotTable.pointer[s] = s < slots.count ? slots[s].pointer : nil }
    }

    private func freeState() {
        shape = []
        offsets = []
        setSlots([])
        snapshot = nil
    }

    /// Copies params and state, so a failing plugin step can be undone.
    private func takeSnapshot(params: UnsafePointer<UnsafeMutablePointer<Float>?>, n: Int) throws {
        let total = shape.reduce(0) { $0 + Int($1) } + slots.reduce(0) { $0 + $1.count }
        if (snapshot?.count ?? -1) < total {
            snapshot = nil
            snapshot = try withErrorPrefix("the rollback copy") { try FloatBuffer(count: total) }
        }
        copySnapshot(params: params, n: n, restoring: false)
    }

    /// Copies every tensor's params, then every state slot, into the snapshot or back.
    private func copySnapshot(params: UnsafePointer<UnsafeMutablePointer<Float>?>, n: Int, restoring: Bool) {
        guard let snapshot else { return }
        var copy = snapshot.pointer
        func move(_ live: UnsafeMutablePointer<Float>, _ count: Int) {
            if restoring { live.update(from: copy, count: count) } else { copy.update(from: live, count: count) }
            copy += count
        }
        for i in 0..<n where shape[i] > 0 { move(params[i]!, Int(shape[i])) }
        for slot in slots { move(slot.pointer, slot.count) }
    }
}

/// A `.numeric` error for the first NaN/Inf in `count` tensors (data[i][0..<lengths[i]]; tensor
/// by tensor, one parallel scan), nil when there is none. `message` gets its tensor, its index
/// and what it is: "NaN", "-Inf" or "Inf".
func nonFiniteError(_ count: Int64, _ data: UnsafePointer<UnsafePointer<Float>?>, _ lengths: UnsafePointer<Int64>,
                    _ message: (_ tensor: Int, _ index: Int, _ what: String) -> String) -> DescentError? {
    var tensor: Int64 = 0, index: Int64 = 0
    guard dk_find_nonfinite(count, data, lengths, dk_get_threads(), &tensor, &index) != 0 else { return nil }
    let value = data[Int(tensor)]![Int(index)]
    return DescentError(.numeric, message(Int(tensor), Int(index), value.isNaN ? "NaN" : value < 0 ? "-Inf" : "Inf"))
}

/// The same for one tensor, data[0..<count].
func nonFiniteError(_ data: UnsafePointer<Float>?, count: Int, _ message: (_ index: Int, _ what: String) -> String) -> DescentError? {
    var data = data, length = Int64(count)
    return count == 0 ? nil : nonFiniteError(1, &data, &length) { message($1, $2) }
}
