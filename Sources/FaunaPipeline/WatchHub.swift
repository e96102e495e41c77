import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaStore
import Foundation

/// Bounds and timing of a node's watches (docs/PROTOCOL.md "Watch").
public struct WatchSettings: Sendable {
    /// Watches open on the node at once; more are answered `overloaded`.
    public var watchersMax = 10_000
    /// Watches open on one connection at once (each is also a request in flight there).
    public var watchersPerConnectionMax = 512
    /// Memory for the recent changes every watcher reads from (the ring); a watcher behind
    /// it reads from the store instead.
    public var ringBytesMax = 16 << 20
    /// Apply batches the ring holds at most.
    public var ringSegmentsMax = 4096
    /// Event bytes in one frame, about (an entry's events may be split over frames).
    public var frameBytesMax = 1 << 20
    /// Event bytes sent to one watcher in one pass, about: a watcher far behind does not
    /// hold the others up.
    public var passBytesPerWatcherMax = 2 << 20
    /// Entries one store read covers at most, and event bytes it gathers, about.
    public var readEntriesMax = 4096
    public var readBytesMax = 1 << 20
    /// Store reads queued for the apply stage at once.
    public var readsInFlightMax = 4
    /// How long a watch that asked for progress notifications may go without a frame.
    public var progressInterval: Duration = .seconds(5)
    /// How often a pass runs while some watcher waits for its connection to drain.
    public var retryInterval: Duration = .milliseconds(50)

    public init() {}
}

/// A store read for one watcher, run by the apply stage between applies (`ApplyJob.watchRead`).
public struct WatchRead: Sendable {
    let key: WatchKey
    let request: WatchRequest
    /// The first revision to read.
    let from: UInt64
    let entriesMax: Int
    let bytesMax: Int
}

/// What a store read found.
public enum WatchReadResult: Sendable {
    /// The events of revisions `from..<next`, in order.
    case events([WatchEvent], next: UInt64)
    /// The changes from `from` are gone; the first revision still kept.
    case compacted(firstKept: UInt64)
    /// The store failed or refused (the watch is ended with this reason).
    case failed(String)
}

struct WatchKey: Hashable, Sendable {
    let connection: ObjectIdentifier
    let request: RequestID
}

/// The node's watches: every change the apply stage applies is published here, kept for a
/// while in a bounded ring, and sent to each watcher whose range it touches, in revision
/// order, with no event lost or repeated. A watcher that falls behind (its connection reads
/// slowly, or it starts in the past) is not buffered: it keeps only its next revision and
/// catches up from the ring, or from the store (journal effects and MVCC history) through
/// reads the apply stage runs, like etcd's unsynced watchers. So memory is the ring plus a
/// few reads, whatever the watchers do.
///
/// Threads: `handle` runs on event loops, `published` and `reset` on the apply thread, read
/// results arrive from the apply thread; all of them only queue a command under `lock`. One
/// thread (faunad's `fauna-watch`) calls `runPass` in a loop, and it alone touches the
/// watchers.
public final class WatchHub: @unchecked Sendable {
    // @unchecked Sendable: `lock` guards `commands`, `segments`, `ringBytesHeld`, `coveredFrom`,
    // `applied`, `wake` and `stopReason`; the rest belongs to the thread that runs passes.
    private let settings: WatchSettings
    private let lock = NSCondition()
    private var commands: [Command] = []
    private var segments: [Segment] = []
    private var ringBytesHeld = 0
    /// Every applied entry from here to `applied` is in the ring (those with writes).
    private var coveredFrom: UInt64
    private var applied: UInt64
    private var wake = false
    private var stopReason: String?
    /// The last pass ended with watchers open: only then does a publish wake the pass thread
    /// (with no watchers, a wake per apply batch cost a context switch per put for nothing).
    private var passWantsApplies = false

    /// Deliberate lies for tests (debug builds with `FAUNA_TEST_FAULT`); nil otherwise.
    public var decorator: (any AnswerDecorator)?

    /// Posts a store read to the apply stage; false when its queue is full (retried later).
    public var postRead: (@Sendable (WatchRead, @escaping @Sendable (WatchReadResult) -> Void) -> Bool)?

