import FaunaAudit
import FaunaKV
import FaunaRaft
import FaunaStore
import FaunaVerify
import Foundation
import Testing

@testable import NodeSimulator

// The simulated disk and store (SimDisk, SimStore): the same answers as the production Store on
// RocksDB for the same entries, the power-loss model, fault injection, snapshot install.

// MARK: Helpers

/// A fresh directory under the system temp dir for a production `Store`.
struct SimTestDirectory {
    let path: String

    init() {
        path = "\(FileManager.default.temporaryDirectory.path)/fauna-simstore-test-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func sub(_ name: String) -> String { "\(path)/\(name)" }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

func b(_ s: String) -> [UInt8] { Array(s.utf8) }

func kvEntry(_ index: UInt64, term: UInt64 = 2, _ command: KVCommand) -> Entry {
    Entry(term: Term(term), index: LogIndex(index), type: .normal, data: KVProposal(command: command).encoded())
}

func putEntry(_ index: UInt64, term: UInt64 = 2, _ key: String, _ value: String, ifAbsent: Bool = false) -> Entry {
    kvEntry(index, term: term, .put(KVPut(key: b(key), value: b(value), ifAbsent: ifAbsent, returnsPrevious: true)))
}

func confChangeEntry(_ index: UInt64, term: UInt64 = 2, _ change: ConfChange) -> Entry {
    Entry(term: Term(term), index: LogIndex(index), type: .confChange, data: change.encoded)
}

/// What a call answered: the value, or the error (a `StoreError` by its code only, since
/// messages name paths and disks; other errors by their description).
enum Answer<T: Equatable>: Equatable {
    case value(T)
    case error(String)
}

func answer<T: Equatable>(_ body: () throws -> T) -> Answer<T> {
    do { return .value(try body()) } catch { return .error(errorKey(error)) }
}

func errorKey(_ error: any Error) -> String {
    if let e = error as? StoreError { return "StoreError.\(e.code)" }
    return "\(type(of: error)): \(error)"
}

let clusterBytes: [UInt8] = Array(0xA0..<0xB0)

/// The cross-check workload, in apply groups (entries, membership after them).
func crossCheckBatches() -> [(entries: [Entry], confState: ConfState?)] {
    var out: [(entries: [Entry], confState: ConfState?)] = []
    out.append((bootstrapEntries(voters: [NodeID(1), NodeID(2), NodeID(3)]), ConfState(voters: [NodeID(1), NodeID(2), NodeID(3)])))
    out.append(([
        Entry(term: Term(2), index: LogIndex(4)),  // a new leader's no-op
        kvEntry(5, .upgradeLeaves),
        kvEntry(6, .initCluster(clusterBytes)),
        putEntry(7, "a", "1"), putEntry(8, "b", "2"), putEntry(9, "c", "3"), putEntry(10, "a", "4"),
    ], nil))
    out.append(([
        putEntry(11, "a", "never", ifAbsent: true),  // finds the key: alreadyExists
        putEntry(12, "d", "5", ifAbsent: true),
        kvEntry(13, .txn(KVTxn(  // success branch
            compares: [KVCompare(key: b("a"), .value(b("4")), .equal)],
            success: [.put(KVPut(key: b("e"), value: b("6"))), .range(KVRangeRequest(range: .all))],
            failure: [.deleteRange(KVDeleteRange(range: .single(b("a"))))]))),
        kvEntry(14, .txn(KVTxn(  // failure branch
            compares: [KVCompare(key: b("b"), .version(5), .greater)],
            success: [.put(KVPut(key: b("b"), value: b("never")))],
            failure: [.deleteRange(KVDeleteRange(range: .single(b("b")), returnsPrevious: true)),
                      .range(KVRangeRequest(range: .prefix(b("a")), isReversed: true))]))),
        kvEntry(15, .delete(b("c"), returnsPrevious: true)),
        putEntry(16, "dd", "7"), putEntry(17, "de", "8"),
        kvEntry(18, .deletePrefix(b("d"), returnsPrevious: true)),
        Entry(term: Term(2), index: LogIndex(19), type: .normal, data: [0xFF, 0x00, 0x13]),  // malformed
        kvEntry(20, .upgradeState(KVStateLevel.current)),  // a cluster of before state levels, on this version
    ], nil))
    out.append(([kvEntry(21, .compact(Revision(12))), putEntry(22, "f", "9"), putEntry(23, "a", "10")], nil))
    out.append(([confChangeEntry(24, .init(.addVoter, NodeID(4)))], ConfState(voters: [NodeID(1), NodeID(2), NodeID(3), NodeID(4)])))
    // A long group, applied in several chunks (chunk size 8 on both sides).
    var rng = SimRandom(seed: 42)
    let keys = ["a", "b", "c", "d", "e", "f", "g", "h"]
    let long = (25...61).map { (i: Int) -> Entry in
        let index = UInt64(i)
        let key = rng.pick(keys)!
        switch rng.int(0..<10) {
        case 0..<5: return putEntry(index, term: 3, key, "v\(i)")
        case 5: return kvEntry(index, term: 3, .delete(b(key)))
        case 6: return kvEntry(index, term: 3, .deleteRange(KVDeleteRange(range: KeyRange(start: b("b"), end: b("e")))))
        case 7: return Entry(term: Term(3), index: LogIndex(index))
        default:
            return kvEntry(index, term: 3, .txn(KVTxn(
                compares: [KVCompare(key: b(key), .modRevision(Revision(UInt64(rng.int(0..<i)))), .less)],
                success: [.put(KVPut(key: b(key), value: b("t\(i)")))],
                failure: [.put(KVPut(key: b("z"), value: b("f\(i)")))])))
        }
    }
    out.append((long, nil))
    out.append(([kvEntry(62, term: 3, .compact(Revision(40))), putEntry(63, term: 3, "g", "11"),
                 kvEntry(64, term: 3, .deleteRange(KVDeleteRange(range: .all)))], nil))
    out.append(([confChangeEntry(65, term: 3, .init(.remove, NodeID(2))), putEntry(66, term: 3, "h", "12")],
                ConfState(voters: [NodeID(1), NodeID(3), NodeID(4)])))
    return out
}

/// The production store and the simulated one, applying the same entries.
struct StorePair {
    let real: Store
    let sim: SimStore

    static let chunk = 8

    static func open(_ dir: SimTestDirectory, _ name: String, disk: SimDisk) throws -> StorePair {
        var realOptions = Store.Options()
        realOptions.applyChunkEntries = chunk
        realOptions.diskFreeBytesMin = 0
        var simOptions = SimStore.Options()
        simOptions.applyChunkEntries = chunk
        return StorePair(real: try Store(path: dir.sub(name), options: realOptions), sim: try SimStore(disk: disk, options: simOptions))
    }

    /// What a node does: the entries go to both entry logs first (the journal is the log),
    /// then to both stores.
    func apply(_ entries: [Entry], confState: ConfState?) throws {
        let last = try real.raftLog.lastIndex()
        let new = entries.filter { $0.index > last }
        if !new.isEmpty {
            try real.raftLog.persist(RaftLogUpdate(entries: new))
            try sim.log.persist(RaftLogUpdate(entries: new))
        }
        let realResults = try real.apply(entries, confState: confState)
        let simResults = try sim.apply(entries, confState: confState)
        #expect(simResults == realResults, "apply results through \(entries.last?.index ?? .zero)")
    }
}

/// Compares everything a `StateStore` answers between the production store and the simulated one.
func expectSameState(_ real: Store, _ sim: SimStore, _ sourceLocation: SourceLocation = #_sourceLocation) throws {
    let applied = real.appliedIndex
    #expect(sim.appliedIndex == applied, sourceLocation: sourceLocation)
    #expect(sim.appliedConfState == real.appliedConfState, sourceLocation: sourceLocation)
    #expect(sim.treeHead.treeSize == real.treeHead.treeSize, sourceLocation: sourceLocation)
    #expect(sim.treeHead.rootHash == real.treeHead.rootHash, sourceLocation: sourceLocation)
    #expect(sim.leafV2From == real.leafV2From, sourceLocation: sourceLocation)
    #expect(answer { try sim.clusterID() } == answer { try real.clusterID() }, sourceLocation: sourceLocation)
    #expect(answer { try sim.stateLevel() } == answer { try real.stateLevel() }, sourceLocation: sourceLocation)
    let backend = real.makeKVBackend()
    #expect(
        answer { try sim.compactedRevision() } == answer { try real.kvStateMachine.compactedRevision(on: backend) },
        sourceLocation: sourceLocation)
    for after in [0, 3, 20, 60] {
        #expect(sim.confChangeIndexes(after: LogIndex(UInt64(after))) == real.confChangeIndexes(after: LogIndex(UInt64(after))),
                sourceLocation: sourceLocation)
    }
    for i in 0...applied.rawValue + 1 {
        #expect(try sim.journalRecord(at: LogIndex(i)) == real.journalRecord(at: LogIndex(i)), "journal \(i)", sourceLocation: sourceLocation)
    }
    // Reads: current and at every revision (compacted and future ones fail alike).
    for revision in 0...applied.rawValue + 1 {
        let at = revision == 0 ? nil : Revision(revision)
        for request in [
            KVRangeRequest(range: .all, revision: at),
            KVRangeRequest(range: KeyRange(start: b("b"), end: b("f")), limit: 2, revision: at, isReversed: true),
            KVRangeRequest(range: .prefix(b("a")), revision: at, isKeysOnly: true),
            KVRangeRequest(range: .all, revision: at, isCountOnly: true),
        ] {
            #expect(
                answer { try sim.range(request) } == answer { try real.kvStateMachine.range(request, on: backend) },
                "range at \(revision)", sourceLocation: sourceLocation)
        }
        #expect(answer { try sim.stateDigest(at: Revision(revision)) } == answer { try real.stateDigest(at: Revision(revision)) },
                "digest at \(revision)", sourceLocation: sourceLocation)
    }
    #expect(try sim.stateDigest() == real.stateDigest(), sourceLocation: sourceLocation)
    // Roots and proofs at every size.
    let prover = real.makeMerkleProver()
    let size = applied.rawValue
    for m in 0...size + 1 {
        #expect(answer { try sim.rootHash(atSize: m) } == answer { try prover.rootHash(atSize: m) }, "root \(m)", sourceLocation: sourceLocation)
        #expect(
            answer { try sim.consistencyProof(from: m, to: size) } == answer { try prover.consistencyProof(from: m, to: size) },
            "consistency \(m)→\(size)", sourceLocation: sourceLocation)
    }
    for leaf in 0...size {
        for treeSize in Set([size, (size + leaf + 1) / 2, leaf + 1]) {
            #expect(
                answer { try sim.inclusionProof(for: LeafIndex(leaf), treeSize: treeSize) }
                    == answer { try prover.inclusionProof(for: LeafIndex(leaf), treeSize: treeSize) },
                "inclusion \(leaf) in \(treeSize)", sourceLocation: sourceLocation)
        }
    }
    let audit = try sim.auditJournal()
    #expect(audit == (try real.auditJournal()), sourceLocation: sourceLocation)
    #expect(audit.problem == nil, sourceLocation: sourceLocation)
}

