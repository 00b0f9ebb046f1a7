import CDescentKernels

/// Inverted dropout: in training each unit is kept with probability 1-ratio and scaled by
/// 1/(1-ratio); evaluation is the identity. Masks come from the network's seeded generator.
final class DropoutLayer: Layer {
    let ratio: Float
    let width: Int
    private let rng: UnsafeMutablePointer<dk_rng>
    private let mask = FloatBuffer()
    private let output = FloatBuffer()
    private let inputGradient = FloatBuffer()

    init(ratio: Float, width: Int, rng: UnsafeMutablePointer<dk_rng>) {
        self.ratio = ratio
        self.width = width
        self.rng = rng
    }

    func reserve(rows: Int) throws {
        try mask.reserve(rows * width)
        try output.reserve(rows * width)
        try inputGradient.reserve(rows * width)
    }

    func forward(_ x: UnsafePointer<Float>, rows: Int, training: Bool) -> UnsafePointer<Float> {
        guard training else { return x }
        dk_dropout_forward(x, output.pointer, mask.pointer, Int64(rows * width), ratio, rng)
        return UnsafePointer(output.pointer)
    }

    func backward(_ dy: UnsafePointer<Float>, rows: Int) -> UnsafePointer<Float>? {
        dk_multiply(dy, mask.pointer, inputGradient.pointer, Int64(rows * width))
        return UnsafePointer(inputGradient.pointer)
    }
}
