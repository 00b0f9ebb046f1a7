import Testing
@testable import Descent

#if canImport(Glibc)
import Glibc
#endif

// Saving checkpoints: what a failed save leaves (nothing but the old file), the exact errors,
// the cleanup of temporary files that killed saves abandoned, and permissions. The kill test
// itself (SIGKILL during saves) is bindings/python/tests/test_checkpoint_save.py.

// MARK: - helpers

/// A fresh directory under /tmp; remove it with `saveRemoveTree`.
private func saveTemporaryDirectory() -> String {
    var template = Array("/tmp/descent-save-test-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(made != nil, "mkdtemp failed")
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

private func saveListDirectory(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

private func saveRemoveTree(_ path: String) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    if info.st_mode & S_IFMT == S_IFDIR {
        for name in saveListDirectory(path) { saveRemoveTree(path + "/" + name) }
        rmdir(path)
    } else {
        unlink(path)
    }
}

private func saveReadFile(_ path: String) -> [UInt8] {
    guard let f = fopen(path, "rb") else { return [] }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while case let n = fread(&chunk, 1, chunk.count, f), n > 0 { bytes += chunk[0..<n] }
    return bytes
}

private func saveWriteFile(_ path: String, _ text: String) {
    let f = fopen(path, "wb")!
    fputs(text, f)
    fclose(f)
}

private func saveMode(_ path: String) -> mode_t {
    var info = stat()
    return stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0o10000
}

/// The message of the `.io` error `body` throws ("" when it throws none; other errors are
/// marked as such), with the random part of a temporary file's name replaced by XXXXXX so it
/// can be compared exactly. Records nothing itself (see aWriteThatFailsHalfway).
private func saveError(_ body: () throws -> Void) -> String {
    do {
        try body()
        return ""
    } catch let error as DescentError {
        guard error.status == .io else { return "not an I/O error (\(error.status)): \(error.message)" }
        var message = error.message
        if let range = message.range(of: ".descent-checkpoint-") {
            let random = message[range.upperBound...].prefix(6)
            if random.count == 6, random.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) {
                message.replaceSubrange(range.upperBound..<message.index(range.upperBound, offsetBy: 6), with: "XXXXXX")
            }
        }
        return message
    } catch {
        return "\(error)"
    }
}

private func saveNetwork() throws -> Network { try Network(json: #"{"sizes":[8,16,4],"seed":3}"#) }

// MARK: - tests

@Suite struct CheckpointSaveTests {
    @Test func aWriteThatFailsHalfwayLeavesTheOldFileAndNoTemporary() async {
        // RLIMIT_FSIZE with SIGXFSZ ignored makes write() fail with EFBIG past the limit: a
        // real failing write (as on a full disk), in a child process so the limit binds nobody else.
        await #expect(processExitsWith: .success) {
            let dir = saveTemporaryDirectory()
            defer { saveRemoveTree(dir) }
            let net = try saveNetwork()
            let path = dir + "/model.safetensors"
            try net.save(to: path)
            let old = saveReadFile(path)
            #expect(old.count > 1000)
            net.parameter("W1").value.pointer[0] += 1   // the network moves on

            signal(SIGXFSZ, SIG_IGN)
            let fileSize = __rlimit_resource_t(RLIMIT_FSIZE.rawValue)
            var limit = rlimit()
            getrlimit(fileSize, &limit)
            let unlimited = limit
            limit.rlim_cur = 100
            // Nothing is recorded while the limit holds: the test library's channel from this
            // process to the parent is a file that the limit would cut short too.
            let limited = setrlimit(fileSize, &limit)
            let message = saveError { try net.save(to: path) }
            limit = unlimited
            #expect(limited == 0 && setrlimit(fileSize, &limit) == 0)
            #expect(message
                == "cannot write '\(path)': cannot write the temporary file '\(dir)/.descent-checkpoint-XXXXXX': File too large")
            #expect(saveReadFile(path) == old)
            #expect(saveListDirectory(dir) == ["model.safetensors"], "the temporary file is removed")

            try net.save(to: path)
            #expect(saveReadFile(path) != old)
            let loaded = try Network.load(from: path)
            #expect(loaded.parameter("W1").value.pointer[0] == net.parameter("W1").value.pointer[0])
            #expect(saveListDirectory(dir) == ["model.safetensors"])
        }
    }

    @Test func errorsNameThePathAndTheReasonAndLeaveNothing() throws {
        let dir = saveTemporaryDirectory()
        defer { saveRemoveTree(dir) }
        let net = try saveNetwork()
        saveWriteFile(dir + "/file", "not a directory")
        mkdir(dir + "/taken", 0o755)
        saveWriteFile(dir + "/taken/inside", "kept")
        let before = saveListDirectory(dir)

        #expect(saveError { try net.save(to: dir + "/missing/m.safetensors") }
            == "cannot write '\(dir)/missing/m.safetensors': cannot open the directory '\(dir)/missing': No such file or directory")
        #expect(saveError { try net.save(to: dir + "/file/m.safetensors") }
            == "cannot write '\(dir)/file/m.safetensors': cannot open the directory '\(dir)/file': Not a directory")
        // A directory nobody can create files in, even root (root ignores permission bits).
        #expect(saveError { try net.save(to: "/proc/descent-test.safetensors") }
            == "cannot write '/proc/descent-test.safetensors': cannot create a temporary file in '/proc': No such file or directory")
        // Names that can only be directories.
        for path in [dir + "/.", dir + "/..", dir + "/", ".", "..", "/"] {
            #expect(saveError { try net.save(to: path) } == "cannot write '\(path)': Is a directory")
        }
        // An existing directory: the rename fails and the temporary file goes.
        #expect(saveError { try net.save(to: dir + "/taken") }
            == "cannot write '\(dir)/taken': cannot rename the temporary file '\(dir)/.descent-checkpoint-XXXXXX' to it: Is a directory")
        #expect(saveListDirectory(dir) == before)
        #expect(saveListDirectory(dir + "/taken") == ["inside"])
        #expect(saveReadFile(dir + "/file") == Array("not a directory".utf8))
    }

    @Test func aLaterSaveRemovesTheTemporaryFilesOfDeadSavesOnly() throws {
        let dir = saveTemporaryDirectory()
        defer { saveRemoveTree(dir) }
        // Left by saves that died: nobody holds a lock on them.
        let abandoned = [".descent-checkpoint-Ab12Cd", ".descent-checkpoint-000000", ".descent-checkpoint-zzzzzz"]
        for name in abandoned { saveWriteFile(dir + "/" + name, "half a checkpoint") }
        // Not temporary names: the prefix with a random part that is too short, too long or
        // has other characters; something before the prefix or after the random part.
        let others = [".descent-checkpoint-abc", ".descent-checkpoint-abcdefg", ".descent-checkpoint-ab_123",
                      ".descent-checkpoint-ab.123", "x.descent-checkpoint-abcdef", ".descent-checkpoint-abcdef.bak",
                      "model.safetensors"]
        for name in others { saveWriteFile(dir + "/" + name, "someone's file") }
        // Temporary names that are not regular files: neither followed nor removed.
        saveWriteFile(dir + "/target", "the symlink's target")
        #expect(symlink(dir + "/target", dir + "/.descent-checkpoint-Link01") == 0)
        mkdir(dir + "/.descent-checkpoint-Dir001", 0o755)
        // A save that is running: its file is locked (by another open file description, so the
        // lock conflicts with the cleanup's as another process's would).
        let held = dir + "/.descent-checkpoint-Held01"
        saveWriteFile(held, "a save in progress")
        let fd = open(held, O_RDWR | O_CLOEXEC)
        #expect(fd >= 0 && flock(fd, LOCK_EX) == 0)

        try saveNetwork().save(to: dir + "/model.safetensors")
        let kept = others + ["target", ".descent-checkpoint-Link01", ".descent-checkpoint-Dir001", ".descent-checkpoint-Held01"]
        #expect(saveListDirectory(dir) == kept.sorted())
        #expect(saveReadFile(held) == Array("a save in progress".utf8))
        #expect(saveReadFile(dir + "/target") == Array("the symlink's target".utf8))

        // Once its save is gone (the lock with it), the next save removes it too.
        close(fd)
        try saveNetwork().save(to: dir + "/other.safetensors")
        #expect(saveListDirectory(dir) == (kept.filter { $0 != ".descent-checkpoint-Held01" } + ["other.safetensors"]).sorted())
    }

    @Test func concurrentSavesIntoOneDirectoryNeverRemoveEachOthersFiles() async throws {
        // Each save cleans up while the others are creating, writing and renaming theirs: a
        // live temporary file removed by mistake would fail that save's rename.
        let dir = saveTemporaryDirectory()
        defer { saveRemoveTree(dir) }
        let failures = await withTaskGroup(of: [String].self) { group in
            for task in 0..<4 {
                group.addTask {
                    var failures: [String] = []
                    for round in 0..<25 {
                        do { try saveNetwork().save(to: dir + "/net\(task).safetensors") } catch {
                            failures.append("task \(task) round \(round): \(error)")
                        }
                    }
                    return failures
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        #expect(failures == [])
        #expect(saveListDirectory(dir) == (0..<4).map { "net\($0).safetensors" })
    }

    @Test func savedFilesGetTheUmasksPermissions() async {
        // The umask belongs to the whole process: changed only in a child process.
        await #expect(processExitsWith: .success) {
            let dir = saveTemporaryDirectory()
            defer { saveRemoveTree(dir) }
            let net = try saveNetwork()
            for (mask, mode) in [(mode_t(0o027), mode_t(0o640)), (0o002, 0o664), (0o077, 0o600)] {
                umask(mask)
                try net.save(to: dir + "/m.safetensors")   // replacing the previous file: its mode is not kept
                #expect(saveMode(dir + "/m.safetensors") == mode, "umask \(String(mask, radix: 8))")
            }
        }
    }
}
