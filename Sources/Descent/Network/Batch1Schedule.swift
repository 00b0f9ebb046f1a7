import CDescentKernels

/// The batch-1 training step of a network without batch norm and dropout: forward, backward
/// and the optimizer update in one pass of `dk_dense_step_one` (batch1_schedule.c), where each
/// thread keeps its rows of every weight matrix, their gradients and optimizer state in its own
/// cache. Its kernels are the layers' own (affine.c, the activation loops, the optimizer's
/// step()), so it computes the layer-by-layer path's bits at batch 1.
final class Batch1Schedule {
    private let affine: [AffineLayer]
    private let activationLayers: [ActivationLayer]
    private let function: Int32
    private let weightDecay: Float
    /// The kernel's view of the layers, filled on first use and again after `buffersMoved`
    /// (the activation layers' outputs move when a larger batch makes them grow).
    private let table: CheckedArray<dk_dense_layer>
    private var tableIsCurrent = false
    /// Per layer: delta [fan_out], scratch [fan_out], partials [DK_ROW_BLOCKS][fan_out].
    private let deltas: [FloatBuffer]
    private let scratches: [FloatBuffer]
    private let partials: [FloatBuffer]
    private let scores: FloatBuffer

    /// nil when the network has layers this path does not run (batch norm, dropout).
    init?(layers: [Layer], function: Activation, weightDecay: Float) throws {
        guard layers.allSatisfy({ $0 is AffineLayer || $0 is ActivationLayer }) else { return nil }
        affine = layers.compactMap { $0 as? AffineLayer }
        activationLayers = layers.compactMap { $0 as? ActivationLayer }
        self.function = function.code
        self.weightDecay = weightDecay
        deltas = try affine.map { try FloatBuffer(count: $0.fanOut) }
        scratches = try affine.map { try FloatBuffer(count: $0.fanOut) }
        partials = try affine.map { try FloatBuffer(count: Int(DK_ROW_BLOCKS) * $0.fanOut) }
        scores = try FloatBuffer(count: affine.last!.fanOut)
        table = try CheckedArray(count: affine.count, for: "the batch-1 layer table")
    }

    /// Tells the path that layer buffers were reallocated (Network.reserve).
    func buffersMoved() { tableIsCurrent = false }

    private func fillTable() {
        for (l, layer) in affine.enumerated() {
            let hidden = l < activationLayers.count
            var entry = dk_dense_layer()
            entry.fan_in = Int32(layer.fanIn)
            entry.fan_out = Int32(layer.fanOut)
            entry.weight = layer.weight.value.pointer
            entry.weight_grad = layer.weight.gradient.pointer
            entry.bias = layer.bias.value.pointer
            entry.bias_grad = layer.bias.gradient.pointer
            entry.output = hidden ? activationLayers[l].output.pointer : scores.pointer
            entry.delta = deltas[l].pointer
            entry.scratch = scratches[l].pointer
            entry.partials = partials[l].pointer
            table.pointer[l] = entry
        }
        tableIsCurrent = true
    }

    /// One sample: loss (cross-entropy + `lossOffset`) and probabilities, gradients in every
    /// parameter's gradient buffer, and with `update` the optimizer step. Returns the
    /// `dk_dense_*` code and the loss. The network has reserved at least one row.
    func run(x: UnsafePointer<Float>, label: Int32, lossOffset: Double, update: UnsafePointer<dk_dense_update>?,
             probabilities: UnsafeMutablePointer<Float>) -> (code: Int32, loss: Double) {
        if !tableIsCurrent { fillTable() }
        var loss = 0.0
        let code = dk_dense_step_one(table.pointer, Int32(affine.count), function, weightDecay, x, label, lossOffset,
                                     update, dk_get_threads(), probabilities, &loss)
        for layer in activationLayers { layer.rows = 1 }
        return (code, loss)
    }
}
