// The JSON reader (JSONParser, through JSONValue.parse): every grammar rule and escape of
// RFC 8259, numbers equal to strtod's, each error with its exact message and position, the
// nesting limit exactly at and one past it, and the entry-by-entry interface.
import Testing
@testable import Descent

#if canImport(Glibc)
import Glibc
#endif

private func parse(_ text: String) throws -> JSONValue { try JSONValue.parse(Array(text.utf8), what: "the text") }
private func parse(bytes: [UInt8]) throws -> JSONValue { try JSONValue.parse(bytes, what: "the text") }

/// The message of the error `body` throws ("" when it throws none).
private func message(_ body: () throws -> Any) -> String {
    do {
        _ = try body()
        return ""
    } catch let error as DescentError {
        return error.status == .format ? error.message : "status \(error.status): \(error.message)"
    } catch {
        return "not a DescentError: \(error)"
    }
}

/// strtod in the C locale, the reference the reader must agree with bit for bit.
private func strtodReference(_ text: String) -> Double {
    let locale = newlocale(1 << LC_NUMERIC, "C", nil)
    defer { if let locale { freelocale(locale) } }
    let previous = locale.map { uselocale($0) }
    defer { if let previous { uselocale(previous) } }
    return text.withCString { strtod($0, nil) }
}

private func nested(_ depth: Int, _ open: String, _ close: String, inner: String = "") -> String {
    String(repeating: open, count: depth) + inner + String(repeating: close, count: depth)
}

@Suite struct JSONParserTests {

    // MARK: - what is read

