import Testing
@testable import Descent

@Test func builtinsAreRegistered() {
    #expect(OptimizerRegistry.names == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"])
}
