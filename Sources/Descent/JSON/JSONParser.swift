#if canImport(Glibc)
import Glibc
#endif

/// A strict JSON reader (RFC 8259) over UTF-8 bytes, for network specs and safetensors
/// headers, which may come from hostile files. It is written for that:
///
/// - Nesting is bounded: entering an array or object deeper than `maxDepth` levels is an
///   error, checked before going deeper, so the recursion in `value()` is at most `maxDepth`
///   frames and a thread with a small stack (256 KB) is safe.
/// - Time is linear: every byte is looked at a bounded number of times.
/// - Memory is what the caller keeps: `value()` builds a `JSONValue` tree, while
///   `begin` with `nextMember` or `nextElement` walks a document member by
///   member, so a reader can check each entry of a large header and keep only what it needs;
///   and the text itself can be read through a window (`JSONInput`) instead of all at once.
/// - Errors say what was expected, what was found and where: "expected ',' or '}' after an
///   object member, found ']' at line 1, column 18 (byte 17)". Lines and columns count from 1,
///   columns in Unicode scalars; the byte offset counts from 0.
///
/// Strictness: nothing beyond RFC 8259 (no comments, trailing commas, single quotes, NaN,
/// leading zeros or '+' signs, no byte order mark). The text must be valid UTF-8; strings may
/// not hold unescaped control characters or unpaired \uD800-\uDFFF escapes (a Swift String
/// cannot hold them). A key that appears twice in one object is an error: RFC 8259 leaves it
/// to the reader, and readers that build a map silently keep one of the two values (Python's
/// json keeps the last), so a file that means different things to different readers is
/// refused. A number beyond a Double's range (1e400) is an error; every other number is the
/// Double that strtod gives for its text, so one below the smallest subnormal becomes 0.
struct JSONParser {
    /// The deepest nesting of arrays and objects accepted. Real specs and headers nest 3 deep.
    static let maxDepth = 64

    /// What the text is, for messages: "the network spec", "the header".
    let what: String
    private var input: JSONInput
    /// The next byte to read.
    private var offset = 0
    /// Where `offset` is in lines and columns: the line's number and first byte, and the UTF-8
    /// continuation bytes read since (a column counts Unicode scalars). Newlines only occur
    /// in whitespace and multi-byte sequences only in strings, so these are kept up to date
    /// in two places: `skipWhitespace` and `skipUTF8Sequence`.
    private var line = 1
    private var lineStart = 0
    private var continuations = 0
    /// Arrays and objects entered and not yet left.
    private var depth = 0
    /// Set by `begin` until the first `nextMember`/`nextElement`, which
    /// then expects no ',' before the first entry. Any nested container clears it again on
    /// its own first call, so one flag serves every level.
    private var atContainerStart = false
    /// Reused for the bytes of strings that cannot be taken from the window in one piece
    /// (escapes, or longer than what is in the window), and for numbers handed to strtod.
    private var scratch: [UInt8] = []
    /// A long string is moved from `scratch` into a String in pieces of this many bytes, so
    /// reading it costs about its own size in memory.
    private static let piece = 1 << 16

    /// The kinds of JSON values.
    enum Kind: Sendable {
        case null, bool, number, string, array, object

        /// For messages: "got an array".
        var name: String {
            switch self {
            case .null: "null"
            case .bool: "a boolean"
            case .number: "a number"
            case .string: "a string"
            case .array: "an array"
            case .object: "an object"
            }
        }
    }

    /// A place in the text, for messages.
    struct Position {
        var byte: Int
        var line: Int
        var column: Int
    }

    /// Reads `text`, which is in memory.
    init(_ text: UnsafeBufferPointer<UInt8>, what: String) {
        self.init(JSONInput(text), what: what)
    }

    init(_ input: JSONInput, what: String) {
        self.input = input
        self.what = what
    }

    // MARK: - reading bytes

