import CDescentKernels
import Synchronization

/// A multi-layer perceptron: the book's MultiLayerNetExtend.
///
/// Hidden block: Affine -> BatchNorm (if on) -> activation -> Dropout (if > 0); the last block
/// is Affine -> softmax with cross-entropy. Parameters are `W1, b1, gamma1, beta1, W2, ...`.
/// Training allocates nothing once a batch size has been seen. Same spec and same inputs give
/// bit-identical losses and weights for any thread count: a batch is split into shards by its
/// size alone (`runPass`, docs/parallel-step.md).
///
/// One network is used by one thread at a time (its shards then use the library's threads);
/// separate networks may train concurrently.
public final class Network {
    public let spec: NetworkSpec
    /// In the book's order: W1, b1, [gamma1, beta1,] W2, ...
    public let parameters: [Parameter]
    /// The memory behind every parameter's value and gradient (see `ParameterArena`).
    public let arena: ParameterArena
    /// Batch-norm running averages per hidden layer (empty without batch norm).
    public let runningStatistics: [(mean: FloatBuffer, variance: FloatBuffer)]
    /// The optimizer that apply_update uses; sgd (lr 0.01) until set. The network owns it
    /// (`Optimizer.isOwnedByNetwork`); its hyperparameters may be changed at any time.
    public private(set) var optimizer: Optimizer

    /// The dropout generator's state (DropoutLayer and checkpoints hold its address).
    var rng: UnsafeMutablePointer<dk_rng> { rngState.pointer }
    private let rngState: CheckedArray<dk_rng>
    private let layers: [Layer]
    private let activationLayers: [ActivationLayer]
    /// The batch-1 step in one pass, for networks without batch norm and dropout.
    private let batch1Schedule: Batch1Schedule?
    private let probabilities = FloatBuffer()
    private let scoreGradient = FloatBuffer()
    private var reservedRows = 0
    /// The phases of a training pass and of an evaluation pass (see `Step`); a training pass
    /// may add the gradients' sum and the optimizer step as two more phases (`runPass`). A
    /// data-parallel job's training pass also ends a phase with each layer's gradients.
    private let trainingPhases: [[Step]]
    private let evaluationPhases: [[Step]]
    private let jobPhases: [[Step]]
    /// Per layer: the floats of the gradient arena its backward pass writes (nil: none), which a
    /// data-parallel job sums over the processes as soon as that pass ends.
    private let gradientBlocks: [Range<Int>?]
    /// The pass in progress, read by every shard (set on the calling thread before they start).
    private var pass = Pass()
    /// Per layer: the batch it reads in the pass in progress (index layers.count: the scores),
    /// and the gradient of its output.
    private let layerInputs: CheckedArray<UnsafePointer<Float>?>
    private let outputGradients: CheckedArray<UnsafePointer<Float>?>
    /// Per shard: the sum of its rows' losses, and of its correct predictions (evaluate).
    private let shardLosses: CheckedArray<Double>
    private let shardCorrect: CheckedArray<Int64>
    /// The gradient arenas of a batch of several shards, one after another (see `Shard`).
    private let shardGradients = FloatBuffer()
    /// Per part of the summed gradient arena: 1 when it holds no NaN/Inf; 1 when its fused
    /// optimizer step failed; DK_CHUNK floats of scratch for that step.
    private let partIsFinite: CheckedArray<UInt8>
    private let partStepFailed: CheckedArray<UInt8>
    /// Per shard of a training pass: 1 when its rows of x hold no NaN/Inf.
    private let shardInputIsFinite: CheckedArray<UInt8>
    private let updateScratch = FloatBuffer()
    /// The last training pass summed several shards and found every gradient finite.
    private var gradientsAreKnownFinite = false
    /// The data-parallel job this network trains in, if any (`join`).
    public private(set) var processGroup: ProcessGroup?
    /// Gradients from forwardBackward that apply_update has not used yet.
    public private(set) var hasPendingGradients = false
    /// Set while a call through the C API uses this network (see `claim`).
    private let inUse = Atomic<Bool>(false)

