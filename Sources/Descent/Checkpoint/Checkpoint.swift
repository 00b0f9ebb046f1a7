import CDescentKernels

/// Descent checkpoints: everything a network needs to continue training exactly where it
/// stopped, in one safetensors file (see `SafeTensors`), so numpy, PyTorch and the
/// `safetensors` package can read the weights directly.
///
/// Tensors, all F32, in this order (which is also their order in the data section):
///
///     W1, b1, [gamma1, beta1,] W2, ...   the parameters, in the network's order; W is
///                                        [fan_in, fan_out], the others [width]
///     running_mean1, running_var1, ...   batch-norm running averages per hidden layer
///                                        (only with batch norm)
///     optimizer.W1.0, optimizer.W1.1,    state slot s of each parameter's optimizer state
///     optimizer.b1.0, ...                (Adam: 0 = m, 1 = v), same shape as the parameter;
///                                        only once the optimizer has taken a step and only
///                                        for optimizers with state (sgd has none)
///
/// `__metadata__` (string to string, as safetensors requires):
///
///     format             "descent-checkpoint"
///     format_version     "1"
///     descent_version    the library that wrote it (informational)
///     spec               the network spec as JSON (`NetworkSpec.json`)
///     optimizer          its registered name, e.g. "adam" (a plugin's must be loaded to read it)
///     optimizer_hparams  every hyperparameter value, "lr=0.001,beta1=0.9,...", shortest
///                        round-trip decimals
///     optimizer_step     the step count t, decimal
///     rng_state          the dropout generator's xoshiro256** state: four 16-digit hex words
///                        separated by commas
///
/// Gradients are not saved: save after a step (a `forwardBackward` whose gradients have not
/// been applied is not in the checkpoint). Loading accepts other metadata keys and ignores them;
/// hyperparameters missing from `optimizer_hparams` take their defaults.
enum Checkpoint {
    static let format = "descent-checkpoint"
    static let formatVersion = "1"

    /// A tensor a checkpoint holds: its name and shape.
    struct Entry: Equatable, CustomStringConvertible {
        var name: String
        var shape: [Int]
        var description: String { "\(name) \(shape)" }
    }

    /// The tensors a checkpoint of `spec` holds, in file order, computed from the spec alone
    /// (so a file can be checked before anything is allocated). `stateSlots` is the number of
    /// optimizer state buffers per parameter stored (0 when there is no state).
    static func expectedTensors(spec: NetworkSpec, stateSlots: Int) throws -> [Entry] {
        let parameters = try ParameterArena.layout(for: spec).views.map { Entry(name: $0.name, shape: $0.shape) }
        let hidden = spec.batchNorm ? Array(spec.sizes.dropFirst().dropLast()) : []
        let running = hidden.enumerated().flatMap { i, width in
            [Entry(name: "running_mean\(i + 1)", shape: [width]), Entry(name: "running_var\(i + 1)", shape: [width])]
        }
        let state = parameters.flatMap { p in (0..<stateSlots).map { Entry(name: stateName(p.name, $0), shape: p.shape) } }
        return parameters + running + state
    }

    static func stateName(_ parameter: String, _ slot: Int) -> String { "optimizer.\(parameter).\(slot)" }

    // MARK: - saving

    /// Writes `network` to `path` atomically (see `SafeTensors.write`).
    static func save(_ network: Network, to path: String) throws {
        let optimizer = network.optimizer
        let kind = optimizer.kind
        let parameters = network.parameters
        let step = optimizer.stepCount
        let slots = step > 0 ? kind.stateCount : 0
        guard slots == 0 || optimizer.stateShape == [Int64(network.arena.length)] else {
            throw DescentError(.shapeMismatch, "the optimizer's state does not match the network's parameter arena")
        }
        var sources = parameters.map { SafeTensors.Source(name: $0.name, shape: $0.shape, bytes: .init($0.value.buffer)) }
        for (i, stats) in network.runningStatistics.enumerated() {
            sources.append(.init(name: "running_mean\(i + 1)", shape: [stats.mean.count], bytes: .init(stats.mean.buffer)))
            sources.append(.init(name: "running_var\(i + 1)", shape: [stats.variance.count], bytes: .init(stats.variance.buffer)))
        }
        // Each state slot has the arena's layout: parameter p's state is at p.offset.
        for p in parameters {
            for slot in 0..<slots {
                guard let state = optimizer.state(tensor: 0, slot: slot) else {
                    throw DescentError(.shapeMismatch, "the optimizer has no state slot \(slot)")
                }
                sources.append(.init(name: stateName(p.name, slot), shape: p.shape,
                                     bytes: .init(UnsafeBufferPointer(rebasing: state[p.offset..<p.offset + p.count]))))
            }
        }
        let values = optimizer.hyperparameters
        let hparams = kind.hyperparameters.map { "\($0.name)=\(Hyperparameter.format(values[$0.name]!))" }
        let s = network.rng.pointee.s
        let metadata: [(key: String, value: String)] = [
            ("format", format),
            ("format_version", formatVersion),
            ("descent_version", descentVersion),
            ("spec", network.spec.json),
            ("optimizer", kind.name),
            ("optimizer_hparams", hparams.joined(separator: ",")),
            ("optimizer_step", String(step)),
            ("rng_state", [s.0, s.1, s.2, s.3].map { hex($0, digits: 16, uppercase: false) }.joined(separator: ",")),
        ]
        try SafeTensors.write(path: path, tensors: sources, metadata: metadata)
    }

