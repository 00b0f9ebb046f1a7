// The one definition of the status codes. scripts/generate_header.py renders this enum (doc
// comments, values and the C names of `cName`) as `descent_status` in include/descent.h, and
// the Python binding's codes are tested against that header (bindings/python/tests).

/// Status codes. Every function that can fail returns one of these as an `int32_t`; 0 is
/// success. On failure, `descent_last_error()` says which function, which argument and what
/// is wrong. New codes may be added at the end; treat unknown non-zero codes as errors.
public enum Status: Int32, Sendable, CaseIterable {
    /// Success.
    case ok = 0
    /// An argument is NULL, out of range, malformed, non-finite or of the wrong size.
    case invalidArgument = 1
    /// A name (optimizer, hyperparameter, file, directory) does not exist.
    case notFound = 2
    /// NaN or Inf in data that must be finite (gradients, inputs).
    case numeric = 3
    /// Tensor count or lengths differ from those the optimizer state was created for.
    case shapeMismatch = 4
    /// Reading or writing a file failed.
    case io = 5
    /// A file's contents are not in the expected format.
    case format = 6
    /// A plugin could not be loaded, collides with a loaded name, or its optimizer failed.
    case plugin = 7
    /// Memory could not be allocated.
    case outOfMemory = 8
    /// The caller's buffer is too small; the needed size was written to `*needed`.
    case bufferTooSmall = 9

    /// The status's C name, e.g. `DESCENT_ERR_NUMERIC`.
    public var cName: String {
        switch self {
        case .ok: "DESCENT_OK"
        case .invalidArgument: "DESCENT_ERR_INVALID_ARGUMENT"
        case .notFound: "DESCENT_ERR_NOT_FOUND"
        case .numeric: "DESCENT_ERR_NUMERIC"
        case .shapeMismatch: "DESCENT_ERR_SHAPE"
        case .io: "DESCENT_ERR_IO"
        case .format: "DESCENT_ERR_FORMAT"
        case .plugin: "DESCENT_ERR_PLUGIN"
        case .outOfMemory: "DESCENT_ERR_OUT_OF_MEMORY"
        case .bufferTooSmall: "DESCENT_ERR_BUFFER_TOO_SMALL"
        }
    }
}

/// An error with a status and a message that names the argument and the problem.
public struct DescentError: Error, Equatable, CustomStringConvertible, Sendable {
    public let status: Status
    public let message: String

    public init(_ status: Status, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { "\(status.cName): \(message)" }

    static func invalid(_ message: String) -> DescentError { DescentError(.invalidArgument, message) }
}

/// Runs `body`; a DescentError it throws gets "prefix: " before its message. The prefix is
/// built only then, so a hot path pays nothing for it.
func withErrorPrefix<T>(_ prefix: @autoclosure () -> String, _ body: () throws -> T) rethrows -> T {
    do {
        return try body()
    } catch let error as DescentError {
        throw DescentError(error.status, "\(prefix()): \(error.message)")
    }
}
