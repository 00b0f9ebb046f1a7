// Shared helpers of the Network*Tests files: deterministic test data, array-based wrappers
// around the pointer API, access to the layers, a bitwise snapshot of everything a failed call
// must leave alone, and a float64 reference implementation of the network (written
// out below from its documented semantics) that the gradient checks differentiate numerically.
import CDescentKernels
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import Descent

// MARK: - test data

/// splitmix64: test inputs that do not depend on the library's own generator.
struct TestRandom {
    private var state: UInt64
    init(_ seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Standard normal (Box-Muller).
    mutating func normal() -> Double {
        let u1 = 1 - uniform(), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    mutating func floats(_ n: Int, std: Double = 1, mean: Double = 0) -> [Float] {
        (0..<n).map { _ in Float(mean + std * normal()) }
    }

    static func floats(seed: UInt64, _ n: Int) -> [Float] {
        var r = TestRandom(seed)
        return r.floats(n)
    }

    mutating func labels(_ n: Int, classes: Int) -> [Int32] {
        (0..<n).map { _ in Int32(next() % UInt64(classes)) }
    }
}

// MARK: - network conveniences

extension Network {
    convenience init(_ json: String) throws { try self.init(json: json) }

    func parameter(_ name: String) -> Parameter { parameters.first { $0.name == name }! }

    @discardableResult
    func forwardBackward(_ x: [Float], _ labels: [Int32]) throws -> Float {
        try forwardBackward(x: x, labels: labels, batch: labels.count)
    }

    @discardableResult
    func trainStep(_ x: [Float], _ labels: [Int32]) throws -> Float {
        try trainStep(x: x, labels: labels, batch: labels.count)
    }

    func predict(_ x: [Float]) throws -> [Float] {
        let batch = x.count / inputSize
        var out = [Float](repeating: .nan, count: batch * classes)
        try out.withUnsafeMutableBufferPointer { try predict(x: x, batch: batch, probabilities: $0.baseAddress) }
        return out
    }

    /// The private layer list, read by reflection (tests only).
    var layerList: [any Layer] {
        Mirror(reflecting: self).children.first { $0.label == "layers" }!.value as! [any Layer]
    }

    var dropoutLayers: [DropoutLayer] { layerList.compactMap { $0 as? DropoutLayer } }

    /// The masks of the last training forward pass, one per dropout layer, as [rows * width].
    func lastMasks(rows: Int) -> [[Double]] {
        dropoutLayers.map { layer in (0..<rows * layer.width).map { Double(layer.lastMask[$0]) } }
    }
}

extension DropoutLayer {
    /// The private mask of the last training forward pass, read by reflection (tests only).
    var lastMask: UnsafeMutablePointer<Float> {
        (Mirror(reflecting: self).children.first { $0.label == "mask" }!.value as! FloatBuffer).pointer
    }
}

extension FloatBuffer {
    var array: [Float] { Array(buffer) }
    var doubles: [Double] { buffer.map(Double.init) }
    func set(_ values: [Float]) {
        precondition(values.count <= count)
        pointer.update(from: values, count: values.count)
    }
}

func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

// MARK: - "nothing changed"

/// Everything a failed call must leave as it was, compared bit for bit.
struct NetworkSnapshot: Equatable, CustomStringConvertible {
    var values: [[UInt32]]
    var running: [[UInt32]]
    var optimizerName: String
    var stepCount: Int64
    var optimizerState: [[UInt32]]
    var rng: [UInt64]
    var pendingGradients: Bool

    init(_ net: Network) {
        values = net.parameters.map { bits($0.value.array) }
        running = net.runningStatistics.flatMap { [bits($0.mean.array), bits($0.variance.array)] }
        optimizerName = net.optimizer.kind.name
        stepCount = net.optimizer.stepCount
        var state: [[UInt32]] = []
        for t in 0..<net.optimizer.stateShape.count {
            for s in 0..<net.optimizer.kind.stateCount {
                if let b = net.optimizer.state(tensor: t, slot: s) { state.append(b.map(\.bitPattern)) }
            }
        }
        optimizerState = state
        let s = net.rng.pointee.s
        rng = [s.0, s.1, s.2, s.3]
        pendingGradients = net.hasPendingGradients
    }

    var description: String {
        "snapshot(step \(stepCount), \(optimizerName), pending \(pendingGradients), rng \(rng[0]))"
    }
}

/// Runs `body`, which must throw a DescentError with exactly this status and message, and
/// checks that the network is bitwise as it was before.
func expectFailure(_ net: Network, _ status: Status, _ message: String, _ context: String = "",
                   sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    let before = NetworkSnapshot(net)
    do {
        try body()
        Issue.record("\(context): expected \(status.cName): \(message), but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as DescentError {
        #expect(error.status == status, "\(context)", sourceLocation: sourceLocation)
        #expect(error.message == message, "\(context)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("\(context): expected a DescentError, got \(error)", sourceLocation: sourceLocation)
    }
    #expect(NetworkSnapshot(net) == before, "\(context): a failed call changed the network", sourceLocation: sourceLocation)
}

// MARK: - comparisons

/// The first element where |actual - expected| > abs + rel * |expected|, as a message.
func firstMismatch(_ actual: [Double], _ expected: [Double], abs tolAbs: Double, rel tolRel: Double) -> String? {
    guard actual.count == expected.count else { return "count \(actual.count) != \(expected.count)" }
    for i in actual.indices {
        let a = actual[i], e = expected[i]
        if !(Swift.abs(a - e) <= tolAbs + tolRel * Swift.abs(e)) {
            return "[\(i)]: got \(a), expected \(e) (difference \(a - e))"
        }
    }
    return nil
}

func maxAbs(_ v: [Double]) -> Double { v.map { Swift.abs($0) }.max() ?? 0 }

// MARK: - float64 reference network

/// The network's semantics re-implemented in double precision, independently of the library:
/// hidden block Affine -> BatchNorm (batch mean, biased variance, eps 1e-6; or the running
/// averages in evaluation) -> activation -> inverted dropout (the given masks, already scaled);
/// last block Affine -> softmax cross-entropy averaged over the batch; plus
/// 0.5 * lambda * sum(W^2) over the weights only.
struct ReferenceMLP {
    let spec: NetworkSpec
    /// In the network's order: W1, b1, [gamma1, beta1,] W2, ...
    var params: [[Double]]

    init(_ net: Network) {
        spec = net.spec
        params = net.parameters.map(\.value.doubles)
    }

    enum Mode {
        /// One mask per hidden layer when the spec has dropout (values 0 or 1/(1-ratio)).
        case training(masks: [[Double]])
        case evaluation(running: [(mean: [Double], variance: [Double])])
    }

    struct Pass {
        var scores: [Double] = []
        /// Per hidden layer: the affine output (batch-norm input), [rows][width].
        var affine: [[Double]] = []
        /// Per hidden layer: the activation output, before dropout.
        var hidden: [[Double]] = []
    }

    static let eps = 1e-6

    func activate(_ v: Double) -> Double {
        switch spec.activation {
        case .relu: v > 0 ? v : 0
        case .sigmoid: 1 / (1 + exp(-v))
        case .tanh: tanh(v)
        }
    }

    func forward(_ x: [Double], rows: Int, mode: Mode) -> Pass {
        var pass = Pass()
        var h = x
        var p = 0
        let sizes = spec.sizes
        for i in 1..<sizes.count {
            let fanIn = sizes[i - 1], fanOut = sizes[i]
            let w = params[p], b = params[p + 1]
            p += 2
            var y = [Double](repeating: 0, count: rows * fanOut)
            for r in 0..<rows {
                for c in 0..<fanOut {
                    var s = b[c]
                    for k in 0..<fanIn { s += h[r * fanIn + k] * w[k * fanOut + c] }
                    y[r * fanOut + c] = s
                }
            }
            if i == sizes.count - 1 {
                pass.scores = y
                break
            }
            pass.affine.append(y)
            let layer = i - 1
            if spec.batchNorm {
                let gamma = params[p], beta = params[p + 1]
                p += 2
                for c in 0..<fanOut {
                    let mean: Double, variance: Double
                    switch mode {
                    case .training:
                        mean = (0..<rows).reduce(0.0) { $0 + y[$1 * fanOut + c] } / Double(rows)
                        variance = (0..<rows).reduce(0.0) {
                            let d = y[$1 * fanOut + c] - mean
                            return $0 + d * d
                        } / Double(rows)
                    case .evaluation(let running):
                        mean = running[layer].mean[c]
                        variance = running[layer].variance[c]
                    }
                    let scale = 1 / (variance + Self.eps).squareRoot()
                    for r in 0..<rows {
                        y[r * fanOut + c] = gamma[c] * (y[r * fanOut + c] - mean) * scale + beta[c]
                    }
                }
            }
            y = y.map(activate)
            pass.hidden.append(y)
            if spec.dropout > 0, case .training(let masks) = mode {
                for j in y.indices { y[j] *= masks[layer][j] }
            }
            h = y
        }
        return pass
    }

    /// Row-wise softmax of the scores.
    func probabilities(_ scores: [Double], rows: Int) -> [Double] {
        let k = spec.classes
        var out = scores
        for r in 0..<rows {
            let row = scores[r * k..<(r + 1) * k]
            let m = row.max()!
            let sum = row.reduce(0) { $0 + exp($1 - m) }
            for c in 0..<k { out[r * k + c] = exp(scores[r * k + c] - m) / sum }
        }
        return out
    }

    func penalty() -> Double {
        guard spec.weightDecay > 0 else { return 0 }
        var sum = 0.0
        var p = 0
        for i in 1..<spec.sizes.count {
            sum += params[p].reduce(0) { $0 + $1 * $1 }
            p += 2
            if i < spec.sizes.count - 1, spec.batchNorm { p += 2 }
        }
        return 0.5 * spec.weightDecay * sum
    }

    /// Mean cross-entropy over the rows plus the weight-decay penalty.
    func loss(_ x: [Double], labels: [Int32], mode: Mode) -> Double {
        let rows = labels.count, k = spec.classes
        let scores = forward(x, rows: rows, mode: mode).scores
        var total = 0.0
        for r in 0..<rows {
            let row = scores[r * k..<(r + 1) * k]
            let m = row.max()!
            let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
            total += lse - scores[r * k + Int(labels[r])]
        }
        return total / Double(rows) + penalty()
    }

    /// Central differences of `loss` in double for every coordinate of every parameter.
    func numericalGradients(_ x: [Double], labels: [Int32], masks: [[Double]], h: Double = 1e-6) -> [[Double]] {
        var copy = self
        var grads: [[Double]] = []
        for p in params.indices {
            var g = [Double](repeating: 0, count: params[p].count)
            for j in params[p].indices {
                let w = params[p][j]
                copy.params[p][j] = w + h
                let up = copy.loss(x, labels: labels, mode: .training(masks: masks))
                copy.params[p][j] = w - h
                let down = copy.loss(x, labels: labels, mode: .training(masks: masks))
                copy.params[p][j] = w
                g[j] = (up - down) / (2 * h)
            }
            grads.append(g)
        }
        return grads
    }
}