    /// True when the `count` bytes from `offset` are in the window (read on if needed); false
    /// when the text ends before. Bytes before `offset` may be dropped from the window.
    private mutating func has(_ count: Int) throws -> Bool {
        if offset + count <= input.end { return true }
        try input.load(from: offset, needed: count)
        return offset + count <= input.end
    }

    /// Whether `byte` is next.
    private mutating func next(is byte: UInt8) throws -> Bool {
        try has(1) && input[offset] == byte
    }

    /// The next byte without skipping whitespace; nil at the end of the text.
    mutating func nextByte() throws -> UInt8? {
        try has(1) ? input[offset] : nil
    }

    private var position: Position {
        Position(byte: offset, line: line, column: offset - lineStart - continuations + 1)
    }

    // MARK: - values

    /// The kind of the value that starts at the next non-whitespace byte, judged by that byte
    /// alone; nothing is read. An error when no value can start there.
    @inline(never)  // not into value(): its frame is on the stack once per nesting level
    mutating func kind() throws -> Kind {
        try skipWhitespace()
        guard try has(1) else { throw failure("expected a value") }
        switch input[offset] {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        default: throw failure("expected a value")
        }
    }

    /// Reads the next value as a tree. Its size is the caller's concern (see the type's notes).
    mutating func value() throws -> JSONValue {
        switch try kind() {
        case .object:
            try begin(.object)
            var fields: [String: JSONValue] = [:]
            while let member = try nextMember() {
                guard fields[member.key] == nil else { throw duplicateKey(member) }
                fields[member.key] = try value()
            }
            return .object(fields)
        case .array:
            try begin(.array)
            var items: [JSONValue] = []
            while try nextElement() { items.append(try value()) }
            return .array(items)
        case .string: return .string(try string())
        case .number: return .number(try number())
        case .bool:
            let isTrue = try next(is: UInt8(ascii: "t"))
            try literal(isTrue ? "true" : "false")
            return .bool(isTrue)
        case .null:
            try literal("null")
            return .null
        }
    }

    /// Steps over `word`, which the text must continue with.
    @inline(never)  // not into value(): its frame is on the stack once per nesting level
    private mutating func literal(_ word: StaticString) throws {
        let bytes = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard try has(bytes.count), input.bytes(offset, offset + bytes.count).elementsEqual(bytes) else {
            throw failure("expected '\(word)'", found: false)
        }
        offset += bytes.count
    }

    /// Succeeds when only whitespace is left: the value read was the whole text.
    mutating func end() throws {
        try skipWhitespace()
        guard try !has(1) else { throw failure("expected the end of the text after the value") }
    }

    private mutating func skipWhitespace() throws {
        while try has(1) {
            switch input[offset] {
            case 0x20, 0x09, 0x0D: offset += 1
            case 0x0A:
                offset += 1
                line += 1
                lineStart = offset
                continuations = 0
            default: return
            }
        }
    }

    // MARK: - objects and arrays, entry by entry

    /// A key read by `nextMember`, and where it starts (for `duplicateKey`).
    struct Member {
        var key: String
        var position: Position
    }

    /// Enters the object or array (`container`) that starts at the next value, one level
    /// deeper; read it with `nextMember` or `nextElement`.
    @inline(never)  // not into value(): its frame is on the stack once per nesting level
    mutating func begin(_ container: Kind) throws {
        guard try kind() == container else { throw failure("expected \(container.name)") }
        guard depth < Self.maxDepth else {
            throw located("\(what) nests arrays and objects more than \(Self.maxDepth) levels deep", at: position)
        }
        depth += 1
        offset += 1
        atContainerStart = true
    }

