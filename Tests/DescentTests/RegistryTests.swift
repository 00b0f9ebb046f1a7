// The optimizer registry: names, lookups, and the describe JSON (parsed with Foundation).
import Foundation
import Testing
@testable import Descent

/// True when no plugins can come in through the environment (then the names are exactly the built-ins).
let pluginPathUnset = ProcessInfo.processInfo.environment["DESCENT_PLUGIN_PATH"]?.isEmpty ?? true

@Suite("Registry")
struct RegistryTests {
    @Test("built-ins come first, in their documented order")
    func names() {
        let names = OptimizerRegistry.names
        #expect(Array(names.prefix(builtinNames.count)) == builtinNames)
        if pluginPathUnset { #expect(names == builtinNames) }
        #expect(Set(names).count == names.count, "names are unique")
    }

    @Test("kind(named:) finds every built-in", arguments: builtinNames)
    func kindNamed(_ name: String) throws {
        let kind = try OptimizerRegistry.kind(named: name)
        #expect(kind.name == name)
        #expect(kind.origin == "built-in")
        #expect(kind.stateCount == designStateCount[name])
        #expect(!kind.isFallible, "built-ins never fail, so they need no rollback copy")
        #expect(!kind.summary.isEmpty)
        // Defaults equal the documented ones (independently written in ReferenceOptimizer.swift).
        #expect(Dictionary(uniqueKeysWithValues: zip(kind.hyperparameters.map(\.name), kind.defaults))
                == designDefaults[name]!)
        #expect(kind.hyperparameters.filter { $0.name == "weight_decay" }.count == 1)
        #expect(kind.hyperparameters.filter { $0.name == "check_finite" }.count == 1)
        #expect(kind.index(of: "lr") == 0)
        #expect(kind.index(of: "nope") == nil)
    }

    @Test("an unknown name is notFound and lists the known ones and the plugin folders searched")
    func unknownName() {
        let known = OptimizerRegistry.names.joined(separator: ", ")
        let folders = OptimizerRegistry.pluginFolders.joined(separator: ", ")
        let message = "unknown optimizer 'adamax'; known: \(known); plugin folders searched: \(folders)"
        if pluginPathUnset {
            #expect(known == "sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw")
            #expect(OptimizerRegistry.pluginFolders == [OptimizerRegistry.installedPluginFolder!])
        }
        expectDescentError(.notFound, message) { _ = try OptimizerRegistry.kind(named: "adamax") }
        expectDescentError(.notFound, message) { _ = try Optimizer("adamax") }
        expectDescentError(.notFound, "unknown optimizer ''; known: \(known); plugin folders searched: \(folders)") {
            _ = try Optimizer("")
        }
        // Names are case-sensitive.
        expectDescentError(.notFound, "unknown optimizer 'Adam'; known: \(known); plugin folders searched: \(folders)") {
            _ = try Optimizer("Adam")
        }
    }

    // MARK: describe JSON

