import CDescentKernels

/// The hidden layers' activation function.
public enum Activation: String, Sendable, CaseIterable {
    case relu, sigmoid, tanh
}

/// ReLU, sigmoid or tanh, elementwise. Its output is what `activations(layer)` shows.
final class ActivationLayer: Layer {
    let function: Activation
    let width: Int
    let output = FloatBuffer()
    private let inputGradientBuffer = FloatBuffer()
    /// Rows of the last forward pass (the network records them: shards must not write here).
    var rows = 0

    init(_ function: Activation, width: Int) {
        self.function = function
        self.width = width
    }

    func reserve(rows: Int, shards: Int) throws {
        try output.reserve(rows * width)
        try inputGradientBuffer.reserve(rows * width)
    }

    func output(for x: UnsafePointer<Float>, training: Bool) -> UnsafePointer<Float> { UnsafePointer(output.pointer) }

    var inputGradient: UnsafeMutablePointer<Float>? { inputGradientBuffer.pointer }

    func forward(_ x: UnsafePointer<Float>, _ shard: Shard, stage: Int, training: Bool) {
        dk_activation_forward(function.code, shard.first(x, width: width), shard.first(output.pointer, width: width),
                              Int64(shard.rows.count * width))
    }

    func backward(_ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, _ shard: Shard, stage: Int) {
        dk_activation_backward(function.code, shard.first(output.pointer, width: width), shard.first(dy, width: width),
                               shard.first(inputGradientBuffer.pointer, width: width), Int64(shard.rows.count * width))
    }
}

extension Activation {
    /// The kernels' dk_activation_* code.
    var code: Int32 {
        switch self {
        case .relu: dk_activation_relu
        case .sigmoid: dk_activation_sigmoid
        case .tanh: dk_activation_tanh
        }
    }
}
