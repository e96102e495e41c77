import Crypto
import FaunaRaft
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The receiving side of a state snapshot. Writes the files aside (`<data>/db.incoming`),
/// checks each file's size and SHA-256 against the manifest as it completes, then `finish`
/// rewrites the snapshot's `raft` CF with this node's own hard state (its term and vote are
/// its own) and an empty log that restarts after the snapshot index, fsyncs, and marks the
/// install ready. Reopening the store (`Store(path:)`) swaps the directories atomically and
/// fsyncs the parent (`Store.recoverInstall`), so a crash at any point leaves either the old
/// state or the new one. Not thread-safe.
public final class SnapshotReceiver {
    static let readyMarker = "INSTALL-READY"

    public let manifest: SnapshotManifest
    let root: String
    var directory: String { "\(root)/db.incoming" }
    private var received: [UInt64]
    private var hashers: [SHA256]
    private var completed: [Bool]
    private var fd: Int32 = -1
    private var openFileIndex = -1
    /// Opens an encrypted snapshot's keyring (the sender's data keys, wrapped by the cluster's
    /// master key) to write this node's hard state into it.
    let masterKey: MasterKey?

    /// Starts receiving into `store`'s data directory, discarding any earlier partial install.
    public convenience init(store: Store, manifest: SnapshotManifest) throws(StoreError) {
        try self.init(dataDirectory: store.path, manifest: manifest, masterKey: store.masterKey)
    }

