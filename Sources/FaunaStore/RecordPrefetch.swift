import FaunaKV
import FaunaRaft

/// The records a chunk's puts replace, read before the state machine runs (and then answered
/// by `CachedKVBackend.prefetched`): the record cache's
/// answers for the keys it holds and one RocksDB MultiGet for the rest, instead of one get per
/// put as the state machine reaches it. A get of a key not written yet (every put of a new
/// key) probes the memtables' and files' filters one key at a time; the batch takes one view
/// of them for all keys and overlaps the probes.
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
    var records: [HashedBytes: KVRecord?] = [:]
    /// Keys read from RocksDB (the rest came from the cache).
    var read = 0

    /// Decodes `entries` and reads the records their single puts replace: from `cache` where it
    /// holds them (counted as its hits and misses, as the state machine's reads were), the rest
    /// from `committed` in one batch. A record read from RocksDB goes into the cache, as
    /// `CachedKVBackend` does; a key found absent does not (its put caches it once written).
    /// Keys of the system key space are left to the state machine's own reads.
    init(_ entries: ArraySlice<Entry>, committed: RocksDBKVBackend, cache: RecordCache?, pending: KVWriteBatch?) throws {
        proposals = []
        proposals.reserveCapacity(entries.count)
        var missing: [[UInt8]] = []
        for e in entries {
            guard e.type == .normal && !e.data.isEmpty, let proposal = try? KVProposal(decoding: e.data) else {
                proposals.append(nil)
                continue
            }
            proposals.append(proposal)
            guard case .put(let put) = proposal.command, !KVSystemKeys.contains(put.key) else { continue }
            let key = HashedBytes(put.key)
            guard records.index(forKey: key) == nil, pending?.records.index(forKey: key) == nil else { continue }
            if let cache, case .hit(let record) = cache.lookup(put.key) {
                records[key] = .some(record)
            } else {
                records[key] = .some(nil)  // until read below
                missing.append(put.key)
            }
        }
        guard !missing.isEmpty else { return }
        let found = try committed.records(forKeys: missing)
        read = missing.count
        for (key, record) in zip(missing, found) {
            records[HashedBytes(key)] = .some(record)
            if let cache, let record { cache.set(key, record) }
        }
    }
}
