// The safetensors header reader on hostile headers: it reads entry by entry (no tree of the
// whole text), so nesting, size and entry counts are refused early and in linear time, with
// exact messages; duplicate keys and over-long shapes are refused; headers of megabytes of
// real entries are read.
import Testing
@testable import Descent

/// The message of the error parseHeader throws for `header` ("" when it accepts it).
private func headerError(_ header: String, dataSize: Int = 0) -> String {
    do {
        _ = try SafeTensors.parseHeader(Array(header.utf8), dataSize: dataSize)
        return ""
    } catch let error as DescentError {
        return error.status == .format ? error.message : "status \(error.status): \(error.message)"
    } catch {
        return "not a DescentError: \(error)"
    }
}

/// `count` zero-size F32 tensors "t0", "t1", ...: valid safetensors with an empty data section.
private func emptyTensors(_ count: Int) -> String {
    "{" + (0..<count).map { #""t\#($0)":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}"# }.joined(separator: ",") + "}"
}

private func nested(_ depth: Int, _ open: String, _ close: String) -> String {
    String(repeating: open, count: depth) + String(repeating: close, count: depth)
}

@Suite struct SafeTensorsHeaderTests {
    static let entry = #"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#

    @Test func aValidHeaderIsRead() throws {
        let header = #"{"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}, "__metadata__":{"k":"v\n"},"a":\#(Self.entry)}  "#
        let (tensors, metadata) = try SafeTensors.parseHeader(Array(header.utf8), dataSize: 12)
        #expect(tensors == [.init(name: "a", dtype: "F32", shape: [2], begin: 0, end: 8),
                            .init(name: "b", dtype: "F32", shape: [1], begin: 8, end: 12)])
        #expect(metadata == ["k": "v\n"])
    }

    @Test(arguments: [
        // the same name twice, anywhere in the header
        (#"{"a":\#(entry),"a":\#(entry)}"#, #"the header has the key "a" twice in one object at line 1, column 55 (byte 54)"#),
        (#"{"__metadata__":{},"__metadata__":{}}"#, #"the header has the key "__metadata__" twice in one object at line 1, column 20 (byte 19)"#),
        (#"{"__metadata__":{"k":"1","k":"2"}}"#, #"the header has the key "k" twice in one object at line 1, column 26 (byte 25)"#),
        (#"{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
         #"the header has the key "dtype" twice in one object at line 1, column 21 (byte 20)"#),
        (#"{"a":{"shape":[2],"shape":[2]}}"#, #"the header has the key "shape" twice in one object at line 1, column 19 (byte 18)"#),
        (#"{"a":{"data_offsets":[0,8],"data_offsets":[0,8]}}"#,
         #"the header has the key "data_offsets" twice in one object at line 1, column 28 (byte 27)"#),
        // JSON errors, with where they are
        (#"{"a":\#(entry),}"#, "the header is not valid JSON: expected a string key after ',' in an object, found '}' at line 1, column 55 (byte 54)"),
        (#"{"a":\#(entry)} x"#, "the header is not valid JSON: expected the end of the text after the value, found 'x' at line 1, column 56 (byte 55)"),
        (#"{"__metadata__":{"k":"\q"}}"#,
         #"the header is not valid JSON: invalid escape: '\' may be followed by one of " \ / b f n r t u, found 'q' at line 1, column 24 (byte 23)"#),
        (#"{"a":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}"#,
         "the header is not valid JSON: leading zeros are not allowed in a number at line 1, column 30 (byte 29)"),
        // shapes and offsets of the wrong length are refused before more is kept
        (#"{"a":{"dtype":"F32","shape":[\#(Array(repeating: "1", count: 65).joined(separator: ","))],"data_offsets":[0,4]}}"#,
         "tensor 'a': shape has more than 64 dimensions"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}"#, "tensor 'a': data_offsets must be [begin, end], got more than 2 numbers"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, "tensor 'a': data_offsets must be [begin, end], got 1 numbers"),
        (#"{"a":{"dtype":"F32","shape":[2,[3]],"data_offsets":[0,8]}}"#, "tensor 'a': shape[1] must be a whole number in 0...2^53, got an array"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}}"#, "tensor 'a': data_offsets[1] must be a whole number in 0...2^53, got -8"),
    ])
    func refused(_ header: String, _ expected: String) {
        #expect(headerError(header, dataSize: 8) == expected)
    }

    /// 64 dimensions is the most a shape may have.
    @Test func sixtyFourDimensions() throws {
        let header = #"{"a":{"dtype":"F32","shape":[\#(Array(repeating: "1", count: 64).joined(separator: ","))],"data_offsets":[0,4]}}"#
        let (tensors, _) = try SafeTensors.parseHeader(Array(header.utf8), dataSize: 4)
        #expect(tensors.first?.shape == Array(repeating: 1, count: 64))
    }

    /// The entry limits, exactly at and one past them.
    @Test func entryLimits() throws {
        #expect(SafeTensors.maxEntries == 100_000)
        let (tensors, _) = try SafeTensors.parseHeader(Array(emptyTensors(100_000).utf8), dataSize: 0)
        #expect(tensors.count == 100_000)
        #expect(headerError(emptyTensors(100_001)) == "the header has more than 100000 tensors, more than Descent reads")

        let entries = { (count: Int) in #"{"__metadata__":{"# + (0..<count).map { #""k\#($0)":"""# }.joined(separator: ",") + "}}" }
        let (_, metadata) = try SafeTensors.parseHeader(Array(entries(100_000).utf8), dataSize: 0)
        #expect(metadata?.count == 100_000)
        #expect(headerError(entries(100_001)) == "__metadata__ has more than 100000 entries, more than Descent reads")
    }

    /// 16 KB of four 511-deep blocks (which took 25 s to refuse before) is refused at the first
    /// entry; whatever the nesting, no entry can go deeper than the header's 3 levels. The
    /// bound is generous: it only guards against superlinear work.
    @Test func hostileHeadersAreRefusedQuickly() {
        let blocks = [nested(511, "[", "]"), nested(511, "{\"a\":", "}")]
        let clock = ContinuousClock()
        for block in blocks {
            var header = "{" + (0..<4).map { #""b\#($0)":\#(block)"# }.joined(separator: ",") + "}"
            header += String(repeating: " ", count: 16_384 - header.utf8.count)
            let elapsed = clock.measure {
                #expect(headerError(header).hasPrefix("tensor 'b0' "))
            }
            #expect(elapsed < .seconds(1), "\(elapsed)")
        }
        // nested metadata: refused at its first value
        let metadata = #"{"__metadata__":{"k":"# + nested(511, "[", "]") + "}}"
        #expect(headerError(metadata) == "__metadata__ 'k' must be a string (safetensors metadata is string to string), got an array")
    }

    /// Megabytes of real entries are read in one linear pass; the bound is generous (the work
    /// is well under a second even in a debug build), against superlinear behaviour.
    @Test func megabytesOfEntries() throws {
        let header = emptyTensors(100_000)  // 5.8 MB, the most tensors accepted
        #expect(header.utf8.count > 5_000_000)
        let clock = ContinuousClock()
        var count = 0
        let elapsed = try clock.measure { count = try SafeTensors.parseHeader(Array(header.utf8), dataSize: 0).tensors.count }
        #expect(count == 100_000)
        #expect(elapsed < .seconds(30), "\(elapsed)")
        // one 4 MB metadata string
        let text = String(repeating: "0123456789abcdef", count: 250_000)
        let (_, metadata) = try SafeTensors.parseHeader(Array(#"{"__metadata__":{"spec":"\#(text)"}}"#.utf8), dataSize: 0)
        #expect(metadata?["spec"] == text)
    }
}
