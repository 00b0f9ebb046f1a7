import CDescentKernels

/// Batch normalisation per feature (Ioffe & Szegedy 2015), the book's form: batch mean and
/// biased variance in training, running averages (momentum 0.9) in evaluation, eps 1e-6,
/// learnable gamma (starts at 1) and beta (starts at 0).
///
/// The statistics are the whole batch's however it is split into shards (batchnorm.c): the
/// training forward has three stages (column sums; the mean and the squared deviations from
/// it; the variance and the normalisation), the backward two (dgamma and dbeta; dx). Each shard
/// adds the shards' sums in shard order into its own copy of the result, so no shard waits for
/// another to publish it.
final class BatchNormLayer: Layer {
    static let eps: Float = 1e-6
    static let momentum: Float = 0.9

    let gamma: Parameter
    let beta: Parameter
    /// Running averages for evaluation: mean starts at 0, variance at 1.
    let runningMean: FloatBuffer
    let runningVariance: FloatBuffer
    let width: Int

    /// Per shard [shards][width]: its rows' sums, then its copy of the whole batch's results.
    private let columnSums = FloatBuffer()
    private let deviationSums = FloatBuffer()
    private let batchMean = FloatBuffer()
    private let batchVariance = FloatBuffer()
    private let inverseStd = FloatBuffer()
    private let gammaGradient = FloatBuffer()
    private let betaGradient = FloatBuffer()
    /// A data-parallel job's sums over every process's rows (`synchronize`): column sums,
    /// squared deviations, then dgamma and dbeta ([2][width]).
    private let globalColumnSums: FloatBuffer
    private let globalDeviationSums: FloatBuffer
    private let globalParameterSums: FloatBuffer
    private let normalized = FloatBuffer()
    private let output = FloatBuffer()
    private let inputGradientBuffer = FloatBuffer()
    /// A training forward whose statistics have not yet gone into the running averages.
    private var pending = false

    init(gamma: Parameter, beta: Parameter, runningMean: FloatBuffer, runningVariance: FloatBuffer) throws {
        self.gamma = gamma
        self.beta = beta
        self.runningMean = runningMean
        self.runningVariance = runningVariance
        width = gamma.count
        globalColumnSums = try FloatBuffer(count: width)
        globalDeviationSums = try FloatBuffer(count: width)
        globalParameterSums = try FloatBuffer(count: 2 * width)
        try reserve(rows: 0, shards: 1)   // the statistics exist before any pass (commit reads them)
    }

    func reserve(rows: Int, shards: Int) throws {
        for perShard in [columnSums, deviationSums, batchMean, batchVariance, inverseStd, gammaGradient, betaGradient] {
            try perShard.reserve(shards * width)
        }
        try normalized.reserve(rows * width)
        try output.reserve(rows * width)
        try inputGradientBuffer.reserve(rows * width)
    }

    func output(for x: UnsafePointer<Float>, training: Bool) -> UnsafePointer<Float> { UnsafePointer(output.pointer) }

    var inputGradient: UnsafeMutablePointer<Float>? { inputGradientBuffer.pointer }

    var parameters: [Parameter] { [gamma, beta] }

    var forwardStages: Int { 3 }
    var backwardStages: Int { 2 }

    func prepare(training: Bool) {
        if training { pending = true }
    }

    /// Shard `s`'s part [width] of a per-shard buffer.
    private func part(_ buffer: FloatBuffer, _ s: Int) -> UnsafeMutablePointer<Float> { buffer.pointer + s * width }

    func forward(_ x: UnsafePointer<Float>, _ shard: Shard, stage: Int, training: Bool) {
        let rows = Int64(shard.rows.count), cols = Int64(width), s = shard.index
        let x = shard.first(x, width: width), y = shard.first(output.pointer, width: width)
        guard training else {
            dk_batchnorm_forward_eval(x, rows, cols, gamma.value.pointer, beta.value.pointer, Self.eps,
                                      runningMean.pointer, runningVariance.pointer, y)
            return
        }
        let inverseBatch = 1 / Float(shard.batch)
        let mean = part(batchMean, s)
        switch stage {
        case 0:
            dk_column_sums(x, rows, cols, part(columnSums, s))
        case 1:
            batchSum(shard, global: globalColumnSums.pointer, local: columnSums.pointer, stride: width, scale: inverseBatch,
                     into: mean)
            dk_batchnorm_deviation_sums(x, rows, cols, mean, part(deviationSums, s))
        default:
            batchSum(shard, global: globalDeviationSums.pointer, local: deviationSums.pointer, stride: width,
                     scale: inverseBatch, into: part(batchVariance, s))
            dk_batchnorm_inverse_std(part(batchVariance, s), cols, Self.eps, part(inverseStd, s))
            dk_batchnorm_normalize(x, rows, cols, mean, part(inverseStd, s), gamma.value.pointer, beta.value.pointer,
                                   shard.first(normalized.pointer, width: width), y)
        }
    }