    /// Reads the next key of the object entered last, and the ':' after it; its value is next
    /// in the text, for the caller to read. Nil when the object ends (it is left). Duplicate
    /// keys are the caller's to find, as only the caller knows what it kept.
    @inline(never)  // not into value(): its frame is on the stack once per nesting level
    mutating func nextMember() throws -> Member? {
        let first = atContainerStart
        guard try nextEntry(closing: UInt8(ascii: "}"), else: "expected ',' or '}' after an object member") else { return nil }
        try skipWhitespace()
        guard try next(is: UInt8(ascii: "\"")) else {
            throw failure(first ? "expected a string key or '}' after '{'" : "expected a string key after ',' in an object")
        }
        let start = position
        let key = try readString()
        try skipWhitespace()
        guard try next(is: UInt8(ascii: ":")) else { throw failure("expected ':' after an object key") }
        offset += 1
        return Member(key: key, position: start)
    }

    /// True when the array entered last has another element, which is next in the text for
    /// the caller to read; false when it ends (it is left).
    @inline(never)  // not into value(): its frame is on the stack once per nesting level
    mutating func nextElement() throws -> Bool {
        try nextEntry(closing: UInt8(ascii: "]"), else: "expected ',' or ']' after an array element")
    }

    /// Steps over whitespace, then `closing` and one level up (false), or, before any entry but
    /// the first, the ',' that must be there instead (else the error `problem`).
    private mutating func nextEntry(closing: UInt8, else problem: String) throws -> Bool {
        try skipWhitespace()
        defer { atContainerStart = false }
        if try next(is: closing) {
            offset += 1
            depth -= 1
            return false
        }
        if atContainerStart { return true }
        guard try next(is: UInt8(ascii: ",")) else { throw failure(problem) }
        offset += 1
        return true
    }

    // MARK: - strings

    /// Reads the string that is the next value.
    @inline(never)  // not into value(): its frame is on the stack once per nesting level
    mutating func string() throws -> String {
        guard try kind() == .string else { throw failure("expected a string") }
        return try readString()
    }

    /// Reads the string whose opening quote is at `offset`. A string that is one run of plain
    /// bytes in the window is made straight from it; any other is put together in `scratch`
    /// (and, when long, in `long`), keeping each run of plain bytes before the window moves on.
    private mutating func readString() throws -> String {
        let start = position
        offset += 1
        var run = offset  // the first plain byte not yet kept: the string so far is long + scratch + [run, offset)
        var long = ""
        scratch.removeAll(keepingCapacity: true)
        while true {
            if offset == input.end {  // the window moves on: keep the run first
                keep(from: run, into: &long)
                guard try has(1) else { throw failure("unterminated string (no closing '\"')", at: start, found: false) }
                run = offset
            }
            switch input[offset] {
            case UInt8(ascii: "\""):
                if long.isEmpty && scratch.isEmpty {
                    let text = String(decoding: input.bytes(run, offset), as: UTF8.self)
                    offset += 1
                    return text
                }
                keep(from: run, into: &long)
                offset += 1
                long += String(decoding: scratch, as: UTF8.self)  // in place: `long + ...` would copy it
                return long
            case UInt8(ascii: "\\"):
                keep(from: run, into: &long)
                try readEscape(stringStart: start)
                run = offset
            case 0x00..<0x20:
                throw failure("unescaped control character \(scalarName(UInt32(input[offset]))) in a string", found: false)
            case 0x80...:
                if offset + 4 > input.end {  // the sequence may reach past the window
                    keep(from: run, into: &long)
                    run = offset
                }
                try skipUTF8Sequence()
            default:
                offset += 1
            }
        }
    }

    /// Appends the plain bytes [run, offset) to the string being read: to `scratch`, which
    /// goes into `long` once it is a piece long. Both end on whole UTF-8 sequences.
    private mutating func keep(from run: Int, into long: inout String) {
        scratch.append(contentsOf: input.bytes(run, offset))
        if scratch.count >= Self.piece {
            long += String(decoding: scratch, as: UTF8.self)
            scratch.removeAll(keepingCapacity: true)
        }
    }

