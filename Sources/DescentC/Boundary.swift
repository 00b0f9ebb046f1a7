import CDescentKernels
import Descent

// How every @c function crosses the boundary: Swift errors become a status plus the
// thread-local message "function: problem"; nothing throws or traps across it.

/// Runs `body`; on a thrown error records "function: message" and returns its status.
@inline(__always)
func guarded(_ function: StaticString, _ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return Status.ok.rawValue
    } catch let error as DescentError {
        dk_error_set("\(function): \(error.message)")
        return error.status.rawValue
    } catch {
        dk_error_set("\(function): \(error)")
        return Status.invalidArgument.rawValue
    }
}

/// A non-NULL C string argument as a Swift string.
func string(_ pointer: UnsafePointer<CChar>?, _ argument: String) throws -> String {
    String(cString: try required(pointer, argument))
}

/// A required pointer argument.
func required<T>(_ pointer: T?, _ argument: String) throws -> T {
    guard let pointer else { throw DescentError(.invalidArgument, "\(argument) is NULL") }
    return pointer
}

/// Writes `text` and its NUL into a caller's buffer (snprintf-like contract, without
/// truncation): `*needed` always receives strlen(text) + 1. With buf == NULL and cap == 0 the
/// call only measures. A buffer too small is left untouched and the call fails.
func copyOut(_ text: String, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int64,
             _ needed: UnsafeMutablePointer<Int64>?) throws {
    let bytes = Array(text.utf8CString)
    needed?.pointee = Int64(bytes.count)
    guard cap >= 0 else { throw DescentError(.invalidArgument, "cap is \(cap): must be >= 0") }
    if buf == nil {
        guard cap == 0 else { throw DescentError(.invalidArgument, "buf is NULL but cap is \(cap)") }
        guard needed != nil else { throw DescentError(.invalidArgument, "buf and needed are both NULL") }
        return
    }
    guard cap >= Int64(bytes.count) else {
        throw DescentError(.bufferTooSmall, "cap is \(cap) bytes but \(bytes.count) are needed")
    }
    bytes.withUnsafeBufferPointer { buf!.update(from: $0.baseAddress!, count: bytes.count) }
}

/// An owned Swift object behind a C handle.
func box<T: AnyObject, Handle>(_ object: T, as: Handle.Type) -> UnsafeMutablePointer<Handle> {
    Unmanaged.passRetained(object).toOpaque().assumingMemoryBound(to: Handle.self)
}

/// A Swift object behind a C handle that something else owns (a network's optimizer): the
/// same pointer an owned handle would be, without a retain.
func borrow<T: AnyObject, Handle>(_ object: T, as: Handle.Type) -> UnsafeMutablePointer<Handle> {
    Unmanaged.passUnretained(object).toOpaque().assumingMemoryBound(to: Handle.self)
}

func unbox<T: AnyObject, Handle>(_ handle: UnsafePointer<Handle>, as: T.Type) -> T {
    Unmanaged<T>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

func release<T: AnyObject, Handle>(_ handle: UnsafePointer<Handle>, as: T.Type) {
    Unmanaged<T>.fromOpaque(UnsafeRawPointer(handle)).release()
}
