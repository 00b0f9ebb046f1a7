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
}
