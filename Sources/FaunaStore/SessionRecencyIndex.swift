import FaunaKV

/// The client sessions of the committed state in eviction order — ascending (last-used
/// revision, client ID) — kept in memory for the apply path. Schema 4 stores nothing but the
/// sessions for that order (schema 3 rewrote an index record per session on every write: two
/// of a put's nine memtable inserts; docs/STORAGE.md "Sessions").
///
/// Built on first use from the sessions on disk (at most `sessionsMax`, 10,000 by default),
/// then kept current by `Store.finish` with each written chunk's session writes. A chunk's
/// sessions all have revisions above every one already here, so an update is an append; the
/// entry it supersedes stays in `order` until `order` is rebuilt at twice the live count plus
/// 1,024 elements. Updates are idempotent, so a build that already saw the chunk in flight
/// (RocksDB's write of it raced the scan) takes the chunk's writes again without harm. A failed
/// apply resets it, and it is built again from disk when next asked.
///
/// Not thread-safe: only the applying thread, under `applyLock`, uses it.
final class SessionRecencyIndex {
    /// Each stored session's last-used revision.
    private var lastUsed: [ClientID: Revision] = [:]
    /// Ascending; an element whose revision is no longer its client's is stale.
    private var order: [(lastUsed: Revision, client: ClientID)] = []
    /// Elements of `order` before this one are stale.
    private var head = 0
    private(set) var isBuilt = false

    /// Sessions held now.
    var count: Int { lastUsed.count }
    /// Elements of the order, stale ones included (tests check its bound).
    var storedElements: Int { order.count }

    /// Forgets everything; the next `scan` builds the index again.
    func reset() {
        lastUsed = [:]
        order = []
        head = 0
        isBuilt = false
    }

    /// Builds the index from `stored` (the committed sessions) unless it is built. It reads
    /// them with an iterator, which is not point-in-time in `sessions` (updated in place):
    /// the caller makes sure no write of the state is in flight (`Store.applyLocked`).
    func buildIfNeeded(from stored: some KVBackend) throws {
        guard !isBuilt else { return }
        var built: [(lastUsed: Revision, client: ClientID)] = []
        try KVSessionRecency.scanStored(on: stored) { revision, client in
            built.append((revision, client))
            return true
        }
        reset()
        order = built
        for s in built { lastUsed[s.client] = s.lastUsed }
        isBuilt = true
    }

    /// Visits the sessions in eviction order until `body` returns false, first building the
    /// index from `stored` (the committed sessions) if it is not built.
    func scan(
        building stored: some KVBackend, _ body: (_ lastUsed: Revision, _ client: ClientID) throws -> Bool
    ) throws {
        try buildIfNeeded(from: stored)
        var i = head
        while i < order.count {
            let s = order[i]
            i += 1
            guard lastUsed[s.client] == s.lastUsed else {
                if i - 1 == head { head = i }  // a stale element at the front: skip it for good
                continue
            }
            if try !body(s.lastUsed, s.client) { return }
        }
    }

    /// Takes the session writes of a written chunk (`KVWriteBatch.meta`): a value stores the
    /// session at its last-used revision, nil deletes it. Other meta keys are ignored. Does
    /// nothing while the index is not built (the next build reads the chunk from disk).
    func take(_ meta: [HashedBytes: [UInt8]?]) throws(KVDecodingError) {
        guard isBuilt else { return }
        var stored: [(lastUsed: Revision, client: ClientID)] = []
        for (key, value) in meta {
            guard let client = KVSessionRecency.client(ofMetaKey: key.bytes) else { continue }
            if let value {
                stored.append((try KVSessionRecency.lastUsed(ofStored: value), client))
            } else {
                lastUsed[client] = nil
            }
        }
        stored.sort(by: KVSessionRecency.precedes)
        for s in stored where lastUsed[s.client] != s.lastUsed {
            if let last = order.last, !KVSessionRecency.precedes(last, s) {
                // Out of order: not what applying in index order produces. Rebuild from disk
                // rather than keep a wrong order.
                reset()
                return
            }
            lastUsed[s.client] = s.lastUsed
            order.append(s)
        }
        // All of `order` counts, the skipped front too: it is freed only here.
        if order.count > 2 * lastUsed.count + 1024 {
            order = order[head...].filter { lastUsed[$0.client] == $0.lastUsed }
            head = 0
        }
    }
}
