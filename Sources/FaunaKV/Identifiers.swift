/// A revision of the key-value state: the Raft index of the entry that made a write
/// (docs/adr/0003-kv-state-machine.md). Revisions only grow; gaps are allowed (no-op and membership entries
/// take indexes too). Every operation of one transaction shares one revision. 0 means "none"
/// (before the first write; or "the current revision" where a read takes an optional one).
public struct Revision: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The number itself.
    public var rawValue: UInt64
    /// Wraps `rawValue`.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }
    /// No revision: the state before any write.
    public static let zero = Revision(0)
    /// Numeric order.
    @inlinable public static func < (a: Revision, b: Revision) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// The identity of a client session (Raft thesis §6.3). Chosen by the client (random 64 bits).
public struct ClientID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The number itself.
    public var rawValue: UInt64
    /// Wraps `rawValue`.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }
    /// Numeric order.
    @inlinable public static func < (a: ClientID, b: ClientID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "client-\(rawValue)" }
}

/// The number a client gives each of its proposals: 1 for the first, then growing (gaps are
/// allowed when the client gives up on one). A retry reuses the number of the original.
public struct SequenceNumber: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The number itself.
    public var rawValue: UInt64
    /// Wraps `rawValue`.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }
    /// The sequence number of a client's first proposal; it opens the session.
    public static let first = SequenceNumber(1)
    /// Numeric order.
    @inlinable public static func < (a: SequenceNumber, b: SequenceNumber) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// Who proposed a command and which of their proposals it is: makes retries exactly-once.
public struct ClientSession: Hashable, Sendable {
    /// The client that proposed.
    public var clientID: ClientID
    /// Invariant (checked by the codec and `KVProposal.validate()`): at least `.first`.
    public var sequence: SequenceNumber

    /// The session of `clientID`'s proposal number `sequence`.
    public init(clientID: ClientID, sequence: SequenceNumber) {
        self.clientID = clientID
        self.sequence = sequence
    }
}
