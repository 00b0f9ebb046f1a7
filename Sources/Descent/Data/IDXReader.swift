import CDescentKernels

#if canImport(Glibc)
import Glibc
#endif

/// A labelled data set in memory: `count` samples of `features` floats each.
///
/// `images` is [count][features] row-major with pixels scaled to [0, 1] (byte / 255);
/// `labels` holds one class index per sample (0...255 as stored in the file).
public struct Dataset: Sendable {
    public let images: [Float]
    public let labels: [Int32]
    public let count: Int
    public let features: Int
    /// The shape of one sample as stored, e.g. [28, 28]; its product is `features`.
    public let sampleShape: [Int]

    /// Where Debian's `dataset-fashion-mnist` installs Fashion-MNIST.
    public static let fashionMNISTDirectory = "/usr/share/datasets/fashion-mnist"

    /// Loads an image file and a label file in IDX (MNIST) format, raw or gzip-compressed
    /// (recognised by its magic bytes, not by name). Every header field is validated: magic,
    /// data type (unsigned byte), dimension counts (images >= 2, labels 1), dimensions > 0, at
    /// most 2^31 elements, equal counts, and the exact (decompressed) file length.
    ///
    /// Errors (`DescentError`): `.notFound` (a file does not exist), `.io` (a file cannot be
    /// read), `.format` (anything wrong with the contents; the message names the file and the
    /// field), `.outOfMemory`.
    public static func loadIDX(images imagesPath: String, labels labelsPath: String) throws -> Dataset {
        let raw = try IDXReader.loadPair(images: imagesPath, labels: labelsPath)
        let images = [Float](unsafeUninitializedCapacity: raw.images.count) { buffer, initialized in
            dk_bytes_to_unit_floats(raw.images.bytes, buffer.baseAddress, Int64(raw.images.count))
            initialized = raw.images.count
        }
        let labels = [Int32](unsafeUninitializedCapacity: raw.labels.count) { buffer, initialized in
            dk_bytes_to_int32(raw.labels.bytes, buffer.baseAddress, Int64(raw.labels.count))
            initialized = raw.labels.count
        }
        return Dataset(images: images, labels: labels, count: raw.count, features: raw.features,
                       sampleShape: raw.sampleShape)
    }

    /// Fashion-MNIST's training (60000) or test (10000) split from `directory`, which holds
    /// `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` (gzip preferred when both exist).
    public static func fashionMNIST(train: Bool, directory: String = fashionMNISTDirectory) throws -> Dataset {
        let split = train ? "train" : "t10k"
        func file(_ name: String) -> String {
            let plain = "\(directory)/\(split)-\(name)-ubyte"
            return access(plain + ".gz", F_OK) == 0 ? plain + ".gz" : plain
        }
        return try loadIDX(images: file("images-idx3"), labels: file("labels-idx1"))
    }

    /// `loadIDX` for the C API: the arrays come from the checked allocator (64-byte aligned,
    /// memory.c) and are owned by the caller, who releases each with `free`.
    public static func loadIDXUnmanaged(images imagesPath: String, labels labelsPath: String) throws
        -> (images: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>, count: Int, features: Int)
    {
        let raw = try IDXReader.loadPair(images: imagesPath, labels: labelsPath)
        let images: UnsafeMutablePointer<Float> = try allocate(raw.images.count, what: "image floats")
        let labels: UnsafeMutablePointer<Int32>
        do {
            labels = try allocate(raw.labels.count, what: "labels")
        } catch {
            dk_free(images)
            throw error
        }
        dk_bytes_to_unit_floats(raw.images.bytes, images, Int64(raw.images.count))
        dk_bytes_to_int32(raw.labels.bytes, labels, Int64(raw.labels.count))
        return (images, labels, raw.count, raw.features)
    }

