/// A Raft term number (Raft §5.1). Terms only grow; 0 means "before any election".
public struct Term: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }
    public static let zero = Term(0)
    @inlinable public static func < (a: Term, b: Term) -> Bool { a.rawValue < b.rawValue }
    /// The next term; traps on overflow (2^64 elections cannot happen).
    @inlinable public var next: Term { Term(rawValue + 1) }
    public var description: String { String(rawValue) }
}

/// A position in the replicated log (Raft §5.3). The first entry has index 1; 0 means "none".
/// In Fauna the index of the entry that made a write is also that write's revision.
public struct LogIndex: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }
    public static let zero = LogIndex(0)
    @inlinable public static func < (a: LogIndex, b: LogIndex) -> Bool { a.rawValue < b.rawValue }
    @inlinable public static func + (a: LogIndex, b: UInt64) -> LogIndex { LogIndex(a.rawValue + b) }
    @inlinable public static func - (a: LogIndex, b: UInt64) -> LogIndex { LogIndex(a.rawValue - b) }
    /// The number of indexes from `b` up to `a`; `a` must not be below `b`.
    @inlinable public static func - (a: LogIndex, b: LogIndex) -> UInt64 {
        precondition(a >= b, "index distance: \(a) < \(b)")
        return a.rawValue - b.rawValue
    }
    public var description: String { String(rawValue) }
}

/// The identity of a cluster member. 0 is reserved for "no node".
public struct NodeID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt64) { self.rawValue = value }
    @inlinable public static func < (a: NodeID, b: NodeID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "n\(rawValue)" }
}
