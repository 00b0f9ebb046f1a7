import CDescentKernels
import Testing
@testable import Descent

#if canImport(Glibc)
import Glibc
#endif

// Checkpoints: round trips, bit-identical resumption, atomic saves, and every way a file can
// be wrong (crafted by hand or by editing a real checkpoint), with its status and message.

// MARK: - helpers

private func ckptWriteFile(_ path: String, _ bytes: [UInt8]) {
    let f = fopen(path, "wb")!
    if !bytes.isEmpty { precondition(fwrite(bytes, 1, bytes.count, f) == bytes.count) }
    fclose(f)
}

private func ckptLittleEndian64(_ x: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: x >> (8 * UInt64($0))) } }

/// A safetensors file from a header text and a data section, exactly as given.
private func ckptRawFile(_ header: String, _ data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    return ckptLittleEndian64(length ?? UInt64(h.count)) + h + data
}

/// Deterministic inputs: `rows` samples of `features` values in [-1, 1) and labels.
private func ckptBatch(_ seed: UInt64, rows: Int, features: Int, classes: Int) -> (x: [Float], labels: [Int32]) {
    var rng = dk_rng()
    dk_rng_seed(&rng, seed)
    let x = (0..<(rows * features)).map { _ in dk_rng_uniform(&rng) * 2 - 1 }
    let labels = (0..<rows).map { _ in Int32(dk_rng_next(&rng) % UInt64(classes)) }
    return (x, labels)
}

private func ckptTrainStep(_ net: Network, step: Int, rows: Int = 32) throws -> Float {
    let b = ckptBatch(1000 + UInt64(step), rows: rows, features: net.inputSize, classes: net.classes)
    return try b.x.withUnsafeBufferPointer { x in
        try b.labels.withUnsafeBufferPointer { l in
            try net.trainStep(x: x.baseAddress, labels: l.baseAddress, batch: rows)
        }
    }
}

private func ckptFloats(_ buffer: FloatBuffer) -> [Float] { Array(buffer.buffer) }
private func ckptBits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

/// Everything a checkpoint holds, as comparable values (floats as bit patterns).
private struct CheckpointSnapshot: Equatable {
    var spec: NetworkSpec
    var parameters: [String: [UInt32]] = [:]
    var running: [[UInt32]] = []
    var optimizer: String
    var hyperparameters: [String: Double]
    var step: Int64
    var state: [[UInt32]] = []
    var rng: [UInt64]

    init(_ net: Network) {
        spec = net.spec
        for p in net.parameters { parameters[p.name] = ckptBits(ckptFloats(p.value)) }
        for s in net.runningStatistics { running += [ckptBits(ckptFloats(s.mean)), ckptBits(ckptFloats(s.variance))] }
        optimizer = net.optimizer.kind.name
        hyperparameters = net.optimizer.hyperparameters
        step = net.optimizer.stepCount
        for i in net.parameters.indices {
            for slot in 0..<net.optimizer.kind.stateCount {
                if let s = net.optimizer.state(tensor: i, slot: slot) { state.append(ckptBits(Array(s))) }
            }
        }
        let s = net.rng.pointee.s
        rng = [s.0, s.1, s.2, s.3]
    }
}

private let checkpointSpec = #"{"sizes":[6,5,4,3],"batchnorm":true,"dropout":0.25,"weight_decay":0.001,"seed":7}"#

/// A small trained network (batch norm, dropout, weight decay, Adam after `steps` steps).
private func ckptTrainedNetwork(optimizer: String = "adam", hparams: String? = "lr=0.0025,beta1=0.85,eps=1e-07",
                            steps: Int = 3) throws -> Network {
    let net = try Network(json: checkpointSpec)
    try net.setOptimizer(optimizer, hyperparameters: hparams)
    for step in 0..<steps { _ = try ckptTrainStep(net, step: step) }
    return net
}

private func ckptLoadError(_ path: String) -> DescentError? {
    do {
        _ = try Network.load(from: path)
        return nil
    } catch let error as DescentError {
        return error
    } catch {
        return DescentError(.invalidArgument, "unexpected error \(error)")
    }
}

