// Every built-in optimizer against the book's formulas: multi-step runs on several tensors
// compared with ReferenceOptimizer (Double), and small cases worked out by hand.
import Testing
@testable import Descent

/// One optimizer configuration for the multi-step comparison.
struct FormulaCase: Sendable, CustomTestStringConvertible {
    let name: String
    let overrides: [HP]
    var text: String { hparamText(overrides) }
    var testDescription: String { "\(name)(\(text.isEmpty ? "defaults" : text))" }
    init(_ name: String, _ overrides: [HP] = []) { self.name = name; self.overrides = overrides }
}

/// Defaults, non-default values, and the same with L2 weight decay (host-provided for every
/// optimizer but adamw, whose own weight_decay is the decoupled PyTorch one).
let formulaCases: [FormulaCase] = [
    FormulaCase("sgd"),
    FormulaCase("sgd", [HP("lr", 0.1)]),
    FormulaCase("sgd", [HP("lr", 0.1), HP("weight_decay", 0.05)]),
    FormulaCase("momentum"),
    FormulaCase("momentum", [HP("lr", 0.05), HP("momentum", 0.8)]),
    FormulaCase("momentum", [HP("lr", 0.05), HP("momentum", 0.8), HP("weight_decay", 0.05)]),
    FormulaCase("momentum", [HP("momentum", 0)]),
    FormulaCase("nesterov"),
    FormulaCase("nesterov", [HP("lr", 0.05), HP("momentum", 0.8)]),
    FormulaCase("nesterov", [HP("lr", 0.05), HP("momentum", 0.8), HP("weight_decay", 0.05)]),
    FormulaCase("adagrad"),
    FormulaCase("adagrad", [HP("lr", 0.1), HP("eps", 1e-6)]),
    FormulaCase("adagrad", [HP("lr", 0.1), HP("eps", 1e-6), HP("weight_decay", 0.05)]),
    FormulaCase("rmsprop"),
    FormulaCase("rmsprop", [HP("lr", 0.02), HP("decay", 0.9), HP("eps", 1e-6)]),
    FormulaCase("rmsprop", [HP("lr", 0.02), HP("decay", 0.9), HP("eps", 1e-6), HP("weight_decay", 0.05)]),
    FormulaCase("adam"),                                           // book form (eps_hat=1 default)
    FormulaCase("adam", [HP("eps_hat", 1), HP("eps", 0.05)]),      // large eps: book vs PyTorch differ clearly
    FormulaCase("adam", [HP("eps_hat", 0)]),                       // PyTorch form
    FormulaCase("adam", [HP("eps_hat", 0), HP("eps", 0.05)]),
    FormulaCase("adam", [HP("lr", 0.01), HP("beta1", 0.8), HP("beta2", 0.99), HP("eps", 1e-6), HP("eps_hat", 1),
                         HP("weight_decay", 0.05)]),
    FormulaCase("adam", [HP("lr", 0.01), HP("beta1", 0.8), HP("beta2", 0.99), HP("eps", 1e-6), HP("eps_hat", 0),
                         HP("weight_decay", 0.05)]),
    FormulaCase("adamw"),                                          // weight_decay=0.01 by default
    FormulaCase("adamw", [HP("weight_decay", 0)]),
    FormulaCase("adamw", [HP("lr", 0.01), HP("beta1", 0.8), HP("beta2", 0.99), HP("eps", 0.05),
                          HP("weight_decay", 0.1)]),
]

/// Tensor lengths: a single element, a short odd length (vector tail), and more than one
/// 4096-element chunk, so the host's chunking (and its weight-decay scratch) is exercised.
let formulaLengths = [1, 13, 5003]
let formulaSteps = 5

/// Test data: |p| in [1, 2) with a random sign; each element's gradient keeps one sign over all
/// steps with |g| in [0.2, 1). With weight_decay <= 0.1, |wd*p| stays below |g|, so g' keeps its
/// sign too: no momentum, moment or parameter crosses zero within 5 steps, which keeps the
/// relative comparison meaningful.
struct FormulaData {
    var params: [[Double]]
    var grads: [[[Double]]]   // [step][tensor][element]

