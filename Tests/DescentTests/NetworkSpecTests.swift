// The JSON network spec (as descent_net_create documents it): defaults, every invalid field with its exact
// message, and the round trip spec.json -> parse.
import Testing
@testable import Descent

@Suite struct NetworkSpecTests {

    @Test func onlySizesIsRequired() throws {
        let spec = try NetworkSpec.parse(json: #"{"sizes":[784,100,10]}"#)
        #expect(spec.sizes == [784, 100, 10])
        #expect(spec.activation == .relu)
        #expect(spec.initializer == .he)
        #expect(spec.batchNorm == false)
        #expect(spec.dropout == 0)
        #expect(spec.weightDecay == 0)
        #expect(spec.seed == 42)
        #expect(spec.inputSize == 784 && spec.classes == 10 && spec.hiddenLayers == 1)
        #expect(spec.json == #"{"sizes":[784,100,10],"activation":"relu","init":"he","batchnorm":false,"dropout":0,"weight_decay":0,"seed":42}"#)
    }

    @Test func everyFieldIsRead() throws {
        let spec = try NetworkSpec.parse(json: """
            { "seed": 7, "weight_decay": 0.001, "dropout": 0.5, "batchnorm": true,
              "init": "std:0.01", "activation": "tanh", "sizes": [3, 2] }
            """)
        #expect(spec == (try NetworkSpec(sizes: [3, 2], activation: .tanh, initializer: .std(0.01), batchNorm: true,
                                         dropout: 0.5, weightDecay: 0.001, seed: 7)))
        #expect(try NetworkSpec.parse(json: #"{"sizes":[2,2],"activation":"sigmoid","init":"xavier"}"#).initializer == .xavier)
        #expect(try NetworkSpec.parse(json: #"{"sizes":[2,2],"init":"zeros"}"#).initializer == .zeros)
        #expect(try NetworkSpec.parse(json: #"{"sizes":[2,2],"init":"std:1e-3"}"#).initializer == .std(0.001))
        // whole numbers written as floats are whole numbers
        #expect(try NetworkSpec.parse(json: #"{"sizes":[2.0,3e0],"seed":1.0}"#).sizes == [2, 3])
        // the largest seed JSON numbers represent exactly
        #expect(try NetworkSpec.parse(json: #"{"sizes":[2,2],"seed":9007199254740992}"#).seed == 1 << 53)
    }

    @Test(arguments: [
        #"{"sizes":[784,100,100,100,100,10],"activation":"relu","init":"he","batchnorm":true,"dropout":0.0,"weight_decay":0.0,"seed":42}"#,
        #"{"sizes":[5,3],"activation":"sigmoid","init":"std:0.01","batchnorm":false,"dropout":0.25,"weight_decay":1e-4,"seed":0}"#,
        #"{"sizes":[5,4,4,2],"activation":"tanh","init":"xavier","dropout":0.999,"weight_decay":12.5,"seed":9007199254740992}"#,
        #"{"sizes":[1,2],"init":"zeros"}"#,
        #"{"sizes":[3,2],"init":"std:0.1234567890123"}"#,
    ])
    func roundTrip(_ json: String) throws {
        let spec = try NetworkSpec.parse(json: json)
        let again = try NetworkSpec.parse(json: spec.json)
        #expect(again == spec)
        #expect(again.json == spec.json)
        // and through a network
        #expect(try Network(json: spec.json).spec == spec)
    }

    struct Invalid: CustomTestStringConvertible, Sendable {
        let json: String
        let message: String
        var status: Status = .invalidArgument
        var testDescription: String { json }
    }

    static let known = "known: sizes, activation, init, batchnorm, dropout, weight_decay, seed"

    static let invalid: [Invalid] = [
        // keys
        Invalid(json: #"{"sizes":[3,2],"learning_rate":0.1}"#, message: "unknown spec field 'learning_rate'; \(known)"),
        Invalid(json: #"{"sizes":[3,2],"Sizes":[3,2]}"#, message: "unknown spec field 'Sizes'; \(known)"),
        Invalid(json: #"{"size":[3,2]}"#, message: "unknown spec field 'size'; \(known)"),
        // sizes
        Invalid(json: #"{}"#, message: "spec field 'sizes' is missing"),
        Invalid(json: #"{"activation":"relu"}"#, message: "spec field 'sizes' is missing"),
        Invalid(json: #"{"sizes":"784,10"}"#, message: "spec field 'sizes' must be an array of whole numbers, got a string"),
        Invalid(json: #"{"sizes":784}"#, message: "spec field 'sizes' must be an array of whole numbers, got a number"),
        Invalid(json: #"{"sizes":null}"#, message: "spec field 'sizes' must be an array of whole numbers, got null"),
        Invalid(json: #"{"sizes":{"in":3}}"#, message: "spec field 'sizes' must be an array of whole numbers, got an object"),
        Invalid(json: #"{"sizes":[]}"#, message: "spec field 'sizes' needs at least 2 entries (inputs and classes), got 0"),
        Invalid(json: #"{"sizes":[10]}"#, message: "spec field 'sizes' needs at least 2 entries (inputs and classes), got 1"),
        Invalid(json: #"{"sizes":[3,0,2]}"#, message: "spec field 'sizes[1]' must be a whole number in 1...16777216, got 0"),
        Invalid(json: #"{"sizes":[-3,2]}"#, message: "spec field 'sizes[0]' must be a whole number in 1...16777216, got -3"),
        Invalid(json: #"{"sizes":[3,2,16777217]}"#, message: "spec field 'sizes[2]' must be a whole number in 1...16777216, got 16777217"),
        Invalid(json: #"{"sizes":[3,"4",2]}"#, message: "spec field 'sizes[1]' must be a whole number in 1...16777216, got a string"),
        Invalid(json: #"{"sizes":[3,true]}"#, message: "spec field 'sizes[1]' must be a whole number in 1...16777216, got a boolean"),
        // A non-integer size: the message names the field and the value (the range it quotes
        // is the parser's pre-check, not the valid sizes; see the report).
        Invalid(json: #"{"sizes":[3,2.5,2]}"#, message: "spec field 'sizes[1]' must be a whole number in 1...16777216, got 2.5"),
        Invalid(json: #"{"sizes":[3,1]}"#, message: "spec field 'sizes': the last entry (classes) is 1: must be >= 2"),
        Invalid(json: #"{"sizes":[3,4,1]}"#, message: "spec field 'sizes': the last entry (classes) is 1: must be >= 2"),
        // activation
        Invalid(json: #"{"sizes":[3,2],"activation":"gelu"}"#, message: #"spec field 'activation' is "gelu": must be one of relu, sigmoid, tanh"#),
        Invalid(json: #"{"sizes":[3,2],"activation":"ReLU"}"#, message: #"spec field 'activation' is "ReLU": must be one of relu, sigmoid, tanh"#),
        Invalid(json: #"{"sizes":[3,2],"activation":1}"#, message: "spec field 'activation' must be a string, got a number"),
        // init
        Invalid(json: #"{"sizes":[3,2],"init":"kaiming"}"#, message: #"spec field 'init' is "kaiming": must be he, xavier, zeros or std:X with X > 0"#),
        Invalid(json: #"{"sizes":[3,2],"init":"std:-1"}"#, message: #"spec field 'init' is "std:-1": must be he, xavier, zeros or std:X with X > 0"#),
        Invalid(json: #"{"sizes":[3,2],"init":"std:0"}"#, message: #"spec field 'init' is "std:0": must be he, xavier, zeros or std:X with X > 0"#),
        Invalid(json: #"{"sizes":[3,2],"init":"std:abc"}"#, message: #"spec field 'init' is "std:abc": must be he, xavier, zeros or std:X with X > 0"#),
        Invalid(json: #"{"sizes":[3,2],"init":"std:"}"#, message: #"spec field 'init' is "std:": must be he, xavier, zeros or std:X with X > 0"#),
        Invalid(json: #"{"sizes":[3,2],"init":"std:inf"}"#, message: #"spec field 'init' is "std:inf": must be he, xavier, zeros or std:X with X > 0"#),
        Invalid(json: #"{"sizes":[3,2],"init":"std:nan"}"#, message: #"spec field 'init' is "std:nan": must be he, xavier, zeros or std:X with X > 0"#),
        Invalid(json: #"{"sizes":[3,2],"init":0.01}"#, message: "spec field 'init' must be a string, got a number"),
        // dropout
        Invalid(json: #"{"sizes":[3,2],"dropout":1.0}"#, message: "spec field 'dropout' is 1: must be in [0, 1)"),
        Invalid(json: #"{"sizes":[3,2],"dropout":-0.1}"#, message: "spec field 'dropout' is -0.1: must be in [0, 1)"),
        Invalid(json: #"{"sizes":[3,2],"dropout":1.5}"#, message: "spec field 'dropout' is 1.5: must be in [0, 1)"),
        Invalid(json: #"{"sizes":[3,2],"dropout":"0.5"}"#, message: "spec field 'dropout' must be a number, got a string"),
        // weight_decay
        Invalid(json: #"{"sizes":[3,2],"weight_decay":-0.001}"#, message: "spec field 'weight_decay' is -0.001: must be >= 0"),
        Invalid(json: #"{"sizes":[3,2],"weight_decay":false}"#, message: "spec field 'weight_decay' must be a number, got a boolean"),
        // seed
        Invalid(json: #"{"sizes":[3,2],"seed":-1}"#, message: "spec field 'seed' must be a whole number in 0...9007199254740992, got -1"),
        Invalid(json: #"{"sizes":[3,2],"seed":1.5}"#, message: "spec field 'seed' must be a whole number in 0...9007199254740992, got 1.5"),
        Invalid(json: #"{"sizes":[3,2],"seed":"42"}"#, message: "spec field 'seed' must be a whole number in 0...9007199254740992, got a string"),
        Invalid(json: #"{"sizes":[3,2],"seed":1e300}"#, message: "spec field 'seed' must be a whole number in 0...9007199254740992, got 1e+300"),
        // batchnorm
        Invalid(json: #"{"sizes":[3,2],"batchnorm":1}"#, message: "spec field 'batchnorm' must be true or false, got a number"),
        Invalid(json: #"{"sizes":[3,2],"batchnorm":"true"}"#, message: "spec field 'batchnorm' must be true or false, got a string"),
        Invalid(json: #"{"sizes":[3,2],"batchnorm":null}"#, message: "spec field 'batchnorm' must be true or false, got null"),
        // not an object
        Invalid(json: #"[784,100,10]"#, message: "the network spec must be a JSON object"),
        Invalid(json: #""sizes""#, message: "the network spec must be a JSON object"),
        Invalid(json: #"42"#, message: "the network spec must be a JSON object"),
    ]

    @Test(arguments: invalid)
    func invalidSpec(_ case_: Invalid) {
        do {
            let spec = try NetworkSpec.parse(json: case_.json)
            Issue.record("parsed: \(spec.json)")
        } catch let error as DescentError {
            #expect(error.status == case_.status)
            #expect(error.message == case_.message)
        } catch {
            Issue.record("not a DescentError: \(error)")
        }
        // and the network refuses it with the same error
        #expect(throws: DescentError(case_.status, case_.message)) { try Network(json: case_.json) }
    }

    /// Not JSON at all: a format error that says what was expected and where.
    @Test(arguments: [
        ("", "expected a value, found the end of the text at line 1, column 1 (byte 0)"),
        ("sizes: [3, 2]", "expected a value, found 's' at line 1, column 1 (byte 0)"),
        (#"{"sizes":[3,2]"#, "expected ',' or '}' after an object member, found the end of the text at line 1, column 15 (byte 14)"),
        ("{'sizes':[3,2]}", #"expected a string key or '}' after '{', found "'" at line 1, column 2 (byte 1)"#),
        ("\u{0}", "expected a value, found U+0000 at line 1, column 1 (byte 0)"),
    ])
    func notJSON(_ text: String, _ message: String) {
        #expect(throws: DescentError(.format, "the network spec is not valid JSON: " + message)) { try NetworkSpec.parse(json: text) }
    }

    /// The Swift initialiser validates like the parser does.
    @Test func swiftInitialiserValidates() {
        #expect(throws: DescentError.invalid("spec field 'sizes' needs at least 2 entries (inputs and classes), got 1")) {
            try NetworkSpec(sizes: [3])
        }
        #expect(throws: DescentError.invalid("spec field 'sizes[0]' must be a whole number in 1...16777216, got 0")) { try NetworkSpec(sizes: [0, 2]) }
        #expect(throws: DescentError.invalid("spec field 'sizes': the last entry (classes) is 1: must be >= 2")) {
            try NetworkSpec(sizes: [3, 1])
        }
        #expect(throws: DescentError.invalid("spec field 'dropout' is nan: must be in [0, 1)")) {
            try NetworkSpec(sizes: [3, 2], dropout: .nan)
        }
        #expect(throws: DescentError.invalid("spec field 'weight_decay' is inf: must be >= 0")) {
            try NetworkSpec(sizes: [3, 2], weightDecay: .infinity)
        }
    }

    /// The Swift initialiser must not accept specs that `parse` rejects, so
    /// their json (which checkpoints store in their metadata) cannot be read back:
    ///  * init .std(X) with X <= 0, NaN or Inf (std NaN even gives NaN weights);
    ///  * a seed above 2^53 ("must be a whole number in 0...9007199254740992").
    /// Whatever NetworkSpec(...) accepts must survive parse(json: spec.json).
    @Test(arguments: [
        (Initializer.std(-1), UInt64(42)), (.std(0), 42), (.std(.nan), 42), (.std(.infinity), 42),
        (.he, (1 << 53) + 2), (.he, .max),
    ])
    func swiftSpecsSurviveTheirJSON(_ initializer: Initializer, _ seed: UInt64) {
        guard let spec = try? NetworkSpec(sizes: [3, 2], initializer: initializer, seed: seed) else { return }   // rejected: fine
        let again = try? NetworkSpec.parse(json: spec.json)
        #expect(again == spec, "NetworkSpec accepted init \(initializer), seed \(seed), but its json \(spec.json) does not parse back")
    }

    @Test func initializerStrings() {
        #expect(Initializer("he") == .he)
        #expect(Initializer("std:0.5") == .std(0.5))
        #expect(Initializer("std:0.5")?.description == "std:0.5")
        #expect(Initializer(Initializer.std(0.01).description) == .std(0.01))
        for bad in ["", "He", "std", "std:", "std:-0.5", "std:0", "std:abc", "std:1x", "std: 1", "xavier "] {
            #expect(Initializer(bad) == nil, "\(bad)")
        }
        #expect(abs(Initializer.he.standardDeviation(fanIn: 50) - 0.2) < 1e-15)
        #expect(abs(Initializer.xavier.standardDeviation(fanIn: 25) - 0.2) < 1e-15)
        #expect(Initializer.std(0.01).standardDeviation(fanIn: 1000) == 0.01)
        #expect(Initializer.zeros.standardDeviation(fanIn: 10) == 0)
    }
}
