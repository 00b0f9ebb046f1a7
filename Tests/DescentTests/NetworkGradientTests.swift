// Gradient checks for every layer type and for whole networks.
//
// Two kinds of check:
//  * Against float64: the library's analytic gradients (float32) are compared with central
//    differences of a double-precision reference (ReferenceMLP, or a per-layer formula) taken
//    at the library's own float32 weights, h = 1e-6. In double the difference quotient is good
//    to ~1e-9 (rounding ~1e-16/1e-6, truncation ~h^2), so the tolerance is for the library's
//    float32 arithmetic: values and gradients are O(0.01..1) and each is a sum of at most ~20
//    float32 products through up to three layers (batch norm multiplies by 1/std of the
//    batch), i.e. errors of a few float32 ulps, ~1e-7 (measured worst: 2e-7 absolute over all
//    configurations, loss within 6e-8 relative). We allow abs 1e-5 + rel 1e-4 on gradients
//    and 1e-6 relative on the loss: 20-50x the measured error, yet far below what a wrong
//    formula produces (a missing term, a wrong eps, a transposed matrix: >= 1e-3).
//  * Pure float32, through the library itself: perturb Parameter.value, recompute the loss
//    with forwardBackward, take central differences in float32 (see that test's tolerance).
import CDescentKernels
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import Descent

@Suite struct NetworkGradientTests {

    // MARK: whole networks against the float64 reference

    struct Config: CustomTestStringConvertible, Sendable {
        let name: String
        let json: String
        var testDescription: String { name }
    }

