// Shared helpers for the Descent Swift tests: deterministic data, float tensors at stable
// addresses for the pointer API, tolerant and bitwise comparisons, and error assertions.
import Testing
@testable import Descent

/// The built-in optimizers, in registration order.
let builtinNames = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]

/// Relative tolerance for comparing the library against the Double references.
///
/// The kernels compute in float32 (24-bit mantissa, unit roundoff 2^-24 ~ 6e-8) while the
/// references compute in float64 from the same float32 inputs. One step costs a few roundings
/// (a multiply-add, a sqrt, a division), each at most 6e-8 relative; over 5 steps that stays
/// well below 1e-6 as long as no value is the difference of two nearly equal numbers (the
/// test data keeps every gradient's sign fixed per element and every parameter away from 0,
/// so that never happens). 1e-5 leaves a wide margin for that, yet catches any formula error:
/// a wrong constant, a missing bias correction, eps in the wrong place or the new velocity
/// instead of the old one all change results by far more than 1e-5.
let relativeTolerance = 1e-5

/// SplitMix64: a tiny deterministic generator, so every run sees the same test data.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [a, b).
    mutating func uniform(_ a: Double, _ b: Double) -> Double {
        a + (b - a) * Double(next() >> 11) / Double(1 << 53)
    }
    mutating func sign() -> Double { next() & 1 == 0 ? 1 : -1 }
}

/// Parameter and gradient tensors in manually allocated memory, so their addresses are stable
/// for `Optimizer.step(count:params:grads:lengths:)`.
final class TensorSet {
    let lengths: [Int64]
    let params: [UnsafeMutableBufferPointer<Float>]
    let grads: [UnsafeMutableBufferPointer<Float>]

    init(lengths: [Int]) {
        self.lengths = lengths.map(Int64.init)
        params = lengths.map { n in
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, n))
            b.initialize(repeating: 0)
            return UnsafeMutableBufferPointer(rebasing: b[0..<n])
        }
        grads = lengths.map { n in
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, n))
            b.initialize(repeating: 0)
            return UnsafeMutableBufferPointer(rebasing: b[0..<n])
        }
    }

    convenience init(params: [[Float]]) {
        self.init(lengths: params.map(\.count))
        setParams(params)
    }

    deinit {
        for b in params { b.baseAddress?.deallocate() }
        for b in grads { b.baseAddress?.deallocate() }
    }

    var count: Int { lengths.count }

    func setParams(_ values: [[Float]]) {
        for (b, v) in zip(params, values) { for i in v.indices { b[i] = v[i] } }
    }

    func setGrads(_ values: [[Float]]) {
        for (b, v) in zip(grads, values) { for i in v.indices { b[i] = v[i] } }
    }

    var paramValues: [[Float]] { params.map(Array.init) }

    /// One optimizer step over all tensors through the pointer API (the one C uses).
    func step(_ optimizer: Optimizer) throws {
        try callStep(optimizer, count: Int64(count), params: paramPointers, grads: gradPointers, lengths: lengths)
    }

    var paramPointers: [UnsafeMutablePointer<Float>?] { params.map(\.baseAddress) }
    var gradPointers: [UnsafePointer<Float>?] { grads.map { $0.baseAddress.map { UnsafePointer($0) } } }
}

/// Calls the pointer-level step with Swift arrays; a nil array passes a NULL pointer.
func callStep(_ optimizer: Optimizer, count: Int64, params: [UnsafeMutablePointer<Float>?]?,
              grads: [UnsafePointer<Float>?]?, lengths: [Int64]?) throws {
    func with<T, R>(_ array: [T]?, _ body: (UnsafePointer<T>?) throws -> R) rethrows -> R {
        guard let array else { return try body(nil) }
        return try array.withUnsafeBufferPointer { try body($0.baseAddress) }
    }
    try with(params) { p in
        try with(grads) { g in
            try with(lengths) { l in
                try optimizer.step(count: count, params: p, grads: g, lengths: l)
            }
        }
    }
}

/// Every state buffer of an optimizer, [tensor][slot], copied (nil before the first step).
func stateSnapshot(_ optimizer: Optimizer) -> [[[Float]]]? {
    guard !optimizer.stateShape.isEmpty else { return nil }
    return (0..<optimizer.stateShape.count).map { i in
        (0..<optimizer.kind.stateCount).map { s in Array(optimizer.state(tensor: i, slot: s)!) }
    }
}

/// Bit patterns, for exact comparisons (so that -0 vs 0 and NaN payloads count too).
func bits(_ x: [[Float]]) -> [[UInt32]] { x.map { $0.map(\.bitPattern) } }
func bits(_ x: [[[Float]]]?) -> [[[UInt32]]]? { x.map { $0.map(bits) } }

/// Checks `actual` against `expected` element by element with a relative tolerance and records
/// one issue naming the worst element (not one per element: tensors here have thousands).
func expectClose(_ actual: some Collection<Float>, _ expected: [Double], relative: Double = relativeTolerance,
                 _ what: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation) {
    let a = Array(actual)
    guard a.count == expected.count else {
        Issue.record("\(what()): \(a.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    var worst = 0.0, worstIndex = -1
    for i in a.indices {
        let e = expected[i], x = Double(a[i])
        let err = e == 0 ? abs(x) : abs(x - e) / abs(e)
        if !(err <= worst) { worst = err; worstIndex = i }   // NaN counts as worst
    }
    if worstIndex >= 0, !(worst <= relative) {
        let text = "\(what()): element \(worstIndex) is \(a[worstIndex]), expected \(expected[worstIndex]) "
            + "(relative error \(worst) > \(relative))"
        Issue.record(Comment(rawValue: text), sourceLocation: sourceLocation)
    }
}

/// Checks that `body` throws a DescentError with exactly this status and message.
func expectDescentError(_ status: Status, _ message: String, sourceLocation: SourceLocation = #_sourceLocation,
                        _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected \(status.cName) \"\(message)\", but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as DescentError {
        #expect(error.status == status, "message: \(error.message)", sourceLocation: sourceLocation)
        #expect(error.message == message, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a DescentError, got \(error)", sourceLocation: sourceLocation)
    }
}

/// "lr=0.1,momentum=0.9" from ordered pairs.
func hparamText(_ pairs: [HP]) -> String {
    pairs.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
}

/// One hyperparameter setting (Sendable, unlike a tuple in older compilers' eyes).
struct HP: Sendable {
    let key: String
    let value: Double
    init(_ key: String, _ value: Double) { self.key = key; self.value = value }
}
