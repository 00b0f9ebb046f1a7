// ParameterArena: the layout a spec gives (layer order, 64-byte boundaries), and a network's
// parameters as views into the arenas rather than buffers of their own.
import Testing
@testable import Descent

@Suite struct ParameterArenaTests {

    @Test func layoutOfABatchNormNetwork() throws {
        let spec = try NetworkSpec(sizes: [5, 4, 3, 2], batchNorm: true)
        let (views, length) = try ParameterArena.layout(for: spec)
        // Each tensor rounded up to 16 floats: W1 20 -> 32, vectors of 4 or 3 -> 16, W2 12 -> 16, W3 6 -> 16.
        #expect(views.map(\.name) == ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3"])
        #expect(views.map(\.offset) == [0, 32, 48, 64, 80, 96, 112, 128, 144, 160])
        #expect(views.map(\.shape) == [[5, 4], [4], [4], [4], [4, 3], [3], [3], [3], [3, 2], [2]])
        #expect(views.map(\.isWeight) == [true, false, false, false, true, false, false, false, true, false])
        #expect(length == 176)
    }

    @Test func aTensorOfAWholeNumberOfCacheLinesNeedsNoPadding() throws {
        let (views, length) = try ParameterArena.layout(for: try NetworkSpec(sizes: [4, 16, 16]))
        #expect(views.map(\.offset) == [0, 64, 80, 336])
        #expect(length == 352)
    }

    @Test func parametersAreViewsIntoTheArenas() throws {
        let network = try Network(json: #"{"sizes":[5,4,3,2],"batchnorm":true,"seed":3}"#)
        let arena = network.arena
        #expect(!arena.values.isView && !arena.gradients.isView)
        for p in network.parameters {
            #expect(p.value.isView && p.gradient.isView)
            #expect(p.value.pointer == arena.values.pointer + p.offset, "\(p.name)")
            #expect(p.gradient.pointer == arena.gradients.pointer + p.offset, "\(p.name)")
            #expect(Int(bitPattern: p.value.pointer) % 64 == 0, "\(p.name)")
        }
        #expect(throws: DescentError(.invalidArgument, "a view of 20 floats cannot grow to 21")) {
            try network.parameters[0].value.reserve(21)
        }
    }

    /// A network's update is one elementwise pass over the whole arena, with each optimizer
    /// state slot laid out like the arena. It must equal an optimizer stepping each parameter
    /// as a tensor of its own: parameters and every state slice bit for bit, over three steps
    /// (Adam's state and bias correction carry over), with the padding left at zero.
    @Test(arguments: ["adam", "rmsprop", "nesterov"])
    func arenaUpdateEqualsPerTensorUpdate(_ name: String) throws {
        let network = try Network(json: #"{"sizes":[7,5,3],"batchnorm":true,"seed":12}"#)
        try network.setOptimizer(name)
        let separate = try Optimizer(name)
        // The same starting values, each parameter in a buffer of its own.
        let values = try network.parameters.map { p in
            let copy = try FloatBuffer(count: p.count)
            copy.pointer.update(from: p.value.pointer, count: p.count)
            return copy
        }
        var random = TestRandom(41)
        for _ in 0..<3 {
            try network.forwardBackward(random.floats(4 * 7), random.labels(4, classes: 3))
            try separate.step(parameters: values.map(\.buffer),
                              gradients: network.parameters.map { UnsafeBufferPointer($0.gradient.buffer) })
            try network.applyUpdate()
            for (p, expected) in zip(network.parameters, values) {
                #expect(p.value.array.map(\.bitPattern) == expected.array.map(\.bitPattern), "\(name): \(p.name)")
            }
        }
        let arena = network.arena
        #expect(network.optimizer.stateShape == [Int64(arena.length)])
        for slot in 0..<network.optimizer.kind.stateCount {
            let state = try #require(network.optimizer.state(tensor: 0, slot: slot))
            #expect(Int(bitPattern: state.baseAddress!) % 64 == 0)
            var covered = [Bool](repeating: false, count: arena.length)
            for (i, p) in network.parameters.enumerated() {
                let mine = Array(state[p.offset..<p.offset + p.count]).map(\.bitPattern)
                let theirs = Array(try #require(separate.state(tensor: i, slot: slot))).map(\.bitPattern)
                #expect(mine == theirs, "\(name): slot \(slot) of \(p.name)")
                for k in p.offset..<p.offset + p.count { covered[k] = true }
            }
            #expect(covered.indices.allSatisfy { covered[$0] || state[$0] == 0 }, "the padding's state stays 0")
        }
    }
}
