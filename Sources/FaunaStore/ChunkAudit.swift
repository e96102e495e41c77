import FaunaAudit
import FaunaKV
import FaunaRaft

/// The audit chain's part of an applied chunk: each entry's leaf (v2 from the boundary on,
/// committing to what the entry did) appended to the Merkle tree, its effects record, and the
/// tiles the tree filled. `Store.prepare` collects it while the state machine runs; `complete`
/// adds it to the chunk's batch — inline for a node's small groups, and on the apply writer's
/// thread for a pipelined group, so that the hashing (up to four SHA-256 per put) overlaps the
/// next chunk's state machine instead of following it (docs/STORAGE.md "Write rules").
struct ChunkAudit: Sendable {
    let entries: ArraySlice<Entry>
    /// One per entry when the audit chain is on: the entry's effects for a v2 leaf, nil for a
    /// v1 leaf (applied before the boundary). Empty when it is off.
    var effects: [KVEntryEffects?] = []
    /// The applied index after the chunk: the tree must end at that size.
    var appliedIndex = LogIndex(0)
    let effectsFamily: RocksDBColumnFamily
    let merkleFamily: RocksDBColumnFamily
    let diskGuard: DiskSpaceGuard
    let auditChain: Bool
    /// A group record of effects is closed once it holds this many bytes: a verified read
    /// decodes one group to find its entry's effects (a chunk of single puts with 16-byte keys
    /// makes about 55 KiB).
    static let effectsGroupBytes = 64 << 10

    init(entries: ArraySlice<Entry>, families: Store.ColumnFamilies, diskGuard: DiskSpaceGuard, auditChain: Bool) {
        self.entries = entries
        self.effectsFamily = families.effects
        self.merkleFamily = families.merkle
        self.diskGuard = diskGuard
        self.auditChain = auditChain
        if auditChain { effects.reserveCapacity(entries.count) }
    }

    /// Adds the effects records and the Merkle tiles to `batch`, then checks that the disk has
    /// room for the whole batch. Returns the tree after the chunk.
    /// - Throws: `.diskFull` (fail-stop), nothing written.
    func complete(
        _ batch: RocksDBWriteBatch, after tree: (frontier: MerkleFrontier, tiles: MerkleTileWriter)
    ) throws(StoreError) -> (frontier: MerkleFrontier, tiles: MerkleTileWriter) {
        var (frontier, tiles) = tree
        if auditChain {
            precondition(effects.count == entries.count, "audit: \(effects.count) effects for \(entries.count) entries")
            // The effects are kept beside the entries, which the entry log already holds: one
            // group record per run of v2 leaves, at most `effectsGroupBytes` each.
            var group = RaftLogCodec.EffectsGroupWriter()
            func put(_ group: inout RaftLogCodec.EffectsGroupWriter) {
                guard let (first, record) = group.take() else { return }
                batch.put(effectsFamily, bigEndianBytes(first.rawValue), record)
            }
            for (entry, kv) in zip(entries, effects) {
                let record = JournalRecord(entry: entry, effects: kv.map(JournalEffects.init))
                if let recorded = record.effects {
                    group.add(recorded, at: entry.index)
                    if group.bytes >= Self.effectsGroupBytes { put(&group) }
                } else {
                    put(&group)
                }
                frontier.append(record.leafHash, to: &tiles, using: .libcrypto)
            }
            put(&group)
            // The frontier records nodes as they complete, in post-order: the tiles they fill
            // come in ascending key order, after every tile already stored but the last, which
            // they rewrite (docs/STORAGE.md "Merkle tiles").
            tiles.write(to: batch, merkleFamily)
            precondition(frontier.treeSize == appliedIndex.rawValue, "tree size \(frontier.treeSize) != applied \(appliedIndex)")
        }
        try diskGuard.check(adding: batch.dataBytes, operation: "apply write")
        return (frontier, tiles)
    }
}