/// What a `RaftStorage` shows: bounds, snapshot, hard state, every entry and term.
struct LogView: Equatable {
    var first: Answer<LogIndex>
    var last: Answer<LogIndex>
    var snapshot: Answer<SnapshotMetadata>
    var hardState: Answer<HardState>
    var conf: Answer<ConfState>
    var entries: Answer<[Entry]>
    var limited: Answer<[Entry]>
    var terms: [Answer<Term>]

    init(_ s: some RaftStorage) {
        first = answer { try s.firstIndex() }
        last = answer { try s.lastIndex() }
        snapshot = answer { try s.snapshot().metadata }
        hardState = answer { try s.initialState().0 }
        conf = answer { try s.initialState().1 }
        let lo = (try? s.firstIndex()) ?? LogIndex(1)
        let hi = ((try? s.lastIndex()) ?? .zero) + 1
        entries = answer { try s.entries(from: lo, to: hi, maxBytes: .max) }
        limited = answer { try s.entries(from: lo, to: hi, maxBytes: 60) }
        terms = (0...hi.rawValue + 1).map { i in answer { try s.term(at: LogIndex(i)) } }
    }
}

func logEntries(_ range: ClosedRange<UInt64>, term: UInt64) -> [Entry] {
    range.map { Entry(term: Term(term), index: LogIndex($0), data: [UInt8(truncatingIfNeeded: $0), 1, 2]) }
}

