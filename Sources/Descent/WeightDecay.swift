import CDescentKernels

/// Weight decay, the book's L2 regularisation, in its three places:
/// - a network's spec `weight_decay` lambda adds 0.5*lambda*sum(W^2) over the weights (not the
///   biases or batch-norm parameters) to the loss (`decayPenalty` below) and lambda*W to each
///   weight gradient (`dk_affine_backward` and the batch-1 kernels in affine.c; in a
///   data-parallel job once after the gradients' all-reduce, `addWeightDecayGradient`);
/// - an optimizer's host `weight_decay` adds the same lambda*p to the gradient the optimizer
///   sees, for every tensor it steps (`dk_run_segment`, step_runner.c);
/// - adamw's own `weight_decay` is decoupled: it shrinks p by lr*weight_decay*p in the step
///   (optimizers/adam.c) and never touches the gradient.
/// The first two are the same L2 term, so a network refuses to have both on (`doubleWeightDecay`);
/// adamw's decoupled decay combines with a spec's L2 (both apply).
extension Network {
    /// 0.5 * lambda * sum of squared weights, the network's L2 term of the loss.
    func decayPenalty() -> Double {
        guard spec.weightDecay > 0 else { return 0 }
        var sum = 0.0
        for p in parameters where p.isWeight { sum += dk_sum_squares(p.value.pointer, Int64(p.count)) }
        return 0.5 * spec.weightDecay * sum
    }

    /// dW += lambda * W for every weight: a data-parallel job's gradients are summed over the
    /// processes without it, so every process adds it once afterwards, alike.
    func addWeightDecayGradient() {
        guard spec.weightDecay > 0 else { return }
        for p in parameters where p.isWeight {
            dk_add_scaled(p.value.pointer, Float(spec.weightDecay), p.gradient.pointer, Int64(p.count))
        }
    }
}

extension Optimizer {
    /// The error for an optimizer's host L2 `weight_decay` (`value`) on a network whose spec
    /// already has L2 weight decay: the weights would decay twice.
    static func doubleWeightDecay(kind: OptimizerKind, value: Double, networkWeightDecay: Double) -> DescentError {
        DescentError(.invalidArgument,
            "\(kind.name)'s weight_decay=\(Hyperparameter.format(value)) (L2 on the gradients) would decay the weights "
                + "a second time: the network's spec has weight_decay=\(Hyperparameter.format(networkWeightDecay)) "
                + "(L2 in the loss); keep one of the two at 0")
    }
}
