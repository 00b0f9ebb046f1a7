#if canImport(Glibc)
import Glibc
#endif

// Tensor bytes are copied between memory and file as they are; the format is little-endian.
#if !_endian(little)
#error("Descent's safetensors I/O assumes a little-endian machine")
#endif

/// The safetensors file format (huggingface/safetensors), which Descent checkpoints use so
/// that numpy, PyTorch and the `safetensors` package read them directly:
///
///     8 bytes    N, the header length, unsigned little-endian
///     N bytes    a JSON object: {"name": {"dtype": "F32", "shape": [2, 3],
///                "data_offsets": [begin, end]}, ..., "__metadata__": {"key": "value", ...}}
///                (UTF-8, may end in spaces)
///     the rest   the data section: each tensor's raw little-endian elements, row-major, at
///                [begin, end) counted from the start of the data section
///
/// Reading follows the reference implementation's rules, so every file accepted here is one
/// `safetensors` accepts too: the header is at most 100 MB and starts with `{`; every entry has
/// exactly dtype, shape and data_offsets; the byte range matches dtype and shape; the tensors
/// tile the data section exactly (no overlap, no gap, nothing left over); metadata values are
/// strings. Stricter than the reference: the header is strict JSON (`JSONParser`), a name
/// given twice is refused (readers that build a map keep one of the two silently), and a
/// header holds at most `maxEntries` tensors and metadata entries and `maxRank` dimensions per
/// shape. Nothing is read, and nothing large is allocated, before the sizes are checked
/// against the real file size.
enum SafeTensors {
    /// The largest header accepted (the reference implementation's limit).
    static let maxHeaderBytes = 100_000_000
    /// Integers in a header are read as JSON numbers (doubles), exact up to 2^53.
    static let maxInteger = 9_007_199_254_740_992.0

    /// Bits per element of the dtypes safetensors defines.
    static let elementBits: [String: Int] = [
        "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
        "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64,
        "F64": 64, "C64": 64,
    ]

    /// One tensor entry of a header.
    struct Tensor: Equatable, Sendable {
        var name: String
        var dtype: String
        var shape: [Int]
        /// The byte range in the data section.
        var begin: Int
        var end: Int

        var byteCount: Int { end - begin }
        /// The number of elements (checked not to overflow when the header was parsed).
        var elementCount: Int { shape.reduce(1, *) }
    }

    /// A parsed and validated header.
    struct Header: Sendable {
        /// In the order of their data (by begin offset).
        var tensors: [Tensor]
        /// The `__metadata__` object; nil when the header has none.
        var metadata: [String: String]?
        /// Where the data section starts in the file: 8 + N.
        var dataStart: Int
        /// The data section's length: file size - 8 - N.
        var dataSize: Int

        func tensor(named name: String) -> Tensor? { tensors.first { $0.name == name } }
    }

    // MARK: - header text

    /// At most this many tensors, and this many __metadata__ entries, in one header. Far above
    /// any real checkpoint (a Descent network of 1,000 layers with batch norm and Adam has
    /// about 14,000 tensors), it bounds what a hostile header makes the reader keep: without
    /// it, 100 MB of tiny entries would cost gigabytes.
    static let maxEntries = 100_000
    /// At most this many dimensions in a shape (numpy 2's limit; real tensors have a few).
    static let maxRank = 64

    /// Parses and validates a header. `dataSize` is the length of the data section behind it.
    /// Errors are DescentError(.format) naming the tensor and the problem, or the position of
    /// a JSON error.
    static func parseHeader(_ bytes: [UInt8], dataSize: Int) throws -> (tensors: [Tensor], metadata: [String: String]?) {
        try bytes.withUnsafeBufferPointer { try parseHeader(JSONInput($0), dataSize: dataSize) }
    }