// MARK: Tests

@Suite("SimStore vs the production Store")
struct SimStoreCrossCheckTests {
    @Test("the same entries give the same journal, tree, proofs, reads and digests")
    func sameAnswersAsProduction() throws {
        let dir = SimTestDirectory()
        defer { dir.remove() }
        let disk = SimDisk(name: "n1")
        let pair = try StorePair.open(dir, "n1", disk: disk)
        defer { pair.real.close() }
        for (entries, confState) in crossCheckBatches() {
            try pair.apply(entries, confState: confState)
            try expectSameState(pair.real, pair.sim)
            // Level 1 and a cluster ID from entries 5 and 6 are not enough for this version's
            // leaders: until entry 20 raises the level, a new leader would propose it.
            #expect(try pair.sim.isFounded() == (pair.sim.appliedIndex >= LogIndex(20)), "at \(pair.sim.appliedIndex)")
        }
        // The workload reached what it is meant to exercise.
        #expect(pair.sim.leafV2From == LogIndex(5))
        #expect(try pair.sim.clusterID() == ClusterID(bytes: clusterBytes))
        #expect(try pair.sim.compactedRevision() == Revision(40))
        #expect(pair.sim.confChangeIndexes(after: .zero) == [LogIndex(1), LogIndex(2), LogIndex(3), LogIndex(24), LogIndex(65)])
        #expect(try pair.sim.journalRecord(at: LogIndex(11))?.effects?.outcome == .alreadyExists)
        #expect(try pair.sim.journalRecord(at: LogIndex(13))?.effects?.branch == .then)
        #expect(try pair.sim.journalRecord(at: LogIndex(14))?.effects?.branch == .else)
        #expect(disk.counters.batchesWritten == 13 + 8, "13 apply chunks (groups longer than 8 entries are written in chunks of 8), 8 log appends")
        // Entries at or below the applied index are skipped, a gap is refused: the same on both.
        #expect(try pair.sim.apply(logEntries(60...66, term: 3), confState: nil).isEmpty)
        #expect(answer { try pair.sim.apply(logEntries(68...68, term: 3), confState: nil) }
                == answer { try pair.real.apply(logEntries(68...68, term: 3)) })
        // Reopened, the simulated store finds the same state.
        let reopened = try pair.sim.reopenSim()
        try expectSameState(pair.real, reopened)
    }

    @Test("the Raft log: the conventions and errors of RaftLogStorage")
    func raftLogLikeProduction() throws {
        let dir = SimTestDirectory()
        defer { dir.remove() }
        let disk = SimDisk(name: "n1")
        let real = try Store(path: dir.sub("n1"))
        defer { real.close() }
        let sim = try SimStore(disk: disk)
        let conf = ConfState(voters: [NodeID(1), NodeID(2)])
        enum Step { case persist(RaftLogUpdate), compact(UInt64) }
        let steps: [(Step, synced: Bool?)] = [
            (.persist(RaftLogUpdate(entries: logEntries(1...5, term: 1), hardState: HardState(term: Term(1), vote: NodeID(1), commit: LogIndex(2)))), true),
            (.persist(RaftLogUpdate(entries: logEntries(4...6, term: 2))), true),  // overwrites 4, 5
            (.persist(RaftLogUpdate(entries: logEntries(3...3, term: 3), hardState: HardState(term: Term(3)))), true),  // truncates 4...6
            (.persist(RaftLogUpdate(hardState: HardState(term: Term(3), commit: LogIndex(3)))), false),  // commit only
            (.persist(RaftLogUpdate(entries: logEntries(4...9, term: 3))), true),
            (.compact(2), true),
            (.compact(1), true),  // a no-op, still a synced batch
            (.compact(12), nil),  // beyond the log
            (.persist(RaftLogUpdate(entries: logEntries(11...12, term: 3))), nil),  // a gap
            (.persist(RaftLogUpdate(entries: logEntries(10...10, term: 3) + logEntries(12...12, term: 3))), nil),  // a hole
            (.persist(RaftLogUpdate(snapshot: SnapshotMetadata(index: LogIndex(8), term: Term(3), confState: conf),
                                    entries: logEntries(7...10, term: 4))), true),  // entries ≤ 8 dropped
            (.persist(RaftLogUpdate(entries: logEntries(5...9, term: 5))), true),  // ≤ 8 dropped, 9 overwritten, 10 gone
            (.persist(RaftLogUpdate(snapshot: SnapshotMetadata(index: LogIndex(4), term: Term(2), confState: conf),
                                    entries: logEntries(10...11, term: 5))), true),  // an older snapshot is ignored
            (.persist(RaftLogUpdate(snapshot: SnapshotMetadata(index: LogIndex(20), term: Term(6), confState: conf))), true),
            (.persist(RaftLogUpdate()), false),
        ]
        for (i, (step, synced)) in steps.enumerated() {
            let before = disk.counters
            switch step {
            case .persist(let u):
                #expect(answer { try sim.log.persist(u); return true } == answer { try real.raftLog.persist(u); return true }, "step \(i)")
            case .compact(let index):
                #expect(answer { try sim.log.compact(through: LogIndex(index), confState: conf); return true }
                        == answer { try real.raftLog.compact(through: LogIndex(index), confState: conf); return true }, "step \(i)")
            }
            #expect(LogView(sim.log) == LogView(real.raftLog), "step \(i)")
            let after = disk.counters
            switch synced {
            case nil: #expect(after == before, "step \(i): a refused write writes nothing")
            case let s?:
                #expect(after.batchesWritten == before.batchesWritten + 1, "step \(i)")
                #expect(after.batchesSynced == before.batchesSynced + (s ? 1 : 0), "step \(i): synced \(s)")
            }
        }
        #expect(try sim.log.firstIndex() == LogIndex(21))
        #expect(try sim.log.term(at: LogIndex(20)) == Term(6))
    }

    @Test("founding writes the log a real founding node writes")
    func foundingLog() throws {
        let disk = SimDisk(name: "n1")
        let voters = [NodeID(3), NodeID(1), NodeID(2)]
        try SimStore.found(disk: disk, voters: voters)
        #expect(disk.unsyncedBatches == 0, "the founding log is synced")
        let store = try SimStore(disk: disk)
        #expect(!store.isFresh)
        #expect(LogView(store.log) == LogView(MemoryStorage(bootstrap: voters)))
        store.close()
        #expect(throws: StoreError.self) { try SimStore.found(disk: disk, voters: voters) }
    }
}

