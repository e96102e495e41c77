/// Roles, terms and elections: Raft §5.2, PreVote (thesis §9.6), CheckQuorum and the
/// leader lease that makes PreVote effective (thesis §6.2, §4.2.3).
extension RaftNode {
    /// Context carried by the vote requests of a campaign started by TimeoutNow: such votes
    /// bypass the lease check (thesis §3.10).
    static let transferContext: [UInt8] = [0x74]

    func becomeFollower(term newTerm: Term, leader newLeader: NodeID?) {
        if newTerm != term {
            term = newTerm
            vote = nil
        }
        role = .follower
        leader = newLeader
        resetTimers()
        progress = [:]
        votes = [:]
        leadTransferee = nil
        commitBroadcastPending = false
        uncommittedBytes = 0
        reads.removeAll()
    }

    func resetTimers() {
        electionElapsedTicks = 0
        heartbeatElapsedTicks = 0
        randomizedElectionTicks = config.electionTicks + Int(random.next() % UInt64(config.electionTicks))
    }

    func becomePreCandidate() {
        // PreVote does not change term or vote: a partitioned node cannot inflate terms.
        role = .preCandidate
        leader = nil
        votes = [id: true]
        resetTimers()
    }

    func becomeCandidate() {
        term = term.next
        vote = id
        role = .candidate
        leader = nil
        votes = [id: true]
        resetTimers()
    }

    func becomeLeader() {
        precondition(role == .candidate, "\(id) becoming leader from \(role)")
        role = .leader
        leader = id
        resetTimers()
        leadTransferee = nil
        reads.removeAll()
        let last = log.lastIndex
        progress = [:]
        for member in conf.members {
            progress[member] = Progress(next: last + 1, isLearner: conf.isLearner(member))
        }
        progress[id, default: Progress(next: last + 1, isLearner: false)].match = log.stableIndex
        progress[id]?.becomeReplicate()
        pendingConfIndex = last
        // A no-op of the new term: commits everything before it (Raft §8), and opens
        // ReadIndex and membership changes once committed.
        termStartIndex = last + 1
        uncommittedBytes = 0
        appendLocal([Entry(term: term, index: .zero)])
    }

    // MARK: Timers

    func tickElection() {
        electionElapsedTicks += 1
        guard isPromotable, electionElapsedTicks >= randomizedElectionTicks else { return }
        electionElapsedTicks = 0
        campaign(config.preVote ? .preElection : .election)
    }

    func tickLeader() {
        heartbeatElapsedTicks += 1
        electionElapsedTicks += 1
        if electionElapsedTicks >= config.electionTicks {
            electionElapsedTicks = 0
            if config.checkQuorum && !hasRecentQuorum() {
                becomeFollower(term: term, leader: nil)
                return
            }
            // A transfer that did not finish within an election timeout is abandoned.
            leadTransferee = nil
        }
        for peer in progress.keys.sorted() {
            guard var pr = progress[peer], pr.state == .snapshot else { continue }
            pr.snapshotElapsedTicks += 1
            if pr.snapshotElapsedTicks >= config.electionTicks {
                pr.becomeProbe()  // the snapshot was probably lost: try again
            }
            progress[peer] = pr
        }
        if heartbeatElapsedTicks >= config.heartbeatTicks {
            heartbeatElapsedTicks = 0
            broadcastHeartbeat()
        }
        // A deferred commit index goes out now (`deferCommitBroadcast`): at most a tick late.
        if commitBroadcastPending { broadcastAppend() }
    }

    /// CheckQuorum: true if a quorum of voters (counting ourselves) was heard from since the
    /// last check; resets the activity flags for the next round.
    func hasRecentQuorum() -> Bool {
        var active = 0
        for voter in conf.voters {
            if voter == id || progress[voter]?.isRecentActive == true { active += 1 }
            progress[voter]?.isRecentActive = false
        }
        for learner in conf.learners { progress[learner]?.isRecentActive = false }
        return active >= quorum
    }

    // MARK: Campaigns

    enum CampaignKind { case preElection, election, transfer }

    /// Starts a campaign of `kind`, unless this node cannot be elected: it is not a voter, or
    /// membership changes it has committed are not yet applied (see
    /// `hasUnappliedConfChanges()`). A refused campaign is dropped, not deferred: the election
    /// timer fires again, and a refused transfer is abandoned by the leader.
    func campaign(_ kind: CampaignKind) {
        guard isPromotable else { return }
        if hasUnappliedConfChanges() { return }
        let usePreVote = kind == .preElection
        let isTransfer = kind == .transfer
        if usePreVote { becomePreCandidate() } else { becomeCandidate() }
        if hasQuorum(granted: 1) {
            // Single voter: no one to ask.
            if usePreVote { campaign(.election) } else { becomeLeader() }
            return
        }
        let type: MessageType = usePreVote ? .preVote : .vote
        let campaignTerm = usePreVote ? term.next : term
        let lastIndex = log.lastIndex
        let lastTerm = log.lastTerm
        for voter in conf.voters where voter != id {
            send(Message(
                type: type, from: id, to: voter, term: campaignTerm, logTerm: lastTerm, index: lastIndex,
                context: isTransfer ? Self.transferContext : []))
        }
    }

