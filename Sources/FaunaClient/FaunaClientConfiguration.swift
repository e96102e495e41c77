import FaunaRPC
import Logging

/// Settings of a `FaunaClient`. Every wait and every retry is bounded by these.
public struct FaunaClientConfiguration: Sendable {
    /// How long one call (with all its retries) may take before it fails with `unavailable`,
    /// `timeout` or `notLeaderExhausted`.
    public var deadline: Duration
    /// How long one attempt waits for its answer (cut to what is left of `deadline`).
    public var requestTimeout: Duration
    /// How long a TCP connect may take. An attempt may overrun `deadline` by at most this.
    public var connectTimeout: Duration
    /// The first pause between attempts; doubled after every failed attempt, up to
    /// `backoffMax`, each pause drawn uniformly from its upper half (jitter).
    public var backoffInitial: Duration
    /// The longest pause between attempts.
    public var backoffMax: Duration
    /// Attempts per call at most, whatever the deadline.
    public var attemptsMax: Int
    /// Requests waiting for answers on one connection at most; above it an attempt backs off.
    public var requestsInFlightMax: Int
    /// Open connections at most (configured endpoints plus leader hints naming new nodes).
    public var connectionsMax: Int
    /// Idle write sessions kept for reuse; sessions beyond it are dropped when returned.
    public var idleSessionsMax: Int
    /// How long a whole `saveSnapshot` stream may take.
    public var snapshotTimeout: Duration
    /// Where the client logs (debug: every retry). The default discards everything: a
    /// library never bootstraps logging; the application does.
    public var logger: Logger
    /// TLS (docs/SECURITY.md): every connection verifies the node's certificate against the
    /// cluster's CA and presents this client's certificate. Nil: plaintext.
    public var tls: TLSContexts?
    /// A user name and password: every connection authenticates with them before its first
    /// request (docs/SECURITY.md "Users and roles"). Nil: the connection runs as the user its
    /// client certificate names, or as nobody.
    public var credentials: Credentials?

    /// A user name and its password.
    public struct Credentials: Sendable, Hashable {
        public var user: [UInt8]
        public var password: [UInt8]
        public init(user: [UInt8], password: [UInt8]) {
            self.user = user
            self.password = password
        }
    }

    /// A configuration with defaults for a cluster on loopback or a LAN.
    public init(
        deadline: Duration = .seconds(10), requestTimeout: Duration = .seconds(3),
        connectTimeout: Duration = .seconds(1), backoffInitial: Duration = .milliseconds(25),
        backoffMax: Duration = .seconds(1), attemptsMax: Int = 100, requestsInFlightMax: Int = 256,
        connectionsMax: Int = 64, idleSessionsMax: Int = 64, snapshotTimeout: Duration = .seconds(3600),
        logger: Logger = Logger(label: "fauna.client", factory: { _ in SwiftLogNoOpLogHandler() }), tls: TLSContexts? = nil
    ) {
        self.deadline = deadline
        self.requestTimeout = requestTimeout
        self.connectTimeout = connectTimeout
        self.backoffInitial = backoffInitial
        self.backoffMax = backoffMax
        self.attemptsMax = attemptsMax
        self.requestsInFlightMax = requestsInFlightMax
        self.connectionsMax = connectionsMax
        self.idleSessionsMax = idleSessionsMax
        self.snapshotTimeout = snapshotTimeout
        self.logger = logger
        self.tls = tls
    }
}
