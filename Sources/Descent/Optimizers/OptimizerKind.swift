import CDescentKernels

/// A registered optimizer: a validated view of a `descent_optimizer_desc` from the built-ins
/// or a plugin, plus the hyperparameters the host adds.
public struct OptimizerKind: @unchecked Sendable {
    /// Unique name, e.g. `adam`.
    public let name: String
    /// One line: the update rule.
    public let summary: String
    /// `built-in`, or the path of the plugin library it came from.
    public let origin: String
    /// Hyperparameters in table order, then the host's: `weight_decay` (unless the optimizer
    /// declares its own) and `check_finite`, always last.
    public let hyperparameters: [Hyperparameter]
    /// Per-element state buffers the optimizer keeps (Adam: 2).
    public let stateCount: Int
    /// Whether step() may fail, so the host snapshots parameters and state to roll back.
    public let isFallible: Bool

    /// The descriptor; valid for the life of the process (plugins are never unloaded).
    let descriptor: UnsafePointer<descent_optimizer_desc>
    /// Index of the host-provided L2 weight decay in `hyperparameters`, if any.
    let hostWeightDecayIndex: Int?
    /// Index of the host's `check_finite` switch in `hyperparameters`.
    let checkFiniteIndex: Int
    /// The library handle it came from (nil for built-ins); identifies "the same plugin".
    let library: UnsafeMutableRawPointer?

    /// `name` as the descriptor's C string: checked at load to equal `name`, and valid for the
    /// life of the process, as every descriptor is.
    public var cName: UnsafePointer<CChar> { descriptor.pointee.name! }

    /// The position of a hyperparameter in the table.
    public func index(of key: String) -> Int? { hyperparameters.firstIndex { $0.name == key } }

    /// Default values in table order.
    public var defaults: [Double] { hyperparameters.map(\.defaultValue) }

    /// Describes the optimizer as one JSON object (the format `descent_optimizer_describe` returns).
    public var describeJSON: String {
        var out = "{\"name\":\(jsonString(name)),\"description\":\(jsonString(summary)),"
        out += "\"origin\":\(jsonString(origin)),\"state_buffers\":\(stateCount),\"hyperparameters\":["
        out += hyperparameters.map { h in
            "{\"name\":\(jsonString(h.name)),\"default\":\(jsonNumber(h.defaultValue)),"
                + "\"min\":\(jsonNumber(h.minimum)),\"max\":\(jsonNumber(h.maximum)),"
                + "\"min_exclusive\":\(h.minimumExclusive),\"max_exclusive\":\(h.maximumExclusive),"
                + "\"boolean\":\(h.isBoolean),\"range\":\(jsonString(h.rangeDescription)),"
                + "\"provided_by\":\(jsonString(h.isHostProvided ? "host" : "optimizer")),"
                + "\"help\":\(jsonString(h.help))}"
        }.joined(separator: ",")
        return out + "]}"
    }
}

