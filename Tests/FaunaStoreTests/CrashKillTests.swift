import FaunaAudit
import FaunaKV
import FaunaRaft
import FaunaVerify
import Foundation
import Testing

@testable import FaunaStore

/// The workload rule of `store-crash-helper` (Sources/store-crash-helper/main.swift).
func crashWorkloadEntry(_ i: UInt64) -> Entry {
    if i % 10 == 0 { return Entry(term: Term(1), index: LogIndex(i)) }
    if i % 25 == 0 { return Entry(term: Term(1), index: LogIndex(i), type: .confChange, data: [UInt8(i & 0xFF)]) }
    let put = KVPut(key: Array("k\(i % 17)".utf8), value: Array("v\(i)".utf8))
    // Every put comes from one of three client sessions (client i % 3 + 1): its first put, one
    // of entries 1 to 3, opens the session with sequence 1, and each later one uses sequence i.
    let session = ClientSession(clientID: ClientID(i % 3 + 1), sequence: SequenceNumber(i <= 3 ? 1 : i))
    return Entry(term: Term(1), index: LogIndex(i), type: .normal, data: KVProposal(session: session, command: .put(put)).encoded())
}

/// The helper executable beside the test bundle in the build directory.
func helperPath(_ name: String) -> String? {
    var candidates: [URL] = []
    candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
    candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
    candidates.append(Bundle.main.bundleURL)
    for dir in candidates {
        let p = dir.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}

/// What the store must hold after a crash and a reopen, and after re-applying the log.
struct CrashCheck {
    /// The helper's replay bound (`replayEntriesMax`) and its longest batch (3 chunks of 64):
    /// the log may be ahead of the state on disk by at most their sum.
    static let replayBound: UInt64 = 300 + 3 * 64
    /// The reference tree, extended as far as the largest index checked so far.
    var reference = MerkleTree(emptyStore: InMemoryMerkleNodeStore())

    mutating func root(at size: UInt64) -> MerkleHash {
        precondition(size >= reference.treeSize, "reference moves forward only")
        while reference.treeSize < size {
            let e = crashWorkloadEntry(reference.treeSize + 1)
            reference.append(JournalEntry(index: e.index.rawValue, term: 1, type: e.type.rawValue, payload: e.data).leafHash)
        }
        return reference.rootHash
    }

    /// Reopens `path`: the state on disk is a prefix of the log, no older than the bound, with
    /// the tree of that prefix; then re-applies the log as a restarted node does and checks
    /// that every acknowledged entry is applied, the tree equals the reference and every key
    /// holds its latest put.
    mutating func check(path: String, acknowledged: UInt64, _ context: String) throws {
        let store = try Store(path: path)
        defer { store.close() }
        let applied = store.appliedIndex.rawValue
        let logLast = try store.raftLog.lastIndex().rawValue
        #expect(logLast >= acknowledged, "acknowledged \(acknowledged), log \(logLast) (\(context))")
        #expect(applied <= logLast && logLast - applied <= Self.replayBound, "applied \(applied), log \(logLast) (\(context))")
        #expect(store.treeHead.treeSize == applied)
        if applied >= reference.treeSize {
            #expect(store.treeHead.rootHash == root(at: applied), "tree at the state on disk (\(context))")
        }
        // The applied state's term and membership-change indexes are written only by an apply
        // that changes them (`Store.add(_:to:over:)`); what reached disk still holds them.
        #expect(store.applyLock.withLock { store.applied.term } == (applied > 0 ? Term(1) : .zero), "applied term (\(context))")
        let confChanges = stride(from: UInt64(25), through: applied, by: 50).map { LogIndex($0) }.suffix(AppliedState.confChangeIndexesMax)
        #expect(store.confChangeIndexes(after: .zero) == Array(confChanges), "membership changes as of \(applied) (\(context))")
        var next = applied + 1
        while next <= logLast {
            let entries = try store.raftLog.entries(from: LogIndex(next), to: LogIndex(logLast + 1), maxBytes: 1 << 20)
            try store.apply(entries)
            next += UInt64(entries.count)
        }
        #expect(store.appliedIndex.rawValue == logLast)
        #expect(store.treeHead.rootHash == root(at: logLast), "tree after re-applying (\(context))")
        guard logLast > 0 else { return }
        #expect(try store.journalEntry(at: LogIndex(logLast)) == crashWorkloadEntry(logLast))
        #expect(try store.journalEntry(at: LogIndex(1)) == crashWorkloadEntry(1))
        #expect(try store.journalEntry(at: LogIndex(logLast + 1)) == nil)
        // Every key holds the value of its latest put at or below the applied index.
        let backend = store.makeKVBackend()
        for k in UInt64(0)..<17 {
            let latest = stride(from: logLast, through: 1, by: -1).first { $0 % 17 == k && $0 % 10 != 0 && $0 % 25 != 0 }
            let record = try store.kvStateMachine.get(Array("k\(k)".utf8), on: backend)
            #expect(record?.value == latest.map { Array("v\($0)".utf8) }, "key k\(k) at \(logLast) (\(context))")
            #expect(record?.modRevision == latest.map { Revision($0) })
        }
        // Every session was last used by its client's latest put (sessions are updated in
        // place in their memtable, then flushed with the rest of the state).
        var sessions: [String] = []
        try KVSessionRecency.scanStored(on: backend) { lastUsed, client in
            sessions.append("\(client)@\(lastUsed)")
            return true
        }
        var latestPuts: [UInt64] = []
        for c in UInt64(0)..<3 {
            let isPut = { (i: UInt64) -> Bool in i % 3 == c && i % 10 != 0 && i % 25 != 0 }
            if let latest = stride(from: logLast, through: 1, by: -1).first(where: isPut) { latestPuts.append(latest) }
        }
        let want: [String] = latestPuts.sorted().map { i in "\(ClientID(i % 3 + 1))@\(Revision(i))" }
        #expect(sessions == want, "sessions at \(logLast) (\(context))")
    }
}

/// Waits until `process` ends or `seconds` pass, sleeping between looks: these tests run beside
/// tests that wait on sockets and processes, and a thread blocked here is one of the concurrency
/// pool's threads (two on a 2-core machine; blocking both made other tests' deadlines expire).
func waitForExit(of process: Process, seconds: Double) async {
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(10)) }
}

