// A plugin struct whose struct_size is smaller than this header's: the host reads only the
// bytes struct_size covers and refuses it, never reading past them (descent_plugin.h: "A host
// reads a field only when the plugin's struct_size covers it"). Found by
// tests/fuzz/fuzz_plugin_descriptor: the validator copied the whole struct before checking the
// size. Each struct here ends exactly at an inaccessible page, so any read past struct_size
// faults and fails the test run.
import CDescentKernels
import Testing
@testable import Descent

#if canImport(Glibc)
import Glibc
#endif

/// `bytes` bytes at the very end of a readable page that is followed by an inaccessible one.
final class PageEnd {
    private let base: UnsafeMutableRawPointer
    private let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start: UnsafeMutableRawPointer

    init(bytes: Int) {
        base = mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        precondition(base != MAP_FAILED && mprotect(base + page, page, PROT_NONE) == 0, "guard page")
        start = base + page - bytes
    }

    deinit { munmap(base, 2 * page) }

    /// The first `bytes` bytes of `value`, placed so that they end at the guard page.
    static func holding<T>(_ value: T, bytes: Int) -> PageEnd {
        let end = PageEnd(bytes: bytes)
        withUnsafeBytes(of: value) { end.start.copyMemory(from: $0.baseAddress!, byteCount: bytes) }
        return end
    }
}

private let noStep: @convention(c) (UnsafePointer<descent_step_context>?, UnsafeMutablePointer<Float>?,
                                    UnsafePointer<Float>?, UnsafePointer<UnsafeMutablePointer<Float>?>?, Int64) -> Int32 = { _, _, _, _, _ in 0 }

/// The plugin message for `origin` "small.so".
private func refusal(_ body: () throws -> Void) -> String? {
    do { try body() } catch let error as DescentError where error.status == .plugin { return error.message } catch {}
    return nil
}

@Suite("Plugin struct_size smaller than the header's")
struct PluginStructSizeTests {
    @Test("a descent_plugin of 8 bytes is refused after reading those 8")
    func smallPlugin() {
        var p = descent_plugin()
        p.abi_version = dk_plugin_abi_version
        p.struct_size = 8
        let memory = PageEnd.holding(p, bytes: 8)
        let message = refusal {
            _ = try OptimizerRegistry.kinds(of: memory.start.assumingMemoryBound(to: descent_plugin.self),
                                            origin: "small.so", library: nil)
        }
        #expect(message == "small.so: descent_plugin struct_size 8 is smaller than ABI 1.0's \(MemoryLayout<descent_plugin>.size)")
    }

    @Test("an optimizer descriptor of 8 bytes is refused after reading those 8")
    func smallDescriptor() {
        var d = descent_optimizer_desc()
        d.struct_size = 8
        let memory = PageEnd.holding(d, bytes: 8)
        let message = refusal {
            _ = try makeOptimizerKind(memory.start.assumingMemoryBound(to: descent_optimizer_desc.self),
                                      origin: "small.so", library: nil)
        }
        #expect(message == "small.so: optimizer descriptor struct_size 8 is smaller than ABI 1.0's \(MemoryLayout<descent_optimizer_desc>.size)")
    }

    @Test("a hyperparameter table whose entry has 8 bytes is refused after reading those 8")
    func smallHyperparameter() {
        var h = descent_hparam_desc()
        h.struct_size = 8
        let table = PageEnd.holding(h, bytes: 8)
        let message = "tiny".withCString { name in
            var d = descent_optimizer_desc()
            d.struct_size = UInt32(MemoryLayout<descent_optimizer_desc>.size)
            d.name = name
            d.hparam_count = 1
            d.hparams = UnsafePointer(table.start.assumingMemoryBound(to: descent_hparam_desc.self))
            d.step = noStep
            return withUnsafePointer(to: &d) { desc in
                refusal { _ = try makeOptimizerKind(desc, origin: "small.so", library: nil) }
            }
        }
        #expect(message == "small.so: optimizer 'tiny': hyperparameter struct_size 8 is smaller than ABI 1.0's \(MemoryLayout<descent_hparam_desc>.size)")
    }
}