    /// Reads the escape whose backslash is at `offset` and appends what it means to `scratch`.
    private mutating func readEscape(stringStart: Position) throws {
        let backslash = position
        guard try has(2) else { throw failure("unterminated string (no closing '\"')", at: stringStart, found: false) }
        let simple: UInt8
        switch input[offset + 1] {
        case UInt8(ascii: "\""): simple = 0x22
        case UInt8(ascii: "\\"): simple = 0x5C
        case UInt8(ascii: "/"): simple = 0x2F
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"):
            offset += 2
            var scalar = try hexQuad()
            if (0xDC00...0xDFFF).contains(scalar) {
                throw failure("\\u\(hex(scalar, digits: 4)) is a low surrogate without a high surrogate before it",
                              at: backslash, found: false)
            }
            if (0xD800...0xDBFF).contains(scalar) {
                let unpaired = "\\u\(hex(scalar, digits: 4)) is a high surrogate without a \\uDC00-\\uDFFF low surrogate after it"
                guard try has(2), input[offset] == UInt8(ascii: "\\"), input[offset + 1] == UInt8(ascii: "u") else {
                    throw failure(unpaired, at: backslash, found: false)
                }
                offset += 2
                let low = try hexQuad()
                guard (0xDC00...0xDFFF).contains(low) else { throw failure(unpaired, at: backslash, found: false) }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            UTF8.encode(Unicode.Scalar(scalar)!) { scratch.append($0) }
            return
        default:
            offset += 1
            throw failure(#"invalid escape: '\' may be followed by one of " \ / b f n r t u"#)
        }
        scratch.append(simple)
        offset += 2
    }

    /// Reads the four hex digits of a \u escape at `offset`.
    private mutating func hexQuad() throws -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            // 0-9, a-f, A-F: a byte above 0x7F is a Latin-1 letter here, never a hex digit
            guard try has(1), let digit = Character(Unicode.Scalar(input[offset])).hexDigitValue else {
                throw failure("expected 4 hex digits after '\\u'")
            }
            value = value << 4 | UInt32(digit)
            offset += 1
        }
        return value
    }