    init(lengths: [Int], steps: Int, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        params = lengths.map { n in (0..<n).map { _ in rng.sign() * rng.uniform(1, 2) } }
        let signs = lengths.map { n in (0..<n).map { _ in rng.sign() } }
        grads = (0..<steps).map { _ in signs.map { s in s.map { $0 * rng.uniform(0.2, 1) } } }
        // Exact float32 values, so the Double reference starts from what the library sees.
        params = params.map { $0.map { Double(Float($0)) } }
        grads = grads.map { $0.map { $0.map { Double(Float($0)) } } }
    }
}

@Suite("Optimizer formulas")
struct OptimizerFormulaTests {
    @Test("multi-step run matches the reference formulas", arguments: formulaCases)
    func multiStep(_ c: FormulaCase) throws {
        let optimizer = try Optimizer(c.name, hyperparameters: c.text)
        var reference = ReferenceOptimizer(c.name, c.overrides)
        var data = FormulaData(lengths: formulaLengths, steps: formulaSteps, seed: 0xDE5C_E17)
        let tensors = TensorSet(params: data.params.map { $0.map(Float.init) })
        #expect(optimizer.kind.stateCount == designStateCount[c.name])

        for step in 1...formulaSteps {
            tensors.setGrads(data.grads[step - 1].map { $0.map(Float.init) })
            try tensors.step(optimizer)
            reference.step(params: &data.params, grads: data.grads[step - 1])

            #expect(optimizer.stepCount == Int64(step))
            #expect(try optimizer.value("step") == Double(step))
            for k in 0..<tensors.count {
                expectClose(tensors.params[k], data.params[k], "\(c.testDescription) step \(step) params[\(k)]")
                for s in 0..<optimizer.kind.stateCount {
                    guard let buffer = optimizer.state(tensor: k, slot: s) else {
                        Issue.record("state(tensor: \(k), slot: \(s)) is nil after step \(step)")
                        continue
                    }
                    let what = "\(c.testDescription) step \(step) state[\(k)][\(s)]"
                    expectClose(buffer, reference.state[k][s], what)
                }
            }
        }
        #expect(optimizer.stateShape == formulaLengths.map(Int64.init))
    }

    /// Gradients unchanged by a step: the host's L2 term goes to scratch, never into grads.
    @Test("step does not write to the gradients", arguments: ["sgd", "adam", "momentum"])
    func gradientsUntouched(_ name: String) throws {
        let optimizer = try Optimizer(name, hyperparameters: "weight_decay=0.5")
        let data = FormulaData(lengths: formulaLengths, steps: 1, seed: 7)
        let tensors = TensorSet(params: data.params.map { $0.map(Float.init) })
        let grads = data.grads[0].map { $0.map(Float.init) }
        tensors.setGrads(grads)
        try tensors.step(optimizer)
        #expect(bits(tensors.grads.map(Array.init)) == bits(grads))
    }

    /// A learning-rate schedule: set() between steps keeps the state and the step count t.
    @Test("set() between steps acts as a schedule", arguments: ["momentum", "nesterov", "adagrad", "adam", "adamw"])
    func schedule(_ name: String) throws {
        let optimizer = try Optimizer(name, hyperparameters: "lr=0.05")
        var reference = ReferenceOptimizer(name, [HP("lr", 0.05)])
        var data = FormulaData(lengths: formulaLengths, steps: 4, seed: 99)
        let tensors = TensorSet(params: data.params.map { $0.map(Float.init) })
        for step in 1...4 {
            if step == 3 {
                try optimizer.set("lr", 0.02)
                reference.h["lr"] = 0.02
            }
            tensors.setGrads(data.grads[step - 1].map { $0.map(Float.init) })
            try tensors.step(optimizer)
            reference.step(params: &data.params, grads: data.grads[step - 1])
        }
        #expect(optimizer.stepCount == 4)
        for k in 0..<tensors.count {
            expectClose(tensors.params[k], data.params[k], "\(name) params[\(k)] after the schedule")
        }
    }