/// Writes `bytes` to a file and expects loading it to fail with `status` and a message
/// containing `substring`.
private func ckptExpectRejected(_ bytes: [UInt8], _ status: Status, _ substring: String, in directory: String,
                            sourceLocation: SourceLocation = #_sourceLocation) {
    let path = directory + "/crafted.safetensors"
    ckptWriteFile(path, bytes)
    let error = ckptLoadError(path)
    #expect(error?.status == status, "\(error?.description ?? "loaded")", sourceLocation: sourceLocation)
    #expect(substring.isEmpty || error?.message.contains(substring) == true,
            "message \"\(error?.message ?? "none")\" lacks \"\(substring)\"", sourceLocation: sourceLocation)
    #expect(error?.message.hasPrefix("'\(path)': ") == true, "message names the path", sourceLocation: sourceLocation)
}

/// A checkpoint taken apart: metadata and tensors with their bytes, in file order, to edit
/// and put back together (offsets are recomputed, so every edit stays valid safetensors
/// unless the edit is about the structure).
private struct EditedCheckpoint {
    var metadata: [(key: String, value: String)]?
    var tensors: [(name: String, dtype: String, shape: [Int], bytes: [UInt8])]

    init(_ file: [UInt8]) throws {
        let n = Int(file[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        let data = Array(file[(8 + n)...])
        let (entries, meta) = try SafeTensors.parseHeader(Array(file[8..<(8 + n)]), dataSize: data.count)
        // Metadata in the writer's order, for readable diffs.
        let order = ["format", "format_version", "descent_version", "spec", "optimizer", "optimizer_hparams",
                     "optimizer_step", "rng_state"]
        metadata = meta.map { m in m.sorted { (order.firstIndex(of: $0.key) ?? 99, $0.key) < (order.firstIndex(of: $1.key) ?? 99, $1.key) }
            .map { (key: $0.key, value: $0.value) } }
        tensors = entries.map { (name: $0.name, dtype: $0.dtype, shape: $0.shape, bytes: Array(data[$0.begin..<$0.end])) }
    }

    mutating func set(_ key: String, _ value: String?) {
        var m = metadata ?? []
        m.removeAll { $0.key == key }
        if let value { m.append((key: key, value: value)) }
        metadata = m
    }

    mutating func remove(_ name: String) { tensors.removeAll { $0.name == name } }

    func index(_ name: String) -> Int { tensors.firstIndex { $0.name == name }! }

    var bytes: [UInt8] {
        var entries: [String] = []
        if let metadata {
            entries.append("\"__metadata__\":{" + metadata.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
                .joined(separator: ",") + "}")
        }
        var offset = 0
        var data: [UInt8] = []
        for t in tensors {
            entries.append("\(jsonString(t.name)):{\"dtype\":\(jsonString(t.dtype)),\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            offset += t.bytes.count
            data += t.bytes
        }
        return ckptRawFile("{" + entries.joined(separator: ",") + "}", data)
    }
}

private func ckptFloatBytes(_ values: [Float]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

// MARK: - layout and round trip

@Suite(.serialized) struct CheckpointTests {

    @Test func expectedLayoutMatchesTheNetwork() throws {
        for json in [#"{"sizes":[4,3]}"#, #"{"sizes":[6,5,4,3]}"#, checkpointSpec, #"{"sizes":[3,2,2],"batchnorm":true}"#] {
            let net = try Network(json: json)
            let expected = try Checkpoint.expectedTensors(spec: net.spec, stateSlots: 2)
            var names = net.parameters.map { Checkpoint.Entry(name: $0.name, shape: $0.shape) }
            for (i, s) in net.runningStatistics.enumerated() {
                names.append(.init(name: "running_mean\(i + 1)", shape: [s.mean.count]))
                names.append(.init(name: "running_var\(i + 1)", shape: [s.variance.count]))
            }
            for p in net.parameters {
                names.append(.init(name: "optimizer.\(p.name).0", shape: p.shape))
                names.append(.init(name: "optimizer.\(p.name).1", shape: p.shape))
            }
            #expect(expected == names, "\(json)")
        }
    }

    @Test func roundTripKeepsEverything() throws {
        let dir = makeTemporaryDirectory("descent-checkpoint-test")
        defer { removeTree(dir) }
        let net = try ckptTrainedNetwork()
        #expect(net.optimizer.stepCount == 3)
        let path = dir + "/net.safetensors"
        try net.save(to: path)
        let loaded = try Network.load(from: path)
        #expect(CheckpointSnapshot(loaded) == CheckpointSnapshot(net))
        #expect(loaded.optimizer.hyperparameters == ["lr": 0.0025, "beta1": 0.85, "beta2": 0.999, "eps": 1e-7, "eps_hat": 1, "weight_decay": 0, "check_finite": 1])
        #expect(loaded.optimizer.stepCount == 3)
        #expect(loaded.optimizer.stateShape == [Int64(net.arena.length)], "one state tensor: the whole arena")

        // Saving the loaded network writes the same bytes: nothing is lost or added.
        let again = dir + "/again.safetensors"
        try loaded.save(to: again)
        #expect(readFileBytes(again) == readFileBytes(path))
        #expect(listDirectory(dir) == ["again.safetensors", "net.safetensors"], "no temporary files left")

        // The file is plain safetensors with the documented contents.
        let file = readFileBytes(path)
        let edited = try EditedCheckpoint(file)
        let headerLength = Int(file[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        #expect(headerLength % 8 == 0, "the data section is 8-byte aligned")
        let metadata = Dictionary(uniqueKeysWithValues: edited.metadata!.map { ($0.key, $0.value) })
        #expect(metadata["format"] == "descent-checkpoint")
        #expect(metadata["format_version"] == "1")
        #expect(metadata["descent_version"] == descentVersion)
        #expect(metadata["spec"] == net.spec.json)
        #expect(metadata["optimizer"] == "adam")
        #expect(metadata["optimizer_hparams"] == "lr=0.0025,beta1=0.85,beta2=0.999,eps=1e-07,eps_hat=1,weight_decay=0,check_finite=1")
        #expect(metadata["optimizer_step"] == "3")
        let s = net.rng.pointee.s
        #expect(metadata["rng_state"] == [s.0, s.1, s.2, s.3].map { w in
            let h = String(w, radix: 16); return String(repeating: "0", count: 16 - h.count) + h }.joined(separator: ","))
        #expect(edited.tensors.map(\.name) == (try Checkpoint.expectedTensors(spec: net.spec, stateSlots: 2)).map(\.name))
        #expect(edited.tensors.allSatisfy { $0.dtype == "F32" })
        let w2 = edited.tensors[edited.index("W2")]
        #expect(w2.shape == [5, 4])
        #expect(w2.bytes == ckptFloatBytes(ckptFloats(net.parameters.first { $0.name == "W2" }!.value)))
        let v = edited.tensors[edited.index("optimizer.W1.1")]
        let w1 = net.parameters.first { $0.name == "W1" }!
        #expect(v.bytes == ckptFloatBytes(Array(net.optimizer.state(tensor: 0, slot: 1)![w1.offset..<w1.offset + w1.count])))
        let runningVar = edited.tensors[edited.index("running_var2")]
        #expect(runningVar.bytes == ckptFloatBytes(ckptFloats(net.runningStatistics[1].variance)))
    }

    @Test func roundTripBeforeAnyStepAndWithoutState() throws {
        let dir = makeTemporaryDirectory("descent-checkpoint-test")
        defer { removeTree(dir) }
        // Fresh network: sgd at step 0, no state tensors.
        let fresh = try Network(json: #"{"sizes":[4,3,2],"activation":"tanh","init":"std:0.5","seed":3}"#)
        try fresh.save(to: dir + "/fresh.safetensors")
        let freshFile = try EditedCheckpoint(readFileBytes(dir + "/fresh.safetensors"))
        #expect(freshFile.tensors.map(\.name) == ["W1", "b1", "W2", "b2"])
        #expect(CheckpointSnapshot(try Network.load(from: dir + "/fresh.safetensors")) == CheckpointSnapshot(fresh))

        // sgd after steps: a step count but no state buffers.
        let sgd = try ckptTrainedNetwork(optimizer: "sgd", hparams: "lr=0.05", steps: 2)
        try sgd.save(to: dir + "/sgd.safetensors")
        let sgdFile = try EditedCheckpoint(readFileBytes(dir + "/sgd.safetensors"))
        #expect(!sgdFile.tensors.contains { $0.name.hasPrefix("optimizer.") })
        let loaded = try Network.load(from: dir + "/sgd.safetensors")
        #expect(CheckpointSnapshot(loaded) == CheckpointSnapshot(sgd))
        #expect(loaded.optimizer.stepCount == 2)
        // And it keeps training (the restored empty state matches the parameters).
        #expect(try ckptTrainStep(loaded, step: 2).bitPattern == ckptTrainStep(sgd, step: 2).bitPattern)
    }

    // MARK: - resuming

    @Test(arguments: ["adam", "momentum", "rmsprop", "sgd"])
    func resumingGivesTheUninterruptedLosses(optimizer: String) throws {
        let dir = makeTemporaryDirectory("descent-checkpoint-test")
        defer { removeTree(dir) }
        let total = 12, cut = 5
        // Large enough that the kernels and the BLAS split the work across threads.
        let json = #"{"sizes":[64,300,200,10],"batchnorm":true,"dropout":0.3,"weight_decay":0.0005,"seed":11}"#

        let straight = try Network(json: json)
        try straight.setOptimizer(optimizer)
        var expected: [Float] = []
        for step in 0..<total { expected.append(try ckptTrainStep(straight, step: step)) }

        var resumed: [Float] = []
        do {
            let first = try Network(json: json)
            try first.setOptimizer(optimizer)
            for step in 0..<cut { resumed.append(try ckptTrainStep(first, step: step)) }
            try first.save(to: dir + "/cut.safetensors")
        }   // the first network is gone
        let second = try Network.load(from: dir + "/cut.safetensors")
        for step in cut..<total { resumed.append(try ckptTrainStep(second, step: step)) }

        #expect(ckptBits(resumed) == ckptBits(expected), "losses \(resumed) vs \(expected)")
        #expect(CheckpointSnapshot(second) == CheckpointSnapshot(straight), "weights, statistics, optimizer state and rng")
        for (a, b) in zip(straight.parameters, second.parameters) {
            #expect(memcmp(a.value.pointer, b.value.pointer, a.count * 4) == 0, "\(a.name)")
        }
        // Evaluation agrees too (running averages).
        let probe = ckptBatch(99, rows: 8, features: 64, classes: 10)
        var p1 = [Float](repeating: 0, count: 80), p2 = p1
        try straight.predict(x: probe.x, batch: 8, probabilities: &p1)
        try second.predict(x: probe.x, batch: 8, probabilities: &p2)
        #expect(ckptBits(p1) == ckptBits(p2))
    }

    @Test func resumingThroughTheSplitStep() throws {
        // forward_backward + apply_update after loading continue like train_step would have.
        let dir = makeTemporaryDirectory("descent-checkpoint-test")
        defer { removeTree(dir) }
        let net = try ckptTrainedNetwork(steps: 2)
        try net.save(to: dir + "/c.safetensors")
        let loaded = try Network.load(from: dir + "/c.safetensors")
        let b = ckptBatch(5, rows: 16, features: 6, classes: 3)
        let l1 = try net.trainStep(x: b.x, labels: b.labels, batch: 16)
        let l2 = try loaded.forwardBackward(x: b.x, labels: b.labels, batch: 16)
        try loaded.applyUpdate()
        #expect(l1.bitPattern == l2.bitPattern)
        #expect(CheckpointSnapshot(loaded) == CheckpointSnapshot(net))
    }

    // MARK: - atomic saves

    @Test func failedSavesLeaveTheOldFileAndNoLitter() throws {
        let dir = makeTemporaryDirectory("descent-checkpoint-test")
        defer { removeTree(dir) }
        let net = try ckptTrainedNetwork()
        let path = dir + "/model.safetensors"
        try net.save(to: path)
        let old = readFileBytes(path)
        _ = try ckptTrainStep(net, step: 10)   // the network moves on

        // (A write that fails halfway: CheckpointSaveTests.aWriteThatFailsHalfwayLeavesTheOldFileAndNoTemporary.)

        // The target is a directory: rename fails, nothing else changes.
        mkdir(dir + "/taken", 0o755)
        ckptWriteFile(dir + "/taken/inside", [1, 2, 3])
        do {
            try net.save(to: dir + "/taken")
            Issue.record("saving over a directory succeeded")
        } catch let e as DescentError {
            #expect(e.status == .io)
            #expect(e.message.contains("'\(dir)/taken'"), "\(e.message)")
            #expect(e.message.contains("Is a directory") || e.message.contains("Directory not empty"), "\(e.message)")
        }
        #expect(listDirectory(dir) == ["model.safetensors", "taken"])
        #expect(readFileBytes(dir + "/taken/inside") == [1, 2, 3])

        // The directory does not exist.
        do {
            try net.save(to: dir + "/missing/model.safetensors")
            Issue.record("saving into a missing directory succeeded")
        } catch let e as DescentError {
            #expect(e.status == .io)
            #expect(e.message.contains("\(dir)/missing"), "\(e.message)")
            #expect(e.message.contains("No such file or directory"), "\(e.message)")
        }
        #expect(throws: DescentError.invalid("path is empty")) { try net.save(to: "") }

        // A successful save replaces the old file.
        try net.save(to: path)
        #expect(readFileBytes(path) != old)
        #expect(CheckpointSnapshot(try Network.load(from: path)) == CheckpointSnapshot(net))
        #expect(listDirectory(dir) == ["model.safetensors", "taken"])
    }

    @Test func savedFilesGetTheUsualPermissions() throws {
        let dir = makeTemporaryDirectory("descent-checkpoint-test")
        defer { removeTree(dir) }
        try Network(json: #"{"sizes":[2,2]}"#).save(to: dir + "/p.safetensors")
        // The same mode as a file created the ordinary way (0666 minus the umask), not
        // mkstemp's 0600.
        let fd = open(dir + "/plain", O_CREAT | O_WRONLY, 0o666)
        close(fd)
        var info = stat(), plain = stat()
        #expect(stat(dir + "/p.safetensors", &info) == 0)
        #expect(stat(dir + "/plain", &plain) == 0)
        #expect(info.st_mode & 0o777 == plain.st_mode & 0o777)
    }

    // MARK: - hostile and broken files

    @Test func structuralErrors() throws {
        let dir = makeTemporaryDirectory("descent-checkpoint-test")
        defer { removeTree(dir) }
        func reject(_ bytes: [UInt8], _ status: Status, _ text: String,
                    sourceLocation: SourceLocation = #_sourceLocation) {
            ckptExpectRejected(bytes, status, text, in: dir, sourceLocation: sourceLocation)
        }
        func reject(_ bytes: [UInt8], _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
            ckptExpectRejected(bytes, .format, text, in: dir, sourceLocation: sourceLocation)
        }
        let entry = #"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
        let eight = [UInt8](repeating: 0, count: 8)

        reject([], "the file has 0 bytes")
        reject([1, 0, 0, 0, 0], "the file has 5 bytes")
        reject(ckptLittleEndian64(200_000_000) + eight, "the header length is 200000000 bytes; at most 100000000")
        reject(ckptLittleEndian64(.max) + eight, "at most 100000000")
        reject(ckptRawFile("{}", length: 100), "the header length is 100 bytes but only 2 follow")
        reject(ckptRawFile("[1,2]"), "does not start with '{'")
        reject(ckptRawFile(" {}"), "does not start with '{'")
        reject(ckptRawFile("{\"a\":"), "the header is not valid JSON: expected a value, found the end of the text at line 1, column 6 (byte 5)")
        reject(ckptRawFile("{\"a\":1}"), "tensor 'a' must be an object with dtype, shape and data_offsets, got a number")
        reject(ckptRawFile(#"{"a":{"shape":[2],"data_offsets":[0,8]}}"#, eight), "tensor 'a' has no 'dtype'")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","data_offsets":[0,8]}}"#, eight), "tensor 'a' has no 'shape'")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":[2]}}"#, eight), "tensor 'a' has no 'data_offsets'")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}"#, eight),
               "tensor 'a' has an unknown field 'x'")
        reject(ckptRawFile(#"{"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}"#, eight), "tensor 'a': dtype must be a string")
        reject(ckptRawFile(#"{"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}"#, eight), "tensor 'a' has an unknown dtype 'Q7'")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}"#, eight),
               "tensor 'a': shape must be an array of whole numbers, got a string")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, eight),
               "tensor 'a': shape[0] must be a whole number in 0...2^53, got -2")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}"#, eight), "shape[0] must be a whole number")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, eight),
               "tensor 'a': data_offsets must be [begin, end], got 1 numbers")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}"#, eight), "must be [begin, end]")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, eight),
               "tensor 'a': data_offsets [8, 0] end before they begin")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,1e300]}}"#, eight),
               "data_offsets[1] must be a whole number in 0...2^53")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, eight),
               "tensor 'a': shape [3] of F32 needs 12 bytes but data_offsets [0, 8] hold 8 bytes")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#, eight),
               "has too many elements")
        reject(ckptRawFile(#"{"a":{"dtype":"F64","shape":[9007199254740992,32],"data_offsets":[0,8]}}"#, eight),
               "needs more than 2^63 bits")
        // A size far beyond the file: rejected by arithmetic, nothing is allocated or read.
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":[1000000000000],"data_offsets":[0,4000000000000]}}"#, eight),
               "reach past the end of the data section (8 bytes)")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                       eight + [0, 0, 0, 0]),
               "tensor 'b': data_offsets [4, 12] overlap tensor 'a', which ends at 8")
        reject(ckptRawFile(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                       eight + [0, 0, 0, 0]),
               "bytes [4, 8) of the data section belong to no tensor")
        reject(ckptRawFile(#"{"a":\#(entry)}"#, eight + [9]), "the data section has 9 bytes but the tensors cover only 8")
        reject(ckptRawFile(#"{"__metadata__":[1],"a":\#(entry)}"#, eight), "__metadata__ must be an object of strings, got an array")
        reject(ckptRawFile(#"{"__metadata__":{"format":1},"a":\#(entry)}"#, eight),
               "__metadata__ 'format' must be a string (safetensors metadata is string to string), got a number")
        // Deep nesting is refused as soon as it is not what an entry can be, without a stack
        // overflow (JSONSmallStackTests runs such files on a small stack).
        reject(ckptRawFile("{\"a\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"),
               "tensor 'a' must be an object with dtype, shape and data_offsets, got an array")
        // JSON errors say where they are.
        reject(ckptRawFile("{\"a\":{\"dtype\":\"F32\",\n\"shape\":[2,],\"data_offsets\":[0,8]}}", eight),
               "the header is not valid JSON: expected a value, found ']' at line 2, column 12 (byte 32)")
        // Valid safetensors, but not a Descent checkpoint.
        reject(ckptRawFile(#"{"a":\#(entry)}"#, eight), "not a Descent checkpoint: the safetensors header has no __metadata__")
        reject(ckptRawFile(#"{"__metadata__":{"format":"pt"},"a":\#(entry)}"#, eight),
               "not a Descent checkpoint: __metadata__ 'format' is \"pt\", expected \"descent-checkpoint\"")
        reject(ckptRawFile(#"{"__metadata__":{},"a":\#(entry)}"#, eight), "__metadata__ has no 'format'")
        reject(ckptRawFile(#"{"__metadata__":{"format":"descent-checkpoint","format_version":"2"}}"#),
               "checkpoint format_version \"2\" is not supported: Descent \(descentVersion) reads version 1")
    }

    @Test func checkpointErrors() throws {
        let dir = makeTemporaryDirectory("descent-checkpoint-test")
        defer { removeTree(dir) }
        let net = try ckptTrainedNetwork()
        try net.save(to: dir + "/base.safetensors")
        let base = try EditedCheckpoint(readFileBytes(dir + "/base.safetensors"))
        func reject(_ edit: (inout EditedCheckpoint) -> Void, _ status: Status, _ text: String,
                    sourceLocation: SourceLocation = #_sourceLocation) {
            var copy = base
            edit(&copy)
            ckptExpectRejected(copy.bytes, status, text, in: dir, sourceLocation: sourceLocation)
        }
        func reject(_ edit: (inout EditedCheckpoint) -> Void, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
            reject(edit, .format, text, sourceLocation: sourceLocation)
        }
        // The unedited copy loads (so each failure below is due to its edit).
        ckptWriteFile(dir + "/copy.safetensors", base.bytes)
        #expect(CheckpointSnapshot(try Network.load(from: dir + "/copy.safetensors")) == CheckpointSnapshot(net))

        reject({ $0.metadata = nil }, "not a Descent checkpoint: the safetensors header has no __metadata__")
        reject({ $0.set("format", "descent") }, "not a Descent checkpoint: __metadata__ 'format' is \"descent\"")
        reject({ $0.set("format_version", nil) }, "__metadata__ has no 'format_version'")
        reject({ $0.set("format_version", "1.0") }, "checkpoint format_version \"1.0\" is not supported")
        reject({ $0.tensors[$0.index("W1")].dtype = "F64"; $0.tensors[$0.index("W1")].bytes += $0.tensors[$0.index("W1")].bytes },
               "tensor 'W1' has dtype F64: Descent checkpoints hold F32 only")
        reject({ $0.tensors[$0.index("b2")].dtype = "I32" }, "tensor 'b2' has dtype I32: Descent checkpoints hold F32 only")
        reject({ $0.set("spec", nil) }, "__metadata__ has no 'spec'")
        reject({ $0.set("spec", "{") }, "__metadata__ 'spec' is not a valid network spec: the network spec is not valid JSON")
        reject({ $0.set("spec", #"{"sizes":[6,5,4,3],"colour":"red"}"#) },
               "__metadata__ 'spec' is not a valid network spec: unknown spec field 'colour'")
        reject({ $0.set("spec", #"{"sizes":[6,5,4,3],"dropout":1.5}"#) }, "spec field 'dropout' is 1.5")
        reject({ $0.set("spec", #"{"sizes":[7,5,4,3],"batchnorm":true,"dropout":0.25,"weight_decay":0.001,"seed":7}"#) },
               "tensor 'W1' has shape [6, 5] but the spec needs [7, 5]")
        reject({ $0.set("spec", #"{"sizes":[6,5,4,3],"dropout":0.25,"weight_decay":0.001,"seed":7}"#) },
               "unexpected tensor 'gamma1'")
        reject({ $0.set("optimizer", nil) }, "__metadata__ has no 'optimizer'")
        reject({ $0.set("optimizer", "lion") }, .notFound,
               "the checkpoint uses optimizer 'lion', which is not registered (load the plugin that provides it first)")
        reject({ $0.set("optimizer_hparams", nil) }, "__metadata__ has no 'optimizer_hparams'")
        reject({ $0.set("optimizer_hparams", "lr=-1") },
               "__metadata__ 'optimizer_hparams' is not valid for adam: hyperparameter 'lr' = -1 is out of range")
        reject({ $0.set("optimizer_hparams", "lr=0.1,foo=2") }, "unknown hyperparameter 'foo' for adam")
        reject({ $0.set("optimizer_hparams", "lr") }, "is not key=value")
        reject({ $0.set("optimizer_hparams", "lr=nan") }, "optimizer_hparams")
        for step in ["", "-1", "1.5", "+3", " 3", "0x10", "99999999999999999999"] {
            reject({ $0.set("optimizer_step", step) }, "__metadata__ 'optimizer_step' is \(jsonString(step)): must be a decimal whole number >= 0")
        }
        reject({ $0.set("optimizer_step", nil) }, "__metadata__ has no 'optimizer_step'")
        for rng in ["", "1,2,3,4", "0000000000000000,0000000000000000,0000000000000000",
                    "0000000000000000,0000000000000000,0000000000000000,0000000000000000",
                    "000000000000000g,0000000000000001,0000000000000001,0000000000000001",
                    "+000000000000001,0000000000000001,0000000000000001,0000000000000001",
                    "0000000000000001,0000000000000001,0000000000000001,0000000000000001,"] {
            reject({ $0.set("rng_state", rng) }, "__metadata__ 'rng_state' is \(jsonString(rng)): must be four 16-digit hex words")
        }
        reject({ $0.set("rng_state", nil) }, "__metadata__ has no 'rng_state'")
        reject({ $0.remove("b2") }, "tensor 'b2' is missing")
        reject({ $0.remove("running_var2") }, "tensor 'running_var2' is missing")
        reject({ $0.remove("optimizer.beta1.1") },
               "tensor 'optimizer.beta1.1' is missing (optimizer adam at step 3 keeps 2 state buffers per parameter)")
        reject({ $0.tensors.append((name: "extra", dtype: "F32", shape: [1], bytes: [0, 0, 0, 0])) },
               "unexpected tensor 'extra'; a checkpoint of this spec holds W1, b1, gamma1, beta1, W2")
        reject({ $0.set("optimizer_step", "0") },
               "unexpected tensor 'optimizer.W1.0' (optimizer adam at step 0 keeps 0 state buffers per parameter)")
        reject({ $0.set("optimizer", "sgd"); $0.set("optimizer_hparams", "lr=0.1") },
               "unexpected tensor 'optimizer.W1.0' (optimizer sgd at step 3 keeps 0 state buffers per parameter)")
        reject({ $0.set("optimizer", "momentum"); $0.set("optimizer_hparams", "") }, "unexpected tensor 'optimizer.W1.1'")
        reject({ $0.tensors[$0.index("W1")].shape = [5, 6] }, "tensor 'W1' has shape [5, 6] but the spec needs [6, 5]")
        reject({ $0.tensors[$0.index("optimizer.W3.0")].shape = [12] },
               "tensor 'optimizer.W3.0' has shape [12] but the spec needs [4, 3]")
        reject({ $0.tensors[$0.index("b1")].bytes.removeLast(4); $0.tensors[$0.index("b1")].shape = [4] },
               "tensor 'b1' has shape [4] but the spec needs [5]")
        reject({ e in
            var w = e.tensors[e.index("W2")].bytes
            w.replaceSubrange(12..<16, with: ckptFloatBytes([.nan]))
            e.tensors[e.index("W2")].bytes = w
        }, .numeric, "tensor 'W2' contains NaN at index 3")
        reject({ e in
            var m = e.tensors[e.index("optimizer.b3.1")].bytes
            m.replaceSubrange(4..<8, with: ckptFloatBytes([-.infinity]))
            e.tensors[e.index("optimizer.b3.1")].bytes = m
        }, .numeric, "tensor 'optimizer.b3.1' contains -Inf at index 1")
        reject({ e in
            var m = e.tensors[e.index("running_var1")].bytes
            m.replaceSubrange(8..<12, with: ckptFloatBytes([-0.5]))
            e.tensors[e.index("running_var1")].bytes = m
        }, "tensor 'running_var1' holds -0.5 at index 2: variances must be >= 0")

        // Unknown metadata keys are ignored; missing hyperparameters take their defaults.
        var extra = base
        extra.set("note", "from a notebook")
        extra.set("optimizer_hparams", "lr=0.0025")
        ckptWriteFile(dir + "/extra.safetensors", extra.bytes)
        let loaded = try Network.load(from: dir + "/extra.safetensors")
        #expect(loaded.optimizer.hyperparameters["beta1"] == 0.9)
        #expect(loaded.optimizer.hyperparameters["lr"] == 0.0025)

        // Truncating a real checkpoint anywhere is a format error, never a crash.
        let file = readFileBytes(dir + "/base.safetensors")
        for cut in [0, 4, 7, 8, 9, 100, file.count / 2, file.count - 1] {
            ckptExpectRejected(Array(file[0..<cut]), .format, "", in: dir)
        }
        // Appending bytes too.
        ckptExpectRejected(file + [0, 0, 0, 0], .format, "belong to no tensor", in: dir)
    }

    @Test func fileErrors() throws {
        let dir = makeTemporaryDirectory("descent-checkpoint-test")
        defer { removeTree(dir) }
        let missing = ckptLoadError(dir + "/nothing.safetensors")
        #expect(missing?.status == .notFound)
        #expect(missing?.message == "'\(dir)/nothing.safetensors': no such file")
        #expect(ckptLoadError(dir + "/nothing/x.safetensors")?.status == .notFound)
        let directory = ckptLoadError(dir)
        #expect(directory?.status == .io)
        #expect(directory?.message == "'\(dir)': it is a directory, not a safetensors file")
        #expect(ckptLoadError("")?.status == .invalidArgument)
        #expect(ckptLoadError("/dev/null")?.message.contains("not a regular file") == true)
    }
}