    /// Parses and validates the header that `input` reads (from a file, through a window).
    ///
    /// The header is read entry by entry and each tensor is checked as it is read, without a
    /// tree of the whole text: time is linear in the header's size, and memory is the window
    /// plus what the result holds (bounded by maxEntries and maxRank; strings cost their own
    /// size). So the first problem in file order is the one reported, whether it is JSON
    /// syntax or content, and nothing after it is read.
    static func parseHeader(_ input: JSONInput, dataSize: Int) throws -> (tensors: [Tensor], metadata: [String: String]?) {
        var json = JSONParser(input, what: "the header")
        guard try json.nextByte() == UInt8(ascii: "{") else {
            throw bad("the header does not start with '{' (a safetensors header is a JSON object)")
        }
        var names = Set<String>()
        var metadata: [String: String]? = nil
        var tensors: [Tensor] = []
        try json.begin(.object)
        while let entry = try json.nextMember() {
            guard names.insert(entry.key).inserted else { throw json.duplicateKey(entry) }
            if entry.key == "__metadata__" {
                metadata = try parseMetadata(&json)
            } else {
                guard tensors.count < maxEntries else {
                    throw bad("the header has more than \(maxEntries) tensors, more than Descent reads")
                }
                tensors.append(try parseTensor(entry.key, &json))
            }
        }
        try json.end()
        tensors.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        try checkTiling(tensors, dataSize: dataSize)
        return (tensors, metadata)
    }

    /// The tensors, sorted by offsets, must cover the data section exactly once.
    private static func checkTiling(_ tensors: [Tensor], dataSize: Int) throws {
        var position = 0
        var previous: String? = nil
        for t in tensors {
            guard t.end <= dataSize else {
                throw bad("tensor '\(t.name)': data_offsets [\(t.begin), \(t.end)] reach past the end of the data section (\(dataSize) bytes): the file is truncated or the header lies")
            }
            if t.begin < position {
                throw bad("tensor '\(t.name)': data_offsets [\(t.begin), \(t.end)] overlap tensor '\(previous ?? "")', which ends at \(position)")
            }
            if t.begin > position {
                throw bad("bytes [\(position), \(t.begin)) of the data section belong to no tensor (safetensors requires the tensors to cover it exactly)")
            }
            position = t.end
            previous = t.name
        }
        guard position == dataSize else {
            throw bad("the data section has \(dataSize) bytes but the tensors cover only \(position): bytes [\(position), \(dataSize)) belong to no tensor")
        }
    }

    /// Reads the `__metadata__` object that is the next value: string keys to string values.
    private static func parseMetadata(_ json: inout JSONParser) throws -> [String: String] {
        try expect(.object, &json, else: "__metadata__ must be an object of strings")
        try json.begin(.object)
        var strings: [String: String] = [:]
        while let entry = try json.nextMember() {
            guard strings[entry.key] == nil else { throw json.duplicateKey(entry) }
            guard strings.count < maxEntries else {
                throw bad("__metadata__ has more than \(maxEntries) entries, more than Descent reads")
            }
            try expect(.string, &json, else: "__metadata__ '\(entry.key)' must be a string (safetensors metadata is string to string)")
            strings[entry.key] = try json.string()
        }
        return strings
    }