@Suite("Crash safety (real processes, SIGKILL)")
struct CrashKillTests {
    /// Runs the helper on `path` until it exits by itself or `killAfterMicroseconds` pass;
    /// answers the last index it acknowledged and whether it printed an error.
    static func runHelper(_ helper: String, path: String, arguments: [String], killAfterMicroseconds: UInt32?) async throws -> (UInt64, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: helper)
        process.arguments = [path] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        if let killAfterMicroseconds {
            // Timed by a dispatch queue, not by this task: a busy concurrency pool could resume
            // a sleeping task seconds late, letting the helper run far past its moment.
            let pid = process.processIdentifier
            DispatchQueue.global().asyncAfter(deadline: .now() + .microseconds(Int(killAfterMicroseconds))) { _ = kill(pid, SIGKILL) }
            await waitForExit(of: process, seconds: 30)
        } else {
            // A step kill happens within a few batches; bound the wait anyway.
            await waitForExit(of: process, seconds: 30)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "\(arguments)")
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        var acknowledged: UInt64 = 0
        for line in output.split(separator: "\n") where line.hasPrefix("durable ") {
            acknowledged = max(acknowledged, UInt64(line.dropFirst(8)) ?? 0)
        }
        return (acknowledged, output)
    }

    @Test(.timeLimit(.minutes(2)))
    func sigkillAtRandomMomentsLosesNothingAcknowledged() async throws {
        let helper = try #require(helperPath("store-crash-helper"), "build store-crash-helper (swift build --build-tests)")
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var rng = SplitMix(seed: 20261126)
        // At least 10 kills; more, up to 60, while the 20 s budget lasts.
        let budgetSeconds = 20.0, iterationsMin = 10, iterationsMax = 60
        let start = Date()
        var iterations = 0, acknowledgedMax: UInt64 = 0
        var check = CrashCheck()
        while iterations < iterationsMin || (iterations < iterationsMax && Date().timeIntervalSince(start) < budgetSeconds) {
            iterations += 1
            // A random while (the first iterations also cover the open and its replay).
            let (acknowledged, output) = try await Self.runHelper(
                helper, path: dir.sub("node"), arguments: [String(rng.next())],
                killAfterMicroseconds: UInt32(10_000 + rng.next() % 250_000))
            #expect(!output.contains("error"), "helper failed: \(output.suffix(300))")
            acknowledgedMax = max(acknowledgedMax, acknowledged)
            try check.check(path: dir.sub("node"), acknowledged: acknowledgedMax, "seed 20261126 iteration \(iterations)")
        }
        #expect(acknowledgedMax > 0, "the helper never acknowledged anything")
        print("crash-kill: \(iterations) SIGKILLs, \(acknowledgedMax) entries acknowledged, all present")
    }

    /// A kill at each step of the write order — after the log's fsync and before the apply,
    /// after the state write and before a flush, after a flush, after the compaction point
    /// moved past the flushed state — at several moments of one directory's life.
    @Test(.timeLimit(.minutes(2)))
    func sigkillAtEveryStepOfTheWriteOrder() async throws {
        let helper = try #require(helperPath("store-crash-helper"), "build store-crash-helper (swift build --build-tests)")
        for step in ["logged", "applied", "flushed", "compacted"] {
            let dir = TemporaryDirectory()
            defer { dir.remove() }
            var check = CrashCheck()
            var acknowledgedMax: UInt64 = 0
            for (round, batch) in [8, 16, 40, 64].enumerated() {
                let (acknowledged, output) = try await Self.runHelper(
                    helper, path: dir.sub("node"), arguments: ["\(round + 1)", step, "\(batch)"], killAfterMicroseconds: nil)
                #expect(output.contains("killing at \(step) of batch \(batch)"), "\(step) \(batch): \(output.suffix(300))")
                if step == "flushed" {
                    // Every state family reached the flush (one atomic flush): the state on disk
                    // is at least the flushed index, with its tree.
                    let line = try #require(output.split(separator: "\n").last { $0.hasPrefix("flushed ") })
                    let flushed = try #require(UInt64(line.dropFirst(8)))
                    let store = try Store(path: dir.sub("node"))
                    #expect(store.appliedIndex.rawValue >= flushed && store.treeHead.rootHash == check.root(at: store.appliedIndex.rawValue))
                    store.close()
                }
                acknowledgedMax = max(acknowledgedMax, acknowledged)
                try check.check(path: dir.sub("node"), acknowledged: acknowledgedMax, "kill at \(step) of batch \(batch)")
            }
        }
    }

    /// A second process opening the same data directory gets a clear "already in use".
    @Test func secondProcessGetsAlreadyInUse() throws {
        let helper = try #require(helperPath("store-crash-helper"))
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("node"))
        defer { store.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: helper)
        process.arguments = [dir.sub("node")]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 1)
        #expect(output.contains("already in use by another process"), "got: \(output)")
    }
}

