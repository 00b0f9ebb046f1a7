import CDescentKernels
import Descent

#if canImport(Glibc)
import Glibc
#endif

/// The library's version, e.g. "0.1.0" (semantic versioning).
///
/// Memory: a static string owned by the library; do not free it.
/// Threads: safe from any thread.
@c(descent_version) public func descent_version() -> UnsafePointer<CChar>? {
    descentVersionCString
}

/// The message of the most recent failing call made on this thread, e.g.
/// "descent_optimizer_step: grads[2] contains NaN at index 17". "" before any failure.
/// Successful calls do not clear it.
///
/// Memory: owned by the library, valid until the next failing call on this thread; copy it
/// to keep it. Threads: each thread has its own message.
@c(descent_last_error) public func descent_last_error() -> UnsafePointer<CChar>? {
    dk_error_get()
}

/// The C name of a status code, e.g. "DESCENT_ERR_NUMERIC"; "DESCENT_ERR_UNKNOWN" for codes
/// this version does not know.
///
/// Memory: a static string; do not free it. Threads: safe from any thread.
@c(descent_status_name) public func descent_status_name(_ status: Int32) -> UnsafePointer<CChar>? {
    statusNames[Int(status)] ?? statusNames[-1]!
}

/// By code, -1 for codes this version does not know; copied once, never freed.
nonisolated(unsafe) private let statusNames = Dictionary(uniqueKeysWithValues:
    (Status.allCases.map { (Int($0.rawValue), $0.cName) } + [(-1, "DESCENT_ERR_UNKNOWN")]).map { ($0, UnsafePointer(strdup($1)!)) })

/// Sets how many threads the parallel kernels use: n >= 1 sets it, n == 0 restores the
/// default (DESCENT_NUM_THREADS if set, else the number of cores). Results do not depend on
/// the count: every element is computed by the same arithmetic whichever thread runs it.
///
/// Returns DESCENT_OK, or DESCENT_ERR_INVALID_ARGUMENT for n < 0 or n > 1024.
/// Threads: a process-wide setting, safe to call from any thread; steps already running
/// keep the count they started with.
@c(descent_set_num_threads) public func descent_set_num_threads(_ n: Int32) -> Int32 {
    guarded("descent_set_num_threads") { try Threads.set(Int(n)) }
}

/// The number of threads the parallel kernels use now (>= 1).
///
/// Threads: safe from any thread.
@c(descent_get_num_threads) public func descent_get_num_threads() -> Int32 {
    Int32(Threads.count)
}
