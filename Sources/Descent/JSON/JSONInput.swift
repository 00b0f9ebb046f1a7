/// The bytes `JSONParser` reads: a text already in memory, or one read on demand through a
/// window of fixed size, so that a large text (a 100 MB safetensors header) is never in
/// memory at once and a bad one is refused after reading only as far as its first problem.
///
/// Offsets are absolute (from the start of the text). The window holds bytes
/// [start, end); `load` slides it forward, dropping the bytes before a given offset, so a
/// reader copies out what it still needs of them first.
struct JSONInput {
    /// Reads exactly `buffer.count` bytes of the text, starting at offset `at`, into `buffer`.
    typealias Read = (_ buffer: UnsafeMutableRawBufferPointer, _ at: Int) throws -> Void

    /// The length of the whole text.
    let count: Int
    /// The first offset held in the window.
    private(set) var start = 0
    private var window: UnsafeBufferPointer<UInt8>
    private let storage: Storage?
    private let read: Read?

    /// The whole text, in memory for as long as the input is used.
    init(_ text: UnsafeBufferPointer<UInt8>) {
        count = text.count
        window = text
        storage = nil
        read = nil
    }

    /// A text of `count` bytes read on demand through a window of `windowSize` bytes.
    init(count: Int, windowSize: Int = 1 << 16, read: @escaping Read) {
        self.count = count
        storage = Storage(capacity: max(16, windowSize))
        window = UnsafeBufferPointer(start: storage!.bytes.baseAddress, count: 0)
        self.read = read
    }

    /// The first offset past the window.
    var end: Int { start + window.count }

    /// The byte at `offset`, which must be in the window.
    subscript(offset: Int) -> UInt8 { window[offset - start] }

    /// The window's bytes [from, to).
    func bytes(_ from: Int, _ to: Int) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: window[(from - start)..<(to - start)])
    }

    /// Slides the window to start at `from` (in the window, or at its end) and fills it, so
    /// that at least `needed` bytes from `from` are in it unless the text ends before.
    /// Bytes before `from` are gone afterwards. Nothing happens for a text in memory.
    mutating func load(from: Int, needed: Int) throws {
        guard let storage, let read, from + needed > end, end < count else { return }
        let kept = end - from
        let size = min(max(needed, storage.bytes.count), count - from)
        if size > storage.bytes.count { storage.grow(to: size) }
        let base = storage.bytes.baseAddress!
        if kept > 0 { UnsafeMutableRawPointer(base).copyMemory(from: base + (from - start), byteCount: kept) }  // may overlap
        try read(UnsafeMutableRawBufferPointer(start: base + kept, count: size - kept), from + kept)
        start = from
        window = UnsafeBufferPointer(start: base, count: size)
    }

    /// The window's memory, owned by the input (and freed with it).
    private final class Storage {
        private(set) var bytes: UnsafeMutableBufferPointer<UInt8>

        init(capacity: Int) { bytes = .allocate(capacity: capacity) }

        /// A bigger buffer, for a reader that needs more bytes at once than the window holds;
        /// what was in the buffer is kept.
        func grow(to capacity: Int) {
            let bigger = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: capacity)
            _ = bigger.initialize(from: bytes)
            bytes.deallocate()
            bytes = bigger
        }

        deinit { bytes.deallocate() }
    }
}
