import Foundation

/// The second thread of a pipelined apply (`Store.apply` with more entries than one chunk):
/// it completes chunk n's WriteBatch (the audit chain's hashing and encoding, `ChunkAudit`) and
/// writes it while the applying thread runs the state machine over chunk n + 1. One slot: at
/// most one batch in flight, so the applying thread's overlay is always just the previous
/// chunk's writes.
///
/// Started on first use; a store that only ever applies small groups never starts it.
/// `@unchecked Sendable`: all mutable state is guarded by `condition`.
final class ApplyWriter: @unchecked Sendable {
    /// Unowned: the store owns the database and stops this writer before letting it go. A
    /// strong reference here could make the exiting writer thread drop the last reference and
    /// close RocksDB while the process exits (a crash seen under injected EIO).
    private unowned let db: RocksDB
    private let condition = NSCondition()
    /// The batch to write next (without the WAL: it is state, see `StateFlusher`), and what to
    /// add to it first on this thread.
    private var slot: Job?
    /// The outcome of the last batch taken from `slot`, until `wait` collects it.
    private var outcome: Result<Void, any Error>?
    private var isWriting = false
    private var isStopping = false
    private var thread: Thread?
    private let exited = DispatchSemaphore(value: 0)

    private struct Job {
        var batch: RocksDBWriteBatch
        var complete: (RocksDBWriteBatch) throws -> Void
    }

    init(db: RocksDB) { self.db = db }

    /// Hands `batch` to the writer thread, which calls `complete` on it and then writes it
    /// (not if `complete` throws: `wait` rethrows that). The previous batch must have been
    /// collected with `wait` (one in flight).
    func submit(_ batch: RocksDBWriteBatch, completing complete: @escaping (RocksDBWriteBatch) throws -> Void) {
        condition.withLock {
            precondition(slot == nil && !isWriting && outcome == nil, "apply writer: a batch is still in flight")
            precondition(!isStopping, "apply writer: submit after stop")
            if thread == nil {
                let t = Thread { [self] in run() }
                t.name = "fauna-apply-writer"
                thread = t
                t.start()
            }
            slot = Job(batch: batch, complete: complete)
            condition.broadcast()
        }
    }

    /// Waits for the batch in flight (if any) and returns its outcome: a `RocksDBError` from
    /// the write, or whatever the batch's `complete` threw.
    func wait() throws {
        let result: Result<Void, any Error>? = condition.withLock {
            while slot != nil || isWriting { condition.wait() }
            defer { outcome = nil }
            return outcome
        }
        if case .failure(let e) = result { throw e }
    }

    /// Finishes the batch in flight and ends the thread. Idempotent.
    func stop() {
        let wasRunning = condition.withLock { () -> Bool in
            defer { isStopping = true; condition.broadcast() }
            return thread != nil && !isStopping
        }
        if wasRunning { exited.wait() }
    }

    private func run() {
        while true {
            let job: Job? = condition.withLock {
                while slot == nil && !isStopping { condition.wait() }
                defer { slot = nil }
                if slot != nil { isWriting = true }
                return slot
            }
            guard let job else {
                // The thread object holds this writer through its closure: let go of it, or
                // the writer (and the database it holds) would never be freed.
                condition.withLock { thread = nil }
                break
            }
            let result: Result<Void, any Error>
            do {
                try job.complete(job.batch)
                try db.write(job.batch, sync: false, logged: false)
                result = .success(())
            } catch {
                result = .failure(error)
            }
            condition.withLock {
                outcome = result
                isWriting = false
                condition.broadcast()
            }
        }
        exited.signal()
    }
}
