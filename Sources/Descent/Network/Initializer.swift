import CDescentKernels

/// How weights start. Biases always start at zero, batch-norm gamma at one and beta at zero.
public enum Initializer: Sendable, Equatable, CustomStringConvertible {
    /// N(0, 2/fan_in): He et al. 2015, for ReLU.
    case he
    /// N(0, 1/fan_in): the book's "Xavier" (Glorot's 1/n form), for sigmoid and tanh.
    case xavier
    /// N(0, std^2) with a fixed std, e.g. the book's 0.01.
    case std(Double)
    /// All zeros: every unit of a layer stays identical, which is why it fails (the book's lesson).
    case zeros

    /// The standard deviation for a layer with `fanIn` inputs.
    public func standardDeviation(fanIn: Int) -> Double {
        switch self {
        case .he: (2.0 / Double(fanIn)).squareRoot()
        case .xavier: (1.0 / Double(fanIn)).squareRoot()
        case .std(let s): s
        case .zeros: 0
        }
    }

    /// Fills a layer's weights [fanIn][fanOut] with N(0, std^2) draws from the network's
    /// generator (in row-major order); zeros leaves them zero.
    func initialize(_ weights: FloatBuffer, fanIn: Int, rng: UnsafeMutablePointer<dk_rng>) {
        let std = standardDeviation(fanIn: fanIn)
        if std > 0 { dk_rng_normal(rng, weights.pointer, Int64(weights.count), std) }
    }

    /// The spec's text: "he", "xavier", "std:0.01", "zeros".
    public var description: String {
        switch self {
        case .he: "he"
        case .xavier: "xavier"
        case .std(let s): "std:\(Hyperparameter.format(s))"
        case .zeros: "zeros"
        }
    }

    /// Parses the spec's text; nil when it is none of the forms.
    public init?(_ text: String) {
        switch text {
        case "he": self = .he
        case "xavier": self = .xavier
        case "zeros": self = .zeros
        default:
            guard text.hasPrefix("std:"), let s = Double(text.dropFirst(4)), s.isFinite, s > 0 else { return nil }
            self = .std(s)
        }
    }
}