    static let configs: [Config] = [
        Config(name: "affine+softmax only", json: #"{"sizes":[5,3],"init":"std:0.5","seed":3}"#),
        Config(name: "relu", json: #"{"sizes":[5,4,4,3],"activation":"relu","init":"he","seed":1}"#),
        Config(name: "sigmoid", json: #"{"sizes":[5,4,4,3],"activation":"sigmoid","init":"std:1","seed":2}"#),
        Config(name: "tanh", json: #"{"sizes":[5,4,4,3],"activation":"tanh","init":"xavier","seed":3}"#),
        Config(name: "relu+batchnorm", json: #"{"sizes":[5,4,4,3],"activation":"relu","batchnorm":true,"seed":4}"#),
        Config(name: "sigmoid+batchnorm", json: #"{"sizes":[5,4,4,3],"activation":"sigmoid","init":"xavier","batchnorm":true,"seed":5}"#),
        Config(name: "tanh+batchnorm", json: #"{"sizes":[5,4,4,3],"activation":"tanh","init":"xavier","batchnorm":true,"seed":6}"#),
        Config(name: "relu+dropout", json: #"{"sizes":[5,4,4,3],"activation":"relu","dropout":0.5,"seed":26}"#),
        Config(name: "tanh+dropout 0.3", json: #"{"sizes":[5,4,4,3],"activation":"tanh","init":"xavier","dropout":0.3,"seed":8}"#),
        Config(name: "relu+weight decay", json: #"{"sizes":[5,4,4,3],"activation":"relu","weight_decay":0.3,"seed":9}"#),
        Config(name: "affine+softmax+weight decay", json: #"{"sizes":[5,3],"init":"std:0.5","weight_decay":0.5,"seed":10}"#),
        Config(name: "relu+batchnorm+dropout+weight decay",
               json: #"{"sizes":[5,4,4,3],"activation":"relu","batchnorm":true,"dropout":0.25,"weight_decay":0.1,"seed":11}"#),
        Config(name: "sigmoid+batchnorm+dropout+weight decay",
               json: #"{"sizes":[5,4,4,3],"activation":"sigmoid","init":"xavier","batchnorm":true,"dropout":0.4,"weight_decay":0.05,"seed":12}"#),
    ]

    /// The library's loss equals the float64 reference's at the same weights (and masks), and
    /// every coordinate of every parameter tensor (W, b, gamma, beta) has the gradient of that
    /// loss.
    @Test(arguments: configs)
    func fullNetworkMatchesFloat64Reference(_ config: Config) throws {
        try matchFloat64Reference(config, rows: 6)
    }

    /// Wider hidden layers for batches of hundreds of rows: with 4 units, some row of such a
    /// batch has every ReLU off (or every unit dropped), which puts the next layer's
    /// pre-activation exactly on ReLU's kink (b = 0), where a central difference is half the slope.
    static let shardedConfigs: [Config] = [
        Config(name: "relu", json: #"{"sizes":[5,12,12,3],"activation":"relu","init":"he","seed":31}"#),
        Config(name: "relu+batchnorm", json: #"{"sizes":[5,12,12,3],"activation":"relu","batchnorm":true,"seed":32}"#),
        Config(name: "relu+dropout+weight decay",
               json: #"{"sizes":[5,12,12,3],"activation":"relu","dropout":0.2,"weight_decay":0.1,"seed":33}"#),
        Config(name: "tanh+batchnorm+dropout",
               json: #"{"sizes":[5,12,12,3],"activation":"tanh","init":"xavier","batchnorm":true,"dropout":0.3,"seed":34}"#),
    ]

    /// The same at batches split into shards (128 rows: 2 shards, 300 rows: 4 of 75): the
    /// shards' gradients summed in shard order, batch norm's statistics from every shard, the
    /// loss over the whole batch.
    @Test(arguments: shardedConfigs, [128, 300])
    func shardedBatchMatchesFloat64Reference(_ config: Config, rows: Int) throws {
        #expect(dk_shard_count(Int64(rows)) == (rows == 128 ? 2 : 4))
        try matchFloat64Reference(config, rows: rows)
    }

    private func matchFloat64Reference(_ config: Config, rows: Int) throws {
        let net = try Network(config.json)
        var random = TestRandom(100)
        let x = random.floats(rows * net.inputSize)
        let labels = random.labels(rows, classes: net.classes)

        let rngBefore = net.rng.pointee
        let loss = try net.forwardBackward(x, labels)
        let masks = net.lastMasks(rows: rows)
        #expect(masks.count == (net.spec.dropout > 0 ? net.spec.hiddenLayers : 0))

        // The masks are the seeded generator's: one key per layer in layer order, unit i kept
        // when dk_rng_at(key, i) >= ratio, kept units scaled by 1/(1-ratio) (inverted dropout).
        if net.spec.dropout > 0 {
            var rng = rngBefore
            let ratio = Float(net.spec.dropout)
            let scale = 1 / (1 - ratio)
            for mask in masks {
                let key = dk_rng_next(&rng)
                let expected = mask.indices.map { Double(dk_rng_at(key, UInt64($0)) >= ratio ? scale : 0) }
                #expect(mask == expected)
            }
            let dropped = masks.joined().filter { $0 == 0 }.count
            #expect(dropped > 0 && dropped < masks.joined().count, "the mask should drop some units and keep some")
            // A row that drops every unit makes the next hidden layer's pre-activation exactly
            // b = 0, ReLU's kink, where a central difference gives half the slope: choose a
            // seed without one.
            for mask in masks.dropLast() where net.spec.activation == .relu {
                let width = mask.count / rows
                #expect((0..<rows).allSatisfy { r in mask[r * width..<(r + 1) * width].contains { $0 != 0 } },
                        "a row of the mask drops every unit (pick another seed)")
            }
        }

        let reference = ReferenceMLP(net)
        let xd = x.map(Double.init)
        let referenceLoss = reference.loss(xd, labels: labels, mode: .training(masks: masks))
        #expect(abs(Double(loss) - referenceLoss) <= 1e-6 * abs(referenceLoss),
                "loss \(loss) vs float64 reference \(referenceLoss)")

        let numerical = reference.numericalGradients(xd, labels: labels, masks: masks)
        for (p, parameter) in net.parameters.enumerated() {
            let analytic = parameter.gradient.doubles
            let mismatch = firstMismatch(analytic, numerical[p], abs: 1e-5, rel: 1e-4)
            #expect(mismatch == nil, "\(config.name): gradient of \(parameter.name)\(mismatch ?? "")")
        }
        // The check has teeth: every weight matrix gets a non-trivial gradient.
        for parameter in net.parameters where parameter.isWeight {
            #expect(maxAbs(parameter.gradient.doubles) > 1e-3, "\(parameter.name)'s gradient is ~0")
        }
    }

    /// Weight decay adds 0.5*lambda*sum(W^2) to the loss and lambda*W to the weight gradients
    /// only: biases, gamma and beta get no decay. Compared against the same network (same
    /// seed, hence same weights and masks) without decay.
    @Test func weightDecayTouchesWeightsOnly() throws {
        let lambda = 0.25
        let base = #"{"sizes":[5,4,4,3],"batchnorm":true,"dropout":0.2,"seed":21"#
        let plain = try Network(base + "}")
        let decayed = try Network(base + #","weight_decay":0.25}"#)
        for (a, b) in zip(plain.parameters, decayed.parameters) { #expect(bits(a.value.array) == bits(b.value.array)) }

        var random = TestRandom(5)
        let x = random.floats(6 * 5), labels = random.labels(6, classes: 3)
        let plainLoss = try plain.forwardBackward(x, labels)
        let decayedLoss = try decayed.forwardBackward(x, labels)

        var sumSquares = 0.0
        for p in decayed.parameters where p.isWeight { sumSquares += p.value.doubles.reduce(0) { $0 + $1 * $1 } }
        let penalty = 0.5 * lambda * sumSquares
        #expect(abs(Double(decayedLoss) - Double(plainLoss) - penalty) <= 1e-6 * Double(decayedLoss))

        for (a, b) in zip(plain.parameters, decayed.parameters) {
            #expect(a.isWeight == a.name.hasPrefix("W"))
            if a.isWeight {
                let expected = zip(a.gradient.doubles, a.value.doubles).map { $0 + lambda * $1 }
                let mismatch = firstMismatch(b.gradient.doubles, expected, abs: 1e-7, rel: 1e-6)
                #expect(mismatch == nil, "\(a.name): \(mismatch ?? "")")
            } else {
                // Same float32 computation, no decay term: bit for bit.
                #expect(bits(a.gradient.array) == bits(b.gradient.array), "\(a.name) got weight decay")
            }
        }
    }

    /// Float32 through the library itself: perturb one coordinate of Parameter.value, recompute
    /// the loss with forwardBackward (no dropout, so the loss is a function of the weights;
    /// batch norm uses batch statistics in every training pass) and compare the central
    /// difference with the analytic gradient of the unperturbed weights.
    ///
    /// Tolerance: the float32 loss carries a rounding error of about delta = 3e-7 (float32
    /// eps 6e-8 times a few operations on O(1) values), so a difference quotient with step h
    /// is off by up to ~delta/h = 3e-4 for h = 1e-3; truncation (h^2 * f'''/6 ~ 1e-6) is
    /// negligible. We allow abs 2e-3 + rel 2e-2: about 6x the expected worst noise (measured
    /// worst: 1.5e-4). Smooth
    /// activations only: with ReLU a kink within h of a pre-activation would break the quotient.
    @Test(arguments: [
        #"{"sizes":[5,4,4,3],"activation":"tanh","init":"xavier","weight_decay":0.1,"seed":31}"#,
        #"{"sizes":[5,4,4,3],"activation":"sigmoid","init":"std:1","batchnorm":true,"seed":32}"#,
    ])
    func float32FiniteDifferencesThroughTheLibrary(_ json: String) throws {
        let net = try Network(json)
        var random = TestRandom(7)
        let x = random.floats(6 * 5), labels = random.labels(6, classes: 3)
        try net.forwardBackward(x, labels)
        let analytic = net.parameters.map(\.gradient.doubles)
        let h: Float = 1e-3
        for (p, parameter) in net.parameters.enumerated() {
            var numerical: [Double] = []
            for j in 0..<parameter.count {
                let w = parameter.value.pointer[j]
                parameter.value.pointer[j] = w + h
                let up = try net.forwardBackward(x, labels)
                parameter.value.pointer[j] = w - h
                let down = try net.forwardBackward(x, labels)
                parameter.value.pointer[j] = w
                // the step actually taken in float32
                let step = Double(w + h) - Double(w - h)
                numerical.append((Double(up) - Double(down)) / step)
            }
            let mismatch = firstMismatch(analytic[p], numerical, abs: 2e-3, rel: 2e-2)
            #expect(mismatch == nil, "\(parameter.name): \(mismatch ?? "")")
        }
    }

    // MARK: single layers against float64 formulas

    /// For a layer y = f(x), the scalar L = sum(y * R) with a fixed R has dL/dy = R, so backward(R)
    /// must return dL/dx and write dL/dparameters; both are checked by central differences of
    /// a float64 formula of L.
    static func numericalGradient(of f: ([Double]) -> Double, at v: [Double], h: Double = 1e-6) -> [Double] {
        var w = v
        return v.indices.map { j in
            w[j] = v[j] + h
            let up = f(w)
            w[j] = v[j] - h
            let down = f(w)
            w[j] = v[j]
            return (up - down) / (2 * h)
        }
    }

    static func buffer(_ values: [Float]) throws -> FloatBuffer {
        let b = try FloatBuffer(count: values.count)
        b.set(values)
        return b
    }

    @Test(arguments: [0.0, 0.3])
    func affineLayer(weightDecay: Double) throws {
        // Network.init loads OpenBLAS; a bare layer needs it loaded first (dk_sgemm's contract).
        try #require(dk_blas_ready() != 0)
        let rows = 4, fanIn = 5, fanOut = 3
        var random = TestRandom(41)
        let w = try Parameter(name: "W1", shape: [fanIn, fanOut], isWeight: true)
        let b = try Parameter(name: "b1", shape: [fanOut], isWeight: false)
        w.value.set(random.floats(fanIn * fanOut))
        b.value.set(random.floats(fanOut))
        let layer = AffineLayer(weight: w, bias: b, weightDecay: Float(weightDecay), needsInputGradient: true)
        try layer.reserve(rows: rows)
        let x = try Self.buffer(random.floats(rows * fanIn))
        let r = random.floats(rows * fanOut).map(Double.init)
        let dy = try Self.buffer(r.map(Float.init))

        let y = layer.forward(x.pointer, rows: rows, training: true)
        let dx = try #require(layer.backward(dy.pointer, input: x.pointer, rows: rows))

        func affine(_ x: [Double], _ w: [Double], _ b: [Double]) -> [Double] {
            (0..<rows * fanOut).map { i in
                let rr = i / fanOut, c = i % fanOut
                return (0..<fanIn).reduce(b[c]) { $0 + x[rr * fanIn + $1] * w[$1 * fanOut + c] }
            }
        }
        func objective(_ y: [Double]) -> Double { zip(y, r).reduce(0) { $0 + $1.0 * $1.1 } }
        let xd = x.doubles, wd = w.value.doubles, bd = b.value.doubles
        let yLib = (0..<rows * fanOut).map { Double(y[$0]) }
        #expect(firstMismatch(yLib, affine(xd, wd, bd), abs: 1e-5, rel: 1e-5) == nil)

        let dxNum = Self.numericalGradient(of: { objective(affine($0, wd, bd)) }, at: xd)
        // The layer's own decay term is lambda*W on dW (the loss term 0.5*lambda*|W|^2 is the network's).
        let dwNum = zip(Self.numericalGradient(of: { objective(affine(xd, $0, bd)) }, at: wd), wd)
            .map { $0 + weightDecay * $1 }
        let dbNum = Self.numericalGradient(of: { objective(affine(xd, wd, $0)) }, at: bd)
        let dxLib = (0..<rows * fanIn).map { Double(dx[$0]) }
        #expect(firstMismatch(dxLib, dxNum, abs: 1e-5, rel: 1e-4).map { "dx" + $0 } == nil)
        #expect(firstMismatch(w.gradient.doubles, dwNum, abs: 1e-5, rel: 1e-4).map { "dW" + $0 } == nil)
        #expect(firstMismatch(b.gradient.doubles, dbNum, abs: 1e-5, rel: 1e-4).map { "db" + $0 } == nil)

        // The first layer skips its input gradient but still writes dW and db.
        let first = AffineLayer(weight: w, bias: b, weightDecay: Float(weightDecay), needsInputGradient: false)
        try first.reserve(rows: rows)
        w.gradient.fill(.nan)
        _ = first.forward(x.pointer, rows: rows, training: true)
        #expect(first.backward(dy.pointer, input: x.pointer, rows: rows) == nil)
        #expect(firstMismatch(w.gradient.doubles, dwNum, abs: 1e-5, rel: 1e-4) == nil)
    }

    @Test(arguments: Activation.allCases)
    func activationLayer(_ function: Activation) throws {
        let rows = 3, width = 7
        var random = TestRandom(43)
        // Stay away from ReLU's kink at 0: |x| >= 0.05 >> h.
        let x = random.floats(rows * width, std: 2).map { abs($0) < 0.05 ? $0 + 0.1 : $0 }
        let r = random.floats(rows * width).map(Double.init)
        let layer = ActivationLayer(function, width: width)
        try layer.reserve(rows: rows)
        let xb = try Self.buffer(x), dy = try Self.buffer(r.map(Float.init))
        let y = layer.forward(xb.pointer, rows: rows, training: true)
        let dx = try #require(layer.backward(dy.pointer, input: xb.pointer, rows: rows))

        func f(_ v: Double) -> Double {
            switch function {
            case .relu: max(v, 0)
            case .sigmoid: 1 / (1 + exp(-v))
            case .tanh: tanh(v)
            }
        }
        let xd = x.map(Double.init)
        let yLib = (0..<rows * width).map { Double(y[$0]) }
        #expect(firstMismatch(yLib, xd.map(f), abs: 1e-7, rel: 1e-6) == nil)
        let dxNum = Self.numericalGradient(of: { zip($0.map(f), r).reduce(0) { $0 + $1.0 * $1.1 } }, at: xd)
        let dxLib = (0..<rows * width).map { Double(dx[$0]) }
        #expect(firstMismatch(dxLib, dxNum, abs: 1e-5, rel: 1e-4).map { "\(function) dx" + $0 } == nil)
        if function == .relu {
            // Exactly zero where the input was negative (the book's mask).
            for i in x.indices where x[i] < 0 { #expect(dx[i] == 0 && y[i] == 0) }
        }
    }

    /// `x > 0 ? x : 0` would map NaN to 0, hiding divergence. The book's ReLU
    /// (out[x <= 0] = 0) and PyTorch's keep NaN, so a diverging network shows a NaN loss;
    /// here a NaN pre-activation (e.g. inf - inf in batch norm, inf * 0 in dropout) silently
    /// becomes 0, the loss stays finite and only the gradients are NaN.
    /// Batch 1 takes matrix-vector products (sgemv) instead of sgemm: its gradients must equal
    /// those of a batch of two copies of the same row (the mean loss is the same function).
    /// Both are float32 BLAS results summed in different orders (dot products of up to 120
    /// terms of size ~0.1: a few 1e-7 apart): 1e-5 relative + 1e-6 absolute.
    @Test(arguments: [Activation.relu, .tanh])
    func batchOneMatchesTheBatchPath(_ activation: Activation) throws {
        let spec = #"{"sizes":[120,80,70,10],"activation":"\#(activation.rawValue)","seed":9}"#
        let one = try Network(json: spec), two = try Network(json: spec)
        var random = TestRandom(77)
        let x = random.floats(120)
        let lossOne = try one.forwardBackward(x, [3])
        let lossTwo = try two.forwardBackward(x + x, [3, 3])
        #expect(abs(lossOne - lossTwo) <= 1e-5 * abs(lossTwo))
        for (a, b) in zip(one.parameters, two.parameters) {
            let ga = Array(a.gradient.buffer), gb = Array(b.gradient.buffer)
            let worst = zip(ga, gb).map { abs($0 - $1) - 1e-5 * abs($1) }.max() ?? 0
            #expect(worst <= 1e-6, "\(a.name): batch-1 gradient differs from the batch path by \(worst)")
        }
        var p1 = [Float](repeating: 0, count: 10), p2 = [Float](repeating: 0, count: 20)
        try x.withUnsafeBufferPointer { try one.predict(x: $0.baseAddress, batch: 1, probabilities: &p1) }
        try (x + x).withUnsafeBufferPointer { try two.predict(x: $0.baseAddress, batch: 2, probabilities: &p2) }
        for c in 0..<10 { #expect(abs(p1[c] - p2[c]) <= 1e-6) }
    }

    @Test func reluPropagatesNaN() throws {
        let layer = ActivationLayer(.relu, width: 4)
        try layer.reserve(rows: 1)
        let x = try Self.buffer([.nan, 2, -2, 0])
        let y = layer.forward(x.pointer, rows: 1, training: true)
        #expect(y[1] == 2 && y[2] == 0 && y[3] == 0)
        #expect(y[0].isNaN, "relu(NaN) is \(y[0]), expected NaN")
    }

    /// Batch norm in training mode: y = gamma * (x - mean) / sqrt(var + 1e-6) + beta with the
    /// batch's mean and biased variance; dx includes the paths through mean and variance.
    @Test func batchNormLayerTraining() throws {
        let rows = 6, width = 4
        var random = TestRandom(47)
        let gamma = try Parameter(name: "gamma1", shape: [width], isWeight: false)
        let beta = try Parameter(name: "beta1", shape: [width], isWeight: false)
        gamma.value.set(random.floats(width, std: 0.5, mean: 1))
        beta.value.set(random.floats(width))
        let mean = try FloatBuffer(count: width), variance = try FloatBuffer(count: width)
        variance.fill(1)
        let layer = try BatchNormLayer(gamma: gamma, beta: beta, runningMean: mean, runningVariance: variance)
        try layer.reserve(rows: rows)
        // Features with different offsets and spreads; feature 0 has a variance of ~1e-6, the
        // size of eps, so a wrong eps (1e-5, 1e-7) or none would show in y and dx.
        var x: [Float] = []
        for i in 0..<rows * width {
            let c = Double(i % width)
            x.append(Float(c == 0 ? 1e-3 * random.normal() : c - 1.5 + (0.3 + c) * random.normal()))
        }
        let r = random.floats(rows * width).map(Double.init)
        let xb = try Self.buffer(x), dy = try Self.buffer(r.map(Float.init))
        let y = layer.forward(xb.pointer, rows: rows, training: true)
        let dx = try #require(layer.backward(dy.pointer, input: xb.pointer, rows: rows))

        func bn(_ x: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
            var out = x
            for c in 0..<width {
                let column = (0..<rows).map { x[$0 * width + c] }
                let m = column.reduce(0, +) / Double(rows)
                let v = column.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(rows)
                for rr in 0..<rows { out[rr * width + c] = g[c] * (x[rr * width + c] - m) / (v + 1e-6).squareRoot() + b[c] }
            }
            return out
        }
        func objective(_ y: [Double]) -> Double { zip(y, r).reduce(0) { $0 + $1.0 * $1.1 } }
        let xd = x.map(Double.init), gd = gamma.value.doubles, bd = beta.value.doubles
        let yLib = (0..<rows * width).map { Double(y[$0]) }
        #expect(firstMismatch(yLib, bn(xd, gd, bd), abs: 1e-5, rel: 1e-5) == nil)
        let dxLib = (0..<rows * width).map { Double(dx[$0]) }
        #expect(firstMismatch(dxLib, Self.numericalGradient(of: { objective(bn($0, gd, bd)) }, at: xd),
                              abs: 1e-5, rel: 1e-4).map { "dx" + $0 } == nil)
        #expect(firstMismatch(gamma.gradient.doubles, Self.numericalGradient(of: { objective(bn(xd, $0, bd)) }, at: gd),
                              abs: 1e-5, rel: 1e-4).map { "dgamma" + $0 } == nil)
        #expect(firstMismatch(beta.gradient.doubles, Self.numericalGradient(of: { objective(bn(xd, gd, $0)) }, at: bd),
                              abs: 1e-5, rel: 1e-4).map { "dbeta" + $0 } == nil)
        // Running averages move only on commit.
        #expect(mean.array == [Float](repeating: 0, count: width))
        #expect(variance.array == [Float](repeating: 1, count: width))
    }

    /// Inverted dropout with the mask of the last forward: y = x * mask, dx = dy * mask, mask
    /// entries 0 or 1/(1-ratio); evaluation is the identity (the input pointer itself).
    @Test func dropoutLayerWithFixedMask() throws {
        let rows = 5, width = 8, ratio: Float = 0.4
        let rng = UnsafeMutablePointer<dk_rng>.allocate(capacity: 1)
        defer { rng.deallocate() }
        dk_rng_seed(rng, 99)
        let layer = DropoutLayer(ratio: ratio, width: width, rng: rng)
        try layer.reserve(rows: rows)
        var random = TestRandom(53)
        let x = random.floats(rows * width), r = random.floats(rows * width)
        let xb = try Self.buffer(x), dy = try Self.buffer(r)
        var replay = rng.pointee
        let y = layer.forward(xb.pointer, rows: rows, training: true)
        let mask = (0..<rows * width).map { layer.lastMask[$0] }
        let scale = 1 / (1 - ratio)
        // One key per pass from the generator; unit i kept when dk_rng_at(key, i) >= ratio.
        let key = dk_rng_next(&replay)
        #expect(mask == mask.indices.map { dk_rng_at(key, UInt64($0)) >= ratio ? scale : 0 })
        #expect(mask.contains(0) && mask.contains(scale))
        // The same pass split into shards draws the same mask: it depends on the unit's place only.
        layer.lastMask.update(repeating: .nan, count: rows * width)
        for (index, range) in [0..<2, 2..<5].enumerated() {
            layer.forward(xb.pointer, Shard(index: index, count: 2, rows: range, batch: rows, arenas: nil, stride: 0),
                          stage: 0, training: true)
        }
        #expect((0..<rows * width).map { layer.lastMask[$0] } == mask)
        let dx = try #require(layer.backward(dy.pointer, input: xb.pointer, rows: rows))
        for i in x.indices {
            #expect(y[i] == x[i] * mask[i])
            #expect(dx[i] == r[i] * mask[i])
        }
        // The gradient is that of the float64 function x -> sum(x * mask * r).
        let dxNum = Self.numericalGradient(of: { v in v.indices.reduce(0) { $0 + v[$1] * Double(mask[$1]) * Double(r[$1]) } },
                                           at: x.map(Double.init))
        #expect(firstMismatch((0..<rows * width).map { Double(dx[$0]) }, dxNum, abs: 1e-6, rel: 1e-6) == nil)

        #expect(layer.forward(xb.pointer, rows: rows, training: false) == UnsafePointer(xb.pointer))
        #expect(rng.pointee.s == replay.s, "evaluation must not draw random numbers")
    }

    /// Softmax with cross-entropy: mean of -log softmax(s)[label]; gradient (p - onehot)/rows;
    /// stable for large scores.
    @Test(arguments: [0.0, 80.0, 1e4])
    func softmaxCrossEntropy(offset: Double) throws {
        let rows = 4, classes = 5
        var random = TestRandom(59)
        let scores = random.floats(rows * classes, std: 2, mean: offset)
        let labels = random.labels(rows, classes: classes)
        var probs = [Float](repeating: 0, count: rows * classes)
        var dscores = [Float](repeating: 0, count: rows * classes)
        // The sum of the rows' losses; the gradient is that of the mean (1/rows).
        let loss = dk_softmax_cross_entropy(scores, labels, Int64(rows), Int64(classes), 1 / Float(rows), &probs, &dscores) / Double(rows)

        func ce(_ s: [Double]) -> Double {
            (0..<rows).reduce(0.0) { total, r in
                let row = s[r * classes..<(r + 1) * classes]
                let m = row.max()!
                return total + m + log(row.reduce(0) { $0 + exp($1 - m) }) - s[r * classes + Int(labels[r])]
            } / Double(rows)
        }
        let sd = scores.map(Double.init)
        #expect(loss.isFinite)
        // abs 1e-6 * the score magnitude: the float32 subtraction s - max is exact only up
        // to the scores' own rounding.
        #expect(abs(loss - ce(sd)) <= 1e-6 * max(1, offset / 100) + 1e-5 * ce(sd))
        for r in 0..<rows {
            let sum = (0..<classes).reduce(0.0) { $0 + Double(probs[r * classes + $1]) }
            #expect(abs(sum - 1) < 1e-6)
        }
        // h = 1e-6 is too small relative to scores of 1e4 in double? No: the loss only depends
        // on differences of scores, which stay O(1); rounding is ~1e-16 * 1e4 / 1e-6 = 1e-6.
        let numerical = Self.numericalGradient(of: ce, at: sd, h: offset > 100 ? 1e-4 : 1e-6)
        #expect(firstMismatch(dscores.map(Double.init), numerical, abs: 1e-5, rel: 1e-4) == nil)
        // Without labels: probabilities only, no loss.
        var probsOnly = [Float](repeating: 0, count: rows * classes)
        #expect(dk_softmax_cross_entropy(scores, nil, Int64(rows), Int64(classes), 1, &probsOnly, nil) == 0)
        #expect(probsOnly == probs)
    }
}
