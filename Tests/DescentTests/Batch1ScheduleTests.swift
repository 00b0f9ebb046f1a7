// The batch-1 path (Batch1Schedule / batch1_schedule.c): networks without batch norm and
// dropout run forward, backward and the optimizer update in one pass at batch 1. These tests
// hold it to the layer-by-layer path's contract: float64-exact gradients, the same results as
// forward_backward + apply_update, bit-identical results for any thread count, and the same
// errors with nothing changed.
import CDescentKernels
import Testing
@testable import Descent

@Suite struct Batch1ScheduleTests {

    /// Big enough (300*120 + 120*10 = 37,200 weights) that the pass runs on several threads
    /// (as many as the machine has cores, up to DK_ROW_BLOCKS).
    static let large = #"{"sizes":[300,120,10],"activation":"relu","init":"he","seed":21}"#

    /// Small networks of every eligible kind: loss and every gradient coordinate against
    /// central differences of the float64 reference (tolerances as in NetworkGradientTests).
    @Test(arguments: [
        #"{"sizes":[5,3],"init":"std:0.5","seed":3}"#,
        #"{"sizes":[5,4,4,3],"activation":"relu","init":"he","seed":1}"#,
        #"{"sizes":[5,4,4,3],"activation":"sigmoid","init":"std:1","seed":2}"#,
        #"{"sizes":[5,4,4,3],"activation":"tanh","init":"xavier","seed":3}"#,
        #"{"sizes":[5,4,4,3],"activation":"relu","weight_decay":0.3,"seed":9}"#,
    ])
    func gradientsMatchFloat64Reference(_ json: String) throws {
        let net = try Network(json)
        var random = TestRandom(200)
        let x = random.floats(net.inputSize)
        let labels = random.labels(1, classes: net.classes)
        let loss = try net.forwardBackward(x, labels)

        let reference = ReferenceMLP(net)
        let xd = x.map(Double.init)
        let referenceLoss = reference.loss(xd, labels: labels, mode: .training(masks: []))
        #expect(abs(Double(loss) - referenceLoss) <= 1e-6 * abs(referenceLoss))
        let numerical = reference.numericalGradients(xd, labels: labels, masks: [])
        for (p, parameter) in net.parameters.enumerated() {
            let mismatch = firstMismatch(parameter.gradient.doubles, numerical[p], abs: 1e-5, rel: 1e-4)
            #expect(mismatch == nil, "gradient of \(parameter.name)\(mismatch ?? "")")
        }
        for parameter in net.parameters where parameter.isWeight {
            #expect(maxAbs(parameter.gradient.doubles) > 1e-3, "\(parameter.name)'s gradient is ~0")
        }
        // The hidden activations are the ones this pass computed.
        for layer in 0..<net.spec.hiddenLayers {
            let a = try net.activations(layer: layer)
            #expect(a.rows == 1 && a.columns == net.spec.sizes[layer + 1])
        }
    }