    /// Starts receiving into the data directory `dataDirectory` (a `Store`'s `path`), which may
    /// be open: the files go aside until the store is reopened. `masterKey`: the store's
    /// (`Store.Options.masterKey`); an encrypted snapshot is refused without the key it was
    /// encrypted under, and one that is not encrypted is sealed when the store reopens.
    public init(dataDirectory: String, manifest: SnapshotManifest, masterKey: MasterKey? = nil) throws(StoreError) {
        self.manifest = manifest
        self.masterKey = masterKey
        self.root = dataDirectory
        received = Array(repeating: 0, count: manifest.files.count)
        hashers = Array(repeating: SHA256(), count: manifest.files.count)
        completed = Array(repeating: false, count: manifest.files.count)
        try FileIO.removeTree("\(root)/db.incoming")
        try FileIO.createDirectory("\(root)/db.incoming")
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Whether every file has arrived and verified.
    public var isComplete: Bool { completed.allSatisfy { $0 } }

    /// Writes one chunk. Throws `.snapshotInvalid` for a chunk out of order, beyond the file
    /// size, or completing a file whose hash differs; the install must then restart.
    public func receive(_ chunk: SnapshotChunk) throws(StoreError) {
        let i = chunk.fileIndex
        guard i >= 0, i < manifest.files.count else {
            throw StoreError(.snapshotInvalid, "chunk file index: got \(i), want < \(manifest.files.count)")
        }
        let file = manifest.files[i]
        guard !completed[i], chunk.offset == received[i] else {
            throw StoreError(.snapshotInvalid, "chunk of \(file.name): got offset \(chunk.offset), want \(received[i])")
        }
        guard chunk.data.count <= SnapshotChunk.bytesMax,
            UInt64(chunk.data.count) <= file.sizeBytes - received[i]
        else {
            throw StoreError(.snapshotInvalid, "chunk of \(file.name): \(chunk.data.count) bytes at \(chunk.offset) exceed size \(file.sizeBytes)")
        }
        let path = "\(directory)/\(file.name)"
        if openFileIndex != i {
            if fd >= 0 { close(fd) }
            fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            guard fd >= 0 else { throw FileIO.error("create", path) }
            openFileIndex = i
        }
        try FileIO.writeAll(fd, chunk.data[...], path)
        chunk.data.withUnsafeBytes { hashers[i].update(bufferPointer: $0) }
        received[i] += UInt64(chunk.data.count)
        if received[i] == file.sizeBytes {
            guard fsync(fd) == 0 else { throw FileIO.error("fsync", path) }
            close(fd)
            fd = -1
            openFileIndex = -1
            let digest = Array(hashers[i].finalize())
            guard digest == file.sha256 else {
                throw StoreError(.snapshotInvalid, "file \(file.name): SHA-256 mismatch")
            }
            completed[i] = true
        }
    }

    /// Verifies completeness, gives the snapshot this node's `hardState` and a log restarting
    /// after the snapshot index, fsyncs, and marks the install ready. The caller then closes
    /// and drops the old `Store` and opens `Store(path:)` again, which performs the swap.
    /// Nothing may be persisted to the old store's Raft log in between.
    public func finish(hardState: HardState) throws(StoreError) {
        guard isComplete else {
            let missing = zip(manifest.files, completed).filter { !$0.1 }.map(\.0.name)
            throw StoreError(.snapshotInvalid, "snapshot incomplete: missing \(missing.prefix(5))")
        }
        do {
            let db = try rocks { () throws(RocksDBError) in
                try RocksDB(path: directory, columnFamilies: StoreColumnFamily.allCases.map(\.options), createIfMissing: false)
            }
            let cfs: Store.ColumnFamilies
            do {
                let nodeMeta = try Store.columnFamilies(of: db, keyring: nil).nodeMeta
                let keyring = try StoreEncryption.loadKeyring(db: db, nodeMeta: nodeMeta, master: masterKey)
                cfs = try Store.columnFamilies(of: db, keyring: keyring)
            } catch {
                throw StoreError(.snapshotInvalid, "snapshot: \(error.message)")
            }
            let schema = try rocks { () throws(RocksDBError) in try db.get(cfs.nodeMeta, MetaKey.schema) }
            // Schemas 3 to 5 (a sender not upgraded yet) are upgraded in place by the store
            // when it opens the installed directory, like a data directory of theirs.
            let accepted = (UInt32(3)...storeSchemaVersion).map(bigEndianBytes32)
            guard let schema, accepted.contains(schema) else {
                throw StoreError(
                    .snapshotInvalid,
                    "snapshot schema: got \(schema.map(Self.describeSchema) ?? "none (schema 2 or older)"), want 3 to \(storeSchemaVersion): "
                        + "the sender runs another Fauna version; upgrade every node")
            }
            // Where the checkpoint's schema keeps the hard state and compaction point: `log`
            // up to schema 4, `meta` from 5 on.
            let inMeta = schema != bigEndianBytes32(3) && schema != bigEndianBytes32(4)
            let hardStateKey = inMeta ? MetaKey.raftHardState : RaftKey.legacyHardState
            let snapshotKey = inMeta ? MetaKey.raftSnapshot : RaftKey.legacySnapshot
            let raftState = inMeta ? cfs.meta : cfs.log
            let meta = manifest.metadata
            let batch = db.makeWriteBatch()
            // The sender's entries at and below the snapshot index are the journal and stay;
            // the log restarts after them (its entries above may not be committed).
            batch.deleteRange(cfs.log, from: RaftKey.entry(meta.index + 1), to: RaftKey.entriesEnd)
            var own = hardState
            own.commit = max(own.commit, meta.index)
            batch.put(raftState, hardStateKey, RaftLogCodec.encode(hardState: own))
            batch.put(raftState, snapshotKey, RaftLogCodec.encode(snapshot: meta))
            try rocks { () throws(RocksDBError) in try db.write(batch, sync: true) }
            // Check the snapshot says what the manifest says before accepting it.
            let applied = try Store.loadAppliedState(db: db, meta: cfs.meta)
            guard applied.index == meta.index, applied.term == meta.term else {
                throw StoreError(.snapshotInvalid, "snapshot applied index/term: got \(applied.index)/\(applied.term), manifest \(meta.index)/\(meta.term)")
            }
            // The membership a restart takes is the one stored with the applied index.
            guard applied.confState == meta.confState else {
                throw StoreError(
                    .snapshotInvalid, "snapshot membership: got \(applied.confState), manifest \(meta.confState)")
            }
        }
        try FileIO.fsyncDirectory(directory)
        try FileIO.writeFile("\(directory)/\(Self.readyMarker)", [])
        try FileIO.fsyncDirectory(directory)
        try FileIO.fsyncDirectory(root)
    }

    /// A stored schema version as a number (a u32 BE), or its bytes if it is not 4 long.
    static func describeSchema(_ bytes: [UInt8]) -> String {
        guard bytes.count == 4 else { return "\(bytes)" }
        return "\(bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })"
    }
}
