#if canImport(Glibc)
import Glibc
#endif

/// A strict JSON reader (RFC 8259) over UTF-8 bytes, for network specs and safetensors
/// headers, which may come from hostile files. It is written for that:
///
/// - Nesting is bounded: entering an array or object deeper than `maxDepth` levels is an
///   error, checked before going deeper, so the recursion in `value()` is at most `maxDepth`
///   frames and a thread with a small stack (256 KB) is safe.
/// - Time is linear: every byte is looked at a bounded number of times, and an error scans
///   the text once more to find its line and column.
/// - Memory is what the caller keeps: `value()` builds a `JSONValue` tree, while
///   `beginObject`/`nextMember` and `beginArray`/`nextElement` walk a document member by
///   member, so a reader can check each entry of a large header and keep only what it needs.
/// - Errors say what was expected, what was found and where: "expected ',' or '}' after an
///   object member, found ']' at line 1, column 17 (byte 16)". Lines and columns count from 1,
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
    private let text: UnsafeBufferPointer<UInt8>
    /// The next byte to read.
    private var offset = 0
    /// Arrays and objects entered and not yet left.
    private var depth = 0
    /// Set by `beginObject`/`beginArray` until the first `nextMember`/`nextElement`, which
    /// then expects no ',' before the first entry. Any nested container clears it again on
    /// its own first call, so one flag serves every level.
    private var atContainerStart = false
    /// Reused for strings with escapes and for numbers handed to strtod.
    private var scratch: [UInt8] = []

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

    init(_ text: UnsafeBufferPointer<UInt8>, what: String) {
        self.text = text
        self.what = what
    }

    // MARK: - values

    /// The kind of the value that starts at the next non-whitespace byte, judged by that byte
    /// alone; nothing is read. An error when no value can start there.
    mutating func kind() throws -> Kind {
        skipWhitespace()
        guard offset < text.count else { throw failure("expected a value") }
        switch text[offset] {
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
            try beginObject()
            var fields: [String: JSONValue] = [:]
            while let member = try nextMember() {
                guard fields[member.key] == nil else { throw duplicateKey(member) }
                fields[member.key] = try value()
            }
            return .object(fields)
        case .array:
            try beginArray()
            var items: [JSONValue] = []
            while try nextElement() { items.append(try value()) }
            return .array(items)
        case .string: return .string(try string())
        case .number: return .number(try number())
        case .bool:
            let isTrue = peek(UInt8(ascii: "t"))
            try literal(isTrue ? "true" : "false")
            return .bool(isTrue)
        case .null:
            try literal("null")
            return .null
        }
    }

    /// Steps over `word`, which the text must continue with.
    private mutating func literal(_ word: StaticString) throws {
        let bytes = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard offset + bytes.count <= text.count, text[offset..<(offset + bytes.count)].elementsEqual(bytes) else {
            throw failure("expected '\(word)'", found: false)
        }
        offset += bytes.count
    }

    /// Succeeds when only whitespace is left: the value read was the whole text.
    mutating func end() throws {
        skipWhitespace()
        guard offset == text.count else { throw failure("expected the end of the text after the value") }
    }

    private mutating func skipWhitespace() {
        while offset < text.count {
            switch text[offset] {
            case 0x20, 0x09, 0x0A, 0x0D: offset += 1
            default: return
            }
        }
    }

    // MARK: - objects and arrays, entry by entry

    /// A key read by `nextMember`, and where it starts (for `duplicateKey`).
    struct Member {
        var key: String
        var offset: Int
    }

    /// Enters the object that starts at the next value; read it with `nextMember`.
    mutating func beginObject() throws {
        guard try kind() == .object else { throw failure("expected an object") }
        try enter()
    }

    /// Reads the next key of the object entered last, and the ':' after it; its value is next
    /// in the text, for the caller to read. Nil when the object ends (it is left). Duplicate
    /// keys are the caller's to find, as only the caller knows what it kept.
    mutating func nextMember() throws -> Member? {
        skipWhitespace()
        if atContainerStart {
            atContainerStart = false
            if leave(UInt8(ascii: "}")) { return nil }
            guard peek(UInt8(ascii: "\"")) else { throw failure("expected a string key or '}' after '{'") }
        } else {
            if leave(UInt8(ascii: "}")) { return nil }
            guard peek(UInt8(ascii: ",")) else { throw failure("expected ',' or '}' after an object member") }
            offset += 1
            skipWhitespace()
            guard peek(UInt8(ascii: "\"")) else { throw failure("expected a string key after ',' in an object") }
        }
        let start = offset
        let key = try readString()
        skipWhitespace()
        guard peek(UInt8(ascii: ":")) else { throw failure("expected ':' after an object key") }
        offset += 1
        return Member(key: key, offset: start)
    }

    /// Enters the array that starts at the next value; read it with `nextElement`.
    mutating func beginArray() throws {
        guard try kind() == .array else { throw failure("expected an array") }
        try enter()
    }

    /// True when the array entered last has another element, which is next in the text for
    /// the caller to read; false when it ends (it is left).
    mutating func nextElement() throws -> Bool {
        skipWhitespace()
        if atContainerStart {
            atContainerStart = false
            return !leave(UInt8(ascii: "]"))
        }
        if leave(UInt8(ascii: "]")) { return false }
        guard peek(UInt8(ascii: ",")) else { throw failure("expected ',' or ']' after an array element") }
        offset += 1
        return true
    }

    /// Steps over the '{' or '[' at `offset`, one level deeper.
    private mutating func enter() throws {
        guard depth < Self.maxDepth else {
            throw located("\(what) nests arrays and objects more than \(Self.maxDepth) levels deep", at: offset)
        }
        depth += 1
        offset += 1
        atContainerStart = true
    }

    /// Steps over `closing` and one level up when it is next.
    private mutating func leave(_ closing: UInt8) -> Bool {
        guard peek(closing) else { return false }
        offset += 1
        depth -= 1
        return true
    }

    private func peek(_ byte: UInt8) -> Bool { offset < text.count && text[offset] == byte }

    // MARK: - strings

    /// Reads the string that is the next value.
    mutating func string() throws -> String {
        guard try kind() == .string else { throw failure("expected a string") }
        return try readString()
    }

    /// Reads the string whose opening quote is at `offset`. A string without escapes is made
    /// straight from the text; one with escapes is put together in `scratch`.
    private mutating func readString() throws -> String {
        let start = offset
        offset += 1
        var run = offset  // the first byte not yet copied to scratch
        var escaped = false
        scratch.removeAll(keepingCapacity: true)
        while offset < text.count {
            switch text[offset] {
            case UInt8(ascii: "\""):
                let tail = UnsafeBufferPointer(rebasing: text[run..<offset])
                offset += 1
                guard escaped else { return String(decoding: tail, as: UTF8.self) }
                scratch.append(contentsOf: tail)
                return String(decoding: scratch, as: UTF8.self)
            case UInt8(ascii: "\\"):
                scratch.append(contentsOf: text[run..<offset])
                try readEscape(stringStart: start)
                run = offset
                escaped = true
            case 0x00..<0x20:
                throw failure("unescaped control character \(scalarName(UInt32(text[offset]))) in a string", found: false)
            case 0x80...:
                try skipUTF8Sequence()
            default:
                offset += 1
            }
        }
        throw failure("unterminated string (no closing '\"')", at: start, found: false)
    }

    /// Reads the escape whose backslash is at `offset` and appends what it means to `scratch`.
    private mutating func readEscape(stringStart: Int) throws {
        let backslash = offset
        guard offset + 1 < text.count else {
            throw failure("unterminated string (no closing '\"')", at: stringStart, found: false)
        }
        let simple: UInt8
        switch text[offset + 1] {
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
                throw failure("\\u\(hex4(scalar)) is a low surrogate without a high surrogate before it",
                              at: backslash, found: false)
            }
            if (0xD800...0xDBFF).contains(scalar) {
                guard peek(UInt8(ascii: "\\")), offset + 1 < text.count, text[offset + 1] == UInt8(ascii: "u") else {
                    throw failure("\\u\(hex4(scalar)) is a high surrogate without a \\uDC00-\\uDFFF low surrogate after it",
                                  at: backslash, found: false)
                }
                offset += 2
                let low = try hexQuad()
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw failure("\\u\(hex4(scalar)) is a high surrogate without a \\uDC00-\\uDFFF low surrogate after it",
                                  at: backslash, found: false)
                }
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
            guard offset < text.count else { throw failure("expected 4 hex digits after '\\u'") }
            let byte = text[offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("expected 4 hex digits after '\\u'")
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
        switch text[offset] {
        case 0xC2...0xDF: (length, secondLow, secondHigh) = (2, 0x80, 0xBF)
        case 0xE0: (length, secondLow, secondHigh) = (3, 0xA0, 0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: (length, secondLow, secondHigh) = (3, 0x80, 0xBF)
        case 0xED: (length, secondLow, secondHigh) = (3, 0x80, 0x9F)
        case 0xF0: (length, secondLow, secondHigh) = (4, 0x90, 0xBF)
        case 0xF1...0xF3: (length, secondLow, secondHigh) = (4, 0x80, 0xBF)
        case 0xF4: (length, secondLow, secondHigh) = (4, 0x80, 0x8F)
        default: throw failure("invalid UTF-8 in a string")
        }
        for i in 1..<length {
            let at = offset + i
            let (low, high) = i == 1 ? (secondLow, secondHigh) : (0x80, 0xBF)
            guard at < text.count, (low...high).contains(text[at]) else { throw failure("invalid UTF-8 in a string", at: at) }
        }
        offset += length
    }

    // MARK: - numbers

    /// Reads the number that is the next value: the Double strtod gives for its text.
    mutating func number() throws -> Double {
        guard try kind() == .number else { throw failure("expected a number") }
        let start = offset
        if peek(UInt8(ascii: "-")) { offset += 1 }
        guard digitNext() else { throw failure("expected a digit after '-'") }
        if peek(UInt8(ascii: "0")) {
            offset += 1
            if digitNext() { throw failure("leading zeros are not allowed in a number", at: start, found: false) }
        } else {
            skipDigits()
        }
        if peek(UInt8(ascii: ".")) {
            offset += 1
            guard digitNext() else { throw failure("expected a digit after the decimal point") }
            skipDigits()
        }
        if peek(UInt8(ascii: "e")) || peek(UInt8(ascii: "E")) {
            offset += 1
            if peek(UInt8(ascii: "+")) || peek(UInt8(ascii: "-")) { offset += 1 }
            guard digitNext() else { throw failure("expected a digit in the exponent") }
            skipDigits()
        }
        // strtod needs a terminating NUL, and its decimal point is the C locale's only while
        // this thread uses that locale (a host application may have set another).
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: text[start..<offset])
        scratch.append(0)
        let previous = cNumericLocale.map { uselocale($0) }
        var read = 0
        let value = scratch.withUnsafeBufferPointer { bytes in
            bytes.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) { start in
                var end: UnsafeMutablePointer<CChar>? = nil
                let value = strtod(start, &end)
                read = end.map { UnsafePointer($0) - start } ?? 0
                return value
            }
        }
        if let previous { uselocale(previous) }
        guard read == offset - start else {  // only if the C locale could not be had
            throw failure("strtod cannot read this number in the current locale", at: start, found: false)
        }
        guard value.isFinite else {
            throw failure("the number is beyond the range of a double (about 1.8e308)", at: start, found: false)
        }
        return value
    }

    private func digitNext() -> Bool {
        offset < text.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(text[offset])
    }

    private mutating func skipDigits() {
        while digitNext() { offset += 1 }
    }

    // MARK: - errors

    /// "<what> is not valid JSON: <problem>, found <the byte at `at`> at line L, column C (byte B)".
    func failure(_ problem: String, at position: Int? = nil, found: Bool = true) -> DescentError {
        let at = position ?? offset
        let foundText = found ? ", found \(describeByte(at: at))" : ""
        return located("\(what) is not valid JSON: \(problem)\(foundText)", at: at)
    }

    /// The error for a key that `member` repeats in its object.
    func duplicateKey(_ member: Member) -> DescentError {
        let shown = member.key.unicodeScalars.count > 100 ? String(member.key.prefix(100)) + "..." : member.key
        return located("\(what) has the key \(jsonString(shown)) twice in one object", at: member.offset)
    }

    /// `message` + " at line L, column C (byte B)".
    private func located(_ message: String, at position: Int) -> DescentError {
        var line = 1
        var column = 1
        for byte in text[..<min(position, text.count)] {
            if byte == 0x0A {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {  // not a UTF-8 continuation byte: a new scalar
                column += 1
            }
        }
        return DescentError(.format, "\(message) at line \(line), column \(column) (byte \(position))")
    }

    /// The byte at `at` for messages: 'x', "'", U+000A, byte 0xFF, or the end of the text.
    private func describeByte(at position: Int) -> String {
        guard position < text.count else { return "the end of the text" }
        let byte = text[position]
        switch byte {
        case UInt8(ascii: "'"): return #""'""#
        case 0x21...0x7E: return "'\(Character(Unicode.Scalar(byte)))'"
        case 0x00...0x20, 0x7F: return scalarName(UInt32(byte))
        default: return "byte 0x\(hex2(byte))"
        }
    }
}

/// A thread-safe handle on the C locale's number format, for strtod (nil if unavailable).
private nonisolated(unsafe) let cNumericLocale: locale_t? = newlocale(1 << LC_NUMERIC, "C", nil)

private func hex2(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16, uppercase: true)
    return byte < 0x10 ? "0" + digits : digits
}

private func hex4(_ value: UInt32) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

/// "U+000A".
private func scalarName(_ value: UInt32) -> String { "U+" + hex4(value) }
