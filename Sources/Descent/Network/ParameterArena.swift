/// One network's parameters in one block of memory, and their gradients in a second block with
/// the same layout: W1, b1, [gamma1, beta1,] W2, ... in layer order, each view starting on a
/// 64-byte boundary, the floats between views zero. Callers that move all gradients at once
/// (an all-reduce across processes) or copy all weights at once use one pointer and one length
/// instead of one per tensor.
///
/// The table of views is computed from the spec before anything is allocated, so each arena is
/// one allocation from the checked allocator; running out names the arena and its size.
public final class ParameterArena {
    /// Views start on multiples of this many floats: 64 bytes, a cache line and an AVX-512
    /// vector, the alignment every FloatBuffer has. Kernels therefore see the same alignment
    /// as when each tensor had its own buffer, and compute the same bits.
    public static let alignment = 64 / MemoryLayout<Float>.size

    /// One tensor's place in the arenas.
    public struct View: Equatable, Sendable {
        /// W and b per affine layer, gamma and beta per batch-norm layer, 1-based.
        public let name: String
        /// Floats from the start of the arena; a multiple of `alignment`.
        public let offset: Int
        /// [fan_in, fan_out] for weights (row-major), [width] for vectors.
        public let shape: [Int]
        /// Weights get weight decay; biases and batch-norm parameters do not.
        public let isWeight: Bool
        public var count: Int { shape.reduce(1, *) }
    }

    /// In layer order, offsets increasing.
    public let views: [View]
    /// Floats in each arena, padding included (a multiple of `alignment`).
    public let length: Int
    /// The parameters' values; zeroed here (the network initialises them).
    public let values: FloatBuffer
    /// The gradients, same layout.
    public let gradients: FloatBuffer

    /// Errors: `.outOfMemory`, "the parameter arena: cannot allocate N floats (B bytes)" (or
    /// "the gradient arena: ..."); a values arena already allocated is freed with the throw.
    public init(spec: NetworkSpec) throws {
        let layout = try Self.layout(for: spec)
        (views, length) = layout
        values = try withErrorPrefix("the parameter arena") { try FloatBuffer(count: layout.length) }
        gradients = try withErrorPrefix("the gradient arena") { try FloatBuffer(count: layout.length) }
    }

    /// Zeroes the gradient arena's floats between views, which a caller writing the whole
    /// arena (an all-reduce, a fill) may have changed: the update is one pass over the whole
    /// arena, and zero gradients there keep the parameters' padding at zero.
    public func clearGradientPadding() {
        for (i, view) in views.enumerated() {
            let end = i + 1 < views.count ? views[i + 1].offset : length
            (gradients.pointer + view.offset + view.count).update(repeating: 0, count: end - view.offset - view.count)
        }
    }

    /// The views a spec's network has, and the arena length they need, without allocating.
    /// The order is the network's: W<i>, b<i>, then gamma<i>, beta<i> if batch norm, per layer.
    public static func layout(for spec: NetworkSpec) throws -> (views: [View], length: Int) {
        var shapes: [(name: String, shape: [Int], isWeight: Bool)] = []
        for i in 1..<spec.sizes.count {
            let fanIn = spec.sizes[i - 1], fanOut = spec.sizes[i]
            shapes += [("W\(i)", [fanIn, fanOut], true), ("b\(i)", [fanOut], false)]
            if spec.batchNorm, i < spec.sizes.count - 1 {
                shapes += [("gamma\(i)", [fanOut], false), ("beta\(i)", [fanOut], false)]
            }
        }
        var views: [View] = []
        var end = 0
        for (name, shape, isWeight) in shapes {
            let view = View(name: name, offset: end, shape: shape, isWeight: isWeight)
            // Sizes are at most 2^24 each, so one tensor fits; a very long spec could overflow the sum.
            let (next, overflow) = end.addingReportingOverflow(roundedUp(view.count))
            guard !overflow else {
                throw DescentError(.outOfMemory, "the parameter arena: cannot allocate more than \(Int.max) floats")
            }
            views.append(view)
            end = next
        }
        return (views, end)
    }

    /// `count` rounded up to a multiple of `alignment`.
    private static func roundedUp(_ count: Int) -> Int {
        count + (alignment - count % alignment) % alignment
    }
}
