import FaunaKV
import FaunaRaft
import Foundation
import Testing

@testable import FaunaStore

/// Runs a command to completion; returns its exit status.
@discardableResult
func runCommand(_ path: String, _ arguments: [String]) -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return -1 }
    p.waitUntilExit()
    return p.terminationStatus
}

/// Mounts a tmpfs of `size` ("2m") on a new temporary directory for `body`, and unmounts it
/// afterwards (lazily if it is still busy). Needs root.
func withTmpfs<T>(_ name: String, size: String, _ body: (_ mountPoint: String) throws -> T) throws -> T {
    let dir = TemporaryDirectory(name)
    defer { dir.remove() }
    try #require(runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", dir.path]) == 0)
    defer {
        if runCommand("/bin/umount", [dir.path]) != 0 { runCommand("/bin/umount", ["-l", dir.path]) }
    }
    return try body(dir.path)
}

extension UInt64 {
    func saturatingSubtract(_ b: UInt64) -> UInt64 { self > b ? self - b : 0 }
}

@Suite("Disk failures stop the store clearly")
struct DiskFailureTests {
    /// A 2 MiB tmpfs fills up: writes stop with a typed fail-stop error naming the directory,
    /// nothing acknowledged is lost, and after the disk grows the store reopens with every
    /// acknowledged entry. Needs root (mount); skipped otherwise.
    @Test(.enabled(if: getuid() == 0, "mounting a tmpfs needs root"), .timeLimit(.minutes(1)))
    func fullDiskIsAClearStopWithoutLoss() throws {
        try withTmpfs("fauna-enospc", size: "2m") { try fullDiskIsAClearStopWithoutLoss(mountPoint: $0) }
    }

    private func fullDiskIsAClearStopWithoutLoss(mountPoint: String) throws {
        var options = Store.Options()
        options.diskFreeBytesMin = 256 << 10
        let path = "\(mountPoint)/node"
        let value = String(repeating: "x", count: 16 << 10)
        var acknowledged: UInt64 = 0
        var stop: StoreError? = nil
        do {
            let store = try Store(path: path, options: options)
            defer { store.close() }
            for i in UInt64(1)...1000 {
                do {
                    try store.applyLogged([putEntry(i, key: "k\(i % 50)", value: value + "\(i)")], sync: true)
                    acknowledged = i
                } catch {
                    stop = error
                    break
                }
            }
            // The Raft log stops the same way, and a stopped store stays stopped.
            let logError = #expect(throws: StoreError.self) {
                let big = [UInt8](repeating: 7, count: 128 << 10)
                try store.raftLog.persist(RaftLogUpdate(entries: [Entry(term: Term(1), index: LogIndex(1), data: big)]))
            }
            // diskFull, or stopped when the entry log was what met the full disk first.
            #expect(logError?.code == .diskFull || logError?.code == .stopped)
            let again = #expect(throws: StoreError.self) { try store.applyLogged([putEntry(acknowledged + 1, key: "k", value: "v")]) }
            #expect(again?.code == .stopped)
        }
        #expect(acknowledged > 10, "the disk filled after \(acknowledged) entries")
        #expect(stop?.code == .diskFull)
        #expect(stop?.isFailStop == true)
        #expect(stop?.message.contains(path) == true, "message: \(stop?.message ?? "nil")")

        // Reopening on a full disk is refused the same way (another writer took the rest).
        let free = DiskSpaceGuard(path: path, freeBytesMin: 0).freeBytes() ?? 0
        _ = FileManager.default.createFile(
            atPath: "\(mountPoint)/filler", contents: Data(count: Int(free.saturatingSubtract(64 << 10))))
        let reopen = #expect(throws: StoreError.self) { _ = try Store(path: path, options: options) }
        #expect(reopen?.code == .diskFull)

        // Give the filesystem room again: every acknowledged entry is there.
        try #require(runCommand("/bin/mount", ["-o", "remount,size=16m", mountPoint]) == 0)
        let store = try Store(path: path, options: options)
        defer { store.close() }
        #expect(store.appliedIndex == LogIndex(acknowledged))
        #expect(store.treeHead.treeSize == acknowledged)
        let record = try store.kvStateMachine.get(Array("k\(acknowledged % 50)".utf8), on: store.makeKVBackend())
        #expect(record?.value == Array((value + "\(acknowledged)").utf8))
        try store.applyLogged([putEntry(acknowledged + 1, key: "after", value: "room")], sync: true)
        print("enospc: stopped after \(acknowledged) entries: \(stop?.message ?? "")")
    }
}

extension DiskFailureTests {
    /// A group longer than a chunk is pipelined, and each chunk's batch is completed (the audit
    /// chain's writes, then the disk check) on the apply writer's thread: a full disk met there
    /// must stop the store with `.diskFull` and apply nothing of that chunk. Needs root (mount).
    @Test(.enabled(if: getuid() == 0, "mounting a tmpfs needs root"), .timeLimit(.minutes(1)))
    func fullDiskMetByTheApplyWriterStops() throws {
        try withTmpfs("fauna-enospc-pipelined", size: "4m") { try fullDiskMetByTheApplyWriterStops(mountPoint: $0) }
    }

