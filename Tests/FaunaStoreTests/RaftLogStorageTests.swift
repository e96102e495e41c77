import FaunaRaft
import Foundation
import Testing

@testable import FaunaStore

func entry(_ index: UInt64, term: UInt64, _ data: String = "") -> Entry {
    Entry(term: Term(term), index: LogIndex(index), type: .normal, data: Array(data.utf8))
}

func entries(_ range: ClosedRange<UInt64>, term: UInt64) -> [Entry] {
    range.map { entry($0, term: term, "e\($0)") }
}

@Suite("Raft log storage")
struct RaftLogStorageTests {
    @Test func emptyStoreFollowsConventions() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        let log = store.raftLog
        #expect(try log.firstIndex() == LogIndex(1))
        #expect(try log.lastIndex() == LogIndex(0))
        #expect(try log.term(at: LogIndex(0)) == Term(0))
        #expect(throws: RaftStorageError.unavailable) { try log.term(at: LogIndex(1)) }
        #expect(try log.entries(from: LogIndex(1), to: LogIndex(1), maxBytes: 100).isEmpty)
        let (h, c) = try log.initialState()
        #expect(h == HardState() && c == ConfState())
    }

    @Test func appendTruncateAndReadBack() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        let log = store.raftLog
        let hs = HardState(term: Term(2), vote: NodeID(3), commit: LogIndex(2))
        try log.persist(RaftLogUpdate(entries: entries(1...5, term: 1), hardState: hs))
        #expect(try log.lastIndex() == LogIndex(5))
        #expect(try log.initialState().0 == hs)
        #expect(try log.entries(from: LogIndex(2), to: LogIndex(5), maxBytes: .max) == Array(entries(2...4, term: 1)))
        // maxBytes stops early but returns at least one entry.
        #expect(try log.entries(from: LogIndex(1), to: LogIndex(6), maxBytes: 0).count == 1)
        #expect(try log.entries(from: LogIndex(1), to: LogIndex(6), maxBytes: 2 * (Entry.overheadBytes + 2)).count == 2)
        #expect(throws: RaftStorageError.unavailable) { try log.entries(from: LogIndex(1), to: LogIndex(7), maxBytes: 10) }

        // A conflicting suffix from index 3 replaces 3...5 with 3...4 at term 2.
        try log.persist(RaftLogUpdate(entries: entries(3...4, term: 2)))
        #expect(try log.lastIndex() == LogIndex(4))
        #expect(try log.term(at: LogIndex(4)) == Term(2))
        #expect(try log.term(at: LogIndex(2)) == Term(1))
        #expect(throws: RaftStorageError.unavailable) { try log.term(at: LogIndex(5)) }
        #expect(try log.entries(from: LogIndex(1), to: LogIndex(5), maxBytes: .max)
                == Array(entries(1...2, term: 1) + entries(3...4, term: 2)))

        // A gap is refused with a typed error and nothing changes.
        let error = #expect(throws: StoreError.self) { try log.persist(RaftLogUpdate(entries: [entry(9, term: 2)])) }
        #expect(error?.code == .invalidRequest)
        #expect(try log.lastIndex() == LogIndex(4))
    }

    @Test func recentEntriesComeFromMemoryAndMatchTheDisk() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.sub("n1")
        var want: [Entry] = []
        do {
            let store = try Store(path: path)
            defer { store.close() }
            let log = store.raftLog
            try log.persist(RaftLogUpdate(entries: entries(1...5, term: 1)))
            let hits = log.tailReads
            #expect(try log.entries(from: LogIndex(2), to: LogIndex(5), maxBytes: .max) == Array(entries(2...4, term: 1)))
            #expect(log.tailReads == hits + 1, "just written: served from memory")
            // A conflicting suffix replaces 3...5 in memory too.
            try log.persist(RaftLogUpdate(entries: entries(3...4, term: 2)))
            #expect(try log.entries(from: LogIndex(1), to: LogIndex(5), maxBytes: .max)
                    == Array(entries(1...2, term: 1) + entries(3...4, term: 2)))
            #expect(throws: RaftStorageError.unavailable) { try log.entries(from: LogIndex(4), to: LogIndex(6), maxBytes: .max) }
            // Past its bound the tail keeps only the newest entries; older reads go to RocksDB.
            let many = (5...UInt64(3_004)).map { entry($0, term: 2, "m\($0)") }
            try log.persist(RaftLogUpdate(entries: many))
            let before = log.tailReads
            let old = try log.entries(from: LogIndex(10), to: LogIndex(20), maxBytes: .max)
            #expect(old == Array(many[5..<15]))
            #expect(log.tailReads == before, "entries 10...19 have left the tail")
            let recent = try log.entries(from: LogIndex(2_990), to: LogIndex(3_005), maxBytes: .max)
            #expect(recent == Array(many[(2_990 - 5)...]))
            #expect(log.tailReads == before + 1)
            want = try log.entries(from: LogIndex(1), to: LogIndex(3_005), maxBytes: .max)
            #expect(want.count == 3_004)
        }
        // What memory served is what is on disk.
        let store = try Store(path: path)
        defer { store.close() }
        #expect(try store.raftLog.entries(from: LogIndex(1), to: LogIndex(3_005), maxBytes: .max) == want)
        #expect(try store.raftLog.entries(from: LogIndex(2_990), to: LogIndex(3_005), maxBytes: .max) == Array(want[2_989...]))
    }

    @Test func compactionAndReopen() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let conf = ConfState(voters: [NodeID(1), NodeID(2), NodeID(3)])
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            let log = store.raftLog
            try log.persist(RaftLogUpdate(entries: entries(1...10, term: 3)))
            // A node compacts only what it applied (a compaction point above the state on disk
            // is lowered on open: RaftLogStorage.init).
            try store.apply(Array(entries(1...10, term: 3)))
            try log.compact(through: LogIndex(6), confState: conf)
            #expect(try log.firstIndex() == LogIndex(7))
            #expect(try log.term(at: LogIndex(6)) == Term(3))
            #expect(throws: RaftStorageError.compacted) { try log.term(at: LogIndex(5)) }
            #expect(throws: RaftStorageError.compacted) { try log.entries(from: LogIndex(6), to: LogIndex(8), maxBytes: .max) }
            #expect(try log.snapshot().metadata == SnapshotMetadata(index: LogIndex(6), term: Term(3), confState: conf))
            // Compacting at or before the snapshot is a no-op; beyond the log is refused.
            try log.compact(through: LogIndex(4), confState: conf)
            #expect(throws: StoreError.self) { try log.compact(through: LogIndex(11), confState: conf) }
            try log.persist(RaftLogUpdate(hardState: HardState(term: Term(3), vote: NodeID(1), commit: LogIndex(10))))
        }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        let log = store.raftLog
        #expect(try log.firstIndex() == LogIndex(7))
        #expect(try log.lastIndex() == LogIndex(10))
        #expect(try log.term(at: LogIndex(10)) == Term(3))
        // The membership is the applied state's (nothing applied here), not the compaction's.
        #expect(try log.initialState() == (HardState(term: Term(3), vote: NodeID(1), commit: LogIndex(10)), ConfState()))
        #expect(try log.entries(from: LogIndex(7), to: LogIndex(11), maxBytes: .max) == Array(entries(7...10, term: 3)))
        // Compaction deleted nothing: the entries Raft no longer serves are the journal.
        #expect(try store.journalEntries(from: LogIndex(1), to: LogIndex(11), maxBytes: .max) == Array(entries(1...10, term: 3)))
    }

    /// A compaction point above the applied state on disk (the state was not flushed when the
    /// node crashed) is lowered to the applied index on open, so Raft hands out the entries
    /// after it again instead of skipping them.
    @Test func compactionPointAboveTheStateIsLoweredOnOpen() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let conf = ConfState(voters: [NodeID(1)])
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            try store.raftLog.persist(RaftLogUpdate(entries: entries(1...10, term: 3)))
            try store.apply(Array(entries(1...4, term: 3)), sync: true)
            try store.raftLog.compact(through: LogIndex(8), confState: conf)
        }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        #expect(store.appliedIndex == LogIndex(4))
        #expect(try store.raftLog.firstIndex() == LogIndex(5))
        #expect(try store.raftLog.snapshot().metadata.index == LogIndex(4))
        #expect(try store.raftLog.entries(from: LogIndex(5), to: LogIndex(11), maxBytes: .max) == Array(entries(5...10, term: 3)))
    }

    @Test func installedSnapshotRestartsTheLog() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        let log = store.raftLog
        try log.persist(RaftLogUpdate(entries: entries(1...3, term: 1), hardState: HardState(term: Term(4), vote: NodeID(2))))
        let meta = SnapshotMetadata(index: LogIndex(20), term: Term(4), confState: ConfState(voters: [NodeID(1), NodeID(2)]))
        try log.persist(RaftLogUpdate(snapshot: meta, entries: entries(18...22, term: 4)))
        #expect(try log.firstIndex() == LogIndex(21))
        #expect(try log.lastIndex() == LogIndex(22))
        #expect(try log.term(at: LogIndex(20)) == Term(4))
        #expect(try log.initialState().0.vote == NodeID(2))
        // The membership comes from the applied state, which the caller installs with the
        // snapshot's files (`SnapshotReceiver`); this store applied nothing.
        #expect(try log.initialState().1 == store.appliedConfState)
        #expect(try log.entries(from: LogIndex(21), to: LogIndex(23), maxBytes: .max) == Array(entries(21...22, term: 4)))
    }

    /// Many threads append concurrently; every acknowledged entry is durable and the writer
    /// used fewer synced batches than appends (group commit).
    @Test func groupCommitBatchesConcurrentAppends() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let total = 32 * 40
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            let log = store.raftLog
            // With 32 appenders blocked on their fsync, others are always queued behind it.
            let failures = appendFromThreads(32, 40) { [unowned log] _, e, done in
                try log.submit(RaftLogUpdate(entries: [e])) { result in
                    if case .failure = result { done(false) } else { done(true) }
                }
            }
            #expect(failures == 0)
            #expect(try log.lastIndex() == LogIndex(UInt64(total)))
            let (batches, operations) = log.writer.counters
            #expect(operations == total)
            #expect(batches < total, "group commit: \(batches) synced batches for \(total) appends")
        }
        try expectLogHoldsExactly(total, in: dir.sub("n1"))
    }

    /// `persist` writes on the calling thread when the writer is idle and queues otherwise;
    /// mixed with queued appends from other threads, every append must still land once and in
    /// order. (Letting an inline write overlap the writer thread's batch trips the writer's
    /// own gap precondition here.)
    @Test func inlineAndQueuedWritesKeepOneOrder() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let total = 8 * 40
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            let log = store.raftLog
            let failures = appendFromThreads(8, 40) { [unowned log] thread, e, done in
                if thread % 2 == 0 {
                    try log.persist(RaftLogUpdate(entries: [e], hardState: HardState(term: Term(1), commit: e.index)))
                    done(true)
                } else {
                    try log.submit(RaftLogUpdate(entries: [e])) { result in
                        if case .failure = result { done(false) } else { done(true) }
                    }
                }
            }
            #expect(failures == 0)
            #expect(log.writer.counters.operations == total)
        }
        try expectLogHoldsExactly(total, in: dir.sub("n1"))
    }

    /// Reopens the store at `path`: its Raft log must hold exactly entries 1...count.
    private func expectLogHoldsExactly(_ count: Int, in path: String) throws {
        let store = try Store(path: path)
        defer { store.close() }
        let all = try store.raftLog.entries(from: LogIndex(1), to: LogIndex(UInt64(count) + 1), maxBytes: .max)
        #expect(all.map(\.index) == (0..<count).map { LogIndex(UInt64($0 + 1)) })
    }

    /// Appends from `threadsCount` real threads (not concurrentPerform, which runs about one
    /// per core), `perThread` entries each. Each append takes the next index and hands its entry
    /// to `append` in one critical section, so the log order is the index order; `append` (or
    /// its completion) calls `done` with whether the entry is durable. Returns the failures.
    /// A worker thread can outlive `finished.wait()` by a moment, still holding `append`: so
    /// callers capture the log `unowned`, or the database could still be open when a test
    /// reopens it ("already in use").
    private func appendFromThreads(
        _ threadsCount: Int, _ perThread: Int,
        _ append: @escaping @Sendable (_ thread: Int, _ entry: Entry, _ done: @escaping @Sendable (Bool) -> Void) throws -> Void
    ) -> Int {
        let next = NSLock()
        nonisolated(unsafe) var nextIndex: UInt64 = 1  // guarded by `next`
        let failures = AtomicCounter()
        let finished = DispatchGroup()
        for thread in 0..<threadsCount {
            finished.enter()
            Thread {
                for _ in 0..<perThread {
                    let done = DispatchSemaphore(value: 0)
                    do {
                        try next.withLock {
                            let e = entry(nextIndex, term: 1, "x")
                            try append(thread, e) { ok in
                                if !ok { failures.increment() }
                                done.signal()
                            }
                            nextIndex += 1
                        }
                    } catch {
                        failures.increment()
                        done.signal()
                    }
                    done.wait()
                }
                finished.leave()
            }.start()
        }
        finished.wait()
        return failures.value
    }

    /// Only a new commit index may skip the fsync (etcd's MustSync): entries, a snapshot, a
    /// new term or a vote must be durable before the Ready's messages go.
    @Test func onlyACommitIndexSkipsTheFsync() {
        var view = RaftLogStorage.View()
        view.hardState = HardState(term: Term(3), vote: NodeID(2), commit: LogIndex(5))
        func must(_ u: RaftLogUpdate) -> Bool { RaftLogWriter.mustSync(.update(u), after: view) }
        #expect(!must(RaftLogUpdate(hardState: HardState(term: Term(3), vote: NodeID(2), commit: LogIndex(9)))))
        #expect(!must(RaftLogUpdate()))
        #expect(must(RaftLogUpdate(hardState: HardState(term: Term(4), vote: NodeID(2), commit: LogIndex(9)))))
        #expect(must(RaftLogUpdate(hardState: HardState(term: Term(3), vote: NodeID(1), commit: LogIndex(5)))))
        #expect(must(RaftLogUpdate(hardState: HardState(term: Term(3), vote: nil, commit: LogIndex(5)))))
        #expect(must(RaftLogUpdate(entries: [entry(6, term: 3)])))
        #expect(RaftLogWriter.mustSync(.compact(LogIndex(3), ConfState()), after: view))
    }

    /// The term of a compaction point inside entries the same write group puts: the latest
    /// run of entries at or before the index decides, a conflicting suffix replaces what it
    /// overlaps, and one that ends the log earlier leaves nothing after it.
    @Test func batchEntriesAnswerTermsAsTheWriteLeavesThem() {
        var b = BatchEntries()
        #expect(b.term(at: LogIndex(1)) == nil)
        b.runs.append((1...10).map { entry(UInt64($0), term: 1) }[...])
        #expect(b.term(at: LogIndex(1)) == Term(1))
        #expect(b.term(at: LogIndex(10)) == Term(1))
        #expect(b.term(at: LogIndex(11)) == nil)
        // A conflicting suffix from 6 on, shorter than what it replaces.
        b.runs.append((6...8).map { entry(UInt64($0), term: 2) }[...])
        #expect(b.term(at: LogIndex(5)) == Term(1))
        #expect(b.term(at: LogIndex(6)) == Term(2))
        #expect(b.term(at: LogIndex(8)) == Term(2))
        #expect(b.term(at: LogIndex(9)) == nil, "truncated by the later run")
        // Appended after it again.
        b.runs.append((9...12).map { entry(UInt64($0), term: 3) }[...])
        #expect(b.term(at: LogIndex(9)) == Term(3))
        #expect(b.term(at: LogIndex(7)) == Term(2))
        #expect(b.term(at: LogIndex(2)) == Term(1))
        // A slice that does not start at 0 (what `drop` leaves).
        var c = BatchEntries()
        c.runs.append((1...6).map { entry(UInt64($0), term: 4) }.dropFirst(3))
        #expect(c.term(at: LogIndex(3)) == nil)
        #expect(c.term(at: LogIndex(4)) == Term(4))
        #expect(c.term(at: LogIndex(6)) == Term(4))
    }

    @Test func asyncPersist() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        try await store.raftLog.persist(RaftLogUpdate(entries: entries(1...3, term: 1)))
        #expect(try store.raftLog.lastIndex() == LogIndex(3))
    }

    /// The queue is bounded: with the writer held inside a completion, the third pending update
    /// is refused with `.overloaded`, and everything accepted is written once it is released.
    @Test func fullQueueIsOverloaded() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = Store.Options()
        options.logPendingUpdatesMax = 2
        let store = try Store(path: dir.sub("n1"), options: options)
        defer { store.close() }
        let log = store.raftLog
        let entered = DispatchSemaphore(value: 0), gate = DispatchSemaphore(value: 0)
        try log.submit(RaftLogUpdate(entries: [entry(1, term: 1)])) { _ in
            entered.signal()
            gate.wait()  // holds the writer thread
        }
        entered.wait()
        let done = DispatchSemaphore(value: 0)
        try log.submit(RaftLogUpdate(entries: [entry(2, term: 1)])) { _ in done.signal() }
        try log.submit(RaftLogUpdate(entries: [entry(3, term: 1)])) { _ in done.signal() }
        let error = #expect(throws: StoreError.self) {
            try log.submit(RaftLogUpdate(entries: [entry(4, term: 1)])) { _ in }
        }
        #expect(error?.code == .overloaded)
        #expect(error?.isFailStop == false)
        gate.signal()
        done.wait()
        done.wait()
        #expect(try log.lastIndex() == LogIndex(3))
    }

    @Test func corruptEntryIsATypedError() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            try store.raftLog.persist(RaftLogUpdate(entries: entries(1...3, term: 1)))
            try store.db.put(store.cfs.log, RaftKey.entry(LogIndex(2)), [9, 9], sync: true)
            try store.db.put(store.cfs.meta, MetaKey.raftHardState, [1, 2, 3], sync: true)
        }
        let error = #expect(throws: StoreError.self) { _ = try Store(path: dir.sub("n1")) }
        #expect(error?.code == .corruptRecord)
        #expect(error?.isFailStop == true)
        #expect(error?.message.contains("column family meta") == true, "\(String(describing: error))")
    }
}

/// A thread-safe counter for tests.
final class AtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
