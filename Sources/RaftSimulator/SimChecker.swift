import FaunaRaft

/// The safety properties of Raft (figure 3 of the paper), checked as the simulation runs.
struct SimChecker {
    /// Election safety: at most one leader per term.
    var leaderOfTerm: [Term: NodeID] = [:]
    /// Log matching: every (index, term) ever persisted anywhere names one entry, which
    /// follows one (index - 1, term). By induction, two logs with an entry of the same index
    /// and term are then identical up to it.
    var entryAt: [EntryID: (fingerprint: UInt64, previousTerm: Term?)] = [:]
    /// The term of every entry some node has seen committed.
    var committedTerm: [LogIndex: Term] = [:]
    /// State machine safety: the fingerprint of the applied history through each index.
    var historyAt: [LogIndex: UInt64] = [:]
    /// Highest index of an acknowledged write (for the ReadIndex check).
    private(set) var acknowledgedIndex: LogIndex = .zero
    /// The configuration as of the highest membership change some node has applied (so it is
    /// committed), and that index. Nodes apply in log order, and a snapshot carries its
    /// configuration, so every change before it was recorded first.
    var latestConfiguration = (index: LogIndex.zero, conf: ConfState())
    /// Votes delivered to each candidate, by term (a superset of those it counted).
    var votesGranted: [Term: [NodeID: Set<NodeID>]] = [:]

    struct EntryID: Hashable {
        var index: LogIndex
        var term: Term
    }

    mutating func leaderElected(_ id: NodeID, term: Term, raft: RaftNode) throws {
        if let other = leaderOfTerm[term], other != id {
            throw SimFailure("election safety: \(other) and \(id) both leaders of term \(term)")
        }
        leaderOfTerm[term] = id
        try checkQuorumOverlap(leader: id, term: term)
        // Leader completeness: the new leader's log holds every committed entry (those before
        // its first index are inside its snapshot, which state machine safety covers).
        for (index, t) in committedTerm where index >= raft.firstIndex {
            let mine = raft.term(at: index)
            if mine != t {
                throw SimFailure("leader completeness: new leader \(id) of term \(term) has term \(mine.map(String.init(describing:)) ?? "none") at committed index \(index) (committed term \(t))")
            }
        }
    }

    mutating func appended(_ entries: [Entry], on node: SimNode) throws {
        for entry in entries {
            let previousTerm = entry.index.rawValue > 1 ? try? node.storage.term(at: entry.index - 1) : Term.zero
            let fingerprint = fnv1a([entry.type.rawValue] + entry.data)
            let id = EntryID(index: entry.index, term: entry.term)
            if let known = entryAt[id] {
                if known.fingerprint != fingerprint {
                    throw SimFailure("log matching: two different entries at index \(entry.index) term \(entry.term) (on \(node.id))")
                }
                if let p = previousTerm, let q = known.previousTerm, p != q {
                    throw SimFailure("log matching: entry \(entry.index)/\(entry.term) on \(node.id) follows term \(p), elsewhere term \(q)")
                }
            } else {
                entryAt[id] = (fingerprint, previousTerm)
            }
        }
    }

    mutating func commitAdvanced(on node: SimNode, raft: RaftNode) throws {
        var index = max(node.commitChecked, raft.firstIndex - 1)
        while index < raft.commitIndex {
            index = index + 1
            guard let t = raft.term(at: index) else { continue }
            if let known = committedTerm[index] {
                if known != t {
                    throw SimFailure("committed entry changed: index \(index) committed with term \(known), \(node.id) has term \(t)")
                }
            } else {
                committedTerm[index] = t
            }
        }
        node.commitChecked = raft.commitIndex
    }

    mutating func applied(on id: NodeID, index: LogIndex, historyHash: UInt64) throws {
        guard index > .zero else { return }
        if let known = historyAt[index] {
            if known != historyHash {
                throw SimFailure("state machine safety: \(id) applied a different history through index \(index)")
            }
        } else {
            historyAt[index] = historyHash
        }
    }

    mutating func voteGranted(by voter: NodeID, to candidate: NodeID, term: Term) {
        votesGranted[term, default: [:]][candidate, default: []].insert(voter)
    }

    mutating func configurationApplied(_ change: ConfChange, at index: LogIndex) {
        guard index > latestConfiguration.index else { return }
        latestConfiguration = (index, change.applied(to: latestConfiguration.conf))
    }

    mutating func configurationApplied(_ conf: ConfState, at index: LogIndex) {
        guard index > latestConfiguration.index else { return }
        latestConfiguration = (index, conf)
    }

    /// Quorum overlap (thesis §4.1): the voters that elected a leader must meet every majority
    /// of the latest committed configuration, or that majority could elect another leader and
    /// commit without it. Single-server changes keep a node that is one committed change
    /// behind within this rule; a node two changes behind (it committed them but has not
    /// applied them) breaks it, whether or not a partition lets the other majority act.
    func checkQuorumOverlap(leader: NodeID, term: Term) throws {
        let voters = latestConfiguration.conf.voters
        guard !voters.isEmpty else { return }
        let electors = votesGranted[term]?[leader, default: []].union([leader]) ?? [leader]
        let outside = voters.filter { !electors.contains($0) }
        if outside.count >= voters.count / 2 + 1 {
            throw SimFailure("quorum overlap: \(leader) leads term \(term) with the votes of \(electors.sorted()), but \(outside) are a majority of \(voters), committed at index \(latestConfiguration.index)")
        }
    }

    mutating func acknowledged(index: LogIndex) {
        acknowledgedIndex = max(acknowledgedIndex, index)
    }
}
