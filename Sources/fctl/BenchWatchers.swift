import FaunaClient
import FaunaKV
import FaunaRPC
import FctlCore
import Foundation
import NIOConcurrencyHelpers

/// `fctl bench --watchers N`: N watches on one node, open while the measured phase runs, each
/// counting the events it receives (docs/CLI.md "fctl bench", docs/PERFORMANCE.md "Watch and
/// lease load"). The watches share connections, `perConnection` per client instance (below the
/// node's 512), and each buffers at most `bufferBytesMax` in this process: they are read as
/// fast as they arrive.
final class BenchWatchers: Sendable {
    static let perConnection = 250
    static let bufferBytesMax = 256 << 10

    private let clients: [FaunaClient]
    private let watches: [FaunaWatch]
    private let tasks: [Task<Void, Never>]
    /// Events received so far, and the first error a watch ended with.
    private let state = NIOLockedValueBox<(events: Int, failure: String?)>((0, nil))

    /// Opens the watches on `endpoint` and waits (at most `timeout`) until every one has been
    /// created on the node.
    init(_ p: BenchParameters, endpoint: Endpoint, tls: TLSContexts?, timeout: Duration) async throws(FctlError) {
        let clientCount = (p.watchers + Self.perConnection - 1) / Self.perConnection
        let configuration = FaunaClientConfiguration(requestsInFlightMax: Self.perConnection + 16, tls: tls)
        clients = (0..<clientCount).map { _ in FaunaClient(endpoints: [endpoint], configuration: configuration) }
        var settings = WatchOptions(endpoint: endpoint)
        settings.bufferBytesMax = Self.bufferBytesMax
        var watches: [FaunaWatch] = []
        for i in 0..<p.watchers {
            watches.append(clients[i / Self.perConnection].watch(Self.range(i, p), options: [.progressNotify], settings))
        }
        self.watches = watches
        let state = state
        tasks = watches.map { watch in
            Task {
                do {
                    for try await batch in watch where !batch.events.isEmpty {
                        state.withLockedValue { $0.events += batch.events.count }
                    }
                } catch {
                    if (error as? FaunaClientError)?.code != .cancelled { state.withLockedValue { $0.failure = $0.failure ?? "\(error)" } }
                }
            }
        }
        let start = ContinuousClock.now
        while watches.contains(where: { $0.nextRevision == 0 }) {
            if let failure = state.withLockedValue({ $0.failure }) {
                await close()
                throw FctlError(.unavailable, "bench: a watcher failed while opening: \(failure)")
            }
            guard ContinuousClock.now - start < timeout else {
                let open = watches.filter { $0.nextRevision != 0 }.count
                await close()
                throw FctlError(.unavailable, "bench: only \(open) of \(p.watchers) watchers were created on \(endpoint) within \(timeout)")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The keys watcher `i` watches: all of them, or its slice of the key space.
    static func range(_ i: Int, _ p: BenchParameters) -> KeyRange {
        switch p.watchRange {
        case .all:
            return KeyRange(start: [0], end: nil)
        case .slice:
            let lo = i * p.keySpace / p.watchers
            let hi = (i + 1) * p.keySpace / p.watchers
            return KeyRange(start: BenchKeys.key(lo, width: p.keyBytes), end: BenchKeys.key(hi, width: p.keyBytes))
        }
    }

    var events: Int { state.withLockedValue { $0.events } }
    var failure: String? { state.withLockedValue { $0.failure } }

    /// Waits (at most `timeout`) until the watches have received `expected` events since the
    /// count was `before`, or every one has received everything up to `revision` (the end of
    /// a run whose puts' count is not exact); the seconds it took, or nil.
    func waitCaughtUp(expected: Int, since before: Int, revision: UInt64, timeout: Duration) async -> Double? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < timeout {
            if events - before >= expected || watches.allSatisfy({ $0.nextRevision > revision }) {
                return (ContinuousClock.now - start).seconds
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    func close() async {
        for watch in watches { watch.cancel() }
        for task in tasks { await task.value }
        for client in clients { await client.close() }
    }
}
