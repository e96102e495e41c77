import FaunaRPC
import Logging
import NIOCore

/// One lazily opened `RPCClient` per endpoint. Callers that need the same endpoint at the same
/// time share one connect; a connection found closed is replaced on the next request.
actor ConnectionPool {
    private enum Entry {
        case connecting(id: UInt64, Task<RPCClient, any Error>)
        case ready(RPCClient)
    }

    private let group: any EventLoopGroup
    private let configuration: RPCClientConfiguration
    private let connectionsMax: Int
    private let credentials: FaunaClientConfiguration.Credentials?
    private let logger: Logger
    /// Invariant: at most `connectionsMax` entries.
    private var entries: [Endpoint: Entry] = [:]
    private var nextConnectID: UInt64 = 0
    private var isClosed = false

    init(
        group: any EventLoopGroup, configuration: RPCClientConfiguration, connectionsMax: Int,
        credentials: FaunaClientConfiguration.Credentials? = nil, logger: Logger
    ) {
        precondition(connectionsMax >= 1, "connectionsMax: got \(connectionsMax), want >= 1")
        self.credentials = credentials
        self.group = group
        self.configuration = configuration
        self.connectionsMax = connectionsMax
        self.logger = logger
    }

    /// The open connection to `endpoint`, connecting first if there is none.
    func connection(to endpoint: Endpoint) async throws(RPCClientError) -> RPCClient {
        guard !isClosed else { throw RPCClientError(.connectionClosed, "the client is closed") }
        switch entries[endpoint] {
        case .ready(let client) where client.channel.isActive:
            return client
        case .ready(let client):
            entries[endpoint] = nil
            Task { await client.close() }
        case .connecting(let id, let task):
            return try await finish(connect: task, id: id, endpoint: endpoint)
        case nil:
            break
        }
        makeRoom(for: endpoint)
        nextConnectID += 1
        let id = nextConnectID
        let (group, configuration, logger, credentials) = (self.group, self.configuration, self.logger, self.credentials)
        let task = Task<RPCClient, any Error> {
            let client = try await RPCClient.connect(to: endpoint, configuration: configuration, group: group, logger: logger)
            if let credentials { try await Self.authenticate(client, credentials, endpoint) }
            return client
        }
        entries[endpoint] = .connecting(id: id, task)
        return try await finish(connect: task, id: id, endpoint: endpoint)
    }

    private func finish(connect task: Task<RPCClient, any Error>, id: UInt64, endpoint: Endpoint) async throws(RPCClientError) -> RPCClient {
        let result = await task.result
        // The world may have changed during the await: only the connect that is still the
        // entry's may update it.
        let isCurrent: Bool
        if case .connecting(let currentID, _) = entries[endpoint], currentID == id { isCurrent = true } else { isCurrent = false }
        switch result {
        case .success(let client):
            if isClosed {
                await client.close()
                throw RPCClientError(.connectionClosed, "the client is closed")
            }
            if isCurrent { entries[endpoint] = .ready(client) }
            return client
        case .failure(let error):
            if isCurrent { entries[endpoint] = nil }
            throw error as? RPCClientError ?? RPCClientError(.connectFailed, "connect to \(endpoint): \(error)")
        }
    }

    /// Binds a new connection to the configured user before any request uses it. A refusal
    /// (`authFailed`) is final; anything else (a node still loading, a lost connection) is a
    /// failed connect, which the caller retries like any other.
    private static func authenticate(
        _ client: RPCClient, _ credentials: FaunaClientConfiguration.Credentials, _ endpoint: Endpoint
    ) async throws(RPCClientError) {
        let answer: RPCMessage
        do {
            // scrypt costs the node tens of milliseconds in a release build, and can take
            // seconds on a loaded machine (or a debug build): more than a request's timeout.
            answer = try await client.call(
                .authenticate(AuthenticateRequest(user: credentials.user, password: credentials.password)), timeout: .seconds(15))
        } catch {
            await client.close()
            throw RPCClientError(.connectFailed, "authenticate at \(endpoint): \(error)")
        }
        switch answer {
        case .authenticateResponse: return
        case .error(let response) where response.code == .authFailed:
            await client.close()
            throw RPCClientError(.authFailed, "\(endpoint): \(response.message)")
        default:
            await client.close()
            throw RPCClientError(.connectFailed, "authenticate at \(endpoint): answered \(answer.kind)")
        }
    }

    /// Closes and forgets `client` if it is still the connection of `endpoint` (after a
    /// connection failure or a protocol violation).
    func discard(_ client: RPCClient, of endpoint: Endpoint) async {
        if case .ready(let current) = entries[endpoint], current === client { entries[endpoint] = nil }
        await client.close()
    }

    /// Keeps the pool within `connectionsMax` by closing a ready connection to another endpoint.
    private func makeRoom(for endpoint: Endpoint) {
        guard entries.count >= connectionsMax else { return }
        for (other, entry) in entries where other != endpoint {
            if case .ready(let client) = entry {
                entries[other] = nil
                Task { await client.close() }
                return
            }
        }
    }

    /// Closes every connection; later requests fail.
    func closeAll() async {
        isClosed = true
        let all = entries
        entries.removeAll()
        for (_, entry) in all {
            switch entry {
            case .ready(let client): await client.close()
            case .connecting(_, let task):
                if let client = try? await task.value { await client.close() }
            }
        }
    }
}
