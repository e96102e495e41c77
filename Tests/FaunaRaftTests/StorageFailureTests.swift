import Testing

@testable import FaunaRaft

/// A storage that cannot read records it holds (a damaged disk) stops the core wherever the
/// core meets the error: it records it in `storageFailure`, hands out nothing more (no vote,
/// no rejection, no append or snapshot decided on the failed read), ignores later input and
/// refuses requests, and the node stops (`RaftStorage`: anything but a `RaftStorageError` is
/// fatal, fail-stop; ADR 0006 "Storage failures").
@Suite struct StorageFailureTests {
    struct DamagedRecord: Error, Equatable {}

    /// A `MemoryStorage` whose reads can be made to fail like a damaged disk. The test driver
    /// writes to `base`.
    final class FaultyStorage: RaftStorage {
        let base: MemoryStorage
        var damagedTerms = false
        var damagedEntries = false
        var damagedFirstIndex = false
        var damagedSnapshot = false

        init(_ base: MemoryStorage) { self.base = base }

        func initialState() throws -> (HardState, ConfState) { try base.initialState() }
        func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws -> [Entry] {
            if damagedEntries { throw DamagedRecord() }
            return try base.entries(from: low, to: high, maxBytes: maxBytes)
        }
        func term(at index: LogIndex) throws -> Term {
            if damagedTerms { throw DamagedRecord() }
            return try base.term(at: index)
        }
        func firstIndex() throws -> LogIndex {
            if damagedFirstIndex { throw DamagedRecord() }
            return try base.firstIndex()
        }
        func lastIndex() throws -> LogIndex { try base.lastIndex() }
        func snapshot() throws -> Snapshot {
            if damagedSnapshot { throw DamagedRecord() }
            return try base.snapshot()
        }
    }

    /// Restarts `id` of `c` over a `FaultyStorage` (no fault yet) and returns it.
    func restartFaulty(_ c: TestCluster, _ id: UInt64) throws -> FaultyStorage {
        var faulty: FaultyStorage?
        try c.restart(id) { base in
            let storage = FaultyStorage(base)
            faulty = storage
            return storage
        }
        return faulty!
    }

    /// The node has stopped: the failure is reported, nothing is handed out, input is ignored
    /// and requests are refused.
    func expectStopped(_ node: RaftNode, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(node.storageFailure as? DamagedRecord == DamagedRecord(), sourceLocation: sourceLocation)
        #expect(!node.hasReady, sourceLocation: sourceLocation)
        let (term, role) = (node.term, node.role)
        for _ in 0..<40 { node.tick() }  // two election timeouts
        node.step(Message(type: .vote, from: NodeID(9), to: node.id, term: term.next, logTerm: term.next, index: LogIndex(1_000)))
        #expect(!node.hasReady, "a stopped core produces nothing", sourceLocation: sourceLocation)
        #expect(node.term == term && node.role == role, "a stopped core does not move", sourceLocation: sourceLocation)
        let ready = node.ready()
        #expect(ready.hardState == nil && ready.entries.isEmpty && ready.committedEntries.isEmpty, sourceLocation: sourceLocation)
        #expect(ready.earlyMessages.isEmpty && ready.messages.isEmpty && ready.readStates.isEmpty, sourceLocation: sourceLocation)
        node.advance(ready)
        func refused(_ request: () throws -> Void) -> Bool {
            do {
                try request()
                return false
            } catch {
                return (error as? RaftError)?.code == .storageFailed
            }
        }
        #expect(refused { _ = try node.propose(bytes("after")) }, sourceLocation: sourceLocation)
        #expect(refused { try node.readIndex(context: [1]) }, sourceLocation: sourceLocation)
        #expect(refused { try node.transferLeadership(to: NodeID(2)) }, sourceLocation: sourceLocation)
        #expect(refused { _ = try node.proposeConfChange(ConfChange(.addLearner, NodeID(9))) }, sourceLocation: sourceLocation)
    }

    @Test func unreadableCommittedEntriesAreReportedNotTrapped() throws {
        let storage = FaultyStorage(MemoryStorage(bootstrap: [NodeID(1), NodeID(2), NodeID(3)]))
        storage.damagedEntries = true
        let node = try RaftNode(config: RaftConfig(id: NodeID(1), randomSeed: 1), storage: storage)
        #expect(node.hasReady)
        let ready = node.ready()
        #expect(ready.committedEntries.isEmpty)
        #expect(ready.confState == nil)
        node.advance(ready)
        expectStopped(node)
    }

    /// Before: `lastTerm` read as zero, so n2 judged a stale candidate up to date and granted
    /// the vote that elected it without a committed entry.
    @Test func noVoteIsGrantedOverALastTermThatCannotBeRead() throws {
        let c = try TestCluster(voters: [1, 2, 3]) { $0.preVote = false; $0.checkQuorum = false }
        try c.elect(1)
        c.isolate(3)
        try c[1].propose(bytes("x"))
        try c.stabilize()
        c.heal()
        let storage = try restartFaulty(c, 2)
        storage.damagedTerms = true
        let before = c.sent.count
        try c.elect(3)
        #expect(!c.sent[before...].contains { $0.from == NodeID(2) }, "n2 answers nothing")
        #expect(!c[3].isLeader, "n3 lacks the committed entry x")
        expectStopped(c[2])
    }

