// Thread count: results must not depend on it (bit for bit), and Threads validates its input.
// The suite is serialized because the thread count is process-wide; no other suite sets it.
import Testing
import CDescentKernels
@testable import Descent

/// Every built-in, both adam forms, and weight decay (which takes the host's scratch path).
let threadCases: [FormulaCase] = builtinNames.map { FormulaCase($0) } + [
    FormulaCase("adam", [HP("eps_hat", 0)]),
    FormulaCase("sgd", [HP("weight_decay", 0.05)]),
    FormulaCase("momentum", [HP("weight_decay", 0.05)]),
    FormulaCase("nesterov", [HP("weight_decay", 0.05)]),
    FormulaCase("adagrad", [HP("weight_decay", 0.05)]),
    FormulaCase("rmsprop", [HP("weight_decay", 0.05)]),
    FormulaCase("adam", [HP("weight_decay", 0.05)]),
    FormulaCase("adamw", [HP("weight_decay", 0.1)]),
]

/// More than DK_PARALLEL_MIN_ELEMENTS (32768) in total and per large tensor, with lengths that
/// are not multiples of the 4096-element chunk, so two threads split tensors mid-way.
let threadLengths = [40_000, 3, 70_001]

@Suite("Threads", .serialized)
struct ThreadTests {
    /// Runs 3 steps with `threads` threads; returns params and every state buffer.
    func run(_ c: FormulaCase, threads: Int, data: FormulaData) throws -> ([[Float]], [[[Float]]]?) {
        try Threads.set(threads)
        #expect(Threads.count == threads)
        let optimizer = try Optimizer(c.name, hyperparameters: c.text)
        let tensors = TensorSet(params: data.params.map { $0.map(Float.init) })
        for g in data.grads {
            tensors.setGrads(g.map { $0.map(Float.init) })
            try tensors.step(optimizer)
        }
        return (tensors.paramValues, stateSnapshot(optimizer))
    }

    @Test("1 and 2 threads give bit-identical results", arguments: threadCases)
    func bitIdentical(_ c: FormulaCase) throws {
        defer { _ = try? Threads.set(0) }
        let data = FormulaData(lengths: threadLengths, steps: 3, seed: 42)
        let (p1, s1) = try run(c, threads: 1, data: data)
        let (p2, s2) = try run(c, threads: 2, data: data)
        #expect(bits(p1) == bits(p2), "params differ between 1 and 2 threads")
        #expect(bits(s1) == bits(s2), "state differs between 1 and 2 threads")
        // And the run did change something (guards against comparing two untouched copies).
        #expect(bits(p1) != bits(data.params.map { $0.map(Float.init) }))
    }

    /// With two threads each finds a bad value in its half; the first one in (tensor, index)
    /// order must be reported, whichever thread finishes first.
    @Test("NaN/Inf scan reports the first bad value with 2 threads")
    func firstNonFiniteInParallel() throws {
        defer { _ = try? Threads.set(0) }
        for threads in [1, 2] {
            try Threads.set(threads)
            let optimizer = try Optimizer("sgd")
            let tensors = TensorSet(lengths: [70_001, 40_000])
            tensors.grads[0][65_000] = .nan        // in the second thread's half
            tensors.grads[0][40_000] = -.infinity  // first thread's half... of tensor 0
            tensors.grads[1][5] = .nan
            expectDescentError(.numeric, "grads[0] contains -Inf at index 40000") { try tensors.step(optimizer) }
            tensors.grads[0][40_000] = 1
            expectDescentError(.numeric, "grads[0] contains NaN at index 65000") { try tensors.step(optimizer) }
            tensors.grads[0][65_000] = 1
            expectDescentError(.numeric, "grads[1] contains NaN at index 5") { try tensors.step(optimizer) }
            #expect(optimizer.stepCount == 0)
            #expect(tensors.params.allSatisfy { $0.allSatisfy { $0 == 0 } })
        }
    }

    @Test("set/count and the default")
    func setAndCount() throws {
        defer { _ = try? Threads.set(0) }
        #expect(try Threads.set(1) == 1)
        #expect(Threads.count == 1)
        #expect(try Threads.set(3) == 3)
        #expect(Threads.count == 3)
        let restored = try Threads.set(0)
        #expect(restored == Int(dk_default_threads()))
        #expect(Threads.count == restored)
        #expect(restored >= 1)
    }

    @Test("invalid thread counts are rejected and change nothing", arguments: [-1, 1025, Int.min])
    func invalid(_ n: Int) throws {
        defer { _ = try? Threads.set(0) }
        try Threads.set(2)
        expectDescentError(.invalidArgument, "n is \(n): must be 0 (default) or 1...1024") { try Threads.set(n) }
        #expect(Threads.count == 2)
    }

    /// Network training: products large enough to be cut into parts (dk_sgemm) and an update
    /// above the parallel threshold. The cut depends on the shape alone, so 1 and 2 threads
    /// must give the same losses and weights bit for bit.
    @Test("network training is bit-identical with 1 and 2 threads")
    func networkBitIdentical() throws {
        defer { _ = try? Threads.set(0) }
        func train(threads: Int) throws -> ([UInt32], [[UInt32]]) {
            try Threads.set(threads)
            let net = try Network(json: #"{"sizes":[64,300,96,10],"batchnorm":true,"dropout":0.2,"seed":5}"#)
            try net.setOptimizer("adam")
            var random = TestRandom(41)
            var losses: [Float] = []
            for _ in 0..<6 { losses.append(try net.trainStep(random.floats(128 * 64), random.labels(128, classes: 10))) }
            return (bits(losses), net.parameters.map { bits(Array($0.value.buffer)) })
        }
        let one = try train(threads: 1), two = try train(threads: 2)
        #expect(one.0 == two.0)
        #expect(one.1 == two.1)
    }
}
