import Crypto
import FaunaClient
import FaunaRaft
import FaunaStore
import FaunaVerify
import Foundation

/// Makes the data directories of a new cluster from a verified archive (docs/AUDIT.md §13
/// "Restoring"), as `etcdutl snapshot restore` does, but continuing the archive's history:
///
/// - every new node gets the archive's checkpoint (installed as a peer's snapshot is: the
///   journal and the tree up to the archive's index I stay; the cluster ID is kept);
/// - every new node gets a new signing key (`node.key`, mode 0600);
/// - every node's log continues after I with the same committed entries, at a term above the
///   archive's: one `addVoter` per new member whose context names its addresses and its new
///   public key, then one `remove` per old member that is not a new one. They are leaves like
///   any entry, so the new membership and keys are in the tree, after the history the old
///   members signed.
///
/// The archive is verified first (`BackupVerifier`, against the old cluster's pinned keys); an
/// archive that does not verify is not restored. Nothing is written into an existing
/// non-empty directory.
public struct BackupRestorer {
    public struct Member: Sendable {
        public var name: String
        public var nodeID: NodeID
        public var peer: String
        public var client: String
        public var dataDirectory: String

        public init(name: String, nodeID: NodeID, peer: String, client: String, dataDirectory: String) {
            self.name = name
            self.nodeID = nodeID
            self.peer = peer
            self.client = client
            self.dataDirectory = dataDirectory
        }
    }

    /// What was restored.
    public struct Result: Sendable {
        public var verification: BackupVerifier.Report
        /// The archive's index: the restored history ends there, and continues from it.
        public var index: UInt64
        /// The index of the last restore entry (the new membership): every node's commit.
        public var lastIndex: UInt64
        public var term: UInt64
        /// Each member's new public key.
        public var keys: [(name: String, publicKey: [UInt8])]
        public var removed: [NodeID]
    }

    public var verifier: BackupVerifier
    public var members: [Member]

    public init(verifier: BackupVerifier, members: [Member]) {
        self.verifier = verifier
        self.members = members
    }

    public func restore(progress: ((BackupVerifier.Step) -> Void)? = nil) throws(FaunaClientError) -> Result {
        guard !members.isEmpty else { throw FaunaClientError(.invalidRequest, "restore: the new cluster has no members") }
        for m in members {
            let existing = (try? FileManager.default.contentsOfDirectory(atPath: m.dataDirectory)) ?? []
            guard existing.isEmpty else {
                throw FaunaClientError(.invalidRequest, "restore: \(m.dataDirectory) (\(m.name)) exists and is not empty; restore makes new data directories only")
            }
        }
        var installed: Installed?
        let report: BackupVerifier.Report
        do {
            report = try verifier.verify(progress: progress) { archive, summary throws(FaunaClientError) in
                installed = try install(from: archive, summary: summary)
            }
        } catch {
            let made = members.map(\.dataDirectory).filter { FileManager.default.fileExists(atPath: "\($0)/node.key") }
            guard !made.isEmpty else { throw error }
            throw FaunaClientError(error.code, "\(error.message); remove what restore made (\(made.joined(separator: ", "))) before trying again")
        }
        guard let done = installed else { throw FaunaClientError(.internal, "restore: the archive verified but nothing was installed") }
        return Result(
            verification: report, index: done.index, lastIndex: done.lastIndex, term: done.term, keys: done.keys, removed: done.removed)
    }

    private struct Installed {
        var index: UInt64
        var lastIndex: UInt64
        var term: UInt64
        var keys: [(name: String, publicKey: [UInt8])]
        var removed: [NodeID]
    }

