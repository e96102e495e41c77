/// Bytes that are not a valid encoding (command, result, record, history value or key).
/// A struct with a code so that new cases do not break callers (swift-nio's style).
public struct KVDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem; stable across releases.
    public var code: Code
    /// What was wrong, in "got X, want Y" form, naming the field.
    public var reason: String

    /// An error of kind `code`, explained by `reason`.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    /// The kinds of problem.
    public enum Code: Hashable, Sendable {
        /// The input ended inside a field.
        case truncated
        /// Bytes were left over after a complete value.
        case trailingBytes
        /// An unknown format version.
        case unsupportedVersion
        /// An unknown tag or enum value.
        case unknownTag
        /// A reserved flag bit was set.
        case reservedBits
        /// A length or count above its limit.
        case limitExceeded
        /// Decoded fields that contradict each other or an invariant.
        case invalidValue
    }

    public var description: String { "\(code): \(reason)" }
}

/// A command that breaks a limit or a rule; the outcome `.invalid` carries it.
public struct KVCommandError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem; stable across releases.
    public var code: Code
    /// What was wrong, in "got X, want Y" form.
    public var reason: String

    /// An error of kind `code`, explained by `reason`.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    /// The kinds of problem.
    public enum Code: Hashable, Sendable {
        /// An empty key, or a key or range end longer than allowed.
        case keyLength
        /// A value longer than `KVLimits.valueBytesMax`.
        case valueLength
        /// Too many operations or compares in a transaction.
        case txnSize
        /// A transaction branch writes one key twice (etcd: "duplicate key given in txn").
        case duplicateKeyInTxn
        /// A negative range limit, a zero session sequence or another impossible field.
        case invalidField
        /// The entry payload did not decode; the outcome carries the decoder's reason.
        case malformed
        /// A put or revoke named a lease that does not exist (never granted, revoked, expired).
        case leaseNotFound
        /// A grant named the ID of a lease that exists.
        case leaseExists
        /// `KVLimits.leasesMax` leases exist already.
        case leasesFull
        /// Authentication is enabled and the request's connection is bound to no user.
        case authRequired
        /// The user may not do this (a key outside its roles' permissions, an admin command
        /// without the root role), or no longer exists.
        case permissionDenied
        /// An auth change that does not fit the auth state: a user or role that exists or
        /// does not, enabling auth without root, deleting root while enabled.
        case authState
        /// A client write of a key in the system space (`KVSystemKeys`).
        case reservedKey
    }

    public var description: String { "\(code): \(reason)" }
}

/// Why a read (`KVStateMachine.get`/`range`) cannot be answered.
public enum KVReadError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The revision asked for is below the compacted revision: its history is gone.
    case compacted(requested: Revision, compacted: Revision)
    /// The revision asked for is above the current revision.
    case futureRevision(requested: Revision, current: Revision)
    /// The request breaks a limit (e.g. a key too long).
    case invalid(KVCommandError)

    public var description: String {
        switch self {
        case .compacted(let r, let c): "revision \(r) is compacted: got \(r), want >= \(c)"
        case .futureRevision(let r, let c): "revision \(r) is in the future: got \(r), want <= \(c)"
        case .invalid(let e): "invalid request: \(e)"
        }
    }
}
