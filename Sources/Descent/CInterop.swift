// Small bridges from C data to Swift, shared by the checkpoint, plugin and optimizer code.

#if canImport(Glibc)
import Glibc
#endif

/// The names in a directory stream, "." and ".." included, in readdir's order; closes the stream.
func entryNames(closing stream: OpaquePointer) -> [String] {
    defer { closedir(stream) }
    var names: [String] = []
    while let entry = readdir(stream) { names.append(String(cCharArray: entry.pointee.d_name)) }
    return names
}

extension String {
    /// The NUL-terminated text of a fixed-size C char array (which Swift imports as a tuple).
    init<CharArray>(cCharArray array: CharArray) {
        self = withUnsafeBytes(of: array) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    }
}
