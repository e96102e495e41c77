import Testing
@testable import FaunaRaft

@Suite struct LogTests {
    func entries(_ terms: [UInt64], from first: UInt64 = 1) -> [Entry] {
        terms.enumerated().map { Entry(term: Term($1), index: LogIndex(first + UInt64($0)), data: [UInt8($0)]) }
    }

    @Test func unstableEntriesOverrideStorageAndTruncate() throws {
        let storage = MemoryStorage()
        storage.append(entries([1, 1, 1, 1]))
        var log = try RaftLog(storage: storage, committed: LogIndex(2), applied: .zero)
        #expect(log.lastIndex == LogIndex(4))
        _ = try log.maybeAppend(after: LogIndex(2), entries: entries([2, 2], from: 3))
        #expect(try log.term(at: LogIndex(3)) == Term(2))
        #expect(log.unstable.count == 2 && log.unstableOffset == LogIndex(3))
        // Identical entries are not re-appended.
        _ = try log.maybeAppend(after: LogIndex(2), entries: entries([2], from: 3))
        #expect(log.lastIndex == LogIndex(4))
    }

    @Test func conflictWithCommittedEntryIsRefusedNotFatal() throws {
        let storage = MemoryStorage()
        storage.append(entries([1, 1, 1]))
        var log = try RaftLog(storage: storage, committed: LogIndex(3), applied: .zero)
        #expect(throws: LogConflictError.self) { try log.maybeAppend(after: LogIndex(1), entries: entries([5], from: 2)) }
    }

    @Test func upToDateComparesLastTermThenIndex() throws {
        let storage = MemoryStorage()
        storage.append(entries([1, 2, 2]))
        let log = try RaftLog(storage: storage, committed: .zero, applied: .zero)
        #expect(log.isUpToDate(lastIndex: LogIndex(1), lastTerm: Term(3)))
        #expect(log.isUpToDate(lastIndex: LogIndex(3), lastTerm: Term(2)))
        #expect(!log.isUpToDate(lastIndex: LogIndex(2), lastTerm: Term(2)))
        #expect(!log.isUpToDate(lastIndex: LogIndex(9), lastTerm: Term(1)))
    }

    @Test func entriesRespectByteLimitButReturnAtLeastOne() throws {
        let storage = MemoryStorage()
        storage.append(entries([1, 1, 1, 1]))
        let log = try RaftLog(storage: storage, committed: .zero, applied: .zero)
        #expect(try log.entries(from: LogIndex(1), to: LogIndex(5), maxBytes: 1).count == 1)
        #expect(try log.entries(from: LogIndex(1), to: LogIndex(5), maxBytes: 2 * 25).count == 2)
    }

    @Test func compactedRangeThrows() throws {
        let storage = MemoryStorage()
        storage.append(entries([1, 1, 1, 1]))
        try storage.createSnapshot(at: LogIndex(2), confState: ConfState(), data: [])
        let log = try RaftLog(storage: storage, committed: LogIndex(2), applied: LogIndex(2))
        #expect(throws: RaftStorageError.compacted) { try log.entries(from: LogIndex(1), to: LogIndex(3), maxBytes: .max) }
        #expect(try log.term(at: LogIndex(2)) == Term(1))
        #expect(throws: RaftStorageError.unavailable) { try log.term(at: LogIndex(9)) }
    }

    @Test func quorumCommitMatchesSortReference() throws {
        // Property: for random match indexes, the committed index equals the median of the
        // sorted matches (the reference), when its entry is of the current term.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let voters = [3, 5][Int.random(in: 0..<2, using: &rng)]
            let matches = (0..<voters).map { _ in UInt64.random(in: 0...20, using: &rng) }
            let reference = matches.sorted(by: >)[voters / 2]
            let c = try TestCluster(voters: (1...UInt64(voters)).map { $0 })
            try c.elect(1)
            let leader = c[1]
            for _ in 0..<20 { try leader.propose([1]) }
            c.dropAll()
            let base = LogIndex(UInt64(voters) + 1)  // bootstrap + no-op
            for (i, m) in matches.enumerated() {
                leader.progress[NodeID(UInt64(i + 1))]?.match = base + m
            }
            leader.log.commit(to: min(leader.log.committed, base))
            _ = leader.maybeCommit()
            #expect(leader.commitIndex == max(base + reference, base), "matches \(matches)")
        }
    }
}

@Suite struct RestartStateTests {
    @Test func contradictoryPersistedStateIsATypedErrorNotATrap() throws {
        let storage = MemoryStorage()
        storage.append([Entry(term: Term(1), index: LogIndex(1))])
        storage.setHardState(HardState(term: Term(1), commit: LogIndex(5)))
        #expect { try RaftNode(config: RaftConfig(id: NodeID(1), randomSeed: 1), storage: storage) } throws: {
            ($0 as? RaftError)?.code == .inconsistentState
        }
        storage.setHardState(HardState(term: Term(1), commit: LogIndex(1)))
        var config = RaftConfig(id: NodeID(1), randomSeed: 1)
        config.applied = LogIndex(3)
        #expect { try RaftNode(config: config, storage: storage) } throws: {
            ($0 as? RaftError)?.code == .inconsistentState
        }
    }

    /// Found by tools/chaos (seed 5000, SIGKILL): the node applies committed entries before the
    /// hard state carrying the new commit is synced, so after a crash the store's applied index
    /// can be above the persisted commit. The core takes the applied index as committed (it
    /// is: only committed entries are applied) instead of refusing to start.
    @Test func appliedAheadOfThePersistedCommitIsCommitted() throws {
        let storage = MemoryStorage()
        storage.append((1...5).map { Entry(term: Term(1), index: LogIndex($0)) })
        storage.setHardState(HardState(term: Term(1), commit: LogIndex(2)))
        var config = RaftConfig(id: NodeID(1), randomSeed: 1)
        config.applied = LogIndex(4)
        let node = try RaftNode(config: config, storage: storage)
        #expect(node.commitIndex == LogIndex(4))
        #expect(!node.hasReady || node.ready().committedEntries.isEmpty, "nothing up to the applied index is handed out again")
    }
}