    // MARK: - loading

    /// A checkpoint file that has passed every check that does not need the tensor data: the
    /// safetensors structure, the metadata, the spec, the optimizer, and every tensor's name,
    /// dtype and shape. Only then is a network built (`restore`).
    struct Plan {
        let reader: SafeTensors.Reader
        let spec: NetworkSpec
        let optimizer: Optimizer
        let step: Int64
        let rng: dk_rng

        init(path: String) throws {
            reader = try SafeTensors.Reader(path: path)
            let header = reader.header
            guard let metadata = header.metadata else {
                throw bad("not a Descent checkpoint: the safetensors header has no __metadata__")
            }
            func field(_ key: String) throws -> String {
                guard let value = metadata[key] else { throw bad("__metadata__ has no '\(key)'") }
                return value
            }
            let formatName = try field("format")
            guard formatName == format else {
                throw bad("not a Descent checkpoint: __metadata__ 'format' is \(jsonString(formatName)), expected \"\(format)\"")
            }
            let version = try field("format_version")
            guard version == formatVersion else {
                throw bad("checkpoint format_version \(jsonString(version)) is not supported: Descent \(descentVersion) reads version \(formatVersion)")
            }
            for t in header.tensors where t.dtype != "F32" {
                throw bad("tensor '\(t.name)' has dtype \(t.dtype): Descent checkpoints hold F32 only")
            }
            let specText = try field("spec")
            do {
                spec = try NetworkSpec.parse(json: specText)
            } catch let error as DescentError {
                throw bad("__metadata__ 'spec' is not a valid network spec: \(error.message)")
            }

            let name = try field("optimizer")
            guard OptimizerRegistry.names.contains(name) else {
                throw DescentError(.notFound,
                    "the checkpoint uses optimizer '\(name)', which is not registered (load the plugin that provides it first); known: \(OptimizerRegistry.names.joined(separator: ", "))")
            }
            let hparams = try field("optimizer_hparams")
            do {
                optimizer = try Optimizer(name, hyperparameters: hparams)
            } catch let error as DescentError where error.status != .outOfMemory {
                throw bad("__metadata__ 'optimizer_hparams' is not valid for \(name): \(error.message)")
            }
            if spec.weightDecay > 0, optimizer.hostWeightDecay > 0 {
                let error = Optimizer.doubleWeightDecay(kind: optimizer.kind, value: optimizer.hostWeightDecay,
                                                        networkWeightDecay: spec.weightDecay)
                throw bad("__metadata__ 'optimizer_hparams' is not valid for \(name): \(error.message)")
            }
            let stepText = try field("optimizer_step")
            guard !stepText.isEmpty, stepText.utf8.count <= 19, stepText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  let step = Int64(stepText) else {
                throw bad("__metadata__ 'optimizer_step' is \(jsonString(stepText)): must be a decimal whole number >= 0")
            }
            self.step = step
            rng = try Self.parseRNG(try field("rng_state"))

            let slots = step > 0 ? optimizer.kind.stateCount : 0
            let expected = try expectedTensors(spec: spec, stateSlots: slots)
            /// Why an optimizer tensor is expected or not.
            func why(_ tensor: String) -> String {
                tensor.hasPrefix("optimizer.") ? " (optimizer \(name) at step \(step) keeps \(slots) state buffers per parameter)" : ""
            }
            for entry in expected {
                guard let t = header.tensor(named: entry.name) else { throw bad("tensor '\(entry.name)' is missing\(why(entry.name))") }
                guard t.shape == entry.shape else {
                    throw bad("tensor '\(entry.name)' has shape \(t.shape) but the spec needs \(entry.shape)")
                }
            }
            let names = Set(expected.map(\.name))
            if let extra = header.tensors.first(where: { !names.contains($0.name) }) {
                throw bad("unexpected tensor '\(extra.name)'\(why(extra.name)); a checkpoint of this spec holds "
                    + expected.map(\.name).joined(separator: ", "))
            }
        }

