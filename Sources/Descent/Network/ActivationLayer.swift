import CDescentKernels

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
        let n = Int64(rows * width)
        switch function {
        case .relu: dk_relu_forward(x, output.pointer, n)
        case .sigmoid: dk_sigmoid_forward(x, output.pointer, n)
        case .tanh: dk_tanh_forward(x, output.pointer, n)
        }
        return UnsafePointer(output.pointer)
    }

    /// Notes a forward pass that another kernel ran into `output` (the one-sample path).
    func recordForward(rows: Int) { self.rows = rows }

    func backward(_ dy: UnsafePointer<Float>, rows: Int) -> UnsafePointer<Float>? {
        let n = Int64(rows * width)
        switch function {
        case .relu: dk_relu_backward(output.pointer, dy, inputGradient.pointer, n)
        case .sigmoid: dk_sigmoid_backward(output.pointer, dy, inputGradient.pointer, n)
        case .tanh: dk_tanh_backward(output.pointer, dy, inputGradient.pointer, n)
        }
        return UnsafePointer(inputGradient.pointer)
    }
}