    private static func allocate<T>(_ count: Int, what: String) throws -> UnsafeMutablePointer<T> {
        guard let raw = dk_alloc_zeroed(Int64(count), Int64(MemoryLayout<T>.stride)) else {
            throw DescentError(.outOfMemory, "cannot allocate \(count) \(what) (\(count * MemoryLayout<T>.stride) bytes)")
        }
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }
}

/// Reading IDX files: "magic" (two zero bytes, a type byte, a dimension count n), n big-endian
/// uint32 dimensions, then the data. Only type 0x08 (unsigned byte) is accepted.
///
/// A file's length is checked before its data are read into memory: for raw files against
/// the file size, for gzip files by decompressing at most one byte more than the header
/// describes into a buffer that grows with the data actually present. A header that lies
/// about its size therefore costs memory in proportion to the real data, never to the claim,
/// and a decompression bomb stops at the claimed size plus a bounded look-ahead.
enum IDXReader {
    /// The most elements one file may hold (2^31).
    static let maxElements = 1 << 31
    /// How far past the expected end a gzip file's extra bytes are counted for the message.
    static let trailingCountLimit = 16 << 20
    /// The first buffer for data whose length is not known in advance (gzip, pipes).
    static let initialStreamCapacity = 16 << 20

    enum Role: String {
        case images, labels
    }

    struct Pair {
        let images: ByteStorage
        let labels: ByteStorage
        let count: Int
        let features: Int
        let sampleShape: [Int]
    }

    /// Opens both files and validates both headers (and the counts against each other) before
    /// reading either file's data.
    static func loadPair(images imagesPath: String, labels labelsPath: String) throws -> Pair {
        let imageFile = try IDXFile(path: imagesPath, role: .images)
        let labelFile = try IDXFile(path: labelsPath, role: .labels)
        let count = imageFile.dimensions[0]
        guard count == labelFile.dimensions[0] else {
            throw DescentError(.format,
                "images file '\(imagesPath)' holds \(count) images but labels file '\(labelsPath)' holds "
                + "\(labelFile.dimensions[0]) labels; the counts must be equal")
        }
        let shape = Array(imageFile.dimensions.dropFirst())
        return Pair(images: try imageFile.readData(), labels: try labelFile.readData(), count: count,
                    features: shape.reduce(1, *), sampleShape: shape)
    }

    /// A single IDX file: opened, its header read and validated on init. zlib reads both
    /// forms: gzip is recognised by its magic bytes 1f 8b, whatever the file is called, and any
    /// other file is read as it is (zlib's transparent mode).
    final class IDXFile {
        let path: String
        let role: Role
        private(set) var dimensions: [Int] = []
        private(set) var dataBytes = 0
        private var gzip: OpaquePointer?
        /// The exact size of a regular file that is not gzip; nil for gzip and for pipes.
        private var fileSize: Int?
        /// Known after the first read: whether zlib is decompressing.
        private(set) var isGzip = false

        var headerBytes: Int { 4 + 4 * dimensions.count }

        init(path: String, role: Role) throws {
            self.path = path
            self.role = role
            try open()
            try readHeader()
        }

        deinit { dk_gzip_close(gzip) }

        /// "images file '/path': problem".
        private func error(_ status: Status, _ problem: String) -> DescentError {
            DescentError(status, "\(role.rawValue) file '\(path)': \(problem)")
        }

        private func systemError(_ action: String, _ code: Int32) -> DescentError {
            let status: Status = code == ENOENT || code == ENOTDIR ? .notFound : code == ENOMEM ? .outOfMemory : .io
            return error(status, "\(action): \(String(cString: strerror(code)))")
        }