    private func install(from archive: Store, summary: SnapshotArchive.Summary) throws(FaunaClientError) -> Installed {
        let index = archive.appliedIndex
        let oldConf = archive.appliedConfState
        // The archive's own term is not known here beyond its entries' terms: the last entry's.
        let lastTerm: Term
        do { lastTerm = try archive.journalEntry(at: index)?.term ?? .zero } catch { throw FaunaClientError(.io, "restore: reading entry \(index): \(error)") }
        let term = Term(lastTerm.rawValue + 1)
        var keys: [(String, Curve25519.Signing.PrivateKey)] = []
        var entries: [Entry] = []
        var next = index.rawValue + 1
        for m in members.sorted(by: { $0.nodeID < $1.nodeID }) {
            let key = Curve25519.Signing.PrivateKey()
            keys.append((m.name, key))
            let change = ConfChange(.addVoter, m.nodeID, context: RestoreContext.encode(peer: m.peer, client: m.client, publicKey: Array(key.publicKey.rawRepresentation)))
            entries.append(Entry(term: term, index: LogIndex(next), type: .confChange, data: change.encoded))
            next += 1
        }
        let removed = oldConf.members.filter { id in !members.contains { $0.nodeID == id } }
        for id in removed {
            entries.append(Entry(term: term, index: LogIndex(next), type: .confChange, data: ConfChange(.remove, id).encoded))
            next += 1
        }
        let last = LogIndex(next - 1)
        let summaryFiles = summary.files.map { SnapshotManifest.File(name: $0.name, sizeBytes: $0.sizeBytes, sha256: $0.sha256) }
        let manifest = SnapshotManifest(metadata: SnapshotMetadata(index: index, term: lastTerm, confState: oldConf), files: summaryFiles)
        let masterKey = try verifier.masterKey  // the file read and checked once, not per member
        for m in members {
            try BackupVerifier.makeDirectory(m.dataDirectory)
            let key = keys.first { $0.0 == m.name }!.1
            try Self.writeKey(Array(key.rawRepresentation), to: "\(m.dataDirectory)/node.key")
            do {
                let receiver = try SnapshotReceiver(dataDirectory: m.dataDirectory, manifest: manifest, masterKey: masterKey)
                // Straight from the archive (checked again on the way): the unpacked copy was
                // opened, so RocksDB may have changed its files.
                var file = -1
                var offset: UInt64 = 0
                _ = try SnapshotArchive.verify(path: verifier.archivePath, extract: { name, piece throws(FaunaClientError) in
                    guard let piece else {
                        file += 1
                        offset = 0
                        guard file < summaryFiles.count, summaryFiles[file].name == name else {
                            throw FaunaClientError(.verificationFailed, "restore: the archive changed while restoring (file \(name))")
                        }
                        if summaryFiles[file].sizeBytes == 0 { try Self.receive(receiver, file, 0, []) }
                        return
                    }
                    try Self.receive(receiver, file, offset, piece)
                    offset += UInt64(piece.count)
                })
                try receiver.finish(hardState: HardState(term: term, vote: nil, commit: index))
                // Opening swaps the installed checkpoint in; the restore entries follow it.
                var storeOptions = Store.Options()
                storeOptions.masterKey = masterKey
                let store = try Store(path: m.dataDirectory, options: storeOptions)
                defer { store.close() }
                try store.raftLog.persist(RaftLogUpdate(entries: entries, hardState: HardState(term: term, vote: nil, commit: last)))
            } catch let e as FaunaClientError {
                throw e
            } catch {
                throw FaunaClientError(.io, "restore: installing into \(m.dataDirectory) (\(m.name)): \(error)")
            }
        }
        return Installed(
            index: index.rawValue, lastIndex: last.rawValue, term: term.rawValue,
            keys: keys.map { ($0.0, Array($0.1.publicKey.rawRepresentation)) }, removed: removed)
    }

    static func receive(_ receiver: SnapshotReceiver, _ file: Int, _ offset: UInt64, _ data: [UInt8]) throws(FaunaClientError) {
        do { try receiver.receive(FaunaStore.SnapshotChunk(fileIndex: file, offset: offset, data: data)) } catch {
            throw FaunaClientError(.io, "restore: \(error)")
        }
    }

    /// The 32-byte seed, mode 0600, fsynced: what faunad's `NodeKey` loads.
    static func writeKey(_ seed: [UInt8], to path: String) throws(FaunaClientError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FaunaClientError(.io, "restore: cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = seed.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == seed.count, fsync(fd) == 0 else {
            throw FaunaClientError(.io, "restore: cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
