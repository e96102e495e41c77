import FaunaRaft
import Foundation

/// Flushes the applied state to disk in the background. The state families are written
/// without RocksDB's WAL (the entry log is their WAL), so a crash loses what is only in
/// memtables and the node re-applies it from the log; this bounds how much that can be
/// (`Store.Options.replayEntriesMax`). RocksDB also flushes on its own when memtables fill up,
/// which only makes the state on disk newer than `flushedIndex` says.
///
/// Every `replayEntriesMax / 2` applied entries (an interval) a flush is requested, when the
/// applied index passes the point `phase` of the way into an interval; this thread runs it (an
/// atomic flush of every state family: after a crash all of them stand at one write) and then
/// records the index it covers. An apply that gets `replayEntriesMax` entries ahead of the last
/// finished flush waits for it: a crash never re-applies more than that. A failed flush is
/// fail-stop: the next apply throws it.
///
/// `@unchecked Sendable`: all mutable state is guarded by `condition`.
final class StateFlusher: @unchecked Sendable {
    /// Unowned, as in `ApplyWriter`: the store owns the database and stops this flusher first.
    /// A strong reference would keep the database open (and its LOCK held) until the exiting
    /// thread lets go of this object, after `stop()` returned.
    private unowned let db: RocksDB
    private let families: [RocksDBColumnFamily]
    private let replayEntriesMax: UInt64
    /// `replayEntriesMax / 2`, and where in each interval of it a flush is requested (entries).
    private let interval: UInt64
    private let offset: UInt64
    private let condition = NSCondition()
    private var flushed: LogIndex
    /// The index of the last flush requested, and the one waiting to run (nil: none).
    private var lastRequested: LogIndex
    private var pending: LogIndex?
    private var failure: StoreError?
    private var isStopping = false
    private var thread: Thread?
    private let exited = DispatchSemaphore(value: 0)
    /// Flushes run so far (tests, status).
    private(set) var flushCount = 0

    init(db: RocksDB, families: [RocksDBColumnFamily], flushedIndex: LogIndex, replayEntriesMax: Int, phase: Double = 0) {
        precondition(replayEntriesMax >= 2, "replayEntriesMax \(replayEntriesMax)")
        precondition(phase >= 0 && phase < 1, "phase \(phase)")
        self.db = db
        self.families = families
        self.replayEntriesMax = UInt64(replayEntriesMax)
        let interval = UInt64(replayEntriesMax / 2)
        self.interval = interval
        self.offset = Self.offset(interval: interval, phase: phase)
        self.flushed = flushedIndex
        self.lastRequested = flushedIndex
        let t = Thread { [self] in run() }
        t.name = "fauna-state-flusher"
        thread = t
        t.start()
    }

    /// The applied index the state on disk is known to have reached.
    var flushedIndex: LogIndex { condition.withLock { flushed } }

    /// Records a flush made elsewhere (`Store.flushState`).
    func flushed(through index: LogIndex) {
        condition.withLock {
            if index > flushed { flushed = index }
            if index > lastRequested { lastRequested = index }
            condition.broadcast()
        }
    }

    /// Called after the writes of every entry up to `index` reached the memtables: requests a
    /// flush when `index` enters a new interval (so at most an interval and one apply call
    /// apart), and waits while `index` is a whole bound ahead of the last finished flush.
    /// Throws a failed flush's error (fail-stop).
    func applied(through index: LogIndex) throws(StoreError) {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw failure }
        if Self.slot(of: index, interval: interval, offset: offset) > Self.slot(of: lastRequested, interval: interval, offset: offset) {
            lastRequested = index
            pending = index
            condition.broadcast()
        }
        while failure == nil && !isStopping && index.rawValue >= flushed.rawValue + replayEntriesMax {
            condition.wait()
        }
        if let failure { throw failure }
    }

    /// Where in an interval of `interval` entries the flushes of `phase` fall: in 0..<interval.
    static func offset(interval: UInt64, phase: Double) -> UInt64 {
        min(UInt64(Double(interval) * phase), interval - 1)
    }

    /// Which interval `index` lies in, the intervals starting `offset` entries past the
    /// multiples of `interval`: a flush is requested when this grows. (Wrapping: an index
    /// within `interval` of `UInt64.max` is never reached by a log.)
    static func slot(of index: LogIndex, interval: UInt64, offset: UInt64) -> UInt64 {
        (index.rawValue &+ (interval - offset)) / interval
    }

    /// Stops the thread after the flush in progress, if any. Idempotent.
    func stop() {
        let wasRunning = condition.withLock { () -> Bool in
            defer { isStopping = true; condition.broadcast() }
            return thread != nil && !isStopping
        }
        if wasRunning { exited.wait() }
    }

    private func run() {
        while true {
            condition.lock()
            while pending == nil && !isStopping { condition.wait() }
            guard let index = pending, !isStopping else {
                condition.unlock()
                break
            }
            pending = nil
            condition.unlock()
            do {
                try db.flush(families)
                condition.withLock {
                    if index > flushed { flushed = index }
                    flushCount += 1
                    condition.broadcast()
                }
            } catch {
                condition.withLock {
                    failure = StoreError(error)
                    condition.broadcast()
                }
                break
            }
        }
        // The thread's closure holds this object: let go of it, or neither is freed.
        condition.withLock { thread = nil }
        exited.signal()
    }
}