        private func open() throws {
            var fd: Int32
            repeat { fd = Glibc.open(path, O_RDONLY | O_CLOEXEC) } while fd < 0 && errno == EINTR
            guard fd >= 0 else { throw systemError("cannot open", errno) }
            // zlib only allocates here (it reads nothing yet); from now on it owns fd.
            guard let handle = dk_gzip_open_fd(fd) else {
                close(fd)
                throw error(.outOfMemory, "cannot allocate a zlib stream")
            }
            gzip = handle
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw systemError("cannot stat", errno) }
            let type = info.st_mode & S_IFMT
            guard type != S_IFDIR else { throw error(.io, "is a directory, not a file") }
            if type == S_IFREG { fileSize = Int(info.st_size) }
        }

        // MARK: reading

        /// Reads up to `count` bytes, stopping early only at the end of the data.
        private func read(into buffer: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
            let got = dk_gzip_read(gzip, buffer, Int64(count))
            guard got < 0 else { return Int(got) }
            var kind: Int32 = 0
            let reason = String(cString: dk_gzip_error(gzip, &kind))
            switch kind {
            case dk_gzip_io_error: throw error(.io, "cannot read: \(reason)")
            case dk_gzip_memory_error: throw error(.outOfMemory, "zlib: \(reason)")
            default: throw error(.format, "corrupt gzip data: \(reason)")
            }
        }

        /// "N bytes" or "N bytes after decompression".
        private func size(_ bytes: Int) -> String {
            isGzip ? "\(bytes) bytes after decompression" : "\(bytes) bytes"
        }

        private func truncated(_ problem: String) -> DescentError {
            DescentError(.format, "\(role.rawValue) file '\(path)' is truncated: \(problem)")
        }

        private var expectedMagic: String {
            role == .images ? "0x00000803 (unsigned bytes, 3 dimensions: count x rows x columns)"
                            : "0x00000801 (unsigned bytes, 1 dimension: count)"
        }

