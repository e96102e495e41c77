import FaunaKV
import FaunaRPC
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A client of a Fauna cluster: finds the leader, retries within a deadline, and makes every
/// write exactly-once with a client session (docs/KV-COMMANDS.md "Sessions").
///
/// Safe to use from many tasks at once: requests to one node are pipelined on one connection,
/// and every write in flight has its own session. Call `close()` when done.
///
/// ```swift
/// let client = FaunaClient(endpoints: [Endpoint(host: "127.0.0.1", port: 7101)])
/// let result = try await client.put(Array("k1".utf8), Array("v1".utf8))
/// let record = try await client.get(Array("k1".utf8))
/// await client.close()
/// ```
public final class FaunaClient: Sendable {
    /// The nodes' client addresses given at creation; never empty.
    public let endpoints: [Endpoint]
    /// The settings.
    public let configuration: FaunaClientConfiguration
    let group: any EventLoopGroup
    let pool: ConnectionPool
    let sessions: SessionPool
    private let state: NIOLockedValueBox<State>

    private struct State {
        var leader: Endpoint?
        var cursor = 0
        var isClosed = false
    }

    /// A client of the cluster whose nodes listen at `endpoints` (client ports). Connects
    /// lazily, on the first request to each node.
    ///
    /// - Parameters:
    ///   - endpoints: at least one client address; order is the order nodes are tried in.
    ///   - group: the event loops for connections; nil uses NIO's shared singleton group.
    /// - Precondition: `endpoints` is not empty.
    public init(endpoints: [Endpoint], configuration: FaunaClientConfiguration = .init(), group: (any EventLoopGroup)? = nil) {
        precondition(!endpoints.isEmpty, "endpoints: got none, want at least one")
        var unique: [Endpoint] = []
        for endpoint in endpoints where !unique.contains(endpoint) { unique.append(endpoint) }
        self.endpoints = unique
        self.configuration = configuration
        let group = group ?? MultiThreadedEventLoopGroup.singleton
        self.group = group
        var rpc = RPCClientConfiguration(
            requestsInFlightMax: configuration.requestsInFlightMax,
            requestTimeout: Self.timeAmount(configuration.requestTimeout),
            connectTimeout: Self.timeAmount(configuration.connectTimeout))
        rpc.tls = configuration.tls
        self.pool = ConnectionPool(
            group: group, configuration: rpc, connectionsMax: max(configuration.connectionsMax, 1), credentials: configuration.credentials,
            logger: configuration.logger)
        self.sessions = SessionPool(idleMax: configuration.idleSessionsMax)
        self.state = NIOLockedValueBox(State())
    }

    /// Closes every connection. Calls in flight fail; later calls fail with `cancelled`.
    public func close() async {
        state.withLockedValue { $0.isClosed = true }
        await pool.closeAll()
    }

    /// The node the client believes leads (learned from answers and hints), if any.
    public var knownLeader: Endpoint? { state.withLockedValue { $0.leader } }

    var isClosed: Bool { state.withLockedValue { $0.isClosed } }

    func noteLeader(_ endpoint: Endpoint) { state.withLockedValue { $0.leader = endpoint } }

    func forgetLeader(_ endpoint: Endpoint) {
        state.withLockedValue { if $0.leader == endpoint { $0.leader = nil } }
    }

    /// A round-robin start position, so serializable reads spread over the nodes.
    func nextCursor() -> Int {
        state.withLockedValue { state in
            defer { state.cursor &+= 1 }
            return state.cursor
        }
    }

    /// A fresh budget for one call.
    func makeBudget() -> RetryBudget {
        RetryBudget(deadline: .now + configuration.deadline, attemptsMax: max(configuration.attemptsMax, 1))
    }
}
