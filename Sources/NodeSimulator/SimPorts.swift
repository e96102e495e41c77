import FaunaPipeline
import FaunaRPC
import FaunaRaft
import FaunaStore

// The pipeline's ports in the simulator: queues the scheduler drains, a network that decides
// what arrives, a clock that reads virtual time. Everything runs on the simulator's one thread;
// the `@unchecked Sendable`s below are sound for that reason alone.

/// Virtual time, shared by every node; each node reads it through its own offset (clock jumps).
final class SimTime: @unchecked Sendable {
    /// Microseconds since the start of the run.
    var micros: UInt64 = 0
    var duration: Duration { .microseconds(Int64(micros)) }
}

/// A node's monotonic clock: virtual time plus a forward offset that clock jumps grow.
final class SimNodeClock: NodeClock, @unchecked Sendable {
    let time: SimTime
    var offset = Duration.zero
    init(time: SimTime) { self.time = time }
    var now: NodeInstant { NodeInstant(time.duration + offset) }
}

/// The owner's event queue: the scheduler hands its contents to `runRound`.
final class SimEventQueue: NodeEventSink, @unchecked Sendable {
    let capacity: Int
    var items: [NodeEvent] = []
    var isClosed = false
    init(capacity: Int) { self.capacity = capacity }

    @discardableResult func offer(_ event: NodeEvent) -> Bool {
        guard !isClosed, items.count < capacity else { return false }
        items.append(event)
        return true
    }

    func post(_ event: NodeEvent) {
        guard !isClosed else { return }
        items.append(event)
    }

    func closeAndDrain() -> [NodeEvent] {
        isClosed = true
        defer { items = [] }
        return items
    }

    func take(max: Int) -> [NodeEvent] {
        let n = min(max, items.count)
        defer { items.removeFirst(n) }
        return Array(items.prefix(n))
    }
}

/// The apply stage's FIFO queue; the scheduler decides when the stage runs (apply lag).
final class SimApplyQueue: ApplyQueue, @unchecked Sendable {
    let capacity: Int
    var jobs: [ApplyJob] = []
    var stage: ApplyStage?
    var isClosed = false
    /// Whether the apply thread takes a job the moment it is posted — before the owner goes on
    /// to persist the Ready that handed it out (the race of ADR 0006 "Restart"). Drawn by the
    /// simulation per post.
    var runsEagerly: () -> Bool = { false }
    init(capacity: Int) { self.capacity = capacity }

    func offer(_ job: ApplyJob) -> Bool {
        guard !isClosed, jobs.count < capacity else { return false }
        jobs.append(job)
        return true
    }

    func post(_ job: ApplyJob) {
        guard !isClosed else { return }
        jobs.append(job)
        if case .apply = job, runsEagerly() { step(max: jobs.count) }
    }

    /// Runs up to `max` queued jobs, in order.
    func step(max: Int) {
        guard let stage, !jobs.isEmpty else { return }
        let n = min(max, jobs.count)
        let batch = Array(jobs.prefix(n))
        jobs.removeFirst(n)
        stage.run(batch)
    }

    /// The swap runs after everything queued before it, as on the apply thread.
    func replaceStore(with store: (any StateStore)?) {
        post(.setStore(store, done: {}))
        while !jobs.isEmpty { step(max: jobs.count) }
    }

    func stopAndWait() {
        isClosed = true
        while !jobs.isEmpty { step(max: jobs.count) }
        stage?.finish()
        stage = nil
    }
}

/// Digests run at once (the simulator has no other thread).
struct InlineBackground: BackgroundRunner {
    func run(_ body: @escaping @Sendable () -> Void) { body() }
}

/// Where members can be reached: the simulator only needs the book to exist.
final class SimMemberBook: MemberBook, @unchecked Sendable {
    var book: [NodeID: MemberAddresses] = [:]
    func addresses(of id: NodeID) -> MemberAddresses? { book[id] }
    func record(_ addresses: MemberAddresses, for id: NodeID) { book[id] = addresses }
    /// Simulated nodes exchange no handshakes: `members` reports no keys.
    func publicKey(of id: NodeID) -> [UInt8]? { nil }
}

/// A client's connection to one node: answers are collected for the scheduler to deliver.
final class SimReply: RPCReplyChannel, @unchecked Sendable {
    let onFrames: ([Frame]) -> Void
    init(_ onFrames: @escaping ([Frame]) -> Void) { self.onFrames = onFrames }
    func send(_ frames: [Frame]) { onFrames(frames) }
    var isWritable: Bool { true }
    var isOpen: Bool { true }
}
