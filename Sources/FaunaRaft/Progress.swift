/// The leader's view of one follower's log (etcd-io/raft's Progress, Raft §5.3 nextIndex and
/// matchIndex), plus the flow-control state that bounds what is in flight to it.
struct Progress {
    enum State: Equatable {
        /// We do not know where the follower's log matches: send one append per heartbeat
        /// interval and wait for its answer.
        case probe
        /// The follower is known to match through `match`: stream appends optimistically,
        /// up to `inflightMessagesMax` unacknowledged messages.
        case replicate
        /// A snapshot ending at `pendingSnapshot` was sent; wait for the follower to install it.
        case snapshot
    }

    /// Highest index known to be replicated on the follower.
    var match: LogIndex = .zero
    /// Index of the next entry to send.
    var next: LogIndex
    var state: State = .probe
    /// In probe state: an append is outstanding, wait for a response or the next heartbeat.
    var isProbeSent = false
    var pendingSnapshot: LogIndex = .zero
    var snapshotElapsedTicks = 0
    /// Last index of each unacknowledged append, oldest first (replicate state only).
    var inflights = Inflights()
    /// Heard from since the last check-quorum round (CheckQuorum, thesis §6.2).
    var isRecentActive = false
    var isLearner: Bool

    init(next: LogIndex, isLearner: Bool) {
        self.next = next
        self.isLearner = isLearner
    }

    /// Whether no further append may be sent right now.
    func isPaused(inflightMessagesMax: Int) -> Bool {
        switch state {
        case .probe: return isProbeSent
        case .replicate: return inflights.count >= inflightMessagesMax
        case .snapshot: return true
        }
    }

    mutating func becomeProbe() {
        if state == .snapshot {
            next = max(match + 1, pendingSnapshot + 1)
        } else {
            next = match + 1
        }
        state = .probe
        isProbeSent = false
        pendingSnapshot = .zero
        inflights.removeAll()
    }

    mutating func becomeReplicate() {
        state = .replicate
        next = match + 1
        isProbeSent = false
        inflights.removeAll()
    }

    mutating func becomeSnapshot(at index: LogIndex) {
        state = .snapshot
        pendingSnapshot = index
        snapshotElapsedTicks = 0
        inflights.removeAll()
    }

    /// A successful append response: returns false if it tells us nothing new.
    mutating func maybeUpdate(match index: LogIndex) -> Bool {
        var updated = false
        if index > match {
            match = index
            updated = true
            isProbeSent = false
        }
        next = max(next, index + 1)
        return updated
    }

    /// A rejected append for `rejected` (the prevIndex we sent): moves `next` back to
    /// `retryFrom`. Returns false if the rejection is stale (an older, already superseded probe).
    mutating func maybeDecrease(rejected: LogIndex, retryFrom: LogIndex) -> Bool {
        if state == .replicate {
            // In replicate state next is ahead of match; only a rejection of the entry right
            // after match is meaningful, anything older is a stale response.
            guard rejected > match else { return false }
            next = match + 1
            return true
        }
        // In probe state we sent prevIndex = next - 1; other rejections are stale.
        guard rejected == next - 1 else { return false }
        next = max(min(rejected, retryFrom), match + 1)
        isProbeSent = false
        return true
    }
}

/// A bounded FIFO of the last index carried by each in-flight append.
struct Inflights {
    private var buffer: [LogIndex] = []
    private var head = 0

    var count: Int { buffer.count - head }

    mutating func add(_ last: LogIndex) { buffer.append(last) }

    /// Frees every in-flight message whose last index is at or below `index`.
    mutating func free(through index: LogIndex) {
        while head < buffer.count && buffer[head] <= index { head += 1 }
        if head > 64 && head * 2 > buffer.count {
            buffer.removeFirst(head)
            head = 0
        }
    }

    mutating func freeFirst() {
        if head < buffer.count { head += 1 }
    }

    mutating func removeAll() {
        buffer.removeAll(keepingCapacity: true)
        head = 0
    }
}
