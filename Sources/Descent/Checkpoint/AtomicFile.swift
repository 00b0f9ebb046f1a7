#if canImport(Glibc)
import Glibc
#endif

/// Replaces a file atomically: a crash or an error never leaves a partial file at the path, and
/// a file already there stays intact unless the new one is complete.
///
///  1. Temporary files that earlier saves into the directory abandoned (their process died)
///     are removed.
///  2. `.descent-checkpoint-XXXXXX` (six random letters or digits) is created in the target's
///     directory with O_CREAT|O_EXCL and mode 0666, so the kernel applies the umask and any
///     default ACL exactly as for any new file, and locked with an exclusive `flock`.
///  3. It is written, fsync'd and renamed over the path; then the directory is fsync'd so the
///     rename itself is durable.
///
/// Why the lock: a process killed during a save leaves its temporary file behind, and nothing
/// else would ever remove it. The lock, held from creation to rename, tells a later save which
/// temporary files are abandoned. A flock belongs to the open file and ends when its last
/// descriptor closes, which the death of the process does (the descriptor is O_CLOEXEC, so
/// programs the process starts do not inherit it). So a temporary file that can be locked with
/// LOCK_NB belongs to no live save and is removed, while one that cannot belongs to a save
/// still running (in this process or another) and is left alone. Both sides check, after locking, that the name still names the file they locked: the
/// creator, because a cleaner may have removed its file between the open and the lock (it then
/// starts again with a new name); the cleaner, because another cleaner may have removed it and
/// a new save reused the name. While a file is locked nobody else renames or removes its name,
/// so the check stays true until the unlink. Only names of exactly this pattern are touched, and
/// a failing cleanup never fails the save.
///
/// Why not O_TMPFILE: an unnamed file leaves nothing if the process dies while writing it, but
/// linkat cannot replace an existing file, so it still needs a temporary name before the rename
/// and the cleanup all the same, plus a second code path for filesystems without O_TMPFILE.
///
/// Limits: on a filesystem without locks (flock fails) saves work as before but what a killed
/// one leaves is never removed. A save by a Descent from before this scheme (it takes no lock)
/// running at the same time in the same directory can lose its temporary file to the cleanup:
/// that save fails and the file at its path stays whole.
enum AtomicFile {
    static let temporaryPrefix = ".descent-checkpoint-"
    /// The random part of a temporary name: its length and its letters (mkstemp's, so the
    /// leftovers of saves made with mkstemp are recognised too).
    static let randomLength = 6
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)

    /// Where `replace` writes: the temporary file, with errors that name the path being written.
    struct Output {
        fileprivate let fd: Int32
        fileprivate let path: String
        fileprivate let temporary: String

        /// Writes all of `bytes` (retrying short writes and EINTR).
        func write(_ bytes: UnsafeRawBufferPointer) throws {
            var done = 0
            while done < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw AtomicFile.failure(path, errno, "cannot write the temporary file '\(temporary)'")
                }
                done += n
            }
        }
    }

    /// Replaces (or creates) `path` with what `body` writes to the output it is given. Errors are
    /// `.io`: "cannot write '<path>': <what failed>: <the system's reason>"; on any error the
    /// temporary file is removed and the file at `path` is untouched.
    static func replace(_ path: String, with body: (Output) throws -> Void) throws {
        let (directory, name) = split(path)
        guard !name.isEmpty, name != ".", name != ".." else { throw failure(path, EISDIR) }
        // O_PATH (Glibc exports it only as __O_PATH): creating, renaming and removing in the
        // directory need only search and write permission on it, not read permission.
        let dirfd = open(directory, __O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else { throw failure(path, errno, "cannot open the directory '\(directory)'") }
        defer { close(dirfd) }

        removeAbandonedTemporaries(in: dirfd)
        let (fd, temporary) = try createTemporary(in: dirfd, directory, for: path)
        let shown = directory == "/" ? "/" + temporary : directory + "/" + temporary
        do {
            try body(Output(fd: fd, path: path, temporary: shown))
            guard fsync(fd) == 0 else { throw failure(path, errno, "cannot fsync the temporary file '\(shown)'") }
            guard renameat(dirfd, temporary, dirfd, name) == 0 else {
                throw failure(path, errno, "cannot rename the temporary file '\(shown)' to it")
            }
        } catch {
            // Unlink before close: once the lock is gone the name may be reused by another save.
            unlinkat(dirfd, temporary, 0)
            close(fd)
            throw error
        }
        // Closed only after the rename, so the lock covers the temporary name for its whole
        // life. The data was fsync'd, so a close that reports an error loses nothing.
        close(fd)

        // Make the rename durable. A directory that cannot be opened for reading cannot be
        // fsync'd (nor could it before this scheme); filesystems that cannot sync a directory
        // say EINVAL, which is no failure.
        let readable = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if readable >= 0 {
            let rc = fsync(readable), code = errno
            close(readable)
            if rc != 0 && code != EINVAL && code != EROFS {
                throw DescentError(.io, "wrote '\(path)' but cannot fsync its directory '\(directory)': \(String(cString: strerror(code)))")
            }
        }
    }

    /// ("dir", "name") of a path; the directory is "." for a bare name.
    static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }

    /// Whether `name` is exactly a temporary file's name: the prefix and six letters or digits.
    static func isTemporaryName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        let prefix = Array(temporaryPrefix.utf8)
        return bytes.count == prefix.count + randomLength && bytes.starts(with: prefix)
            && bytes[prefix.count...].allSatisfy(alphabet.contains)
    }

    // MARK: - the temporary file

    /// Creates, opens and locks a new temporary file in the directory. Returns its descriptor
    /// and name (relative to the directory).
    private static func createTemporary(in dirfd: Int32, _ directory: String, for path: String) throws -> (Int32, String) {
        var random = SystemRandomNumberGenerator()
        var code = EEXIST
        for _ in 0..<100 {
            let name = temporaryPrefix
                + String(decoding: (0..<randomLength).map { _ in alphabet.randomElement(using: &random)! }, as: UTF8.self)
            let fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            guard fd >= 0 else {
                code = errno
                if code == EEXIST || code == EINTR { continue }
                break
            }
            var rc: Int32
            repeat { rc = flock(fd, LOCK_EX) } while rc != 0 && errno == EINTR
            // Without locks nobody's cleanup can lock this file either, so nobody removes it.
            if rc != 0 { return (fd, name) }
            if names(dirfd, name, fd) { return (fd, name) }
            // A cleanup took it for abandoned between the open and the lock, and removed it.
            close(fd)
        }
        throw failure(path, code, "cannot create a temporary file in '\(directory)'")
    }

    // MARK: - cleanup

    /// Removes the temporary files in the directory that no live save holds locked. Failures
    /// are ignored: they never fail the save that cleans up.
    static func removeAbandonedTemporaries(in dirfd: Int32) {
        let listing = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard listing >= 0 else { return }
        guard let stream = fdopendir(listing) else { close(listing); return }
        // All names first: the removals then do not change the directory being read.
        for name in entryNames(closing: stream) where isTemporaryName(name) { removeIfAbandoned(name, in: dirfd) }
    }

    private static func removeIfAbandoned(_ name: String, in dirfd: Int32) {
        // O_NOFOLLOW, O_NONBLOCK: a symlink or a FIFO under this name is neither followed nor
        // waited for (and not removed: only regular files are).
        let fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return }   // its save is running
        guard names(dirfd, name, fd) else { return }   // removed already; the name may be reused
        unlinkat(dirfd, name, 0)
    }

    /// Whether `name` in the directory is the file open as `fd` (not a symlink to it).
    private static func names(_ dirfd: Int32, _ name: String, _ fd: Int32) -> Bool {
        var open = stat(), named = stat()
        guard fstat(fd, &open) == 0, fstatat(dirfd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 else { return false }
        return open.st_dev == named.st_dev && open.st_ino == named.st_ino
    }

    /// An `.io` error: "cannot write '<path>': <what>: <strerror>", or without `what`.
    static func failure(_ path: String, _ code: Int32, _ what: String? = nil) -> DescentError {
        let reason = String(cString: strerror(code))
        return DescentError(.io, "cannot write '\(path)': " + (what.map { "\($0): \(reason)" } ?? reason))
    }
}
