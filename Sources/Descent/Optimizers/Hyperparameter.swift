import CDescentKernels

/// One hyperparameter of an optimizer: its name, default and allowed range.
public struct Hyperparameter: Sendable, Equatable {
    public let name: String
    public let help: String
    public let defaultValue: Double
    public let minimum: Double
    public let maximum: Double
    public let minimumExclusive: Bool
    public let maximumExclusive: Bool
    /// Only 0 and 1 are allowed.
    public let isBoolean: Bool
    /// Provided by the host, not the optimizer: L2 `weight_decay` and `check_finite`.
    public let isHostProvided: Bool

    /// The range as an interval, e.g. `(0, inf)` or `[0, 1)`.
    public var rangeDescription: String {
        if isBoolean { return "{0, 1}" }
        // An infinite end is never included: values must be finite.
        let open = minimumExclusive || minimum.isInfinite, close = maximumExclusive || maximum.isInfinite
        return (open ? "(" : "[") + Self.format(minimum) + ", " + Self.format(maximum) + (close ? ")" : "]")
    }

    /// Throws unless `value` is finite and inside the range, both as given and as the float
    /// the kernels compute with (1e39 becomes inf, 0.99999999 becomes 1, 1e-320 becomes 0).
    public func validate(_ value: Double) throws {
        guard value.isFinite else {
            throw DescentError(.invalidArgument, "hyperparameter '\(name)' must be finite, got \(Self.format(value))")
        }
        guard contains(value) else {
            throw DescentError(.invalidArgument,
                "hyperparameter '\(name)' = \(Self.format(value)) is out of range \(rangeDescription)")
        }
        let asFloat = Double(Float(value))
        guard contains(asFloat) else {
            throw DescentError(.invalidArgument,
                "hyperparameter '\(name)' = \(Self.format(value)) is out of range \(rangeDescription) "
                    + "as the float32 the update uses (\(Self.format(asFloat)))")
        }
    }

    private func contains(_ value: Double) -> Bool {
        if isBoolean { return value == 0 || value == 1 }
        let aboveMin = minimumExclusive ? value > minimum : value >= minimum
        let belowMax = maximumExclusive ? value < maximum : value <= maximum
        return aboveMin && belowMax && !value.isInfinite
    }

    /// Shortest text that reads back as the same double; `inf`/`-inf`/`nan` for the rest.
    static func format(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// Whether the host checks gradients for NaN/Inf before a step (1, the default) or trusts
    /// them (0): the check is a separate read of every gradient, up to a quarter of a large
    /// step's time, which callers that guarantee finite gradients can skip.
    static let hostCheckFinite = Hyperparameter(
        name: "check_finite",
        help: "1: refuse gradients with NaN/Inf before writing anything; 0: skip that extra read (NaN/Inf then reach the parameters)",
        defaultValue: 1, minimum: 0, maximum: 1,
        minimumExclusive: false, maximumExclusive: false, isBoolean: true, isHostProvided: true)

    /// The L2 weight decay the host adds to optimizers that do not declare `weight_decay`.
    static let hostWeightDecay = Hyperparameter(
        name: "weight_decay", help: "L2 penalty: the gradient becomes g + weight_decay*p",
        defaultValue: 0, minimum: 0, maximum: .infinity,
        minimumExclusive: false, maximumExclusive: false, isBoolean: false, isHostProvided: true)
}

/// Parses `"lr=0.01, momentum=0.9"` into ordered (key, value) pairs. Whitespace around keys
/// and values is ignored; an empty string means no pairs. Values must parse completely as
/// finite numbers; a key may appear once.
func parseHyperparameterList(_ text: String) throws -> [(key: String, value: Double)] {
    var pairs: [(key: String, value: Double)] = []
    let trimmedAll = text.trimmingSpaces()
    if trimmedAll.isEmpty { return pairs }
    for (position, item) in trimmedAll.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
        let entry = String(item).trimmingSpaces()
        let parts = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw DescentError.invalid("malformed hyperparameters \"\(text)\": item \(position + 1) \"\(entry)\" is not key=value")
        }
        let key = String(parts[0]).trimmingSpaces()
        let valueText = String(parts[1]).trimmingSpaces()
        guard !key.isEmpty else {
            throw DescentError.invalid("malformed hyperparameters \"\(text)\": item \(position + 1) has no key")
        }
        guard let value = Double(valueText), valueText.allSatisfy({ !$0.isLetter || $0 == "e" || $0 == "E" }) else {
            throw DescentError.invalid("malformed hyperparameters \"\(text)\": value of '\(key)' is \"\(valueText)\", not a number")
        }
        guard !pairs.contains(where: { $0.key == key }) else {
            throw DescentError.invalid("malformed hyperparameters \"\(text)\": '\(key)' is given twice")
        }
        pairs.append((key, value))
    }
    return pairs
}

extension String {
    func trimmingSpaces() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }
}
