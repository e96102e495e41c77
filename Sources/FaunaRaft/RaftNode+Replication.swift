/// Log replication (Raft §5.3), commitment (§5.4.2) and snapshots (§7), with etcd-style flow
/// control: probe/replicate/snapshot states and a bounded in-flight window per follower.
extension RaftNode {
    /// Queues an outgoing message. A leader's appends, heartbeats and snapshots do not depend
    /// on anything unpersisted in this Ready (once our term is durable) and may leave early.
    func send(_ m: Message) {
        let leaderOnly: Bool
        switch m.type {
        case .append, .heartbeat, .snapshot, .timeoutNow, .readIndexResponse: leaderOnly = true
        default: leaderOnly = false
        }
        if role == .leader && leaderOnly && durableTerm == term && lastHardState.vote == vote {
            earlyMessages.append(m)
        } else {
            messages.append(m)
        }
    }

    /// Leader: appends entries of the current term to the local log and replicates them.
    @discardableResult
    func appendLocal(_ entries: [Entry]) -> LogIndex {
        var entries = entries
        var index = log.lastIndex
        for i in entries.indices {
            index = index + 1
            entries[i].term = term
            entries[i].index = index
            uncommittedBytes += entries[i].sizeBytes
        }
        log.append(entries)
        broadcastAppend()
        // A single voter commits as soon as its own write is durable (see `advance`).
        return index
    }

    // MARK: Leader side

    func broadcastAppend() {
        commitBroadcastPending = false
        // Sorted: dictionary order is randomized per process, and the core must be
        // deterministic for the simulator's seeds to replay.
        for peer in progress.keys.sorted() where peer != id { sendAppends(to: peer, sendIfEmpty: true) }
    }

    func broadcastHeartbeat() {
        let context = reads.heartbeatContext
        for peer in progress.keys.sorted() where peer != id {
            guard let pr = progress[peer] else { continue }
            send(Message(
                type: .heartbeat, from: id, to: peer, term: term,
                commit: min(pr.match, log.committed), context: context))
        }
    }

    /// One append to a member being removed, whatever its flow control says: the entries
    /// after the last one it acknowledged, with the commit index. It learns of its removal
    /// only by committing (and so applying) it, and nothing is sent to it once its progress
    /// is gone; the append that would have carried that commit index may have been held back
    /// by a full in-flight window (common under load). Too far behind (entries compacted),
    /// it is not told and stays up until stopped.
    func sendFinalAppend(to peer: NodeID) {
        guard let pr = progress[peer] else { return }
        let prevIndex = pr.match
        let prevTerm: Term
        let entries: [Entry]
        do {
            prevTerm = try log.term(at: prevIndex)
            entries = try log.entries(from: prevIndex + 1, to: log.lastIndex + 1, maxBytes: config.entriesPerMessageBytesMax)
        } catch {
            return  // compacted, or a storage error (recorded by the log; the core stops)
        }
        send(Message(
            type: .append, from: id, to: peer, term: term, logTerm: prevTerm, index: prevIndex,
            entries: entries, commit: log.committed))
    }

    /// Sends as many appends to `peer` as its flow control allows. With `sendIfEmpty`, an
    /// empty append still goes out (to carry the commit index or probe the follower's log).
    func sendAppends(to peer: NodeID, sendIfEmpty: Bool) {
        var sentAny = false
        // Bounded: each iteration either sends a message that fills the in-flight window by
        // one, or stops.
        for _ in 0...config.inflightMessagesMax {
            guard var pr = progress[peer], !pr.isPaused(inflightMessagesMax: config.inflightMessagesMax) else { return }
            let prevIndex = pr.next - 1
            let prevTerm: Term
            let entries: [Entry]
            do {
                prevTerm = try log.term(at: prevIndex)
                entries = try log.entries(from: pr.next, to: log.lastIndex + 1, maxBytes: config.entriesPerMessageBytesMax)
            } catch RaftStorageError.compacted {
                sendSnapshot(to: peer)  // the follower needs entries we no longer have
                return
            } catch {
                // Not available (yet): retried on the next heartbeat response. Any other error
                // is recorded in `storageFailure`, and the core stops.
                return
            }
            if entries.isEmpty && (!sendIfEmpty || sentAny) { return }
            sentAny = true
            send(Message(
                type: .append, from: id, to: peer, term: term, logTerm: prevTerm, index: prevIndex,
                entries: entries, commit: log.committed))
            switch pr.state {
            case .replicate:
                if let last = entries.last {
                    pr.next = last.index + 1
                    pr.inflights.add(last.index)
                }
            case .probe:
                pr.isProbeSent = true
            case .snapshot:
                preconditionFailure("append sent to \(peer) in snapshot state")
            }
            progress[peer] = pr
            if entries.isEmpty { return }
        }
    }