    /// Parses describeJSON into a dictionary, recording an issue when it is not valid JSON.
    func describe(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let json = try OptimizerRegistry.kind(named: name).describeJSON
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8))
        return try #require(object as? [String: Any], "not a JSON object: \(json)", sourceLocation: sourceLocation)
    }

    /// The hyperparameter entries by name, in order.
    func entries(_ d: [String: Any]) throws -> [(String, [String: Any])] {
        let list = try #require(d["hyperparameters"] as? [[String: Any]])
        return list.map { ($0["name"] as? String ?? "?", $0) }
    }

    func number(_ v: Any?) -> Double? { (v as? NSNumber)?.doubleValue }

    @Test("describe JSON parses for every built-in", arguments: builtinNames)
    func describeParses(_ name: String) throws {
        let d = try describe(name)
        #expect(d["name"] as? String == name)
        #expect(d["origin"] as? String == "built-in")
        #expect(number(d["state_buffers"]) == Double(designStateCount[name]!))
        #expect((d["description"] as? String)?.isEmpty == false)
        let hs = try entries(d)
        #expect(Set(hs.map(\.0)) == Set(designDefaults[name]!.keys))
        for (key, h) in hs {
            #expect(number(h["default"]) == designDefaults[name]![key], "\(name).\(key) default")
            #expect((h["help"] as? String)?.isEmpty == false, "\(name).\(key) help")
            for field in ["min", "max", "min_exclusive", "max_exclusive", "boolean", "range", "provided_by"] {
                #expect(h[field] != nil, "\(name).\(key) has \(field)")
            }
        }
    }

    @Test("adam: defaults, ranges, host-provided weight_decay")
    func describeAdam() throws {
        let d = try describe("adam")
        #expect(number(d["state_buffers"]) == 2)
        let hs = try entries(d)
        #expect(hs.map(\.0) == ["lr", "beta1", "beta2", "eps", "eps_hat", "weight_decay", "check_finite"])
        let h = Dictionary(uniqueKeysWithValues: hs)

        let lr = try #require(h["lr"])
        #expect(number(lr["default"]) == 0.001)
        #expect(number(lr["min"]) == 0)
        #expect(lr["max"] is NSNull, "an infinite maximum is null")
        #expect(lr["min_exclusive"] as? Bool == true)
        #expect(lr["max_exclusive"] as? Bool == false)
        #expect(lr["boolean"] as? Bool == false)
        #expect(lr["range"] as? String == "(0, inf)")
        #expect(lr["provided_by"] as? String == "optimizer")

        for beta in ["beta1", "beta2"] {
            let b = try #require(h[beta])
            #expect(number(b["min"]) == 0)
            #expect(number(b["max"]) == 1)
            #expect(b["min_exclusive"] as? Bool == false)
            #expect(b["max_exclusive"] as? Bool == true)
            #expect(b["range"] as? String == "[0, 1)")
        }
        #expect(number(h["beta1"]?["default"]) == 0.9)
        #expect(number(h["beta2"]?["default"]) == 0.999)

        let eps = try #require(h["eps"])
        #expect(number(eps["default"]) == 1e-7)
        #expect(eps["range"] as? String == "(0, inf)")

        let epsHat = try #require(h["eps_hat"])
        #expect(number(epsHat["default"]) == 1)
        #expect(epsHat["boolean"] as? Bool == true)
        #expect(epsHat["range"] as? String == "{0, 1}")

        let wd = try #require(h["weight_decay"])
        #expect(number(wd["default"]) == 0)
        #expect(number(wd["min"]) == 0)
        #expect(wd["max"] is NSNull)
        #expect(wd["range"] as? String == "[0, inf)")
        #expect(wd["provided_by"] as? String == "host")

        let cf = try #require(h["check_finite"])
        #expect(number(cf["default"]) == 1)
        #expect(cf["boolean"] as? Bool == true)
        #expect(cf["range"] as? String == "{0, 1}")
        #expect(cf["provided_by"] as? String == "host")
    }

    @Test("sgd: weight_decay is the host's L2")
    func describeSGD() throws {
        let d = try describe("sgd")
        #expect(number(d["state_buffers"]) == 0)
        let hs = try entries(d)
        #expect(hs.map(\.0) == ["lr", "weight_decay", "check_finite"])
        let h = Dictionary(uniqueKeysWithValues: hs)
        #expect(number(h["lr"]?["default"]) == 0.01)
        #expect(h["weight_decay"]?["provided_by"] as? String == "host")
        #expect(number(h["weight_decay"]?["default"]) == 0)
        #expect(try OptimizerRegistry.kind(named: "sgd").hostWeightDecayIndex == 1)
    }

    @Test("adamw: weight_decay is the optimizer's own (decoupled), default 0.01")
    func describeAdamW() throws {
        let d = try describe("adamw")
        let hs = try entries(d)
        #expect(hs.map(\.0) == ["lr", "beta1", "beta2", "eps", "weight_decay", "check_finite"])
        let h = Dictionary(uniqueKeysWithValues: hs)
        #expect(number(h["eps"]?["default"]) == 1e-8)
        let wd = try #require(h["weight_decay"])
        #expect(wd["provided_by"] as? String == "optimizer")
        #expect(number(wd["default"]) == 0.01)
        #expect(wd["range"] as? String == "[0, inf)")
        #expect(try OptimizerRegistry.kind(named: "adamw").hostWeightDecayIndex == nil)
        #expect(h["check_finite"]?["provided_by"] as? String == "host", "adamw still gets the host's check_finite")
    }

    @Test("every built-in but adamw gets the host's weight_decay, after its own entries", arguments: builtinNames)
    func hostWeightDecay(_ name: String) throws {
        let kind = try OptimizerRegistry.kind(named: name)
        // weight_decay (the host's or adamw's own) comes right before the host's check_finite.
        let index = try #require(kind.index(of: "weight_decay"))
        #expect(index == kind.hyperparameters.count - 2)
        let wd = kind.hyperparameters[index]
        #expect(wd.isHostProvided == (name != "adamw"))
        #expect(kind.hostWeightDecayIndex == (name == "adamw" ? nil : index))
        // Everything before it is the optimizer's own.
        #expect(kind.hyperparameters[..<index].allSatisfy { !$0.isHostProvided })
    }

    @Test("every built-in gets the host's check_finite, last", arguments: builtinNames)
    func hostCheckFinite(_ name: String) throws {
        let kind = try OptimizerRegistry.kind(named: name)
        let last = try #require(kind.hyperparameters.last)
        #expect(last.name == "check_finite")
        #expect(last.isHostProvided)
        #expect(last.isBoolean)
        #expect(last.defaultValue == 1)
        #expect(last == Hyperparameter.hostCheckFinite)
        #expect(kind.checkFiniteIndex == kind.hyperparameters.count - 1)
        #expect(kind.index(of: "check_finite") == kind.checkFiniteIndex)
    }

    @Test("describe JSON shows check_finite as the host's boolean, default 1, last", arguments: builtinNames)
    func describeCheckFinite(_ name: String) throws {
        let hs = try entries(try describe(name))
        let (key, cf) = try #require(hs.last)
        #expect(key == "check_finite")
        #expect(cf["provided_by"] as? String == "host")
        #expect(cf["boolean"] as? Bool == true)
        #expect(number(cf["default"]) == 1)
        #expect(number(cf["min"]) == 0)
        #expect(number(cf["max"]) == 1)
        #expect(cf["min_exclusive"] as? Bool == false)
        #expect(cf["max_exclusive"] as? Bool == false)
        #expect(cf["range"] as? String == "{0, 1}")
        #expect((cf["help"] as? String)?.isEmpty == false)
        #expect(hs.filter { $0.0 == "check_finite" }.count == 1)
    }

    @Test("JSON string escaping")
    func escaping() throws {
        let s = jsonString("a\"b\\c\nd\te\u{1}")
        #expect(s == #""a\"b\\c\nd\te\u0001""#)
        let back = try JSONSerialization.jsonObject(with: Data("[\(s)]".utf8)) as? [String]
        #expect(back == ["a\"b\\c\nd\te\u{1}"])
        #expect(jsonNumber(.infinity) == "null")
        #expect(jsonNumber(.nan) == "null")
        #expect(jsonNumber(0.5) == "0.5")
    }

    @Test("status names")
    func statusNames() {
        #expect(Status.ok.rawValue == 0)
        #expect(Status.invalidArgument.cName == "DESCENT_ERR_INVALID_ARGUMENT")
        #expect(Status.notFound.cName == "DESCENT_ERR_NOT_FOUND")
        #expect(Status.numeric.cName == "DESCENT_ERR_NUMERIC")
        #expect(Status.shapeMismatch.cName == "DESCENT_ERR_SHAPE")
        #expect(Set(Status.allCases.map(\.rawValue)).count == Status.allCases.count)
        #expect(DescentError(.numeric, "x").description == "DESCENT_ERR_NUMERIC: x")
    }
}
