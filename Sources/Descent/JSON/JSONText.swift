/// The little JSON *writing* Descent needs (describe output, checkpoint headers), and the hex
/// digits that JSON escapes and error messages show.

/// A JSON string literal, with quotes, backslashes and control characters escaped.
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            out += "\\u" + hex(scalar.value, digits: 4, uppercase: false)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// A JSON number; infinities (open range ends) and NaN become `null`.
func jsonNumber(_ x: Double) -> String {
    x.isFinite ? Hyperparameter.format(x) : "null"
}

/// `value` in hex digits (uppercase unless told), zero-padded to at least `digits`.
func hex(_ value: some BinaryInteger, digits: Int, uppercase: Bool = true) -> String {
    let text = String(value, radix: 16, uppercase: uppercase)
    return String(repeating: "0", count: max(0, digits - text.count)) + text
}