    private func fullDiskMetByTheApplyWriterStops(mountPoint: String) throws {
        var options = Store.Options()
        options.diskFreeBytesMin = 256 << 10
        options.applyChunkEntries = 64
        let path = "\(mountPoint)/node"
        let store = try Store(path: path, options: options)
        defer { store.close() }
        let group = (UInt64(1)...200).map { putEntry($0, key: "k\($0)", value: "v\($0)") }
        try store.raftLog.persist(RaftLogUpdate(entries: group))
        // Another writer takes the disk down to less than the reserve.
        let free = DiskSpaceGuard(path: path, freeBytesMin: 0).freeBytes() ?? 0
        _ = FileManager.default.createFile(
            atPath: "\(mountPoint)/filler", contents: Data(count: Int(free.saturatingSubtract(128 << 10))))
        let error = #expect(throws: StoreError.self) { try store.apply(group) }
        #expect(error?.code == .diskFull, "\(String(describing: error))")
        #expect(store.appliedIndex == LogIndex(0))
        #expect(store.treeHead.treeSize == 0)
        let again = #expect(throws: StoreError.self) { try store.apply(group) }
        #expect(again?.code == .stopped)
    }

    /// EIO injected at random into the helper's read/write/fsync calls (libfiu's POSIX
    /// preload, errno 5): the helper must stop with a typed error naming the file, never trap;
    /// RocksDB itself may abort (its Debian build keeps assertions), which is a stop too. After
    /// each run the store reopens without faults with every acknowledged entry present.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/fiu-run"), "needs fiu-utils (tools/setup)"),
          .timeLimit(.minutes(2)))
    func injectedIOErrorsStopWithoutLoss() async throws {
        let helper = try #require(helperPath("store-crash-helper"))
        let runs = 8
        var cleanStops = 0, aborts = 0, acknowledgedTotal: UInt64 = 0
        for run in 1...runs {
            let dir = TemporaryDirectory("fauna-eio")
            defer { dir.remove() }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/fiu-run")
            p.arguments = ["-x", "-c", "enable_random name=posix/io/*,probability=0.003,failinfo=5",
                           helper, dir.sub("node"), String(run)]
            var env = ProcessInfo.processInfo.environment
            env["SWIFT_BACKTRACE"] = "enable=no"
            p.environment = env
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            // Bounded: a run that has not failed within 5 s is stopped (counted, not failed).
            await waitForExit(of: p, seconds: 5)
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            var acknowledged: UInt64 = 0
            for line in output.split(separator: "\n") where line.hasPrefix("durable ") {
                acknowledged = max(acknowledged, UInt64(line.dropFirst(8)) ?? 0)
            }
            if p.terminationReason == .exit {
                #expect(p.terminationStatus == 1, "run \(run): exit \(p.terminationStatus)")
                let error = output.split(separator: "\n").first { $0.hasPrefix("error ") } ?? ""
                // Usually "Input/output error"; an EIO injected into RocksDB's open-time probe
                // surfaces as its own message ("Direct I/O is not supported ..."). Either way a
                // typed error that names the data directory.
                #expect(error.hasPrefix("error store error") && error.contains(dir.sub("node")),
                        "run \(run): \(error)")
                cleanStops += 1
            } else {
                // SIGABRT from a RocksDB assertion or our SIGKILL; never SIGILL/SIGTRAP (a Swift trap).
                let signal = p.terminationStatus
                #expect(signal == SIGABRT || signal == SIGKILL, "run \(run): signal \(signal): \(output.suffix(300))")
                if signal == SIGABRT { aborts += 1 }
            }
            // The log holds every acknowledged entry; the state is a bounded prefix of it, and
            // re-applying the log gives the reference state and tree.
            var check = CrashCheck()
            try check.check(path: dir.sub("node"), acknowledged: acknowledged, "eio run \(run)")
            acknowledgedTotal += acknowledged
        }
        print("eio: \(runs) runs, \(cleanStops) typed stops, \(aborts) RocksDB aborts, \(acknowledgedTotal) acknowledged entries all present")
    }
}

/// When a free-space check may skip `statvfs`: only with a young sample that leaves the
/// headroom after every byte checked since.
@Suite("Free space sample")
struct FreeSpaceSampleTests {
    @Test func aSampleIsTrustedOnlyWhileYoungAndFarFromTheReserve() {
        let sample = FreeSpaceSample()
        let keep: UInt64 = 512 << 20
        #expect(!sample.spend(0, now: 10, keeping: keep))  // nothing sampled yet
        sample.record(1 << 30, now: 10)
        #expect(sample.spend(100 << 20, now: 11, keeping: keep))
        #expect(sample.spend(100 << 20, now: 12, keeping: keep))
        // 1 GiB - 200 MiB - 400 MiB would leave less than the 512 MiB kept: not counted.
        #expect(!sample.spend(400 << 20, now: 13, keeping: keep))
        #expect(sample.spend(300 << 20, now: 14, keeping: keep))
        #expect(!sample.spend(1, now: 10 + DiskSpaceGuard.sampleAgeNanoseconds, keeping: keep))  // too old
        sample.record(1 << 30, now: 100)
        #expect(!sample.spend(UInt64.max, now: 101, keeping: 0))  // no wrap-around
    }
}
