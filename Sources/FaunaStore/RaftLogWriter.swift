import FaunaRaft
import Foundation

/// The group-commit writer of the Raft log: one dedicated thread takes every update queued
/// while its previous fsync was in flight and writes them as ONE synced WriteBatch, then
/// publishes the new durable view and runs the completions (docs/STORAGE.md "Write rules").
///
/// A caller that waits anyway and finds the writer idle writes on its own thread instead
/// (`writeInline`): a node's owner thread has one update in flight at a time, so the hand-off
/// to the writer thread and back never batched anything for it and cost two context switches
/// per write — a large share of a node's CPU at low load (docs/PERFORMANCE.md).
///
/// Bounded: at most `pendingUpdatesMax` queued updates (submit throws `.overloaded` beyond)
/// and `batchUpdatesMax` updates per batch. Fail-stop: after a failed write every pending and
/// later update fails with `.stopped`; the node must reopen from disk.
///
/// `@unchecked Sendable`: all mutable state is guarded by `condition`; the thread only
/// touches `storage`'s view through its lock.
final class RaftLogWriter: @unchecked Sendable {
    enum Operation: Sendable {
        case update(RaftLogUpdate)
        case compact(LogIndex, ConfState)
    }

    private struct Pending {
        var operation: Operation
        var completion: @Sendable (Result<Void, StoreError>) -> Void
    }

    /// The storage this writer feeds; it owns the writer and stops it before going away.
    private unowned let storage: RaftLogStorage
    private let condition = NSCondition()
    private let pendingUpdatesMax: Int
    private let batchUpdatesMax = 1024
    private var queue: [Pending] = []
    /// Last index / snapshot index once everything queued is written (submit-time checks).
    private var acceptedLastIndex: LogIndex
    private var acceptedSnapshotIndex: LogIndex
    private var failure: StoreError?
    private var isStopping = false
    /// A batch is being written, by the writer thread or inline: the other waits, so batches
    /// are written one at a time, in the order they were accepted.
    private var isWriting = false
    private let exited = DispatchSemaphore(value: 0)
    private var thread: Thread?

    /// Batches written so far (synced, or only a commit index), and updates they carried (for tests and benchmarks).
    private(set) var syncedBatchCount = 0
    private(set) var writtenOperationCount = 0

    init(storage: RaftLogStorage, pendingUpdatesMax: Int) {
        precondition(pendingUpdatesMax > 0, "pendingUpdatesMax \(pendingUpdatesMax)")
        self.storage = storage
        self.pendingUpdatesMax = pendingUpdatesMax
        let v = storage.currentView
        acceptedLastIndex = v.lastIndex
        acceptedSnapshotIndex = v.snapshot.index
        let t = Thread { [self] in run() }
        t.name = "fauna-raft-log-writer"
        thread = t
        t.start()
    }

    var counters: (batches: Int, operations: Int) {
        condition.withLock { (syncedBatchCount, writtenOperationCount) }
    }

    /// Stops after writing what is queued. Idempotent.
    func stop() {
        let wasRunning = condition.withLock { () -> Bool in
            defer { isStopping = true; condition.broadcast() }
            return thread != nil && !isStopping
        }
        if wasRunning { exited.wait() }
    }

    func submit(
        _ op: Operation, completion: @escaping @Sendable (Result<Void, StoreError>) -> Void
    ) throws(StoreError) {
        condition.lock()
        defer { condition.unlock() }
        try checkOpen()
        guard queue.count < pendingUpdatesMax else {
            throw StoreError(.overloaded, "raft log queue full: got \(queue.count) pending, max \(pendingUpdatesMax)")
        }
        try accept(op)
        queue.append(Pending(operation: op, completion: completion))
        condition.signal()
    }

    /// Writes `op` as one synced batch on the calling thread if nothing is queued or being
    /// written; otherwise queues it behind the rest and waits. Either way returns once `op` is
    /// durable.
    func writeInline(_ op: Operation) throws(StoreError) {
        /// Takes the write for this thread if the writer is idle (under the lock).
        func claim() throws(StoreError) -> Bool {
            condition.lock()
            defer { condition.unlock() }
            try checkOpen()
            guard queue.isEmpty && !isWriting else { return false }
            try accept(op)
            isWriting = true
            return true
        }
        guard try claim() else {
            try submitAndWait(op)
            return
        }
        let box = ResultBox()
        write([Pending(operation: op, completion: { box.result = $0 })])
        if case .failure(let e) = box.result { throw e }
    }

