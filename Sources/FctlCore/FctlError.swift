import FaunaClient

/// A failure of an fctl command with its exit code (docs/CLI.md "Exit codes") and a message
/// that says what failed and what to do next.
public struct FctlError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The process exit code.
    public var exitCode: ExitStatus
    /// For stderr.
    public var message: String

    public init(_ exitCode: ExitStatus, _ message: String) {
        self.exitCode = exitCode
        self.message = message
    }

    public var description: String { message }

    /// The fctl error for a client error, with advice.
    public init(_ error: FaunaClientError, doing action: String) {
        switch error.code {
        case .unavailable, .notLeaderExhausted:
            self.init(.unavailable, "\(action) failed: cluster unavailable (\(error.message)). Check that the nodes run (`fctl status`) and that --endpoints/--config name their client ports; a leader may still be being elected: retry, or raise --timeout.")
        case .timeout:
            self.init(.unavailable, "\(action) failed: no answer in time (\(error.message)). A write may still have committed; check with `fctl get`, or raise --timeout.")
        case .compacted, .futureRevision, .invalidRequest, .unsupported:
            self.init(.rejected, "\(action) rejected by the server: \(error.code) (\(error.message)). Fix the request (see `fctl help`).")
        case .sessionExpired:
            self.init(.internalError, "\(action): result unknown (\(error.message)).")
        case .verificationFailed:
            self.init(.verificationFailed, "\(action): VERIFICATION FAILED: \(error.message)")
        case .leaseNotFound:
            self.init(.notFound, "\(action): \(error.message). List the live leases with `fctl lease list`.")
        case .conflict:
            self.init(.notFound, "\(action): \(error.message). Other writers kept changing what it read; retry later or with more --attempts.")
        case .io:
            self.init(.internalError, "\(action) failed: \(error.message). Check the path and free disk space.")
        case .authRequired:
            self.init(.security, "\(action) refused: \(error.message). Pass --user NAME (password in $FAUNA_PASSWORD or --password-file), or a client certificate whose common name is a user.")
        case .authFailed:
            self.init(.security, "\(action) refused: \(error.message). Check --user and the password.")
        case .permissionDenied:
            self.init(.security, "\(action) refused: permission denied: \(error.message). Nothing was changed; ask root for a role that allows it (`fctl role grant`).")
        case .encryptionKey:
            self.init(.security, "\(action) failed: \(error.message)")
        case .tls:
            self.init(.security, "\(action) failed: TLS: \(error.message). Check [tls] in the cluster.toml used (or --ca, --cert, --key): the CA must be the cluster's, the certificates valid, and TLS on at both ends.")
        default:
            self.init(.internalError, "\(action) failed: \(error.code) (\(error.message)). This is a bug or a broken node; check the node logs.")
        }
    }
}

/// fctl's exit codes (docs/CLI.md "Exit codes").
public enum ExitStatus: Int32, Sendable, CaseIterable {
    /// Done.
    case ok = 0
    /// Key not found, txn compare failed (else branch ran), `put --if-absent` found the key,
    /// `hashkv` digests differ.
    case notFound = 1
    /// Bad arguments or options.
    case usage = 2
    /// No leader, no node reachable, or no answer before the deadline.
    case unavailable = 3
    /// The server rejected the request (invalid, compacted, future revision).
    case rejected = 4
    /// A bug, a broken stream, a local IO error.
    case internalError = 5
    /// A proof, signature or consistency check failed, or `audit` found a node that differs:
    /// a node lied, data was changed at rest, or history forked or rolled back.
    case verificationFailed = 6
    /// TLS failed (docs/SECURITY.md): the node's port is plaintext or TLS-only and this end is
    /// not, or a certificate is of another CA, expired or names another node. Or
    /// authentication: no user, an unknown user or wrong password, or a permission missing.
    case security = 7
}
