/// The library version, semantic versioning. The single source of Descent's version: Package.swift
/// (SONAME, built-in plugin), CMakeLists.txt (libdescent.so.X.Y.Z, descent.pc, DescentConfigVersion)
/// and the Python package's metadata all read this line, so keep its form.
public let descentVersion = "0.1.0"

/// The same, as a NUL-terminated C string that lives as long as the process.
nonisolated(unsafe) public let descentVersionCString: UnsafePointer<CChar> = {
    let bytes = Array(descentVersion.utf8CString)
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    p.initialize(from: bytes, count: bytes.count)
    return UnsafePointer(p)
}()
