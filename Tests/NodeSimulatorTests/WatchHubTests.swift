import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaStore
import Foundation
import Testing

@testable import FaunaPipeline
@testable import NodeSimulator

// The watch hub (docs/PROTOCOL.md "Watch") over a real state machine and journal (SimStore):
// every watcher gets exactly the committed changes of its range, in order, whether it is live,
// starts in the past, reads slowly, or needs one entry split over frames; and what a slow
// watcher makes the node hold stays bounded.

/// A connection as the hub sees it: records frames, writable until `sendLimit` bytes went out.
final class FakeReply: RPCReplyChannel, @unchecked Sendable {
    private let lock = NSLock()
    private var frames: [Frame] = []
    private var sent = 0
    var sendLimit = Int.max
    var open = true

    func send(_ frames: [Frame]) {
        lock.withLock {
            self.frames += frames
            sent += frames.reduce(0) { $0 + $1.body.count + FrameHeader.sizeBytes }
        }
    }
    var isWritable: Bool { lock.withLock { sent < sendLimit } }
    var isOpen: Bool { lock.withLock { open } }
    var bytesSent: Int { lock.withLock { sent } }

    /// The messages answered to `request`, with whether each was final.
    func answers(to request: UInt64) throws -> [(message: RPCMessage, isFinal: Bool)] {
        try lock.withLock { frames }.filter { $0.requestID == RequestID(request) }.map { (try RPCMessage($0), !$0.flags.contains(.more)) }
    }

    /// The events sent to `request`, and the last `completeThrough`.
    func events(of request: UInt64) throws -> (events: [WatchEvent], through: UInt64) {
        var events: [WatchEvent] = []
        var through: UInt64 = 0
        for (message, _) in try answers(to: request) {
            if case .watchResponse(.events(let t, let e)) = message {
                events += e
                through = t
            }
        }
        return (events, through)
    }
}

/// A store, its journal, and a hub published to after every apply, as the apply stage does.
final class WatchHarness {
    let store: SimStore
    let hub: WatchHub
    var next: UInt64 = 1
    /// Every change applied, in order: the truth watchers are checked against.
    private(set) var changes: [WatchEvent] = []

    init(_ settings: WatchSettings = WatchSettings()) throws {
        store = try SimStore(disk: SimDisk(name: "watch"))
        hub = WatchHub(settings: settings, appliedIndex: .zero)
        let store = store
        hub.postRead = { read, done in
            done(WatchStoreReader.read(store, read))
            return true
        }
        try apply(bootstrapEntries(voters: [NodeID(1)]))
        try apply([Entry(term: Term(2), index: LogIndex(next))])
        try command(.upgradeLeaves)
        try command(.initCluster(clusterBytes))
    }

    func apply(_ entries: [Entry]) throws {
        try store.log.persist(RaftLogUpdate(entries: entries))
        let applied = try store.apply(entries, confState: nil)
        for a in applied {
            for w in a.writes { changes.append(WatchEvent(key: w.key, revision: a.index.rawValue, record: w.record)) }
        }
        next = (entries.last?.index.rawValue ?? next - 1) + 1
        hub.published(applied)
    }

    @discardableResult
    func command(_ c: KVCommand) throws -> UInt64 {
        let index = next
        try apply([kvEntry(index, c)])
        return index
    }

    func put(_ key: String, _ value: String) throws { try command(.put(KVPut(key: b(key), value: b(value)))) }

    /// Passes until the hub has nothing left to do (at most 1,000).
    func settle() {
        for _ in 0..<1000 {
            _ = hub.runPass()
            if !hub.hasPendingWork { return }
        }
    }

    /// The truth for `request`: the changes it wants from `from` on.
    func expected(_ request: WatchRequest, from: UInt64) -> [WatchEvent] {
        changes.filter { $0.revision >= from && request.wants($0.key, isPut: $0.kind == .put) }
    }
}

@Suite struct WatchHubTests {
    static func watch(
        _ hub: WatchHub, _ reply: FakeReply, id: UInt64, _ range: KeyRange, from: UInt64 = 0, options: WatchRequest.Options = []
    ) {
        _ = hub.handle(.watch(WatchRequest(range: range, startRevision: from, options: options)), RPCRequestContext(requestID: RequestID(id), reply: reply))
    }