    /// Zero-length tensors are allowed (NULL pointers too) and leave the others' results alone.
    @Test("zero-length tensors are skipped")
    func zeroLength() throws {
        let optimizer = try Optimizer("momentum", hyperparameters: "lr=0.1,momentum=0.9")
        var p: [Float] = [1, -2]
        let g: [Float] = [0.5, 0.25]
        try p.withUnsafeMutableBufferPointer { pb in
            try g.withUnsafeBufferPointer { gb in
                for _ in 0..<2 {
                    try callStep(optimizer, count: 3, params: [nil, pb.baseAddress, nil],
                                 grads: [nil, gb.baseAddress, nil], lengths: [0, 2, 0])
                }
            }
        }
        // p[0]: see the momentum literal case (0.855). p[1] = -2, g = 0.25: v1 = -0.025,
        // p1 = -2.025; v2 = 0.9*-0.025 - 0.025 = -0.0475, p2 = -2.0725.
        expectClose(p, [0.855, -2.0725], "params")
        #expect(optimizer.stateShape == [0, 2, 0])
        #expect(optimizer.state(tensor: 0, slot: 0)?.count == 0)
        expectClose(optimizer.state(tensor: 1, slot: 0)!, [-0.095, -0.0475], "velocity")
    }

    /// The Swift convenience overload runs the same update as the pointer API.
    @Test("step(parameters:gradients:) equals the pointer API")
    func bufferOverload() throws {
        let a = try Optimizer("adam", hyperparameters: "lr=0.01")
        let b = try Optimizer("adam", hyperparameters: "lr=0.01")
        let data = FormulaData(lengths: formulaLengths, steps: 3, seed: 5)
        let viaPointers = TensorSet(params: data.params.map { $0.map(Float.init) })
        let viaBuffers = TensorSet(params: data.params.map { $0.map(Float.init) })
        for step in 0..<3 {
            let g = data.grads[step].map { $0.map(Float.init) }
            viaPointers.setGrads(g)
            viaBuffers.setGrads(g)
            try viaPointers.step(a)
            try b.step(parameters: viaBuffers.params, gradients: viaBuffers.grads.map { UnsafeBufferPointer($0) })
        }
        #expect(bits(viaPointers.paramValues) == bits(viaBuffers.paramValues))
        #expect(b.stepCount == 3)
    }

    /// A fresh optimizer built from a dictionary equals one built from the string.
    @Test("dictionary initializer")
    func dictionaryInit() throws {
        let o = try Optimizer("adam", ["lr": 0.01, "eps_hat": 0, "beta2": 0.99])
        #expect(o.hyperparameters == ["lr": 0.01, "beta1": 0.9, "beta2": 0.99, "eps": 1e-7, "eps_hat": 0, "weight_decay": 0, "check_finite": 1])
    }
}

// MARK: - literal cases worked out by hand

/// A 1-element run whose values are worked out by hand in the comment next to it.
struct LiteralCase: Sendable, CustomTestStringConvertible {
    let name: String
    let hparams: String
    let p0: Float
    let grads: [Float]
    let expected: [Double]              // p after each step
    let state: [[Double]]               // per step: each state slot's value (empty: not checked)
    var testDescription: String { "\(name)(\(hparams))" }
}

