import Crypto
import FaunaClient
import FaunaKV
import FaunaRaft
import FaunaStore
import FaunaVerify
import Foundation

/// Checks a snapshot archive offline, without any node (docs/AUDIT.md "Backups"):
///
/// 1. structure and every file's SHA-256 (`SnapshotArchive.verify`), extracting the files;
/// 2. the tree head it carries is signed by a majority of the pinned member keys;
/// 3. its journal, re-hashed leaf by leaf, rebuilds the signed root, and its stored tree agrees;
/// 4. replaying that journal from entry 1 into an empty store reproduces its key-value state
///    (equal state digests at the snapshot's index) and, leaf for leaf, the same tree.
///
/// Opening the archive's state needs RocksDB: this module links FaunaStore, and `fctl` with it.
/// The files go to `workDirectory`, which is removed at the end whatever happens.
public struct BackupVerifier {
    /// What a verification found. `problem` nil: every check passed.
    public struct Report: Sendable {
        public var summary: SnapshotArchive.Summary
        /// Pinned members whose valid signature is on the head.
        public var signers: Int
        public var members: Int
        public var journalEntries: UInt64
        public var root: MerkleHash?
        public var stateDigest: [UInt8]
        public var replayedEntries: UInt64
    }

    /// Where the checks are, for progress lines.
    public enum Step: Sendable {
        case hashing(UInt64, UInt64?)
        case rehashingJournal
        case replaying(UInt64, UInt64)
        case comparingState
    }

    public var archivePath: String
    public var workDirectory: String
    public var clusterID: ClusterID?
    public var memberKeys: [[UInt8]]
    /// The file of the cluster's master key, for an archive of an encrypted node (encryption at
    /// rest, docs/SECURITY.md): its state opens only with it, and the replay is written sealed
    /// with it too.
    public var masterKeyFile: String?

    /// The key of `masterKeyFile`.
    var masterKey: MasterKey? {
        get throws(FaunaClientError) {
            guard let masterKeyFile else { return nil }
            do { return try MasterKey.load(path: masterKeyFile) } catch { throw FaunaClientError(.encryptionKey, error.message) }
        }
    }

    public init(archivePath: String, workDirectory: String, clusterID: ClusterID?, memberKeys: [[UInt8]]) {
        self.archivePath = archivePath
        self.workDirectory = workDirectory
        self.clusterID = clusterID
        self.memberKeys = memberKeys
    }

