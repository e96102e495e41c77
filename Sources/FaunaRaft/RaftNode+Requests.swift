/// Client-facing requests beyond proposals: linearizable reads (ReadIndex, thesis §6.4),
/// leadership transfer (thesis §3.10) and single-server membership changes (thesis §4.1).
extension RaftNode {
    // MARK: ReadIndex

    /// Asks for a linearizable read. When confirmed, a `ReadState` with this `context` appears
    /// in a later `Ready`: the read may be served once the state machine has applied its index.
    /// On a follower the request is forwarded to the leader.
    public func readIndex(context: [UInt8]) throws(RaftError) {
        try checkStorage()
        if role == .leader {
            guard reads.count < config.readsPendingMax else {
                throw RaftError(.readQueueFull, "\(reads.count) reads pending, limit \(config.readsPendingMax)")
            }
            handleReadIndexRequest(from: id, context: context)
            return
        }
        guard let leader else { throw RaftError(.notLeader, "no leader known to \(id)") }
        send(Message(type: .readIndex, from: id, to: leader, term: term, context: context))
    }

    func handleReadIndexRequest(from requester: NodeID, context: [UInt8]) {
        guard reads.count < config.readsPendingMax else { return }  // a forwarded read: requester retries
        let read = ReadQueue.Pending(index: log.committed, context: context, from: requester, round: 0)
        reads.enqueue(read, leaderHasCommittedInTerm: hasCommittedInTerm)
        if conf.voters == [id] { answer(reads.confirmAll()) }
    }

    var hasCommittedInTerm: Bool { log.committed >= termStartIndex && termStartIndex > .zero }

    func releaseReadsWaitingForTermCommit() {
        guard hasCommittedInTerm, !reads.waitingForTermCommit.isEmpty else { return }
        reads.termCommitted(at: log.committed)
        if conf.voters == [id] { answer(reads.confirmAll()) }
    }

    /// Starts a heartbeat round for the reads that arrived since the last one (called when the
    /// caller collects a Ready, so that every read of one batch shares the round), unless the
    /// caller holds rounds back (`holdsReadRounds`).
    func startReadRoundIfIdle() {
        guard role == .leader, !holdsReadRounds, reads.startRoundIfIdle() else { return }
        if conf.voters == [id] { answer(reads.confirmAll()) } else { broadcastHeartbeat() }
    }

    func acknowledgeReadRound(from voter: NodeID, context: [UInt8]) {
        answer(reads.acknowledge(from: voter, context: context, me: id, voters: conf.voters, quorum: quorum))
    }

    func answer(_ confirmed: [ReadQueue.Pending]) {
        for read in confirmed {
            if read.from == id {
                readStates.append(ReadState(index: read.index, context: read.context))
            } else {
                send(Message(type: .readIndexResponse, from: id, to: read.from, term: term, index: read.index, context: read.context))
            }
        }
    }

    // MARK: Leadership transfer

    /// Hands leadership to `target`: stops accepting proposals, brings the target's log up to
    /// date, then tells it to campaign at once (TimeoutNow). Abandoned after an election
    /// timeout.
    public func transferLeadership(to target: NodeID) throws(RaftError) {
        try checkStorage()
        guard role == .leader else {
            throw RaftError(.notLeader, "transfer asked of \(role) \(id)", leaderHint: leader)
        }
        if target == id { return }
        guard conf.isVoter(target) else {
            throw RaftError(.invalidConfChange, "transfer target \(target) is not a voter")
        }
        if leadTransferee == target { return }
        leadTransferee = target
        electionElapsedTicks = 0
        if progress[target]?.match == log.lastIndex {
            send(Message(type: .timeoutNow, from: id, to: target, term: term))
        } else {
            sendAppends(to: target, sendIfEmpty: true)
        }
    }

    public var transferTarget: NodeID? { leadTransferee }

    // MARK: Membership

    /// Proposes a single-server membership change. Only one may be pending at a time, and
    /// only after the leader has committed an entry of its own term (this closes the
    /// single-server change bug described on raft-dev, 2015).
    /// - Returns: the index of the configuration entry.
    @discardableResult
    public func proposeConfChange(_ change: ConfChange) throws(RaftError) -> LogIndex {
        try checkCanPropose(bytes: change.context.count + 9 + Entry.overheadBytes)
        guard log.applied >= termStartIndex, pendingConfIndex <= log.applied else {
            throw RaftError(.confChangeInProgress, "a membership change or the leader's first entry is not yet applied")
        }
        try validate(change)
        let index = appendLocal([Entry(term: term, index: .zero, type: .confChange, data: change.encoded)])
        pendingConfIndex = index
        return index
    }

    func validate(_ change: ConfChange) throws(RaftError) {
        let node = change.nodeID
        switch change.kind {
        case .addLearner:
            if conf.isVoter(node) {
                throw RaftError(.invalidConfChange, "\(node) is a voter; demotion is not supported")
            }
            if conf.isLearner(node) { throw RaftError(.invalidConfChange, "\(node) is already a learner") }
        case .addVoter:
            guard conf.isLearner(node) else {
                throw RaftError(.invalidConfChange, "\(node) must first be added as a learner and catch up")
            }
            let match = progress[node]?.match ?? .zero
            if match + config.learnerCatchUpEntriesMax < log.lastIndex {
                throw RaftError(.learnerNotCaughtUp, "\(node) has \(match) of \(log.lastIndex) entries; want within \(config.learnerCatchUpEntriesMax)")
            }
        case .remove:
            guard conf.isMember(node) else { throw RaftError(.invalidConfChange, "\(node) is not a member") }
            if conf.voters == [node] { throw RaftError(.invalidConfChange, "cannot remove the last voter \(node)") }
        }
    }

    /// Applies the membership changes among entries being handed to the application: the
    /// configuration takes effect when applied, as in etcd-io/raft.
    func applyConfChanges(in entries: [Entry]) {
        for entry in entries where entry.type == .confChange {
            // Every replica decodes the same bytes, so ignoring an undecodable one is
            // deterministic; the leader never proposes one.
            guard let change = ConfChange(decoding: entry.data) else { continue }
            conf = change.applied(to: conf)
            pendingConfState = conf
            guard role == .leader else { continue }
            if !conf.isMember(id) {
                becomeFollower(term: term, leader: nil)  // we removed ourselves: step down
                continue
            }
            for member in conf.members where progress[member] == nil {
                progress[member] = Progress(next: log.lastIndex + 1, isLearner: conf.isLearner(member))
            }
            for member in progress.keys.sorted() where !conf.isMember(member) {
                sendFinalAppend(to: member)
                progress[member] = nil
            }
            for member in conf.members { progress[member]?.isLearner = conf.isLearner(member) }
            if let target = leadTransferee, !conf.isVoter(target) { leadTransferee = nil }
            maybeCommit()
            broadcastAppend()
        }
    }
}