let literalCases: [LiteralCase] = [
    // sgd lr=0.1, p=1, g=0.5: p1 = 1 - 0.1*0.5 = 0.95; g=0.5: p2 = 0.95 - 0.05 = 0.9
    LiteralCase(name: "sgd", hparams: "lr=0.1", p0: 1, grads: [0.5, 0.5], expected: [0.95, 0.9], state: []),
    // sgd lr=0.1 weight_decay=0.1, p=1, g=0.5: g' = 0.5 + 0.1*1 = 0.6, p1 = 1 - 0.06 = 0.94;
    // g' = 0.5 + 0.1*0.94 = 0.594, p2 = 0.94 - 0.0594 = 0.8806
    LiteralCase(name: "sgd", hparams: "lr=0.1,weight_decay=0.1", p0: 1, grads: [0.5, 0.5],
                expected: [0.94, 0.8806], state: []),
    // momentum lr=0.1 mu=0.9, p=1, g=0.5: v1 = -0.05, p1 = 0.95;
    // g=0.5 again: v2 = 0.9*-0.05 - 0.05 = -0.095, p2 = 0.855
    LiteralCase(name: "momentum", hparams: "lr=0.1,momentum=0.9", p0: 1, grads: [0.5, 0.5],
                expected: [0.95, 0.855], state: [[-0.05], [-0.095]]),
    // momentum lr=0.1 mu=0.9 weight_decay=0.1, p=1, g=0.5: g' = 0.6, v1 = -0.06, p1 = 0.94;
    // g' = 0.5 + 0.094 = 0.594, v2 = 0.9*-0.06 - 0.0594 = -0.1134, p2 = 0.94 - 0.1134 = 0.8266
    LiteralCase(name: "momentum", hparams: "lr=0.1,momentum=0.9,weight_decay=0.1", p0: 1, grads: [0.5, 0.5],
                expected: [0.94, 0.8266], state: [[-0.06], [-0.1134]]),
    // nesterov lr=0.1 mu=0.9, p=1, g=0.5 (old velocity v0 = 0):
    //   p1 = 1 + 0.81*0 - 1.9*0.1*0.5 = 0.905, v1 = -0.05
    //   p2 = 0.905 + 0.81*-0.05 - 0.095 = 0.7695, v2 = 0.9*-0.05 - 0.05 = -0.095
    // (PyTorch nesterov=True: buf1 = 0.5, p1 = 1 - 0.1*(0.5 + 0.9*0.5) = 0.905;
    //  buf2 = 0.95, p2 = 0.905 - 0.1*(0.5 + 0.9*0.95) = 0.7695 -- the same.)
    // Updating v first and moving p with the NEW velocity in the same formula would give
    // p1 = 1 + 0.81*-0.05 - 0.095 = 0.8645 instead.
    LiteralCase(name: "nesterov", hparams: "lr=0.1,momentum=0.9", p0: 1, grads: [0.5, 0.5],
                expected: [0.905, 0.7695], state: [[-0.05], [-0.095]]),
    // nesterov lr=0.1 mu=0.9, p=1, g=0.5 then g=-1:
    //   p1 = 0.905, v1 = -0.05
    //   p2 = 0.905 + 0.81*-0.05 - 1.9*0.1*-1 = 0.905 - 0.0405 + 0.19 = 1.0545; v2 = -0.045 + 0.1 = 0.055
    LiteralCase(name: "nesterov", hparams: "lr=0.1,momentum=0.9", p0: 1, grads: [0.5, -1],
                expected: [0.905, 1.0545], state: [[-0.05], [0.055]]),
    // adagrad lr=0.1 (eps=1e-7), p=1, g=1: h1 = 1, p1 = 1 - 0.1*1/(1+1e-7) = 0.90000001;
    // g=0.75: h2 = 1 + 0.5625 = 1.5625 = 1.25^2, p2 = 0.90000001 - 0.1*0.75/1.25 = 0.84000001
    // (eps moves p by 1e-8, far below the 1e-5 tolerance)
    LiteralCase(name: "adagrad", hparams: "lr=0.1", p0: 1, grads: [1, 0.75],
                expected: [0.9, 0.84], state: [[1], [1.5625]]),
    // rmsprop lr=0.01 decay=0.75, p=1, g=2: h1 = 0.75*0 + 0.25*4 = 1, p1 = 1 - 0.01*2/1 = 0.98;
    // g=1: h2 = 0.75*1 + 0.25*1 = 1, p2 = 0.98 - 0.01*1/1 = 0.97
    LiteralCase(name: "rmsprop", hparams: "lr=0.01,decay=0.75", p0: 1, grads: [2, 1],
                expected: [0.98, 0.97], state: [[1], [1]]),
    // adam (book form) lr=0.1 beta1=0.5 beta2=0.75 eps=0.5, p=1, g=1:
    //   m1 = 0.5*1 = 0.5, v1 = 0.25*1 = 0.25, lr_t = 0.1*sqrt(1-0.75)/(1-0.5) = 0.1
    //   p1 = 1 - 0.1*0.5/(sqrt(0.25)+0.5) = 1 - 0.05 = 0.95
    //   g=1: m2 = 0.5 + 0.5*(1-0.5) = 0.75, v2 = 0.25 + 0.25*(1-0.25) = 0.4375
    //   lr_t = 0.1*sqrt(1-0.5625)/(1-0.25) = 0.1*0.6614378278/0.75 = 0.0881917104
    //   p2 = 0.95 - 0.0881917104*0.75/(0.6614378278+0.5) = 0.95 - 0.0569499126 = 0.8930500874
    LiteralCase(name: "adam", hparams: "lr=0.1,beta1=0.5,beta2=0.75,eps=0.5", p0: 1, grads: [1, 1],
                expected: [0.95, 0.8930500874], state: [[0.5, 0.25], [0.75, 0.4375]]),
    // adam (PyTorch form, eps_hat=0), same settings: mhat1 = 0.5/0.5 = 1, vhat1 = 0.25/0.25 = 1,
    //   p1 = 1 - 0.1*1/(1+0.5) = 0.9333333333; mhat2 = 0.75/0.75 = 1, vhat2 = 0.4375/0.4375 = 1,
    //   p2 = 0.9333333333 - 0.0666666667 = 0.8666666667
    LiteralCase(name: "adam", hparams: "lr=0.1,beta1=0.5,beta2=0.75,eps=0.5,eps_hat=0", p0: 1, grads: [1, 1],
                expected: [0.9333333333, 0.8666666667], state: [[0.5, 0.25], [0.75, 0.4375]]),
    // adam (PyTorch form) with host L2 weight_decay=0.5, same settings, p=2, g=0:
    //   g'1 = 0 + 0.5*2 = 1: m1 = 0.5, v1 = 0.25, mhat = vhat = 1, p1 = 2 - 0.1/1.5 = 1.9333333333
    //   g'2 = 0.5*1.9333333333 = 0.9666666667: m2 = 0.5 + 0.5*(0.9666666667-0.5) = 0.7333333333,
    //   v2 = 0.25 + 0.25*(0.9344444444-0.25) = 0.4211111111, mhat = 0.7333333333/0.75 = 0.9777777778,
    //   vhat = 0.4211111111/0.4375 = 0.9625396825 (sqrt 0.9810910669),
    //   p2 = 1.9333333333 - 0.1*0.9777777778/1.4810910669 = 1.9333333333 - 0.0660173975 = 1.8673159358
    LiteralCase(name: "adam", hparams: "lr=0.1,beta1=0.5,beta2=0.75,eps=0.5,eps_hat=0,weight_decay=0.5",
                p0: 2, grads: [0, 0], expected: [1.9333333333, 1.8673159358],
                state: [[0.5, 0.25], [0.7333333333, 0.4211111111]]),
    // adamw lr=0.1 weight_decay=0.5 beta1=0.5 beta2=0.75 eps=0.5, p=1, g=1:
    //   decay: p = 1*(1 - 0.1*0.5) = 0.95; mhat = vhat = 1: p1 = 0.95 - 0.1/1.5 = 0.8833333333
    //   decay: p = 0.8833333333*0.95 = 0.8391666667; mhat = vhat = 1: p2 = 0.8391666667 - 0.0666666667 = 0.7725
    LiteralCase(name: "adamw", hparams: "lr=0.1,beta1=0.5,beta2=0.75,eps=0.5,weight_decay=0.5", p0: 1,
                grads: [1, 1], expected: [0.8833333333, 0.7725], state: [[0.5, 0.25], [0.75, 0.4375]]),
    // adamw's decay is decoupled: with g=0 the moments stay 0 and only the decay acts:
    //   p=2, lr=0.1, weight_decay=0.5: p1 = 2*0.95 = 1.9, p2 = 1.9*0.95 = 1.805
    //   (the L2 form above moves the same p to 1.9333, 1.8673 instead)
    LiteralCase(name: "adamw", hparams: "lr=0.1,beta1=0.5,beta2=0.75,eps=0.5,weight_decay=0.5", p0: 2,
                grads: [0, 0], expected: [1.9, 1.805], state: [[0, 0], [0, 0]]),
]

