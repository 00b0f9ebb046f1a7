import CDescentKernels

/// y = x W + b, with W [fanIn][fanOut] and b [fanOut]; the math is affine.c's (BLAS for a
/// batch, vector kernels for one sample).
final class AffineLayer: Layer {
    let weight: Parameter
    let bias: Parameter
    let fanIn: Int
    let fanOut: Int
    /// The network's weight decay lambda: adds lambda*W to dW (the loss term is the network's).
    /// Shard 0 adds it, once for the batch (in a data-parallel job the network adds it after
    /// the gradients' all-reduce).
    let weightDecay: Float
    /// The first layer's input gradient is never used: skipping it saves a third of its work.
    let needsInputGradient: Bool

    let output = FloatBuffer()
    private let inputGradientBuffer = FloatBuffer()
    /// The forward sum's row blocks for one sample (affine.c); one sample is never split.
    private let partials = FloatBuffer()

    init(weight: Parameter, bias: Parameter, weightDecay: Float, needsInputGradient: Bool) {
        self.weight = weight
        self.bias = bias
        fanIn = weight.shape[0]
        fanOut = weight.shape[1]
        self.weightDecay = weightDecay
        self.needsInputGradient = needsInputGradient
    }

    func reserve(rows: Int, shards: Int) throws {
        try output.reserve(rows * fanOut)
        if needsInputGradient { try inputGradientBuffer.reserve(rows * fanIn) }
        try partials.reserve(Int(DK_ROW_BLOCKS) * fanOut)
    }

    func output(for x: UnsafePointer<Float>, training: Bool) -> UnsafePointer<Float> { UnsafePointer(output.pointer) }

    var parameters: [Parameter] { [weight, bias] }

    var inputGradient: UnsafeMutablePointer<Float>? { needsInputGradient ? inputGradientBuffer.pointer : nil }

    func forward(_ x: UnsafePointer<Float>, _ shard: Shard, stage: Int, training: Bool) {
        dk_affine_forward(shard.first(x, width: fanIn), Int64(shard.rows.count), weight.value.pointer,
                          bias.value.pointer, Int32(fanIn), Int32(fanOut), partials.pointer,
                          shard.first(output.pointer, width: fanOut))
    }

    func backward(_ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, _ shard: Shard, stage: Int) {
        dk_affine_backward(shard.first(x, width: fanIn), shard.first(dy, width: fanOut), Int64(shard.rows.count),
                           weight.value.pointer, Int32(fanIn), Int32(fanOut), shard.addsWeightDecay ? weightDecay : 0,
                           shard.gradient(weight), shard.gradient(bias),
                           inputGradient.map { shard.first($0, width: fanIn) })
    }
}
