// Reading JSON through a small window (JSONInput) must give exactly what reading it from
// memory gives: the same values, the same errors at the same positions, wherever the
// window's edges fall (inside a string, an escape, a UTF-8 sequence, a number, a literal).
import Testing
@testable import Descent

/// What parsing `bytes` gives, as text: the value, or the error's status and message.
private func outcome(_ bytes: [UInt8], window: Int?) -> String {
    do {
        let value: JSONValue
        if let window {
            let input = JSONInput(count: bytes.count, windowSize: window) { buffer, at in
                precondition(at >= 0 && at + buffer.count <= bytes.count, "read outside the text")
                bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[at..<(at + buffer.count)])) }
            }
            var parser = JSONParser(input, what: "the text")
            value = try parser.value()
            try parser.end()
        } else {
            value = try JSONValue.parse(bytes, what: "the text")
        }
        return "\(value)"
    } catch {
        return "\(error)"
    }
}

/// Every text of JSONParserTests and a few long ones.
private let texts: [[UInt8]] = {
    var all = JSONParserTests.errors.map { Array($0.0.utf8) }
    all += JSONParserTests.readable.map { Array($0.utf8) }
    all += JSONParserTests.byteCases.map(\.0)
    all.append(Array(("\"" + String(repeating: "é€😀x", count: 50) + "\"").utf8))
    all.append(Array(("[\"" + String(repeating: #"\u00e9\n\uD83D\uDE00"#, count: 20) + "\", 1.5e-3, true, null]").utf8))
    all.append(Array(("{\"k\": " + String(repeating: "7", count: 100) + ".25e1}").utf8))
    all.append(Array((String(repeating: "[", count: 64) + String(repeating: "]", count: 64)).utf8))
    all.append(Array((String(repeating: "[", count: 65) + String(repeating: "]", count: 65)).utf8))
    return all
}()

@Suite struct JSONInputTests {

    /// Each text, shifted by 0-16 spaces, through windows of 16 to 40 bytes.
    @Test func windowsReadLikeMemory() {
        var compared = 0
        for text in texts {
            for pad in 0...16 {
                let shifted = Array(repeating: UInt8(ascii: " "), count: pad) + text
                let expected = outcome(shifted, window: nil)
                for window in [16, 17, 19, 23, 40] {
                    let got = outcome(shifted, window: window)
                    if got != expected {
                        Issue.record("window \(window), pad \(pad): \(got)\nfrom memory: \(expected)")
                        return
                    }
                    compared += 1
                }
            }
        }
        #expect(compared == texts.count * 17 * 5)
    }

    /// A header read through a window: the same tensors and metadata as from memory, and a
    /// string many windows long comes out whole.
    @Test func headersThroughAWindow() throws {
        let long = String(repeating: "0123456789abcdé", count: 20_000)
        let header = "{" + (0..<300).map { #""t\#($0)":{"dtype":"F32","shape":[1],"data_offsets":[\#(4 * $0),\#(4 * $0 + 4)]}"# }
            .joined(separator: ",") + #","__metadata__":{"long":"\#(long)","escaped":"a\"b\u00e9"}}"#
        let bytes = Array(header.utf8)
        var reads = 0
        let input = JSONInput(count: bytes.count, windowSize: 64) { buffer, at in
            reads += 1
            bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[at..<(at + buffer.count)])) }
        }
        let windowed = try SafeTensors.parseHeader(input, dataSize: 1200)
        let inMemory = try SafeTensors.parseHeader(bytes, dataSize: 1200)
        #expect(windowed.tensors == inMemory.tensors)
        #expect(windowed.tensors.count == 300)
        #expect(windowed.metadata == ["long": long, "escaped": "a\"bé"])
        #expect(reads >= bytes.count / 64, "read through the window, \(reads) reads")
    }

    /// A bad header is refused after reading only up to its problem.
    @Test func refusedAfterReadingUpToTheProblem() {
        let header = Array((#"{"a":[1],"# + String(repeating: " ", count: 1_000_000) + "}").utf8)
        var bytesRead = 0
        let input = JSONInput(count: header.count, windowSize: 4096) { buffer, at in
            bytesRead += buffer.count
            header.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[at..<(at + buffer.count)])) }
        }
        #expect(throws: DescentError(.format, "tensor 'a' must be an object with dtype, shape and data_offsets, got an array")) {
            try SafeTensors.parseHeader(input, dataSize: 0)
        }
        #expect(bytesRead == 4096)
    }
}