@Suite("Optimizer formulas, worked by hand")
struct LiteralFormulaTests {
    @Test("steps 1 and 2 equal the hand-computed values", arguments: literalCases)
    func literal(_ c: LiteralCase) throws {
        let optimizer = try Optimizer(c.name, hyperparameters: c.hparams)
        let tensors = TensorSet(params: [[c.p0]])
        for (step, g) in c.grads.enumerated() {
            tensors.setGrads([[g]])
            try tensors.step(optimizer)
            expectClose(tensors.params[0], [c.expected[step]], "\(c.testDescription) p after step \(step + 1)")
            if !c.state.isEmpty {
                for (slot, value) in c.state[step].enumerated() {
                    let actual = optimizer.state(tensor: 0, slot: slot).map(Array.init) ?? []
                    if value == 0 {
                        #expect(actual == [0], "\(c.testDescription) state slot \(slot) after step \(step + 1)")
                    } else {
                        expectClose(actual, [value], "\(c.testDescription) state slot \(slot) after step \(step + 1)")
                    }
                }
            }
        }
    }

    /// Defaults (no string, empty string) are the documented ones: sgd lr=0.01, p=1, g=1 gives 0.99.
    @Test("defaults apply with nil and empty hyperparameters")
    func defaults() throws {
        for text in [nil, "", "  "] as [String?] {
            let optimizer = try Optimizer("sgd", hyperparameters: text)
            let tensors = TensorSet(params: [[1]])
            tensors.setGrads([[1]])
            try tensors.step(optimizer)
            expectClose(tensors.params[0], [0.99], "sgd defaults with \(String(describing: text))")
        }
        // adam defaults (book form, lr=0.001 beta1=0.9 beta2=0.999 eps=1e-7), p=1, g=0.5:
        // m1 = 0.1*0.5 = 0.05, v1 = 0.001*0.25 = 0.00025, lr_t = 0.001*sqrt(0.001)/0.1 = 0.000316227766,
        // p1 = 1 - 0.000316227766*0.05/(0.0158113883+1e-7) = 1 - 0.00099999368 = 0.99900000632
        let adam = try Optimizer("adam")
        let tensors = TensorSet(params: [[1]])
        tensors.setGrads([[0.5]])
        try tensors.step(adam)
        expectClose(tensors.params[0], [0.99900000632], "adam defaults")
    }

    /// `1 - beta2` must be formed in double before rounding to float: with beta2 = 0.999,
    /// 1 - float(0.999) = 0.00099998713, 1.3e-5 away from 0.001, which puts the second moment
    /// (and PyTorch parity) off by far more than float rounding. adam, p=1, g=1, defaults:
    /// v1 = (1-0.999)*1 = 0.001; float32 has 24 bits, so the library should give 0.001 to ~1e-7.
    @Test("adam's second moment uses 1-beta2 computed in double", arguments: ["adam", "adamw"])
    func secondMomentCoefficient(_ name: String) throws {
        let optimizer = try Optimizer(name)
        let tensors = TensorSet(params: [[1]])
        tensors.setGrads([[1]])
        try tensors.step(optimizer)
        let v1 = Double(optimizer.state(tensor: 0, slot: 1)![0])
        // Computing 1 - beta2 after rounding beta2 to float would give 0.00099998713 (1.3e-5 off).
        #expect(abs(v1 - 0.001) / 0.001 < 1e-6, "v1 = \(v1)")
    }
}