@Suite("SimDisk: power loss and failed writes")
struct SimDiskPowerLossTests {
    static let voters = [NodeID(1), NodeID(2), NodeID(3)]

    @Test("applies survive a crash only once flushed; log writes follow the WAL")
    func syncedAndUnsynced() throws {
        let disk = SimDisk(name: "n1")
        try SimStore.found(disk: disk, voters: Self.voters)
        var store = try SimStore(disk: disk)
        try store.apply(bootstrapEntries(voters: Self.voters), confState: ConfState(voters: Self.voters))
        try store.log.persist(RaftLogUpdate(hardState: HardState(term: Term(1), commit: LogIndex(3))))  // unchanged: unsynced
        #expect(disk.unsyncedBatches == 1, "the commit-only log write; the apply is state, outside the WAL")
        #expect(disk.appliedIndex == LogIndex(3) && disk.durableAppliedIndex == .zero)
        disk.powerLoss(keepingUnsynced: 0)
        #expect(disk.counters.batchesLostOnLastPowerLoss == 1)
        #expect(disk.counters.appliedEntriesLost == 3)
        store = try SimStore(disk: disk)
        #expect(store.appliedIndex == .zero, "the unflushed apply is lost")
        #expect(store.appliedConfState == ConfState())
        #expect(try store.log.lastIndex() == LogIndex(3), "the synced founding log survives")
        #expect(try store.log.initialState().0 == HardState(term: Term(1), commit: LogIndex(3)))

        // Applied again, then a synced log write (a vote): a process crash keeps the log and
        // loses the state (it was only in memtables): a synced log write no longer carries it.
        try store.apply(bootstrapEntries(voters: Self.voters), confState: ConfState(voters: Self.voters))
        let applyRoot = store.treeHead.rootHash
        try store.log.persist(RaftLogUpdate(entries: [Entry(term: Term(2), index: LogIndex(4))], hardState: HardState(term: Term(2), vote: NodeID(1), commit: LogIndex(3))))
        #expect(disk.unsyncedBatches == 0)
        disk.processCrash()
        store = try SimStore(disk: disk)
        #expect(store.appliedIndex == .zero)
        #expect(try store.log.lastIndex() == LogIndex(4))

        // Closing flushes: the state survives any crash after it.
        try store.apply(bootstrapEntries(voters: Self.voters), confState: ConfState(voters: Self.voters))
        store.close()
        #expect(disk.durableAppliedIndex == LogIndex(3))
        store = try SimStore(disk: disk)
        try store.log.persist(RaftLogUpdate(hardState: HardState(term: Term(2), vote: NodeID(1), commit: LogIndex(4))))
        try store.apply([Entry(term: Term(2), index: LogIndex(4))], confState: nil)
        disk.powerLoss(keepingUnsynced: 0)
        store = try SimStore(disk: disk)
        #expect(store.appliedIndex == LogIndex(3), "flushed at close; entry 4 was not")
        #expect(store.treeHead.rootHash == applyRoot)
        #expect(store.appliedConfState == ConfState(voters: Self.voters))
        #expect(try store.log.initialState() == (HardState(term: Term(2), vote: NodeID(1), commit: LogIndex(3)), ConfState(voters: Self.voters)))
        #expect(try store.log.lastIndex() == LogIndex(4))
        #expect(try store.auditJournal().problem == nil)

        // flush() (RocksDB's own) makes everything durable.
        try store.apply([Entry(term: Term(2), index: LogIndex(4))], confState: nil)
        disk.flush()
        disk.powerLoss(keepingUnsynced: 0)
        store = try SimStore(disk: disk)
        #expect(store.appliedIndex == LogIndex(4))

        // The bounded replay: every half of `replayEntriesMax` applied entries the store flushes.
        let half = UInt64(SimStore.Options().replayEntriesMax / 2)
        for i in 5...(4 + half) {
            try store.log.persist(RaftLogUpdate(entries: [Entry(term: Term(2), index: LogIndex(i))]))
            try store.apply([Entry(term: Term(2), index: LogIndex(i))], confState: nil)
        }
        #expect(disk.durableAppliedIndex == LogIndex(4 + half))
    }

