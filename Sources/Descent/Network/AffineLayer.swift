import CDescentKernels

/// y = x W + b, with W [fanIn][fanOut] and b [fanOut]; the math is affine.c's (BLAS for a
/// batch, vector kernels for one sample).
final class AffineLayer: Layer {
    let weight: Parameter
    let bias: Parameter
    let fanIn: Int
    let fanOut: Int
    /// The network's weight decay lambda: adds lambda*W to dW (the loss term is the network's).
    let weightDecay: Float
    /// The first layer's input gradient is never used: skipping it saves a third of its work.
    let needsInputGradient: Bool

    private let output = FloatBuffer()
    private let inputGradient = FloatBuffer()
    /// The forward sum's row blocks for one sample (affine.c).
    private let partials = FloatBuffer()
    private var input: UnsafePointer<Float>? = nil

    init(weight: Parameter, bias: Parameter, weightDecay: Float, needsInputGradient: Bool) {
        self.weight = weight
        self.bias = bias
        fanIn = weight.shape[0]
        fanOut = weight.shape[1]
        self.weightDecay = weightDecay
        self.needsInputGradient = needsInputGradient
    }

    func reserve(rows: Int) throws {
        try output.reserve(rows * fanOut)
        if needsInputGradient { try inputGradient.reserve(rows * fanIn) }
        try partials.reserve(Int(DK_ROW_BLOCKS) * fanOut)
    }

    func forward(_ x: UnsafePointer<Float>, rows: Int, training: Bool) -> UnsafePointer<Float> {
        input = x
        dk_affine_forward(x, Int64(rows), weight.value.pointer, bias.value.pointer, Int32(fanIn), Int32(fanOut),
                          partials.pointer, output.pointer)
        return UnsafePointer(output.pointer)
    }

    func backward(_ dy: UnsafePointer<Float>, rows: Int) -> UnsafePointer<Float>? {
        guard let x = input else { return nil }
        dk_affine_backward(x, dy, Int64(rows), weight.value.pointer, Int32(fanIn), Int32(fanOut), weightDecay,
                           weight.gradient.pointer, bias.gradient.pointer,
                           needsInputGradient ? inputGradient.pointer : nil)
        return needsInputGradient ? UnsafePointer(inputGradient.pointer) : nil
    }
}