    static let grammarCases: [(String, JSONValue)] = [
        ("null", JSONValue.null),
        ("true", .bool(true)),
        ("false", .bool(false)),
        ("0", .number(0)),
        ("-1", .number(-1)),
        ("12.5", .number(12.5)),
        ("1e3", .number(1000)),
        ("1E+3", .number(1000)),
        ("25e-2", .number(0.25)),
        ("-0.5E0", .number(-0.5)),
        (#""""#, .string("")),
        (#""abc""#, .string("abc")),
        ("[]", .array([])),
        ("[1,\"a\",null,true,[],{}]", .array([.number(1), .string("a"), .null, .bool(true), .array([]), .object([:])])),
        ("{}", .object([:])),
        (#"{"a":{"b":[false]},"c":"d"}"#, .object(["a": .object(["b": .array([.bool(false)])]), "c": .string("d")])),
        // whitespace: space, tab, CR, LF around every token
        (" \t\r\n{ \"a\" :\n[ 1 ,\t2 ] } \r\n", .object(["a": .array([.number(1), .number(2)])])),
    ]

    @Test(arguments: grammarCases)
    func grammar(_ text: String, _ expected: JSONValue) throws {
        #expect(try parse(text) == expected)
    }

    static let escapeCases: [(String, String)] = [
        (#""\"\\\/\b\f\n\r\t""#, "\"\\/\u{8}\u{C}\n\r\t"),
        (#""\u0041\u00e9\u20AC\u00E9""#, "Aé€é"),
        (#""\u0000x""#, "\u{0}x"),
        (#""\uD83D\uDE00""#, "😀"),  // a surrogate pair
        (#""\udbff\udfff""#, "\u{10FFFF}"),
        (#""a\nb\u0009c""#, "a\nb\tc"),
        ("\"é😀\u{7F}\"", "é😀\u{7F}"),  // UTF-8 as it is, and DEL needs no escape
    ]

    @Test(arguments: escapeCases)
    func escapes(_ text: String, _ expected: String) throws {
        #expect(try parse(text) == .string(expected))
        // and as a key
        #expect(try parse("{\(text):1}") == .object([expected: .number(1)]))
    }

    static let numberCases = [
        "0", "-0", "0.1", "0.3", "1e23", "8.98846567431158e307", "1.7976931348623157e308",
        "2.2250738585072011e-308", "4.9406564584124654e-324", "1e-320", "2.4703282292062328e-324",
        "1e-400", "-1e-400", "9007199254740993", "123456789012345678901234567890", "0.1000000000000000055511151231257827",
        "3.14159265358979323846264338327950288419716939937510", "1" + String(repeating: "0", count: 300),
        "0." + String(repeating: "0", count: 400) + "1e400",
    ]

    /// Texts that parse, for JSONInputTests.
    static var readable: [String] { grammarCases.map(\.0) + escapeCases.map(\.0) + numberCases }

    @Test(arguments: numberCases)
    func numbersAreStrtods(_ text: String) throws {
        guard case .number(let value) = try parse(text) else {
            Issue.record("not a number: \(text)")
            return
        }
        #expect(value.bitPattern == strtodReference(text).bitPattern, "\(text)")
    }

    @Test func negativeZeroKeepsItsSign() throws {
        guard case .number(let value) = try parse("-0") else { Issue.record("not a number"); return }
        #expect(value == 0 && value.sign == .minus)
    }

    /// strtod reads the decimal point of the thread's locale; the reader must not depend on
    /// it. A locale whose decimal point is ',' is compiled for the test with glibc's localedef
    /// (skipped where that tool is missing).
    @Test func numbersIgnoreTheLocale() throws {
        guard access("/usr/bin/localedef", X_OK) == 0 else { return }
        var template = Array("/tmp/descent-json-locale-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            Issue.record("mkdtemp")
            return
        }
        let directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer { _ = system("rm -rf '\(directory)'") }
        let source = "LC_NUMERIC\ndecimal_point \",\"\nthousands_sep \".\"\ngrouping 3;3\nEND LC_NUMERIC\n"
        let file = fopen(directory + "/comma.src", "w")!
        fputs(source, file)
        fclose(file)
        _ = system("/usr/bin/localedef -c -i '\(directory)/comma.src' -f UTF-8 '\(directory)/comma' >/dev/null 2>&1")
        setenv("LOCPATH", directory, 1)
        let comma = newlocale(1 << LC_NUMERIC, "comma", nil)
        unsetenv("LOCPATH")
        let locale = try #require(comma, "localedef made no usable locale in \(directory)")
        defer { freelocale(locale) }
        let previous = uselocale(locale)
        defer { uselocale(previous) }
        #expect("1.5".withCString { strtod($0, nil) } == 1, "the locale reads '.' as the end of a number")
        #expect(try parse("[1.5, 2.5e1]") == .array([.number(1.5), .number(25)]))
        #expect(localeconv().pointee.decimal_point.pointee == CChar(UInt8(ascii: ",")), "the thread's locale is restored")
    }

    // MARK: - errors, with positions

    static let errors: [(String, String)] = [
        // values
        ("", "expected a value, found the end of the text at line 1, column 1 (byte 0)"),
        ("  ", "expected a value, found the end of the text at line 1, column 3 (byte 2)"),
        ("+1", "expected a value, found '+' at line 1, column 1 (byte 0)"),
        (".5", "expected a value, found '.' at line 1, column 1 (byte 0)"),
        ("NaN", "expected a value, found 'N' at line 1, column 1 (byte 0)"),
        ("'a'", "expected a value, found \"'\" at line 1, column 1 (byte 0)"),
        ("[1,]", "expected a value, found ']' at line 1, column 4 (byte 3)"),
        ("[,1]", "expected a value, found ',' at line 1, column 2 (byte 1)"),
        (#"{"a":}"#, "expected a value, found '}' at line 1, column 6 (byte 5)"),
        ("tru", "expected 'true' at line 1, column 1 (byte 0)"),
        ("[True]", "expected a value, found 'T' at line 1, column 2 (byte 1)"),
        ("fals", "expected 'false' at line 1, column 1 (byte 0)"),
        ("[nul]", "expected 'null' at line 1, column 2 (byte 1)"),
        ("1 2", "expected the end of the text after the value, found '2' at line 1, column 3 (byte 2)"),
        ("{}}", "expected the end of the text after the value, found '}' at line 1, column 3 (byte 2)"),
        ("truex", "expected the end of the text after the value, found 'x' at line 1, column 5 (byte 4)"),
        // objects
        ("{", "expected a string key or '}' after '{', found the end of the text at line 1, column 2 (byte 1)"),
        ("{,}", "expected a string key or '}' after '{', found ',' at line 1, column 2 (byte 1)"),
        ("{'a':1}", "expected a string key or '}' after '{', found \"'\" at line 1, column 2 (byte 1)"),
        ("{a:1}", "expected a string key or '}' after '{', found 'a' at line 1, column 2 (byte 1)"),
        ("{1:1}", "expected a string key or '}' after '{', found '1' at line 1, column 2 (byte 1)"),
        (#"{"a" 1}"#, "expected ':' after an object key, found '1' at line 1, column 6 (byte 5)"),
        (#"{"a"}"#, "expected ':' after an object key, found '}' at line 1, column 5 (byte 4)"),
        (#"{"a":1 "b":2}"#, "expected ',' or '}' after an object member, found '\"' at line 1, column 8 (byte 7)"),
        (#"{"sizes":[784,10]]"#, "expected ',' or '}' after an object member, found ']' at line 1, column 18 (byte 17)"),
        (#"{"a":1"#, "expected ',' or '}' after an object member, found the end of the text at line 1, column 7 (byte 6)"),
        (#"{"a":1,}"#, "expected a string key after ',' in an object, found '}' at line 1, column 8 (byte 7)"),
        (#"{"a":1,,"#, "expected a string key after ',' in an object, found ',' at line 1, column 8 (byte 7)"),
        // arrays
        ("[", "expected a value, found the end of the text at line 1, column 2 (byte 1)"),
        ("[1 2]", "expected ',' or ']' after an array element, found '2' at line 1, column 4 (byte 3)"),
        ("[1}", "expected ',' or ']' after an array element, found '}' at line 1, column 3 (byte 2)"),
        ("[1", "expected ',' or ']' after an array element, found the end of the text at line 1, column 3 (byte 2)"),
        // numbers
        ("01", "leading zeros are not allowed in a number at line 1, column 1 (byte 0)"),
        ("[-012]", "leading zeros are not allowed in a number at line 1, column 2 (byte 1)"),
        ("-", "expected a digit after '-', found the end of the text at line 1, column 2 (byte 1)"),
        ("-a", "expected a digit after '-', found 'a' at line 1, column 2 (byte 1)"),
        ("- 1", "expected a digit after '-', found U+0020 at line 1, column 2 (byte 1)"),
        ("1.", "expected a digit after the decimal point, found the end of the text at line 1, column 3 (byte 2)"),
        ("1.e5", "expected a digit after the decimal point, found 'e' at line 1, column 3 (byte 2)"),
        ("1e", "expected a digit in the exponent, found the end of the text at line 1, column 3 (byte 2)"),
        ("1e+", "expected a digit in the exponent, found the end of the text at line 1, column 4 (byte 3)"),
        ("[1E-x]", "expected a digit in the exponent, found 'x' at line 1, column 5 (byte 4)"),
        ("0x10", "expected the end of the text after the value, found 'x' at line 1, column 2 (byte 1)"),
        ("[1e400]", "the number is beyond the range of a double (about 1.8e308) at line 1, column 2 (byte 1)"),
        ("-1e309", "the number is beyond the range of a double (about 1.8e308) at line 1, column 1 (byte 0)"),
        ("1" + String(repeating: "0", count: 309), "the number is beyond the range of a double (about 1.8e308) at line 1, column 1 (byte 0)"),
        // strings
        (#""abc"#, #"unterminated string (no closing '"') at line 1, column 1 (byte 0)"#),
        (#"["a\"#, #"unterminated string (no closing '"') at line 1, column 2 (byte 1)"#),
        (#""a\""#, #"unterminated string (no closing '"') at line 1, column 1 (byte 0)"#),
        ("\"a\nb\"", "unescaped control character U+000A in a string at line 1, column 3 (byte 2)"),
        ("\"\t\"", "unescaped control character U+0009 in a string at line 1, column 2 (byte 1)"),
        ("\"\u{1F}\"", "unescaped control character U+001F in a string at line 1, column 2 (byte 1)"),
        (#""\x""#, #"invalid escape: '\' may be followed by one of " \ / b f n r t u, found 'x' at line 1, column 3 (byte 2)"#),
        (#""\'""#, #"invalid escape: '\' may be followed by one of " \ / b f n r t u, found "'" at line 1, column 3 (byte 2)"#),
        (#""\U0041""#, #"invalid escape: '\' may be followed by one of " \ / b f n r t u, found 'U' at line 1, column 3 (byte 2)"#),
        (#""\u12G4""#, #"expected 4 hex digits after '\u', found 'G' at line 1, column 6 (byte 5)"#),
        (#""\u12""#, #"expected 4 hex digits after '\u', found '"' at line 1, column 6 (byte 5)"#),
        (#""\u"#, #"expected 4 hex digits after '\u', found the end of the text at line 1, column 4 (byte 3)"#),
        (#""\uD800""#, #"\uD800 is a high surrogate without a \uDC00-\uDFFF low surrogate after it at line 1, column 2 (byte 1)"#),
        (#""x\ud83dy""#, #"\uD83D is a high surrogate without a \uDC00-\uDFFF low surrogate after it at line 1, column 3 (byte 2)"#),
        (#""\uD800\u0041""#, #"\uD800 is a high surrogate without a \uDC00-\uDFFF low surrogate after it at line 1, column 2 (byte 1)"#),
        (#""\uD800\uD800""#, #"\uD800 is a high surrogate without a \uDC00-\uDFFF low surrogate after it at line 1, column 2 (byte 1)"#),
        (#""\uD800\n""#, #"\uD800 is a high surrogate without a \uDC00-\uDFFF low surrogate after it at line 1, column 2 (byte 1)"#),
        (#""\uDC00""#, #"\uDC00 is a low surrogate without a high surrogate before it at line 1, column 2 (byte 1)"#),
        (#""\uD800\uZZZZ""#, #"expected 4 hex digits after '\u', found 'Z' at line 1, column 10 (byte 9)"#),
        // positions: lines count '\n', columns count Unicode scalars
        ("{\n  \"a\": 1,\n  \"b\" 2\n}", "expected ':' after an object key, found '2' at line 3, column 7 (byte 18)"),
        ("[\"éé\", x]", "expected a value, found 'x' at line 1, column 8 (byte 9)"),
        ("[\r\n1\r\n2]", "expected ',' or ']' after an array element, found '2' at line 3, column 1 (byte 6)"),
    ]

    @Test(arguments: errors)
    func errorMessage(_ text: String, _ expected: String) {
        #expect(message { try parse(text) } == "the text is not valid JSON: " + expected)
    }

    /// Bytes a Swift string literal cannot hold: invalid UTF-8, NUL, a byte order mark.
    static let byteCases: [([UInt8], String)] = [
        ([0x22, 0xFF, 0x22], "invalid UTF-8 in a string, found byte 0xFF at line 1, column 2 (byte 1)"),
        ([0x22, 0x80, 0x22], "invalid UTF-8 in a string, found byte 0x80 at line 1, column 2 (byte 1)"),  // a lone continuation
        ([0x22, 0xC0, 0xAF, 0x22], "invalid UTF-8 in a string, found byte 0xC0 at line 1, column 2 (byte 1)"),  // overlong '/'
        ([0x22, 0xE0, 0x80, 0xAF, 0x22], "invalid UTF-8 in a string, found byte 0x80 at line 1, column 3 (byte 2)"),  // overlong
        ([0x22, 0xF0, 0x80, 0x80, 0xAF, 0x22], "invalid UTF-8 in a string, found byte 0x80 at line 1, column 3 (byte 2)"),
        ([0x22, 0xED, 0xA0, 0x80, 0x22], "invalid UTF-8 in a string, found byte 0xA0 at line 1, column 3 (byte 2)"),  // U+D800
        ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], "invalid UTF-8 in a string, found byte 0x90 at line 1, column 3 (byte 2)"),  // > U+10FFFF
        ([0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], "invalid UTF-8 in a string, found byte 0xF5 at line 1, column 2 (byte 1)"),
        ([0x22, 0xE2, 0x82, 0x41, 0x22], "invalid UTF-8 in a string, found 'A' at line 1, column 3 (byte 3)"),  // cut short
        ([0x22, 0xE2, 0x82], "invalid UTF-8 in a string, found the end of the text at line 1, column 3 (byte 3)"),
        ([0x22, 0x00, 0x22], "unescaped control character U+0000 in a string at line 1, column 2 (byte 1)"),
        ([0x00], "expected a value, found U+0000 at line 1, column 1 (byte 0)"),
        ([0x31, 0x00], "expected the end of the text after the value, found U+0000 at line 1, column 2 (byte 1)"),
        ([0xEF, 0xBB, 0xBF, 0x31], "expected a value, found byte 0xEF at line 1, column 1 (byte 0)"),
        ([0x5B, 0x7F, 0x5D], "expected a value, found U+007F at line 1, column 2 (byte 1)"),
    ]

    @Test(arguments: byteCases)
    func byteErrors(_ bytes: [UInt8], _ expected: String) {
        #expect(message { try parse(bytes: bytes) } == "the text is not valid JSON: " + expected)
    }

    @Test func validUTF8OfEveryLengthIsRead() throws {
        // U+0080, U+07FF, U+0800, U+FFFF, U+10000, U+10FFFF: the ends of each encoding length
        let text = "\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}\u{E000}\u{D7FF}"
        #expect(try parse("\"\(text)\"") == .string(text))
    }

    @Test func duplicateKeysAreRefused() throws {
        #expect(message { try parse(#"{"a":1,"a":2}"#) } == #"the text has the key "a" twice in one object at line 1, column 8 (byte 7)"#)
        #expect(message { try parse(#"{"x":{"b":[],"c":0,"b":{}}}"#) }
                == #"the text has the key "b" twice in one object at line 1, column 20 (byte 19)"#)
        // the same key after an escape is the same key
        #expect(message { try parse(#"{"é":1,"\u00e9":2}"#) } == #"the text has the key "é" twice in one object at line 1, column 8 (byte 8)"#)
        // a long key is cut in the message
        let long = String(repeating: "k", count: 500)
        #expect(message { try parse("{\"\(long)\":1,\"\(long)\":2}") }
                == "the text has the key \"\(String(repeating: "k", count: 100))...\" twice in one object at line 1, column 507 (byte 506)")
        // the same key in different objects is fine
        #expect(try parse(#"[{"a":1},{"a":2}]"#) == .array([.object(["a": .number(1)]), .object(["a": .number(2)])]))
    }

    // MARK: - the nesting limit

    @Test func nestingUpToTheLimitIsRead() throws {
        #expect(JSONParser.maxDepth == 64)
        var arrays = JSONValue.number(1)
        for _ in 0..<64 { arrays = .array([arrays]) }
        #expect(try parse(nested(64, "[", "]", inner: "1")) == arrays)
        var objects = JSONValue.null
        for _ in 0..<64 { objects = .object(["k": objects]) }
        #expect(try parse(nested(64, #"{"k":"#, "}", inner: "null")) == objects)
        // side by side is not deeper
        let wide = "[" + Array(repeating: nested(63, "[", "]"), count: 100).joined(separator: ",") + "]"
        guard case .array(let items) = try parse(wide) else { Issue.record("not an array"); return }
        #expect(items.count == 100)
    }

    @Test func nestingPastTheLimitIsRefused() {
        let limit = "nests arrays and objects more than 64 levels deep"
        #expect(message { try parse(nested(65, "[", "]")) } == "the text \(limit) at line 1, column 65 (byte 64)")
        #expect(message { try parse(nested(65, #"{"k":"#, "}", inner: "0")) } == "the text \(limit) at line 1, column 321 (byte 320)")
        // mixed, with the deepest level on another line; the error comes before the text ends
        let mixed = String(repeating: "[{\"a\":", count: 32) + "\n[" + String(repeating: "x", count: 100)
        #expect(message { try parse(mixed) } == "the text \(limit) at line 2, column 1 (byte 193)")
        // far past it: refused at the same place, without recursing further
        #expect(message { try parse(nested(1_000_000, "[", "]")) } == "the text \(limit) at line 1, column 65 (byte 64)")
    }

    // MARK: - reading entry by entry

    @Test func entryByEntry() throws {
        let text = Array(#" { "n" : [1, 2.5], "s": "x", "e": {}, "o": {"k": [[]]} } "#.utf8)
        try text.withUnsafeBufferPointer { buffer in
            var json = JSONParser(buffer, what: "the text")
            #expect(try json.kind() == .object)
            try json.begin(.object)
            var seen: [String] = []
            while let member = try json.nextMember() {
                seen.append(member.key)
                switch member.key {
                case "n":
                    try json.begin(.array)
                    var numbers: [Double] = []
                    while try json.nextElement() { numbers.append(try json.number()) }
                    #expect(numbers == [1, 2.5])
                case "s":
                    #expect(try json.kind() == .string)
                    #expect(try json.string() == "x")
                case "e":
                    try json.begin(.object)
                    #expect(try json.nextMember() == nil)
                default:
                    #expect(try json.value() == .object(["k": .array([.array([])])]))
                }
            }
            try json.end()
            #expect(seen == ["n", "s", "e", "o"])
        }
        // a reader that expects one kind and meets another
        try Array("[1]".utf8).withUnsafeBufferPointer { buffer in
            var json = JSONParser(buffer, what: "the text")
            #expect(message { try json.begin(.object) } == "the text is not valid JSON: expected an object, found '[' at line 1, column 1 (byte 0)")
            #expect(message { try json.string() } == "the text is not valid JSON: expected a string, found '[' at line 1, column 1 (byte 0)")
            try json.begin(.array)
            #expect(try json.nextElement())
            #expect(message { try json.begin(.array) } == "the text is not valid JSON: expected an array, found '1' at line 1, column 2 (byte 1)")
        }
    }

    // MARK: - time and size

    /// Hostile nesting is refused at the limit, not after scanning what lies beyond it: 16 KB of
    /// four 511-deep blocks (which took Foundation's decoder 25 s) goes in far under a second.
    /// The bound only guards against superlinear work; the real time is microseconds.
    @Test func hostileNestingIsRefusedQuickly() {
        let block = nested(511, "[", "]")
        let text = "[" + Array(repeating: block, count: 4).joined(separator: ",") + "," + String(repeating: " ", count: 16_384 - 4 * 1022 - 7) + "1]"
        #expect(text.utf8.count == 16_384)
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            #expect(message { try parse(text) } == "the text nests arrays and objects more than 64 levels deep at line 1, column 65 (byte 64)")
        }
        #expect(elapsed < .seconds(1), "\(elapsed)")
    }

    /// Megabytes that nest up to the limit everywhere are read in one linear pass.
    @Test func megabytesNestedToTheLimitAreRead() throws {
        let block = nested(63, "[", "]", inner: "0")
        let count = 20_000  // 2.5 MB
        let text = "[" + Array(repeating: block, count: count).joined(separator: ",") + "]"
        let clock = ContinuousClock()
        var value = JSONValue.null
        let elapsed = try clock.measure { value = try parse(text) }
        guard case .array(let items) = value else { Issue.record("not an array"); return }
        #expect(items.count == count)
        #expect(elapsed < .seconds(30), "\(elapsed) for \(text.utf8.count) bytes")
    }
}