    func backward(_ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, _ shard: Shard, stage: Int) {
        let rows = Int64(shard.rows.count), cols = Int64(width), s = shard.index
        let dy = shard.first(dy, width: width), xhat = shard.first(normalized.pointer, width: width)
        if stage == 0 {
            dk_batchnorm_parameter_sums(dy, xhat, rows, cols, shard.gradient(gamma), shard.gradient(beta))
            return
        }
        // The whole batch's dgamma and dbeta: the shards' sums added in shard order, as the
        // gradients themselves are.
        let g = shard.gradients(gamma), b = shard.gradients(beta)
        batchSum(shard, global: globalParameterSums.pointer, local: g.first, stride: g.stride, scale: 1,
                 into: part(gammaGradient, s))
        batchSum(shard, global: globalParameterSums.pointer + width, local: b.first, stride: b.stride, scale: 1,
                 into: part(betaGradient, s))
        dk_batchnorm_input_gradient(dy, xhat, part(inverseStd, s), gamma.value.pointer, rows, cols, Float(shard.batch),
                                    part(gammaGradient, s), part(betaGradient, s),
                                    shard.first(inputGradientBuffer.pointer, width: width))
    }

    /// `scale` times the whole batch's sum into `out`: the processes' sum that `synchronize`
    /// left in `global`, else this process's shards' blocks (`stride` floats apart) in shard order.
    private func batchSum(_ shard: Shard, global: UnsafePointer<Float>, local: UnsafePointer<Float>, stride: Int,
                          scale: Float, into out: UnsafeMutablePointer<Float>) {
        let (first, count) = shard.synchronized ? (global, 1) : (local, shard.count)
        dk_sum_blocks(first, Int64(stride), Int32(count), Int64(width), scale, out)
    }

    /// The sums the next stage needs, over this process's shards in shard order, then over the
    /// processes: column sums after forward stage 0, squared deviations after stage 1, dgamma
    /// and dbeta after backward stage 0.
    func synchronize(after stage: PassStage, _ shards: Shard, group: ProcessGroup) throws {
        let cols = Int64(width), count = Int32(shards.count)
        switch stage {
        case .forward(0):
            dk_sum_blocks(columnSums.pointer, cols, count, cols, 1, globalColumnSums.pointer)
            try group.sum(globalColumnSums.pointer, width)
        case .forward(1):
            dk_sum_blocks(deviationSums.pointer, cols, count, cols, 1, globalDeviationSums.pointer)
            try group.sum(globalDeviationSums.pointer, width)
        case .backward(0):
            let g = shards.gradients(gamma), b = shards.gradients(beta)
            dk_sum_blocks(g.first, Int64(g.stride), count, cols, 1, globalParameterSums.pointer)
            dk_sum_blocks(b.first, Int64(b.stride), count, cols, 1, globalParameterSums.pointer + width)
            try group.sum(globalParameterSums.pointer, 2 * width)
        default:
            break
        }
    }

    func commit() {
        guard pending else { return }
        dk_batchnorm_update_running(batchMean.pointer, batchVariance.pointer, Int64(width), Self.momentum,
                                    runningMean.pointer, runningVariance.pointer)
        pending = false
    }

    func discard() { pending = false }

    /// False after a training forward whose batch mean or variance overflowed: committing
    /// them would poison every later evaluation.
    var statisticsAreFinite: Bool {
        guard pending else { return true }
        for c in 0..<width where !batchMean.pointer[c].isFinite || !batchVariance.pointer[c].isFinite { return false }
        return true
    }
}