/// Builds a kind from a descriptor, checking everything a hostile or careless plugin could
/// get wrong. Nothing of the descriptor is trusted before it is checked.
func makeOptimizerKind(_ desc: UnsafePointer<descent_optimizer_desc>?, origin: String,
                       library: UnsafeMutableRawPointer?) throws -> OptimizerKind {
    func bad(_ what: String) -> DescentError { DescentError(.plugin, "\(origin): \(what)") }
    guard let desc else { throw bad("an optimizer descriptor is NULL") }
    // Only struct_size is read until it says the rest of the descriptor exists.
    let structSize = desc.pointer(to: \.struct_size)!.pointee
    let stepEnd = MemoryLayout<descent_optimizer_desc>.offset(of: \.step)! + MemoryLayout<UnsafeRawPointer>.size
    guard Int(structSize) >= stepEnd else {
        throw bad("optimizer descriptor struct_size \(structSize) is smaller than ABI 1.0's \(stepEnd)")
    }
    let d = desc.pointee
    guard let namePointer = d.name else { throw bad("an optimizer has no name") }
    let name = String(cString: namePointer)
    guard isValidIdentifier(name) else {
        throw bad("optimizer name '\(name)' is not [a-z][a-z0-9_]* of at most \(DESCENT_PLUGIN_MAX_NAME) characters")
    }
    guard d.step != nil else { throw bad("optimizer '\(name)' has no step function") }
    guard d.state_count <= DESCENT_PLUGIN_MAX_STATE else {
        throw bad("optimizer '\(name)' asks for \(d.state_count) state buffers; at most \(DESCENT_PLUGIN_MAX_STATE)")
    }
    guard d.hparam_count <= DESCENT_PLUGIN_MAX_HPARAMS else {
        throw bad("optimizer '\(name)' has \(d.hparam_count) hyperparameters; at most \(DESCENT_PLUGIN_MAX_HPARAMS)")
    }
    var table: [Hyperparameter] = []
    if d.hparam_count > 0 {
        guard let base = d.hparams else { throw bad("optimizer '\(name)' has hparam_count \(d.hparam_count) but no table") }
        let stride = Int(base.pointer(to: \.struct_size)!.pointee)   // the entry itself only once stride covers it
        let minimumSize = MemoryLayout<descent_hparam_desc>.size
        guard stride >= minimumSize else {
            throw bad("optimizer '\(name)': hyperparameter struct_size \(stride) is smaller than ABI 1.0's \(minimumSize)")
        }
        for i in 0..<Int(d.hparam_count) {
            let h = UnsafeRawPointer(base).advanced(by: i * stride).assumingMemoryBound(to: descent_hparam_desc.self).pointee
            guard let hn = h.name else { throw bad("optimizer '\(name)': hyperparameter \(i) has no name") }
            let key = String(cString: hn)
            guard isValidIdentifier(key) else { throw bad("optimizer '\(name)': hyperparameter name '\(key)' is not [a-z][a-z0-9_]*") }
            guard !table.contains(where: { $0.name == key }) else { throw bad("optimizer '\(name)': hyperparameter '\(key)' appears twice") }
            let spec = Hyperparameter(
                name: key, help: h.help.map { String(cString: $0) } ?? "",
                defaultValue: h.default_value, minimum: h.min_value, maximum: h.max_value,
                minimumExclusive: h.flags & DESCENT_HPARAM_MIN_EXCLUSIVE != 0,
                maximumExclusive: h.flags & DESCENT_HPARAM_MAX_EXCLUSIVE != 0,
                isBoolean: h.flags & DESCENT_HPARAM_BOOLEAN != 0, isHostProvided: false)
            guard !spec.minimum.isNaN, !spec.maximum.isNaN, spec.minimum <= spec.maximum else {
                throw bad("optimizer '\(name)': hyperparameter '\(key)' has an empty range")
            }
            do { try spec.validate(spec.defaultValue) } catch let error as DescentError {
                throw bad("optimizer '\(name)': default of \(error.message)")
            }
            table.append(spec)
        }
    }
    let hostWeightDecayIndex = table.contains { $0.name == "weight_decay" } ? nil : table.count
    if hostWeightDecayIndex != nil { table.append(.hostWeightDecay) }
    guard !table.contains(where: { $0.name == "check_finite" }) else {
        throw bad("optimizer '\(name)' declares 'check_finite', a name the host reserves")
    }
    let checkFiniteIndex = table.count
    table.append(.hostCheckFinite)
    return OptimizerKind(
        name: name, summary: d.description.map { String(cString: $0) } ?? "", origin: origin,
        hyperparameters: table, stateCount: Int(d.state_count),
        isFallible: d.flags & DESCENT_OPTIMIZER_INFALLIBLE == 0,
        descriptor: desc, hostWeightDecayIndex: hostWeightDecayIndex,
        checkFiniteIndex: checkFiniteIndex, library: library)
}

func isValidIdentifier(_ s: String) -> Bool {
    let lower = UInt8(ascii: "a")...UInt8(ascii: "z"), digits = UInt8(ascii: "0")...UInt8(ascii: "9")
    guard let first = s.utf8.first, lower.contains(first), s.utf8.count <= Int(DESCENT_PLUGIN_MAX_NAME) else { return false }
    return s.utf8.allSatisfy { lower.contains($0) || digits.contains($0) || $0 == UInt8(ascii: "_") }
}
