/// One stage of a network's forward and backward pass over a batch.
///
/// Matrices are row-major [rows = batch][width]. A layer owns its output and input-gradient
/// buffers; the pointers it returns stay valid until its next forward/backward or reserve.
protocol Layer: AnyObject {
    /// Grows every buffer to hold `rows` rows (a no-op once large enough).
    func reserve(rows: Int) throws
    /// x [rows][input width] -> y [rows][output width].
    func forward(_ x: UnsafePointer<Float>, rows: Int, training: Bool) -> UnsafePointer<Float>
    /// dy [rows][output width] -> dx [rows][input width], or nil when nothing below needs it.
    /// Writes parameter gradients. Only after a training forward of the same rows.
    func backward(_ dy: UnsafePointer<Float>, rows: Int) -> UnsafePointer<Float>?
    /// Applies effects of a training forward that must wait until the whole step succeeded
    /// (batch-norm running averages).
    func commit()
    /// Drops such effects instead.
    func discard()
    /// False when a training forward produced non-finite statistics (batch norm).
    var statisticsAreFinite: Bool { get }
}

extension Layer {
    func commit() {}
    func discard() {}
    var statisticsAreFinite: Bool { true }
}
