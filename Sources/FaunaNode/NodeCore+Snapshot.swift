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
    func installSnapshot(_ meta: SnapshotMetadata, receiver: SnapshotReceiver, ready: Ready) {
        defer { inbox.installFinished() }
        let started = Date()
        let hardState = HardState(term: raft.term, vote: raft.hardState.vote, commit: meta.index)
        do {
            try receiver.finish(hardState: hardState)
            replaceApplierStore(with: nil)
            let path = store.path
            store.close()
            store = nil
            raft = nil
            raftStorage = nil  // it holds the old database open too
            let reopened = try Store(path: path, options: settings.storeOptions)
            store = reopened
            let storage = RaftStorageMonitor(reopened.raftLog)
            raft = try Self.makeRaftNode(settings: settings, store: reopened, storage: storage)
            raftStorage = storage
            replaceApplierStore(with: reopened)
        } catch let error as StoreError {
            failStop(error, while: "installing a snapshot")
            return
        } catch {
            failStop(StoreError(.corruptRecord, "\(error)"), while: "starting Raft on the installed snapshot")
            return
        }
        handedOutIndex = store.appliedIndex
        appliedIndex = store.appliedIndex
        treeSize = store.treeHead.treeSize
        // Reads waiting on the old core will never get their read index; proposals of an old
        // term of ours are settled by the leader's log now (retry, same session).
        let retry = RPCMessage.error(RPCErrorResponse(.unavailable, "installed a snapshot; retry"))
        for (_, read) in readsAwaitingIndex { read.context.respond(retry) }
        readsAwaitingIndex.removeAll()
        for (_, p) in pending { p.context.respond(retry) }
        pending.removeAll()
        logger.info("installed a snapshot", metadata: [
            "index": "\(meta.index)", "treeSize": "\(treeSize)",
            "seconds": "\(String(format: "%.2f", Date().timeIntervalSince(started)))",
        ])
        transport.send(ready.messages)
        transport.reconcile(with: raft.conf, me: id)
    }

    private func replaceApplierStore(with new: Store?) {
        let done = DispatchSemaphore(value: 0)
        applier.queue.post(.setStore(new, done))
        done.wait()
    }

    /// A Raft core over `store`'s log (read through `storage`), resuming after its applied
    /// index.
    static func makeRaftNode(settings: NodeSettings, store: Store, storage: RaftStorageMonitor) throws -> RaftNode {
        var config = RaftConfig(id: settings.nodeID, randomSeed: settings.randomSeed)
        config.electionTicks = settings.cluster.electionTicks
        config.heartbeatTicks = settings.cluster.heartbeatTicks
        config.applied = store.appliedIndex
        return try RaftNode(config: config, storage: storage)
    }
}
