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
    private let inputGradient = FloatBuffer()
    /// Rows of the last forward pass.
    private(set) var rows = 0

    init(_ function: Activation, width: Int) {
        self.function = function
        self.width = width
    }

    func reserve(rows: Int) throws {
        try output.reserve(rows * width)
        try inputGradient.reserve(rows * width)
    }

    func forward(_ x: UnsafePointer<Float>, rows: Int, training: Bool) -> UnsafePointer<Float> {
        self.rows = rows
        dk_activation_forward(function.code, x, output.pointer, Int64(rows * width))
        return UnsafePointer(output.pointer)
    }

    /// Notes a forward pass that another kernel ran into `output` (the batch-1 schedule).
    func recordForward(rows: Int) { self.rows = rows }

    func backward(_ dy: UnsafePointer<Float>, rows: Int) -> UnsafePointer<Float>? {
        dk_activation_backward(function.code, output.pointer, dy, inputGradient.pointer, Int64(rows * width))
        return UnsafePointer(inputGradient.pointer)
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