    private var watchers: [WatchKey: Watcher] = [:]
    private var perConnection: [ObjectIdentifier: Int] = [:]
    /// The applied index the last pass sent through: watchers caught up then want the
    /// entries after it, which a pass indexes by key once for all of them (`FreshWrites`).
    private var lastPassApplied: UInt64 = 0
    private var readsInFlight = 0
    private let startedAt = ContinuousClock.now

    private enum Command {
        case create(WatchRequest, RPCRequestContext)
        case cancel(RequestID, RPCRequestContext)
        case readDone(WatchKey, WatchReadResult)
    }

    /// One apply batch's changes.
    fileprivate final class Segment: Sendable {
        /// The applied indexes it covers, all of them (entries without writes are left out).
        let first: UInt64
        let last: UInt64
        let entries: [(index: UInt64, writes: [KVEntryEffects.Write])]
        let bytes: Int
        init(first: UInt64, last: UInt64, entries: [(index: UInt64, writes: [KVEntryEffects.Write])], bytes: Int) {
            self.first = first
            self.last = last
            self.entries = entries
            self.bytes = bytes
        }
    }

    private struct Watcher {
        let context: RPCRequestContext
        let request: WatchRequest
        /// The next revision whose changes it has not been sent.
        var next: UInt64
        /// A store read for it is out.
        var reading = false
        /// Its first store read has not answered yet (the start revision is still unchecked).
        var checked = false
        var lastFrame: ContinuousClock.Instant
    }

    /// A hub whose ring starts after `appliedIndex` (the store's applied index at start).
    public init(settings: WatchSettings = WatchSettings(), appliedIndex: LogIndex) {
        self.settings = settings
        self.applied = appliedIndex.rawValue
        self.coveredFrom = appliedIndex.rawValue + 1
    }

    // MARK: Producers (any thread)

    /// Takes `watch` and `watchCancel` requests; false for any other message.
    /// The node's auth gate: watches are checked against it; nil (the node simulator's tests
    /// without auth): not checked.
    public var auth: AuthGate?

    public func handle(_ message: RPCMessage, _ context: RPCRequestContext) -> Bool {
        let command: Command
        switch message {
        case .watch(var request):
            // A watch stops below the system key space, and needs read permission on its range
            // (checked when it starts, as etcd does).
            request.range = KVSystemKeys.clipped(request.range)
            if let refusal = auth?.checkRead(context, request.range) {
                context.respond(refusal)
                return true
            }
            command = .create(request, context)
        case .watchCancel(let id): command = .cancel(id, context)
        default: return false
        }
        let refusal: String? = locked {
            if let stopReason { return stopReason }
            commands.append(command)
            wake = true
            lock.signal()
            return nil
        }
        if let refusal { context.respond(.error(RPCErrorResponse(.unavailable, refusal))) }
        return true
    }

    /// The apply stage applied `entries` (contiguous, ascending); called on the apply thread.
    public func published(_ entries: [AppliedEntry]) {
        guard let last = entries.last?.index.rawValue, let first = entries.first?.index.rawValue else { return }
        var kept: [(index: UInt64, writes: [KVEntryEffects.Write])] = []
        var bytes = 64
        for e in entries where !e.writes.isEmpty {
            kept.append((e.index.rawValue, e.writes))
            for w in e.writes { bytes += 48 + w.key.count + (w.record?.value.count ?? 0) }
        }
        let segment = Segment(first: first, last: last, entries: kept, bytes: bytes)
        locked {
            if first != applied + 1 {
                // Not contiguous (a snapshot was installed in between): start the ring over.
                segments.removeAll()
                ringBytesHeld = 0
                coveredFrom = first
            }
            applied = last
            segments.append(segment)
            ringBytesHeld += segment.bytes
            while segments.count > 1 && (ringBytesHeld > settings.ringBytesMax || segments.count > settings.ringSegmentsMax) {
                let dropped = segments.removeFirst()
                ringBytesHeld -= dropped.bytes
                coveredFrom = dropped.last + 1
            }
            if passWantsApplies {
                wake = true
                lock.signal()
            }
        }
    }