    /// What the driver can observe of a disk's log, to match a surviving log with the log
    /// after some prefix of the log writes.
    struct LogObserved: Equatable {
        var hardState: HardState
        var lastLogIndex: LogIndex

        init(_ store: SimStore) throws {
            hardState = try store.log.initialState().0
            lastLogIndex = try store.log.lastIndex()
        }
    }

    @Test("a power loss keeps a prefix of the unsynced log batches and the state as last flushed", arguments: [UInt64(1), 2, 3, 4, 5, 6])
    func survivingPrefix(seed: UInt64) throws {
        var rng = SimRandom(seed: seed)
        let disk = SimDisk(name: "n1")
        var options = SimStore.Options()
        options.applyChunkEntries = 3
        options.replayEntriesMax = 10
        var store = try SimStore(disk: disk, options: options)
        // Term 1 first: from here on a commit-index-only update is unsynced.
        try store.log.persist(RaftLogUpdate(hardState: HardState(term: Term(1))))
        var applied: [Entry] = []
        var commit: UInt64 = 0
        var lost = 0
        for _ in 0..<8 {
            // The log after the last synced batch, then after each unsynced one.
            var logStates = [try LogObserved(store)]
            for _ in 0..<rng.int(0..<12) {
                switch rng.int(0..<10) {
                case 0..<6:  // an apply group (chunks of 3; a flush every 5 entries applied)
                    let n = UInt64(rng.int(1..<8))
                    let first = UInt64(applied.count) + 1
                    let group = (first..<first + n).map { i in putEntry(i, term: 1, "k\(rng.int(0..<5))", "v\(i)") }
                    try store.apply(group, confState: nil)
                    applied += group
                    continue  // state only: no log batch
                case 6..<9:  // a commit index only: unsynced
                    commit += 1
                    try store.log.persist(RaftLogUpdate(hardState: HardState(term: Term(1), commit: LogIndex(commit))))
                default:  // log entries: synced, every log batch before is durable
                    let last = try store.log.lastIndex()
                    try store.log.persist(RaftLogUpdate(entries: [Entry(term: Term(1), index: last + 1)], hardState: HardState(term: Term(1), commit: LogIndex(commit))))
                    logStates = []
                }
                logStates.append(try LogObserved(store))
            }
            #expect(logStates.count == disk.unsyncedBatches + 1)
            #expect(disk.appliedIndex.rawValue - disk.durableAppliedIndex.rawValue < 5 + 3, "a flush every 5 entries, chunks of 3")
            let flushed = disk.durableAppliedIndex
            let kept = disk.powerLoss(using: &rng)
            lost += disk.counters.batchesLostOnLastPowerLoss
            #expect(kept + disk.counters.batchesLostOnLastPowerLoss == logStates.count - 1)
            store = try SimStore(disk: disk, options: options)
            #expect(try LogObserved(store) == logStates[kept], "kept \(kept) of \(logStates.count - 1) unsynced log batches")
            // The state is the one last flushed: a replay of exactly the entries up to it.
            #expect(store.appliedIndex == flushed)
            applied = Array(applied.prefix(Int(flushed.rawValue)))
            let replay = try SimStore(disk: SimDisk(name: "replay"), options: options)
            try replay.apply(applied, confState: nil)
            #expect(store.treeHead.rootHash == replay.treeHead.rootHash)
            #expect(try store.stateDigest() == replay.stateDigest())
            #expect(try store.auditJournal().problem == nil)
            commit = try store.log.initialState().0.commit.rawValue
        }
        #expect(disk.counters.batchesLost == lost)
        #expect(disk.counters.powerLosses == 8)
    }

