import CDescentKernels

/// The processes of a data-parallel job as one network sees them: its rank, how many there are,
/// and the caller's all-reduce (over MPI with include/descent_mpi.h). With a group, a training
/// step on each process's part of a global batch computes the step of the whole global batch:
/// the loss and gradients are its means, batch norm uses its statistics, dropout masks follow
/// each row's place in it. Every process must make the same calls in the same order.
///
/// With `overlaps`, the gradients are summed layer by layer on a communication thread while the
/// backward pass goes on (allreduce_thread.c), and sums the pass needs before it can go on are
/// made on the calling thread once that thread is idle: the all-reduce is called from two
/// threads, never twice at once. Without, every call is made on the calling thread and the
/// gradients are summed in one call after the backward pass.
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
    private let thread: AllreduceThread?
    /// Whether the gradients' sums overlap the backward pass (on the communication thread).
    public var overlaps: Bool { thread != nil }

    /// Errors: `.invalidArgument` for a rank outside [0, size) or a size outside [1, 2^20];
    /// `.outOfMemory` when the communication thread cannot be started.
    public init(allreduce: Allreduce, context: UnsafeMutableRawPointer?, rank: Int, size: Int,
                overlap: Bool = false) throws {
        guard size >= 1, size <= 1 << 20 else { throw DescentError.invalid("ranks is \(size): must be in [1, 1048576]") }
        guard rank >= 0, rank < size else { throw DescentError.invalid("rank is \(rank): must be in [0, \(size))") }
        self.allreduce = allreduce
        self.context = context
        self.rank = rank
        self.size = size
        slots = try CheckedArray(count: size + 2, for: "the process table")
        thread = overlap ? try AllreduceThread(allreduce, context) : nil
    }

    /// Sums data[0..<count] over the processes in place, after every sum `startSum` queued.
    /// `.io` when the caller's all-reduce fails (this call or a queued one).
    func sum(_ data: UnsafeMutablePointer<Float>, _ count: Int) throws {
        guard let thread else { return try check(allreduce(context, data, Int64(count))) }
        try check(dk_allreduce_call(thread.handle, data, Int64(count)))
    }

    /// Queues the sum of data[0..<count] over the processes on the communication thread; the
    /// data must stay untouched until `finishSums`. Without `overlaps` it does nothing: the
    /// caller sums all its data in one `sum` instead.
    func startSum(_ data: UnsafeMutablePointer<Float>, _ count: Int) {
        guard let thread else { return }
        dk_allreduce_submit(thread.handle, data, Int64(count))
    }

    /// Waits until every queued sum is done. `.io` when one of them failed.
    func finishSums() throws {
        guard let thread else { return }
        try check(dk_allreduce_wait(thread.handle))
    }

    private func check(_ status: Int32) throws {
        guard status == 0 else {
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

    /// Bytes of a message `tell` passes on; a longer one is cut.
    static let messageLimit = 1024

    /// Process `culprit`'s error (`own` there, ignored elsewhere), told to every process: its
    /// status and the first `messageLimit` bytes of its message, one byte per float, in one
    /// all-reduce to which only `culprit` contributes. Every process must call it alike (after
    /// an agreement named the culprit); the failure paths use it, so it may allocate.
    func tell(_ own: DescentError?, from culprit: Int) throws -> DescentError {
        var buffer = [Float](repeating: 0, count: 1 + Self.messageLimit)
        if rank == culprit, let own {
            buffer[0] = Float(own.status.rawValue)
            for (i, byte) in own.message.utf8.prefix(Self.messageLimit).enumerated() { buffer[1 + i] = Float(byte) }
        }
        try buffer.withUnsafeMutableBufferPointer { try sum($0.baseAddress!, $0.count) }
        // A faulty all-reduce may return anything: nothing here may trap on it.
        let bytes = buffer.dropFirst().prefix { $0 != 0 }.map { $0 >= 1 && $0 <= 255 ? UInt8($0) : UInt8(ascii: "?") }
        let status = buffer[0] >= 1 && buffer[0] <= 255 ? Status(rawValue: Int32(buffer[0])) : nil
        return DescentError(status ?? .numeric, String(decoding: bytes, as: UTF8.self))
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

/// Owns a communication thread (allreduce_thread.c): it ends when the last copy of its
/// process group goes.
private final class AllreduceThread {
    let handle: OpaquePointer

    init(_ allreduce: ProcessGroup.Allreduce, _ context: UnsafeMutableRawPointer?) throws {
        guard let handle = dk_allreduce_thread_start(allreduce, context) else {
            throw DescentError(.outOfMemory, "cannot start the communication thread of a data-parallel job")
        }
        self.handle = handle
    }

    deinit { dk_allreduce_thread_stop(handle) }
}