    /// The store was replaced (a snapshot install): the ring starts over after `appliedIndex`.
    public func reset(appliedIndex: LogIndex) {
        locked {
            segments.removeAll()
            ringBytesHeld = 0
            applied = appliedIndex.rawValue
            coveredFrom = applied + 1
            wake = true
            lock.signal()
        }
    }

    /// Ends every watch with `unavailable` at the next pass and refuses new ones; `runPass`
    /// then returns false.
    public func stop(_ reason: String) {
        locked {
            if stopReason == nil { stopReason = reason }
            wake = true
            lock.signal()
        }
    }

    // MARK: The pass (one thread)

    /// Waits until something was published or queued, or `timeout` passed.
    public func waitForWork(timeout: Duration) {
        lock.lock()
        defer { lock.unlock() }
        if !wake {
            let c = timeout.components
            _ = lock.wait(until: Date(timeIntervalSinceNow: Double(c.seconds) + Double(c.attoseconds) / 1e18))
        }
        wake = false
    }

    /// Runs the commands queued since the last pass and sends each watcher what it has not
    /// been sent yet. Returns how long the caller may wait before the next pass (it is woken
    /// earlier by new work), or nil once the hub is stopped and every watch ended.
    public func runPass() -> Duration? {
        let (queued, ring, ringFrom, appliedNow, stopping) = locked {
            let taken = commands
            commands.removeAll(keepingCapacity: true)
            return (taken, segments, coveredFrom, applied, stopReason)
        }
        var out = RPCResponseBatch()
        defer { out.send() }
        if let stopping {
            for (_, w) in watchers { out.add(.error(RPCErrorResponse(.unavailable, stopping)), for: w.context) }
            for case .create(_, let context) in queued { out.add(.error(RPCErrorResponse(.unavailable, stopping)), for: context) }
            watchers.removeAll()
            perConnection.removeAll()
            return nil
        }
        defer {
            // A watcher opened in this pass wants what was published while it ran, unsignalled.
            locked {
                passWantsApplies = !watchers.isEmpty
                if passWantsApplies && applied != appliedNow { wake = true }
            }
        }
        let now = ContinuousClock.now
        for command in queued {
            switch command {
            case .create(let request, let context): create(request, context, applied: appliedNow, now: now, into: &out)
            case .cancel(let id, let context):
                let key = WatchKey(connection: context.connectionID, request: id)
                let found = watchers[key] != nil
                if let w = watchers[key] {
                    out.add(.watchResponse(.canceled(reason: "canceled by the client")), for: w.context)
                    remove(key)
                }
                out.add(.watchCancelResponse(found: found), for: context)
            case .readDone(let key, let result): readDone(key, result, now: now, into: &out)
            }
        }
        var waiting = false
        // The entries since the last pass, sorted by key, when enough watchers are caught up
        // to that pass: each then finds its events by binary search instead of scanning them.
        var fresh: FreshWrites?
        let passFrom = lastPassApplied + 1
        if passFrom >= ringFrom, passFrom <= appliedNow,
            watchers.values.lazy.filter({ $0.next == passFrom }).prefix(FreshWrites.watchersMin).count == FreshWrites.watchersMin
        {
            fresh = FreshWrites(ring, from: passFrom)
        }
        defer { lastPassApplied = appliedNow }
        for key in Array(watchers.keys) {
            guard var w = watchers[key] else { continue }
            guard w.context.isOpen else {
                remove(key)
                continue
            }
            guard !w.reading else { continue }
            // The store serves a watcher not yet checked, one behind the ring, and one that
            // wants previous values (the ring keeps only the new records); one caught up goes
            // on below (progress notifications).
            let wantsStore = w.next < ringFrom || w.request.options.contains(.prevValue)
            if !w.checked || (wantsStore && w.next <= appliedNow) {
                if !requestRead(key, &w) { waiting = true }
                watchers[key] = w
                continue
            }
            if w.next <= appliedNow {
                if !w.context.isWritable {
                    waiting = true
                    continue
                }
                if let fresh, w.next == passFrom, let events = fresh.events(for: w.request, bytesMax: settings.passBytesPerWatcherMax) {
                    sendEvents(events, through: appliedNow, to: w.context, into: &out)
                    w.next = appliedNow + 1
                } else {
                    send(ring, to: &w, through: appliedNow, into: &out)
                }
                if w.next <= appliedNow { waiting = true }
                w.lastFrame = now
            } else if w.request.options.contains(.progressNotify) && now - w.lastFrame >= settings.progressInterval
                && w.context.isWritable
            {
                out.addPartial(.watchResponse(.progress(revision: appliedNow)), for: w.context)
                w.lastFrame = now
            }
            watchers[key] = w
        }
        if waiting { return settings.retryInterval }
        return watchers.values.contains { $0.request.options.contains(.progressNotify) } ? settings.progressInterval / 4 : .seconds(1)
    }