    @Test("a failed write writes nothing, throws a fail-stop error and stops the store")
    func failedWrite() throws {
        let disk = SimDisk(name: "n1")
        try SimStore.found(disk: disk, voters: Self.voters)
        let store = try SimStore(disk: disk)
        disk.failNextWrite(skipping: 1, of: [.apply])
        try store.log.persist(RaftLogUpdate(hardState: HardState(term: Term(2), commit: LogIndex(3))))  // not an apply
        try store.apply([bootstrapEntries(voters: Self.voters)[0]], confState: nil)  // skipped
        let before = (disk.counters, store.appliedIndex, store.treeHead.rootHash, disk.unsyncedBatches)
        let error = try #require(throws: StoreError.self) {
            try store.apply(Array(bootstrapEntries(voters: Self.voters)[1...]), confState: ConfState(voters: Self.voters))
        }
        #expect(error.isFailStop)
        #expect(error.code == .rocksDB && error.rocksDB?.code == .ioError)
        #expect(disk.counters.failedWrites == 1)
        #expect(disk.counters.batchesWritten == before.0.batchesWritten, "nothing of it is written")
        #expect(disk.unsyncedBatches == before.3)
        #expect(store.appliedIndex == before.1 && store.treeHead.rootHash == before.2)
        #expect(store.appliedConfState == ConfState())
        #expect(!disk.isFailureArmed, "one-shot")
        // Fail-stop: the store and its log refuse further writes.
        let again = try #require(throws: StoreError.self) {
            try store.apply(Array(bootstrapEntries(voters: Self.voters)[1...]), confState: nil)
        }
        #expect(again.code == .stopped && again.isFailStop)
        let log = try #require(throws: StoreError.self) { try store.log.persist(RaftLogUpdate(hardState: HardState(term: Term(3)))) }
        #expect(log.code == .stopped)
        // Reads still work; a reopen recovers what was written.
        #expect(store.appliedIndex == LogIndex(1))
        let reopened = try store.reopenSim()
        #expect(reopened.appliedIndex == LogIndex(1))
        try reopened.apply(Array(bootstrapEntries(voters: Self.voters)[1...]), confState: ConfState(voters: Self.voters))
        #expect(reopened.appliedIndex == LogIndex(3))

        // A failed log write: nothing of it is written either.
        disk.failNextWrite(of: [.logPersist])
        let hard = try reopened.log.initialState().0
        #expect(throws: StoreError.self) {
            try reopened.log.persist(RaftLogUpdate(entries: [Entry(term: Term(4), index: LogIndex(4))], hardState: HardState(term: Term(4), vote: NodeID(2))))
        }
        #expect(try reopened.log.initialState().0 == hard)
        #expect(try reopened.log.lastIndex() == LogIndex(3))
    }

    @Test("one store has a disk open at a time; close and reopen hand it over")
    func openLock() throws {
        let disk = SimDisk(name: "n1")
        let store = try SimStore(disk: disk)
        let busy = try #require(throws: StoreError.self) { try SimStore(disk: disk) }
        #expect(!busy.isFailStop)
        store.close()
        #expect(throws: StoreError.self) { try store.apply([putEntry(1, "a", "b")], confState: nil) }
        let second = try SimStore(disk: disk)
        let third = try second.reopenSim()
        try third.apply([putEntry(1, "a", "b")], confState: nil)
        disk.flush()
        disk.powerLoss(keepingUnsynced: 0)
        third.close()  // allowed after a power loss: a no-op
        #expect(try SimStore(disk: disk).appliedIndex == LogIndex(1))
    }

    @Test("a store used after a power loss traps")
    func useAfterPowerLossTraps() async {
        await #expect(processExitsWith: .failure) {
            let disk = SimDisk(name: "n1")
            let store = try SimStore(disk: disk)
            disk.powerLoss(keepingUnsynced: 0)
            _ = store.appliedIndex
        }
    }
}