    func sendSnapshot(to peer: NodeID) {
        guard var pr = progress[peer] else { return }
        let snapshot: Snapshot
        do {
            snapshot = try log.storage.snapshot()
        } catch {
            // Not available yet: retried on the next heartbeat response. Any other error is
            // recorded in `storageFailure`, and the core stops.
            return
        }
        guard !snapshot.isEmpty else { return }
        pr.becomeSnapshot(at: snapshot.metadata.index)
        progress[peer] = pr
        send(Message(type: .snapshot, from: id, to: peer, term: term, snapshot: snapshot))
    }

    /// Advances the commit index to the highest index replicated on a quorum of voters — but
    /// only through an entry of the current term (Raft §5.4.2, figure 8).
    @discardableResult
    func maybeCommit() -> Bool {
        var matches = conf.voters.map { progress[$0]?.match ?? .zero }
        guard !matches.isEmpty else { return false }
        matches.sort(by: >)
        let quorumIndex = matches[quorum - 1]
        guard quorumIndex > log.committed, log.matchTerm(quorumIndex, term) else { return false }
        log.commit(to: quorumIndex)
        releaseReadsWaitingForTermCommit()
        return true
    }

    /// Commits what a quorum holds and tells the followers: at once, or with the next append
    /// or tick when `deferCommitBroadcast` allows. Returns whether the commit index advanced.
    @discardableResult
    func commitAndAnnounce() -> Bool {
        let previous = log.committed
        guard maybeCommit() else { return false }
        let committedConfChange = pendingConfIndex > previous && pendingConfIndex <= log.committed
        if config.deferCommitBroadcast && !committedConfChange && leadTransferee == nil {
            commitBroadcastPending = true
        } else {
            broadcastAppend()
        }
        return true
    }

    func stepLeader(_ m: Message) {
        switch m.type {
        case .appendResponse:
            handleAppendResponse(m)
        case .heartbeatResponse:
            guard var pr = progress[m.from] else { return }
            pr.isRecentActive = true
            pr.isProbeSent = false
            // Appends may have been lost with the window full: free one slot so the next
            // append goes out; if there is a gap the follower rejects it and we probe.
            if pr.state == .replicate && pr.inflights.count >= config.inflightMessagesMax {
                pr.inflights.freeFirst()
            }
            progress[m.from] = pr
            // A follower behind us gets an append, even an empty one: if the appends we think
            // are in flight were lost, it rejects this one and we fall back to probing.
            if pr.match < log.lastIndex { sendAppends(to: m.from, sendIfEmpty: true) }
            if conf.isVoter(m.from) { acknowledgeReadRound(from: m.from, context: m.context) }
        case .readIndex:
            handleReadIndexRequest(from: m.from, context: m.context)
        default:
            break
        }
    }

    func handleAppendResponse(_ m: Message) {
        guard var pr = progress[m.from] else { return }
        pr.isRecentActive = true
        if m.reject {
            // Fast back-off: skip the follower's whole conflicting term at once.
            var retryFrom = m.rejectHint
            if m.logTerm != .zero, let last = lastIndex(ofTerm: m.logTerm, atOrBefore: m.index) {
                retryFrom = last + 1
            }
            if pr.maybeDecrease(rejected: m.index, retryFrom: retryFrom) {
                if pr.state == .replicate {
                    pr.becomeProbe()
                    pr.next = max(min(m.index, retryFrom), pr.match + 1)
                }
                progress[m.from] = pr
                sendAppends(to: m.from, sendIfEmpty: true)
            } else {
                progress[m.from] = pr
            }
            return
        }
        // A success can only acknowledge entries we have; anything else is a corrupt or
        // misdirected message.
        guard m.index <= log.lastIndex else { return }
        let updated = pr.maybeUpdate(match: m.index)
        if updated {
            switch pr.state {
            case .probe: pr.becomeReplicate()
            case .snapshot where pr.match >= pr.pendingSnapshot: pr.becomeReplicate()
            case .replicate, .snapshot: pr.inflights.free(through: m.index)
            }
        }
        progress[m.from] = pr
        if updated {
            if !commitAndAnnounce() || commitBroadcastPending {
                sendAppends(to: m.from, sendIfEmpty: false)
            }
            if m.from == leadTransferee && pr.match == log.lastIndex {
                send(Message(type: .timeoutNow, from: id, to: m.from, term: term))
            }
        }
    }

