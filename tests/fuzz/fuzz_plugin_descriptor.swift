// fuzz_plugin_descriptor.swift -- libFuzzer target for the host's validation of plugin
// descriptors (include/descent_plugin.h): the descent_plugin, its optimizer descriptors and their
// hyperparameter tables, built from the input and handed to the validator that
// descent_plugin_load runs on what a plugin's entry point returns
// (OptimizerRegistry.kinds(of:origin:library:)).
//
// The validator is internal to the Descent module and only reachable through dlopen from the
// C API, so this harness is Swift and uses `@testable import Descent`: a debug build compiles
// the module with -enable-testing, which exports its internal symbols from libdescent.so. No
// seam in the library is needed.
//
// What the input controls: every count, size, flag and double; the name, version, description
// and help strings (or NULL); whether each table and function pointer is NULL. What the harness
// keeps true, as a real plugin's memory would be: every pointer points to memory of the size
// the descriptor claims. A struct whose struct_size is smaller than this header's is allocated
// with exactly struct_size bytes (its first bytes being the fields an older plugin would have),
// so ASan reports a host that reads a field struct_size does not cover. Tables hold the entries
// their counts claim, up to the host's limits: a count one past a limit gets a table of the
// limit's size, so a host whose limit check is off by one reads past it.
//
// Checked (a violation aborts): a refused descriptor is a DescentError with status .plugin whose
// message starts with the origin; an accepted one gives valid names, a default inside every
// range, the host's check_finite last, and a describe JSON text.
import CDescentKernels
@testable import Descent

#if canImport(Glibc)
import Glibc
#endif

/// Reads typed values off the front of the input; zeros once it is used up.
struct Input {
    var bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func u32() -> UInt32 { (0..<4).reduce(UInt32(0)) { value, i in value | UInt32(byte()) << (8 * UInt32(i)) } }
    mutating func u64() -> UInt64 { (0..<8).reduce(UInt64(0)) { value, i in value | UInt64(byte()) << (8 * UInt64(i)) } }

    /// A size field: mostly the right one, sometimes any small value, sometimes any value.
    mutating func structSize(_ real: Int) -> UInt32 {
        switch byte() % 4 {
        case 0, 1: UInt32(real)
        case 2: UInt32(byte())
        default: u32()
        }
    }

    /// A count: mostly small, sometimes at the host's limits, sometimes any value.
    mutating func count(limit: UInt32) -> UInt32 {
        let b = byte()
        switch b % 8 {
        case 0: return limit
        case 1: return limit + 1
        case 2: return u32()
        default: return UInt32(b / 8 % 4)
        }
    }

    /// A double: one of the values validation cares about, or any 8 bytes.
    mutating func double() -> Double {
        let specials: [Double] = [0, 1, -1, 0.5, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, Double(Float.greatestFiniteMagnitude),
                                  1e39, 0.99999999, -0.0, 0.9, 0.001, 1e15, 2]
        let b = byte()
        return b < 32 ? specials[Int(b) % specials.count] : Double(bitPattern: u64())
    }

    /// A malloc'd NUL-terminated string of up to 40 bytes from the input, or NULL; leaked into
    /// `allocations` for freeing.
    mutating func string(_ allocations: inout [UnsafeMutableRawPointer]) -> UnsafePointer<CChar>? {
        let length = Int(byte())
        if length >= 0xF0 { return nil }
        let n = length % 41
        let s = malloc(n + 1)!.assumingMemoryBound(to: CChar.self)
        for i in 0..<n { s[i] = CChar(bitPattern: byte()) }
        s[n] = 0
        allocations.append(UnsafeMutableRawPointer(s))
        return UnsafePointer(s)
    }
}

private let dummyStep: @convention(c) (UnsafePointer<descent_step_context>?, UnsafeMutablePointer<Float>?,
                                       UnsafePointer<Float>?, UnsafePointer<UnsafeMutablePointer<Float>?>?, Int64) -> Int32 = { _, _, _, _, _ in 0 }
private let dummyPrepare: @convention(c) (UnsafePointer<descent_step_context>?, UnsafeMutablePointer<Double>?) -> Int32 = { _, _ in 0 }

/// A copy of `value` in a malloc'd block of `claimed` bytes (at least `minimum`, the bytes any
/// host must read to learn the size): a struct as a plugin built against a header of that size
/// would lay it out. Bytes past the real struct are zero.
func place<T>(_ value: T, claimed: UInt32, minimum: Int, _ allocations: inout [UnsafeMutableRawPointer]) -> UnsafePointer<T> {
    let size = MemoryLayout<T>.size
    let bytes = max(minimum, min(Int(claimed), 4096))
    let block = calloc(1, bytes)!
    var copy = value
    withUnsafeBytes(of: &copy) { block.copyMemory(from: $0.baseAddress!, byteCount: min(size, bytes)) }
    allocations.append(block)
    return UnsafeRawPointer(block).assumingMemoryBound(to: T.self)
}