    /// Steps over the multi-byte UTF-8 sequence at `offset`, which must be well-formed
    /// (Unicode Table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF).
    private mutating func skipUTF8Sequence() throws {
        let (length, secondLow, secondHigh): (Int, UInt8, UInt8)
        switch input[offset] {
        case 0xC2...0xDF: (length, secondLow, secondHigh) = (2, 0x80, 0xBF)
        case 0xE0: (length, secondLow, secondHigh) = (3, 0xA0, 0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: (length, secondLow, secondHigh) = (3, 0x80, 0xBF)
        case 0xED: (length, secondLow, secondHigh) = (3, 0x80, 0x9F)
        case 0xF0: (length, secondLow, secondHigh) = (4, 0x90, 0xBF)
        case 0xF1...0xF3: (length, secondLow, secondHigh) = (4, 0x80, 0xBF)
        case 0xF4: (length, secondLow, secondHigh) = (4, 0x80, 0x8F)
        default: throw failure("invalid UTF-8 in a string")
        }
        _ = try has(length)
        for i in 1..<length {
            let at = offset + i
            let (low, high) = i == 1 ? (secondLow, secondHigh) : (0x80, 0xBF)
            guard at < input.end, (low...high).contains(input[at]) else {
                // the sequence's lead and continuation bytes so far are one column
                let place = Position(byte: at, line: line, column: offset - lineStart - continuations + 2)
                throw failure("invalid UTF-8 in a string", at: place)
            }
        }
        offset += length
        continuations += length - 1
    }

    // MARK: - numbers

    /// Reads the number that is the next value: the Double strtod gives for its text.
    @inline(never)  // not into value(): its frame is on the stack once per nesting level
    mutating func number() throws -> Double {
        guard try kind() == .number else { throw failure("expected a number") }
        let start = position
        scratch.removeAll(keepingCapacity: true)
        _ = try take(UInt8(ascii: "-"))
        guard try digitNext() else { throw failure("expected a digit after '-'") }
        if try take(UInt8(ascii: "0")) {
            if try digitNext() { throw failure("leading zeros are not allowed in a number", at: start, found: false) }
        } else {
            try takeDigits()
        }
        if try take(UInt8(ascii: ".")) {
            guard try digitNext() else { throw failure("expected a digit after the decimal point") }
            try takeDigits()
        }
        if try take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
            _ = try take(UInt8(ascii: "+")) || take(UInt8(ascii: "-"))
            guard try digitNext() else { throw failure("expected a digit in the exponent") }
            try takeDigits()
        }
        // strtod needs a terminating NUL, and its decimal point is the C locale's only while
        // this thread uses that locale (a host application may have set another).
        let length = scratch.count
        scratch.append(0)
        let previous = cNumericLocale.map { uselocale($0) }
        var read = 0
        let value = scratch.withUnsafeBufferPointer { bytes in
            bytes.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) { text in
                var end: UnsafeMutablePointer<CChar>? = nil
                let value = strtod(text, &end)
                read = end.map { UnsafePointer($0) - text } ?? 0
                return value
            }
        }
        if let previous { uselocale(previous) }
        guard read == length else {  // only if the C locale could not be had
            throw failure("strtod cannot read this number in the current locale", at: start, found: false)
        }
        guard value.isFinite else {
            throw failure("the number is beyond the range of a double (about 1.8e308)", at: start, found: false)
        }
        return value
    }

    /// Steps over `byte` into `scratch` when it is next.
    private mutating func take(_ byte: UInt8) throws -> Bool {
        guard try next(is: byte) else { return false }
        scratch.append(byte)
        offset += 1
        return true
    }

    private mutating func digitNext() throws -> Bool {
        try has(1) && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(input[offset])
    }

    private mutating func takeDigits() throws {
        while try digitNext() {
            scratch.append(input[offset])
            offset += 1
        }
    }

    // MARK: - errors

    /// "<what> is not valid JSON: <problem>, found <the byte there> at line L, column C (byte B)",
    /// at `place` or where the reader is.
    @inline(never)  // errors are rare; keep them out of the readers' frames
    func failure(_ problem: String, at place: Position? = nil, found: Bool = true) -> DescentError {
        let place = place ?? position
        let foundText = found ? ", found \(describeByte(at: place.byte))" : ""
        return located("\(what) is not valid JSON: \(problem)\(foundText)", at: place)
    }

    /// The error for a key that `member` repeats in its object.
    func duplicateKey(_ member: Member) -> DescentError {
        let shown = member.key.unicodeScalars.count > 100 ? String(member.key.prefix(100)) + "..." : member.key
        return located("\(what) has the key \(jsonString(shown)) twice in one object", at: member.position)
    }

    /// `message` + " at line L, column C (byte B)".
    private func located(_ message: String, at place: Position) -> DescentError {
        DescentError(.format, "\(message) at line \(place.line), column \(place.column) (byte \(place.byte))")
    }

    /// The byte at `offset` for messages: 'x', "'", U+000A, byte 0xFF, or the end of the text.
    /// Errors are found looking at that byte, so it is in the window.
    private func describeByte(at offset: Int) -> String {
        guard offset < input.end else { return "the end of the text" }
        let byte = input[offset]
        switch byte {
        case UInt8(ascii: "'"): return #""'""#
        case 0x21...0x7E: return "'\(Character(Unicode.Scalar(byte)))'"
        case 0x00...0x20, 0x7F: return scalarName(UInt32(byte))
        default: return "byte 0x\(hex(byte, digits: 2))"
        }
    }
}

/// A thread-safe handle on the C locale's number format, for strtod (nil if unavailable).
private nonisolated(unsafe) let cNumericLocale: locale_t? = newlocale(1 << LC_NUMERIC, "C", nil)

/// "U+000A".
private func scalarName(_ value: UInt32) -> String { "U+" + hex(value, digits: 4) }
