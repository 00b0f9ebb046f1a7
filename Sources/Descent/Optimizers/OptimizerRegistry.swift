import CDescentKernels
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Every optimizer Descent knows by name: the built-ins, then plugins in load order.
///
/// Safe to use from any thread: one lock guards the table. On first use the plugins in the
/// folders of `DESCENT_PLUGIN_PATH` (colon-separated) are loaded, then those in the folder
/// installed with the library (`installedPluginFolder`), as CLAP hosts search their standard
/// folders after the user's.
public enum OptimizerRegistry {
    struct Table {
        var kinds: [OptimizerKind] = []
        var pluginPathScanned = false
        /// The folders the first-use scan searched, in order.
        var pluginFolders: [String] = []
    }

    static let table: Mutex<Table> = {
        do {
            return Mutex(Table(kinds: try kinds(of: dk_builtin_plugin(), origin: "built-in", library: nil)))
        } catch {
            // The built-ins are checked by the tests; a failure here is a build defect.
            fatalError("built-in optimizer table is invalid: \(error)")
        }
    }()

    /// Runs `body` on the table, after the first-use scan of `DESCENT_PLUGIN_PATH`.
    static func withTable<R>(_ body: (inout Table) throws -> R) rethrows -> R {
        try table.withLock { t in
            if !t.pluginPathScanned {
                t.pluginPathScanned = true
                scanPluginPath(into: &t)
            }
            return try body(&t)
        }
    }

    /// Names of all registered optimizers, built-ins first.
    public static var names: [String] { withTable { $0.kinds.map(\.name) } }

    /// The optimizer registered under `name`. Unknown: `.notFound`, naming the known optimizers
    /// and the plugin folders searched.
    public static func kind(named name: String) throws -> OptimizerKind {
        try withTable { t in
            guard let kind = t.kinds.first(where: { $0.name == name }) else {
                let folders = t.pluginFolders.isEmpty ? "none" : t.pluginFolders.joined(separator: ", ")
                throw DescentError(.notFound,
                    "unknown optimizer '\(name)'; known: \(t.kinds.map(\.name).joined(separator: ", "))"
                        + "; plugin folders searched: \(folders)")
            }
            return kind
        }
    }

    /// The folders searched for plugins on first use, in order: those of `DESCENT_PLUGIN_PATH`,
    /// then `installedPluginFolder` (each once; folders that do not exist included).
    public static var pluginFolders: [String] { withTable { $0.pluginFolders } }

    /// `descent/plugins` next to the loaded library: `<prefix>/lib/descent/plugins` for an
    /// installed libdescent.so, where `cmake --install` puts the example plugins. Nil when the
    /// library's own file cannot be found.
    public static var installedPluginFolder: String? {
        guard let directory = dk_library_directory() else { return nil }
        defer { free(directory) }
        return String(cString: directory) + "/descent/plugins"
    }

    /// Loads a plugin library and registers its optimizers, all or none. Loading the same
    /// library again is a no-op; an optimizer name that another library registered is an error.
    /// Returns the names it provides.
    @discardableResult
    public static func loadPlugin(path: String) throws -> [String] {
        try withTable { t in try load(path: path, into: &t) }
    }

    /// Loads every `*.so` in `directory` (sorted by name). Returns the names they provide.
    /// Stops at the first library that fails; those loaded before it stay loaded.
    @discardableResult
    public static func loadPlugins(directory: String) throws -> [String] {
        try withTable { t in
            var names: [String] = []
            for path in try sharedLibraries(in: directory) { names += try load(path: path, into: &t) }
            return names
        }
    }

    // MARK: - internals

    static func kinds(of plugin: UnsafePointer<descent_plugin>, origin: String,
                      library: UnsafeMutableRawPointer?) throws -> [OptimizerKind] {
        // Only the two leading fields are read until struct_size says the rest exists.
        let abiVersion = plugin.pointer(to: \.abi_version)!.pointee
        let structSize = plugin.pointer(to: \.struct_size)!.pointee
        let hostMajor = DESCENT_PLUGIN_ABI_MAJOR
        let major = abiVersion >> 16, minor = abiVersion & 0xffff
        guard major == hostMajor else {
            throw DescentError(.plugin,
                "\(origin): built for plugin ABI \(major).\(minor), but this host speaks ABI \(hostMajor).\(DESCENT_PLUGIN_ABI_MINOR)")
        }
        let needed = MemoryLayout<descent_plugin>.size
        guard Int(structSize) >= needed else {
            throw DescentError(.plugin, "\(origin): descent_plugin struct_size \(structSize) is smaller than ABI 1.0's \(needed)")
        }
        let p = plugin.pointee
        guard p.optimizer_count >= 1, p.optimizer_count <= 256, let list = p.optimizers else {
            throw DescentError(.plugin, "\(origin): declares \(p.optimizer_count) optimizers; need 1 to 256 and a list")
        }
        var kinds: [OptimizerKind] = []
        for i in 0..<Int(p.optimizer_count) {
            let kind = try makeOptimizerKind(list[i], origin: origin, library: library)
            guard !kinds.contains(where: { $0.name == kind.name }) else {
                throw DescentError(.plugin, "\(origin): optimizer '\(kind.name)' appears twice")
            }
            kinds.append(kind)
        }
        return kinds
    }

