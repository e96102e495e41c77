import FaunaRaft
import Foundation
import Testing

@testable import FaunaStore

/// ADR 0006: membership is a function of the applied index. A node persists a Ready's log
/// writes before the apply stage applies its committed entries (ADR 0007), so a crash can fall
/// between the two; the restarted node must then start from the membership as of its applied
/// index, and replaying the committed entries must pass only through configurations that
/// existed. (Seen with a real store before the fix: `voters [n1,n2,n3,n5], learners [n4]`.)
@Suite("Membership across a crash between persist and apply")
struct MembershipRestartTests {
    static let founders = [NodeID(1), NodeID(2), NodeID(3)]

    /// The founding entries, then n4 added, promoted and removed, then n5 added and promoted.
    static func history() -> [Entry] {
        var log = bootstrapEntries(voters: founders)
        let changes = [
            ConfChange(.addLearner, NodeID(4)), ConfChange(.addVoter, NodeID(4)), ConfChange(.remove, NodeID(4)),
            ConfChange(.addLearner, NodeID(5)), ConfChange(.addVoter, NodeID(5)),
        ]
        for change in changes {
            log.append(Entry(term: Term(1), index: LogIndex(UInt64(log.count + 1)), type: .confChange, data: change.encoded))
        }
        return log
    }

    /// The configuration after each entry of `log`, starting from none (index i-1 holds the
    /// configuration as of index i).
    static func configurations(_ log: [Entry]) throws -> [ConfState] {
        var conf = ConfState()
        var out: [ConfState] = []
        for entry in log {
            conf = try #require(ConfChange(decoding: entry.data)).applied(to: conf)
            out.append(conf)
        }
        return out
    }

    /// A Raft core over `store`, resuming after its applied index, as the node starts one.
    static func raft(over store: Store) throws -> RaftNode {
        var config = RaftConfig(id: NodeID(1), randomSeed: 1)
        config.applied = store.appliedIndex
        return try RaftNode(config: config, storage: store.raftLog)
    }

    @Test func restartTakesMembershipAsOfTheAppliedIndex() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = Self.history()
        let existed = try Self.configurations(log)
        #expect(existed.last == ConfState(voters: [NodeID(1), NodeID(2), NodeID(3), NodeID(5)]))
        do {
            // The whole log is durable; entries 1...3 (the founders) are committed.
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            try store.raftLog.persist(RaftLogUpdate(entries: log, hardState: HardState(term: Term(1), commit: LogIndex(3))))
            // First run: the node persists the Ready, applies its entries and advances.
            let first = try Self.raft(over: store)
            let ready = first.ready()
            #expect(ready.committedEntries.map(\.index) == [LogIndex(1), LogIndex(2), LogIndex(3)])
            try store.raftLog.persist(RaftLogUpdate(ready))
            try store.apply(ready.committedEntries, confState: ready.confState)
            first.advance(ready)
            #expect(store.appliedConfState == existed[2])
            // The commit of 4...8 becomes known (durable in the hard state).
            try store.raftLog.persist(RaftLogUpdate(hardState: HardState(term: Term(1), commit: LogIndex(8))))
        }
        do {
            // Second run: the Ready that hands out 4...8 is persisted, then the node crashes
            // before the apply stage applies them.
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            let second = try Self.raft(over: store)
            #expect(second.conf == existed[2])
            let ready = second.ready()
            #expect(ready.committedEntries.map(\.index) == (4...8).map { LogIndex(UInt64($0)) })
            #expect(ready.confState == existed[7])
            try store.raftLog.persist(RaftLogUpdate(ready))
        }
        // Restart after the crash: applied index 3, so the membership is the one as of 3.
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        #expect(store.appliedIndex == LogIndex(3))
        #expect(store.appliedConfState == existed[2])
        let restarted = try Self.raft(over: store)
        let restored = restarted.conf
        #expect(restored == existed[2], "restored \(restored), want the membership at applied index 3")
        // Replaying 4...8 over the restored membership passes only through real configurations.
        let replay = restarted.ready()
        #expect(replay.committedEntries.map(\.index) == (4...8).map { LogIndex(UInt64($0)) })
        var conf = restored
        for entry in replay.committedEntries {
            conf = try #require(ConfChange(decoding: entry.data)).applied(to: conf)
            #expect(conf == existed[Int(entry.index.rawValue) - 1], "replay reached \(conf) at index \(entry.index)")
        }
        #expect(replay.confState == existed[7])
    }

    /// The applied index is written with every apply; its term, the membership and the
    /// membership-change indexes only by an apply that changes them (`Store.add(_:to:over:)`).
    /// One-entry applies over two term changes and a membership change, then a reopen: the
    /// records left out still hold what was applied.
    @Test func appliedStateRecordsWrittenOnlyOnChangeReopenAsApplied() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let founding = bootstrapEntries(voters: Self.founders)
        let founded = try #require(try Self.configurations(founding).last)
        var next = UInt64(founding.count + 1)
        let want: AppliedState
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            try store.applyLogged(founding, confState: founded)
            for _ in 0..<3 {
                try store.applyLogged([putEntry(next, term: 1, key: "k", value: "v\(next)")])
                next += 1
            }
            let learner = ConfChange(.addLearner, NodeID(4)).applied(to: founded)
            let change = Entry(term: Term(2), index: LogIndex(next), type: .confChange, data: ConfChange(.addLearner, NodeID(4)).encoded)
            try store.applyLogged([change], confState: learner)
            next += 1
            for term in [UInt64(2), 3] {
                for _ in 0..<3 {
                    try store.applyLogged([putEntry(next, term: term, key: "k", value: "v\(next)")])
                    next += 1
                }
            }
            want = store.applyLock.withLock { store.applied }
            #expect(want.index == LogIndex(next - 1))
            #expect(want.term == Term(3))
            #expect(want.confState == learner)
            #expect(want.confChangeIndexes == (1...founding.count).map { LogIndex(UInt64($0)) } + [change.index])
        }
        let store = try Store(path: dir.sub("n1"))
        defer { store.close() }
        #expect(store.applyLock.withLock { store.applied } == want)
        #expect(try Store.loadAppliedState(db: store.db, meta: store.cfs.meta) == want)
    }
}
