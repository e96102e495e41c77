import Crypto
import FaunaRPC
import FaunaRaft
import FaunaVerify

/// Writes a `snapshotSave` stream into a `SnapshotArchive`, chunk by chunk, into `path.tmp`;
/// `finish()` fsyncs and renames it to `path`. Checks the stream as it goes: one snapshot
/// (index, term), files one after another, offsets contiguous, one checksum per file, plain
/// file names, nothing after `lastOfSnapshot`. Not Sendable: one owner at a time.
final class SnapshotArchiveWriter {
    let path: String
    let temporaryPath: String
    private var file: PosixFile?
    private var position: UInt64 = 0
    private var snapshot: (index: LogIndex, term: Term)?
    private var current: OpenFile?
    private var names: Set<String> = []
    private(set) var entries: [SnapshotArchive.Entry] = []
    private var dataBytes: UInt64 = 0
    private(set) var isComplete = false

    private struct OpenFile {
        var name: String
        var checksum: [UInt8]
        /// Where the file's `sizeBytes` field is in the archive (the SHA-256 follows it).
        var sizeFieldOffset: UInt64
        var written: UInt64
        var hasher: SHA256
    }

    init(path: String) throws(FaunaClientError) {
        self.path = path
        self.temporaryPath = path + ".tmp"
        self.file = try PosixFile.create(temporaryPath)
    }

    /// Appends one chunk of the stream.
    func append(_ chunk: SnapshotChunk) throws(FaunaClientError) {
        guard !isComplete else { throw broken("got chunk of \(chunk.fileName) after the last of the snapshot") }
        if let snapshot {
            guard snapshot.index == chunk.index, snapshot.term == chunk.term else {
                throw broken("chunk of snapshot \(chunk.index)/\(chunk.term), want \(snapshot.index)/\(snapshot.term)")
            }
        } else {
            snapshot = (chunk.index, chunk.term)
            try emit(SnapshotArchive.magic + Self.be(chunk.index.rawValue, 8) + Self.be(chunk.term.rawValue, 8))
        }
        if current == nil { try open(chunk) }
        guard var open = current else { preconditionFailure("no open file after open()") }
        guard chunk.fileName == open.name, chunk.offset == open.written, chunk.fileChecksum == open.checksum else {
            throw broken("chunk \(chunk.fileName)@\(chunk.offset), want \(open.name)@\(open.written) with the same checksum")
        }
        try emit(chunk.data)
        open.hasher.update(data: chunk.data)
        open.written += UInt64(chunk.data.count)
        current = open
        if chunk.isLastOfFile { try close(open) }
        if chunk.isLastOfSnapshot { isComplete = true }
    }

    private func open(_ chunk: SnapshotChunk) throws(FaunaClientError) {
        let name = chunk.fileName
        let nameBytes = Array(name.utf8)
        guard (1...RPCLimits.fileNameBytesMax).contains(nameBytes.count), !nameBytes.contains(0x2F), !nameBytes.contains(0),
            name != ".", name != ".."
        else { throw broken("file name \"\(name)\": want a plain name of 1...255 bytes") }
        guard chunk.offset == 0 else { throw broken("first chunk of \(name) at offset \(chunk.offset), want 0") }
        guard names.insert(name).inserted else { throw broken("file \(name) sent twice") }
        guard names.count <= RPCLimits.snapshotFilesMax else { throw broken("more than \(RPCLimits.snapshotFilesMax) files") }
        guard chunk.fileChecksum.count <= RPCLimits.checksumBytesMax else { throw broken("checksum of \(name) longer than 64 bytes") }
        try emit([SnapshotArchive.fileTag] + Self.be(UInt64(nameBytes.count), 2) + nameBytes + [UInt8(chunk.fileChecksum.count)] + chunk.fileChecksum)
        current = OpenFile(name: name, checksum: chunk.fileChecksum, sizeFieldOffset: position, written: 0, hasher: SHA256())
        try emit([UInt8](repeating: 0, count: 8 + 32))  // sizeBytes and SHA-256, written in close()
    }

    private func close(_ open: OpenFile) throws(FaunaClientError) {
        let digest = Array(open.hasher.finalize())
        // The protocol leaves the algorithm to the node; a 32-byte checksum is SHA-256
        // (docs/PROTOCOL.md "Snapshot transfer").
        guard open.checksum.count != 32 || open.checksum == digest else {
            throw broken("file \(open.name): SHA-256 of the received data differs from the node's checksum")
        }
        try file?.write(Self.be(open.written, 8) + digest, at: open.sizeFieldOffset)
        entries.append(SnapshotArchive.Entry(name: open.name, sizeBytes: open.written, checksum: open.checksum, sha256: digest))
        dataBytes += open.written
        current = nil
    }

    /// The snapshot's applied index and term, once the stream has started.
    var snapshotIndex: (index: LogIndex, term: Term)? { snapshot }

    /// Writes the proof (the tree head at the snapshot's index and its signatures) and the
    /// trailer, fsyncs, renames into place and fsyncs the directory.
    func finish(proof: SignedTreeHead) throws(FaunaClientError) -> SnapshotArchive.Summary {
        guard isComplete, let snapshot, let file else { throw broken("the stream ended before the last chunk of the snapshot") }
        guard proof.head.treeSize == snapshot.index.rawValue, proof.signatures.count <= SnapshotArchive.signaturesMax else {
            throw broken("proof for tree size \(proof.head.treeSize), want \(snapshot.index)")
        }
        try emit([SnapshotArchive.proofTag] + SnapshotArchive.encodeProof(proof))
        try emit([SnapshotArchive.trailerTag] + Self.be(UInt64(entries.count), 4) + Self.be(dataBytes, 8) + SnapshotArchive.magic)
        try file.sync()
        self.file = nil
        try PosixFile.rename(temporaryPath, to: path)
        return SnapshotArchive.Summary(
            index: snapshot.index, term: snapshot.term, files: entries, dataBytes: dataBytes, version: 2, signedHead: proof)
    }

    /// Stops and removes the temporary file.
    func abort() {
        file = nil
        PosixFile.removeQuietly(temporaryPath)
    }

    private func emit(_ bytes: [UInt8]) throws(FaunaClientError) {
        guard let file else { throw broken("archive already closed") }
        try file.write(bytes)
        position += UInt64(bytes.count)
    }

    private func broken(_ reason: String) -> FaunaClientError {
        FaunaClientError(.internal, "snapshot stream: \(reason)")
    }

    static func be(_ value: UInt64, _ width: Int) -> [UInt8] {
        (0..<width).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }
}
