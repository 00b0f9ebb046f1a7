// Bad input to Optimizer.step: each case has its status and exact message, and a failed step
// leaves parameters, state and the step count exactly as they were.
import Testing
@testable import Descent

@Suite("Step errors")
struct StepErrorTests {
    /// An adam optimizer that has taken one step on tensors of lengths [3, 5, 4], so it has state.
    func primed() throws -> (Optimizer, TensorSet) {
        let optimizer = try Optimizer("adam", hyperparameters: "lr=0.1,weight_decay=0.01")
        let tensors = TensorSet(params: [[1, 2, 3], [-1, -2, -3, -4, -5], [0.5, 0.25, 0.125, 0.0625]])
        tensors.setGrads([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6, 0.7, 0.8], [0.9, 1.0, 1.1, 1.2]])
        try tensors.step(optimizer)
        return (optimizer, tensors)
    }

    /// Asserts that params, state and step count equal the snapshot taken before.
    func expectUnchanged(_ optimizer: Optimizer, _ tensors: TensorSet, params: [[Float]], state: [[[Float]]]?,
                         stepCount: Int64, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(bits(tensors.paramValues) == bits(params), "params changed", sourceLocation: sourceLocation)
        #expect(bits(stateSnapshot(optimizer)) == bits(state), "state changed", sourceLocation: sourceLocation)
        #expect(optimizer.stepCount == stepCount, sourceLocation: sourceLocation)
    }

    // MARK: arguments

    @Test("count <= 0", arguments: [Int64(0), -1, Int64.min])
    func badCount(_ count: Int64) throws {
        let (optimizer, tensors) = try primed()
        let params = tensors.paramValues, state = stateSnapshot(optimizer)
        let p = tensors.paramPointers
        let g = tensors.gradPointers
        expectDescentError(.invalidArgument, "count is \(count): must be >= 1") {
            try callStep(optimizer, count: count, params: p, grads: g, lengths: tensors.lengths)
        }
        expectUnchanged(optimizer, tensors, params: params, state: state, stepCount: 1)
    }

    @Test("NULL arrays")
    func nullArrays() throws {
        let (optimizer, tensors) = try primed()
        let params = tensors.paramValues, state = stateSnapshot(optimizer)
        let p = tensors.paramPointers
        let g = tensors.gradPointers
        expectDescentError(.invalidArgument, "params is NULL") {
            try callStep(optimizer, count: 3, params: nil, grads: g, lengths: tensors.lengths)
        }
        expectDescentError(.invalidArgument, "grads is NULL") {
            try callStep(optimizer, count: 3, params: p, grads: nil, lengths: tensors.lengths)
        }
        expectDescentError(.invalidArgument, "lengths is NULL") {
            try callStep(optimizer, count: 3, params: p, grads: g, lengths: nil)
        }
        // count is checked before the pointers
        expectDescentError(.invalidArgument, "count is 0: must be >= 1") {
            try callStep(optimizer, count: 0, params: nil, grads: nil, lengths: nil)
        }
        expectUnchanged(optimizer, tensors, params: params, state: state, stepCount: 1)
    }

    @Test("NULL tensor pointers")
    func nullTensors() throws {
        let (optimizer, tensors) = try primed()
        let params = tensors.paramValues, state = stateSnapshot(optimizer)
        var p = tensors.paramPointers
        var g = tensors.gradPointers
        p[1] = nil
        expectDescentError(.invalidArgument, "params[1] is NULL") {
            try callStep(optimizer, count: 3, params: p, grads: g, lengths: tensors.lengths)
        }
        p[1] = tensors.params[1].baseAddress
        g[2] = nil
        expectDescentError(.invalidArgument, "grads[2] is NULL") {
            try callStep(optimizer, count: 3, params: p, grads: g, lengths: tensors.lengths)
        }
        expectUnchanged(optimizer, tensors, params: params, state: state, stepCount: 1)
    }

    @Test("negative length")
    func negativeLength() throws {
        let (optimizer, tensors) = try primed()
        let params = tensors.paramValues, state = stateSnapshot(optimizer)
        let p = tensors.paramPointers
        let g = tensors.gradPointers
        expectDescentError(.invalidArgument, "lengths[1] is -5: must be >= 0") {
            try callStep(optimizer, count: 3, params: p, grads: g, lengths: [3, -5, 4])
        }
        // Argument errors come before NaN checks and shape checks.
        tensors.grads[0][0] = .nan
        expectDescentError(.invalidArgument, "lengths[2] is -1: must be >= 0") {
            try callStep(optimizer, count: 3, params: p, grads: g, lengths: [3, 6, -1])
        }
        expectUnchanged(optimizer, tensors, params: params, state: state, stepCount: 1)
    }

    @Test("negative length on the first step allocates nothing")
    func negativeLengthFirstStep() throws {
        let optimizer = try Optimizer("momentum")
        var p: [Float] = [1]
        let g: [Float] = [1]
        try p.withUnsafeMutableBufferPointer { pb in
            try g.withUnsafeBufferPointer { gb in
                expectDescentError(.invalidArgument, "lengths[0] is -1: must be >= 0") {
                    try callStep(optimizer, count: 1, params: [pb.baseAddress], grads: [gb.baseAddress], lengths: [-1])
                }
                #expect(optimizer.stateShape.isEmpty)
                #expect(optimizer.state(tensor: 0, slot: 0) == nil)
                // The same optimizer then works normally.
                try callStep(optimizer, count: 1, params: [pb.baseAddress], grads: [gb.baseAddress], lengths: [1])
            }
        }
        #expect(p == [0.99])   // momentum defaults lr=0.01: v1 = -0.01, p1 = 0.99
        #expect(optimizer.stepCount == 1)
    }

    // MARK: NaN / Inf in gradients

    struct BadValue: Sendable, CustomTestStringConvertible {
        let value: Float
        let text: String
        var testDescription: String { text }
    }

    static let badValues = [
        BadValue(value: .nan, text: "NaN"), BadValue(value: .infinity, text: "Inf"),
        BadValue(value: -.infinity, text: "-Inf"), BadValue(value: -Float.nan, text: "NaN"),
        BadValue(value: Float(bitPattern: 0x7FC0_1234), text: "NaN"),   // a NaN with a payload
        BadValue(value: .signalingNaN, text: "NaN"),
    ]

    @Test("NaN/Inf in a gradient changes nothing", arguments: badValues)
    func nonFinite(_ bad: BadValue) throws {
        let (optimizer, tensors) = try primed()
        let params = tensors.paramValues, state = stateSnapshot(optimizer)
        tensors.grads[1][3] = bad.value
        expectDescentError(.numeric, "grads[1] contains \(bad.text) at index 3") { try tensors.step(optimizer) }
        expectUnchanged(optimizer, tensors, params: params, state: state, stepCount: 1)
        #expect(try optimizer.value("step") == 1)
        // Once the gradient is finite again the next step is t = 2 and works.
        tensors.grads[1][3] = 0.7
        try tensors.step(optimizer)
        #expect(optimizer.stepCount == 2)
        #expect(bits(tensors.paramValues) != bits(params))
    }

    @Test("NaN on the first step leaves no state behind", arguments: builtinNames)
    func nonFiniteFirstStep(_ name: String) throws {
        let optimizer = try Optimizer(name)
        let tensors = TensorSet(params: [[1, 2], [3, 4, 5]])
        tensors.setGrads([[1, 1], [1, 1, .infinity]])
        expectDescentError(.numeric, "grads[1] contains Inf at index 2") { try tensors.step(optimizer) }
        #expect(optimizer.stepCount == 0)
        #expect(optimizer.stateShape.isEmpty)
        #expect(optimizer.state(tensor: 0, slot: 0) == nil)
        #expect(tensors.paramValues == [[1, 2], [3, 4, 5]])
        // A different shape is fine afterwards: no state was created.
        let other = TensorSet(params: [[1]])
        other.setGrads([[1]])
        try other.step(optimizer)
        #expect(optimizer.stateShape == [1])
    }

    @Test("the first bad value in (tensor, index) order is named")
    func firstBadValue() throws {
        let (optimizer, tensors) = try primed()
        tensors.grads[2][0] = .nan
        tensors.grads[1][4] = .infinity
        tensors.grads[1][2] = -.infinity
        expectDescentError(.numeric, "grads[1] contains -Inf at index 2") { try tensors.step(optimizer) }
        #expect(optimizer.stepCount == 1)
    }

    @Test("a NaN past the first 1024-element block and in a chunk > 4096 is found")
    func nonFiniteLargeTensor() throws {
        let optimizer = try Optimizer("sgd")
        let tensors = TensorSet(lengths: [10, 9000])
        for index in [0, 1023, 1024, 4095, 4096, 8999] {
            tensors.grads[1][index] = .nan
            expectDescentError(.numeric, "grads[1] contains NaN at index \(index)") { try tensors.step(optimizer) }
            tensors.grads[1][index] = 0
        }
        #expect(optimizer.stepCount == 0)
    }

    @Test("large finite values and subnormals are not flagged")
    func finiteExtremes() throws {
        let optimizer = try Optimizer("sgd", hyperparameters: "lr=1e-30")
        let tensors = TensorSet(params: [[1, 1, 1, 1]])
        tensors.setGrads([[.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, -0.0]])
        try tensors.step(optimizer)
        #expect(optimizer.stepCount == 1)
    }

    // MARK: check_finite = 0: the host skips the NaN/Inf scan

    @Test("check_finite=0 lets a NaN gradient through to params and state", arguments: builtinNames)
    func checkFiniteOffNaN(_ name: String) throws {
        let optimizer = try Optimizer(name, hyperparameters: "check_finite=0")
        let tensors = TensorSet(params: [[1, 2], [3, 4, 5]])
        tensors.setGrads([[0.5, 0.5], [0.5, .nan, 0.5]])
        try tensors.step(optimizer)   // no error: nothing looked at the gradients first
        #expect(optimizer.stepCount == 1)
        #expect(try optimizer.value("step") == 1)
        #expect(optimizer.stateShape == [2, 3])
        let p = tensors.paramValues
        #expect(p[1][1].isNaN, "the NaN reached the parameter: \(p[1][1])")
        #expect(p[0].allSatisfy(\.isFinite) && p[1][0].isFinite && p[1][2].isFinite,
                "the update is elementwise: only index 1 of tensor 1 is NaN: \(p)")
        for slot in 0..<optimizer.kind.stateCount {
            let s = try #require(optimizer.state(tensor: 1, slot: slot))
            #expect(s[1].isNaN, "the NaN reached state slot \(slot): \(Array(s))")
            #expect(s[0].isFinite && s[2].isFinite)
        }
        // A second step still succeeds (the NaN keeps propagating, t = 2).
        try tensors.step(optimizer)
        #expect(optimizer.stepCount == 2)
        #expect(tensors.paramValues[1][1].isNaN)
    }

    @Test("check_finite=1 (the default) refuses the same NaN gradient", arguments: builtinNames)
    func checkFiniteOnNaN(_ name: String) throws {
        for optimizer in [try Optimizer(name), try Optimizer(name, hyperparameters: "check_finite=1")] {
            #expect(try optimizer.value("check_finite") == 1)
            let tensors = TensorSet(params: [[1, 2], [3, 4, 5]])
            tensors.setGrads([[0.5, 0.5], [0.5, .nan, 0.5]])
            expectDescentError(.numeric, "grads[1] contains NaN at index 1") { try tensors.step(optimizer) }
            #expect(optimizer.stepCount == 0)
            #expect(optimizer.stateShape.isEmpty)
            #expect(tensors.paramValues == [[1, 2], [3, 4, 5]])
        }
    }

    @Test("check_finite=0 lets Inf through: sgd moves the parameter to -Inf")
    func checkFiniteOffInf() throws {
        let optimizer = try Optimizer("sgd", hyperparameters: "lr=0.5,check_finite=0")
        let tensors = TensorSet(params: [[1, 2]])
        tensors.setGrads([[.infinity, 2]])
        try tensors.step(optimizer)
        #expect(tensors.paramValues == [[-.infinity, 1]])
        #expect(optimizer.stepCount == 1)
    }

    @Test("set(check_finite) switches the scan off and on again between steps")
    func checkFiniteToggle() throws {
        let (optimizer, tensors) = try primed()
        let params = tensors.paramValues, state = stateSnapshot(optimizer)
        tensors.grads[2][1] = .nan
        expectDescentError(.numeric, "grads[2] contains NaN at index 1") { try tensors.step(optimizer) }
        expectUnchanged(optimizer, tensors, params: params, state: state, stepCount: 1)

        try optimizer.set("check_finite", 0)
        try tensors.step(optimizer)
        #expect(optimizer.stepCount == 2)
        #expect(tensors.paramValues[2][1].isNaN)
        #expect(optimizer.state(tensor: 2, slot: 0)![1].isNaN)
        #expect(optimizer.state(tensor: 2, slot: 1)![1].isNaN)

        try optimizer.set("check_finite", 1)
        let after = tensors.paramValues, afterState = stateSnapshot(optimizer)
        expectDescentError(.numeric, "grads[2] contains NaN at index 1") { try tensors.step(optimizer) }
        expectUnchanged(optimizer, tensors, params: after, state: afterState, stepCount: 2)
    }

    @Test("check_finite=0 on a tensor large enough for the threaded path")
    func checkFiniteOffLarge() throws {
        let optimizer = try Optimizer("sgd", hyperparameters: "lr=0.5,check_finite=0")
        let tensors = TensorSet(lengths: [40000])
        tensors.grads[0][39999] = .nan
        try tensors.step(optimizer)
        #expect(optimizer.stepCount == 1)
        #expect(tensors.params[0][39999].isNaN)
        #expect(tensors.params[0][..<39999].allSatisfy { $0 == 0 })
    }

    @Test("with finite gradients check_finite does not change the result", arguments: builtinNames)
    func checkFiniteSameResult(_ name: String) throws {
        let on = try Optimizer(name, hyperparameters: "lr=0.05")
        let off = try Optimizer(name, hyperparameters: "lr=0.05,check_finite=0")
        let a = TensorSet(params: [[1, -2, 3], [0.5]])
        let b = TensorSet(params: [[1, -2, 3], [0.5]])
        for g in [[[Float(0.5), -0.25, 1], [2]], [[0.25, 0.5, -1], [-1]]] {
            a.setGrads(g)
            b.setGrads(g)
            try a.step(on)
            try b.step(off)
        }
        #expect(bits(a.paramValues) == bits(b.paramValues))
        #expect(bits(stateSnapshot(on)) == bits(stateSnapshot(off)))
        #expect(off.stepCount == 2)
    }

    // MARK: shape changes and reset

    @Test("a different length is a shape mismatch naming both shapes")
    func lengthChange() throws {
        let (optimizer, tensors) = try primed()
        let params = tensors.paramValues, state = stateSnapshot(optimizer)
        let p = tensors.paramPointers
        let g = tensors.gradPointers
        expectDescentError(.shapeMismatch,
            "the state was created for 3 tensors of lengths [3, 5, 4], but this step has 3 tensors of lengths [3, 4, 4]; "
                + "call reset to start over") {
            try callStep(optimizer, count: 3, params: p, grads: g, lengths: [3, 4, 4])
        }
        expectDescentError(.shapeMismatch,
            "the state was created for 3 tensors of lengths [3, 5, 4], but this step has 2 tensors of lengths [3, 5]; "
                + "call reset to start over") {
            try callStep(optimizer, count: 2, params: p, grads: g, lengths: [3, 5])
        }
        // A shape error wins over a NaN (shapes are checked first).
        tensors.grads[0][0] = .nan
        expectDescentError(.shapeMismatch,
            "the state was created for 3 tensors of lengths [3, 5, 4], but this step has 1 tensor of lengths [3]; "
                + "call reset to start over") {
            try callStep(optimizer, count: 1, params: p, grads: g, lengths: [3])
        }
        expectUnchanged(optimizer, tensors, params: params, state: state, stepCount: 1)
        #expect(optimizer.stateShape == [3, 5, 4])
    }

    @Test("more tensors than the state was made for")
    func moreTensors() throws {
        let optimizer = try Optimizer("sgd")   // no state buffers, but the shape is still enforced
        let a = TensorSet(params: [[1, 2]])
        try a.step(optimizer)
        let b = TensorSet(params: [[1, 2], [3]])
        expectDescentError(.shapeMismatch,
            "the state was created for 1 tensor of lengths [2], but this step has 2 tensors of lengths [2, 1]; "
                + "call reset to start over") { try b.step(optimizer) }
        #expect(b.paramValues == [[1, 2], [3]])
        #expect(optimizer.stepCount == 1)
    }

    @Test("reset allows a new shape and restarts at t = 1 with zero state")
    func reset() throws {
        let (optimizer, _) = try primed()
        optimizer.reset()
        #expect(optimizer.stepCount == 0)
        #expect(try optimizer.value("step") == 0)
        #expect(optimizer.stateShape.isEmpty)
        #expect(optimizer.state(tensor: 0, slot: 0) == nil)
        // hyperparameters survive a reset
        #expect(try optimizer.value("lr") == 0.1)

        // A new shape, and the result equals a fresh optimizer's (t restarts at 1).
        let fresh = try Optimizer("adam", hyperparameters: "lr=0.1,weight_decay=0.01")
        let a = TensorSet(params: [[1, -1], [2]])
        let b = TensorSet(params: [[1, -1], [2]])
        for g in [[[Float(0.5), -0.25], [1]], [[0.25, 0.5], [-1]]] {
            a.setGrads(g)
            b.setGrads(g)
            try a.step(optimizer)
            try b.step(fresh)
        }
        #expect(bits(a.paramValues) == bits(b.paramValues))
        #expect(bits(stateSnapshot(optimizer)) == bits(stateSnapshot(fresh)))
        #expect(optimizer.stateShape == [2, 1])
        #expect(optimizer.stepCount == 2)
    }

    @Test("state(tensor:slot:) is nil out of range")
    func stateAccess() throws {
        let (optimizer, _) = try primed()
        #expect(optimizer.state(tensor: 0, slot: 0)?.count == 3)
        #expect(optimizer.state(tensor: 1, slot: 1)?.count == 5)
        #expect(optimizer.state(tensor: 3, slot: 0) == nil)
        #expect(optimizer.state(tensor: -1, slot: 0) == nil)
        #expect(optimizer.state(tensor: 0, slot: 2) == nil)
        #expect(optimizer.state(tensor: 0, slot: -1) == nil)
        let sgd = try Optimizer("sgd")
        let t = TensorSet(params: [[1]])
        try t.step(sgd)
        #expect(sgd.state(tensor: 0, slot: 0) == nil, "sgd has no state buffers")
        #expect(sgd.stateShape == [1])
    }

    // MARK: the Swift buffer overload

    @Test("step(parameters:gradients:) checks counts and lengths")
    func bufferOverloadErrors() throws {
        let optimizer = try Optimizer("sgd")
        let tensors = TensorSet(params: [[1, 2], [3, 4, 5]])
        let grads = tensors.grads.map { UnsafeBufferPointer($0) }
        expectDescentError(.invalidArgument, "2 parameter tensors but 1 gradient tensors") {
            try optimizer.step(parameters: tensors.params, gradients: [grads[0]])
        }
        expectDescentError(.invalidArgument, "params[1] has 3 elements but grads[1] has 2") {
            try optimizer.step(parameters: tensors.params, gradients: [grads[0], grads[0]])
        }
        expectDescentError(.invalidArgument, "count is 0: must be >= 1") {
            try optimizer.step(parameters: [], gradients: [])
        }
        #expect(optimizer.stepCount == 0)
        #expect(tensors.paramValues == [[1, 2], [3, 4, 5]])
    }
}
