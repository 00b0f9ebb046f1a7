import CDescentKernels

/// y = x W + b, with W [fanIn][fanOut] and b [fanOut]; matrix products through BLAS.
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
    }

    func forward(_ x: UnsafePointer<Float>, rows: Int, training: Bool) -> UnsafePointer<Float> {
        input = x
        // y[rows][fanOut] = b (broadcast), then y += x[rows][fanIn] * W[fanIn][fanOut]
        dk_broadcast_rows(output.pointer, bias.value.pointer, Int64(rows), Int64(fanOut))
        dk_sgemm(0, 0, Int32(rows), Int32(fanOut), Int32(fanIn), 1, x, Int32(fanIn),
                 weight.value.pointer, Int32(fanOut), 1, output.pointer, Int32(fanOut))
        return UnsafePointer(output.pointer)
    }

    func backward(_ dy: UnsafePointer<Float>, rows: Int) -> UnsafePointer<Float>? {
        guard let x = input else { return nil }
        // dW[fanIn][fanOut] = x^T[fanIn][rows] * dy[rows][fanOut] (+ lambda*W, written first)
        var beta: Float = 0
        if weightDecay > 0 {
            dk_scale(weight.value.pointer, weightDecay, weight.gradient.pointer, Int64(weight.count))
            beta = 1
        }
        dk_sgemm(1, 0, Int32(fanIn), Int32(fanOut), Int32(rows), 1, x, Int32(fanIn), dy, Int32(fanOut),
                 beta, weight.gradient.pointer, Int32(fanOut))
        // db[fanOut] = sum over rows of dy
        dk_column_sums(dy, Int64(rows), Int64(fanOut), bias.gradient.pointer)
        guard needsInputGradient else { return nil }
        // dx[rows][fanIn] = dy[rows][fanOut] * W^T[fanOut][fanIn]
        dk_sgemm(0, 1, Int32(rows), Int32(fanIn), Int32(fanOut), 1, dy, Int32(fanOut),
                 weight.value.pointer, Int32(fanOut), 0, inputGradient.pointer, Int32(fanIn))
        return UnsafePointer(inputGradient.pointer)
    }
}
