import Crypto
import FaunaRPC
import FaunaRaft
import FaunaVerify

/// The one-file archive `saveSnapshot` writes (docs/CLI.md "Snapshot archive"). All integers
/// big-endian:
///
/// ```
/// archive := header | file* | proof | trailer        (FNASNAP2; FNASNAP1 has no proof)
/// header  := magic | u64 index | u64 term
/// file    := u8 0x46 ('F') | u16 nameLength | name (UTF-8) | u8 checksumLength |
///            checksum (the node's, as streamed) | u64 sizeBytes | u8[32] sha256(data) | data
/// proof   := u8 0x50 ('P') | u16 signatureCount | u8[72] tree head (TreeHead.canonicalBytes,
///            tree size = index) | signatureCount × (u8[32] public key | u8[64] signature)
/// trailer := u8 0x45 ('E') | u32 fileCount | u64 dataBytes | magic
/// ```
///
/// `sizeBytes` and the SHA-256 (computed by the client) are written when the file's last chunk
/// has arrived, at their place in the file header, so the data streams to disk in one pass. The
/// proof is the tree head at the snapshot's applied index with the members' signatures over
/// it, gathered once the stream has ended: what `fctl snapshot verify` checks the archive's
/// journal, tree and state against (docs/AUDIT.md "Backups").
public enum SnapshotArchive {
    /// The first and the last 8 bytes of an archive of this version (with a proof).
    public static let magic: [UInt8] = Array("FNASNAP2".utf8)
    /// The magic of the first version (no proof); still read.
    public static let magicV1: [UInt8] = Array("FNASNAP1".utf8)
    static let fileTag: UInt8 = 0x46
    static let proofTag: UInt8 = 0x50
    static let trailerTag: UInt8 = 0x45
    /// Signatures in a proof at most (members of a cluster are far fewer).
    static let signaturesMax = 1024

    /// One file of an archive.
    public struct Entry: Hashable, Sendable {
        /// The node's file name.
        public var name: String
        /// Its size.
        public var sizeBytes: UInt64
        /// The node's checksum of the file, as streamed (SHA-256 when 32 bytes).
        public var checksum: [UInt8]
        /// The SHA-256 of the data, computed by the client.
        public var sha256: [UInt8]
    }

    /// What an archive holds.
    public struct Summary: Hashable, Sendable {
        /// The snapshot's last included index.
        public var index: LogIndex
        /// Its term.
        public var term: Term
        /// The files, in stream order.
        public var files: [Entry]
        /// The sum of the files' sizes.
        public var dataBytes: UInt64
        /// 1 (FNASNAP1) or 2 (FNASNAP2).
        public var version: Int
        /// The tree head at `index` with the signatures gathered for it (nil in version 1).
        /// Not checked here: `SignedTreeHead.verify` against pinned member keys does that.
        public var signedHead: SignedTreeHead?
    }

    /// Reads and checks the archive at `path` in bounded memory (1 MiB at a time): structure,
    /// every file's SHA-256, and the node's checksum where it is SHA-256 sized.
    /// - Parameter progress: told the file bytes hashed so far and their total (the archive's
    ///   size, headers included), after each MiB.
    /// - Parameter extract: given each file's name, then its data piece by piece (a piece of
    ///   the name's file follows its name; nothing else interleaves), to write the files
    ///   elsewhere in the same pass. A file whose SHA-256 differs throws after its data went
    ///   to `extract`: the caller discards what it wrote.
    public static func verify(
        path: String, progress: ((_ hashed: UInt64, _ total: UInt64?) -> Void)? = nil,
        extract: ((_ file: String, _ piece: [UInt8]?) throws(FaunaClientError) -> Void)? = nil
    ) throws(FaunaClientError) -> Summary {
        var reader = try ArchiveReader(path: path)
        let archiveBytes = reader.file.sizeBytes
        var hashed: UInt64 = 0
        let opening = try reader.bytes(8)
        let version: Int
        if opening == magic {
            version = 2
        } else if opening == magicV1 {
            version = 1
        } else {
            throw corrupt(path, "magic: want \"FNASNAP2\" or \"FNASNAP1\" (not a Fauna snapshot archive?)")
        }
        let index = LogIndex(try reader.u64())
        let term = Term(try reader.u64())
        var files: [Entry] = []
        var total: UInt64 = 0
        var signedHead: SignedTreeHead?
        while true {
            let tag = try reader.bytes(1)[0]
            if tag == trailerTag { break }
            if tag == proofTag && version == 2 && signedHead == nil {
                signedHead = try readProof(&reader, path: path, index: index)
                continue
            }
            guard tag == fileTag, signedHead == nil else {
                throw corrupt(path, "record tag: got 0x\(String(tag, radix: 16)) after \(files.count) files, want 0x46 (file), 0x50 (proof) or 0x45 (end)")
            }
            guard files.count < RPCLimits.snapshotFilesMax else { throw corrupt(path, "more than \(RPCLimits.snapshotFilesMax) files") }
            let nameLength = Int(try reader.u16())
            let nameBytes = try reader.bytes(nameLength)
            let name = String(decoding: nameBytes, as: UTF8.self)
            guard Array(name.utf8) == nameBytes else { throw corrupt(path, "file name is not UTF-8") }
            let checksumLength = Int(try reader.bytes(1)[0])
            let checksum = try reader.bytes(checksumLength)
            let size = try reader.u64()
            let recorded = try reader.bytes(32)
            var hasher = SHA256()
            var left = size
            try extract?(name, nil)
            while left > 0 {
                let piece = try reader.bytes(Int(min(left, 1 << 20)))
                hasher.update(data: piece)
                try extract?(name, piece)
                left -= UInt64(piece.count)
                hashed += UInt64(piece.count)
                progress?(hashed, archiveBytes)
            }
            let digest = Array(hasher.finalize())
            guard digest == recorded else { throw corrupt(path, "file \(name): SHA-256 differs from the recorded one") }
            guard checksum.count != 32 || checksum == digest else { throw corrupt(path, "file \(name): node checksum differs from its SHA-256") }
            files.append(Entry(name: name, sizeBytes: size, checksum: checksum, sha256: digest))
            total += size
        }
        let count = try reader.u32()
        let dataBytes = try reader.u64()
        guard count == files.count, dataBytes == total else {
            throw corrupt(path, "trailer: got \(count) files / \(dataBytes) bytes, want \(files.count) / \(total)")
        }
        let closing = version == 2 ? magic : magicV1
        guard try reader.bytes(8) == closing, try reader.atEnd() else {
            throw corrupt(path, "trailer: want \"\(String(decoding: closing, as: UTF8.self))\" and the end of the file")
        }
        guard version == 1 || signedHead != nil else { throw corrupt(path, "no proof record (0x50) before the trailer") }
        return Summary(index: index, term: term, files: files, dataBytes: total, version: version, signedHead: signedHead)
    }

