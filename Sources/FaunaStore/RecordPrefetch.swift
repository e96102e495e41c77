import FaunaKV
import FaunaRaft

/// The records a chunk's puts replace, read before the state machine runs (and then answered
/// by `CachedKVBackend.prefetched`): one RocksDB MultiGet for the keys the record cache does
/// not hold, instead of one get per put as the state machine reaches it. A get of a key not
/// written yet (every put of a new key) probes the memtables' and files' filters one key at a
/// time; the batch takes one view of them for all keys and overlaps the probes. Keys the cache
/// holds are left to it, so a chunk whose keys are all cached costs one probe per key and no
/// read.
///
/// What it holds is the committed state before the chunk, for keys the chunk in flight does
/// not write (the overlay of that chunk answers those, so they are not read). The state
/// machine reads a prefetched key at most once from here: after its first write the chunk's
/// own batch answers. So the answers are exactly what the backend it stands in front of would
/// have given, under `applyLock` with nothing else writing `kv`.
struct RecordPrefetch {
    /// Each entry's decoded proposal (nil: not a normal entry with data, or data that does not
    /// decode, which the state machine decodes itself into its `.malformed` outcome).
    var proposals: [KVProposal?]
    /// The records read, by key (nil: absent).
    var records: [HashedBytes: KVRecord?] = [:]

    /// Decodes `entries` and reads the records their single puts replace that `cache` does not
    /// hold, from `committed` in one batch. Each read counts as a cache miss, as the state
    /// machine's own read would have. A record found goes into the cache, as `CachedKVBackend`
    /// puts it; a key found absent does not (its put caches it once written). Keys of the
    /// system key space are left to the state machine's own reads.
    init(_ entries: ArraySlice<Entry>, committed: RocksDBKVBackend, cache: RecordCache?, pending: KVWriteBatch?) throws {
        proposals = []
        proposals.reserveCapacity(entries.count)
        records.reserveCapacity(entries.count)
        var missing: [HashedBytes] = []
        for e in entries {
            guard e.type == .normal && !e.data.isEmpty, let proposal = try? KVProposal(decoding: e.data) else {
                proposals.append(nil)
                continue
            }
            proposals.append(proposal)
            guard case .put(let put) = proposal.command, !KVSystemKeys.contains(put.key) else { continue }
            if let cache, cache.contains(put.key) { continue }
            let key = HashedBytes(put.key)
            guard pending?.records.index(forKey: key) == nil else { continue }
            // Each key once: the placeholder (absent) stays unless the read finds a record.
            guard records.updateValue(KVRecord?.none, forKey: key) == nil else { continue }
            missing.append(key)
        }
        guard !missing.isEmpty else { return }
        let found = try committed.records(forKeys: missing.map(\.bytes))
        cache?.countMisses(missing.count)
        // A key found absent keeps its placeholder, which already says so.
        for (key, record) in zip(missing, found) {
            guard let record else { continue }
            records[key] = record
            cache?.set(key.bytes, record)
        }
    }

    /// Keys read from RocksDB.
    var read: Int { records.count }
}
