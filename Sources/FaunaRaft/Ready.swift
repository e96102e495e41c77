/// The role a node plays in its current term.
public enum RaftRole: UInt8, Sendable, Hashable, CustomStringConvertible {
    case follower, preCandidate, candidate, leader
    public var description: String {
        switch self {
        case .follower: "follower"
        case .preCandidate: "pre-candidate"
        case .candidate: "candidate"
        case .leader: "leader"
        }
    }
}

/// Volatile state worth reporting when it changes (not persisted).
public struct SoftState: Sendable, Hashable {
    public var role: RaftRole
    public var leader: NodeID?
}

/// Everything the caller must do after the core changed state, in this order:
///
/// 1. Persist `snapshot` (if any), then `entries` (truncating any stored suffix from the
///    first entry's index), then `hardState` (if any) — durably (fsync) when `mustSync`.
///    `earlyMessages` may be sent before or while persisting: they depend on nothing in this
///    Ready being durable (a leader's appends: thesis §10.2.1 — the leader counts itself
///    toward commit only after `advance`).
/// 2. Send `messages`, only after step 1 is durable (a vote is never granted, nor an append
///    acknowledged, before it is on disk — Raft figure 2).
/// 3. Apply `committedEntries` in order; then, with the applied index, persist `confState`
///    (if any): it is the membership as of the last of these entries. `committedEntries` are
///    always durable locally already (they never go past what an earlier Ready persisted), so
///    applying may start before step 1 completes.
/// 4. Answer the `readStates` whose index the state machine has applied.
/// 5. Call `advance(_:)` with this Ready. Do not call `ready()` again before that.
public struct Ready: Sendable {
    public var softState: SoftState?
    public var hardState: HardState?
    public var entries: [Entry] = []
    public var snapshot: Snapshot?
    public var committedEntries: [Entry] = []
    public var confState: ConfState?
    public var earlyMessages: [Message] = []
    public var messages: [Message] = []
    public var readStates: [ReadState] = []
    /// Whether step 1 must be an fsync'd write (term, vote or entries changed).
    public var mustSync: Bool = false
}