    /// The proof record's bytes after its tag.
    static func encodeProof(_ signed: SignedTreeHead) -> [UInt8] {
        var out = SnapshotArchiveWriter.be(UInt64(signed.signatures.count), 2) + signed.head.canonicalBytes
        for s in signed.signatures { out += s.publicKey + s.signature }
        return out
    }

    private static func readProof(_ reader: inout ArchiveReader, path: String, index: LogIndex) throws(FaunaClientError) -> SignedTreeHead {
        let count = Int(try reader.u16())
        guard count <= signaturesMax else { throw corrupt(path, "proof: \(count) signatures, want ≤ \(signaturesMax)") }
        let head: TreeHead
        do { head = try TreeHead(canonicalBytes: try reader.bytes(TreeHead.canonicalSizeBytes)) } catch let e as FaunaClientError {
            throw e
        } catch {
            throw corrupt(path, "proof: the tree head does not decode: \(error)")
        }
        guard head.treeSize == index.rawValue else {
            throw corrupt(path, "proof: the tree head is for size \(head.treeSize), the snapshot's applied index is \(index)")
        }
        var signatures: [TreeHeadSignature] = []
        for _ in 0..<count {
            signatures.append(TreeHeadSignature(publicKey: try reader.bytes(32), signature: try reader.bytes(64)))
        }
        return SignedTreeHead(head: head, signatures: signatures)
    }

    /// A damaged archive does not verify: `verificationFailed` (fctl's exit 6), saying what broke.
    static func corrupt(_ path: String, _ reason: String) -> FaunaClientError {
        FaunaClientError(.verificationFailed, "snapshot archive \(path) is damaged: \(reason)")
    }
}

/// Buffered sequential reads of an archive.
private struct ArchiveReader {
    let file: PosixFile
    var buffer: [UInt8] = []
    var position = 0

    init(path: String) throws(FaunaClientError) { file = try PosixFile.openForReading(path) }

    mutating func bytes(_ count: Int) throws(FaunaClientError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            if position == buffer.count {
                buffer = try file.read(upTo: 1 << 20)
                position = 0
                guard !buffer.isEmpty else { throw SnapshotArchive.corrupt(file.path, "truncated") }
            }
            let take = min(count - out.count, buffer.count - position)
            out.append(contentsOf: buffer[position..<position + take])
            position += take
        }
        return out
    }

    mutating func atEnd() throws(FaunaClientError) -> Bool {
        if position < buffer.count { return false }
        buffer = try file.read(upTo: 1)
        position = 0
        return buffer.isEmpty
    }

    mutating func u16() throws(FaunaClientError) -> UInt16 { UInt16(try uint(2)) }
    mutating func u32() throws(FaunaClientError) -> UInt32 { UInt32(try uint(4)) }
    mutating func u64() throws(FaunaClientError) -> UInt64 { try uint(8) }

    private mutating func uint(_ width: Int) throws(FaunaClientError) -> UInt64 {
        try bytes(width).reduce(0) { $0 << 8 | UInt64($1) }
    }
}
