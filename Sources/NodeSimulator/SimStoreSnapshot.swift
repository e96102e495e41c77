import FaunaPipeline
import FaunaRaft
import FaunaStore

/// A checkpoint of a `SimStore`'s applied state: a value copy of what a RocksDB checkpoint
/// holds — the applied state, KV records, history and meta, journal and tree — taken at the
/// applied index. (A RocksDB checkpoint also holds the sender's `raft` column family; an
/// install rewrites it entirely, so it is left out.)
public struct SimCheckpoint: StateCheckpoint {
    /// Index, term and membership of the applied state.
    public let metadata: SnapshotMetadata
    let data: SimStateData

    init(metadata: SnapshotMetadata, data: SimStateData) {
        self.metadata = metadata
        self.data = data
    }

    /// Roughly what the transfer carries (for the driver's timing of a snapshot transfer).
    public var sizeBytes: UInt64 {
        let counts = data.kv.entryCounts
        let kv = 64 * (counts.records + counts.history + counts.meta)
        let journal = data.journal.reduce(0) { $0 + $1.entry.sizeBytes }
        return UInt64(kv + journal + 32 * data.merkle.nodeCount)
    }
}

/// A snapshot received from the leader, complete and verified, for one node's disk
/// (production: `SnapshotReceiver` with every file in `db.incoming`).
///
/// `finish(hardState:)` does what production's does: the install gets an empty log restarting
/// after the snapshot index (its snapshot metadata is the checkpoint's), this node's hard state
/// with the commit index raised to at least the snapshot index, and is made durable at once
/// beside the live database. The next `SimStore` opened on the disk (`reopen()`) swaps it in;
/// until then the live store keeps its old state, and a power loss keeps the finished install.
/// As in production, nothing may be written to the old store in between: such writes are lost
/// at the swap (`SimDisk.Counters.batchesWrittenWhileInstallPending` counts them).
public final class SimIncomingSnapshot: IncomingSnapshot {
    public let checkpoint: SimCheckpoint
    public let disk: SimDisk

    public init(checkpoint: SimCheckpoint, disk: SimDisk) {
        self.checkpoint = checkpoint
        self.disk = disk
    }

    public var metadata: SnapshotMetadata { checkpoint.metadata }

    /// - Throws: `.snapshotInvalid` if the checkpoint's applied state disagrees with its
    ///   metadata; an injected write failure (fail-stop; nothing written).
    public func finish(hardState: HardState) throws(StoreError) {
        let meta = checkpoint.metadata
        let applied = checkpoint.data.applied
        // Check the snapshot says what the manifest says before accepting it.
        guard applied.index == meta.index, applied.term == meta.term else {
            throw StoreError(
                .snapshotInvalid, "snapshot applied index/term: got \(applied.index)/\(applied.term), manifest \(meta.index)/\(meta.term)")
        }
        guard applied.confState == meta.confState else {
            throw StoreError(.snapshotInvalid, "snapshot membership: got \(applied.confState), manifest \(meta.confState)")
        }
        var own = hardState
        own.commit = max(own.commit, meta.index)
        let state = SimDiskState(log: SimLogState(hardState: own, snapshot: meta, entries: []), data: checkpoint.data)
        try disk.finishInstall(state)
    }
}