@Suite("SimStore snapshots")
struct SimStoreSnapshotTests {
    /// Applies the first `groups` cross-check groups to `pair`.
    func fill(_ pair: StorePair, groups: Int) throws -> LogIndex {
        for (entries, confState) in crossCheckBatches().prefix(groups) { try pair.apply(entries, confState: confState) }
        return pair.sim.appliedIndex
    }

    @Test("a checkpoint installed on another disk: same state, and the log production leaves")
    func installLikeProduction() throws {
        let dir = SimTestDirectory()
        defer { dir.remove() }
        let sender = try StorePair.open(dir, "sender", disk: SimDisk(name: "sender"))
        defer { sender.real.close() }
        let index = try fill(sender, groups: 5)
        #expect(index == LogIndex(24))

        // The receivers have a log, a vote and applied entries of their own.
        let ownLog = RaftLogUpdate(entries: logEntries(1...3, term: 7), hardState: HardState(term: Term(7), vote: NodeID(2), commit: LogIndex(1)))
        let receiverDisk = SimDisk(name: "receiver")
        let receiver = try SimStore(disk: receiverDisk)
        try receiver.log.persist(ownLog)
        try receiver.apply(logEntries(1...3, term: 7), confState: nil)

        // Production: stream the checkpoint's files, finish, close and reopen (the swap).
        let source = try sender.real.makeSnapshotSource()
        defer { source.close() }
        do {
            let realReceiver = try Store(path: dir.sub("receiver"))
            try realReceiver.raftLog.persist(ownLog)
            try realReceiver.apply(logEntries(1...3, term: 7))
            let install = try SnapshotReceiver(store: realReceiver, manifest: source.manifest)
            while let chunk = try source.nextChunk() { try install.receive(chunk) }
            try install.finish(hardState: try realReceiver.raftLog.initialState().0)
            realReceiver.close()
        }
        let installedReal = try Store(path: dir.sub("receiver"))
        defer { installedReal.close() }

        // Simulated: the same through SimCheckpoint and SimIncomingSnapshot.
        let checkpoint = try #require(try sender.sim.makeCheckpoint() as? SimCheckpoint)
        #expect(checkpoint.metadata == source.manifest.metadata)
        let incoming = SimIncomingSnapshot(checkpoint: checkpoint, disk: receiverDisk)
        try incoming.finish(hardState: try receiver.log.initialState().0)
        #expect(receiverDisk.hasPendingInstall)
        #expect(receiver.appliedIndex == LogIndex(3), "the live store keeps its state until reopened")
        #expect(try receiver.log.lastIndex() == LogIndex(3))
        let installedSim = try receiver.reopenSim()
        #expect(!receiverDisk.hasPendingInstall)
        #expect(receiverDisk.counters.installsSwappedIn == 1)
        #expect(receiverDisk.counters.batchesWrittenWhileInstallPending == 0)

        try expectSameState(sender.real, installedSim)
        try expectSameState(installedReal, installedSim)
        #expect(LogView(installedSim.log) == LogView(installedReal.raftLog))
        let (hard, conf) = try installedSim.log.initialState()
        #expect(hard == HardState(term: Term(7), vote: NodeID(2), commit: index))
        #expect(conf == checkpoint.metadata.confState)
        #expect(try installedSim.log.firstIndex() == index + 1)
        #expect(try installedSim.log.lastIndex() == index)
        #expect(throws: RaftStorageError.compacted) { try installedSim.log.entries(from: index, to: index + 1, maxBytes: .max) }

        // Both continue identically.
        let installed = StorePair(real: installedReal, sim: installedSim)
        for (entries, confState) in crossCheckBatches().dropFirst(5) { try installed.apply(entries, confState: confState) }
        try expectSameState(installedReal, installedSim)
    }

