import Testing
@testable import Descent

#if canImport(Glibc)
import Glibc
#endif

// Saving checkpoints: what a failed save leaves (nothing but the old file), the exact errors,
// the cleanup of temporary files that killed saves abandoned, and permissions. The kill test
// itself (SIGKILL during saves) is bindings/python/tests/test_checkpoint_save.py.

// MARK: - helpers

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
            let dir = makeTemporaryDirectory("descent-save-test")
            defer { removeTree(dir) }
            let net = try saveNetwork()
            let path = dir + "/model.safetensors"
            try net.save(to: path)
            let old = readFileBytes(path)
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
            #expect(readFileBytes(path) == old)
            #expect(listDirectory(dir) == ["model.safetensors"], "the temporary file is removed")

            try net.save(to: path)
            #expect(readFileBytes(path) != old)
            let loaded = try Network.load(from: path)
            #expect(loaded.parameter("W1").value.pointer[0] == net.parameter("W1").value.pointer[0])
            #expect(listDirectory(dir) == ["model.safetensors"])
        }
    }

    @Test func errorsNameThePathAndTheReasonAndLeaveNothing() throws {
        let dir = makeTemporaryDirectory("descent-save-test")
        defer { removeTree(dir) }
        let net = try saveNetwork()
        saveWriteFile(dir + "/file", "not a directory")
        mkdir(dir + "/taken", 0o755)
        saveWriteFile(dir + "/taken/inside", "kept")
        let before = listDirectory(dir)

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
        #expect(listDirectory(dir) == before)
        #expect(listDirectory(dir + "/taken") == ["inside"])
        #expect(readFileBytes(dir + "/file") == Array("not a directory".utf8))
    }

    @Test func aLaterSaveRemovesTheTemporaryFilesOfDeadSavesOnly() throws {
        let dir = makeTemporaryDirectory("descent-save-test")
        defer { removeTree(dir) }
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
        #expect(listDirectory(dir) == kept.sorted())
        #expect(readFileBytes(held) == Array("a save in progress".utf8))
        #expect(readFileBytes(dir + "/target") == Array("the symlink's target".utf8))

        // Once its save is gone (the lock with it), the next save removes it too.
        close(fd)
        try saveNetwork().save(to: dir + "/other.safetensors")
        #expect(listDirectory(dir) == (kept.filter { $0 != ".descent-checkpoint-Held01" } + ["other.safetensors"]).sorted())
    }

    @Test func concurrentSavesIntoOneDirectoryNeverRemoveEachOthersFiles() async throws {
        // Each save cleans up while the others are creating, writing and renaming theirs: a
        // live temporary file removed by mistake would fail that save's rename.
        let dir = makeTemporaryDirectory("descent-save-test")
        defer { removeTree(dir) }
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
        #expect(listDirectory(dir) == (0..<4).map { "net\($0).safetensors" })
    }

    @Test func savedFilesGetTheUmasksPermissions() async {
        // The umask belongs to the whole process: changed only in a child process.
        await #expect(processExitsWith: .success) {
            let dir = makeTemporaryDirectory("descent-save-test")
            defer { removeTree(dir) }
            let net = try saveNetwork()
            for (mask, mode) in [(mode_t(0o027), mode_t(0o640)), (0o002, 0o664), (0o077, 0o600)] {
                umask(mask)
                try net.save(to: dir + "/m.safetensors")   // replacing the previous file: its mode is not kept
                #expect(saveMode(dir + "/m.safetensors") == mode, "umask \(String(mask, radix: 8))")
            }
        }
    }
}
