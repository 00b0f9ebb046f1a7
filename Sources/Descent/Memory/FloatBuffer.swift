import CDescentKernels

/// A float array, 64-byte aligned, that never moves while it lives: C kernels and C callers
/// (zero-copy parameter access) hold pointers into it. Either it owns its memory, which comes
/// from the checked allocator (memory.c): running out is a `.outOfMemory` error, never a
/// crash; or it is a view into another buffer (a tensor inside a `ParameterArena`), which it
/// keeps alive and never frees or grows.
public final class FloatBuffer {
    public private(set) var pointer: UnsafeMutablePointer<Float>
    public private(set) var count: Int
    /// The buffer a view borrows its memory from; nil when this buffer owns its memory.
    public let owner: FloatBuffer?

    /// An empty buffer; allocates nothing, so it cannot fail (`reserve` gives it memory).
    public init() {
        pointer = dk_empty_floats()
        count = 0
        owner = nil
    }

    /// A zeroed buffer of `count` floats.
    public init(count: Int) throws {
        pointer = try Self.allocate(count)
        self.count = count
        owner = nil
    }

    /// A view of `count` floats of `owner` from float `offset` on: it shares the memory (writes
    /// through either are seen by both), keeps `owner` alive, and frees nothing. The range must
    /// lie inside `owner`; views are made by the library (ParameterArena), never from user input.
    public init(viewing owner: FloatBuffer, offset: Int, count: Int) {
        precondition(offset >= 0 && count >= 0 && offset <= owner.count - count, "view outside its buffer")
        pointer = owner.pointer + offset
        self.count = count
        self.owner = owner
    }

    public var isView: Bool { owner != nil }

    deinit { if owner == nil { release(pointer) } }

    /// Makes room for at least `count` floats. Growing reallocates (contents are lost, the
    /// pointer changes); a buffer already large enough is left alone, so steady-state training
    /// allocates nothing. On failure the buffer is as it was. A view cannot grow (its memory
    /// is its owner's): asking it to is an error.
    public func reserve(_ count: Int) throws {
        guard count > self.count else { return }
        guard owner == nil else {
            throw DescentError(.invalidArgument, "a view of \(self.count) floats cannot grow to \(count)")
        }
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