    @Test("live, past, filtered and prev-value watchers each get exactly their changes, in order")
    func exactlyTheChanges() throws {
        let h = try WatchHarness()
        try h.put("a1", "x")
        let early = h.next
        try h.put("b", "1")
        let reply = FakeReply()
        let prefix = WatchRequest(range: .prefix(b("a")))
        let past = WatchRequest(range: .single(b("b")), startRevision: 1, options: [.prevValue])
        let noDelete = WatchRequest(range: KeyRange(start: b("c"), end: b("e")), options: [.noDelete])
        Self.watch(h.hub, reply, id: 1, prefix.range)
        Self.watch(h.hub, reply, id: 2, past.range, from: 1, options: past.options)
        Self.watch(h.hub, reply, id: 3, noDelete.range, options: noDelete.options)
        h.settle()
        let liveFrom = h.next
        var rng = SimRandom(seed: 7)
        let keys = ["a1", "a2", "b", "c", "d", "dd", "e", "z"]
        for i in 0..<300 {
            let key = rng.pick(keys)!
            switch rng.int(0..<10) {
            case 0..<6: try h.put(key, "v\(i)")
            case 6: try h.command(.delete(b(key)))
            case 7: try h.command(.deleteRange(KVDeleteRange(range: KeyRange(start: b("a"), end: b("d")))))
            case 8:
                try h.command(.txn(KVTxn(
                    compares: [KVCompare(key: b(key), .version(0), .greater)],
                    success: [.put(KVPut(key: b("a2"), value: b("t\(i)"))), .put(KVPut(key: b("d"), value: b("t\(i)")))],
                    failure: [.put(KVPut(key: b("c"), value: b("f\(i)")))])))
            default: try h.apply([Entry(term: Term(2), index: LogIndex(h.next))])  // a no-op
            }
            if i % 7 == 0 { h.settle() }
        }
        h.settle()
        let applied = h.next - 1
        let got1 = try reply.events(of: 1)
        #expect(got1.events == h.expected(prefix, from: liveFrom))
        #expect(got1.through == applied || got1.events.last.map { $0.revision < got1.through } ?? true)
        let got2 = try reply.events(of: 2)
        // The past watcher asked for previous values: check the events without them, then the
        // previous values against the truth.
        #expect(got2.events.map { WatchEvent(key: $0.key, revision: $0.revision, record: $0.record) } == h.expected(past, from: 1))
        var last: KVRecord?
        for e in got2.events {
            #expect(e.previous == last, "revision \(e.revision): previous \(String(describing: e.previous)), want \(String(describing: last))")
            last = e.record
        }
        #expect(got2.events.first?.revision == early)
        #expect(try reply.events(of: 3).events == h.expected(noDelete, from: liveFrom))
        #expect(got1.events.count > 20 && got2.events.count > 20)
    }

