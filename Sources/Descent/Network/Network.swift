import CDescentKernels
import Synchronization

/// A multi-layer perceptron: the book's MultiLayerNetExtend.
///
/// Hidden block: Affine -> BatchNorm (if on) -> activation -> Dropout (if > 0); the last block
/// is Affine -> softmax with cross-entropy. Parameters are `W1, b1, gamma1, beta1, W2, ...`.
/// Training allocates nothing once a batch size has been seen. Same spec, same inputs and the
/// same thread count give bit-identical losses and weights.
///
/// One network is used by one thread at a time; separate networks may train concurrently.
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
                let stats = (mean: try Self.buffer(fanOut, "running_mean\(i)"),
                             variance: try Self.buffer(fanOut, "running_var\(i)"))
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
        optimizer = try Optimizer("sgd")
        try optimizer.attachToNetwork(weightDecay: spec.weightDecay)   // sgd's L2 is 0: never refused
    }

    /// A zeroed buffer whose out-of-memory error names the tensor it is for.
    private static func buffer(_ count: Int, _ name: String) throws -> FloatBuffer {
        do {
            return try FloatBuffer(count: count)
        } catch let error as DescentError {
            throw DescentError(error.status, "\(name): \(error.message)")
        }
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

    /// One step: forward, backward, optimizer update. Returns the loss before the update
    /// (cross-entropy plus 0.5*lambda*sum W^2). On error nothing changed: parameters,
    /// optimizer state, batch-norm averages and the random generator are as they were.
    @discardableResult
    public func trainStep(x: UnsafePointer<Float>?, labels: UnsafePointer<Int32>?, batch: Int) throws -> Float {
        if batch == 1, let path = batch1Schedule, optimizer.canFuse {
            return try batch1Step(path, x: x, labels: labels, updating: true)
        }
        let saved = rng.pointee
        // applyUpdate scans the gradients (once) before anything is written.
        let loss = try computeGradients(x: x, labels: labels, batch: batch, commit: false, scanGradients: false)
        do {
            try applyUpdate()
        } catch {
            rng.pointee = saved
            for layer in layers { layer.discard() }
            hasPendingGradients = false
            throw error
        }
        for layer in layers { layer.commit() }
        return loss
    }

    /// Forward and backward only: fills the gradients (readable and writable through
    /// `parameters`, e.g. to all-reduce them) without updating. Batch-norm running averages
    /// are updated. `applyUpdate` then takes the optimizer step.
    @discardableResult
    public func forwardBackward(x: UnsafePointer<Float>?, labels: UnsafePointer<Int32>?, batch: Int) throws -> Float {
        if batch == 1, let path = batch1Schedule {
            return try batch1Step(path, x: x, labels: labels, updating: false)
        }
        return try computeGradients(x: x, labels: labels, batch: batch, commit: true, scanGradients: true)
    }

    /// The optimizer step on the current gradients. Needs a forwardBackward since the last update.
    public func applyUpdate() throws {
        guard hasPendingGradients else {
            throw DescentError.invalid("no gradients to apply: run forward_backward first (each result is applied once)")
        }
        // The scan zeroes the gradients' padding first; without a scan, zero it here.
        if optimizer.checksFiniteness {
            if let error = nonFiniteGradient() { throw error }
        } else {
            arena.clearGradientPadding()
        }
        // The whole arena is one tensor: one elementwise pass per state slot.
        var values: UnsafeMutablePointer<Float>? = arena.values.pointer
        var gradients: UnsafePointer<Float>? = UnsafePointer(arena.gradients.pointer)
        var length = Int64(arena.length)
        try optimizer.step(count: 1, params: &values, grads: &gradients, lengths: &length, scanned: true)
        hasPendingGradients = false
    }

    private func computeGradients(x: UnsafePointer<Float>?, labels: UnsafePointer<Int32>?, batch: Int,
                                  commit: Bool, scanGradients: Bool) throws -> Float {
        let (x, labels) = try validate(x: x, labels: labels, rows: batch, needLabels: true)
        // PyTorch refuses this too: normalising one sample by its own batch statistics gives
        // x - mean = 0 everywhere and a variance that estimates nothing.
        guard batch >= 2 || !spec.batchNorm else {
            throw DescentError.invalid("batch is 1, but training a network with batch norm needs at least 2 samples "
                + "per batch (the variance of a single sample is undefined); predict and evaluate accept 1")
        }
        try reserve(rows: batch)
        let mode = dk_denormals_flush_begin()   // see denormals.c
        defer { dk_denormals_flush_end(mode) }
        let saved = rng.pointee
        let loss = forward(x, rows: batch, training: true, labels: labels!) + decayPenalty()
        /// Undoes the forward pass's effects (dropout draws, batch-norm averages) and returns `error`.
        func refuse(_ error: DescentError) -> DescentError {
            rng.pointee = saved
            for layer in layers { layer.discard() }
            return error
        }
        guard loss.isFinite, Float(loss).isFinite else { throw refuse(Self.lossError(loss)) }
        guard layers.allSatisfy({ $0.statisticsAreFinite }) else {
            throw refuse(DescentError(.numeric, "a batch-norm mean or variance overflowed float32 (the inputs or weights are too large)"))
        }
        var gradient: UnsafePointer<Float>? = UnsafePointer(scoreGradient.pointer)
        for layer in layers.reversed() {
            guard let dy = gradient else { break }
            gradient = layer.backward(dy, rows: batch)
        }
        if scanGradients, let error = nonFiniteGradient() {
            hasPendingGradients = false
            throw refuse(error)
        }
        if commit { for layer in layers { layer.commit() } }
        hasPendingGradients = true
        return Float(loss)
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
        let label = labels![0]
        var result: (code: Int32, loss: Double) = (dk_dense_ok, 0)
        /// Throws the error a failed pass stands for (a failed step() is the optimizer's to report).
        func check() throws {
            if result.code == dk_dense_loss_not_finite { throw Self.lossError(result.loss) }
            if result.code == dk_dense_gradient_not_finite {
                hasPendingGradients = false
                throw nonFiniteGradient() ?? DescentError(.numeric, "a gradient is NaN or Inf")
            }
        }
        if updating {
            do {
                try optimizer.fusedStep(length: Int64(arena.length)) { step in
                    var update = dk_dense_update(desc: step.descriptor, ctx: step.context, slots: step.slots,
                                                 params: arena.values.pointer, l2: step.l2,
                                                 check_finite: step.checkFinite ? 1 : 0)
                    result = path.run(x: x, label: label, lossOffset: penalty, update: &update,
                                      probabilities: probabilities.pointer)
                    try check()
                    return result.code != dk_dense_step_failed
                }
            } catch {
                if result.code == dk_dense_step_failed { hasPendingGradients = false }
                throw error
            }
            hasPendingGradients = false
        } else {
            result = path.run(x: x, label: label, lossOffset: penalty, update: nil, probabilities: probabilities.pointer)
            try check()
            hasPendingGradients = true
        }
        return Float(result.loss)
    }

    /// The error for a loss that is not a finite float32.
    private static func lossError(_ loss: Double) -> DescentError {
        let shown = loss.isNaN ? "NaN" : Float(loss).isFinite ? "\(loss)" : "too large for float32 (\(loss))"
        return DescentError(.numeric, "the loss is \(shown) (the weights or inputs are too large, or the learning rate is)")
    }

    /// The first NaN/Inf in the gradient arena, as an error naming the parameter and index.
    private func nonFiniteGradient() -> DescentError? {
        arena.clearGradientPadding()   // a caller may have written the whole arena
        var gradients: UnsafePointer<Float>? = UnsafePointer(arena.gradients.pointer)
        var length = Int64(arena.length)
        var tensor: Int64 = 0, index: Int64 = 0
        guard dk_find_nonfinite(1, &gradients, &length, dk_get_threads(), &tensor, &index) != 0 else { return nil }
        let value = arena.gradients.pointer[Int(index)]
        let what = value.isNaN ? "NaN" : (value < 0 ? "-Inf" : "Inf")
        // The padding is zero (`clearGradientPadding`), so the index is inside the last view
        // that starts at or before it.
        let p = parameters.last { $0.offset <= Int(index) }!
        return DescentError(.numeric, "the gradient of \(p.name) contains \(what) at index \(Int(index) - p.offset)")
    }

    // MARK: - inference

    /// Class probabilities [batch][classes] in evaluation mode (running averages, no dropout).
    public func predict(x: UnsafePointer<Float>?, batch: Int, probabilities out: UnsafeMutablePointer<Float>?) throws {
        guard let out else { throw DescentError.invalid("probs is NULL") }
        let (x, _) = try validate(x: x, labels: nil, rows: batch, needLabels: false)
        try reserve(rows: batch)
        let mode = dk_denormals_flush_begin()
        defer { dk_denormals_flush_end(mode) }
        _ = forward(x, rows: batch, training: false, labels: nil)
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
        var totalLoss = 0.0, correct = 0
        var predicted = [Int32](repeating: 0, count: chunk)
        var start = 0
        while start < n {
            let rows = min(chunk, n - start)
            let loss = forward(x + start * inputSize, rows: rows, training: false, labels: labels! + start)
            totalLoss += loss * Double(rows)
            dk_argmax_rows(probabilities.pointer, Int64(rows), Int64(classes), &predicted)
            for r in 0..<rows where predicted[r] == labels![start + r] { correct += 1 }
            start += rows
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

    /// Runs the layers and the softmax; returns the mean cross-entropy when labels are given
    /// (the caller adds the decay penalty once). In training also writes the score gradient.
    private func forward(_ x: UnsafePointer<Float>, rows: Int, training: Bool, labels: UnsafePointer<Int32>?) -> Double {
        var h = x
        for layer in layers { h = layer.forward(h, rows: rows, training: training) }
        // The last layer is affine: h is the scores [rows][classes].
        let ce = dk_softmax_cross_entropy(h, labels, Int64(rows), Int64(classes), probabilities.pointer,
                                          training ? scoreGradient.pointer : nil)
        return labels == nil ? 0 : ce
    }

    private func reserve(rows: Int) throws {
        guard rows > reservedRows else { return }
        batch1Schedule?.buffersMoved()   // first: a failure below may have moved some already
        for layer in layers { try layer.reserve(rows: rows) }
        try probabilities.reserve(rows * classes)
        try scoreGradient.reserve(rows * classes)
        reservedRows = rows
    }

    private func validate(x: UnsafePointer<Float>?, labels: UnsafePointer<Int32>?, rows: Int,
                          needLabels: Bool) throws -> (UnsafePointer<Float>, UnsafePointer<Int32>?) {
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
        var one: UnsafePointer<Float>? = x
        var length = Int64(rows * inputSize)
        var tensor: Int64 = 0, index: Int64 = 0
        if dk_find_nonfinite(1, &one, &length, dk_get_threads(), &tensor, &index) != 0 {
            let value = x[Int(index)]
            let what = value.isNaN ? "NaN" : (value < 0 ? "-Inf" : "Inf")
            throw DescentError(.numeric,
                "x contains \(what) at index \(index) (row \(Int(index) / inputSize), column \(Int(index) % inputSize))")
        }
        return (x, labels)
    }
}