/// A seeded generator for tests (SplitMix64).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The power-loss filesystem of the chaos harness (tools/chaoslib/powerloss_fs.py, docs/CHAOS.md
/// "Power loss"), mounted over a backing directory: writes not fsynced stay in its own cache
/// and a power loss drops them (tearing the last one of a file at random), then unmounts. The
/// backing directory is then the disk as the machine finds it when it comes back.
final class PowerLossMount {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../tools/chaoslib/powerloss_fs.py").standardized.path

    /// Whether it can run here: root, /dev/fuse and Debian's python3 with pyfuse3 (tools/setup).
    static let available: Bool = {
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/dev/fuse"),
              FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { return false }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", "import pyfuse3, trio"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }()

    let process = Process()
    private let input = Pipe(), output = Pipe()
    private var buffer: [UInt8] = []

    init(backing: String, mount: String) async throws {
        try FileManager.default.createDirectory(atPath: backing, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [Self.script, "--backing", backing, "--mount", mount]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let ready = await line(timeoutSeconds: 20)
        guard ready.replacingOccurrences(of: " ", with: "").contains("\"ready\":true") else {
            process.terminate()
            throw StoreError(.fileSystem, "power-loss filesystem did not mount \(mount): \(ready)")
        }
    }

    /// The next line it prints (bounded wait, sleeping between looks rather than blocking one
    /// of the concurrency pool's threads).
    private func line(timeoutSeconds: Int32) async -> String {
        let fd = output.fileHandleForReading.fileDescriptor
        let deadline = Date().addingTimeInterval(TimeInterval(timeoutSeconds))
        while !buffer.contains(UInt8(ascii: "\n")) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard Date() < deadline else { return "" }
            guard poll(&p, 1, 0) > 0 else {
                try? await Task.sleep(for: .milliseconds(10))
                continue
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(fd, &chunk, chunk.count)
            guard n > 0 else { return "" }
            buffer += chunk[0..<n]
        }
        let end = buffer.firstIndex(of: UInt8(ascii: "\n"))!
        defer { buffer.removeFirst(end + 1) }
        return String(decoding: buffer[..<end], as: UTF8.self)
    }

    /// Power fails (every process using the mount must be dead): unsynced writes are dropped,
    /// the last one of each file torn at a point `seed` picks; the mount goes away.
    func powerLoss(seed: Int) async throws -> String {
        input.fileHandleForWriting.write(Data("{\"op\": \"power-loss\", \"tear\": true, \"seed\": \(seed)}\n".utf8))
        let answer = await line(timeoutSeconds: 30)
        await waitForExit(of: process, seconds: 30)
        if process.isRunning { process.terminate() }
        return answer
    }
}

extension CrashKillTests {
    /// The same kills at every step of the write order, each followed by a power loss on the
    /// power-loss filesystem: what was not fsynced is gone (torn at random), so the entry log
    /// keeps exactly its synced writes and the state its last flush; re-applying the log must
    /// still give every acknowledged entry and the reference tree and state.
    @Test(.enabled(if: PowerLossMount.available, "needs root, /dev/fuse and python3-pyfuse3 (tools/setup installs them)"),
          .timeLimit(.minutes(3)))
    func powerLossAtEveryStepOfTheWriteOrder() async throws {
        let helper = try #require(helperPath("store-crash-helper"), "build store-crash-helper (swift build --build-tests)")
        for (s, step) in ["logged", "applied", "flushed", "compacted"].enumerated() {
            let dir = TemporaryDirectory("fauna-powerloss")
            defer { dir.remove() }
            var check = CrashCheck()
            var acknowledgedMax: UInt64 = 0
            for (round, batch) in [8, 24, 48].enumerated() {
                let mount = try await PowerLossMount(backing: dir.sub("disk"), mount: dir.sub("mnt"))
                let (acknowledged, output) = try await Self.runHelper(
                    helper, path: dir.sub("mnt/node"), arguments: ["\(round + 7)", step, "\(batch)"], killAfterMicroseconds: nil)
                let lost = try await mount.powerLoss(seed: 100 * s + round)
                #expect(output.contains("killing at \(step) of batch \(batch)"), "\(step) \(batch): \(output.suffix(300))")
                #expect(lost.replacingOccurrences(of: " ", with: "").contains("\"unmounted\":true"), "power loss: \(lost)")
                acknowledgedMax = max(acknowledgedMax, acknowledged)
                try check.check(path: dir.sub("disk/node"), acknowledged: acknowledgedMax, "power loss at \(step) of batch \(batch)")
            }
        }
    }
}