    /// Watches open now (a pass's view: the thread that runs passes only).
    public var watcherCount: Int { watchers.count }

    /// Whether a pass would still do something: commands queued, or a watcher behind the
    /// applied index or not yet checked (the thread that runs passes only).
    public var hasPendingWork: Bool {
        let (queued, appliedNow) = locked { (!commands.isEmpty, applied) }
        return queued || watchers.values.contains { $0.reading || !$0.checked || $0.next <= appliedNow }
    }

    /// Memory the ring holds now, about.
    var ringBytes: Int { locked { ringBytesHeld } }

    private func create(
        _ request: WatchRequest, _ context: RPCRequestContext, applied: UInt64, now: ContinuousClock.Instant,
        into out: inout RPCResponseBatch
    ) {
        let onConnection = perConnection[context.connectionID, default: 0]
        if watchers.count >= settings.watchersMax {
            out.add(.error(RPCErrorResponse(.overloaded, "watches on this node: got \(watchers.count), want < \(settings.watchersMax)")), for: context)
            return
        }
        if onConnection >= settings.watchersPerConnectionMax {
            out.add(.error(RPCErrorResponse(
                .overloaded, "watches on this connection: got \(onConnection), want < \(settings.watchersPerConnectionMax); open another connection")), for: context)
            return
        }
        let start = request.startRevision == 0 ? applied + 1 : request.startRevision
        let key = WatchKey(connection: context.connectionID, request: context.requestID)
        // A watch from now needs no check; one from a revision reads the store first, which
        // answers `compacted` if that revision's changes are gone.
        watchers[key] = Watcher(context: context, request: request, next: start, checked: request.startRevision == 0, lastFrame: now)
        perConnection[context.connectionID] = onConnection + 1
        out.addPartial(.watchResponse(.created(startRevision: start)), for: context)
    }

    private func remove(_ key: WatchKey) {
        guard watchers.removeValue(forKey: key) != nil else { return }
        let left = perConnection[key.connection, default: 1] - 1
        perConnection[key.connection] = left > 0 ? left : nil
    }

    private func requestRead(_ key: WatchKey, _ w: inout Watcher) -> Bool {
        guard readsInFlight < settings.readsInFlightMax, w.context.isWritable, let postRead else { return false }
        let read = WatchRead(key: key, request: w.request, from: w.next, entriesMax: settings.readEntriesMax, bytesMax: settings.readBytesMax)
        let posted = postRead(read) { [weak self] result in self?.post(.readDone(key, result)) }
        guard posted else { return false }
        readsInFlight += 1
        w.reading = true
        return true
    }

    private func post(_ command: Command) {
        locked {
            commands.append(command)
            wake = true
            lock.signal()
        }
    }