    /// Builds and initialises a network from a spec. Errors: `.invalidArgument` (the spec),
    /// `.notFound` (no BLAS), `.outOfMemory` (the message names the arena or tensor).
    ///
    /// Every block of memory is owned by a stored property or a local as soon as it exists
    /// (FloatBuffer, CheckedArray, Parameter, the layers): when an allocation fails halfway,
    /// Swift releases what was already built (a failed init runs no deinit, so nothing may
    /// rely on one) and the throw leaves nothing behind.
    public init(spec: NetworkSpec) throws {
        try spec.validate()
        guard dk_blas_ready() != 0 else {
            throw DescentError(.notFound, String(cString: dk_blas_description()))
        }
        self.spec = spec
        rngState = try CheckedArray(count: 1, for: "the random generator")
        dk_rng_seed(rngState.pointer, spec.seed)
        let rng = rngState.pointer

        // All parameters and all gradients: one allocation each, laid out from the spec.
        let arena = try ParameterArena(spec: spec)
        self.arena = arena
        let parameters = try arena.views.map { try Parameter($0, in: arena) }
        let named = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0) })
        var running: [(mean: FloatBuffer, variance: FloatBuffer)] = []
        var layers: [Layer] = []
        var activationLayers: [ActivationLayer] = []
        let decay = Float(spec.weightDecay)
        for i in 1..<spec.sizes.count {
            let fanIn = spec.sizes[i - 1], fanOut = spec.sizes[i]
            let w = named["W\(i)"]!, b = named["b\(i)"]!   // the arena's layout has them (layout(for:))
            spec.initializer.initialize(w.value, fanIn: fanIn, rng: rng)
            layers.append(AffineLayer(weight: w, bias: b, weightDecay: decay, needsInputGradient: i > 1))
            guard i < spec.sizes.count - 1 else { break }
            if spec.batchNorm {
                let gamma = named["gamma\(i)"]!, beta = named["beta\(i)"]!
                gamma.value.fill(1)
                let stats = (mean: try withErrorPrefix("running_mean\(i)") { try FloatBuffer(count: fanOut) },
                             variance: try withErrorPrefix("running_var\(i)") { try FloatBuffer(count: fanOut) })
                stats.variance.fill(1)
                running.append(stats)
                layers.append(try BatchNormLayer(gamma: gamma, beta: beta, runningMean: stats.mean,
                                                 runningVariance: stats.variance))
            }
            let activation = ActivationLayer(spec.activation, width: fanOut)
            layers.append(activation)
            activationLayers.append(activation)
            if spec.dropout > 0 { layers.append(DropoutLayer(ratio: Float(spec.dropout), width: fanOut, rng: rng)) }
        }
        self.parameters = parameters
        self.runningStatistics = running
        self.layers = layers
        self.activationLayers = activationLayers
        batch1Schedule = try Batch1Schedule(layers: layers, function: spec.activation, weightDecay: decay)
        (trainingPhases, evaluationPhases, jobPhases) = Self.phases(of: layers)
        gradientBlocks = layers.map { layer in
            layer.parameters.last.map { last in layer.parameters[0].offset..<last.offset + last.count }
        }
        layerInputs = try CheckedArray(count: layers.count + 1, for: "the layer table")
        outputGradients = try CheckedArray(count: layers.count, for: "the layer table")
        shardLosses = try CheckedArray(count: Int(DK_MAX_SHARDS), for: "the shard table")
        shardCorrect = try CheckedArray(count: Int(DK_MAX_SHARDS), for: "the shard table")
        partIsFinite = try CheckedArray(count: Int(DK_MAX_SHARDS), for: "the shard table")
        partStepFailed = try CheckedArray(count: Int(DK_MAX_SHARDS), for: "the shard table")
        shardInputIsFinite = try CheckedArray(count: Int(DK_MAX_SHARDS), for: "the shard table")
        optimizer = try Optimizer("sgd")
        try optimizer.attachToNetwork(weightDecay: spec.weightDecay)   // sgd's L2 is 0: never refused
    }

    /// Builds a network from a JSON spec (see `NetworkSpec`).
    public convenience init(json: String) throws {
        try self.init(spec: try NetworkSpec.parse(json: json))
    }

    /// Marks the network as in use by the calling thread; false if another thread has it.
    /// The C API claims a network for each call that reads or changes its state, so two
    /// threads on one handle get an error instead of a data race. One atomic exchange.
    public func claim() -> Bool {
        inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    }

    /// Ends a `claim`.
    public func unclaim() { inUse.store(false, ordering: .releasing) }

    public var classes: Int { spec.classes }
    public var inputSize: Int { spec.inputSize }

    /// Replaces the optimizer by name; weights are kept, the new optimizer's state starts fresh.
    /// With a spec `weight_decay` > 0, the host's L2 `weight_decay` must be 0 (one L2 term;
    /// a decoupled decay such as adamw's is allowed). On error the old optimizer stays.
    public func setOptimizer(_ name: String, hyperparameters: String? = nil) throws {
        try install(try Optimizer(name, hyperparameters: hyperparameters))
    }

    /// Installs an existing optimizer (checkpoint loading). Its state, if any, must match.
    func install(_ new: Optimizer) throws {
        try new.attachToNetwork(weightDecay: spec.weightDecay)
        optimizer.detachFromNetwork()
        optimizer = new
    }

    // MARK: - training

    /// Makes the training steps data-parallel over `group` (nil: this process alone again).
    /// Every process of the job calls train_step or forward_backward with its part of each
    /// global batch; see `ProcessGroup`. Prediction and evaluation stay local.
    public func join(_ group: ProcessGroup?) {
        processGroup = group
    }

    /// One step: forward, backward, optimizer update. Returns the loss before the update
    /// (cross-entropy plus 0.5*lambda*sum W^2). On error nothing changed: parameters,
    /// optimizer state, batch-norm averages and the random generator are as they were.
    /// Afterwards, failed or not, no gradients are left for `applyUpdate`.
    @discardableResult
    public func trainStep(x: UnsafePointer<Float>?, labels: UnsafePointer<Int32>?, batch: Int) throws -> Float {
        defer { hasPendingGradients = false }   // a step leaves no gradients to apply, failed or not
        if batch == 1, processGroup == nil, let path = batch1Schedule, optimizer.canFuse {
            return try batch1Step(path, x: x, labels: labels, updating: true)
        }
        return try keepingOrUndoingPass {
            guard dk_shard_count(Int64(batch)) > 1, optimizer.canFuse, processGroup == nil else {
                // applyUpdate scans the gradients (once) before anything is written, unless
                // the sum of several shards' gradients already did.
                let loss = try computeGradients(x: x, labels: labels, batch: batch, scanGradients: false, update: nil)
                try applyUpdate(scanned: gradientsAreKnownFinite)
                return loss
            }
            // The update runs inside the pass: each part of the arena is stepped by the
            // thread that has just summed its gradients, while they are in its cache.
            var loss: Float = 0
            try optimizer.fusedStep(length: Int64(arena.length)) { step in
                loss = try computeGradients(x: x, labels: labels, batch: batch, scanGradients: step.checkFinite, update: step)
                // An optimizer flagged infallible whose step() failed anyway: reported as such.
                return (0..<Int(dk_shard_count(Int64(batch)))).allSatisfy { partStepFailed.pointer[$0] == 0 }
            }
            return loss
        }
    }

    /// Forward and backward only: fills the gradients (readable and writable through
    /// `parameters`, e.g. to all-reduce them) without updating. Batch-norm running averages
    /// are updated. `applyUpdate` then takes the optimizer step.
    @discardableResult
    public func forwardBackward(x: UnsafePointer<Float>?, labels: UnsafePointer<Int32>?, batch: Int) throws -> Float {
        if batch == 1, processGroup == nil, let path = batch1Schedule {
            return try batch1Step(path, x: x, labels: labels, updating: false)
        }
        return try keepingOrUndoingPass {
            try computeGradients(x: x, labels: labels, batch: batch, scanGradients: true, update: nil)
        }
    }

    /// Runs `body`, which runs a training pass, and then keeps what that pass's forward changed
    /// (batch-norm running averages); when `body` throws, undoes it (and the dropout draws).
    private func keepingOrUndoingPass(_ body: () throws -> Float) throws -> Float {
        let saved = rng.pointee
        do {
            let loss = try body()
            for layer in layers { layer.commit() }
            return loss
        } catch {
            rng.pointee = saved
            for layer in layers { layer.discard() }
            throw error
        }
    }

    /// The optimizer step on the current gradients. Needs a forwardBackward since the last update.
    public func applyUpdate() throws { try applyUpdate(scanned: false) }

    /// `scanned`: the gradients are the pass's own, known finite, with zero padding.
    private func applyUpdate(scanned: Bool) throws {
        guard hasPendingGradients else {
            throw DescentError.invalid("no gradients to apply: run forward_backward first (each result is applied once)")
        }
        // The scan zeroes the gradients' padding first; without a scan, zero it here.
        if !scanned, optimizer.checksFiniteness, let error = nonFiniteGradient() { throw error }
        if !scanned, !optimizer.checksFiniteness { arena.clearGradientPadding() }
        // The whole arena is one tensor: one elementwise pass per state slot.
        var values: UnsafeMutablePointer<Float>? = arena.values.pointer
        var gradients: UnsafePointer<Float>? = UnsafePointer(arena.gradients.pointer)
        var length = Int64(arena.length)
        try optimizer.step(count: 1, params: &values, grads: &gradients, lengths: &length, scanned: true)
        hasPendingGradients = false
    }

    /// Forward and backward over the batch; with `update`, also the optimizer step, inside the
    /// pass (`runPass`). Errors, checked in this order: the arguments, a NaN/Inf in x (found by
    /// the pass as it reads x), a non-finite loss, batch-norm statistics that overflowed, and
    /// (with `scanGradients`) a NaN/Inf gradient;
    /// after any of them nothing was updated and no gradients are pending (callers run it in
    /// `keepingOrUndoingPass`, which puts back the random generator and batch-norm layers).
    private func computeGradients(x: UnsafePointer<Float>?, labels: UnsafePointer<Int32>?, batch: Int,
                                  scanGradients: Bool, update: Optimizer.FusedStep?) throws -> Float {
        // In a data-parallel job every process learns every other's batch size, or that it
        // refused its arguments, before any goes on: no process may wait for one that stopped.
        var checked: (x: UnsafePointer<Float>, labels: UnsafePointer<Int32>?)? = nil
        var refused: DescentError? = nil
        do {
            checked = try validate(x: x, labels: labels, rows: batch, needLabels: true, scanX: false)
            try reserve(rows: batch)
            try reserveShardGradients(rows: batch)
        } catch let error as DescentError {
            refused = error
        }
        let job = try processGroup.map { try agreeOnBatch($0, rows: batch, refused: refused) }
        if let refused { throw refused }
        // PyTorch refuses this too: normalising one sample by its own batch statistics gives
        // x - mean = 0 everywhere and a variance that estimates nothing.
        guard (job?.batch ?? batch) >= 2 || !spec.batchNorm else {
            throw DescentError.invalid("batch is 1, but training a network with batch norm needs at least 2 samples "
                + "per batch (the variance of a single sample is undefined); predict and evaluate accept 1")
        }
        let (x, labels) = checked!
        let mode = dk_denormals_flush_begin()   // see denormals.c
        defer { dk_denormals_flush_end(mode) }
        hasPendingGradients = false
        let penalty = decayPenalty()
        var loss = try runPass(x, labels: labels!, rows: batch, training: true, update: update.map { ($0, penalty) },
                               job: job) + penalty
        if let job { loss = try agreeOnPass(job, checkingGradients: scanGradients) + penalty }
        if let error = passError(loss: loss, checkingGradients: scanGradients) { throw error }
        hasPendingGradients = true
        return Float(loss)
    }

    /// A data-parallel job's first agreement: every process's batch size, or that it refused
    /// its arguments. Then every process throws: the first refusing one its own error, the
    /// others that error's status and message, naming that process. Returns the global batch
    /// and the place of this process's rows in it.
    private func agreeOnBatch(_ group: ProcessGroup, rows: Int, refused: DescentError?) throws
        -> Job {
        let batches = try group.gather(refused == nil ? Float(rows) : -1)
        // A faulty all-reduce may return anything: check before converting (Int(NaN) traps).
        guard batches.allSatisfy({ $0 == $0.rounded() && $0 >= -1 && $0 < 0x1p24 }) else {
            throw DescentError(.io, "the all-reduce gave process \(group.rank) batch sizes that no process sent "
                + "(it must return the element-wise sum over the processes)")
        }
        if let k = batches.firstIndex(where: { $0 < 0 }) {
            let told = try group.tell(refused, from: k)
            if let refused { throw refused }
            throw DescentError(told.status, "process \(k) refused its part of the batch: \(told.message); nothing changed")
        }
        return (group, Int(batches.reduce(0, +)), Int(batches[..<group.rank].reduce(0, +)))
    }

    /// A data-parallel job's last agreement, after the pass: every process decides alike from the
    /// sum of the losses and every process's failure. Returns the global batch's mean
    /// cross-entropy, or throws this process's error, or the failed process's status and
    /// message, naming it. NaN/Inf in one process's x spoils every process's batch-norm
    /// statistics: that process's input is then named as the cause everywhere.
    private func agreeOnPass(_ job: Job, checkingGradients: Bool) throws
        -> Double {
        let local = passError(loss: nil, checkingGradients: checkingGradients)
        let outcome: ProcessGroup.Outcome = local == nil ? .ok : inputIsFinite ? .failed : .badInput
        let agreed = try job.group.agree(sum: lossSum(), outcome: outcome)
        guard let culprit = agreed.culprit else { return agreed.sum / Double(job.batch) }
        let told = try job.group.tell(local, from: culprit.rank)
        if let local, culprit.outcome != .badInput || outcome == .badInput { throw local }
        throw DescentError(told.status, "the step failed on process \(culprit.rank): \(told.message); nothing changed")
    }

    /// The shards' gradient arenas and the fused update's scratch for a batch of `rows`.
    private func reserveShardGradients(rows: Int) throws {
        let shards = Int(dk_shard_count(Int64(rows)))
        guard shards > 1 else { return }
        try withErrorPrefix("the gradient arenas of \(shards) shards") {
            try shardGradients.reserve(shards * arena.length)
            try updateScratch.reserve(shards * Int(DK_CHUNK))
        }
    }

    /// Why the training pass just run may not be used (see computeGradients), or nil. The
    /// shards of a fused update decide with `passIsUsable`, which asks the same questions.
    /// `loss` nil: not known yet (a data-parallel job's local check, before the losses are summed).
    private func passError(loss: Double?, checkingGradients: Bool) -> DescentError? {
        if !inputIsFinite, let error = inputError(layerInputs.pointer[0]!, rows: pass.rows) { return error }
        if let loss, !loss.isFinite || !Float(loss).isFinite { return Self.lossError(loss) }
        guard layers.allSatisfy({ $0.statisticsAreFinite }) else {
            return DescentError(.numeric, "a batch-norm mean or variance overflowed float32 (the inputs or weights are too large)")
        }
        return checkingGradients && !gradientsAreKnownFinite ? nonFiniteGradient() : nil
    }

    /// Batch 1 without batch norm or dropout: forward, backward and (when `updating`) the
    /// optimizer step in one pass. Same contract as the layer-by-layer path: on error nothing
    /// changed but the gradients (and with a NaN/Inf gradient those are not pending).
    private func batch1Step(_ path: Batch1Schedule, x: UnsafePointer<Float>?, labels: UnsafePointer<Int32>?,
                            updating: Bool) throws -> Float {
        let (x, labels) = try validate(x: x, labels: labels, rows: 1, needLabels: true)
        try reserve(rows: 1)
        let mode = dk_denormals_flush_begin()   // see denormals.c
        defer { dk_denormals_flush_end(mode) }
        let penalty = decayPenalty()
        /// The pass, with `update` the step too; throws the error a failed pass stands for (a
        /// failed step() is the optimizer's to report). Gradients it wrote are pending only
        /// when it succeeded without updating.
        func run(_ update: UnsafePointer<dk_dense_update>?) throws -> (code: Int32, loss: Double) {
            let result = path.run(x: x, label: labels![0], lossOffset: penalty, update: update,
                                  probabilities: probabilities.pointer)
            guard result.code != dk_dense_loss_not_finite else { throw Self.lossError(result.loss) }   // nothing written
            hasPendingGradients = !updating && result.code == dk_dense_ok
            if result.code == dk_dense_gradient_not_finite {
                throw nonFiniteGradient() ?? DescentError(.numeric, "a gradient is NaN or Inf")
            }
            return result
        }
        guard updating else { return Float(try run(nil).loss) }
        var loss = 0.0
        try optimizer.fusedStep(length: Int64(arena.length)) { step in
            var update = dk_dense_update(desc: step.descriptor, ctx: step.context, slots: step.slots,
                                         params: arena.values.pointer, l2: step.l2, check_finite: step.checkFinite ? 1 : 0)
            let result = try run(&update)
            loss = result.loss
            return result.code != dk_dense_step_failed
        }
        return Float(loss)
    }

    /// The error for a loss that is not a finite float32.
    private static func lossError(_ loss: Double) -> DescentError {
        let shown = loss.isNaN ? "NaN" : Float(loss).isFinite ? "\(loss)" : "too large for float32 (\(loss))"
        return DescentError(.numeric, "the loss is \(shown) (the weights or inputs are too large, or the learning rate is)")
    }

    /// The first NaN/Inf in the gradient arena, as an error naming the parameter and index.
    private func nonFiniteGradient() -> DescentError? {
        arena.clearGradientPadding()   // a caller may have written the whole arena
        return nonFiniteError(arena.gradients.pointer, count: arena.length) { index, what in
            // The padding is zero, so the index is inside the last view that starts at or before it.
            let p = parameters.last { $0.offset <= index }!
            return "the gradient of \(p.name) contains \(what) at index \(index - p.offset)"
        }
    }

    // MARK: - inference

    /// Class probabilities [batch][classes] in evaluation mode (running averages, no dropout).
    public func predict(x: UnsafePointer<Float>?, batch: Int, probabilities out: UnsafeMutablePointer<Float>?) throws {
        guard let out else { throw DescentError.invalid("probs is NULL") }
        let (x, _) = try validate(x: x, labels: nil, rows: batch, needLabels: false)
        try reserve(rows: batch)
        let mode = dk_denormals_flush_begin()
        defer { dk_denormals_flush_end(mode) }
        _ = try runPass(x, labels: nil, rows: batch, training: false)
        out.update(from: probabilities.pointer, count: batch * classes)
    }

    /// Mean loss and accuracy over n samples in evaluation mode, in chunks of at most
    /// `evaluationChunk` rows (so memory stays bounded). The loss includes weight decay, as the
    /// training loss does.
    public func evaluate(x: UnsafePointer<Float>?, labels: UnsafePointer<Int32>?, count n: Int) throws -> (loss: Double, accuracy: Double) {
        let (x, labels) = try validate(x: x, labels: labels, rows: n, needLabels: true)
        let chunk = min(n, Self.evaluationChunk)
        try reserve(rows: chunk)
        let mode = dk_denormals_flush_begin()
        defer { dk_denormals_flush_end(mode) }
        var totalLoss = 0.0, correct: Int64 = 0
        for start in stride(from: 0, to: n, by: chunk) {
            let rows = min(chunk, n - start)
            let loss = try runPass(x + start * inputSize, labels: labels! + start, rows: rows, training: false)
            totalLoss += loss * Double(rows)
            for s in 0..<pass.shards { correct += shardCorrect.pointer[s] }
        }
        return (totalLoss / Double(n) + decayPenalty(), Double(correct) / Double(n))
    }

    public static let evaluationChunk = 1000

    /// The output of hidden layer `layer` (0-based, after its activation function, before
    /// dropout) from the last forward pass: [rows][width].
    public func activations(layer: Int) throws -> (data: UnsafePointer<Float>, rows: Int, columns: Int) {
        guard layer >= 0, layer < activationLayers.count else {
            throw DescentError.invalid("layer is \(layer): must be in [0, \(activationLayers.count)) (hidden layers)")
        }
        let a = activationLayers[layer]
        guard a.rows > 0 else { throw DescentError.invalid("no forward pass has run yet") }
        return (UnsafePointer(a.output.pointer), a.rows, a.width)
    }

    // MARK: - internals

    /// This process's part of a data-parallel job's step: the group, the global batch's rows,
    /// and the place of this process's row 0 among them.
    private typealias Job = (group: ProcessGroup, batch: Int, rowOffset: Int)
    /// The optimizer step a pass takes at its end, and the loss's weight-decay term.
    private typealias FusedUpdate = (step: Optimizer.FusedStep, lossOffset: Double)

    /// What every shard of the pass in progress reads.
    private struct Pass {
        var labels: UnsafePointer<Int32>? = nil
        /// This process's rows, and the batch means divide by (all processes' rows in a job).
        var rows = 0
        var batch = 0
        /// In a data-parallel job: the place of this process's row 0 in the global batch, and
        /// whether sums over the batch come from every process.
        var rowOffset = 0
        var synchronized = false
        /// The phase that `dk_run_shards`'s phase 0 stands for (a job runs one phase at a time).
        var phaseOffset = 0
        var shards = 1
        var training = false
        /// The shards' gradient arenas (`Shard.arenas`).
        var arenas: UnsafeMutablePointer<Float>? = nil
        /// The optimizer step to take at the end of the pass, and the loss's weight-decay term.
        var update: FusedUpdate? = nil
    }

    /// One piece of a pass over a shard's rows.
    private enum Step {
        /// A training pass checks its rows of x for NaN/Inf (`shardInputIsFinite`).
        case checkInput
        case forward(layer: Int, stage: Int)
        /// Softmax and cross-entropy (and in training the score gradient).
        case loss
        case backward(layer: Int, stage: Int)
    }

    /// A training pass's steps in order, cut into phases after every stage but a layer's last
    /// (those need every shard's sums: batch norm's statistics). Nothing separates a shard's
    /// forward from its backward, so they share a phase. An evaluation pass is one phase. A
    /// data-parallel job's training pass is also cut after each layer's backward pass that
    /// finishes gradients, so that their sum over the processes can start (`runPass`).
    private static func phases(of layers: [Layer]) -> (training: [[Step]], evaluation: [[Step]], job: [[Step]]) {
        func cut(perLayerGradients: Bool) -> [[Step]] {
            var phases: [[Step]] = [[.checkInput]]
            func add(_ step: Step, endsPhase: Bool) {
                phases[phases.count - 1].append(step)
                if endsPhase { phases.append([]) }
            }
            for (l, layer) in layers.enumerated() {
                for stage in 0..<layer.forwardStages {
                    add(.forward(layer: l, stage: stage), endsPhase: stage < layer.forwardStages - 1)
                }
            }
            add(.loss, endsPhase: false)
            for (l, layer) in layers.enumerated().reversed() {
                for stage in 0..<layer.backwardStages {
                    let last = stage == layer.backwardStages - 1
                    add(.backward(layer: l, stage: stage), endsPhase: !last || perLayerGradients && !layer.parameters.isEmpty)
                }
            }
            if phases.last!.isEmpty { phases.removeLast() }
            return phases
        }
        return (cut(perLayerGradients: false), [layers.indices.map { .forward(layer: $0, stage: 0) } + [.loss]],
                cut(perLayerGradients: true))
    }

    /// Runs the layers and the softmax over the batch x [rows][inputSize], shard by shard;
    /// returns the mean cross-entropy when labels are given (the caller adds the decay penalty
    /// once), else 0. Training runs the backward pass too, and with several shards then sums
    /// their gradient arenas into the network's in shard order (`gradientsAreKnownFinite`
    /// tells whether the sum held no NaN/Inf). All in one parallel region.
    ///
    /// `update` (several shards only): after the sum, each thread steps the parts of the arena
    /// it summed, if the pass may be used (`passIsUsable`): all parts or none.
    ///
    /// `job` (training only): this process's part of a data-parallel job's global batch. The
    /// pass then runs one phase at a time, the layers sum what the next phase needs over the
    /// processes in between (`Layer.synchronize`), and the gradient arena is summed over them
    /// at the end (then weight decay's lambda*W is added, once).
    private func runPass(_ x: UnsafePointer<Float>, labels: UnsafePointer<Int32>?, rows: Int, training: Bool,
                         update: FusedUpdate? = nil,
                         job: Job? = nil) throws -> Double {
        let shards = Int(dk_shard_count(Int64(rows)))
        assert(update == nil || (training && shards > 1 && job == nil), "a fused update needs the sum of several shards")
        pass = Pass(labels: labels, rows: rows, batch: job?.batch ?? rows, rowOffset: job?.rowOffset ?? 0,
                    synchronized: job != nil, shards: shards, training: training,
                    arenas: training && shards > 1 ? shardGradients.pointer : nil, update: update)
        var h = x
        for (l, layer) in layers.enumerated() {
            layer.prepare(training: training)
            layerInputs.pointer[l] = h
            h = layer.output(for: h, training: training)
        }
        layerInputs.pointer[layers.count] = h   // the scores [rows][classes]
        var phases = 1
        if training {
            var dy: UnsafePointer<Float>? = UnsafePointer(scoreGradient.pointer)
            for l in layers.indices.reversed() {
                outputGradients.pointer[l] = dy
                dy = layers[l].inputGradient.map { UnsafePointer($0) }
            }
            phases = trainingPhases.count + (shards > 1 ? 1 : 0) + (update != nil ? 1 : 0)
        }
        for layer in activationLayers { layer.rows = rows }
        let context = Unmanaged.passUnretained(self).toOpaque()
        if let group = job?.group, training {
            // Phase by phase: between two, sum what the next needs over the processes, and
            // start summing the gradients of each layer whose backward pass is done.
            defer { try? group.finishSums() }   // a throw below must not leave sums running
            for (phase, steps) in jobPhases.enumerated() {
                pass.phaseOffset = phase
                dk_run_shards(1, Int32(shards), dk_get_threads(), Self.runShard, context)
                switch steps.last {
                case .forward(let l, let stage)? where stage < layers[l].forwardStages - 1:
                    try layers[l].synchronize(after: .forward(stage), shard(0), group: group)
                case .backward(let l, let stage)? where stage < layers[l].backwardStages - 1:
                    try layers[l].synchronize(after: .backward(stage), shard(0), group: group)
                case .backward(let l, _)?:
                    if let block = gradientBlocks[l] { startSummingGradients(block, shards: shards, group: group) }
                default:
                    break
                }
            }
            try group.finishSums()
            if !group.overlaps { try group.sum(arena.gradients.pointer, arena.length) }
            addWeightDecayGradient()
            gradientsAreKnownFinite = false
        } else {
            dk_run_shards(Int32(phases), Int32(shards), dk_get_threads(), Self.runShard, context)
            gradientsAreKnownFinite = training && shards > 1 && (0..<shards).allSatisfy { partIsFinite.pointer[$0] != 0 }
        }
        return labels == nil ? 0 : meanLoss()
    }

    /// The gradients `block` of a layer whose backward pass just ended, in a data-parallel job:
    /// the shards' gradients added in shard order (as `sumGradients` adds them), then, when the
    /// job overlaps, their sum over the processes queued (else the whole arena is summed after
    /// the pass).
    private func startSummingGradients(_ block: Range<Int>, shards: Int, group: ProcessGroup) {
        let sum = arena.gradients.pointer + block.lowerBound
        if shards > 1 {
            dk_sum_blocks(shardGradients.pointer + block.lowerBound, Int64(arena.length), Int32(shards),
                          Int64(block.count), 1, sum)
        }
        group.startSum(sum, block.count)
    }

    /// Whether every shard of the training pass found its rows of x finite.
    private var inputIsFinite: Bool { (0..<pass.shards).allSatisfy { shardInputIsFinite.pointer[$0] != 0 } }

    /// The pass's mean cross-entropy: the shards' sums added in shard order, over the batch.
    private func meanLoss() -> Double { lossSum() / Double(pass.batch) }

    /// The sum of this process's rows' cross-entropies, the shards' sums added in shard order.
    private func lossSum() -> Double { (0..<pass.shards).reduce(0) { $0 + shardLosses.pointer[$1] } }

    /// Whether the training pass may be used (passError would return nil), asked by every
    /// shard after the gradients' sum: all come to the same answer from the same numbers.
    private func passIsUsable(lossOffset: Double, checkingGradients: Bool) -> Bool {
        let loss = meanLoss() + lossOffset
        return inputIsFinite && loss.isFinite && Float(loss).isFinite && layers.allSatisfy { $0.statisticsAreFinite }
            && (!checkingGradients || (0..<pass.shards).allSatisfy { partIsFinite.pointer[$0] != 0 })
    }

    /// The function every shard runs: context is the network.
    private static let runShard: dk_shard_fn = { context, phase, index in
        Unmanaged<Network>.fromOpaque(context!).takeUnretainedValue().run(phase: Int(phase), shard: Int(index))
    }

    /// Shard `index` of the pass in progress.
    private func shard(_ index: Int) -> Shard {
        let p = pass
        let rows = Int64(p.rows), count = Int32(p.shards)
        return Shard(index: index, count: p.shards,
                     rows: Int(dk_shard_begin(rows, count, Int32(index)))..<Int(dk_shard_begin(rows, count, Int32(index + 1))),
                     batch: p.batch, rowOffset: p.rowOffset, synchronized: p.synchronized, arenas: p.arenas, stride: arena.length)
    }

    /// Phase `phase` of the pass in progress, on shard `index`'s rows.
    private func run(phase: Int, shard index: Int) {
        let p = pass
        let phase = phase + p.phaseOffset
        let shard = shard(index)
        let phases = p.synchronized ? jobPhases : p.training ? trainingPhases : evaluationPhases
        if phase == phases.count { return sumGradients(part: index, of: p.shards) }
        if phase == phases.count + 1 { return stepPart(index, of: p.shards) }
        for step in phases[phase] {
            switch step {
            case .checkInput:
                shardInputIsFinite.pointer[index] =
                    dk_max_abs_or_nonfinite(shard.first(layerInputs.pointer[0]!, width: inputSize), Int64(shard.rows.count * inputSize)) >= 0 ? 1 : 0
            case .forward(let l, let stage):
                layers[l].forward(layerInputs.pointer[l]!, shard, stage: stage, training: p.training)
            case .loss:
                computeLoss(shard, labels: p.labels, training: p.training)
            case .backward(let l, let stage):
                layers[l].backward(outputGradients.pointer[l]!, input: layerInputs.pointer[l]!, shard, stage: stage)
            }
        }
    }

    /// Softmax and cross-entropy over the shard's rows: the sum of their losses into
    /// `shardLosses`, probabilities, and in training the score gradient (of the whole batch's
    /// mean loss); in evaluation the count of correct predictions into `shardCorrect`.
    private func computeLoss(_ shard: Shard, labels: UnsafePointer<Int32>?, training: Bool) {
        // The last layer is affine: its output is the scores [rows][classes].
        let scores = shard.first(layerInputs.pointer[layers.count]!, width: classes)
        let labels = labels.map { shard.first($0, width: 1) }
        let rows = Int64(shard.rows.count)
        let probabilities = shard.first(self.probabilities.pointer, width: classes)
        shardLosses.pointer[shard.index] = dk_softmax_cross_entropy(scores, labels, rows, Int64(classes),
            1 / Float(shard.batch), probabilities, training ? shard.first(scoreGradient.pointer, width: classes) : nil)
        if let labels, !training {
            shardCorrect.pointer[shard.index] = dk_count_correct(probabilities, labels, rows, Int64(classes))
        }
    }

    /// Part `part` of `parts` of the gradient arena: the shards' gradients added in shard order,
    /// and whether the sums are all finite. The shards' padding is never written, so the sum's
    /// padding is zero.
    private func sumGradients(part: Int, of parts: Int) {
        let (begin, end) = arenaPart(part, of: parts)
        var finite = true
        // Chunk by chunk, so the check reads each sum while it is still in the L1 cache.
        for chunk in stride(from: begin, to: end, by: Int(DK_CHUNK)) {
            let n = min(Int(DK_CHUNK), end - chunk)
            let sum = arena.gradients.pointer + chunk
            dk_sum_blocks(shardGradients.pointer + chunk, Int64(arena.length), Int32(parts), Int64(n), 1, sum)
            finite = finite && dk_max_abs_or_nonfinite(sum, Int64(n)) >= 0
        }
        partIsFinite.pointer[part] = finite ? 1 : 0
    }

    /// Part `part` of the optimizer step fused into the pass (the part `sumGradients` summed on
    /// this thread), when the pass may be used.
    private func stepPart(_ part: Int, of parts: Int) {
        partStepFailed.pointer[part] = 0
        guard let (step, lossOffset) = pass.update,
              passIsUsable(lossOffset: lossOffset, checkingGradients: step.checkFinite) else { return }
        let (begin, end) = arenaPart(part, of: parts)
        let rc = dk_run_segment(step.descriptor, step.context, arena.values.pointer, arena.gradients.pointer, step.slots,
                                step.l2, Int64(begin), Int64(end), updateScratch.pointer + part * Int(DK_CHUNK))
        partStepFailed.pointer[part] = rc == DESCENT_PLUGIN_OK ? 0 : 1
    }

    /// Floats [begin, end) of part `part` of `parts` of the arena, on 64-byte boundaries.
    private func arenaPart(_ part: Int, of parts: Int) -> (begin: Int, end: Int) {
        let blocks = arena.length / ParameterArena.alignment
        return (blocks * part / parts * ParameterArena.alignment, blocks * (part + 1) / parts * ParameterArena.alignment)
    }

    private func reserve(rows: Int) throws {
        guard rows > reservedRows else { return }
        batch1Schedule?.buffersMoved()   // first: a failure below may have moved some already
        let shards = Int(dk_shard_count(Int64(rows)))
        for layer in layers { try layer.reserve(rows: rows, shards: shards) }
        try probabilities.reserve(rows * classes)
        try scoreGradient.reserve(rows * classes)
        reservedRows = rows
    }

    /// The arguments' errors; with `scanX`, also a NaN/Inf in x (a training pass checks x
    /// itself, shard by shard, as it reads it).
    private func validate(x: UnsafePointer<Float>?, labels: UnsafePointer<Int32>?, rows: Int,
                          needLabels: Bool, scanX: Bool = true) throws -> (UnsafePointer<Float>, UnsafePointer<Int32>?) {
        guard rows >= 1, rows <= Int(Int32.max) / max(inputSize, classes) else {
            throw DescentError.invalid("batch is \(rows): must be >= 1 (and batch*features < 2^31)")
        }
        guard let x else { throw DescentError.invalid("x is NULL") }
        if needLabels {
            guard let labels else { throw DescentError.invalid("labels is NULL") }
            for i in 0..<rows where labels[i] < 0 || Int(labels[i]) >= classes {
                throw DescentError.invalid("labels[\(i)] is \(labels[i]): must be in [0, \(classes))")
            }
        }
        if scanX, let error = inputError(x, rows: rows) { throw error }
        return (x, labels)
    }

    /// The first NaN/Inf in x [rows][inputSize], as an error naming its index, row and column.
    private func inputError(_ x: UnsafePointer<Float>, rows: Int) -> DescentError? {
        nonFiniteError(x, count: rows * inputSize) { i, what in
            "x contains \(what) at index \(i) (row \(i / inputSize), column \(i % inputSize))"
        }
    }
}
