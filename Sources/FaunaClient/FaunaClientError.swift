import FaunaRPC

/// Why a `FaunaClient` call failed. A struct with a code (swift-nio style) so that new codes do
/// not break callers. Domain outcomes of writes (compare failed, `alreadyExists`) are not
/// errors: they come back in `KVApplyResult.outcome`; a missing key is `nil` from `get`.
public struct FaunaClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public var code: Code
    /// Detail: what failed, on which node, and the last reason seen.
    public var message: String

    /// An error of kind `code`.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The kinds of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        private init(_ name: String) { self.name = name }

        /// No node answered (connect failures, no leader elected) before the deadline.
        public static let unavailable = Code("unavailable")
        /// The deadline passed while requests were timing out; a write may still commit.
        public static let timeout = Code("timeout")
        /// Every node said "not the leader" until the deadline (an election that does not end).
        public static let notLeaderExhausted = Code("notLeaderExhausted")
        /// The revision asked for was compacted.
        public static let compacted = Code("compacted")
        /// The revision asked for is above the current revision.
        public static let futureRevision = Code("futureRevision")
        /// The request breaks a rule or a limit (checked by the client or the node).
        public static let invalidRequest = Code("invalidRequest")
        /// The node does not implement the request.
        public static let unsupported = Code("unsupported")
        /// The session of a retried write expired on the node while its first attempt may have
        /// committed: whether the write happened is unknown. Re-read and decide.
        public static let sessionExpired = Code("sessionExpired")
        /// A bug or an unexpected answer (wrong kind, broken stream), on either side.
        public static let `internal` = Code("internal")
        /// A local file could not be written (snapshot save).
        public static let io = Code("io")
        /// What the cluster answered does not verify (docs/AUDIT.md): a node lied, its data
        /// was changed at rest, or history forked or rolled back. The message says which check
        /// failed and on which node.
        public static let verificationFailed = Code("verificationFailed")
        /// The client was closed, or the calling task was cancelled.
        public static let cancelled = Code("cancelled")
        /// A transaction (`FaunaClient.transaction`) kept finding what it read changed and
        /// gave up after its attempts.
        public static let conflict = Code("conflict")
        /// The lease named does not exist (never granted, revoked or expired).
        public static let leaseNotFound = Code("leaseNotFound")
        /// TLS failed: the handshake (a plaintext port, a certificate of another CA, expired),
        /// a node certificate without the node's name, or a TLS-only node asked in plaintext.
        /// Not retried: it is configuration, not a passing fault.
        public static let tls = Code("tls")
        /// Encryption at rest: the master key file of an encrypted archive or data directory is
        /// missing, readable by others, malformed, or not the key it was encrypted with.
        public static let encryptionKey = Code("encryptionKey")
        /// Authentication is enabled and the connection runs as no user: give a user name
        /// and password, or a client certificate whose common name is a user.
        public static let authRequired = Code("authRequired")
        /// Unknown user or wrong password.
        public static let authFailed = Code("authFailed")
        /// The user may not do this (message says what it lacks). Nothing was changed.
        public static let permissionDenied = Code("permissionDenied")

        public var description: String { name }
    }

    /// Whether the cluster could not be reached or did not answer in time (as opposed to a
    /// rejected request): `unavailable`, `timeout`, `notLeaderExhausted`.
    public var isUnavailable: Bool { [.unavailable, .timeout, .notLeaderExhausted].contains(code) }

    public var description: String { "\(code): \(message)" }
}

extension FaunaClientError {
    /// The error for a non-retryable `error` answer of a node.
    init(response: RPCErrorResponse, from endpoint: Endpoint) {
        let code: Code =
            switch response.code {
            case .compacted: .compacted
            case .futureRevision: .futureRevision
            case .invalidRequest: .invalidRequest
            case .unsupported: .unsupported
            case .unavailable, .notLeader: .unavailable
            case .timeout: .timeout
            case .leaseNotFound: .leaseNotFound
            case .tlsRequired: .tls
            case .authRequired: .authRequired
            case .authFailed: .authFailed
            case .permissionDenied: .permissionDenied
            default: .internal  // internalError, peerRejected, and codes of newer nodes
            }
        self.init(code, "\(endpoint) answered \(response)")
    }

    /// The error for an answer of the wrong kind.
    static func unexpected(_ answer: RPCMessage, want: String, from endpoint: Endpoint) -> FaunaClientError {
        FaunaClientError(.internal, "\(endpoint) answered \(answer.kind), want \(want)")
    }
}