    func submitAndWait(_ op: Operation) throws(StoreError) {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox()
        try submit(op) { result in
            box.result = result
            done.signal()
        }
        done.wait()
        if case .failure(let e) = box.result { throw e }
    }

    /// Throws unless the writer takes writes: not stopped by a failure, not closing. Under the lock.
    private func checkOpen() throws(StoreError) {
        if let failure { throw StoreError(.stopped, "raft log stopped after a failed write: \(failure.message)") }
        guard !isStopping else { throw StoreError(.closed, "raft log writer is closed") }
    }

    /// Checks `op` against the state after everything already queued, and records its effect.
    private func accept(_ op: Operation) throws(StoreError) {
        switch op {
        case .update(let u):
            if let s = u.snapshot, s.index > acceptedSnapshotIndex {
                acceptedSnapshotIndex = s.index
                acceptedLastIndex = s.index
            }
            let entries = u.entries.drop { $0.index <= acceptedSnapshotIndex }
            guard let first = entries.first?.index else { return }
            guard first <= acceptedLastIndex + 1 else {
                throw StoreError(.invalidRequest, "append leaves a gap: got first index \(first), want ≤ \(acceptedLastIndex + 1)")
            }
            var expected = first
            for e in entries {
                guard e.index == expected else {
                    throw StoreError(.invalidRequest, "entries not contiguous: got index \(e.index), want \(expected)")
                }
                expected = expected + 1
            }
            acceptedLastIndex = expected - 1
        case .compact(let index, _):
            guard index > acceptedSnapshotIndex else { return }
            guard index <= acceptedLastIndex else {
                throw StoreError(.invalidRequest, "compact beyond the log: got \(index), last \(acceptedLastIndex)")
            }
            acceptedSnapshotIndex = index
        }
    }

    private func run() {
        while true {
            condition.lock()
            while (queue.isEmpty && !isStopping) || isWriting { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                break
            }
            let take = min(queue.count, batchUpdatesMax)
            let group = Array(queue.prefix(take))
            queue.removeFirst(take)
            isWriting = true
            condition.unlock()
            write(group)
        }
        // The thread object holds this writer through its closure: let go of it, or neither
        // is ever freed.
        condition.withLock { thread = nil }
        exited.signal()
    }

    /// Writes `group` as one synced batch, then clears `isWriting` (the caller set it) and
    /// runs the completions.
    private func write(_ group: [Pending]) {
        var view = storage.currentView
        let batch = storage.db.makeWriteBatch()
        do {
            var batchEntries = BatchEntries()
            var sync = false
            for p in group {
                sync = sync || Self.mustSync(p.operation, after: view)
                try add(p.operation, to: batch, view: &view, batchEntries: &batchEntries)
            }
            try storage.diskGuard.check(adding: batch.dataBytes, operation: "raft log write")
            try storage.db.write(batch, sync: sync)
        } catch {
            let e = (error as? StoreError) ?? (error as? RocksDBError).map(StoreError.init)
                ?? StoreError(.rocksDB, "\(error)")
            fail(group, e)
            return
        }
        storage.publish(view, written: group.map(\.operation))
        condition.withLock {
            syncedBatchCount += 1
            writtenOperationCount += group.count
            isWriting = false
            // Only the writer thread waits on the condition, and only for a queued update
            // (or to stop) once no batch is being written: waking it for an inline write
            // with nothing queued cost a futex wake and a context switch per Ready.
            if !queue.isEmpty || isStopping { condition.broadcast() }
        }
        for p in group { p.completion(.success(())) }
    }