    static func load(path: String, into t: inout Table) throws -> [String] {
        guard !path.isEmpty else { throw DescentError.invalid("path is empty") }
        // dlopen searches the library path for a name without a slash, where access() looks in
        // the working directory: "./" makes both mean the file the caller named.
        let file = path.contains("/") ? path : "./" + path
        guard access(file, F_OK) == 0 else { throw DescentError(.notFound, "no such file: \(path)") }
        guard let handle = dlopen(file, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
            throw DescentError(.plugin, "cannot load '\(path)': \(reason)")
        }
        // The same library loaded twice: dlopen hands back the same handle.
        if t.kinds.contains(where: { $0.library == handle }) {
            dlclose(handle)
            return t.kinds.filter { $0.library == handle }.map { $0.name }
        }
        do {
            guard let symbol = dlsym(handle, DESCENT_PLUGIN_ENTRY_SYMBOL) else {
                throw DescentError(.plugin, "'\(path)' is not a Descent plugin: it does not export \(DESCENT_PLUGIN_ENTRY_SYMBOL)")
            }
            let entry = unsafeBitCast(symbol, to: descent_plugin_entry_fn.self)
            guard let plugin = withUnsafePointer(to: &pluginHost, { entry($0) }) else {
                throw DescentError(.plugin, "'\(path)' refused to load (its entry point returned NULL)")
            }
            let loaded = try kinds(of: plugin, origin: path, library: handle)
            for kind in loaded {
                if let taken = t.kinds.first(where: { $0.name == kind.name }) {
                    throw DescentError(.plugin,
                        "\(path): optimizer '\(kind.name)' collides with the one from \(taken.origin)")
                }
            }
            t.kinds += loaded
            return loaded.map(\.name)
        } catch {
            dlclose(handle)
            throw error
        }
    }

    static func sharedLibraries(in directory: String) throws -> [String] {
        guard !directory.isEmpty else { throw DescentError.invalid("directory is empty") }
        guard let dir = opendir(directory) else {
            throw DescentError(.notFound, "cannot open directory '\(directory)': \(String(cString: strerror(errno)))")
        }
        let folder = directory.hasSuffix("/") ? directory : directory + "/"
        return entryNames(closing: dir).filter { $0.hasSuffix(".so") }.map { folder + $0 }.sorted()
    }

    /// Plugins from the folders of DESCENT_PLUGIN_PATH, then from the installed folder. A
    /// failure is reported on stderr and the scan goes on: there is no caller to return it to
    /// on first use. The installed folder is optional: its absence is not reported.
    static func scanPluginPath(into t: inout Table) {
        let listed = getenv("DESCENT_PLUGIN_PATH").map { String(cString: $0).split(separator: ":") } ?? []   // no empty folders
        var folders = listed.map { (path: String($0), source: "DESCENT_PLUGIN_PATH") }
        if let installed = installedPluginFolder { folders.append((installed, "installed plugin folder")) }
        for (directory, source) in folders where !t.pluginFolders.contains(directory) {
            t.pluginFolders.append(directory)
            if source != "DESCENT_PLUGIN_PATH", access(directory, F_OK) != 0 { continue }
            do {
                for path in try sharedLibraries(in: directory) {
                    do { _ = try load(path: path, into: &t) } catch { warn("\(source): \(error)") }
                }
            } catch { warn("\(source): \(error)") }
        }
    }
}

func warn(_ message: String) {
    dk_write_stderr("descent: \(message)")
}

/// What plugins see of the host: its ABI version and a log function.
nonisolated(unsafe) var pluginHost = descent_host(
    struct_size: UInt32(MemoryLayout<descent_host>.size), abi_version: dk_plugin_abi_version,
    host_version: descentVersionCString,
    log: { level, message in
        let label = ["debug", "info", "warning", "error"][Int(max(0, min(3, level)))]
        dk_write_stderr("descent plugin \(label): \(message.map { String(cString: $0) } ?? "")")
    })
