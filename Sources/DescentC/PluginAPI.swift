import Descent

/// Loads an optimizer plugin (a shared library built against descent_plugin.h) and registers
/// its optimizers, so `descent_optimizer_create` and `descent_net_set_optimizer` find them by
/// name. All of the library's optimizers are registered, or none.
///
/// Loading the same library again succeeds and changes nothing. Plugins are never unloaded.
/// Libraries in the folders of DESCENT_PLUGIN_PATH (colon-separated) are loaded automatically
/// the first time any optimizer name is looked up.
///
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (NULL or empty path), DESCENT_ERR_NOT_FOUND (no such
/// file), DESCENT_ERR_PLUGIN (not loadable, no descent_plugin_entry symbol, built for another
/// ABI major version (the message names both), an invalid descriptor, or an optimizer name
/// that is already taken by another library).
/// Threads: safe from any thread; loads are serialised.
@c(descent_plugin_load) public func descent_plugin_load(_ path: UnsafePointer<CChar>?) -> Int32 {
    guarded("descent_plugin_load") {
        try OptimizerRegistry.loadPlugin(path: try string(path, "path"))
    }
}

/// Loads every "*.so" in a folder, in name order, as `descent_plugin_load` does. Stops at the
/// first library that fails and returns its error; the ones loaded before it stay loaded.
///
/// Errors: as `descent_plugin_load`, and DESCENT_ERR_NOT_FOUND when the folder cannot be opened.
/// Threads: safe from any thread.
@c(descent_plugin_load_dir) public func descent_plugin_load_dir(_ dir: UnsafePointer<CChar>?) -> Int32 {
    guarded("descent_plugin_load_dir") {
        try OptimizerRegistry.loadPlugins(directory: try string(dir, "dir"))
    }
}