        /// Four 16-digit hex words, not all zero (xoshiro's one invalid state).
        static func parseRNG(_ text: String) throws -> dk_rng {
            let words = text.split(separator: ",", omittingEmptySubsequences: false)
            let hexDigits = Set("0123456789abcdefABCDEF".utf8)
            let values = words.compactMap { w -> UInt64? in
                guard w.utf8.count == 16, w.utf8.allSatisfy(hexDigits.contains) else { return nil }
                return UInt64(w, radix: 16)
            }
            guard words.count == 4, values.count == 4, values.contains(where: { $0 != 0 }) else {
                throw bad("__metadata__ 'rng_state' is \(jsonString(String(text.prefix(100)))): must be four 16-digit hex words separated by commas, not all zero")
            }
            return dk_rng(s: (values[0], values[1], values[2], values[3]))
        }

        /// Reads the tensors into `network` (built from `spec`) and installs the optimizer and
        /// the generator state. Values must be finite; running variances >= 0.
        func restore(into network: Network) throws {
            let header = reader.header
            func load(_ name: String, into buffer: UnsafeMutableBufferPointer<Float>) throws {
                let tensor = header.tensor(named: name)!   // checked in init
                try reader.read(tensor, into: UnsafeMutableRawBufferPointer(buffer))
                if let error = nonFiniteError(buffer.baseAddress, count: buffer.count, { "tensor '\(name)' contains \($1) at index \($0)" }) {
                    throw error
                }
            }
            for p in network.parameters { try load(p.name, into: p.value.buffer) }
            for (i, stats) in network.runningStatistics.enumerated() {
                try load("running_mean\(i + 1)", into: stats.mean.buffer)
                try load("running_var\(i + 1)", into: stats.variance.buffer)
                if let j = stats.variance.buffer.firstIndex(where: { $0 < 0 }) {
                    throw bad("tensor 'running_var\(i + 1)' holds \(stats.variance.buffer[j]) at index \(j): variances must be >= 0")
                }
            }
            // One state tensor, the arena; parameter p's part of each slot is at p.offset.
            try optimizer.restoreState(stepCount: step, lengths: [Int64(network.arena.length)]) { _, slot, arena in
                for p in network.parameters {
                    try load(stateName(p.name, slot), into: UnsafeMutableBufferPointer(rebasing: arena[p.offset..<p.offset + p.count]))
                }
            }
            try network.install(optimizer)
            network.rng.pointee = rng
        }
    }

    static func bad(_ message: String) -> DescentError { DescentError(.format, message) }
}

extension Network {
    /// Saves the network as a checkpoint (safetensors): parameters, batch-norm running
    /// averages, the optimizer (name, hyperparameters, step count, state), the spec and the
    /// dropout generator's state, so that `Network.load` continues training bit for bit as
    /// if it had never stopped (same inputs, same thread count). Written atomically: a crash
    /// or an error leaves any previous file at `path` intact. Errors: `.io`.
    public func save(to path: String) throws {
        guard !path.isEmpty else { throw DescentError.invalid("path is empty") }
        try Checkpoint.save(self, to: path)
    }

    /// Loads a checkpoint written by `save`. Everything is validated before the network is
    /// built; errors name the path: `.notFound` (no file, or its optimizer is not registered),
    /// `.io`, `.format` (not safetensors, not a Descent checkpoint, or anything inconsistent),
    /// `.numeric` (a tensor holds NaN or Inf). The file is validated before the network is
    /// built; every error message but the empty path's starts with the path.
    public static func load(from path: String) throws -> Network {
        guard !path.isEmpty else { throw DescentError.invalid("path is empty") }
        return try withErrorPrefix("'\(path)'") {
            let plan = try Checkpoint.Plan(path: path)
            let network = try Network(spec: plan.spec)
            try plan.restore(into: network)
            return network
        }
    }
}