    @Test("many caught-up watchers (found by key, not by scanning) each get exactly their changes, in order")
    func manyWatchersFoundByKey() throws {
        let h = try WatchHarness()
        let reply = FakeReply()
        var rng = SimRandom(seed: 11)
        let keys = (0..<40).map { String(format: "k%02d", $0) }
        // Slices, overlapping ranges, prefixes, single keys, open ends and kind filters: more
        // than FreshWrites.watchersMin of them caught up to the same revision every pass.
        var requests: [WatchRequest] = []
        for i in 0..<60 {
            let lo = rng.int(0..<keys.count)
            let range: KeyRange
            switch i % 4 {
            case 0: range = KeyRange(start: b(keys[lo]), end: b(keys[min(keys.count - 1, lo + rng.int(1..<8))]))
            case 1: range = .single(b(keys[lo]))
            case 2: range = .prefix(b("k\(lo % 4)"))
            default: range = KeyRange(start: b(keys[lo]), end: nil)
            }
            let options: WatchRequest.Options = i % 10 == 3 ? [.noDelete] : i % 10 == 7 ? [.noPut] : []
            requests.append(WatchRequest(range: range, options: options))
            Self.watch(h.hub, reply, id: UInt64(i + 1), range, options: options)
        }
        h.settle()
        let liveFrom = h.next
        for i in 0..<400 {
            let key = rng.pick(keys)!
            switch rng.int(0..<10) {
            case 0..<6: try h.put(key, "v\(i)")
            case 6: try h.command(.delete(b(key)))
            case 7: try h.command(.deleteRange(KVDeleteRange(range: KeyRange(start: b("k1"), end: b("k2")))))
            case 8:
                try h.command(.txn(KVTxn(
                    compares: [KVCompare(key: b(key), .version(0), .greater)],
                    success: [.put(KVPut(key: b("k35"), value: b("t\(i)"))), .put(KVPut(key: b("k05"), value: b("t\(i)")))])))
            default: try h.apply([Entry(term: Term(2), index: LogIndex(h.next))])
            }
            if rng.int(0..<3) == 0 { h.settle() }
        }
        h.settle()
        var total = 0
        for (i, request) in requests.enumerated() {
            let got = try reply.events(of: UInt64(i + 1)).events
            #expect(got == h.expected(request, from: liveFrom), "watcher \(i + 1) of \(request.range)")
            total += got.count
        }
        #expect(total > 2000)
    }

    @Test("a watcher whose connection does not drain holds the node to its bounds, then catches up from the store")
    func slowWatcherIsBoundedAndCatchesUp() throws {
        var settings = WatchSettings()
        settings.ringBytesMax = 64 << 10
        settings.frameBytesMax = 4 << 10
        settings.passBytesPerWatcherMax = 8 << 10
        settings.readBytesMax = 16 << 10
        let h = try WatchHarness(settings)
        let slow = FakeReply()
        slow.sendLimit = 16 << 10
        let fast = FakeReply()
        Self.watch(h.hub, slow, id: 1, .prefix(b("k")))
        Self.watch(h.hub, fast, id: 1, .prefix(b("k")))
        h.settle()
        let from = h.next
        let value = String(repeating: "v", count: 200)
        for i in 0..<2000 {
            try h.put("k\(i % 50)", value + "\(i)")
            if i % 10 == 0 { _ = h.hub.runPass() }
        }
        h.settle()
        // Sent to the slow one: up to where it stopped being writable, plus one pass's events.
        #expect(slow.bytesSent <= (16 << 10) + settings.passBytesPerWatcherMax + settings.frameBytesMax + 1024)
        #expect(h.hub.ringBytes <= settings.ringBytesMax + 4096)
        let request = WatchRequest(range: .prefix(b("k")))
        #expect(try fast.events(of: 1).events == h.expected(request, from: from))
        #expect(try slow.events(of: 1).events.count < 200)
        // The client reads again: everything since arrives, from the store (the ring moved on).
        slow.sendLimit = .max
        for _ in 0..<200 where h.hub.hasPendingWork { _ = h.hub.runPass() }
        #expect(try slow.events(of: 1).events == h.expected(request, from: from))
        #expect(try slow.events(of: 1).through == h.next - 1)
    }

    @Test("a start at or below the compacted revision ends with compacted and the first revision kept")
    func compactedStart() throws {
        let h = try WatchHarness()
        for i in 0..<10 { try h.put("k", "v\(i)") }
        let compactAt = h.next - 3
        try h.command(.compact(Revision(compactAt)))
        let reply = FakeReply()
        Self.watch(h.hub, reply, id: 9, .single(b("k")), from: compactAt)
        Self.watch(h.hub, reply, id: 10, .single(b("k")), from: compactAt + 1)
        h.settle()
        let answers = try reply.answers(to: 9)
        #expect(answers.last?.message == .watchResponse(.compacted(compactRevision: compactAt + 1)))
        #expect(answers.last?.isFinal == true)
        #expect(try reply.events(of: 10).events.map(\.revision) == [compactAt + 1, compactAt + 2])
        #expect(h.hub.watcherCount == 1)
    }