    func hasQuorum(granted: Int) -> Bool { granted >= quorum }

    /// Whether committed entries not yet handed to the application include a membership
    /// change (as etcd-io/raft's `hup` checks before any campaign, pre-vote or transfer).
    ///
    /// `conf` is the configuration as of the last entry handed out, and a Ready hands out at
    /// most `committedBytesPerReadyMax`, so `conf` can be one the cluster has left: a node that
    /// committed the growth of {1,2,3} to {1..5} but applied neither change would win with one
    /// other vote and commit with 2 of 5 voters, while {3,4,5} elect another leader. Entries of
    /// a Ready not yet advanced count as unapplied, which only delays a campaign.
    /// Reads in pages of `committedBytesPerReadyMax`, so memory stays bounded.
    func hasUnappliedConfChanges() -> Bool {
        var next = log.applied + 1
        // Bounded: every page holds at least one entry, so `next` grows each time.
        while next <= log.committed {
            let page: [Entry]
            do {
                page = try log.entries(from: next, to: log.committed + 1, maxBytes: config.committedBytesPerReadyMax)
            } catch let error as RaftStorageError {
                // Committed, not applied entries are never compacted and are in the log.
                preconditionFailure("committed entries from \(next) to \(log.committed) missing: \(error)")
            } catch {
                return true  // a damaged disk: recorded in `storageFailure`, the core stops
            }
            if page.contains(where: { $0.type == .confChange }) { return true }
            guard let last = page.last else { return true }  // nothing readable: assume the worst
            next = last.index + 1
        }
        return false
    }

    /// Applies the term rules every message goes through (Raft §5.1, thesis §9.6 and §4.2.3).
    /// Returns false if the message must be ignored.
    func checkTerm(of m: Message) -> Bool {
        if m.term > term {
            if m.type == .vote || m.type == .preVote {
                // Lease: while we hear from a leader, ignore campaigns, so a node that was
                // partitioned away cannot depose a healthy leader (unless it is a transfer).
                let isForced = m.context == Self.transferContext
                let inLease = config.checkQuorum && leader != nil && electionElapsedTicks < config.electionTicks
                if inLease && !isForced { return false }
            }
            switch m.type {
            case .preVote:
                break  // never change term for a pre-vote request
            case .preVoteResponse where !m.reject:
                break  // a granted pre-vote echoes the future term we asked about
            case .append, .heartbeat, .snapshot:
                becomeFollower(term: m.term, leader: m.from)
            default:
                becomeFollower(term: m.term, leader: nil)
            }
            return true
        }
        if m.term < term {
            switch m.type {
            case .append, .heartbeat:
                // A stale leader: tell it our term so it steps down. With PreVote/CheckQuorum
                // our term may have moved on without it hearing, and it would stay stuck.
                if config.checkQuorum || config.preVote {
                    send(Message(type: .appendResponse, from: id, to: m.from, term: term))
                }
            case .preVote:
                send(Message(type: .preVoteResponse, from: id, to: m.from, term: term, reject: true))
            default:
                break
            }
            return false
        }
        return true
    }

    func handleVoteRequest(_ m: Message) {
        let isPreVote = m.type == .preVote
        let responseType: MessageType = isPreVote ? .preVoteResponse : .voteResponse
        // We can vote for m.from if we already did, or have not voted and know no leader;
        // a pre-vote for a future term is judged on the log alone.
        let canVote = vote == m.from || (vote == nil && leader == nil) || (isPreVote && m.term > term)
        if canVote && log.isUpToDate(lastIndex: m.index, lastTerm: m.logTerm) {
            // The granted response carries the requested term (a pre-vote's is not ours yet).
            send(Message(type: responseType, from: id, to: m.from, term: m.term))
            if !isPreVote {
                electionElapsedTicks = 0
                vote = m.from
            }
        } else {
            send(Message(type: responseType, from: id, to: m.from, term: term, reject: true))
        }
    }

    func stepCandidate(_ m: Message) {
        switch m.type {
        case .append:
            becomeFollower(term: m.term, leader: m.from)
            handleAppend(m)
        case .heartbeat:
            becomeFollower(term: m.term, leader: m.from)
            handleHeartbeat(m)
        case .snapshot:
            becomeFollower(term: m.term, leader: m.from)
            handleSnapshot(m)
        case .preVoteResponse where role == .preCandidate, .voteResponse where role == .candidate:
            guard conf.isVoter(m.from) else { return }
            if votes[m.from] == nil { votes[m.from] = !m.reject }
            let granted = votes.values.filter { $0 }.count
            let rejected = votes.count - granted
            if hasQuorum(granted: granted) {
                if role == .preCandidate { campaign(.election) } else { becomeLeader() }
            } else if hasQuorum(granted: rejected) {
                becomeFollower(term: term, leader: nil)
            }
        default:
            break
        }
    }
}
