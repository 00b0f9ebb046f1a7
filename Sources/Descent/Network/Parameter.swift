/// A trainable tensor of a network, with its gradient: `W1`, `b1`, `gamma1`, `beta1`, ...
/// Its value and gradient are views into the network's `ParameterArena`.
public final class Parameter {
    /// The book's name: W and b per affine layer, gamma and beta per batch-norm layer, 1-based.
    public let name: String
    /// [rows, cols] for weights (fan_in x fan_out), [count] for vectors.
    public let shape: [Int]
    /// Floats from the start of the arena to this tensor (a multiple of 16: 64 bytes), the same
    /// in the value and the gradient arena.
    public let offset: Int
    /// In a network: non-owning views into `ParameterArena.values` and `.gradients`.
    public let value: FloatBuffer
    public let gradient: FloatBuffer
    /// Weights get weight decay; biases and batch-norm parameters do not (the book's rule).
    public let isWeight: Bool
    /// NUL-terminated copy of the name for C callers; lives as long as the parameter.
    private let cName: CheckedArray<CChar>
    public var cNamePointer: UnsafePointer<CChar> { UnsafePointer(cName.pointer) }

    /// The tensor `view` describes, inside `arena`. Errors: `.outOfMemory` for the name's copy,
    /// the message starting with the parameter's name ("W1: cannot allocate ...").
    convenience init(_ view: ParameterArena.View, in arena: ParameterArena) throws {
        try self.init(name: view.name, shape: view.shape, offset: view.offset, isWeight: view.isWeight,
                      value: FloatBuffer(viewing: arena.values, offset: view.offset, count: view.count),
                      gradient: FloatBuffer(viewing: arena.gradients, offset: view.offset, count: view.count))
    }

    /// A parameter with zeroed memory of its own, outside any network: for testing a layer alone.
    convenience init(name: String, shape: [Int], isWeight: Bool) throws {
        let count = shape.reduce(1, *)
        try self.init(name: name, shape: shape, offset: 0, isWeight: isWeight,
                      value: try FloatBuffer(count: count), gradient: try FloatBuffer(count: count))
    }

    private init(name: String, shape: [Int], offset: Int, isWeight: Bool, value: FloatBuffer,
                 gradient: FloatBuffer) throws {
        self.name = name
        self.shape = shape
        self.offset = offset
        self.isWeight = isWeight
        self.value = value
        self.gradient = gradient
        let bytes = Array(name.utf8CString)
        cName = try withErrorPrefix(name) { try CheckedArray(count: bytes.count, for: "the name \(name)") }
        cName.pointer.update(from: bytes, count: bytes.count)
    }

    public var count: Int { value.count }
}
