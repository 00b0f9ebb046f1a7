// Hyperparameter strings ("lr=0.01,momentum=0.9"), ranges, set()/value(): every error has its
// status and exact message, and a failed set() changes nothing.
import Testing
@testable import Descent

@Suite("Hyperparameters")
struct HyperparameterTests {
    // MARK: parsing

    @Test("whitespace around keys, values and commas is ignored")
    func whitespace() throws {
        let o = try Optimizer("momentum", hyperparameters: "lr=0.01, momentum=0.9")
        #expect(try o.value("lr") == 0.01)
        #expect(try o.value("momentum") == 0.9)
        let spaced = try Optimizer("momentum", hyperparameters: "  lr = 0.25 ,\tmomentum\t=\t0.5\n")
        #expect(spaced.hyperparameters == ["lr": 0.25, "momentum": 0.5, "weight_decay": 0, "check_finite": 1])
    }

    @Test("parser keeps the order and reads exponents and signs")
    func parserPairs() throws {
        let pairs = try parseHyperparameterList("b=1e-3, a=+2, c=-0.5, d=1E2, e=.5")
        #expect(pairs.map(\.key) == ["b", "a", "c", "d", "e"])
        #expect(pairs.map(\.value) == [1e-3, 2, -0.5, 100, 0.5])
        #expect(try parseHyperparameterList("").isEmpty)
        #expect(try parseHyperparameterList(" \t ").isEmpty)
    }

    @Test("nil, empty and blank strings mean the defaults", arguments: builtinNames)
    func defaults(_ name: String) throws {
        for text in [nil, "", "   "] as [String?] {
            let o = try Optimizer(name, hyperparameters: text)
            #expect(o.hyperparameters == designDefaults[name], "\(name) with \(String(describing: text))")
            #expect(o.stepCount == 0)
            #expect(try o.value("step") == 0)
        }
    }

    struct Malformed: Sendable, CustomTestStringConvertible {
        let text: String
        let message: String
        var testDescription: String { "\"\(text)\"" }
    }

