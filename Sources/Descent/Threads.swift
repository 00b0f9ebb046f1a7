import CDescentKernels

/// The number of threads Descent's parallel kernels use.
///
/// It starts at `DESCENT_NUM_THREADS` when that is set to a whole number >= 1, else at
/// OpenMP's default (the number of cores). Results never depend on it: every element is
/// computed by the same arithmetic whichever thread runs it.
public enum Threads {
    /// The count in force now.
    public static var count: Int { Int(dk_get_threads()) }

    /// Sets the count (`n >= 1`), or restores the default (`n == 0`).
    @discardableResult
    public static func set(_ n: Int) throws -> Int {
        guard n >= 0, n <= 1024 else {
            throw DescentError.invalid("n is \(n): must be 0 (default) or 1...1024")
        }
        return Int(dk_set_threads(Int32(n)))
    }
}
