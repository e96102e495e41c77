/// What one simulation run does. Probabilities are per tick unless stated.
public struct SimOptions: Sendable {
    public var nodeCount = 3
    /// Ticks with faults; then faults heal and the run continues until a proposal commits
    /// (or `livenessTicks` pass, which is a failure).
    public var faultTicks = 600
    public var livenessTicks = 300
    public var electionTicks = 10
    public var heartbeatTicks = 2
    /// Network time resolution: messages are delayed by 1...`messageDelaySubticksMax`
    /// subticks, which reorders them.
    public var subticksPerTick = 10
    public var messageDelaySubticksMax = 12
    public var dropRate = 0.03  // per message
    public var duplicateRate = 0.02  // per message
    public var crashRate = 0.015
    public var leaderCrashRate = 0.01
    /// Per Ready: crash after sending early messages, before persisting anything.
    public var crashInReadyRate = 0.01
    /// Per Ready: the fsync is slow — persisting completes 1...`persistDelaySubticksMax`
    /// subticks later, while the node goes on receiving messages.
    public var slowPersistRate = 0.5
    public var persistDelaySubticksMax = 30
    /// Slow appliers (a third of node starts) hand out one committed entry per Ready. While
    /// one is not leader, each Ready that hands out entries fills its apply queue for
    /// `applyBatchSubticks`, or with `slowApplyRate` for 1...`applyDelaySubticksMax`
    /// subticks; the node takes no Ready meanwhile but keeps receiving messages and ticking,
    /// so it commits membership changes it has not applied, and may time out meanwhile.
    public var slowApplyRate = 0.3
    public var applyDelaySubticksMax = 300
    public var applyBatchSubticks = 10
    public var restartRate = 0.08  // per down node
    public var partitionRate = 0.02
    public var healRate = 0.04
    public var proposalsPerTick = 0.8
    public var readsPerTick = 0.5
    public var confChangeRate = 0.015
    public var transferRate = 0.01
    /// A node snapshots and compacts its log once this many entries are applied past it.
    public var snapshotEntries = 40
    public var spareNodes = 2

    public init() {}
}

/// The outcome of one run.
public struct SimReport: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var failure: String?
    public var ticks = 0
    public var acknowledgedWrites = 0
    public var readsChecked = 0
    public var leadersElected = 0
    public var crashes = 0
    /// Times a slow applier's apply queue filled up (it took no Ready for a while).
    public var applyPauses = 0
    public var snapshotsInstalled = 0
    public var confChangesApplied = 0
    public var transfers = 0
    public var messagesDelivered = 0

    public var passed: Bool { failure == nil }

    public var description: String {
        let outcome = failure.map { "FAILED: \($0)" } ?? "ok"
        return "seed \(seed): \(outcome) — \(ticks) ticks, \(acknowledgedWrites) writes acked, \(readsChecked) reads checked, "
            + "\(leadersElected) leaders, \(crashes) crashes, \(applyPauses) apply pauses, \(snapshotsInstalled) snapshots installed, "
            + "\(confChangesApplied) conf changes, \(transfers) transfers, \(messagesDelivered) messages"
    }
}
