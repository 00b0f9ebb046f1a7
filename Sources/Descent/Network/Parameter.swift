/// A trainable tensor of a network, with its gradient: `W1`, `b1`, `gamma1`, `beta1`, ...
public final class Parameter {
    /// The book's name: W and b per affine layer, gamma and beta per batch-norm layer, 1-based.
    public let name: String
    /// [rows, cols] for weights (fan_in x fan_out), [count] for vectors.
    public let shape: [Int]
    public let value: FloatBuffer
    public let gradient: FloatBuffer
    /// Weights get weight decay; biases and batch-norm parameters do not (the book's rule).
    public let isWeight: Bool
    /// NUL-terminated copy of the name for C callers; lives as long as the parameter.
    private let cName: CheckedArray<CChar>
    public var cNamePointer: UnsafePointer<CChar> { UnsafePointer(cName.pointer) }

    /// Errors: `.outOfMemory`, the message starting with the parameter's name ("W1: cannot
    /// allocate ..."). What was allocated before the failure is freed with the properties.
    init(name: String, shape: [Int], isWeight: Bool) throws {
        self.name = name
        self.shape = shape
        self.isWeight = isWeight
        let count = shape.reduce(1, *)
        let bytes = Array(name.utf8CString)
        do {
            value = try FloatBuffer(count: count)
            gradient = try FloatBuffer(count: count)
            cName = try CheckedArray(count: bytes.count, for: "the name \(name)")
        } catch let error as DescentError {
            throw DescentError(error.status, "\(name): \(error.message)")
        }
        cName.pointer.update(from: bytes, count: bytes.count)
    }

    public var count: Int { value.count }
}