    @Test("a finished install survives a power loss and is swapped in at the next open")
    func installSurvivesPowerLoss() throws {
        let sender = try SimStore(disk: SimDisk(name: "sender"))
        for (entries, confState) in crossCheckBatches().prefix(3) { try sender.apply(entries, confState: confState) }
        let disk = SimDisk(name: "receiver")
        let receiver = try SimStore(disk: disk)
        try receiver.log.persist(RaftLogUpdate(hardState: HardState(term: Term(9), vote: NodeID(3))))
        try receiver.apply(logEntries(1...2, term: 9), confState: nil)  // unsynced

        // A failed finish leaves nothing to install.
        disk.failNextWrite(of: [.snapshotFinish])
        let incoming = SimIncomingSnapshot(checkpoint: sender.makeSimCheckpoint(), disk: disk)
        #expect(throws: StoreError.self) { try incoming.finish(hardState: HardState(term: Term(9), vote: NodeID(3))) }
        #expect(!disk.hasPendingInstall)

        try incoming.finish(hardState: HardState(term: Term(9), vote: NodeID(3), commit: LogIndex(1)))
        // The finish syncs its own directory, not the live database (whose apply is unflushed).
        #expect(disk.unsyncedBatches == 0 && disk.appliedIndex == LogIndex(2) && disk.durableAppliedIndex == .zero)
        // A write to the old store in between is counted (and lost at the swap).
        try receiver.log.persist(RaftLogUpdate(hardState: HardState(term: Term(10))))
        #expect(disk.counters.batchesWrittenWhileInstallPending == 1)
        disk.powerLoss(keepingUnsynced: 0)
        let installed = try SimStore(disk: disk)
        #expect(installed.appliedIndex == sender.appliedIndex)
        #expect(installed.treeHead.rootHash == sender.treeHead.rootHash)
        #expect(try installed.stateDigest() == sender.stateDigest())
        #expect(try installed.log.initialState().0 == HardState(term: Term(9), vote: NodeID(3), commit: sender.appliedIndex))
        #expect(try installed.range(KVRangeRequest(range: .all)) == sender.range(KVRangeRequest(range: .all)))
        #expect(try installed.log.snapshot().metadata == sender.makeSimCheckpoint().metadata)
        // The install is durable: another power loss keeps it.
        disk.powerLoss(keepingUnsynced: 0)
        #expect(try SimStore(disk: disk).appliedIndex == sender.appliedIndex)
    }
}