    static let malformed: [Malformed] = [
        // missing '='
        Malformed(text: "lr0.01", message: #"malformed hyperparameters "lr0.01": item 1 "lr0.01" is not key=value"#),
        Malformed(text: "lr=0.01, momentum",
                  message: #"malformed hyperparameters "lr=0.01, momentum": item 2 "momentum" is not key=value"#),
        // empty key
        Malformed(text: "=0.5", message: #"malformed hyperparameters "=0.5": item 1 has no key"#),
        Malformed(text: "lr=0.1,  = 2", message: #"malformed hyperparameters "lr=0.1,  = 2": item 2 has no key"#),
        // non-numeric values
        Malformed(text: "lr=abc", message: #"malformed hyperparameters "lr=abc": value of 'lr' is "abc", not a number"#),
        Malformed(text: "lr=", message: #"malformed hyperparameters "lr=": value of 'lr' is "", not a number"#),
        Malformed(text: "lr=0.1x", message: #"malformed hyperparameters "lr=0.1x": value of 'lr' is "0.1x", not a number"#),
        Malformed(text: "lr=0.1=2", message: #"malformed hyperparameters "lr=0.1=2": value of 'lr' is "0.1=2", not a number"#),
        Malformed(text: "lr=1 2", message: #"malformed hyperparameters "lr=1 2": value of 'lr' is "1 2", not a number"#),
        Malformed(text: "lr=0x1p-3", message: #"malformed hyperparameters "lr=0x1p-3": value of 'lr' is "0x1p-3", not a number"#),
        // nan and inf are not accepted as numbers
        Malformed(text: "lr=nan", message: #"malformed hyperparameters "lr=nan": value of 'lr' is "nan", not a number"#),
        Malformed(text: "lr=NaN", message: #"malformed hyperparameters "lr=NaN": value of 'lr' is "NaN", not a number"#),
        Malformed(text: "lr=inf", message: #"malformed hyperparameters "lr=inf": value of 'lr' is "inf", not a number"#),
        Malformed(text: "lr=-inf", message: #"malformed hyperparameters "lr=-inf": value of 'lr' is "-inf", not a number"#),
        Malformed(text: "lr=infinity",
                  message: #"malformed hyperparameters "lr=infinity": value of 'lr' is "infinity", not a number"#),
        // duplicate key
        Malformed(text: "lr=0.1,lr=0.2", message: #"malformed hyperparameters "lr=0.1,lr=0.2": 'lr' is given twice"#),
        Malformed(text: "lr=0.1, momentum=0.5, lr=0.1",
                  message: #"malformed hyperparameters "lr=0.1, momentum=0.5, lr=0.1": 'lr' is given twice"#),
        // empty items: trailing, leading, doubled commas
        Malformed(text: "lr=0.1,", message: #"malformed hyperparameters "lr=0.1,": item 2 "" is not key=value"#),
        Malformed(text: ",lr=0.1", message: #"malformed hyperparameters ",lr=0.1": item 1 "" is not key=value"#),
        Malformed(text: "lr=0.1,,momentum=0.5",
                  message: #"malformed hyperparameters "lr=0.1,,momentum=0.5": item 2 "" is not key=value"#),
        Malformed(text: ",", message: #"malformed hyperparameters ",": item 1 "" is not key=value"#),
    ]

    @Test("malformed strings are invalid arguments with exact messages", arguments: malformed)
    func malformedStrings(_ m: Malformed) {
        expectDescentError(.invalidArgument, m.message) { _ = try Optimizer("momentum", hyperparameters: m.text) }
        expectDescentError(.invalidArgument, m.message) { _ = try parseHyperparameterList(m.text) }
    }

    @Test("a value that overflows to infinity is rejected as not finite")
    func overflow() {
        expectDescentError(.invalidArgument, "hyperparameter 'lr' must be finite, got inf") {
            _ = try Optimizer("sgd", hyperparameters: "lr=1e999")
        }
    }

    // MARK: names

    static let knownKeys: [String: String] = [
        "sgd": "lr, weight_decay, check_finite",
        "momentum": "lr, momentum, weight_decay, check_finite",
        "nesterov": "lr, momentum, weight_decay, check_finite",
        "adagrad": "lr, eps, weight_decay, check_finite",
        "rmsprop": "lr, decay, eps, weight_decay, check_finite",
        "adam": "lr, beta1, beta2, eps, eps_hat, weight_decay, check_finite",
        "adamw": "lr, beta1, beta2, eps, weight_decay, check_finite",
    ]

    @Test("an unknown key is notFound and lists the known keys", arguments: builtinNames)
    func unknownKey(_ name: String) throws {
        let message = "unknown hyperparameter 'foo' for \(name); known: \(Self.knownKeys[name]!)"
        expectDescentError(.notFound, message) { _ = try Optimizer(name, hyperparameters: "foo=1") }
        expectDescentError(.notFound, message) { _ = try Optimizer(name, hyperparameters: "lr=0.5, foo=1") }
        let o = try Optimizer(name)
        expectDescentError(.notFound, message) { try o.set("foo", 1) }
        expectDescentError(.notFound, message) { _ = try o.value("foo") }
        // keys are case-sensitive
        expectDescentError(.notFound, "unknown hyperparameter 'LR' for \(name); known: \(Self.knownKeys[name]!)") {
            _ = try Optimizer(name, hyperparameters: "LR=0.1")
        }
    }

    @Test("momentum is not a key of sgd; eps_hat is adam's only")
    func keysOfOthers() {
        expectDescentError(.notFound, "unknown hyperparameter 'momentum' for sgd; known: lr, weight_decay, check_finite") {
            _ = try Optimizer("sgd", hyperparameters: "momentum=0.9")
        }
        expectDescentError(.notFound, "unknown hyperparameter 'eps_hat' for adamw; known: lr, beta1, beta2, eps, weight_decay, check_finite") {
            _ = try Optimizer("adamw", hyperparameters: "eps_hat=0")
        }
    }

    // MARK: ranges

    struct OutOfRange: Sendable, CustomTestStringConvertible {
        let optimizer: String
        let text: String
        let message: String
        var testDescription: String { "\(optimizer) \(text)" }
    }

    static let outOfRange: [OutOfRange] = [
        OutOfRange(optimizer: "sgd", text: "lr=0", message: "hyperparameter 'lr' = 0 is out of range (0, inf)"),
        OutOfRange(optimizer: "adam", text: "lr=-0.001", message: "hyperparameter 'lr' = -0.001 is out of range (0, inf)"),
        OutOfRange(optimizer: "momentum", text: "momentum=1", message: "hyperparameter 'momentum' = 1 is out of range [0, 1)"),
        OutOfRange(optimizer: "nesterov", text: "momentum=-0.5", message: "hyperparameter 'momentum' = -0.5 is out of range [0, 1)"),
        OutOfRange(optimizer: "adam", text: "beta1=-0.1", message: "hyperparameter 'beta1' = -0.1 is out of range [0, 1)"),
        OutOfRange(optimizer: "adam", text: "beta2=1", message: "hyperparameter 'beta2' = 1 is out of range [0, 1)"),
        OutOfRange(optimizer: "adamw", text: "beta1=1.5", message: "hyperparameter 'beta1' = 1.5 is out of range [0, 1)"),
        OutOfRange(optimizer: "adagrad", text: "eps=0", message: "hyperparameter 'eps' = 0 is out of range (0, inf)"),
        OutOfRange(optimizer: "adam", text: "eps=-1e-08", message: "hyperparameter 'eps' = -1e-08 is out of range (0, inf)"),
        OutOfRange(optimizer: "rmsprop", text: "decay=1", message: "hyperparameter 'decay' = 1 is out of range [0, 1)"),
        OutOfRange(optimizer: "sgd", text: "weight_decay=-0.1",
                   message: "hyperparameter 'weight_decay' = -0.1 is out of range [0, inf)"),
        OutOfRange(optimizer: "adamw", text: "weight_decay=-1",
                   message: "hyperparameter 'weight_decay' = -1 is out of range [0, inf)"),
        OutOfRange(optimizer: "adam", text: "eps_hat=0.5", message: "hyperparameter 'eps_hat' = 0.5 is out of range {0, 1}"),
        OutOfRange(optimizer: "adam", text: "eps_hat=2", message: "hyperparameter 'eps_hat' = 2 is out of range {0, 1}"),
        // the host's check_finite is boolean for every optimizer, adamw included
        OutOfRange(optimizer: "sgd", text: "check_finite=0.5",
                   message: "hyperparameter 'check_finite' = 0.5 is out of range {0, 1}"),
        OutOfRange(optimizer: "adam", text: "check_finite=2",
                   message: "hyperparameter 'check_finite' = 2 is out of range {0, 1}"),
        OutOfRange(optimizer: "adamw", text: "check_finite=-1",
                   message: "hyperparameter 'check_finite' = -1 is out of range {0, 1}"),
    ]

    @Test("out-of-range values are invalid arguments with exact messages", arguments: outOfRange)
    func ranges(_ r: OutOfRange) throws {
        expectDescentError(.invalidArgument, r.message) { _ = try Optimizer(r.optimizer, hyperparameters: r.text) }
        // The same through set(): the old value stays.
        let o = try Optimizer(r.optimizer)
        let pair = try parseHyperparameterList(r.text)[0]
        let before = try o.value(pair.key)
        expectDescentError(.invalidArgument, r.message) { try o.set(pair.key, pair.value) }
        #expect(try o.value(pair.key) == before)
    }

    @Test("values are checked as the float32 the kernels use", arguments: [
        ("sgd", "lr=1e-300", "hyperparameter 'lr' = 1e-300 is out of range (0, inf) as the float32 the update uses (0)"),
        ("sgd", "lr=1e39", "hyperparameter 'lr' = 1e+39 is out of range (0, inf) as the float32 the update uses (inf)"),
        ("momentum", "momentum=0.99999999",
         "hyperparameter 'momentum' = 0.99999999 is out of range [0, 1) as the float32 the update uses (1)"),
    ])
    func floatRounding(_ optimizer: String, _ text: String, _ message: String) {
        expectDescentError(.invalidArgument, message) { _ = try Optimizer(optimizer, hyperparameters: text) }
    }

    @Test("range ends that are allowed")
    func boundaries() throws {
        #expect(try Optimizer("momentum", hyperparameters: "momentum=0").value("momentum") == 0)
        #expect(try Optimizer("adam", hyperparameters: "beta1=0,beta2=0").value("beta2") == 0)
        #expect(try Optimizer("rmsprop", hyperparameters: "decay=0").value("decay") == 0)
        #expect(try Optimizer("sgd", hyperparameters: "weight_decay=0").value("weight_decay") == 0)
        #expect(try Optimizer("adamw", hyperparameters: "weight_decay=0").value("weight_decay") == 0)
        #expect(try Optimizer("adam", hyperparameters: "eps_hat=0").value("eps_hat") == 0)
        #expect(try Optimizer("adam", hyperparameters: "eps_hat=1").value("eps_hat") == 1)
        #expect(try Optimizer("sgd", hyperparameters: "check_finite=0").value("check_finite") == 0)
        #expect(try Optimizer("adamw", hyperparameters: "check_finite=1").value("check_finite") == 1)
        #expect(try Optimizer("sgd", hyperparameters: "lr=1e-30").value("lr") == 1e-30)
        #expect(try Optimizer("sgd", hyperparameters: "lr=1e30").value("lr") == 1e30)
        #expect(try Optimizer("momentum", hyperparameters: "momentum=0.999999").value("momentum") == 0.999999)
    }

    // MARK: set / value

    @Test("set and value, including the read-only step key")
    func setAndValue() throws {
        let o = try Optimizer("momentum", hyperparameters: "lr=0.1")
        #expect(try o.value("lr") == 0.1)
        try o.set("lr", 0.5)
        #expect(try o.value("lr") == 0.5)
        try o.set("momentum", 0)
        try o.set("weight_decay", 0.25)
        #expect(o.hyperparameters == ["lr": 0.5, "momentum": 0, "weight_decay": 0.25, "check_finite": 1])

        #expect(try o.value("step") == 0)
        let tensors = TensorSet(params: [[1, 2]])
        tensors.setGrads([[1, 1]])
        try tensors.step(o)
        try tensors.step(o)
        #expect(try o.value("step") == 2)
        #expect(o.stepCount == 2)
        // step is not a settable hyperparameter
        expectDescentError(.notFound, "unknown hyperparameter 'step' for momentum; known: lr, momentum, weight_decay, check_finite") {
            try o.set("step", 0)
        }
        #expect(try o.value("step") == 2)
        // set() keeps the step count and state
        try o.set("lr", 0.01)
        #expect(o.stepCount == 2)
        #expect(o.stateShape == [2])
    }

    @Test("set of an invalid value leaves the old value")
    func setInvalidKeepsOld() throws {
        let o = try Optimizer("adam", hyperparameters: "lr=0.01,eps_hat=0")
        expectDescentError(.invalidArgument, "hyperparameter 'lr' = 0 is out of range (0, inf)") { try o.set("lr", 0) }
        expectDescentError(.invalidArgument, "hyperparameter 'lr' must be finite, got nan") { try o.set("lr", .nan) }
        expectDescentError(.invalidArgument, "hyperparameter 'lr' must be finite, got inf") { try o.set("lr", .infinity) }
        expectDescentError(.invalidArgument, "hyperparameter 'lr' must be finite, got -inf") { try o.set("lr", -.infinity) }
        expectDescentError(.invalidArgument, "hyperparameter 'beta2' = 1 is out of range [0, 1)") { try o.set("beta2", 1) }
        expectDescentError(.invalidArgument, "hyperparameter 'eps_hat' = 0.5 is out of range {0, 1}") { try o.set("eps_hat", 0.5) }
        expectDescentError(.invalidArgument, "hyperparameter 'weight_decay' = -0.5 is out of range [0, inf)") {
            try o.set("weight_decay", -0.5)
        }
        #expect(o.hyperparameters == ["lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "eps_hat": 0, "weight_decay": 0, "check_finite": 1])
    }

    @Test("check_finite is set and read like any hyperparameter; only 0 and 1 are accepted", arguments: builtinNames)
    func checkFiniteSet(_ name: String) throws {
        let o = try Optimizer(name)
        #expect(try o.value("check_finite") == 1)
        expectDescentError(.invalidArgument, "hyperparameter 'check_finite' = 0.5 is out of range {0, 1}") {
            try o.set("check_finite", 0.5)
        }
        #expect(try o.value("check_finite") == 1, "a refused set() keeps the old value")
        expectDescentError(.invalidArgument, "hyperparameter 'check_finite' must be finite, got nan") {
            try o.set("check_finite", .nan)
        }
        try o.set("check_finite", 0)
        #expect(try o.value("check_finite") == 0)
        #expect(o.hyperparameters["check_finite"] == 0)
        expectDescentError(.invalidArgument, "hyperparameter 'check_finite' = 0.5 is out of range {0, 1}") {
            try o.set("check_finite", 0.5)
        }
        #expect(try o.value("check_finite") == 0)
        try o.set("check_finite", 1)
        #expect(try o.value("check_finite") == 1)
        #expect(try Optimizer(name, ["check_finite": 0]).value("check_finite") == 0)
    }

    @Test("a failed create reports the first bad item in order")
    func firstErrorWins() {
        expectDescentError(.invalidArgument, "hyperparameter 'lr' = 0 is out of range (0, inf)") {
            _ = try Optimizer("sgd", hyperparameters: "lr=0,foo=1")
        }
        expectDescentError(.notFound, "unknown hyperparameter 'foo' for sgd; known: lr, weight_decay, check_finite") {
            _ = try Optimizer("sgd", hyperparameters: "foo=1,lr=0")
        }
        // Syntax is checked for the whole string before any name or range.
        expectDescentError(.invalidArgument, #"malformed hyperparameters "foo=1,lr=x": value of 'lr' is "x", not a number"#) {
            _ = try Optimizer("sgd", hyperparameters: "foo=1,lr=x")
        }
    }

    @Test("range descriptions and number formatting")
    func formatting() {
        #expect(Hyperparameter.format(0) == "0")
        #expect(Hyperparameter.format(1) == "1")
        #expect(Hyperparameter.format(-0.1) == "-0.1")
        #expect(Hyperparameter.format(0.001) == "0.001")
        #expect(Hyperparameter.format(1e-7) == "1e-07")
        #expect(Hyperparameter.format(.infinity) == "inf")
        #expect(Hyperparameter.format(-.infinity) == "-inf")
        #expect(Hyperparameter.format(.nan) == "nan")
        #expect(Hyperparameter.hostWeightDecay.rangeDescription == "[0, inf)")
        #expect(Hyperparameter.hostWeightDecay.isHostProvided)
        #expect(Hyperparameter.hostCheckFinite.rangeDescription == "{0, 1}")
        #expect(Hyperparameter.hostCheckFinite.isHostProvided)
        #expect(Hyperparameter.hostCheckFinite.isBoolean)
        #expect(Hyperparameter.hostCheckFinite.defaultValue == 1)
    }
}
