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
    return Entry(term: Term(1), index: LogIndex(i), type: .normal, data: KVProposal(command: .put(put)).encoded())
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

@Suite("Crash safety (real processes, SIGKILL)")
struct CrashKillTests {
    @Test(.timeLimit(.minutes(2)))
    func sigkillAtRandomMomentsLosesNothingAcknowledged() throws {
        let helper = try #require(helperPath("store-crash-helper"), "build store-crash-helper (swift build --build-tests)")
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var rng = SplitMix(seed: 20261126)
        let budgetSeconds = 20.0, iterationsMax = 60
        let start = Date()
        var iterations = 0, acknowledgedMax: UInt64 = 0
        var root = MerkleTree(emptyStore: InMemoryMerkleNodeStore())
        while iterations < iterationsMax && Date().timeIntervalSince(start) < budgetSeconds {
            iterations += 1
            let process = Process()
            process.executableURL = URL(fileURLWithPath: helper)
            process.arguments = [dir.sub("node"), String(rng.next())]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Let it run a random while (the first iterations also cover the open itself).
            usleep(UInt32(10_000 + rng.next() % 250_000))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal, "seed 20261126 iteration \(iterations)")
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(!output.contains("error"), "helper failed: \(output.suffix(300))")
            for line in output.split(separator: "\n") where line.hasPrefix("durable ") {
                acknowledgedMax = max(acknowledgedMax, UInt64(line.dropFirst(8)) ?? 0)
            }

            // Reopen and check mutual consistency and that nothing acknowledged is missing.
            let store = try Store(path: dir.sub("node"))
            defer { store.close() }
            let applied = store.appliedIndex.rawValue
            #expect(applied >= acknowledgedMax, "acknowledged \(acknowledgedMax), applied \(applied) (iteration \(iterations))")
            #expect(store.treeHead.treeSize == applied)
            #expect(try store.raftLog.lastIndex().rawValue >= applied)
            while root.treeSize < applied {
                let e = crashWorkloadEntry(root.treeSize + 1)
                root.append(JournalEntry(index: e.index.rawValue, term: 1, type: e.type.rawValue, payload: e.data).leafHash)
            }
            #expect(store.treeHead.rootHash == root.rootHash, "iteration \(iterations)")
            if applied > 0 {
                #expect(try store.journalEntry(at: LogIndex(applied)) == crashWorkloadEntry(applied))
                #expect(try store.journalEntry(at: LogIndex(applied + 1)) == nil)
                // Every key holds the value of its latest put at or below the applied index.
                let backend = store.makeKVBackend()
                for k in UInt64(0)..<17 {
                    let latest = stride(from: applied, through: 1, by: -1).first {
                        $0 % 17 == k && $0 % 10 != 0 && $0 % 25 != 0
                    }
                    let record = try store.kvStateMachine.get(Array("k\(k)".utf8), on: backend)
                    #expect(record?.value == latest.map { Array("v\($0)".utf8) }, "key k\(k) at applied \(applied)")
                    #expect(record?.modRevision == latest.map { Revision($0) })
                }
            }
        }
        #expect(iterations >= 10, "only \(iterations) iterations")
        #expect(acknowledgedMax > 0, "the helper never acknowledged anything")
        print("crash-kill: \(iterations) SIGKILLs, \(acknowledgedMax) entries acknowledged, all present")
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