    @Test("one entry's events over several frames: completeThrough stays below it until its last frame")
    func splitEntry() throws {
        var settings = WatchSettings()
        settings.frameBytesMax = 300
        let h = try WatchHarness(settings)
        for i in 0..<40 { try h.put("d\(i)", "v") }
        let reply = FakeReply()
        Self.watch(h.hub, reply, id: 1, .prefix(b("d")))
        h.settle()
        let revision = try h.command(.deletePrefix(b("d")))
        h.settle()
        var frames: [(UInt64, [WatchEvent])] = []
        for (message, _) in try reply.answers(to: 1) {
            if case .watchResponse(.events(let t, let e)) = message { frames.append((t, e)) }
        }
        #expect(frames.count > 2)
        #expect(frames.dropLast().allSatisfy { $0.0 == revision - 1 })
        #expect(frames.last?.0 == revision)
        #expect(frames.flatMap(\.1).count == 40)
        #expect(frames.flatMap(\.1).allSatisfy { $0.kind == .delete && $0.revision == revision })
    }

    @Test("progress notifications reach a caught-up watcher, one that wants previous values too")
    func progress() throws {
        var settings = WatchSettings()
        settings.progressInterval = .milliseconds(1)
        let h = try WatchHarness(settings)
        try h.put("p", "1")
        let reply = FakeReply()
        Self.watch(h.hub, reply, id: 1, .single(b("p")), options: [.progressNotify])
        Self.watch(h.hub, reply, id: 2, .single(b("p")), from: 1, options: [.progressNotify, .prevValue])
        h.settle()
        try h.put("other", "x")  // no change to either range
        h.settle()
        Thread.sleep(forTimeInterval: 0.01)
        _ = h.hub.runPass()
        for id in [UInt64(1), 2] {
            let progress = try reply.answers(to: id).compactMap { a -> UInt64? in
                if case .watchResponse(.progress(let r)) = a.message { return r }
                return nil
            }
            #expect(progress.last == h.next - 1, "watch \(id): progress \(progress), want up to \(h.next - 1)")
        }
    }

    @Test("cancel, caps, closed connections and stop")
    func lifecycle() throws {
        var settings = WatchSettings()
        settings.watchersPerConnectionMax = 2
        settings.watchersMax = 3
        let h = try WatchHarness(settings)
        let a = FakeReply(), b2 = FakeReply()
        Self.watch(h.hub, a, id: 1, .all)
        Self.watch(h.hub, a, id: 2, .all)
        Self.watch(h.hub, a, id: 3, .all)
        h.settle()
        guard case .error(let perConnection)? = try a.answers(to: 3).last?.message else { Issue.record("want an error"); return }
        #expect(perConnection.code == .overloaded)
        Self.watch(h.hub, b2, id: 1, .all)
        Self.watch(h.hub, b2, id: 2, .all)
        h.settle()
        guard case .error(let perNode)? = try b2.answers(to: 2).last?.message else { Issue.record("want an error"); return }
        #expect(perNode.code == .overloaded)
        #expect(h.hub.watcherCount == 3)
        _ = h.hub.handle(.watchCancel(RequestID(1)), RPCRequestContext(requestID: RequestID(50), reply: a))
        _ = h.hub.handle(.watchCancel(RequestID(7)), RPCRequestContext(requestID: RequestID(51), reply: a))
        h.settle()
        #expect(try a.answers(to: 1).last.map { $0.isFinal && $0.message == .watchResponse(.canceled(reason: "canceled by the client")) } == true)
        #expect(try a.answers(to: 50).last?.message == .watchCancelResponse(found: true))
        #expect(try a.answers(to: 51).last?.message == .watchCancelResponse(found: false))
        #expect(h.hub.watcherCount == 2)
        b2.open = false
        try h.put("x", "1")
        h.settle()
        #expect(h.hub.watcherCount == 1)
        h.hub.stop("stopping")
        #expect(h.hub.runPass() == nil)
        guard case .error(let stopped)? = try a.answers(to: 2).last?.message else { Issue.record("want an error"); return }
        #expect(stopped.code == .unavailable)
        #expect(h.hub.watcherCount == 0)
    }
}