    private func readDone(_ key: WatchKey, _ result: WatchReadResult, now: ContinuousClock.Instant, into out: inout RPCResponseBatch) {
        readsInFlight -= 1
        guard var w = watchers[key] else { return }
        w.reading = false
        switch result {
        case .compacted(let firstKept):
            out.add(.watchResponse(.compacted(compactRevision: firstKept)), for: w.context)
            remove(key)
            return
        case .failed(let reason):
            out.add(.watchResponse(.canceled(reason: reason)), for: w.context)
            remove(key)
            return
        case .events(let events, let next):
            w.checked = true
            // Not writable now: drop what was read and read it again later; the connection's
            // buffer, not this node's memory, holds a slow reader's backlog.
            guard w.context.isWritable else { break }
            if next > w.next {
                sendEvents(events, through: next - 1, to: w.context, into: &out)
                w.next = next
                w.lastFrame = now
            }
        }
        watchers[key] = w
    }

    /// Sends the ring's events for `w` from `w.next`, at most `passBytesPerWatcherMax`.
    private func send(_ ring: [Segment], to w: inout Watcher, through applied: UInt64, into out: inout RPCResponseBatch) {
        // The first segment that reaches w.next.
        var lo = 0
        var hi = ring.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ring[mid].last < w.next { lo = mid + 1 } else { hi = mid }
        }
        var events: [WatchEvent] = []
        var bytes = 0
        var through = w.next - 1
        scan: for segment in ring[lo...] {
            for entry in segment.entries where entry.index >= w.next {
                let start = events.count
                for write in entry.writes where w.request.wants(write.key, isPut: write.record != nil) {
                    let event = WatchEvent(key: write.key, revision: entry.index, record: write.record)
                    events.append(event)
                    bytes += event.sizeBytes
                }
                if bytes > settings.passBytesPerWatcherMax && start > 0 {
                    // This entry goes in the next pass, whole.
                    events.removeSubrange(start...)
                    through = entry.index - 1
                    break scan
                }
                through = entry.index
            }
            through = segment.last
        }
        through = min(max(through, w.next - 1), applied)
        sendEvents(events, through: through, to: w.context, into: &out)
        w.next = through + 1
    }

    /// Events in frames of about `frameBytesMax`; a frame that ends inside an entry says so by
    /// its `completeThrough` (the revision before that entry).
    private func sendEvents(_ honest: [WatchEvent], through: UInt64, to context: RPCRequestContext, into out: inout RPCResponseBatch) {
        guard !honest.isEmpty else { return }
        let events = decorator?.watchEvents(honest) ?? honest
        var frame: [WatchEvent] = []
        var bytes = 0
        for (i, e) in events.enumerated() {
            frame.append(e)
            bytes += e.sizeBytes
            let isLast = i == events.count - 1
            if !isLast && (bytes >= settings.frameBytesMax || frame.count >= WatchResponse.eventsPerFrameMax) {
                let nextRevision = events[i + 1].revision
                let complete = nextRevision == e.revision ? e.revision - 1 : e.revision
                out.addPartial(.watchResponse(.events(completeThrough: complete, frame)), for: context)
                frame = []
                bytes = 0
            }
        }
        out.addPartial(.watchResponse(.events(completeThrough: through, frame)), for: context)
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}

/// The store side of a watch: reads `read`'s changes from the journal's effects and the MVCC
/// history, on the apply thread (between applies, so the state is the applied one).
enum WatchStoreReader {
    /// Whether an entry applied before the leaf v2 boundary (no effects recorded) certainly
    /// changed no key.
    static func changesNoKey(_ entry: Entry) -> Bool {
        guard entry.type == .normal, !entry.data.isEmpty else { return true }
        guard let proposal = try? KVProposal(decoding: entry.data) else { return true }  // applied as `invalid`
        switch proposal.command {
        case .compact, .initCluster, .upgradeLeaves, .upgradeState, .leaseGrant, .leaseCheckpoint: return true
        case .put, .deleteRange, .txn, .leaseRevoke, .auth: return false
        }
    }

