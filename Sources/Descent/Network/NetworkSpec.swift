/// What a network is: the book's MultiLayerNetExtend, as a JSON spec
/// `{"sizes":[784,100,10], "activation":"relu", "init":"he", "batchnorm":false,
///   "dropout":0.0, "weight_decay":0.0, "seed":42}`. Only `sizes` is required.
public struct NetworkSpec: Sendable, Equatable {
    /// Input features, hidden widths..., classes. At least two entries, all >= 1
    /// (and classes >= 2).
    public var sizes: [Int]
    public var activation: Activation = .relu
    public var initializer: Initializer = .he
    /// Batch normalisation after every hidden affine layer.
    public var batchNorm = false
    /// Dropout ratio after every hidden activation, in [0, 1).
    public var dropout = 0.0
    /// Network weight decay lambda: 0.5*lambda*sum(W^2) in the loss, lambda*W on weight gradients.
    public var weightDecay = 0.0
    /// Seeds initialisation and dropout masks.
    public var seed: UInt64 = 42

    public init(sizes: [Int], activation: Activation = .relu, initializer: Initializer = .he,
                batchNorm: Bool = false, dropout: Double = 0, weightDecay: Double = 0, seed: UInt64 = 42) throws {
        self.sizes = sizes
        self.activation = activation
        self.initializer = initializer
        self.batchNorm = batchNorm
        self.dropout = dropout
        self.weightDecay = weightDecay
        self.seed = seed
        try validate()
    }

    private init(unvalidatedSizes sizes: [Int]) { self.sizes = sizes }

    public var inputSize: Int { sizes[0] }
    public var classes: Int { sizes[sizes.count - 1] }
    public var hiddenLayers: Int { sizes.count - 2 }

    /// Throws, naming the field, unless every value is usable.
    public func validate() throws {
        guard sizes.count >= 2 else {
            throw DescentError.invalid("spec field 'sizes' needs at least 2 entries (inputs and classes), got \(sizes.count)")
        }
        for (i, size) in sizes.enumerated() where size <= 0 || size > 1 << 24 {
            throw DescentError.invalid("spec field 'sizes[\(i)]' must be a whole number in 1...\(1 << 24), got \(size)")
        }
        guard classes >= 2 else {
            throw DescentError.invalid("spec field 'sizes': the last entry (classes) is \(classes): must be >= 2")
        }
        guard dropout.isFinite, dropout >= 0, dropout < 1 else {
            throw DescentError.invalid("spec field 'dropout' is \(Hyperparameter.format(dropout)): must be in [0, 1)")
        }
        if case .std(let s) = initializer, !(s.isFinite && s > 0) {
            throw DescentError.invalid("spec field 'init' is \"\(initializer)\": must be he, xavier, zeros or std:X with X > 0")
        }
        guard seed <= 1 << 53 else {
            throw DescentError.invalid("spec field 'seed' is \(seed): must be a whole number in 0...9007199254740992")
        }
        guard weightDecay.isFinite, weightDecay >= 0 else {
            throw DescentError.invalid("spec field 'weight_decay' is \(Hyperparameter.format(weightDecay)): must be >= 0")
        }
    }

    /// The longest spec text accepted. A spec is a few hundred bytes; the limit bounds the
    /// tree a hostile spec (one stored in a checkpoint, say) makes `parse` build.
    public static let maxJSONBytes = 1 << 20

    /// Parses and validates a JSON spec. Unknown keys, wrong types and bad values are errors
    /// that name the field; text that is not JSON (or nests more than 64 levels) is a
    /// `.format` error with its position.
    public static func parse(json: String) throws -> NetworkSpec {
        guard json.utf8.count <= maxJSONBytes else {
            throw DescentError.invalid("the network spec is \(json.utf8.count) bytes long; at most \(maxJSONBytes) are allowed")
        }
        guard case .object(let fields) = try JSONValue.parse(json.utf8, what: "the network spec") else {
            throw DescentError.invalid("the network spec must be a JSON object")
        }
        let known = ["sizes", "activation", "init", "batchnorm", "dropout", "weight_decay", "seed"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw DescentError.invalid("unknown spec field '\(unknown)'; known: \(known.joined(separator: ", "))")
        }
        func wrongType(_ key: String, _ expected: String, _ got: JSONValue) -> DescentError {
            DescentError.invalid("spec field '\(key)' must be \(expected), got \(got.kindName)")
        }
        func integer(_ key: String, _ value: JSONValue, _ range: ClosedRange<Double>) throws -> Double {
            if case .number(let n) = value, n == n.rounded(), range.contains(n) { return n }
            let got = if case .number(let n) = value { Hyperparameter.format(n) } else { value.kindName }
            throw DescentError.invalid("spec field '\(key)' must be a whole number in \(Int64(range.lowerBound))...\(UInt64(range.upperBound)), got \(got)")
        }
        guard let sizesValue = fields["sizes"] else { throw DescentError.invalid("spec field 'sizes' is missing") }
        guard case .array(let items) = sizesValue else { throw wrongType("sizes", "an array of whole numbers", sizesValue) }
        var spec = NetworkSpec(unvalidatedSizes: [])
        for (i, item) in items.enumerated() {
            spec.sizes.append(Int(try integer("sizes[\(i)]", item, 1...Double(1 << 24))))
        }
        if let v = fields["activation"] {
            guard case .string(let s) = v else { throw wrongType("activation", "a string", v) }
            guard let a = Activation(rawValue: s) else {
                throw DescentError.invalid("spec field 'activation' is \"\(s)\": must be one of relu, sigmoid, tanh")
            }
            spec.activation = a
        }
        if let v = fields["init"] {
            guard case .string(let s) = v else { throw wrongType("init", "a string", v) }
            guard let i = Initializer(s) else {
                throw DescentError.invalid("spec field 'init' is \"\(s)\": must be he, xavier, zeros or std:X with X > 0")
            }
            spec.initializer = i
        }
        if let v = fields["batchnorm"] {
            guard case .bool(let b) = v else { throw wrongType("batchnorm", "true or false", v) }
            spec.batchNorm = b
        }
        if let v = fields["dropout"] {
            guard case .number(let d) = v else { throw wrongType("dropout", "a number", v) }
            spec.dropout = d
        }
        if let v = fields["weight_decay"] {
            guard case .number(let d) = v else { throw wrongType("weight_decay", "a number", v) }
            spec.weightDecay = d
        }
        if let v = fields["seed"] {
            spec.seed = UInt64(try integer("seed", v, 0...9007199254740992))
        }
        try spec.validate()
        return spec
    }

    /// The spec as JSON, in the field order of the documentation; `parse` reads it back.
    public var json: String {
        "{\"sizes\":[\(sizes.map(String.init).joined(separator: ","))],"
            + "\"activation\":\(jsonString(activation.rawValue)),\"init\":\(jsonString(initializer.description)),"
            + "\"batchnorm\":\(batchNorm),\"dropout\":\(jsonNumber(dropout)),"
            + "\"weight_decay\":\(jsonNumber(weightDecay)),\"seed\":\(seed)}"
    }
}
