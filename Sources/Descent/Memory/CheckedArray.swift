import CDescentKernels

/// A fixed-size array of plain values in memory from the checked allocator (memory.c), freed
/// when the object goes. Raw memory a network or an optimizer owns lives in one of these, not
/// behind a bare pointer: when an initializer throws halfway, Swift releases the stored
/// properties already set (a class's deinit does not run then), and this frees its memory.
///
/// The memory never moves and starts zeroed (nil for optional pointers).
final class CheckedArray<Element: BitwiseCopyable> {
    let pointer: UnsafeMutablePointer<Element>
    let count: Int

    /// `count` zeroed elements; `.outOfMemory` ("cannot allocate N bytes for what") if the
    /// allocator says no.
    init(count: Int, for what: @autoclosure () -> String) throws {
        let size = MemoryLayout<Element>.stride
        guard let raw = dk_alloc_zeroed(Int64(count), Int64(size)) else {
            let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
            throw DescentError(.outOfMemory,
                "cannot allocate \(overflow ? "more than \(Int.max)" : String(bytes)) bytes for \(what())")
        }
        pointer = raw.bindMemory(to: Element.self, capacity: max(count, 1))
        self.count = count
    }

    deinit { dk_free(pointer) }
}