func makeHyperparameterTable(_ input: inout Input, count: UInt32,
                             _ allocations: inout [UnsafeMutableRawPointer]) -> UnsafePointer<descent_hparam_desc>? {
    if input.byte() % 16 == 0 { return nil }
    let real = MemoryLayout<descent_hparam_desc>.size
    // The host steps through the table by this stride, so the table really has entries that
    // large: at most 4096 bytes, to keep the memory a real plugin could have.
    let stride = min(input.structSize(real), 4096)
    let minimum = 8   // struct_size and flags
    // A stride the host accepts means `count` entries (at most the limit) of that size;
    // a smaller one means a single entry of that size, which the host must refuse after
    // reading its struct_size alone.
    let entries = Int(stride) >= real ? Int(min(count, DESCENT_PLUGIN_MAX_HPARAMS)) : 1
    let entrySize = max(minimum, Int(stride))
    let block = calloc(max(1, entries), entrySize)!
    allocations.append(block)
    for i in 0..<entries {
        var h = descent_hparam_desc()
        h.struct_size = stride
        h.flags = input.byte() % 4 == 0 ? input.u32() : UInt32(input.byte() % 8)
        h.name = input.string(&allocations)
        h.help = input.string(&allocations)
        h.default_value = input.double()
        h.min_value = input.double()
        h.max_value = input.double()
        withUnsafeBytes(of: &h) { (block + i * entrySize).copyMemory(from: $0.baseAddress!, byteCount: min(real, entrySize)) }
    }
    return UnsafeRawPointer(block).assumingMemoryBound(to: descent_hparam_desc.self)
}

func makeOptimizer(_ input: inout Input, _ allocations: inout [UnsafeMutableRawPointer]) -> UnsafePointer<descent_optimizer_desc>? {
    if input.byte() % 32 == 0 { return nil }
    var d = descent_optimizer_desc()
    let claimed = input.structSize(MemoryLayout<descent_optimizer_desc>.size)
    d.struct_size = claimed
    d.flags = UInt32(input.byte() % 4)
    d.name = input.string(&allocations)
    d.description = input.string(&allocations)
    d.hparam_count = input.count(limit: DESCENT_PLUGIN_MAX_HPARAMS)
    d.state_count = input.count(limit: DESCENT_PLUGIN_MAX_STATE)
    d.hparams = makeHyperparameterTable(&input, count: d.hparam_count, &allocations)
    let functions = input.byte()
    d.prepare = functions & 1 != 0 ? dummyPrepare : nil
    d.step = functions & 2 != 0 || functions == 0 ? dummyStep : nil
    return place(d, claimed: claimed, minimum: 4, &allocations)
}

func makePlugin(_ input: inout Input, _ allocations: inout [UnsafeMutableRawPointer]) -> UnsafePointer<descent_plugin> {
    var p = descent_plugin()
    p.abi_version = input.byte() % 8 == 0 ? input.u32() : DESCENT_PLUGIN_ABI_MAJOR << 16 | UInt32(input.byte())
    let claimed = input.structSize(MemoryLayout<descent_plugin>.size)
    p.struct_size = claimed
    p.name = input.string(&allocations)
    p.version = input.string(&allocations)
    p.optimizer_count = input.count(limit: 256)
    if input.byte() % 16 != 0 {
        // The list holds every entry the count claims, up to the host's limit of 256; at most
        // four distinct descriptors, repeated, so long lists stay cheap to build.
        let entries = Int(min(p.optimizer_count, 256))
        let distinct = (0..<min(entries, 4)).map { _ in makeOptimizer(&input, &allocations) }
        let list = calloc(max(1, entries), MemoryLayout<UnsafePointer<descent_optimizer_desc>?>.stride)!
            .assumingMemoryBound(to: UnsafePointer<descent_optimizer_desc>?.self)
        for i in 0..<entries { list[i] = distinct[i % distinct.count] }
        allocations.append(UnsafeMutableRawPointer(list))
        p.optimizers = UnsafePointer(list)
    }
    return place(p, claimed: claimed, minimum: 8, &allocations)
}

func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        fputs("fuzz: \(message())\n", stderr)
        abort()
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPluginDescriptor(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = Input(bytes: UnsafeBufferPointer(start: data, count: size))
    var allocations: [UnsafeMutableRawPointer] = []
    defer { allocations.forEach { free($0) } }
    let plugin = makePlugin(&input, &allocations)
    do {
        let kinds = try OptimizerRegistry.kinds(of: plugin, origin: "fuzz.so", library: nil)
        require(!kinds.isEmpty, "accepted a plugin with no optimizers")
        for kind in kinds {
            require(isValidIdentifier(kind.name), "accepted optimizer name '\(kind.name)'")
            require(kind.hyperparameters.last?.name == "check_finite", "check_finite is not last in \(kind.name)")
            for h in kind.hyperparameters {
                require(isValidIdentifier(h.name), "accepted hyperparameter name '\(h.name)'")
                do { try h.validate(h.defaultValue) } catch { require(false, "default of \(h.name) is invalid: \(error)") }
            }
            require(kind.describeJSON.hasPrefix("{\"name\":"), "describe JSON of \(kind.name)")
        }
    } catch let error as DescentError {
        require(error.status == .plugin, "status \(error.status) for \(error.message)")
        require(error.message.hasPrefix("fuzz.so: "), "message without its origin: \(error.message)")
    } catch {
        require(false, "an error that is not a DescentError: \(error)")
    }
    return 0
}
