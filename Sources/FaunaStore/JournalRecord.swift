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
            effects: kv.writes.map { w in Effect(key: w.key, valueHash: w.value.map { Effect.valueHash($0, using: .libcrypto) }) })
    }

    /// The summary the v2 leaf commits to.
    public var summary: EffectsSummary {
        EffectsTree.summary(outcome: outcome, branch: branch, effects: effects, using: .libcrypto)
    }

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

    /// The leaf's hash, as the store computes it (`SHA256Parts.libcrypto`).
    var leafHash: MerkleHash { leaf.leafHash(using: .libcrypto) }
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

    /// An `effects` group record (schema 8): the effects of consecutive entries, kept under the
    /// index of the first: `u8 version=2 | u32 count | count × (u32 bytes | effects as in a
    /// version 1 record, after its version byte)`. A version 1 record is a group of one.
    /// One key per group instead of one per entry: a key, a memtable insert and a block entry
    /// per applied chunk, not per put (docs/STORAGE.md "Effects in groups").
    struct EffectsGroupWriter {
        /// The index of the group's first entry (nil: empty).
        private(set) var first: LogIndex?
        private(set) var count = 0
        /// The record being built: its header, with the count written by `take`, then the members.
        private var record = Self.header()

        private static func header() -> ByteWriter {
            var w = ByteWriter(capacity: 4096)
            w.u8(2)
            w.u32(0)
            return w
        }

        /// Bytes of the members so far.
        var bytes: Int { record.bytes.count - 5 }

        /// Adds the effects of the entry at `index`, which must follow the group's last.
        mutating func add(_ effects: JournalEffects, at index: LogIndex) {
            precondition(first.map { index == $0 + UInt64(count) } ?? true, "effects group: \(index) does not follow")
            if first == nil { first = index }
            let start = record.bytes.count
            record.u32(0)
            appendEffects(effects, to: &record)
            record.setU32(UInt32(record.bytes.count - start - 4), at: start)
            count += 1
        }

        /// The group's key (its first index) and record, and an empty writer; nil when empty.
        mutating func take() -> (first: LogIndex, record: [UInt8])? {
            guard let first else { return nil }
            record.setU32(UInt32(count), at: 1)
            defer { self = EffectsGroupWriter() }
            return (first, record.bytes)
        }
    }

    /// Every entry's effects in an `effects` record of either version, in index order from the
    /// record's key. Validates each length against what is left (the bytes come from disk).
    static func decodeEffectsGroup(_ bytes: [UInt8]) throws(DecodeError) -> [JournalEffects] {
        guard bytes.first == 2 else { return [try decodeEffects(bytes)] }
        var r = ByteReader(bytes)
        let count = try groupCount(&r)
        var out: [JournalEffects] = []
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(try groupMember(&r)) }
        try r.end()
        return out
    }

    /// The effects of the entry `offset` places after the record's first (nil if the record
    /// holds fewer), decoding that one only.
    static func decodeEffects(_ bytes: [UInt8], offset: UInt64) throws(DecodeError) -> JournalEffects? {
        guard bytes.first == 2 else { return offset == 0 ? try decodeEffects(bytes) : nil }
        var r = ByteReader(bytes)
        let count = try groupCount(&r)
        guard offset < UInt64(count) else { return nil }
        for _ in 0..<offset { try r.skip(Int(try r.u32())) }
        return try groupMember(&r)
    }

    private static func groupCount(_ r: inout ByteReader) throws(DecodeError) -> Int {
        try r.version(2)
        let count = try r.u32()
        // Each member takes at least its length and 10 bytes of effects (none of them).
        guard count >= 1, count <= UInt32(r.remaining / 14) else {
            throw DecodeError(reason: "effects group: got count \(count), want 1...\(r.remaining / 14)")
        }
        return Int(count)
    }

    private static func groupMember(_ r: inout ByteReader) throws(DecodeError) -> JournalEffects {
        let length = Int(try r.u32())
        guard length <= r.remaining else { throw DecodeError(reason: "effects group member: got \(r.remaining) bytes, want \(length)") }
        let start = r.offset
        let effects = try readEffects(&r)
        guard r.offset - start == length else {
            throw DecodeError(reason: "effects group member: read \(r.offset - start) bytes, its length says \(length)")
        }
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