    /// Runs every check. A version 1 archive stops after its checksums (it carries no head).
    /// - Throws: `FaunaClientError` with code `verificationFailed` naming what does not
    ///   match, `io` for a damaged archive or a failed write.
    /// - Parameter verified: called once every check passed, with the archive's opened state
    ///   (its unpacked files are no longer the archive's: opening them let RocksDB write) and
    ///   what the archive holds.
    public func verify(
        progress: ((Step) -> Void)? = nil,
        verified: ((_ archive: Store, _ summary: SnapshotArchive.Summary) throws(FaunaClientError) -> Void)? = nil
    ) throws(FaunaClientError) -> Report {
        try? FileManager.default.removeItem(atPath: workDirectory)
        defer { try? FileManager.default.removeItem(atPath: workDirectory) }
        let stateDirectory = "\(workDirectory)/archive"
        let database = "\(stateDirectory)/db"
        try Self.makeDirectory(database)
        var out: FileWriter?
        let summary = try SnapshotArchive.verify(path: archivePath, progress: { progress?(.hashing($0, $1)) }) { name, piece throws(FaunaClientError) in
            guard let piece else {
                try out?.close()
                out = try FileWriter(path: "\(database)/\(name)")
                return
            }
            try out?.write(piece)
        }
        try out?.close()
        var report = Report(
            summary: summary, signers: 0, members: memberKeys.count, journalEntries: 0, root: nil, stateDigest: [], replayedEntries: 0)
        guard let signed = summary.signedHead else {
            if verified != nil { throw failed("an FNASNAP1 archive carries no signed tree head: its history cannot be proven, so it is not restored") }
            return report
        }

        // 2. The head: a majority of the pinned keys signed it.
        let keys = memberKeys.compactMap { try? Curve25519.Signing.PublicKey(rawRepresentation: $0) }
        guard !keys.isEmpty else { throw failed("no member keys to check the head's signatures against") }
        do {
            report.signers = try signed.verify(clusterID: clusterID ?? signed.head.clusterID, members: keys)
        } catch {
            throw failed("the archive's tree head of size \(signed.head.treeSize) (root \(signed.head.rootHash)) is not signed by a majority of the pinned members: \(error)")
        }
        report.root = signed.head.rootHash

        // 3. The journal rebuilds the signed root, and the stored tree agrees.
        let archive: Store
        var storeOptions = Store.Options()
        storeOptions.masterKey = try masterKey
        storeOptions.sealExisting = false  // an archive in clear is checked as it is
        do { archive = try Store(path: stateDirectory, options: storeOptions) } catch where error.code == .encryptionKey {
            throw FaunaClientError(.encryptionKey, "the archive's state: \(error.message)")
        } catch {
            throw failed("the archive's state does not open: \(error)")
        }
        defer { archive.close() }
        let size = signed.head.treeSize
        guard archive.appliedIndex.rawValue == size else {
            throw failed("the archive's state is at applied index \(archive.appliedIndex), its head at tree size \(size)")
        }
        let storedID: ClusterID?
        do { storedID = try archive.clusterID() } catch { throw failed("the archive's cluster ID does not decode: \(error)") }
        guard storedID == signed.head.clusterID else {
            throw failed("the archive's state is of cluster \(storedID.map { "\($0)" } ?? "none"), its head of \(signed.head.clusterID)")
        }
        progress?(.rehashingJournal)
        let audit: JournalAudit
        do { audit = try archive.auditJournal() } catch { throw failed("the archive's journal does not read back: \(error)") }
        guard audit.rebuiltRoot == signed.head.rootHash else {
            throw failed("the archive's journal (\(audit.entries) entries) hashes to root \(audit.rebuiltRoot), the signed head has \(signed.head.rootHash)")
        }
        if let problem = audit.problem { throw failed("the archive's stored tree differs from its journal: \(problem)") }
        report.journalEntries = audit.entries

        // 4. Replaying the journal reproduces the state and the tree.
        let replayDirectory = "\(workDirectory)/replay"
        try Self.makeDirectory(replayDirectory)
        let replay: Store
        do { replay = try Store(path: replayDirectory, options: storeOptions) } catch { throw FaunaClientError(.io, "cannot make the replay store in \(replayDirectory): \(error)") }
        defer { replay.close() }
        var conf = ConfState()
        var next: UInt64 = 1
        while next <= size {
            let entries: [Entry]
            do { entries = try archive.journalEntries(from: LogIndex(next), to: LogIndex(min(size, next + 1023) + 1), maxBytes: 8 << 20) } catch {
                throw failed("journal entries from \(next): \(error)")
            }
            guard let first = entries.first, first.index.rawValue == next else { throw failed("the journal has no entry \(next)") }
            // One apply per run of entries up to a membership change, with the membership after it.
            var run: [Entry] = []
            for e in entries {
                run.append(e)
                if e.type == .confChange, let change = ConfChange(decoding: e.data) {
                    conf = change.applied(to: conf)
                    try apply(run, conf, to: replay)
                    run = []
                }
            }
            if !run.isEmpty { try apply(run, nil, to: replay) }
            next += UInt64(entries.count)
            progress?(.replaying(next - 1, size))
        }
        report.replayedEntries = size
        progress?(.comparingState)
        let want: StateDigest
        let got: StateDigest
        do {
            want = try archive.stateDigest(at: Revision(size))
            got = try replay.stateDigest(at: Revision(size))
        } catch {
            throw failed("state digest: \(error)")
        }
        guard want == got else {
            throw failed("the archive's key-value state at \(size) is not what its journal produces (digest \(Self.hex(want.sha256)), replayed \(Self.hex(got.sha256)))")
        }
        report.stateDigest = want.sha256
        let replayedRoot: MerkleHash
        do { replayedRoot = try replay.makeMerkleProver().rootHash(atSize: size) } catch { throw failed("the replayed tree: \(error)") }
        guard replayedRoot == signed.head.rootHash else {
            throw failed("replaying the journal gives tree root \(replayedRoot), the signed head has \(signed.head.rootHash): an entry's recorded effects are not what it did")
        }
        try verified?(archive, summary)
        return report
    }

    private func apply(_ entries: [Entry], _ conf: ConfState?, to store: Store) throws(FaunaClientError) {
        do { try store.apply(entries, confState: conf) } catch {
            throw failed("replaying entries \(entries.first!.index)–\(entries.last!.index): \(error)")
        }
    }

    private func failed(_ why: String) -> FaunaClientError {
        FaunaClientError(.verificationFailed, "snapshot archive \(archivePath): \(why)")
    }

    static func makeDirectory(_ path: String) throws(FaunaClientError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw FaunaClientError(.io, "cannot make \(path): \(error.localizedDescription)")
        }
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}

/// Sequential writes of one extracted file; fsync is not needed for a scratch copy.
struct FileWriter {
    let path: String
    private let fd: Int32

    init(path: String) throws(FaunaClientError) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FaunaClientError(.io, "cannot create \(path): \(String(cString: strerror(errno)))") }
    }

    func write(_ bytes: [UInt8]) throws(FaunaClientError) {
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FaunaClientError(.io, "cannot write \(path): \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    func close() throws(FaunaClientError) {
        guard Glibc.close(fd) == 0 else { throw FaunaClientError(.io, "cannot close \(path): \(String(cString: strerror(errno)))") }
    }
}
