// Deeply nested JSON on a thread with a small stack: network specs and checkpoint headers are
// "safe from any thread", and a 256 KB stack is a small but real one (musl's default is 128 KB).
// Before the JSON reader bounded its nesting, 500 levels overflowed such a stack and killed the
// test process with SIGSEGV; now each input below is refused with an exact message, or read
// when it nests just up to the limit.
import Testing
@testable import Descent

#if canImport(Glibc)
import Glibc
#endif

/// What the body running on the small stack reports back; read after the thread is joined.
private final class Outcome: @unchecked Sendable {
    var error: DescentError?
    var finished = false
}

private final class Body {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Runs `body` on a new thread with a stack of `stackBytes` and waits for it to end.
private func onSmallStack(_ stackBytes: Int = 256 * 1024, _ body: @escaping () -> Void) {
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    precondition(pthread_attr_setstacksize(&attributes, stackBytes) == 0, "pthread_attr_setstacksize")
    let context = Unmanaged.passRetained(Body(body)).toOpaque()
    var thread = pthread_t()
    let created = pthread_create(&thread, &attributes, { raw in
        Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, context)
    precondition(created == 0, "pthread_create")
    pthread_join(thread, nil)
}

/// The DescentError `body` throws on a 256 KB stack (nil when it succeeds); the test fails if
/// the body did not finish.
private func errorOnSmallStack(_ body: @escaping () throws -> Void,
                               sourceLocation: SourceLocation = #_sourceLocation) -> DescentError? {
    let outcome = Outcome()
    onSmallStack {
        do { try body() } catch let error as DescentError { outcome.error = error } catch {
            outcome.error = DescentError(.invalidArgument, "not a DescentError: \(error)")
        }
        outcome.finished = true
    }
    #expect(outcome.finished, sourceLocation: sourceLocation)
    return outcome.error
}

private func nested(_ depth: Int, _ open: String, _ close: String, inner: String = "") -> String {
    String(repeating: open, count: depth) + inner + String(repeating: close, count: depth)
}

private func littleEndian64(_ x: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: x >> (8 * UInt64($0))) } }

/// Writes a safetensors file with `header` and no data to a fresh temporary path.
private func headerOnlyFile(_ header: String) -> String {
    var template = Array("/tmp/descent-json-stack-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    precondition(fd >= 0, "mkstemp")
    let bytes = littleEndian64(UInt64(header.utf8.count)) + Array(header.utf8)
    precondition(write(fd, bytes, bytes.count) == bytes.count)
    close(fd)
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

@Suite struct JSONSmallStackTests {
    static let depthError = "nests arrays and objects more than 64 levels deep"

    @Test func deepSpecIsRefused() {
        // 500 arrays in 'sizes': the 65th level opens at byte 9 + 63.
        let arrays = #"{"sizes":"# + nested(500, "[", "]") + "}"
        #expect(errorOnSmallStack { _ = try NetworkSpec.parse(json: arrays) }
                == DescentError(.format, "the network spec \(Self.depthError) at line 1, column 73 (byte 72)"))
        // 500 objects: each level is {"a": (5 bytes), the 65th opens at byte 5 * 64.
        let objects = nested(500, #"{"a":"#, "}", inner: "1")
        #expect(errorOnSmallStack { _ = try Network(json: objects) }
                == DescentError(.format, "the network spec \(Self.depthError) at line 1, column 321 (byte 320)"))
    }

    /// Exactly at the limit the whole tree is built (the deepest recursion a spec can cause),
    /// and the spec is then refused for its content.
    @Test func specAtTheDepthLimitIsRead() {
        let spec = #"{"sizes":"# + nested(63, "[", "]") + "}"
        #expect(errorOnSmallStack { _ = try NetworkSpec.parse(json: spec) }
                == DescentError.invalid("spec field 'sizes[0]' must be a whole number in 1...16777216, got an array"))
        let objects = nested(64, #"{"a":"#, "}", inner: "1")
        #expect(errorOnSmallStack { _ = try NetworkSpec.parse(json: objects) }
                == DescentError.invalid("unknown spec field 'a'; known: sizes, activation, init, batchnorm, dropout, weight_decay, seed"))
    }

    @Test func deepCheckpointHeaderIsRefused() {
        let cases = [
            (#"{"a":"# + nested(500, "[", "]") + "}",
             "tensor 'a' must be an object with dtype, shape and data_offsets, got an array"),
            (nested(500, #"{"a":"#, "}", inner: "1"),
             "tensor 'a' has an unknown field 'a' (allowed: dtype, shape, data_offsets)"),
            (#"{"__metadata__":"# + nested(500, #"{"a":"#, "}", inner: "1") + "}",
             "__metadata__ 'a' must be a string (safetensors metadata is string to string), got an object"),
        ]
        for (header, message) in cases {
            let path = headerOnlyFile(header)
            defer { unlink(path) }
            #expect(errorOnSmallStack { _ = try Network.load(from: path) } == DescentError(.format, "'\(path)': \(message)"))
        }
    }

    /// A well-formed checkpoint header whose spec nests deeply.
    @Test func deepSpecInACheckpointIsRefused() {
        let spec = #"{"sizes":"# + nested(500, "[", "]") + "}"
        let header = #"{"__metadata__":{"format":"descent-checkpoint","format_version":"1","spec":\#(jsonString(spec))}}"#
        let path = headerOnlyFile(header)
        defer { unlink(path) }
        #expect(errorOnSmallStack { _ = try Network.load(from: path) }
                == DescentError(.format, "'\(path)': __metadata__ 'spec' is not a valid network spec: the network spec \(Self.depthError) at line 1, column 73 (byte 72)"))
    }
}