        private func readHeader() throws {
            var magic = [UInt8](repeating: 0, count: 4)
            let got = try magic.withUnsafeMutableBytes { try read(into: $0.baseAddress!, 4) }
            isGzip = dk_gzip_is_raw(gzip) == 0
            if isGzip { fileSize = nil }
            guard got == 4 else {
                throw truncated("\(size(got)), too short for the 4-byte IDX magic (expected \(expectedMagic))")
            }
            let value = magic.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let shown = "magic is 0x\(hex(value, digits: 8))"
            guard magic[0] == 0, magic[1] == 0 else {
                throw error(.format, "\(shown), expected \(expectedMagic): not an IDX file (its first two bytes must be zero)")
            }
            guard magic[2] == 0x08 else {
                throw error(.format,
                    "\(shown): data type 0x\(hex(magic[2], digits: 2)) (\(typeName(magic[2]))) is not supported, "
                    + "only 0x08 (unsigned byte); expected \(expectedMagic)")
            }
            let rank = Int(magic[3])
            switch role {
            case .images where rank < 2:
                throw error(.format,
                    "\(shown): \(rank) dimension\(rank == 1 ? "" : "s"), but images need at least 2 "
                    + "(count and the image's shape); expected \(expectedMagic)")
            case .labels where rank != 1:
                throw error(.format, "\(shown): \(rank) dimensions, but labels need exactly 1 (count); expected \(expectedMagic)")
            default: break
            }

            var raw = [UInt8](repeating: 0, count: 4 * rank)
            let gotDims = try raw.withUnsafeMutableBytes { try read(into: $0.baseAddress!, 4 * rank) }
            guard gotDims == 4 * rank else {
                throw truncated("\(size(4 + gotDims)), but its \(rank) dimensions need a \(4 + 4 * rank)-byte header")
            }
            dimensions = (0..<rank).map { i in
                Int(raw[4 * i..<4 * i + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            }
            if let zero = dimensions.firstIndex(of: 0) {
                throw error(.format,
                    "dimension \(zero + 1) of \(rank) (\(dimensionName(zero))) is 0; every dimension must be at least 1 "
                    + "(dimensions \(shapeText))")
            }
            var elements = 1
            for d in dimensions {
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow, product <= IDXReader.maxElements else {
                    throw error(.format,
                        "dimensions \(shapeText) describe more than \(IDXReader.maxElements) (2^31) elements, the most supported")
                }
                elements = product
            }
            dataBytes = elements

            // A raw regular file's length is known now: check it before anything is allocated.
            if let fileSize {
                let expected = headerBytes + dataBytes
                if fileSize < expected {
                    throw truncated("\(size(fileSize)), expected \(expected) (\(layoutText))")
                } else if fileSize > expected {
                    throw trailing(String(fileSize), expected: expected)
                }
            }
        }

        private var shapeText: String { dimensions.map(String.init).joined(separator: " x ") }
        private var layoutText: String { "\(headerBytes)-byte header + \(dataBytes) data bytes for \(shapeText)" }

        private func trailing(_ actual: String, expected: Int) -> DescentError {
            DescentError(.format,
                "\(role.rawValue) file '\(path)' has \(actual) bytes\(isGzip ? " after decompression" : ""), more than the \(expected) expected "
                + "(\(layoutText)): extra bytes after the data")
        }

        private func dimensionName(_ index: Int) -> String {
            if index == 0 { return role == .images ? "the image count" : "the label count" }
            if dimensions.count == 3 { return index == 1 ? "rows" : "columns" }
            return "sample dimension \(index)"
        }

        /// Reads exactly `dataBytes` bytes and checks that nothing follows them.
        func readData() throws -> ByteStorage {
            let expected = headerBytes + dataBytes
            let storage = ByteStorage()
            // Room for one byte past the data, to see whether the file goes on. Memory grows
            // with the bytes actually read, so a header's claim alone allocates little.
            let wanted = dataBytes + 1
            try storage.reserve(fileSize != nil ? wanted : min(wanted, IDXReader.initialStreamCapacity))
            while storage.count < wanted {
                if storage.count == storage.capacity {
                    try storage.reserve(min(wanted, storage.capacity * 2))
                }
                let room = storage.capacity - storage.count
                let got = try read(into: storage.pointer! + storage.count, room)
                storage.count += got
                if got < room { break }   // end of the data
            }
            if storage.count < dataBytes {
                throw truncated("\(size(headerBytes + storage.count)), expected \(expected) (\(layoutText))")
            }
            if storage.count > dataBytes {
                // Count the extra bytes for the message, up to a limit (a gzip file can expand
                // without end).
                var extra = storage.count - dataBytes
                let scratch = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 64)
                defer { scratch.deallocate() }
                while extra <= IDXReader.trailingCountLimit {
                    let got = try read(into: scratch, 1 << 16)
                    extra += got
                    if got < 1 << 16 { break }
                }
                let actual = extra > IDXReader.trailingCountLimit
                    ? "more than \(expected + IDXReader.trailingCountLimit)" : String(expected + extra)
                throw trailing(actual, expected: expected)
            }
            return storage
        }
    }

    /// A malloc'd byte buffer that grows and frees itself.
    final class ByteStorage {
        private(set) var pointer: UnsafeMutableRawPointer?
        private(set) var capacity = 0
        var count = 0
        var bytes: UnsafePointer<UInt8>? { UnsafePointer(pointer?.assumingMemoryBound(to: UInt8.self)) }

        deinit { free(pointer) }

        func reserve(_ bytes: Int) throws {
            guard bytes > capacity else { return }
            guard let grown = realloc(pointer, bytes) else {
                throw DescentError(.outOfMemory, "cannot allocate \(bytes) bytes for IDX data")
            }
            pointer = grown
            capacity = bytes
        }
    }
}

/// IDX's data type codes.
private func typeName(_ code: UInt8) -> String {
    switch code {
    case 0x08: "unsigned byte"
    case 0x09: "signed byte"
    case 0x0B: "16-bit integer"
    case 0x0C: "32-bit integer"
    case 0x0D: "32-bit float"
    case 0x0E: "64-bit float"
    default: "not an IDX type"
    }
}
