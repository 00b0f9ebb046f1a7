// The network spec's JSON layer: errors that point, the 1 MiB size limit exactly at and one
// past it, and strict JSON (duplicate fields are refused rather than one silently winning).
import Testing
@testable import Descent

@Suite struct NetworkSpecJSONTests {

    @Test(arguments: [
        (#"{"sizes":[784,10]]"#,
         "the network spec is not valid JSON: expected ',' or '}' after an object member, found ']' at line 1, column 18 (byte 17)"),
        ("{\n  \"sizes\": [784, 10],\n  \"dropout\": .5\n}",
         "the network spec is not valid JSON: expected a value, found '.' at line 3, column 14 (byte 37)"),
        (#"{"sizes":[3,2],}"#,
         "the network spec is not valid JSON: expected a string key after ',' in an object, found '}' at line 1, column 16 (byte 15)"),
        (#"{"sizes":[3,2],"seed":07}"#, "the network spec is not valid JSON: leading zeros are not allowed in a number at line 1, column 23 (byte 22)"),
        (#"{"sizes":[3,2],"activation":"relu","activation":"tanh"}"#,
         #"the network spec has the key "activation" twice in one object at line 1, column 36 (byte 35)"#),
        (#"{"sizes":[3,2]} {"sizes":[4,2]}"#,
         "the network spec is not valid JSON: expected the end of the text after the value, found '{' at line 1, column 17 (byte 16)"),
    ])
    func jsonErrorsPoint(_ json: String, _ message: String) {
        #expect(throws: DescentError(.format, message)) { try NetworkSpec.parse(json: json) }
        #expect(throws: DescentError(.format, message)) { try Network(json: json) }
    }

    @Test func sizeLimit() throws {
        #expect(NetworkSpec.maxJSONBytes == 1 << 20)
        let spec = #"{"sizes":[3,2]}"#
        let atLimit = spec + String(repeating: " ", count: (1 << 20) - spec.utf8.count)
        #expect(try NetworkSpec.parse(json: atLimit).sizes == [3, 2])
        #expect(throws: DescentError.invalid("the network spec is 1048577 bytes long; at most 1048576 are allowed")) {
            try NetworkSpec.parse(json: atLimit + " ")
        }
    }
}