    /// Before: the unreadable term was a mismatch, and n2 rejected the append (with a hint
    /// computed over the same unreadable terms) again and again.
    @Test func noAppendIsRejectedOverATermThatCannotBeRead() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        try c.elect(1)
        let storage = try restartFaulty(c, 2)
        storage.damagedTerms = true
        let before = c.sent.count
        try c[1].propose(bytes("x"))
        try c.stabilize()
        try c.tickAll(times: 2)
        #expect(!c.sent[before...].contains { $0.from == NodeID(2) }, "n2 answers nothing")
        expectStopped(c[2])
        #expect(c.appliedData(1) == [bytes("x")], "n1 and n3 carry on")
    }

    /// Before: the leader took the failure for "not available yet", sent nothing to its
    /// followers and went on heartbeating and accepting proposals it could not replicate.
    @Test func aLeaderThatCannotReadThePreviousTermStops() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        let storage = try restartFaulty(c, 1)
        try c.elect(1)
        storage.damagedTerms = true
        let before = c.sent.count
        try c[1].propose(bytes("x"))  // accepted: the failure comes when replicating it
        try c.stabilize()
        try c.tick(1, times: 3)
        try c.stabilize()
        #expect(!c.sent[before...].contains { $0.from == NodeID(1) }, "n1 sends nothing")
        expectStopped(c[1])
        #expect(c.appliedData(2).isEmpty)
    }

    /// Before: an unreadable first index read as the first unstable index, so a follower that
    /// lagged by a few entries looked compacted away and was sent the leader's snapshot.
    @Test func anUnreadableFirstIndexIsNotTakenForACompactedLog() throws {
        let c = try TestCluster(voters: [1, 2, 3])
        let storage = try restartFaulty(c, 1)
        try c.elect(1)
        try storage.base.createSnapshot(at: LogIndex(3), confState: c[1].conf, data: [])
        c.isolate(3)
        for i in 0..<3 { try c[1].propose(bytes("x\(i)")) }
        try c.stabilize()
        c.heal()
        storage.damagedFirstIndex = true
        let before = c.sent.count
        try c.tick(1, times: 2)
        try c.stabilize()
        try c.tick(1, times: 2)
        try c.stabilize()
        #expect(!c.sent[before...].contains { $0.type == .snapshot }, "n3 needs entries, not a snapshot")
        expectStopped(c[1])
    }

    /// n1 leads over faulty storage with a snapshot of its applied state; n3, cut off, lags
    /// behind it (so it needs the snapshot once healed).
    private func leaderWithSnapshotAndLaggingFollower() throws -> (TestCluster, FaultyStorage) {
        let c = try TestCluster(voters: [1, 2, 3])
        let storage = try restartFaulty(c, 1)
        try c.elect(1)
        c.isolate(3)
        for i in 0..<5 { try c[1].propose(bytes("x\(i)")) }
        try c.stabilize()
        try c.tickAll(times: 1)
        try storage.base.createSnapshot(at: c[1].appliedIndex, confState: c[1].conf, data: [])
        return (c, storage)
    }

    /// Before: the leader took the failure for "no snapshot yet" and retried forever.
    @Test func aLeaderThatCannotReadItsSnapshotStops() throws {
        let (c, storage) = try leaderWithSnapshotAndLaggingFollower()
        storage.damagedSnapshot = true
        c.heal()
        let before = c.sent.count
        try c.tickAll(times: 3)
        #expect(!c.sent[before...].contains { $0.type == .snapshot })
        expectStopped(c[1])
    }

    /// Before: the core trapped (a crash, not a fail-stop the node can report) when a
    /// campaign's check for unapplied membership changes could not read the entries.
    @Test func aCampaignOverUnreadableCommittedEntriesStopsTheNode() throws {
        let storage = FaultyStorage(MemoryStorage(bootstrap: [NodeID(1), NodeID(2), NodeID(3)]))
        var config = RaftConfig(id: NodeID(1), randomSeed: 1)
        config.committedBytesPerReadyMax = 1  // one entry per Ready
        let node = try RaftNode(config: config, storage: storage)
        // Hand out the first bootstrap entry only: n1 is a voter, two changes are unapplied.
        let ready = node.ready()
        #expect(ready.committedEntries.map(\.index) == [LogIndex(1)])
        node.advance(ready)
        storage.damagedEntries = true
        for _ in 0..<20 { node.tick() }  // an election timeout has passed: it would campaign
        #expect(node.role == .follower && node.term == Term(1), "no campaign over unreadable entries")
        expectStopped(node)
    }

    /// `RaftStorageError`s are the storage's conventions, not damage: a lagging follower is
    /// sent the snapshot, and nothing stops.
    @Test func aCompactedLogIsNotAFailure() throws {
        let (c, _) = try leaderWithSnapshotAndLaggingFollower()
        c.heal()
        try c.tickAll(times: 3)
        #expect(c.sent.contains { $0.type == .snapshot && $0.to == NodeID(3) })
        for id in [UInt64(1), 2, 3] { #expect(c[id].storageFailure == nil) }
        #expect(c[3].commitIndex == c[1].commitIndex)
    }
}