    /// Every weight gradient element is the float32 product a_i * delta_j (+ lambda * W_ij),
    /// rounded after each operation: the bits the definition gives. The pass writes a layer's
    /// gradient rows as one run of 8-float vectors, so with fan-outs that are not multiples of
    /// 8 (100, 13, 9) a vector straddles two rows; fan-out 6 takes the row-by-row loop. delta_j
    /// is read back from the bias gradient, which is delta itself at batch 1.
    @Test(arguments: [0.0, 0.3])
    func weightGradientsAreExactProducts(_ decay: Double) throws {
        let net = try Network(#"{"sizes":[330,100,13,6,9],"activation":"tanh","weight_decay":\#(decay),"seed":31}"#)
        var random = TestRandom(205)
        let x = random.floats(330, std: 0.5, mean: 0.5)
        try net.forwardBackward(x, random.labels(1, classes: 9))
        let lambda = Float(decay)
        let sizes = net.spec.sizes
        for l in 0..<(sizes.count - 1) {
            let a = l == 0 ? x : Array(UnsafeBufferPointer(start: try net.activations(layer: l - 1).data, count: sizes[l]))
            let delta = net.parameter("b\(l + 1)").gradient.array
            let w = net.parameter("W\(l + 1)").value.array, dw = net.parameter("W\(l + 1)").gradient.array
            var mismatches = 0
            for i in 0..<sizes[l] {
                for j in 0..<sizes[l + 1] {
                    var expected = a[i] * delta[j]
                    if lambda > 0 { expected += lambda * w[i * sizes[l + 1] + j] }
                    if dw[i * sizes[l + 1] + j].bitPattern != expected.bitPattern { mismatches += 1 }
                }
            }
            #expect(mismatches == 0, "W\(l + 1): \(mismatches) elements differ from a_i * delta_j")
            #expect(maxAbs(delta.map(Double.init)) > 1e-4, "b\(l + 1)'s gradient is ~0")
        }
    }

    /// The layer-by-layer pass at batch 1 runs the same affine kernels (affine.c) as the
    /// schedule, in the same order: loss, hidden activations and every gradient are
    /// bit-identical. The layer path is taken here by a network with dropout 1e-9, which the
    /// schedule does not run: in float32 it keeps every unit and scales by exactly 1.
    @Test func layerPathAtBatch1EqualsSchedule() throws {
        let spec = #"{"sizes":[330,100,13,6,9],"activation":"tanh","weight_decay":0.01,"seed":31}"#
        let scheduled = try Network(spec)
        let layered = try Network(spec.replacing("\"seed\"", with: "\"dropout\":1e-9,\"seed\""))
        var random = TestRandom(207)
        let x = random.floats(330, std: 0.5, mean: 0.5), label = random.labels(1, classes: 9)
        let scheduledLoss = try scheduled.forwardBackward(x, label)
        let layeredLoss = try layered.forwardBackward(x, label)
        #expect(scheduledLoss.bitPattern == layeredLoss.bitPattern)
        for (p, q) in zip(scheduled.parameters, layered.parameters) {
            #expect(p.gradient.array.map(\.bitPattern) == q.gradient.array.map(\.bitPattern), "gradient of \(p.name)")
            #expect(maxAbs(p.gradient.doubles) > 1e-6, "\(p.name)'s gradient is ~0")
        }
        for layer in 0..<scheduled.spec.hiddenLayers {
            let a = try scheduled.activations(layer: layer), b = try layered.activations(layer: layer)
            #expect(Array(UnsafeBufferPointer(start: a.data, count: a.columns)).map(\.bitPattern)
                    == Array(UnsafeBufferPointer(start: b.data, count: b.columns)).map(\.bitPattern))
        }
    }

    /// On a network large enough for several threads, the one-sample pass agrees with the
    /// layer-by-layer (BLAS) path run on a batch of the same sample twice, whose mean loss and
    /// gradients are the same numbers: only the order of float32 sums differs (~1e-6 relative).
    @Test func largeNetworkAgreesWithLayerPath() throws {
        let one = try Network(Self.large), two = try Network(Self.large)
        var random = TestRandom(201)
        let x = random.floats(300, std: 0.5, mean: 0.5)
        let label = random.labels(1, classes: 10)
        let l1 = try one.forwardBackward(x, label)
        let l2 = try two.forwardBackward(x + x, label + label)
        #expect(abs(l1 - l2) <= 1e-6 * abs(l2))
        for (p, q) in zip(one.parameters, two.parameters) {
            let scale = max(maxAbs(q.gradient.doubles), 1e-30)
            let mismatch = firstMismatch(p.gradient.doubles, q.gradient.doubles, abs: 1e-5 * scale, rel: 1e-4)
            #expect(mismatch == nil, "gradient of \(p.name)\(mismatch ?? "")")
            #expect(scale > 1e-4, "\(p.name)'s gradient is ~0")
        }
    }

