import CDescentKernels

/// An owned float array, 64-byte aligned, that never moves while it lives: C kernels and C
/// callers (zero-copy parameter access) hold pointers into it. Its memory comes from the
/// checked allocator (memory.c): running out is a `.outOfMemory` error, never a crash.
public final class FloatBuffer {
    public private(set) var pointer: UnsafeMutablePointer<Float>
    public private(set) var count: Int

    /// An empty buffer; allocates nothing, so it cannot fail (`reserve` gives it memory).
    public init() {
        pointer = dk_empty_floats()
        count = 0
    }

    /// A zeroed buffer of `count` floats.
    public init(count: Int) throws {
        pointer = try Self.allocate(count)
        self.count = count
    }

    deinit { release(pointer) }

    /// Makes room for at least `count` floats. Growing reallocates (contents are lost, the
    /// pointer changes); a buffer already large enough is left alone, so steady-state training
    /// allocates nothing. On failure the buffer is as it was.
    public func reserve(_ count: Int) throws {
        guard count > self.count else { return }
        let grown = try Self.allocate(count)
        release(pointer)
        pointer = grown
        self.count = count
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    /// Sets every element to `value`.
    public func fill(_ value: Float) { pointer.update(repeating: value, count: count) }

    /// Zero floats take no memory: they point at the shared empty block.
    private static func allocate(_ count: Int) throws -> UnsafeMutablePointer<Float> {
        guard count != 0 else { return dk_empty_floats() }
        guard count > 0, let raw = dk_alloc_zeroed(Int64(count), Int64(MemoryLayout<Float>.size)) else {
            let bytes = count.multipliedReportingOverflow(by: MemoryLayout<Float>.size)
            throw DescentError(.outOfMemory,
                "cannot allocate \(count) floats (\(bytes.overflow ? "more than \(Int.max)" : String(bytes.partialValue)) bytes)")
        }
        return raw.assumingMemoryBound(to: Float.self)
    }

    private func release(_ memory: UnsafeMutablePointer<Float>) {
        if memory != dk_empty_floats() { dk_free(memory) }
    }
}
