#if canImport(Glibc)
import Glibc
#endif

/// An owned float array, 64-byte aligned, that never moves while it lives: C kernels and C
/// callers (zero-copy parameter access) hold pointers into it.
public final class FloatBuffer {
    public private(set) var pointer: UnsafeMutablePointer<Float>
    public private(set) var count: Int

    /// A zeroed buffer of `count` floats.
    public init(count: Int) throws {
        pointer = try Self.allocate(count)
        self.count = count
    }

    deinit { free(pointer) }

    /// Makes room for at least `count` floats. Growing reallocates (contents are lost, the
    /// pointer changes); a buffer already large enough is left alone, so steady-state training
    /// allocates nothing.
    public func reserve(_ count: Int) throws {
        guard count > self.count else { return }
        let grown = try Self.allocate(count)
        free(pointer)
        pointer = grown
        self.count = count
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    /// Sets every element to `value`.
    public func fill(_ value: Float) { pointer.update(repeating: value, count: count) }

    private static func allocate(_ count: Int) throws -> UnsafeMutablePointer<Float> {
        let bytes = max(64, (count * MemoryLayout<Float>.size + 63) / 64 * 64)
        guard count >= 0, let raw = aligned_alloc(64, bytes) else {
            throw DescentError(.outOfMemory, "cannot allocate \(count) floats")
        }
        memset(raw, 0, bytes)
        return raw.assumingMemoryBound(to: Float.self)
    }
}