    /// train_step fuses the update into the pass; forward_backward + apply_update take the
    /// update separately. Both give bit-identical losses, weights and optimizer state, and
    /// train_step leaves the step's gradients readable. Without network weight decay (or with
    /// check_finite=0) the pass steps each gradient row as it is made; with it, it makes and
    /// scans all gradients first: both are checked. Every optimizer takes its step through its
    /// own step(), a chunk of fresh gradient rows at a time. The host's weight decay and the
    /// network's are not combined: a network refuses that.
    @Test(arguments: [("sgd", "weight_decay=0.01"), ("momentum", "weight_decay=0.01"), ("adam", ""),
                      ("adam", "weight_decay=0.01"), ("adam", "check_finite=0"), ("adamw", "lr=0.001")],
          [0.0, 0.01])
    func trainStepEqualsForwardBackwardThenUpdate(_ optimizer: (String, String), _ networkDecay: Double) throws {
        let spec = Self.large.replacing("\"seed\"", with: "\"weight_decay\":\(networkDecay),\"seed\"")
        let fused = try Network(spec), split = try Network(spec)
        #expect(fused.spec.weightDecay == networkDecay)
        let (optimizer, settings) = optimizer
        if networkDecay > 0, settings.contains("weight_decay=") {
            // One L2 term: the network refuses the host's on top of its own spec's.
            #expect(throws: DescentError.self) { try fused.setOptimizer(optimizer, hyperparameters: settings) }
            return
        }
        try fused.setOptimizer(optimizer, hyperparameters: settings)
        try split.setOptimizer(optimizer, hyperparameters: settings)
        var random = TestRandom(202)
        for _ in 0..<6 {
            let x = random.floats(300, std: 0.5, mean: 0.5)
            let label = random.labels(1, classes: 10)
            let a = try fused.trainStep(x, label)
            let gradients = fused.parameters.map { bits($0.gradient.array) }
            let b = try split.forwardBackward(x, label)
            #expect(gradients == split.parameters.map { bits($0.gradient.array) })
            try split.applyUpdate()
            #expect(a.bitPattern == b.bitPattern)
        }
        #expect(NetworkSnapshot(fused) == NetworkSnapshot(split))
        #expect(fused.optimizer.stepCount == 6)
    }

