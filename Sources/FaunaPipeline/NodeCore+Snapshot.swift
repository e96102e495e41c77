import FaunaRPC
import FaunaRaft
import FaunaStore
import Foundation
import Logging

extension NodeCore {
    /// A follower installs the leader's checkpoint (its files are complete in the inbox; see
    /// `stepPeerMessage`): finish the receiver with our hard state, stop every user of the old
    /// store, reopen the data directory (the swap happens at open, crash-safe), and start a
    /// new Raft core on the new log. The old core's Ready is not advanced: the new core starts
    /// from the installed state, and the Ready's messages (the answer to the leader) go out.
    func installSnapshot(_ meta: SnapshotMetadata, receiver: any IncomingSnapshot, ready: Ready) {
        defer { snapshots.installFinished() }
        let started = clock.now
        let hardState = HardState(term: raft.term, vote: raft.hardState.vote, commit: meta.index)
        do {
            // The apply stage first lets go of the old store (it runs what is queued, then
            // holds none): nothing may write to it once the install is finished, or the write
            // is lost at the swap (the node simulator found the apply thread doing so).
            applier.replaceStore(with: nil)
            try receiver.finish(hardState: hardState)
            let old = store!
            store = nil
            raft = nil
            raftStorage = nil  // it holds the old log open too
            let reopened = try old.reopen()
            store = reopened
            let storage = RaftStorageMonitor(reopened.entryLog)
            raft = try Self.makeRaftNode(settings: settings, applied: reopened.appliedIndex, storage: storage)
            raftStorage = storage
            applier.replaceStore(with: reopened)
        } catch let error as StoreError {
            failStop(error, while: "installing a snapshot")
            return
        } catch {
            failStop(StoreError(.corruptRecord, "\(error)"), while: "starting Raft on the installed snapshot")
            return
        }
        handedOutIndex = store.appliedIndex
        // Entries held back were committed before the snapshot's index: it covers them.
        heldEntries = []
        heldSince = nil
        appliedIndex = store.appliedIndex
        loadLeases()
        treeSize = store.treeHead.treeSize
        counters.snapshotsInstalled += 1
        // Reads waiting on the old core will never get their read index; proposals of an old
        // term of ours are settled by the leader's log now (retry, same session).
        let retry = RPCMessage.error(RPCErrorResponse(.unavailable, "installed a snapshot; retry"))
        for (_, read) in readsAwaitingIndex { read.context.respond(retry) }
        readsAwaitingIndex.removeAll()
        dropKeepAlives(retry)
        for p in proposals.removeAll() { p.context.respond(retry) }
        logger.info("installed a snapshot", metadata: [
            "index": "\(meta.index)", "treeSize": "\(treeSize)", "took": "\(clock.now - started)",
        ])
        transport.send(ready.messages)
        transport.reconcile(with: raft.conf, me: id)
    }

    /// A Raft core over a store's entry log (read through `storage`), resuming after its
    /// applied index.
    public static func makeRaftNode(settings: PipelineSettings, applied: LogIndex, storage: RaftStorageMonitor) throws -> RaftNode {
        var config = RaftConfig(id: settings.nodeID, randomSeed: settings.randomSeed)
        config.electionTicks = settings.electionTicks
        config.heartbeatTicks = settings.heartbeatTicks
        config.deferCommitBroadcast = settings.deferCommitBroadcast
        config.applied = applied
        return try RaftNode(config: config, storage: storage)
    }
}
