import FoundationEssentials

/// Any JSON value, decoded with Foundation's JSONDecoder. Network specs and checkpoint headers
/// are read into this first, so every field can be checked by name with a precise message
/// (Decodable structs would drop unknown keys silently).
public enum JSONValue: Decodable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    /// Parses UTF-8 JSON text; the message says what is wrong.
    public static func parse(_ bytes: some Collection<UInt8>, what: String) throws -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch let DecodingError.dataCorrupted(context) {
            throw DescentError(.format, "\(what) is not valid JSON: \(context.debugDescription)")
        } catch {
            throw DescentError(.format, "\(what) is not valid JSON")
        }
    }

    /// A short name of the value's type for messages: "a string", "an array", ...
    public var kindName: String {
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
