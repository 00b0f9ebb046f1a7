import CDescentKernels

/// Inverted dropout: in training each unit is kept with probability 1-ratio and scaled by
/// 1/(1-ratio); evaluation is the identity. A training pass draws one key from the network's
/// seeded generator; unit i of the batch is kept when `dk_rng_at(key, i) >= ratio`, so a mask
/// depends on the seed and the unit's place in the batch (the global batch of a data-parallel
/// job), never on the shard, thread or process.
final class DropoutLayer: Layer {
    let ratio: Float
    let width: Int
    private let rng: UnsafeMutablePointer<dk_rng>
    private var key: UInt64 = 0
    private let mask = FloatBuffer()
    private let output = FloatBuffer()
    private let inputGradientBuffer = FloatBuffer()

    init(ratio: Float, width: Int, rng: UnsafeMutablePointer<dk_rng>) {
        self.ratio = ratio
        self.width = width
        self.rng = rng
    }

    func reserve(rows: Int, shards: Int) throws {
        try mask.reserve(rows * width)
        try output.reserve(rows * width)
        try inputGradientBuffer.reserve(rows * width)
    }

    func output(for x: UnsafePointer<Float>, training: Bool) -> UnsafePointer<Float> {
        training ? UnsafePointer(output.pointer) : x
    }

    var inputGradient: UnsafeMutablePointer<Float>? { inputGradientBuffer.pointer }

    func prepare(training: Bool) {
        if training { key = dk_rng_next(rng) }
    }

    func forward(_ x: UnsafePointer<Float>, _ shard: Shard, stage: Int, training: Bool) {
        guard training else { return }
        dk_dropout_forward(shard.first(x, width: width), shard.first(output.pointer, width: width),
                           shard.first(mask.pointer, width: width), Int64((shard.rowOffset + shard.rows.lowerBound) * width),
                           Int64(shard.rows.count * width), ratio, key)
    }

    func backward(_ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, _ shard: Shard, stage: Int) {
        dk_multiply(shard.first(dy, width: width), shard.first(mask.pointer, width: width),
                    shard.first(inputGradientBuffer.pointer, width: width), Int64(shard.rows.count * width))
    }
}
