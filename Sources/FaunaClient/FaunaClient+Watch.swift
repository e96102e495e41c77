import FaunaKV
import FaunaRPC
import NIOConcurrencyHelpers
import NIOCore

/// What a watcher receives: the events of one or more revisions, in (revision, key) order, or
/// (with no events) a progress mark.
public struct WatchBatch: Hashable, Sendable {
    public var events: [WatchEvent]
    /// Every change to the watched range up to this revision has been delivered (a batch that
    /// ends inside one entry's events has it below that entry's revision).
    public var completeThrough: UInt64
    /// The node that sent it (the one to ask for proofs: `FaunaClient.verifyEvents`).
    public var servedBy: Endpoint?

    public init(events: [WatchEvent], completeThrough: UInt64, servedBy: Endpoint? = nil) {
        self.events = events
        self.completeThrough = completeThrough
        self.servedBy = servedBy
    }
}

/// How a watch behaves on the client.
public struct WatchOptions: Sendable {
    /// The node to watch on first (nil: the client's endpoints in turn). Any member serves
    /// watches from its own applied state.
    public var endpoint: Endpoint?
    /// Events buffered for a consumer that reads slowly, about. Beyond it the client cancels
    /// the watch on the node and starts it again, from the last event buffered, once the
    /// consumer has caught up: nothing is lost and memory stays bounded.
    public var bufferBytesMax = 8 << 20
    /// How long the watch keeps trying when no node serves it (connection lost, node
    /// stopping, overloaded) before it ends with `unavailable`.
    public var reconnectDeadline: Duration = .seconds(60)

    public init(endpoint: Endpoint? = nil) {
        self.endpoint = endpoint
    }
}

extension FaunaClient {
    /// Watches `range` for changes from `startRevision` (0: from the serving node's applied
    /// index on). The batches arrive in revision order, none lost or repeated, across node
    /// failures and leader changes: the watch moves to another node and resumes where it
    /// stopped. It ends with `compacted` when the changes it needs are gone, and with
    /// `cancelled` after `cancel()`. docs/PROTOCOL.md "Watch".
    ///
    /// ```swift
    /// let watch = client.watch(.prefix(Array("app/".utf8)), from: 120)
    /// for try await batch in watch { for event in batch.events { print(event.kind, event.revision) } }
    /// ```
    public func watch(
        _ range: KeyRange, from startRevision: UInt64 = 0, options watchOptions: WatchRequest.Options = [],
        _ settings: WatchOptions = WatchOptions()
    ) -> FaunaWatch {
        let watch = FaunaWatch(client: self, range: range, start: startRevision, options: watchOptions, settings: settings)
        watch.start()
        return watch
    }
}

/// A running watch: an `AsyncSequence` of `WatchBatch`. Call `cancel()` when done (the
/// iteration then ends); a watch whose iterating task is cancelled cancels itself.
public final class FaunaWatch: AsyncSequence, Sendable {
    public typealias Element = WatchBatch

    private let client: FaunaClient
    private let range: KeyRange
    private let options: WatchRequest.Options
    private let settings: WatchOptions
    private let state: NIOLockedValueBox<State>

    /// Where the watch resumes: at revision `next`, skipping the keys up to `skipThrough` of
    /// that revision (an entry whose events came split over frames, partly delivered).
    private struct Resume {
        var next: UInt64
        var skipThrough: [UInt8]?
    }

    private struct State {
        var resume: Resume
        var buffer: [WatchBatch] = []
        var bufferHead = 0
        var bufferedBytes = 0
        var waiter: CheckedContinuation<WatchBatch?, any Error>?
        /// Set once the watch ended: nil error for a cancel.
        var ended = false
        var endError: FaunaClientError?
        /// The buffer overflowed: the node's watch is being cancelled; start again once the
        /// consumer drained the buffer.
        var overflowed = false
        var drained: CheckedContinuation<Void, Never>?
        var cancelCurrent: (@Sendable () -> Void)?
        var task: Task<Void, Never>?
        /// The node in use registered the watch (its `created` frame came).
        var registered = false
        /// The node in use.
        var endpoint: Endpoint?
    }

    init(client: FaunaClient, range: KeyRange, start: UInt64, options: WatchRequest.Options, settings: WatchOptions) {
        self.client = client
        self.range = range
        self.options = options
        self.settings = settings
        self.state = NIOLockedValueBox(State(resume: Resume(next: start)))
    }

