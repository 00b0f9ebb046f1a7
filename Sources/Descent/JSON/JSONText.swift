/// The little JSON *writing* Descent needs (describe output, checkpoint headers).

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
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// A JSON number; infinities (open range ends) and NaN become `null`.
func jsonNumber(_ x: Double) -> String {
    x.isFinite ? Hyperparameter.format(x) : "null"
}