    /// Whether `op` must be durable before its Ready's messages go: anything but a new commit
    /// index. A commit index is only ever lower than the truth when lost, and a restart takes
    /// the larger of it and the applied index (etcd's `MustSync` rule). Unsynced, it still
    /// goes to the WAL in order, and the next synced batch makes it durable too. This takes
    /// the fsync off the Ready that hands out newly committed entries, which the leader's
    /// owner thread would otherwise wait for before answering the writes.
    static func mustSync(_ op: Operation, after view: RaftLogStorage.View) -> Bool {
        switch op {
        case .compact: return true
        case .update(let u):
            if u.snapshot != nil || !u.entries.isEmpty { return true }
            guard let h = u.hardState else { return false }
            return h.term != view.hardState.term || h.vote != view.hardState.vote
        }
    }

    private func fail(_ group: [Pending], _ error: StoreError) {
        let rest = condition.withLock { () -> [Pending] in
            failure = error
            isWriting = false
            condition.broadcast()
            defer { queue.removeAll() }
            return queue
        }
        for p in group + rest { p.completion(.failure(error)) }
    }

    private func add(
        _ op: Operation, to batch: RocksDBWriteBatch, view v: inout RaftLogStorage.View,
        batchEntries: inout BatchEntries
    ) throws {
        let cf = storage.cf
        let meta = storage.meta
        switch op {
        case .update(let u):
            if let s = u.snapshot, s.index > v.snapshot.index {
                // etcd semantics: a snapshot the core hands over replaces the whole log (no
                // journal survives it: a node installs snapshots through `SnapshotReceiver`,
                // whose checkpoint brings the sender's journal; this path serves tests).
                batch.deleteRange(cf, from: RaftKey.entry(.zero), to: RaftKey.entriesEnd)
                batch.put(meta, MetaKey.raftSnapshot, RaftLogCodec.encode(snapshot: s))
                batchEntries.runs.removeAll()
                v.snapshot = s
                v.lastIndex = s.index
                v.lastTerm = s.term
            }
            let entries = u.entries.drop { $0.index <= v.snapshot.index }
            if let first = entries.first, let last = entries.last {
                precondition(first.index <= v.lastIndex + 1, "gap passed submit: \(first.index) > \(v.lastIndex + 1)")
                if last.index < v.lastIndex {
                    batch.deleteRange(cf, from: RaftKey.entry(last.index + 1), to: RaftKey.entry(v.lastIndex + 1))
                }
                for e in entries { batch.put(cf, RaftKey.entry(e.index), RaftLogCodec.encode(entry: e)) }
                batchEntries.runs.append(entries)
                v.lastIndex = last.index
                v.lastTerm = last.term
            }
            if let h = u.hardState {
                batch.put(meta, MetaKey.raftHardState, RaftLogCodec.encode(hardState: h))
                v.hardState = h
            }
        case .compact(let index, let conf):
            guard index > v.snapshot.index else { return }
            precondition(index <= v.lastIndex, "compact passed submit: \(index) > \(v.lastIndex)")
            let term = try batchEntries.term(at: index) ?? (index == v.lastIndex ? v.lastTerm : storage.storedTerm(at: index, view: v))
            // Nothing is deleted: the entries are the journal (ADR 0010).
            let point = SnapshotMetadata(index: index, term: term, confState: conf)
            batch.put(meta, MetaKey.raftSnapshot, RaftLogCodec.encode(snapshot: point))
            v.snapshot = point
        }
    }
}

/// The entries a batch being built has put so far, for the term of a compaction point inside
/// them (not yet readable from RocksDB). Kept as the updates' own runs of entries: a
/// dictionary of index → term cost a hash insert per entry written.
struct BatchEntries {
    /// In the order they were added; a later run replaces what it overlaps of earlier ones
    /// (a conflicting suffix) and what lies after it (its update truncated the log there).
    var runs: [ArraySlice<Entry>] = []

    /// The term of the entry at `index` as this batch leaves it; nil if it did not put one.
    func term(at index: LogIndex) -> Term? {
        for run in runs.reversed() {
            guard let first = run.first?.index, first <= index else { continue }
            // The latest run starting at or before `index` decides: it holds it, or it ended
            // the log before it.
            guard index.rawValue - first.rawValue < UInt64(run.count) else { return nil }
            return run[run.startIndex + Int(index.rawValue - first.rawValue)].term
        }
        return nil
    }
}

/// Carries a result from the writer thread to a waiting thread; the semaphore orders access.
private final class ResultBox: @unchecked Sendable {
    var result: Result<Void, StoreError> = .success(())
}