    /// The last index in our log with term `t`, searching back from `index` (nil if our log
    /// has no entry of that term there).
    func lastIndex(ofTerm t: Term, atOrBefore index: LogIndex) -> LogIndex? {
        var i = min(index, log.lastIndex)
        let first = log.firstIndex - 1
        while i >= first {
            guard let term = log.termIfPresent(at: i) else { return nil }
            if term == t { return i }
            if term < t || i == .zero { return nil }
            i = i - 1
        }
        return nil
    }

    // MARK: Follower side

    func stepFollower(_ m: Message) {
        switch m.type {
        case .append:
            electionElapsedTicks = 0
            leader = m.from
            handleAppend(m)
        case .heartbeat:
            electionElapsedTicks = 0
            leader = m.from
            handleHeartbeat(m)
        case .snapshot:
            electionElapsedTicks = 0
            leader = m.from
            handleSnapshot(m)
        case .timeoutNow:
            campaign(.transfer)
        case .readIndexResponse:
            readStates.append(ReadState(index: m.index, context: m.context))
        default:
            break
        }
    }

    func handleAppend(_ m: Message) {
        if m.index < log.committed {
            // Already committed here: acknowledge what we have.
            send(Message(type: .appendResponse, from: id, to: m.from, term: term, index: log.committed))
            return
        }
        if log.matchTerm(m.index, m.logTerm) {
            // Validate before trusting: entries follow prevIndex contiguously, with terms that
            // never decrease, start at prevTerm or later and end at the leader's term or earlier.
            var previousTerm = m.logTerm
            for (offset, entry) in m.entries.enumerated() {
                guard entry.index == m.index + UInt64(offset + 1), entry.term >= previousTerm, entry.term <= m.term else {
                    return  // malformed: drop, the leader retries
                }
                previousTerm = entry.term
            }
            let lastNew: LogIndex
            do {
                lastNew = try log.maybeAppend(after: m.index, entries: m.entries)
            } catch {
                return
            }
            log.commit(to: min(m.commit, lastNew))
            send(Message(type: .appendResponse, from: id, to: m.from, term: term, index: lastNew))
            return
        }
        // Reject with a hint: the first index of our conflicting term, or our log's end.
        var hint = log.lastIndex + 1
        var conflictTerm = Term.zero
        if m.index <= log.lastIndex, let t = log.termIfPresent(at: m.index) {
            conflictTerm = t
            var i = m.index
            while i > log.firstIndex, log.termIfPresent(at: i - 1) == t { i = i - 1 }
            hint = i
        }
        send(Message(
            type: .appendResponse, from: id, to: m.from, term: term, logTerm: conflictTerm,
            index: m.index, reject: true, rejectHint: hint))
    }

    func handleHeartbeat(_ m: Message) {
        log.commit(to: min(m.commit, log.lastIndex))
        send(Message(type: .heartbeatResponse, from: id, to: m.from, term: term, context: m.context))
    }

    func handleSnapshot(_ m: Message) {
        guard let snapshot = m.snapshot else { return }
        let meta = snapshot.metadata
        if meta.index <= log.committed {
            send(Message(type: .appendResponse, from: id, to: m.from, term: term, index: log.committed))
            return
        }
        if log.matchTerm(meta.index, meta.term) {
            // We already have the entries: just fast-forward the commit index. Acknowledge only
            // through it (as etcd-io/raft does): entries after it may be an old leader's that
            // the sender does not hold, and its counting them as matched could commit them.
            log.commit(to: meta.index)
        } else {
            log.restore(snapshot)
            conf = meta.confState
            pendingConfState = nil
        }
        // After a restore too, the commit index is the snapshot's index, now our last index.
        send(Message(type: .appendResponse, from: id, to: m.from, term: term, index: log.committed))
    }
}