    /// The revision the watch will resume at: every change below it was delivered (or
    /// buffered for the consumer).
    public var nextRevision: UInt64 { state.withLockedValue { $0.resume.next } }

    /// Bytes of events buffered for the consumer now, about (bounded by
    /// `WatchOptions.bufferBytesMax`, give or take one batch).
    public var bufferedBytes: Int { state.withLockedValue { $0.bufferedBytes } }

    /// Ends the watch: the node's watch is cancelled, batches still buffered are dropped, and
    /// the iteration ends.
    public func cancel() {
        end(nil)
    }

    fileprivate func start() {
        let task = Task { await self.run() }
        state.withLockedValue { $0.task = task }
    }

    // MARK: Consumer

    public struct AsyncIterator: AsyncIteratorProtocol {
        let watch: FaunaWatch
        public mutating func next() async throws -> WatchBatch? { try await watch.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(watch: self) }

    func next() async throws -> WatchBatch? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<WatchBatch?, any Error>) in
                var resumeDrained: CheckedContinuation<Void, Never>?
                let answer: Result<WatchBatch?, any Error>? = state.withLockedValue { s in
                    if s.bufferHead < s.buffer.count {
                        let batch = s.buffer[s.bufferHead]
                        s.bufferHead += 1
                        s.bufferedBytes -= Self.bytes(of: batch)
                        if s.bufferHead == s.buffer.count {
                            s.buffer.removeAll(keepingCapacity: true)
                            s.bufferHead = 0
                            if s.overflowed, !s.ended {
                                resumeDrained = s.drained
                                s.drained = nil
                            }
                        }
                        return .success(batch)
                    }
                    if s.ended { return s.endError.map { .failure($0) } ?? .success(nil) }
                    s.waiter = c
                    return nil
                }
                resumeDrained?.resume()
                if let answer { c.resume(with: answer) }
            }
        } onCancel: {
            self.cancel()
        }
    }

    private static func bytes(of batch: WatchBatch) -> Int { 16 + batch.events.reduce(0) { $0 + $1.sizeBytes } }

    // MARK: Producer

    private func end(_ error: FaunaClientError?) {
        let (waiter, cancelCurrent, drained, task) = state.withLockedValue { s in
            guard !s.ended else { return (nil, nil, nil, nil) as (CheckedContinuation<WatchBatch?, any Error>?, (@Sendable () -> Void)?, CheckedContinuation<Void, Never>?, Task<Void, Never>?) }
            s.ended = true
            s.endError = error
            if error == nil {
                s.buffer.removeAll()
                s.bufferHead = 0
                s.bufferedBytes = 0
            }
            defer {
                s.waiter = nil
                s.drained = nil
            }
            return (s.bufferHead < s.buffer.count ? nil : s.waiter, s.cancelCurrent, s.drained, s.task)
        }
        cancelCurrent?()
        drained?.resume()
        if let waiter {
            if let error { waiter.resume(throwing: error) } else { waiter.resume(returning: nil) }
        }
        if error == nil { task?.cancel() }
    }

    /// Takes one frame of the node's stream (on the connection's event loop).
    private func accept(_ response: WatchResponse) {
        var overflowed: (@Sendable () -> Void)?
        let waiter: (CheckedContinuation<WatchBatch?, any Error>, WatchBatch)? = state.withLockedValue { s in
            guard !s.ended, !s.overflowed else { return nil }
            var batch: WatchBatch
            switch response {
            case .created(let start):
                if s.resume.next == 0 { s.resume = Resume(next: start) }
                s.registered = true
                return nil
            case .events(let through, let events):
                let resume = s.resume
                let fresh = events.filter { e in
                    if e.revision < resume.next { return false }
                    if e.revision == resume.next, let skip = resume.skipThrough, !bytesPrecede(skip, e.key) { return false }
                    return true
                }
                batch = WatchBatch(events: fresh, completeThrough: Swift.max(through, resume.next &- 1), servedBy: s.endpoint)
                if fresh.isEmpty && through < resume.next { return nil }
            case .progress(let revision):
                guard revision + 1 >= s.resume.next else { return nil }
                batch = WatchBatch(events: [], completeThrough: revision, servedBy: s.endpoint)
            case .canceled, .compacted:
                return nil
            }
            if s.waiter == nil {
                let size = Self.bytes(of: batch)
                guard s.bufferedBytes + size <= settings.bufferBytesMax || s.bufferHead == s.buffer.count else {
                    // Full: stop the node's watch; it starts again from `resume` once drained.
                    s.overflowed = true
                    overflowed = s.cancelCurrent
                    return nil
                }
                s.buffer.append(batch)
                s.bufferedBytes += size
            }
            // Advance the resume point past what was handed over.
            if let last = batch.events.last, last.revision > batch.completeThrough {
                s.resume = Resume(next: last.revision, skipThrough: last.key)
            } else {
                s.resume = Resume(next: batch.completeThrough + 1)
            }
            guard let w = s.waiter else { return nil }
            s.waiter = nil
            return (w, batch)
        }
        if let (w, batch) = waiter { w.resume(returning: batch) }
        overflowed?()
    }

    /// Keeps a watch open on some node until the watch ends.
    private func run() async {
        var cursor = settings.endpoint.flatMap { client.endpoints.firstIndex(of: $0) } ?? client.nextCursor()
        var endpoint = settings.endpoint ?? client.endpoints[cursor % client.endpoints.count]
        var failingSince: ContinuousClock.Instant?
        var backoff: Duration = .milliseconds(50)
        var lastFailure = ""
        while !state.withLockedValue({ $0.ended }) {
            // After an overflow, wait for the consumer to drain the buffer.
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let waitNow = state.withLockedValue { s in
                    if s.overflowed && !s.ended && s.bufferHead < s.buffer.count {
                        s.drained = c
                        return true
                    }
                    return false
                }
                if !waitNow { c.resume() }
            }
            let request = state.withLockedValue { s in
                s.overflowed = false
                s.registered = false
                s.endpoint = endpoint
                return WatchRequest(range: range, startRevision: s.resume.next, options: options)
            }
            if state.withLockedValue({ $0.ended }) { return }
            var retryable: String
            do {
                let connection = try await client.pool.connection(to: endpoint)
                let final = try await connection.stream(.watch(request), timeout: nil, onStart: { [weak self] id in
                    self?.state.withLockedValue { s in
                        s.cancelCurrent = { Task { _ = try? await connection.call(.watchCancel(id)) } }
                    }
                }) { [weak self] message in
                    if case .watchResponse(let r) = message { self?.accept(r) }
                }
                state.withLockedValue { $0.cancelCurrent = nil }
                switch final {
                case .watchResponse(.canceled(let reason)):
                    if state.withLockedValue({ $0.ended || $0.overflowed }) {
                        failingSince = nil
                        continue
                    }
                    retryable = "\(endpoint) ended the watch: \(reason)"
                case .watchResponse(.compacted(let firstKept)):
                    let from = state.withLockedValue { $0.resume.next }
                    return end(FaunaClientError(.compacted, "watch from revision \(from): changes before \(firstKept) are compacted; watch from \(firstKept) or later"))
                case .error(let e) where e.code == .unavailable || e.code == .overloaded || e.code == .behind:
                    retryable = "\(endpoint) answered \(e)"
                case .error(let e):
                    return end(FaunaClientError(response: e, from: endpoint))
                default:
                    return end(FaunaClientError.unexpected(final, want: "a watchResponse", from: endpoint))
                }
            } catch {
                state.withLockedValue { $0.cancelCurrent = nil }
                retryable = "\(endpoint): \(error)"
            }
            if state.withLockedValue({ $0.ended }) { return }
            if state.withLockedValue({ $0.registered }) {
                // It ran on that node: a new run of failures starts now.
                failingSince = nil
                backoff = .milliseconds(50)
            }
            lastFailure = retryable
            let now = ContinuousClock.now
            if let since = failingSince, now - since > settings.reconnectDeadline {
                return end(FaunaClientError(.unavailable, "watch: no node served it for \(settings.reconnectDeadline); last: \(lastFailure)"))
            }
            if failingSince == nil { failingSince = now }
            try? await Task.sleep(for: backoff)
            backoff = Swift.min(backoff * 2, .seconds(1))
            cursor &+= 1
            endpoint = client.endpoints[cursor % client.endpoints.count]
        }
    }
}