    /// A finite loss with an infinite gradient (the construction of NetworkBehaviourTests:
    /// weight decay 3e38, all weights 0 but W1[0] = 1.2): the fused step fails .numeric with
    /// the layer path's message and changes nothing; check_finite=0 lets it through. Fan-out
    /// 4 makes W1's gradient row by row, fan-out 9 as a run of vectors.
    @Test(arguments: [#"{"sizes":[5,4,4,3],"weight_decay":3e38,"seed":82}"#,
                      #"{"sizes":[5,9,4,3],"weight_decay":3e38,"seed":82}"#])
    func infiniteGradientChangesNothing(_ json: String) throws {
        let net = try Network(json)
        try net.setOptimizer("adam")
        for p in net.parameters where p.isWeight { p.value.fill(0) }
        var random = TestRandom(204)
        for _ in 0..<2 { try net.trainStep(random.floats(5), random.labels(1, classes: 3)) }
        net.parameter("W1").value.pointer[0] = 1.2
        let x = random.floats(5)
        let message = "the gradient of W1 contains Inf at index 0"
        expectFailure(net, .numeric, message) { try net.trainStep(x, [1]) }
        expectFailure(net, .invalidArgument,
                      "no gradients to apply: run forward_backward first (each result is applied once)") { try net.applyUpdate() }
        expectFailure(net, .numeric, message) { try net.forwardBackward(x, [1]) }
        try net.optimizer.set("check_finite", 0)
        try net.trainStep(x, [1])
        #expect(net.optimizer.stepCount == 3)
        #expect(net.parameter("W1").value.pointer[0].isNaN)
    }

    /// Without network weight decay the pass proves gradients finite from max|a| * max|delta|
    /// before it steps row by row. Here that bound fails and a product really overflows, with
    /// a finite loss: x = 1e38 and W1 = 1e-37 give hidden units of 50, W2 = 10 in its first
    /// column gives scores [2000, 0, 0], a loss of 2000 for label 1, delta of the hidden layer
    /// 10, and dW1[0][0] = 1e38 * 10 = Inf. The step must fail before writing anything.
    @Test func overflowingGradientWithoutDecayChangesNothing() throws {
        let net = try Network(#"{"sizes":[5,4,3],"seed":84}"#)
        try net.setOptimizer("adam")
        try net.trainStep(TestRandom.floats(seed: 6, 5), [0])
        net.parameter("W1").value.fill(1e-37)
        let w2 = net.parameter("W2").value
        w2.fill(0)
        for i in 0..<4 { w2.pointer[i * 3] = 10 }
        let x = [Float](repeating: 1e38, count: 5)
        expectFailure(net, .numeric, "the gradient of W1 contains Inf at index 0") { try net.trainStep(x, [1]) }
        expectFailure(net, .numeric, "the gradient of W1 contains Inf at index 0") { try net.forwardBackward(x, [1]) }
    }

    /// A loss that is not a finite float32 stops the pass before the backward pass: nothing
    /// changes, but as after any step, failed or not, no gradients are left to apply (those of
    /// an earlier forward_backward included), as on the layer-by-layer path.
    @Test func lossOverflowChangesNothing() throws {
        let net = try Network(#"{"sizes":[5,4,3],"weight_decay":0.001,"seed":83}"#)
        try net.forwardBackward(TestRandom.floats(seed: 5, 5), [2])
        net.parameter("W1").value.pointer[0] = 1e30
        var x = TestRandom.floats(seed: 19, 5)
        x[0] = 0
        var before = NetworkSnapshot(net)
        #expect(before.pendingGradients)
        do {
            let loss = try net.trainStep(x, [0])
            Issue.record("trainStep succeeded with loss \(loss)")
        } catch let error as DescentError {
            #expect(error.status == .numeric)
            #expect(error.message.hasPrefix("the loss is too large for float32 (5.0"), "\(error.message)")
        }
        before.pendingGradients = false
        #expect(NetworkSnapshot(net) == before)
    }
}

/// In the serialized Threads suite: the thread count is process-wide.
extension ThreadTests {
    /// Same inputs, any thread count (1 to DK_ROW_BLOCKS and beyond): bit-identical losses,
    /// weights and optimizer state. The second network has network weight decay and fan-outs
    /// that are not multiples of 8, so where a thread's rows start decides which gradient
    /// elements are made one at a time and which in vector lanes.
    @Test("batch-1 steps: any thread count gives identical bits", arguments: [
        Batch1ScheduleTests.large, #"{"sizes":[330,100,13,6,9],"weight_decay":0.01,"seed":22}"#,
    ]) func singleSampleBitIdentical(_ json: String) throws {
        var results: [(losses: [UInt32], snapshot: NetworkSnapshot)] = []
        for threads: Int32 in [1, 2, 3, 5] {
            let net = try Network(json)
            try net.setOptimizer("adam")
            var random = TestRandom(203)
            try Threads.set(Int(threads))
            defer { _ = try? Threads.set(0) }
            let losses = try (0..<8).map { _ in
                try net.trainStep(random.floats(net.inputSize, std: 0.5, mean: 0.5),
                                  random.labels(1, classes: net.classes)).bitPattern
            }
            results.append((losses, NetworkSnapshot(net)))
        }
        for r in results.dropFirst() {
            #expect(r.losses == results[0].losses)
            #expect(r.snapshot == results[0].snapshot)
        }
    }

}

