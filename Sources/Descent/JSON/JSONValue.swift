/// Any JSON value. Network specs are read into this first, so every field can be checked by
/// name with a precise message (Decodable structs would drop unknown keys silently).
/// `JSONParser` reads the text; safetensors headers are read entry by entry with it instead,
/// without a tree.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses UTF-8 JSON text that must be one value. Errors are `.format`, e.g. "the network
    /// spec is not valid JSON: expected ',' or '}' after an object member, found ']' at line 1,
    /// column 18 (byte 17)" for `{"sizes":[784,10]]` with `what` "the network spec"; see
    /// `JSONParser` for the rules and the nesting limit.
    public static func parse(_ bytes: some Collection<UInt8>, what: String) throws -> JSONValue {
        func parse(_ text: UnsafeBufferPointer<UInt8>) throws -> JSONValue {
            var parser = JSONParser(text, what: what)
            let value = try parser.value()
            try parser.end()
            return value
        }
        if let value = try bytes.withContiguousStorageIfAvailable(parse) { return value }
        return try Array(bytes).withUnsafeBufferPointer(parse)
    }

    /// A short name of the value's type for messages: "a string", "an array", ...
    public var kindName: String { kind.name }

    var kind: JSONParser.Kind {
        switch self {
        case .null: .null
        case .bool: .bool
        case .number: .number
        case .string: .string
        case .array: .array
        case .object: .object
        }
    }
}
