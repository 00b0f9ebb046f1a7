import Descent

/// Loads an optimizer plugin (a shared library built against descent_plugin.h) and registers
/// its optimizers, so `descent_optimizer_create` and `descent_net_set_optimizer` find them by
/// name. All of the library's optimizers are registered, or none.
///
/// `path` is a file path, absolute or relative to the working directory, also without a slash:
/// "adabelief.so" is the file in the working directory (dlopen alone would search the library
/// path for it). Loading the same library again succeeds and changes nothing. Plugins are never
/// unloaded. The first time any optimizer name is looked up, the libraries in the folders of
/// `descent_plugin_search_path` are loaded automatically.
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

/// Writes the folders searched for plugins, colon-separated and NUL-terminated, in the order
/// they are searched: the folders of the environment variable DESCENT_PLUGIN_PATH
/// (colon-separated, read once per process), then the plugin folder installed with the library,
/// `descent/plugins` next to the loaded libdescent.so (`<prefix>/lib/descent/plugins`, where
/// `cmake --install` puts the example plugins; found with dladdr, so it follows the library
/// wherever the prefix is). Each folder appears once. Every "*.so" in them is loaded, in name
/// order per folder, the first time any optimizer name is looked up (this call counts); a
/// library that fails to load is reported on stderr and skipped, and so is a folder of
/// DESCENT_PLUGIN_PATH that cannot be opened; a missing installed folder is not reported.
/// An unknown optimizer name's DESCENT_ERR_NOT_FOUND message lists these folders too.
///
/// Buffer contract as `descent_optimizer_names`.
/// Threads: safe from any thread.
@c(descent_plugin_search_path) public func descent_plugin_search_path(
    _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int64, _ needed: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded("descent_plugin_search_path") {
        try copyOut(OptimizerRegistry.pluginFolders.joined(separator: ":"), buf, cap, needed)
    }
}
