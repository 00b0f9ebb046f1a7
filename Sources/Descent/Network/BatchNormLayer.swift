import CDescentKernels

/// Batch normalisation per feature (Ioffe & Szegedy 2015), the book's form: batch mean and
/// biased variance in training, running averages (momentum 0.9) in evaluation, eps 1e-6,
/// learnable gamma (starts at 1) and beta (starts at 0).
final class BatchNormLayer: Layer {
    static let eps: Float = 1e-6
    static let momentum: Float = 0.9

    let gamma: Parameter
    let beta: Parameter
    /// Running averages for evaluation: mean starts at 0, variance at 1.
    let runningMean: FloatBuffer
    let runningVariance: FloatBuffer
    let width: Int

    private let batchMean: FloatBuffer
    private let batchVariance: FloatBuffer
    private let inverseStd: FloatBuffer
    private let normalized = FloatBuffer()
    private let output = FloatBuffer()
    private let inputGradient = FloatBuffer()
    /// A training forward whose statistics have not yet gone into the running averages.
    private var pending = false

    init(gamma: Parameter, beta: Parameter, runningMean: FloatBuffer, runningVariance: FloatBuffer) throws {
        self.gamma = gamma
        self.beta = beta
        self.runningMean = runningMean
        self.runningVariance = runningVariance
        width = gamma.count
        batchMean = try FloatBuffer(count: width)
        batchVariance = try FloatBuffer(count: width)
        inverseStd = try FloatBuffer(count: width)
    }

    func reserve(rows: Int) throws {
        try normalized.reserve(rows * width)
        try output.reserve(rows * width)
        try inputGradient.reserve(rows * width)
    }

    func forward(_ x: UnsafePointer<Float>, rows: Int, training: Bool) -> UnsafePointer<Float> {
        if training {
            dk_batchnorm_forward_train(x, Int64(rows), Int64(width), gamma.value.pointer, beta.value.pointer,
                                       Self.eps, batchMean.pointer, batchVariance.pointer, inverseStd.pointer,
                                       normalized.pointer, output.pointer)
            pending = true
        } else {
            dk_batchnorm_forward_eval(x, Int64(rows), Int64(width), gamma.value.pointer, beta.value.pointer,
                                      Self.eps, runningMean.pointer, runningVariance.pointer, output.pointer)
        }
        return UnsafePointer(output.pointer)
    }

    func backward(_ dy: UnsafePointer<Float>, rows: Int) -> UnsafePointer<Float>? {
        dk_batchnorm_backward(dy, normalized.pointer, inverseStd.pointer, gamma.value.pointer, Int64(rows),
                              Int64(width), gamma.gradient.pointer, beta.gradient.pointer, inputGradient.pointer)
        return UnsafePointer(inputGradient.pointer)
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
