/// Linearizable reads waiting for the leader to confirm it is still the leader (ReadIndex,
/// thesis §6.4), batched by heartbeat round: every read that arrives while round r is being
/// confirmed waits for round r + 1, which starts as soon as r is confirmed, so one heartbeat
/// round serves all the reads waiting on it, however many.
struct ReadQueue {
    struct Pending {
        /// The commit index when the read arrived: serve once applied through it.
        var index: LogIndex
        var context: [UInt8]
        /// The requester: this node, or a follower that forwarded the read.
        var from: NodeID
        /// The heartbeat round that confirms it; 0 until a round is started for it.
        var round: UInt64
    }

    private(set) var pending: [Pending] = []
    /// Reads that arrived before the leader committed an entry of its term: until then its
    /// commit index may be stale (thesis §6.4 step 1).
    private(set) var waitingForTermCommit: [Pending] = []
    private(set) var roundStarted: UInt64 = 0
    private(set) var roundConfirmed: UInt64 = 0
    /// How many reads the last round started was for.
    private(set) var lastRoundSize = 0
    private var acknowledged: [NodeID: UInt64] = [:]

    var count: Int { pending.count + waitingForTermCommit.count }
    var hasUnassigned: Bool { pending.last?.round == 0 }
    var isRoundInFlight: Bool { roundStarted > roundConfirmed }

    /// Heartbeats carry the round in flight, so a retransmitted heartbeat can confirm it.
    var heartbeatContext: [UInt8] {
        guard isRoundInFlight else { return [] }
        return (0..<8).map { UInt8(truncatingIfNeeded: roundStarted >> UInt64(56 - 8 * $0)) }
    }

    mutating func enqueue(_ read: Pending, leaderHasCommittedInTerm: Bool) {
        if leaderHasCommittedInTerm { pending.append(read) } else { waitingForTermCommit.append(read) }
    }

    /// The leader committed its first entry of the term: waiting reads use that commit index.
    mutating func termCommitted(at index: LogIndex) {
        for var read in waitingForTermCommit {
            read.index = index
            pending.append(read)
        }
        waitingForTermCommit = []
    }

    /// Starts a new round for the unassigned reads if none is in flight.
    /// - Returns: true if a round was started (the caller broadcasts heartbeats).
    mutating func startRoundIfIdle() -> Bool {
        guard hasUnassigned, !isRoundInFlight else { return false }
        roundStarted += 1
        lastRoundSize = 0
        for i in pending.indices.reversed() {
            if pending[i].round != 0 { break }
            pending[i].round = roundStarted
            lastRoundSize += 1
        }
        return true
    }

    /// Records that `voter` answered a heartbeat of round `context`; returns the reads that a
    /// quorum of `voters` (with `me` counted as having answered everything) has now confirmed.
    mutating func acknowledge(from voter: NodeID, context: [UInt8], me: NodeID, voters: [NodeID], quorum: Int) -> [Pending] {
        guard context.count == 8 else { return [] }
        let round = context.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard round <= roundStarted else { return [] }  // not a round we started: ignore
        acknowledged[voter] = max(acknowledged[voter] ?? 0, round)
        var rounds = voters.map { $0 == me ? roundStarted : acknowledged[$0] ?? 0 }
        rounds.sort(by: >)
        let confirmed = rounds[quorum - 1]
        guard confirmed > roundConfirmed else { return [] }
        roundConfirmed = confirmed
        return releaseConfirmed()
    }

    /// With a single voter every round is confirmed at once.
    mutating func confirmAll() -> [Pending] {
        roundConfirmed = roundStarted
        return releaseConfirmed()
    }

    private mutating func releaseConfirmed() -> [Pending] {
        var released = 0
        while released < pending.count, pending[released].round != 0, pending[released].round <= roundConfirmed {
            released += 1
        }
        let out = Array(pending[..<released])
        pending.removeFirst(released)
        return out
    }

    mutating func removeAll() {
        self = ReadQueue()
    }
}
