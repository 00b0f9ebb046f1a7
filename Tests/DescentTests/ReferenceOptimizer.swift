// An independent re-implementation of the built-in optimizers' update rules in Double precision.
// It does not call the library: defaults, formulas and state layout are written out here
// from the design document, so a mistake in the library's table or kernels shows up as a
// difference.

/// The documented defaults. Every optimizer except adamw also has the host-provided
/// L2 `weight_decay` (default 0): g' = g + weight_decay*p. adam's `eps_hat` defaults to 1
/// (the book form); `eps_hat=0` selects PyTorch's form. Every optimizer also has the host's
/// `check_finite` (boolean, default 1: gradients are checked for NaN/Inf before a step); it
/// does not change the update, so the reference ignores it.
let designDefaults: [String: [String: Double]] = [
    "sgd": ["lr": 0.01, "weight_decay": 0, "check_finite": 1],
    "momentum": ["lr": 0.01, "momentum": 0.9, "weight_decay": 0, "check_finite": 1],
    "nesterov": ["lr": 0.01, "momentum": 0.9, "weight_decay": 0, "check_finite": 1],
    "adagrad": ["lr": 0.01, "eps": 1e-7, "weight_decay": 0, "check_finite": 1],
    "rmsprop": ["lr": 0.01, "decay": 0.99, "eps": 1e-7, "weight_decay": 0, "check_finite": 1],
    "adam": ["lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "eps_hat": 1, "weight_decay": 0, "check_finite": 1],
    "adamw": ["lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01, "check_finite": 1],
]

/// Per-element state buffers, in the order the library exposes them through `state(tensor:slot:)`.
let designStateCount: [String: Int] = [
    "sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2,
]

struct ReferenceOptimizer {
    let name: String
    /// Every hyperparameter, resolved (defaults overridden by the test's values). Mutable so a
    /// test can change one between steps, like `Optimizer.set`.
    var h: [String: Double]
    /// Steps taken; the next step uses t = self.t + 1.
    private(set) var t = 0
    /// state[tensor][slot][element]; created on the first step, zero.
    private(set) var state: [[[Double]]] = []

    init(_ name: String, _ overrides: [HP] = []) {
        self.name = name
        var h = designDefaults[name]!
        for o in overrides {
            precondition(h[o.key] != nil, "reference \(name) has no hyperparameter \(o.key)")
            h[o.key] = o.value
        }
        self.h = h
    }

    mutating func step(params: inout [[Double]], grads: [[Double]]) {
        if state.isEmpty {
            state = params.map { p in Array(repeating: Array(repeating: 0.0, count: p.count), count: designStateCount[name]!) }
        }
        t += 1
        let t = Double(self.t)
        let lr = h["lr"]!
        for k in params.indices {
            for i in params[k].indices {
                var p = params[k][i]
                var g = grads[k][i]
                if name != "adamw" { g += h["weight_decay"]! * p }   // host L2, every optimizer but adamw
                switch name {
                case "sgd":
                    p -= lr * g
                case "momentum":
                    let mu = h["momentum"]!
                    let v = mu * state[k][0][i] - lr * g
                    state[k][0][i] = v
                    p += v
                case "nesterov":
                    // The OLD velocity moves p; the new one is stored afterwards.
                    let mu = h["momentum"]!
                    let vOld = state[k][0][i]
                    p += mu * mu * vOld - (1 + mu) * lr * g
                    state[k][0][i] = mu * vOld - lr * g
                case "adagrad":
                    let hh = state[k][0][i] + g * g
                    state[k][0][i] = hh
                    p -= lr * g / (hh.squareRoot() + h["eps"]!)
                case "rmsprop":
                    let d = h["decay"]!
                    let hh = d * state[k][0][i] + (1 - d) * g * g
                    state[k][0][i] = hh
                    p -= lr * g / (hh.squareRoot() + h["eps"]!)
                case "adam", "adamw":
                    let b1 = h["beta1"]!, b2 = h["beta2"]!, eps = h["eps"]!
                    if name == "adamw" { p -= lr * h["weight_decay"]! * p }   // decoupled, before the update
                    var m = state[k][0][i], v = state[k][1][i]
                    m += (1 - b1) * (g - m)
                    v += (1 - b2) * (g * g - v)
                    state[k][0][i] = m
                    state[k][1][i] = v
                    let bc1 = 1 - power(b1, t), bc2 = 1 - power(b2, t)
                    if name == "adam" && h["eps_hat"]! == 1 {
                        // Book form: eps added to sqrt(v) before the bias correction.
                        let lrT = lr * bc2.squareRoot() / bc1
                        p -= lrT * m / (v.squareRoot() + eps)
                    } else {
                        // PyTorch form (adam eps_hat=0, adamw).
                        let mHat = m / bc1, vHat = v / bc2
                        p -= lr * mHat / (vHat.squareRoot() + eps)
                    }
                default:
                    fatalError("no reference for \(name)")
                }
                params[k][i] = p
            }
        }
    }
}

/// Double power without Foundation (t is a small whole number).
func power(_ base: Double, _ exponent: Double) -> Double {
    var r = 1.0
    for _ in 0..<Int(exponent) { r *= base }
    return r
}