    static func read(_ store: any StateStore, _ read: WatchRead) -> WatchReadResult {
        do {
            let applied = store.appliedIndex.rawValue
            let compacted = try store.compactedRevision().rawValue
            if read.from <= compacted { return .compacted(firstKept: compacted + 1) }
            guard read.from <= applied else { return .events([], next: read.from) }
            // Changes are recorded from the leaf v2 boundary on (ADR 0009). Before it, an
            // entry that cannot change a key (a no-op, a membership change, the founding
            // commands) is skipped; a key-value write there cannot be replayed.
            let v2 = store.leafV2From?.rawValue ?? UInt64.max
            var events: [WatchEvent] = []
            var bytes = 0
            var index = read.from
            let end = min(applied, read.from + UInt64(read.entriesMax) - 1)
            while index <= end {
                guard let record = try store.journalRecord(at: LogIndex(index)) else { break }
                if index < v2 {
                    guard changesNoKey(record.entry) else { return .compacted(firstKept: min(v2, applied + 1)) }
                    index += 1
                    continue
                }
                var entryEvents: [WatchEvent] = []
                for effect in record.effects?.effects ?? [] where read.request.wants(effect.key, isPut: effect.valueHash != nil) {
                    var now: KVRecord?
                    if effect.valueHash != nil {
                        now = try store.range(KVRangeRequest(range: .single(effect.key), revision: Revision(index))).records.first?.record
                        guard let found = now, found.modRevision.rawValue == index else {
                            return .failed("watch: the record of a put at revision \(index) is missing from the store")
                        }
                    }
                    var previous: KVRecord?
                    if read.request.options.contains(.prevValue) {
                        previous = try store.range(KVRangeRequest(range: .single(effect.key), revision: Revision(index - 1))).records.first?.record
                    }
                    let event = WatchEvent(key: effect.key, revision: index, record: now, previous: previous)
                    bytes += event.sizeBytes
                    entryEvents.append(event)
                }
                if bytes > read.bytesMax && !events.isEmpty { break }
                events += entryEvents
                index += 1
            }
            return .events(events, next: index)
        } catch let error as KVReadError {
            if case .compacted(_, let compacted) = error { return .compacted(firstKept: compacted.rawValue + 1) }
            return .failed("watch: \(error)")
        } catch {
            return .failed("watch: the store failed: \(error)")
        }
    }
}

/// The writes of the ring's entries from one revision on, sorted by key, so that each of many
/// watchers caught up to that revision finds its events in O(log n + its events) instead of
/// scanning every write (with a thousand watchers of small ranges, the scan was most of a
/// pass; docs/PERFORMANCE.md "Watch and lease load").
private struct FreshWrites {
    /// Below this many watchers caught up to the same revision, scanning is as cheap.
    static let watchersMin = 16

    private struct Item {
        let key: [UInt8]
        let index: UInt64
        let order: Int
        let record: KVRecord?
    }

    private let items: [Item]

    init(_ ring: [WatchHub.Segment], from first: UInt64) {
        var items: [Item] = []
        for segment in ring where segment.last >= first {
            for entry in segment.entries where entry.index >= first {
                for (order, write) in entry.writes.enumerated() {
                    items.append(Item(key: write.key, index: entry.index, order: order, record: write.record))
                }
            }
        }
        items.sort { a, b in
            a.key == b.key ? (a.index, a.order) < (b.index, b.order) : a.key.lexicographicallyPrecedes(b.key)
        }
        self.items = items
    }

    /// The events `request` wants, in (revision, write) order, or nil when they exceed
    /// `bytesMax` (the caller then sends them in parts by scanning).
    func events(for request: WatchRequest, bytesMax: Int) -> [WatchEvent]? {
        let start = request.range.start
        var lo = 0
        var hi = items.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if items[mid].key.lexicographicallyPrecedes(start) { lo = mid + 1 } else { hi = mid }
        }
        var matched: [(index: UInt64, order: Int, event: WatchEvent)] = []
        var bytes = 0
        while lo < items.count {
            let item = items[lo]
            lo += 1
            if let end = request.range.end, !item.key.lexicographicallyPrecedes(end) { break }
            guard request.wants(item.key, isPut: item.record != nil) else { continue }
            let event = WatchEvent(key: item.key, revision: item.index, record: item.record)
            matched.append((item.index, item.order, event))
            bytes += event.sizeBytes
            if bytes > bytesMax { return nil }
        }
        matched.sort { ($0.index, $0.order) < ($1.index, $1.order) }
        return matched.map(\.event)
    }
}