    /// Reads the tensor entry that is the next value and checks it on its own.
    private static func parseTensor(_ name: String, _ json: inout JSONParser) throws -> Tensor {
        try expect(.object, &json, else: "tensor '\(name)' must be an object with dtype, shape and data_offsets")
        var dtype: String? = nil
        var shape: [Int]? = nil
        var offsets: [Int]? = nil
        try json.begin(.object)
        while let field = try json.nextMember() {
            switch field.key {
            case "dtype":
                guard dtype == nil else { throw json.duplicateKey(field) }
                try expect(.string, &json, else: "tensor '\(name)': dtype must be a string")
                dtype = try json.string()
            case "shape":
                guard shape == nil else { throw json.duplicateKey(field) }
                shape = try integers(&json, "tensor '\(name)': shape", atMost: maxRank,
                                     tooMany: "tensor '\(name)': shape has more than \(maxRank) dimensions")
            case "data_offsets":
                guard offsets == nil else { throw json.duplicateKey(field) }
                offsets = try integers(&json, "tensor '\(name)': data_offsets", atMost: 2,
                                       tooMany: "tensor '\(name)': data_offsets must be [begin, end], got more than 2 numbers")
            default:
                throw bad("tensor '\(name)' has an unknown field '\(field.key)' (allowed: dtype, shape, data_offsets)")
            }
        }
        guard let dtype else { throw bad("tensor '\(name)' has no 'dtype'") }
        guard let shape else { throw bad("tensor '\(name)' has no 'shape'") }
        guard let offsets else { throw bad("tensor '\(name)' has no 'data_offsets'") }
        guard let bits = elementBits[dtype] else { throw bad("tensor '\(name)' has an unknown dtype '\(dtype)'") }
        guard offsets.count == 2 else {
            throw bad("tensor '\(name)': data_offsets must be [begin, end], got \(offsets.count) numbers")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else { throw bad("tensor '\(name)': data_offsets [\(begin), \(end)] end before they begin") }
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw bad("tensor '\(name)': shape \(shape) has too many elements") }
            count = product
        }
        let (totalBits, overflow) = count.multipliedReportingOverflow(by: bits)
        guard !overflow, totalBits == (end - begin) * 8 else {
            let needed = overflow ? "more than 2^63 bits" : (totalBits % 8 == 0 ? "\(totalBits / 8) bytes" : "\(totalBits) bits")
            throw bad("tensor '\(name)': shape \(shape) of \(dtype) needs \(needed) but data_offsets [\(begin), \(end)] hold \(end - begin) bytes")
        }
        return Tensor(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    /// Reads the array of whole numbers in 0...2^53 that is the next value; more than
    /// `atMost` of them is the error `tooMany`, found before any more are kept.
    private static func integers(_ json: inout JSONParser, _ what: String, atMost: Int, tooMany: String) throws -> [Int] {
        try expect(.array, &json, else: "\(what) must be an array of whole numbers")
        try json.begin(.array)
        var values: [Int] = []
        while try json.nextElement() {
            guard values.count < atMost else { throw bad(tooMany) }
            try expect(.number, &json, else: "\(what)[\(values.count)] must be a whole number in 0...2^53")
            let n = try json.number()
            guard n == n.rounded(), n >= 0, n <= maxInteger else {
                throw bad("\(what)[\(values.count)] must be a whole number in 0...2^53, got \(Hyperparameter.format(n))")
            }
            values.append(Int(n))
        }
        return values
    }

    /// Checks that the next value is a `kind`; else the error "`problem`, got <what it is>".
    private static func expect(_ kind: JSONParser.Kind, _ json: inout JSONParser, else problem: @autoclosure () -> String) throws {
        let found = try json.kind()
        guard found == kind else { throw bad("\(problem()), got \(found.name)") }
    }

    /// What to write: a tensor's name, dtype, shape and bytes (exactly dtype size * elements).
    struct Source {
        var name: String
        var dtype = "F32"
        var shape: [Int]
        var bytes: UnsafeRawBufferPointer
    }

    /// The header for tensors stored back to back in the given order, metadata first; padded
    /// with spaces to a multiple of 8 bytes (as the reference writer does), so the data
    /// section and every F32/F64 tensor in it are aligned for memory mapping.
    static func encodeHeader(_ tensors: [Source], metadata: [(key: String, value: String)]) -> [UInt8] {
        var entries: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            entries.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for t in tensors {
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append("\(jsonString(t.name)):{\"dtype\":\(jsonString(t.dtype)),\"shape\":[\(shape)],"
                + "\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            offset += t.bytes.count
        }
        var bytes = Array("{\(entries.joined(separator: ","))}".utf8)
        while bytes.count % 8 != 0 { bytes.append(UInt8(ascii: " ")) }
        return bytes
    }

    // MARK: - files

    /// An open safetensors file whose header has been read and validated. Tensors are read
    /// on demand with `read`, straight into the caller's memory.
    final class Reader {
        let path: String
        let header: Header
        private let fd: Int32

        /// Opens and validates. A missing file is `.notFound`; other open/read failures `.io`;
        /// anything wrong with the contents `.format`.
        init(path: String) throws {
            self.path = path
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else {
                let code = errno
                if code == ENOENT || code == ENOTDIR { throw DescentError(.notFound, "no such file") }
                throw DescentError(.io, "cannot open it: \(String(cString: strerror(code)))")
            }
            do {
                var info = stat()
                guard fstat(fd, &info) == 0 else { throw ioError(errno, "cannot stat it") }
                guard info.st_mode & S_IFMT == S_IFREG else {
                    let kind = info.st_mode & S_IFMT == S_IFDIR ? "a directory" : "not a regular file"
                    throw DescentError(.io, "it is \(kind), not a safetensors file")
                }
                let size = Int(info.st_size)
                guard size >= 8 else {
                    throw bad("the file has \(size) bytes; a safetensors file starts with an 8-byte header length")
                }
                var prefix: UInt64 = 0
                try withUnsafeMutableBytes(of: &prefix) { try Self.readExactly(fd, into: $0, at: 0) }
                let declared = UInt64(littleEndian: prefix)
                guard declared <= UInt64(maxHeaderBytes) else {
                    throw bad("the header length is \(declared) bytes; at most \(maxHeaderBytes) are allowed")
                }
                guard declared <= UInt64(size - 8) else {
                    throw bad("the header length is \(declared) bytes but only \(size - 8) follow the length field: the file is truncated or not safetensors")
                }
                let headerLength = Int(declared)
                let dataSize = size - 8 - headerLength
                // Read as it is parsed: a huge header is never in memory at once.
                let text = JSONInput(count: headerLength) { buffer, at in try Self.readExactly(fd, into: buffer, at: 8 + at) }
                let (tensors, metadata) = try parseHeader(text, dataSize: dataSize)
                header = Header(tensors: tensors, metadata: metadata, dataStart: 8 + headerLength, dataSize: dataSize)
            } catch {
                close(fd)
                throw error
            }
            self.fd = fd
        }

        deinit { close(fd) }

        /// Reads a tensor of this header into `destination`, which must be its exact size.
        func read(_ tensor: Tensor, into destination: UnsafeMutableRawBufferPointer) throws {
            precondition(destination.count == tensor.byteCount, "destination size differs from the tensor's")
            try Self.readExactly(fd, into: destination, at: header.dataStart + tensor.begin)
        }

        /// pread until `buffer` is full; a file that ends early (it shrank after it was
        /// checked) is an I/O error.
        private static func readExactly(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws {
            var done = 0
            while done < buffer.count {
                let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ioError(errno, "cannot read it")
                }
                guard n > 0 else {
                    throw DescentError(.io, "the file ended at byte \(offset + done) while being read (did it change?)")
                }
                done += n
            }
        }
    }

    /// Writes a safetensors file atomically (`AtomicFile.replace`): a crash or an error never
    /// leaves a partial file at `path`, and an existing file there stays intact unless the save
    /// succeeds. Errors are `.io`, naming the path and the system's reason. The new file gets
    /// the permissions of any newly created file (0666 minus the umask).
    static func write(path: String, tensors: [Source], metadata: [(key: String, value: String)]) throws {
        for t in tensors {
            precondition(t.bytes.count * 8 == t.shape.reduce(1, *) * elementBits[t.dtype]!, "\(t.name): size differs from shape")
        }
        guard !path.isEmpty else { throw DescentError.invalid("path is empty") }
        let header = encodeHeader(tensors, metadata: metadata)
        try AtomicFile.replace(path) { file in
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try file.write($0) }
            try header.withUnsafeBytes { try file.write($0) }
            for t in tensors { try file.write(t.bytes) }
        }
    }

    static func bad(_ message: String) -> DescentError { DescentError(.format, message) }

    /// An `.io` error: "what: strerror(errno)".
    static func ioError(_ code: Int32, _ what: String) -> DescentError {
        DescentError(.io, "\(what): \(String(cString: strerror(code)))")
    }
}
