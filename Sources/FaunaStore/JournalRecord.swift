import FaunaAudit
import FaunaKV
import FaunaRaft
import FaunaVerify

/// What a journal record holds besides the entry, from the cluster's leaf v2 boundary on
/// (docs/AUDIT.md §1, docs/STORAGE.md "journal"): what applying the entry did. The journal
/// keeps it so that `fctl audit --journal` recomputes v2 leaves without re-running the state
/// machine, and so that it is a revision-ordered log of changes.
public struct JournalEffects: Hashable, Sendable {
    public var outcome: EntryOutcome
    public var branch: TxnBranch
    /// Sorted by key, one per key; empty unless `outcome` is success.
    public var effects: [Effect]

    public init(outcome: EntryOutcome, branch: TxnBranch, effects: [Effect]) {
        self.outcome = outcome
        self.branch = branch
        self.effects = effects
    }

    /// The state machine's effects, with each new value replaced by its SHA-256.
    public init(_ kv: KVEntryEffects) {
        self.init(
            outcome: EntryOutcome(rawValue: kv.outcome.rawValue),
            branch: TxnBranch(rawValue: kv.branch.rawValue) ?? .none,
            effects: kv.writes.map { Effect(key: $0.key, valueHash: $0.value.map(Effect.valueHash)) })
    }

    /// The summary the v2 leaf commits to.
    public var summary: EffectsSummary { EffectsTree.summary(outcome: outcome, branch: branch, effects: effects) }

    /// The proof that `key`'s effect is among these (nil if the entry did not write `key`).
    public func proof(forKey key: [UInt8]) -> (effect: Effect, proof: EffectProof)? {
        guard let i = effects.firstIndex(where: { $0.key == key }) else { return nil }
        // The leaves once, for both the root and the path (each is a SHA-256 of a key).
        let leaves = effects.map(\.leafHash)
        let summary = EffectsSummary(outcome: outcome, branch: branch, count: UInt64(leaves.count), root: EffectsTree.root(leaves[...]))
        return (effects[i], EffectProof(summary: summary, effectIndex: UInt64(i), path: EffectsTree.path(i, leaves[...])))
    }
}

/// One journal record: a committed entry and, for a v2 leaf, its effects.
public struct JournalRecord: Hashable, Sendable {
    public var entry: Entry
    /// nil for an entry applied before the leaf v2 boundary (a v1 leaf).
    public var effects: JournalEffects?

    public init(entry: Entry, effects: JournalEffects?) {
        self.entry = entry
        self.effects = effects
    }

    /// The entry as the audit tree sees it: v2 (with the effects summary) or v1.
    public var leaf: JournalEntry {
        JournalEntry(
            index: entry.index.rawValue, term: entry.term.rawValue, type: entry.type.rawValue, payload: entry.data,
            effects: effects?.summary)
    }
}

extension RaftLogCodec {
    /// An `effects` record (schema 3): `u8 version=1 | u8 outcome | u8 branch | u64 count |
    /// count × (u8 kind (1 put, 2 delete) | u32 keyBytes | key | 32-byte value hash for a put)`.
    static func encode(effects: JournalEffects) -> [UInt8] {
        var w = ByteWriter(capacity: 11 + effects.effects.reduce(0) { $0 + 37 + $1.key.count })
        w.u8(1)
        appendEffects(effects, to: &w)
        return w.bytes
    }

    static func decodeEffects(_ bytes: [UInt8]) throws(DecodeError) -> JournalEffects {
        var r = ByteReader(bytes)
        try r.version(1)
        let effects = try readEffects(&r)
        try r.end()
        return effects
    }

    /// The schema 2 journal record with effects: `u8 version=2 | u64 term | u8 type | effects
    /// (as above, after its version byte) | payload`. Without effects, the v1 entry encoding.
    /// Written only by tests now (schema 2 fixtures); read by `StoreUpgrade`.
    static func encode(journal entry: Entry, effects: JournalEffects?) -> [UInt8] {
        guard let effects else { return encode(entry: entry) }
        var w = ByteWriter(capacity: 20 + effects.effects.reduce(0) { $0 + 37 + $1.key.count } + entry.data.count)
        w.u8(2)
        w.u64(entry.term.rawValue)
        w.u8(entry.type.rawValue)
        appendEffects(effects, to: &w)
        w.raw(entry.data)
        return w.bytes
    }

    private static func appendEffects(_ effects: JournalEffects, to w: inout ByteWriter) {
        w.u8(effects.outcome.rawValue)
        w.u8(effects.branch.rawValue)
        w.u64(UInt64(effects.effects.count))
        for e in effects.effects {
            w.u8(e.valueHash == nil ? 2 : 1)
            w.u32(UInt32(e.key.count))
            w.raw(e.key)
            if let hash = e.valueHash { hash.withUnsafeBytes { w.raw($0) } }
        }
    }

    /// Reads outcome, branch and effects; validates every length against what is left before
    /// allocating (these bytes come from disk).
    private static func readEffects(_ r: inout ByteReader) throws(DecodeError) -> JournalEffects {
        let outcome = EntryOutcome(rawValue: try r.u8())
        let rawBranch = try r.u8()
        guard let branch = TxnBranch(rawValue: rawBranch) else { throw DecodeError(reason: "txn branch: got \(rawBranch), want 0...2") }
        let count = try r.u64()
        guard count <= UInt64(r.remaining / 5) else { throw DecodeError(reason: "effects: got count \(count), want <= \(r.remaining / 5)") }
        var effects: [Effect] = []
        effects.reserveCapacity(Int(count))
        for _ in 0..<count {
            let kind = try r.u8()
            guard kind == 1 || kind == 2 else { throw DecodeError(reason: "effect kind: got \(kind), want 1 or 2") }
            let keyBytes = Int(try r.u32())
            guard keyBytes <= r.remaining else { throw DecodeError(reason: "effect key: got \(keyBytes) bytes, want <= \(r.remaining)") }
            let key = try r.raw(keyBytes)
            var hash: MerkleHash?
            if kind == 1 {
                guard let h = MerkleHash(bytes: try r.raw(MerkleHash.sizeBytes)) else { throw DecodeError(reason: "effect value hash") }
                hash = h
            }
            effects.append(Effect(key: key, valueHash: hash))
        }
        return JournalEffects(outcome: outcome, branch: branch, effects: effects)
    }

    /// Decodes either schema 2 journal encoding.
    static func decodeJournal(_ bytes: [UInt8], index: LogIndex) throws(DecodeError) -> JournalRecord {
        guard bytes.first == 2 else { return JournalRecord(entry: try decodeEntry(bytes, index: index), effects: nil) }
        var r = ByteReader(bytes)
        _ = try r.u8()
        let term = try r.u64()
        let rawType = try r.u8()
        guard let type = EntryType(rawValue: rawType) else { throw DecodeError(reason: "entry type: got \(rawType), want 0 or 1") }
        let effects = try readEffects(&r)
        let entry = Entry(term: Term(term), index: index, type: type, data: r.rest())
        return JournalRecord(entry: entry, effects: effects)
    }
}
