/// The current state of one key: the `kv` column family's value (docs/STORAGE.md).
///
/// Invariants (checked by the decoder): `version >= 1`, `createRevision >= 1`,
/// `createRevision <= modRevision`, `value.count <= KVLimits.valueBytesMax`.
public struct KVRecord: Hashable, Sendable {
    /// The value bytes; empty in results of keys-only reads.
    public var value: [UInt8]
    /// The revision of the put that created the key (after its last delete, if any).
    public var createRevision: Revision
    /// The revision of the last put to the key.
    public var modRevision: Revision
    /// How many puts since the key was created: 1 on create, +1 per put; a delete ends it.
    public var version: UInt64
    /// The lease the key is attached to (0: none): revoking or expiring the lease deletes the
    /// key (docs/KV-COMMANDS.md "Leases").
    public var lease: UInt64

    /// A record; the state machine keeps the invariants above.
    public init(value: [UInt8], createRevision: Revision, modRevision: Revision, version: UInt64, lease: UInt64 = 0) {
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }
}

/// A key with its record, as reads return them.
public struct KVKeyValue: Hashable, Sendable {
    /// The key.
    public var key: [UInt8]
    /// Its record (value empty in keys-only results).
    public var record: KVRecord

    /// `key` with `record`.
    public init(key: [UInt8], record: KVRecord) {
        self.key = key
        self.record = record
    }
}

/// One entry of a key's MVCC history: what the key held from `revision` on, until the next
/// entry of the same key. The `history` column family's value (docs/KV-COMMANDS.md).
public enum KVHistoryValue: Hashable, Sendable {
    /// A put at this revision left this record (its `modRevision` is the revision).
    case record(KVRecord)
    /// A delete at this revision removed the key.
    case tombstone
}

/// A history entry with the revision it was written at, as the backend returns it.
public struct KVHistoryVersion: Hashable, Sendable {
    /// The revision of the write.
    public var revision: Revision
    /// What the write left.
    public var value: KVHistoryValue

    /// The history entry written at `revision`.
    public init(revision: Revision, value: KVHistoryValue) {
        self.revision = revision
        self.value = value
    }
}
