/// A single-server membership change (Raft thesis §4.1: one server at a time, so any two
/// consecutive configurations share a majority).
public struct ConfChange: Sendable, Hashable {
    public enum Kind: UInt8, Sendable, Hashable {
        /// Add a non-voting member that receives the log (thesis §4.2.1 catch-up).
        case addLearner = 0
        /// Make a learner (or a new node) a voter.
        case addVoter = 1
        /// Remove a voter or learner, possibly the leader itself.
        case remove = 2
    }

    public var kind: Kind
    public var nodeID: NodeID
    /// Opaque to the core; the node stores the new member's addresses here.
    public var context: [UInt8]

    public init(_ kind: Kind, _ nodeID: NodeID, context: [UInt8] = []) {
        self.kind = kind
        self.nodeID = nodeID
        self.context = context
    }

    /// The configuration after applying this change to `conf`.
    public func applied(to conf: ConfState) -> ConfState {
        var voters = conf.voters.filter { $0 != nodeID }
        var learners = conf.learners.filter { $0 != nodeID }
        switch kind {
        case .addLearner: learners.append(nodeID)
        case .addVoter: voters.append(nodeID)
        case .remove: break
        }
        return ConfState(voters: voters, learners: learners)
    }

    /// Canonical encoding used as the payload of `.confChange` entries:
    /// `u8 kind | u64 BE nodeID | context bytes`.
    public var encoded: [UInt8] {
        var out: [UInt8] = [kind.rawValue]
        out.reserveCapacity(9 + context.count)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: nodeID.rawValue >> UInt64(shift))) }
        out.append(contentsOf: context)
        return out
    }

    /// Decodes `encoded`; nil if the bytes are not a valid conf change (never traps).
    public init?(decoding bytes: [UInt8]) {
        guard bytes.count >= 9, let kind = Kind(rawValue: bytes[0]) else { return nil }
        var id: UInt64 = 0
        for i in 1...8 { id = id << 8 | UInt64(bytes[i]) }
        guard id != 0 else { return nil }
        self.init(kind, NodeID(id), context: Array(bytes[9...]))
    }
}
