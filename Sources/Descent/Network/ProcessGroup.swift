import CDescentKernels

/// The processes of a data-parallel job as one network sees them: its rank, how many there are,
/// and the caller's all-reduce (over MPI with include/descent_mpi.h). With a group, a training
/// step on each process's part of a global batch computes the step of the whole global batch:
/// the loss and gradients are its means, batch norm uses its statistics, dropout masks follow
/// each row's place in it. Every process must make the same calls in the same order.
public struct ProcessGroup {
    /// Replaces data[0..<count] by the element-wise sum over the processes, the same bits on
    /// every process; returns 0 on success.
    public typealias Allreduce = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<Float>?, Int64) -> Int32

    let allreduce: Allreduce
    let context: UnsafeMutableRawPointer?
    public let rank: Int
    public let size: Int
    /// [size] floats for the agreements: each process writes its own slot, the sum tells all.
    let slots: CheckedArray<Float>

    /// Errors: `.invalidArgument` for a rank outside [0, size) or a size outside [1, 2^20].
    public init(allreduce: Allreduce, context: UnsafeMutableRawPointer?, rank: Int, size: Int) throws {
        guard size >= 1, size <= 1 << 20 else { throw DescentError.invalid("ranks is \(size): must be in [1, 1048576]") }
        guard rank >= 0, rank < size else { throw DescentError.invalid("rank is \(rank): must be in [0, \(size))") }
        self.allreduce = allreduce
        self.context = context
        self.rank = rank
        self.size = size
        slots = try CheckedArray(count: size + 2, for: "the process table")
    }

    /// Sums data[0..<count] over the processes in place. `.io` when the caller's all-reduce fails.
    func sum(_ data: UnsafeMutablePointer<Float>, _ count: Int) throws {
        guard allreduce(context, data, Int64(count)) == 0 else {
            throw DescentError(.io, "the all-reduce failed on process \(rank) (the caller's function returned non-zero)")
        }
    }

    /// What a process reports of its step to the others (`agree`): the worst first.
    enum Outcome: Float {
        case ok = 0
        /// NaN/Inf in its x: the cause of whatever else then fails on every process.
        case badInput = 1
        case failed = 2
    }

    /// One all-reduce that tells every process the sum of every process's `value` (carried in
    /// two floats: about 2^-48 relative) and the lowest rank whose input was bad, else the
    /// lowest rank that failed otherwise.
    func agree(sum value: Double, outcome: Outcome) throws -> (sum: Double, culprit: (rank: Int, outcome: Outcome)?) {
        let high = Float(value), low = value.isFinite ? Float(value - Double(high)) : 0
        slots.pointer.update(repeating: 0, count: size + 2)
        slots.pointer[rank] = outcome.rawValue
        slots.pointer[size] = high
        slots.pointer[size + 1] = low
        try sum(slots.pointer, size + 2)
        let total = Double(slots.pointer[size]) + Double(slots.pointer[size + 1])
        for worst in [Outcome.badInput, .failed] {
            if let k = (0..<size).first(where: { slots.pointer[$0] == worst.rawValue }) { return (total, (k, worst)) }
        }
        return (total, nil)
    }

    /// Every process's `value` (one float each, exact up to 2^24), by rank: an all-reduce in
    /// which each process fills its own slot. Valid until the next call.
    func gather(_ value: Float) throws -> UnsafeBufferPointer<Float> {
        slots.pointer.update(repeating: 0, count: size)
        slots.pointer[rank] = value
        try sum(slots.pointer, size)
        return UnsafeBufferPointer(start: slots.pointer, count: size)
    }
}
