// Network behaviour: batch norm in training and evaluation, initialisers, determinism,
// optimizer swaps, forwardBackward + applyUpdate, evaluation, and every bad input with its
// status, its exact message and a network left bit-for-bit as it was.
//
// These tests use the Swift API. The C API (Sources/DescentC/NetworkAPI.swift) passes the same
// errors through `guarded`, which prefixes the message with the function's name, e.g.
// "descent_net_train_step: x is NULL".
import CDescentKernels
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import Descent

/// A private FloatBuffer of a layer, read by reflection (tests only).
private func privateBuffer(_ object: AnyObject, _ label: String) -> FloatBuffer {
    Mirror(reflecting: object).children.first { $0.label == label }!.value as! FloatBuffer
}

@Suite struct NetworkBehaviourTests {

    // MARK: batch norm

    /// In training the BN layer's output has, per feature, mean 0 and variance var/(var+eps) ~ 1
    /// over the batch (gamma 1, beta 0), whatever the affine layer produced.
    @Test func batchNormTrainingOutputIsStandardised() throws {
        let net = try Network(#"{"sizes":[6,5,3],"batchnorm":true,"init":"std:3","seed":61}"#)
        let bn = try #require(net.layerList.compactMap { $0 as? BatchNormLayer }.first)
        var random = TestRandom(1)
        let rows = 10
        // inputs with a large common offset, so the affine outputs are far from standardised
        let x = random.floats(rows * 6, std: 2, mean: 4)
        try net.forwardBackward(x, random.labels(rows, classes: 3))
        let output = privateBuffer(bn, "output")
        let pre = ReferenceMLP(net).forward(x.map(Double.init), rows: rows, mode: .training(masks: [])).affine[0]
        for c in 0..<5 {
            let column = (0..<rows).map { Double(output.pointer[$0 * 5 + c]) }
            let mean = column.reduce(0, +) / Double(rows)
            let variance = column.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(rows)
            let preColumn = (0..<rows).map { pre[$0 * 5 + c] }
            let preMean = preColumn.reduce(0, +) / Double(rows)
            let preVariance = preColumn.reduce(0) { $0 + ($1 - preMean) * ($1 - preMean) } / Double(rows)
            #expect(preVariance > 4, "the test needs un-normalised affine outputs")
            #expect(abs(mean) < 1e-6)
            #expect(abs(variance - preVariance / (preVariance + 1e-6)) < 1e-5)
        }
    }

    /// Running averages: mean starts at 0, variance at 1; each training pass moves them by
    /// momentum 0.9 towards the batch's mean and biased variance. Inference does not move them.
    @Test func batchNormRunningAverages() throws {
        let net = try Network(#"{"sizes":[6,5,4,3],"batchnorm":true,"seed":62}"#)
        #expect(net.runningStatistics.count == 2)
        for s in net.runningStatistics {
            #expect(s.mean.array == [Float](repeating: 0, count: s.mean.count))
            #expect(s.variance.array == [Float](repeating: 1, count: s.variance.count))
        }
        var random = TestRandom(2)
        let rows = 8

        func batchStatistics(_ x: [Float]) -> [(mean: [Double], variance: [Double])] {
            let pass = ReferenceMLP(net).forward(x.map(Double.init), rows: rows, mode: .training(masks: []))
            return pass.affine.map { a in
                let width = a.count / rows
                let means = (0..<width).map { c in (0..<rows).reduce(0.0) { $0 + a[$1 * width + c] } / Double(rows) }
                let variances = (0..<width).map { c in
                    (0..<rows).reduce(0.0) { $0 + (a[$1 * width + c] - means[c]) * (a[$1 * width + c] - means[c]) } / Double(rows)
                }
                return (means, variances)
            }
        }

        var expected = net.runningStatistics.map { (mean: $0.mean.doubles, variance: $0.variance.doubles) }
        for step in 0..<3 {
            let x = random.floats(rows * 6, std: 1.5, mean: 0.5)
            let labels = random.labels(rows, classes: 3)
            let stats = batchStatistics(x)   // from the weights before the step
            if step == 2 { try net.trainStep(x, labels) } else { try net.forwardBackward(x, labels); try net.applyUpdate() }
            for l in 0..<2 {
                expected[l].mean = zip(expected[l].mean, stats[l].mean).map { 0.9 * $0 + 0.1 * $1 }
                expected[l].variance = zip(expected[l].variance, stats[l].variance).map { 0.9 * $0 + 0.1 * $1 }
                let got = net.runningStatistics[l]
                #expect(firstMismatch(got.mean.doubles, expected[l].mean, abs: 1e-6, rel: 1e-5).map { "step \(step) mean\(l)" + $0 } == nil)
                #expect(firstMismatch(got.variance.doubles, expected[l].variance, abs: 1e-6, rel: 1e-5).map { "step \(step) var\(l)" + $0 } == nil)
            }
            if step == 0 {
                // exactly one step: 0.9*0 + 0.1*mean, 0.9*1 + 0.1*var
                #expect(firstMismatch(net.runningStatistics[0].mean.doubles, stats[0].mean.map { 0.1 * $0 }, abs: 1e-6, rel: 1e-5) == nil)
                #expect(firstMismatch(net.runningStatistics[0].variance.doubles, stats[0].variance.map { 0.9 + 0.1 * $0 }, abs: 1e-6, rel: 1e-5) == nil)
            }
        }
        // predict and evaluate are inference: the averages stay.
        let before = NetworkSnapshot(net)
        let x = random.floats(rows * 6), labels = random.labels(rows, classes: 3)
        _ = try net.predict(x)
        _ = try net.evaluate(x: x, labels: labels, count: rows)
        #expect(NetworkSnapshot(net) == before)
    }

    /// Evaluation mode normalises with the running averages: predict equals the float64
    /// reference in evaluation mode, differs from the training forward on the same batch, and
    /// a single row gives the same probabilities alone as inside a larger batch.
    @Test func batchNormEvaluationUsesRunningAverages() throws {
        let net = try Network(#"{"sizes":[6,5,4,3],"batchnorm":true,"dropout":0.2,"seed":63}"#)
        try net.setOptimizer("sgd", hyperparameters: "lr=0.1")
        var random = TestRandom(3)
        let rows = 8
        for _ in 0..<4 { try net.trainStep(random.floats(rows * 6, mean: 0.7), random.labels(rows, classes: 3)) }
        let x = random.floats(rows * 6, mean: 0.7)
        let probs = try net.predict(x)

        let reference = ReferenceMLP(net)
        let running = net.runningStatistics.map { (mean: $0.mean.doubles, variance: $0.variance.doubles) }
        let evaluation = reference.probabilities(
            reference.forward(x.map(Double.init), rows: rows, mode: .evaluation(running: running)).scores, rows: rows)
        #expect(firstMismatch(probs.map(Double.init), evaluation, abs: 1e-6, rel: 1e-5) == nil)
        // the same batch through batch statistics (no dropout) gives something else
        let masks = (0..<2).map { _ in [Double](repeating: 1, count: rows * 5) }
        let training = reference.probabilities(
            reference.forward(x.map(Double.init), rows: rows, mode: .training(masks: masks)).scores, rows: rows)
        #expect(maxAbs(zip(probs.map(Double.init), training).map { $0 - $1 }) > 1e-3)

        // Row independence in evaluation. Not necessarily bit for bit: BLAS may take another
        // code path for a 1-row product; float32 rounding is ~1e-7.
        for r in 0..<rows {
            let single = try net.predict(Array(x[r * 6..<(r + 1) * 6]))
            let inBatch = Array(probs[r * 3..<(r + 1) * 3])
            #expect(firstMismatch(single.map(Double.init), inBatch.map(Double.init), abs: 1e-6, rel: 0) == nil)
            #expect(abs(single.reduce(0, +) - 1) < 1e-5)
        }
    }

    /// Dropout is the identity in evaluation: two networks that differ only in dropout start
    /// with the same weights and predict the same probabilities bit for bit. In training the
    /// fraction dropped is the ratio and kept units are scaled by 1/(1-ratio).
    @Test func dropoutTrainingAndEvaluation() throws {
        let with = try Network(#"{"sizes":[20,1000,3],"dropout":0.3,"seed":64}"#)
        let without = try Network(#"{"sizes":[20,1000,3],"seed":64}"#)
        for (a, b) in zip(with.parameters, without.parameters) { #expect(bits(a.value.array) == bits(b.value.array)) }
        var random = TestRandom(4)
        let x = random.floats(50 * 20)
        #expect(bits(try with.predict(x)) == bits(try without.predict(x)))

        try with.forwardBackward(x, random.labels(50, classes: 3))
        let mask = with.lastMasks(rows: 50)[0]
        let scale = Double(1 / (1 - Float(0.3)))
        #expect(mask.allSatisfy { $0 == 0 || $0 == scale })
        let dropped = Double(mask.filter { $0 == 0 }.count) / Double(mask.count)
        // 50,000 Bernoulli(0.3) draws: std of the fraction 0.002; allow 5 sigma.
        #expect(abs(dropped - 0.3) < 0.01)
    }

    /// activations(layer) is hidden layer k's output after the activation, before dropout, from
    /// the last forward pass (training or inference).
    @Test func activationsAreTheLastHiddenOutputs() throws {
        let net = try Network(#"{"sizes":[5,4,6,3],"activation":"tanh","batchnorm":true,"dropout":0.5,"seed":65}"#)
        var random = TestRandom(5)
        let rows = 7
        let x = random.floats(rows * 5)
        try net.forwardBackward(x, random.labels(rows, classes: 3))
        let pass = ReferenceMLP(net).forward(x.map(Double.init), rows: rows, mode: .training(masks: net.lastMasks(rows: rows)))
        for k in 0..<2 {
            let a = try net.activations(layer: k)
            #expect(a.rows == rows && a.columns == [4, 6][k])
            let values = (0..<a.rows * a.columns).map { Double(a.data[$0]) }
            #expect(firstMismatch(values, pass.hidden[k], abs: 1e-5, rel: 1e-5).map { "layer \(k)" + $0 } == nil)
            #expect(!values.contains(0), "before dropout: tanh of a normalised value is never exactly 0")
        }
        _ = try net.predict(Array(x[0..<10]))
        #expect(try net.activations(layer: 1).rows == 2)
    }

    // MARK: initialisers

    /// Each initialiser's weights, measured on a 1000x1000 layer (10^6 draws: the sample std
    /// is within 0.2% of the true one at 3 sigma; 2% allowed) and on the 1000x10 output layer
    /// (10^4 draws: 2.1% at 3 sigma; 5% allowed). Means are ~0 (5 sigma), about 68.3% of the
    /// draws lie within one std (a normal distribution), biases are 0, gamma 1 and beta 0.
    @Test(arguments: [("he", (2.0 / 1000).squareRoot()), ("xavier", (1.0 / 1000).squareRoot()), ("std:0.01", 0.01)])
    func initialiserStandardDeviation(_ initializer: String, _ expected: Double) throws {
        let net = try Network(#"{"sizes":[1000,1000,10],"batchnorm":true,"init":"\#(initializer)","seed":66}"#)
        #expect(net.parameters.map(\.name) == ["W1", "b1", "gamma1", "beta1", "W2", "b2"])
        for (name, tolerance) in [("W1", 0.02), ("W2", 0.05)] {
            let w = net.parameter(name).value.doubles
            let n = Double(w.count)
            let mean = w.reduce(0, +) / n
            let std = (w.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n).squareRoot()
            #expect(abs(std / expected - 1) < tolerance, "\(initializer) \(name): std \(std), expected \(expected)")
            #expect(abs(mean) < 5 * expected / n.squareRoot(), "\(initializer) \(name): mean \(mean)")
            let within = Double(w.filter { abs($0) < expected }.count) / n
            #expect(abs(within - 0.6827) < (name == "W1" ? 0.003 : 0.03), "\(initializer) \(name): \(within) within 1 std")
        }
        #expect(net.parameter("b1").value.array.allSatisfy { $0 == 0 })
        #expect(net.parameter("b2").value.array.allSatisfy { $0 == 0 })
        #expect(net.parameter("gamma1").value.array.allSatisfy { $0 == 1 })
        #expect(net.parameter("beta1").value.array.allSatisfy { $0 == 0 })
    }

    @Test func zerosInitialiser() throws {
        let net = try Network(#"{"sizes":[30,20,10],"init":"zeros","batchnorm":true}"#)
        for p in net.parameters {
            let expected: Float = p.name.hasPrefix("gamma") ? 1 : 0
            #expect(p.value.array.allSatisfy { $0 == expected }, "\(p.name)")
        }
    }

    /// The book's lesson: with all-zero weights every hidden unit of a layer computes the same
    /// thing and gets the same update, so after training they are still identical: W1's
    /// columns (each unit's incoming weights) are equal and so are W2's rows (each unit's
    /// outgoing weights), although the weights did change.
    @Test func zerosInitialisationKeepsHiddenUnitsIdentical() throws {
        let net = try Network(#"{"sizes":[6,5,4,3],"activation":"sigmoid","init":"zeros"}"#)
        try net.setOptimizer("sgd", hyperparameters: "lr=2")
        var random = TestRandom(6)
        for _ in 0..<30 { try net.trainStep(random.floats(8 * 6), random.labels(8, classes: 3)) }
        for name in ["W1", "W2", "W3"] {
            let p = net.parameter(name)
            let rows = p.shape[0], cols = p.shape[1]
            let w = p.value.doubles
            let scale = maxAbs(w)
            #expect(scale > 1e-3, "\(name) did not train")
            if name != "W3" {
                // incoming weights of hidden units: columns equal (row by row)
                for r in 0..<rows { for c in 1..<cols { #expect(abs(w[r * cols + c] - w[r * cols]) <= 1e-6 * scale, "\(name)[\(r)][\(c)]") } }
            }
            if name != "W1" {
                // outgoing weights of hidden units: rows equal (column by column)
                for r in 1..<rows { for c in 0..<cols { #expect(abs(w[r * cols + c] - w[c]) <= 1e-6 * scale, "\(name)[\(r)][\(c)]") } }
            }
        }
        // With ReLU it is worse: relu'(0) = 0, so nothing below the output bias ever moves.
        let relu = try Network(#"{"sizes":[6,5,3],"activation":"relu","init":"zeros"}"#)
        try relu.setOptimizer("sgd", hyperparameters: "lr=0.5")
        for _ in 0..<5 { try relu.trainStep(random.floats(8 * 6), random.labels(8, classes: 3)) }
        for name in ["W1", "b1", "W2"] { #expect(relu.parameter(name).value.array.allSatisfy { $0 == 0 }, "\(name)") }
        #expect(maxAbs(relu.parameter("b2").value.doubles) > 1e-3)
    }

    // MARK: determinism

    /// Same spec and seed, same inputs: bit-identical losses, weights, running averages,
    /// optimizer state and generator over 20 Adam steps with batch norm and dropout. Another
    /// seed gives other weights.
    @Test func sameSeedSameTrajectory() throws {
        let spec = #"{"sizes":[8,16,12,4],"batchnorm":true,"dropout":0.3,"weight_decay":0.01,"seed":"#
        let a = try Network(spec + "7}"), b = try Network(spec + "7}"), c = try Network(spec + "8}")
        for net in [a, b, c] { try net.setOptimizer("adam") }
        #expect(bits(a.parameter("W1").value.array) != bits(c.parameter("W1").value.array))
        var random = TestRandom(7)
        for step in 0..<20 {
            let rows = 4 + step % 5   // varying batch sizes, growing buffers on the way
            let x = random.floats(rows * 8), labels = random.labels(rows, classes: 4)
            let la = try a.trainStep(x, labels), lb = try b.trainStep(x, labels), lc = try c.trainStep(x, labels)
            #expect(la.bitPattern == lb.bitPattern, "step \(step)")
            if step == 0 { #expect(la != lc) }
        }
        #expect(NetworkSnapshot(a) == NetworkSnapshot(b))
        #expect(a.optimizer.stepCount == 20)
        for (pa, pc) in zip(a.parameters, c.parameters) where pa.isWeight {
            #expect(bits(pa.value.array) != bits(pc.value.array))
        }
    }

    // MARK: optimizer swap

    /// Swapping keeps the weights and starts the new optimizer fresh: after 5 Adam steps, sgd
    /// (lr 0.1) takes exactly p - 0.1*g from the current weights and gradients, and a swapped-in
    /// Adam follows exactly the trajectory of a brand-new network's Adam from the same weights.
    @Test func swappingTheOptimizerKeepsWeightsAndResetsState() throws {
        let spec = #"{"sizes":[6,5,4,3],"batchnorm":true,"dropout":0.2,"seed":71}"#
        let net = try Network(spec)
        try net.setOptimizer("adam")
        var random = TestRandom(8)
        for _ in 0..<5 { try net.trainStep(random.floats(6 * 6), random.labels(6, classes: 3)) }
        #expect(net.optimizer.stepCount == 5)

        let weights = NetworkSnapshot(net).values
        try net.setOptimizer("sgd", hyperparameters: "lr=0.1")
        #expect(net.optimizer.kind.name == "sgd" && net.optimizer.stepCount == 0)
        #expect(NetworkSnapshot(net).values == weights, "setOptimizer must not touch the weights")

        try net.forwardBackward(random.floats(6 * 6), random.labels(6, classes: 3))
        let before = net.parameters.map(\.value.array), gradients = net.parameters.map(\.gradient.array)
        try net.applyUpdate()
        let lr: Float = 0.1
        for (i, p) in net.parameters.enumerated() {
            for j in 0..<p.count {
                let got = p.value.pointer[j], w = before[i][j], g = gradients[i][j]
                // p -= lr*g, in float32; the kernel may fuse the multiply-add (FMA).
                #expect(got == w - lr * g || got == w.addingProduct(-lr, g), "\(p.name)[\(j)]")
            }
        }
        #expect(net.optimizer.stepCount == 1)

        // A fresh Adam: same trajectory as a new network given the same weights, averages and
        // generator state.
        try net.setOptimizer("adam")
        let fresh = try Network(spec)
        for (a, b) in zip(net.parameters, fresh.parameters) { b.value.set(a.value.array) }
        for (a, b) in zip(net.runningStatistics, fresh.runningStatistics) {
            b.mean.set(a.mean.array)
            b.variance.set(a.variance.array)
        }
        fresh.rng.pointee = net.rng.pointee
        try fresh.setOptimizer("adam")
        for _ in 0..<3 {
            let x = random.floats(6 * 6), labels = random.labels(6, classes: 3)
            #expect(try net.trainStep(x, labels).bitPattern == fresh.trainStep(x, labels).bitPattern)
        }
        #expect(NetworkSnapshot(net) == NetworkSnapshot(fresh))

        // A failed swap keeps the old optimizer, state and all.
        let old = net.optimizer
        #expect(throws: DescentError.self) { try net.setOptimizer("no-such-optimizer") }
        #expect(throws: DescentError.self) { try net.setOptimizer("sgd", hyperparameters: "lr=-1") }
        #expect(net.optimizer === old && net.optimizer.stepCount == 3)
    }

    // MARK: forwardBackward + applyUpdate

    /// The split step is the step: losses, weights, averages, optimizer state and generator
    /// bit for bit equal to trainStep's over several Adam steps with batch norm, dropout and
    /// weight decay.
    @Test func forwardBackwardPlusApplyUpdateEqualsTrainStep() throws {
        let spec = #"{"sizes":[7,9,5,3],"batchnorm":true,"dropout":0.25,"weight_decay":0.02,"seed":72}"#
        let whole = try Network(spec), split = try Network(spec)
        for net in [whole, split] { try net.setOptimizer("adam", hyperparameters: "lr=0.01") }
        var random = TestRandom(9)
        for step in 0..<6 {
            let x = random.floats(5 * 7), labels = random.labels(5, classes: 3)
            let a = try whole.trainStep(x, labels)
            let b = try split.forwardBackward(x, labels)
            #expect(split.hasPendingGradients)
            try split.applyUpdate()
            #expect(!split.hasPendingGradients)
            #expect(a.bitPattern == b.bitPattern, "step \(step)")
            #expect(NetworkSnapshot(whole) == NetworkSnapshot(split), "step \(step)")
        }
    }

    /// Between the halves the gradients are the caller's: halving them before an sgd update
    /// (lr 0.1) gives exactly the update of lr 0.05 on the unscaled gradients.
    @Test func gradientsAreWritableBetweenTheHalves() throws {
        let spec = #"{"sizes":[6,5,3],"batchnorm":true,"seed":73}"#
        let scaled = try Network(spec), reference = try Network(spec)
        try scaled.setOptimizer("sgd", hyperparameters: "lr=0.1")
        try reference.setOptimizer("sgd", hyperparameters: "lr=0.05")
        var random = TestRandom(10)
        let x = random.floats(4 * 6), labels = random.labels(4, classes: 3)
        try scaled.forwardBackward(x, labels)
        try reference.forwardBackward(x, labels)
        let start = scaled.parameters.map(\.value.array)
        let gradients = reference.parameters.map(\.gradient.array)
        for p in scaled.parameters { for j in 0..<p.count { p.gradient.pointer[j] *= 0.5 } }
        try scaled.applyUpdate()
        try reference.applyUpdate()
        #expect(NetworkSnapshot(scaled).values == NetworkSnapshot(reference).values)
        // and the step really is half of the lr-0.1 step: p - 0.1*(g/2)
        for (i, p) in scaled.parameters.enumerated() {
            for j in 0..<p.count {
                let w = start[i][j], g = gradients[i][j] * 0.5, got = p.value.pointer[j]
                #expect(got == w - 0.1 * g || got == w.addingProduct(-0.1, g), "\(p.name)[\(j)]")
            }
            #expect(bits(p.value.array) != bits(start[i]) || p.name.hasPrefix("b1"), "\(p.name) did not move")
        }
    }

    // MARK: evaluate

    /// evaluate over more rows than one chunk (1000): the mean cross-entropy in evaluation mode
    /// plus the weight-decay term, and the fraction of argmax hits, as computed from predict.
    @Test func evaluateMatchesPredict() throws {
        let net = try Network(#"{"sizes":[4,8,3],"batchnorm":true,"weight_decay":0.05,"seed":74}"#)
        try net.setOptimizer("adam", hyperparameters: "lr=0.05")
        var random = TestRandom(11)
        func data(_ n: Int) -> ([Float], [Int32]) {
            // a learnable problem: the label is the argmax of the first three features
            let x = random.floats(n * 4)
            var labels: [Int32] = []
            for r in 0..<n {
                let row = Array(x[r * 4..<r * 4 + 3])
                labels.append(Int32(row.firstIndex(of: row.max()!)!))
            }
            return (x, labels)
        }
        for _ in 0..<60 { let (x, y) = data(32); try net.trainStep(x, y) }
        let n = 2300
        let (x, labels) = data(n)
        let result = try net.evaluate(x: x, labels: labels, count: n)
        let probs = try net.predict(x)
        var ce = 0.0, hits = 0
        for r in 0..<n {
            let row = probs[r * 3..<(r + 1) * 3]
            ce -= log(Double(row[r * 3 + Int(labels[r])]))
            if row.indices.max(by: { row[$0] < row[$1] })! - r * 3 == Int(labels[r]) { hits += 1 }
        }
        let penalty = ReferenceMLP(net).penalty()
        #expect(penalty > 0)
        #expect(abs(result.loss - (ce / Double(n) + penalty)) <= 1e-5 * result.loss)
        #expect(result.accuracy == Double(hits) / Double(n))
        #expect(result.accuracy > 0.7, "the network should have learnt something")
    }

    // MARK: bad inputs

    /// A network with optimizer state, running averages and pending nothing: every bad input
    /// fails with its status and exact message and leaves it bitwise unchanged.
    static func trainedNetwork() throws -> Network {
        let net = try Network(#"{"sizes":[5,4,4,3],"batchnorm":true,"dropout":0.2,"seed":81}"#)
        try net.setOptimizer("adam")
        var random = TestRandom(12)
        for _ in 0..<2 { try net.trainStep(random.floats(4 * 5), random.labels(4, classes: 3)) }
        return net
    }

    @Test func badTrainingInputs() throws {
        let net = try Self.trainedNetwork()
        var random = TestRandom(13)
        let x = random.floats(4 * 5), labels: [Int32] = [0, 1, 2, 1]
        let batchMessage = { (b: Int) in "batch is \(b): must be >= 1 (and batch*features < 2^31)" }

        typealias Step = (Network, UnsafePointer<Float>?, UnsafePointer<Int32>?, Int) throws -> Void
        let steps: [(String, Step)] = [
            ("trainStep", { try $0.trainStep(x: $1, labels: $2, batch: $3) }),
            ("forwardBackward", { try $0.forwardBackward(x: $1, labels: $2, batch: $3) }),
            ("evaluate", { _ = try $0.evaluate(x: $1, labels: $2, count: $3) }),
        ]
        for (name, step) in steps {
            expectFailure(net, .invalidArgument, "x is NULL", name) { try step(net, nil, labels, 4) }
            expectFailure(net, .invalidArgument, "labels is NULL", name) { try step(net, x, nil, 4) }
            for b in [0, -1, -3_000_000_000] {
                expectFailure(net, .invalidArgument, batchMessage(b), name) { try step(net, x, labels, b) }
            }
            // batch is checked first: with batch 0 a NULL x is not what is reported
            expectFailure(net, .invalidArgument, batchMessage(0), name) { try step(net, nil, nil, 0) }
            // Too large for 32-bit BLAS indices: rejected before anything is read.
            expectFailure(net, .invalidArgument, batchMessage(Int(Int32.max)), name) { try step(net, x, labels, Int(Int32.max)) }
            for (index, bad) in [(2, Int32(3)), (0, -1), (3, Int32.max), (1, Int32.min)] {
                var l = labels
                l[index] = bad
                expectFailure(net, .invalidArgument, "labels[\(index)] is \(bad): must be in [0, 3)", name) { try step(net, x, l, 4) }
            }
            // several bad labels: the first is named
            expectFailure(net, .invalidArgument, "labels[1] is 5: must be in [0, 3)", name) { try step(net, x, [0, 5, 0, -2], 4) }
            for (index, bad, what) in [(7, Float.nan, "NaN"), (19, .infinity, "Inf"), (0, -.infinity, "-Inf"), (10, -.nan, "NaN")] {
                var v = x
                v[index] = bad
                expectFailure(net, .numeric, "x contains \(what) at index \(index) (row \(index / 5), column \(index % 5))", name) {
                    try step(net, v, labels, 4)
                }
            }
            // several: the first (by index) is named, also when the scan runs in parallel chunks
            var big = [Float](repeating: 0.5, count: 40_000 * 5)
            big[199_990] = .nan
            big[120_003] = -.infinity
            big[150_000] = .infinity
            expectFailure(net, .numeric, "x contains -Inf at index 120003 (row 24000, column 3)", name) {
                try step(net, big, [Int32](repeating: 1, count: 40_000), 40_000)
            }
        }
        // Only the first `batch` rows and labels are looked at.
        let longer = labels + [99]
        try net.forwardBackward(x: x + [.nan, 0, 0, 0, 0], labels: longer, batch: 4)
    }

    @Test func badPredictInputs() throws {
        let net = try Self.trainedNetwork()
        let x = TestRandom.floats(seed: 14, 2 * 5)
        var out = [Float](repeating: 0, count: 6)
        out.withUnsafeMutableBufferPointer { probs in
            let p = probs.baseAddress
            expectFailure(net, .invalidArgument, "probs is NULL") { try net.predict(x: x, batch: 2, probabilities: nil) }
            expectFailure(net, .invalidArgument, "x is NULL") { try net.predict(x: nil, batch: 2, probabilities: p) }
            expectFailure(net, .invalidArgument, "batch is 0: must be >= 1 (and batch*features < 2^31)") {
                try net.predict(x: x, batch: 0, probabilities: p)
            }
            var bad = x
            bad[6] = .nan
            expectFailure(net, .numeric, "x contains NaN at index 6 (row 1, column 1)") {
                try net.predict(x: bad, batch: 2, probabilities: p)
            }
        }
        #expect(out == [Float](repeating: 0, count: 6), "a failed predict must not write probs")
    }

    @Test func badActivationsRequests() throws {
        let fresh = try Network(#"{"sizes":[5,4,4,3]}"#)
        expectFailure(fresh, .invalidArgument, "no forward pass has run yet") { _ = try fresh.activations(layer: 0) }
        for layer in [-1, 2, 100] {
            expectFailure(fresh, .invalidArgument, "layer is \(layer): must be in [0, 2) (hidden layers)") {
                _ = try fresh.activations(layer: layer)
            }
        }
        let net = try Self.trainedNetwork()
        #expect(try net.activations(layer: 1).rows == 4)
        expectFailure(net, .invalidArgument, "layer is 2: must be in [0, 2) (hidden layers)") { _ = try net.activations(layer: 2) }
    }

    @Test func applyUpdateNeedsFreshGradients() throws {
        let message = "no gradients to apply: run forward_backward first (each result is applied once)"
        let fresh = try Network(#"{"sizes":[5,4,3]}"#)
        expectFailure(fresh, .invalidArgument, message) { try fresh.applyUpdate() }
        let net = try Self.trainedNetwork()   // trainStep consumed its own gradients
        expectFailure(net, .invalidArgument, message) { try net.applyUpdate() }
        try net.forwardBackward(TestRandom.floats(seed: 15, 4 * 5), [0, 1, 2, 0])
        try net.applyUpdate()
        expectFailure(net, .invalidArgument, message) { try net.applyUpdate() }
        // A failed forwardBackward does not produce gradients either.
        expectFailure(net, .invalidArgument, "x is NULL") { try net.forwardBackward(x: nil, labels: [0], batch: 1) }
        expectFailure(net, .invalidArgument, message) { try net.applyUpdate() }
    }

    /// A diverging step: weights and inputs so large that the scores overflow, so the loss is
    /// NaN. .numeric with the loss in the message, and nothing changed (trainStep and
    /// forwardBackward, with and without weight decay). Training goes on normally afterwards.
    /// One hidden layer, so the infinite hidden values reach the softmax directly. (With batch
    /// norm, dropout or a second ReLU layer the same inputs produce NaN hidden values (inf - inf,
    /// inf * 0) that ReLU turns into 0, so the loss stays finite and only the gradients are
    /// NaN: see hugeInputsMustNotCorruptBatchNorm and reluPropagatesNaN.)
    @Test(arguments: [#"{"sizes":[5,4,3],"seed":84}"#, #"{"sizes":[5,6,3],"weight_decay":0.01,"seed":85}"#])
    func divergingStepChangesNothing(_ json: String) throws {
        let net = try Network(json)
        try net.setOptimizer("adam")
        var random = TestRandom(16)
        for _ in 0..<2 { try net.trainStep(random.floats(4 * 5), random.labels(4, classes: 3)) }
        let w1 = net.parameter("W1").value.array
        net.parameter("W1").value.fill(1)          // every pre-activation 5 * 3e38 = inf
        let x = [Float](repeating: 3e38, count: 4 * 5)
        for call in 0..<2 {
            let before = NetworkSnapshot(net)
            do {
                if call == 0 { try net.trainStep(x, [0, 1, 2, 0]) } else { try net.forwardBackward(x, [0, 1, 2, 0]) }
                Issue.record("a NaN loss must fail")
            } catch let error as DescentError {
                #expect(error.status == .numeric)
                // Swift prints a NaN with the sign bit as "-nan" (cosmetic; see the report).
                #expect(["nan", "-nan", "NaN"].map { "the loss is \($0) (the weights or inputs are too large, or the learning rate is)" }
                    .contains(error.message), "\(error.message)")
            }
            #expect(NetworkSnapshot(net) == before)
        }
        net.parameter("W1").value.set(w1)
        try net.trainStep(random.floats(4 * 5), random.labels(4, classes: 3))
        #expect(net.optimizer.stepCount == 3)
    }

    /// Inputs large enough that the batch variance overflows float32 (x ~ 1e20: (x - mean)^2 > 3.4e38) make batch norm divide by
    /// sqrt(inf) while the loss stays a finite log(3): committing those statistics would make
    /// the running variance (and for x ~ 1e38 the running mean) +-Inf and every later
    /// predict/evaluate garbage; at x ~ 1e38 the gradient of W1 is NaN as well. Expected:
    /// .numeric and nothing changed.
    /// Also at 128 rows: two shards, whose train_step takes the optimizer step inside the pass.
    @Test(arguments: [Float(1e20), 1e38], [4, 128])
    func hugeInputsMustNotCorruptBatchNorm(_ scale: Float, rows: Int) throws {
        let net = try Network(#"{"sizes":[5,4,4,3],"batchnorm":true,"dropout":0.2,"seed":81}"#)
        try net.setOptimizer("adam")
        var random = TestRandom(16)
        for _ in 0..<2 { try net.trainStep(random.floats(rows * 5), random.labels(rows, classes: 3)) }
        let x = random.floats(rows * 5).map { $0 * scale }
        let labels = (0..<rows).map { Int32($0 % 3) }
        let before = NetworkSnapshot(net)
        for (name, call) in [("forwardBackward", net.forwardBackward), ("trainStep", net.trainStep)] as [(String, ([Float], [Int32]) throws -> Float)] {
            do {
                let loss = try call(x, labels)
                Issue.record("\(name) succeeded (loss \(loss)); running variance now \(net.runningStatistics[0].variance.array)")
            } catch let error as DescentError {
                #expect(error.status == .numeric)
            }
            #expect(NetworkSnapshot(net) == before, "\(name) changed the network")
        }
        for s in net.runningStatistics {
            #expect(s.mean.array.allSatisfy(\.isFinite) && s.variance.array.allSatisfy(\.isFinite),
                    "batch-norm running statistics are no longer finite")
        }
    }

    /// A finite loss with a non-finite gradient: the step fails .numeric, naming the parameter
    /// and index, and weights, averages, optimizer and generator are as they were.
    /// Construction: weight decay 3e38 with every weight 0 except W1[0] = 1.2, so the loss is
    /// log(3) + 0.5 * 3e38 * 1.44 = 2.16e38 (a finite Float) but dW1[0] = 3e38 * 1.2 = Inf.
    /// Also at 128 rows (two shards: the step inside the pass).
    @Test(arguments: [4, 128])
    func trainStepWithInfiniteGradientChangesNothing(rows: Int) throws {
        let net = try Network(#"{"sizes":[5,4,4,3],"batchnorm":true,"dropout":0.2,"weight_decay":3e38,"seed":82}"#)
        try net.setOptimizer("adam")
        for p in net.parameters where p.isWeight { p.value.fill(0) }
        var random = TestRandom(18)
        // biases, gamma and beta train; running averages and the generator move
        for _ in 0..<2 { try net.trainStep(random.floats(rows * 5), random.labels(rows, classes: 3)) }
        net.parameter("W1").value.pointer[0] = 1.2
        let x = random.floats(rows * 5)
        let labels = (0..<rows).map { Int32($0 % 3) }
        let message = "the gradient of W1 contains Inf at index 0"
        expectFailure(net, .numeric, message) { try net.trainStep(x, labels) }
        // The failed step left no gradients to apply.
        expectFailure(net, .invalidArgument,
                      "no gradients to apply: run forward_backward first (each result is applied once)") { try net.applyUpdate() }
        // forwardBackward documents train_step's errors ("a non-finite loss or gradient")
        expectFailure(net, .numeric, message) { try net.forwardBackward(x, labels) }
    }

    /// The loss is computed in double but returned as Float. A loss above Float.greatestFiniteMagnitude (here the weight-decay
    /// penalty 0.5*1e-3*(1e30)^2 = 5e56) passes the check and trainStep returns +Inf with
    /// success unless the check is made on the Float too.
    /// Also at 128 rows (two shards: the step inside the pass).
    @Test(arguments: [2, 128])
    func lossOverflowingFloatIsNumeric(rows: Int) throws {
        let net = try Network(#"{"sizes":[5,4,3],"weight_decay":0.001,"seed":83}"#)
        net.parameter("W1").value.pointer[0] = 1e30
        var x = TestRandom.floats(seed: 19, rows * 5)
        for r in 0..<rows { x[r * 5] = 0 }
        let before = NetworkSnapshot(net)
        do {
            let loss = try net.trainStep(x, (0..<rows).map { Int32($0 % 3) })
            Issue.record("trainStep succeeded with loss \(loss); a loss that is not a finite Float must be .numeric")
        } catch let error as DescentError {
            #expect(error.status == .numeric)
        }
        #expect(NetworkSnapshot(net) == before)
    }
}
