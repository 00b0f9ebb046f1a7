import CDescentKernels

/// Rows `rows` of a batch of `batch` rows: the part of a pass that one thread runs through every
/// layer (shards.c says why and how a batch is split).
struct Shard {
    /// 0..<count.
    let index: Int
    /// How many shards the batch has.
    let count: Int
    let rows: Range<Int>
    /// The whole batch's rows: means over the batch (the loss, batch-norm statistics) divide by it.
    /// In a data-parallel job, the global batch of all processes.
    let batch: Int
    /// The place of this process's row 0 in the global batch (0 without a process group).
    var rowOffset = 0
    /// Sums over the batch come from every process (`ProcessGroup`): batch norm reads the
    /// sums its `synchronize` made, and weight decay is added after the gradients' all-reduce.
    var synchronized = false
    /// The shards' gradient arenas, one after another `stride` floats apart, each with the
    /// parameter arena's layout; nil when the batch is one shard, whose gradients go straight
    /// into the parameters' own gradient buffers.
    let arenas: UnsafeMutablePointer<Float>?
    let stride: Int

    /// The whole batch as one shard, writing the parameters' own gradients.
    static func whole(rows: Int) -> Shard {
        Shard(index: 0, count: 1, rows: 0..<rows, batch: rows, arenas: nil, stride: 0)
    }

    /// Whether this shard adds weight decay's lambda*W to dW: one shard of one process does.
    var addsWeightDecay: Bool { index == 0 && !synchronized }

    /// Where this shard writes `p`'s gradient.
    func gradient(_ p: Parameter) -> UnsafeMutablePointer<Float> {
        arenas.map { $0 + index * stride + p.offset } ?? p.gradient.pointer
    }

    /// Every shard's gradient of `p`, `stride` floats apart (for sums in shard order).
    func gradients(_ p: Parameter) -> (first: UnsafePointer<Float>, stride: Int) {
        (UnsafePointer(arenas.map { $0 + p.offset } ?? p.gradient.pointer), stride)
    }

    /// Row `rows.lowerBound` of a [batch][width] matrix.
    func first<T>(_ matrix: UnsafePointer<T>, width: Int) -> UnsafePointer<T> { matrix + rows.lowerBound * width }
    func first<T>(_ matrix: UnsafeMutablePointer<T>, width: Int) -> UnsafeMutablePointer<T> {
        matrix + rows.lowerBound * width
    }
}

/// A stage of a layer's training pass: forward stage k or backward stage k.
enum PassStage {
    case forward(Int)
    case backward(Int)
}

/// One stage of a network's forward and backward pass over a batch.
///
/// Matrices are row-major [rows = batch][width]; a layer owns its output and input-gradient
/// buffers, which hold the whole batch. A pass runs shard by shard: `forward` and `backward`
/// read and write only their shard's rows, so shards may run on different threads at once (they
/// must not change the layer's own properties). A layer whose training pass needs the whole
/// batch (batch norm's statistics) splits it into stages: every shard finishes stage k before
/// any shard starts stage k + 1.
protocol Layer: AnyObject {
    /// Grows every buffer to hold `rows` rows split into `shards` shards (a no-op once large enough).
    func reserve(rows: Int, shards: Int) throws
    /// Where the forward pass on the batch `x` leaves its output: its own buffer, or x itself.
    func output(for x: UnsafePointer<Float>, training: Bool) -> UnsafePointer<Float>
    /// Where the backward pass leaves dLoss/dx [batch][input width]; nil when nothing below needs it.
    var inputGradient: UnsafeMutablePointer<Float>? { get }
    /// Stages of a training forward and of a backward pass (an evaluation forward has one).
    var forwardStages: Int { get }
    var backwardStages: Int { get }
    /// Called once before a pass, on one thread: draws what the whole batch shares (dropout's key).
    func prepare(training: Bool)
    /// Stage `stage` of the forward pass over the shard's rows of the batch x [batch][input width].
    func forward(_ x: UnsafePointer<Float>, _ shard: Shard, stage: Int, training: Bool)
    /// Stage `stage` of the backward pass: dy [batch][output width] -> `inputGradient` and the
    /// shard's parameter gradients. x is the forward pass's input. Only after a training forward.
    func backward(_ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, _ shard: Shard, stage: Int)
    /// Applies effects of a training forward that must wait until the whole step succeeded
    /// (batch-norm running averages).
    func commit()
    /// Drops such effects instead.
    func discard()
    /// In a data-parallel job, after every shard (`shards` describes them all) has run `stage`
    /// and before the next stage: sums what that one needs over the processes (batch norm's
    /// statistics). Called on one thread.
    func synchronize(after stage: PassStage, _ shards: Shard, group: ProcessGroup) throws
    /// False when a training forward produced non-finite statistics (batch norm).
    var statisticsAreFinite: Bool { get }
    /// The trainable tensors whose gradients the backward pass writes, in arena order.
    var parameters: [Parameter] { get }
}

extension Layer {
    var forwardStages: Int { 1 }
    var backwardStages: Int { 1 }
    func prepare(training: Bool) {}
    func commit() {}
    func discard() {}
    func synchronize(after stage: PassStage, _ shards: Shard, group: ProcessGroup) throws {}
    var statisticsAreFinite: Bool { true }
    var parameters: [Parameter] { [] }

    /// Room for `rows` rows as one shard: for using a layer on its own.
    func reserve(rows: Int) throws { try reserve(rows: rows, shards: 1) }

    /// The whole batch as one shard, every stage: for using a layer on its own.
    @discardableResult
    func forward(_ x: UnsafePointer<Float>, rows: Int, training: Bool) -> UnsafePointer<Float> {
        prepare(training: training)
        for stage in 0..<(training ? forwardStages : 1) { forward(x, .whole(rows: rows), stage: stage, training: training) }
        return output(for: x, training: training)
    }

    /// The backward pass of the whole batch as one shard; x is what `forward` was given.
    func backward(_ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, rows: Int) -> UnsafePointer<Float>? {
        for stage in 0..<backwardStages { backward(dy, input: x, .whole(rows: rows), stage: stage) }
        return inputGradient.map { UnsafePointer($0) }
    }
}
