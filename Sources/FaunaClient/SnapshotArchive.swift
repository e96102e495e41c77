import Crypto
import FaunaRPC
import FaunaRaft

/// The one-file archive `saveSnapshot` writes (docs/CLI.md "Snapshot archive"). All integers
/// big-endian:
///
/// ```
/// archive := header | file* | trailer
/// header  := "FNASNAP1" | u64 index | u64 term
/// file    := u8 0x46 ('F') | u16 nameLength | name (UTF-8) | u8 checksumLength |
///            checksum (the node's, as streamed) | u64 sizeBytes | u8[32] sha256(data) | data
/// trailer := u8 0x45 ('E') | u32 fileCount | u64 dataBytes | "FNASNAP1"
/// ```
///
/// `sizeBytes` and the SHA-256 (computed by the client) are written when the file's last chunk
/// has arrived, at their place in the file header, so the data streams to disk in one pass.
public enum SnapshotArchive {
    /// The first and the last 8 bytes of every archive.
    public static let magic: [UInt8] = Array("FNASNAP1".utf8)
    static let fileTag: UInt8 = 0x46
    static let trailerTag: UInt8 = 0x45

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
    }

    /// Reads and checks the archive at `path` in bounded memory (1 MiB at a time): structure,
    /// every file's SHA-256, and the node's checksum where it is SHA-256 sized.
    /// - Parameter progress: told the file bytes hashed so far and their total (the archive's
    ///   size, headers included), after each MiB.
    public static func verify(
        path: String, progress: ((_ hashed: UInt64, _ total: UInt64?) -> Void)? = nil
    ) throws(FaunaClientError) -> Summary {
        var reader = try ArchiveReader(path: path)
        let archiveBytes = reader.file.sizeBytes
        var hashed: UInt64 = 0
        guard try reader.bytes(8) == magic else { throw corrupt(path, "magic: want \"FNASNAP1\"") }
        let index = LogIndex(try reader.u64())
        let term = Term(try reader.u64())
        var files: [Entry] = []
        var total: UInt64 = 0
        while true {
            let tag = try reader.bytes(1)[0]
            if tag == trailerTag { break }
            guard tag == fileTag else { throw corrupt(path, "record tag: got \(tag), want 0x46 or 0x45") }
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
            while left > 0 {
                let piece = try reader.bytes(Int(min(left, 1 << 20)))
                hasher.update(data: piece)
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
        guard try reader.bytes(8) == magic, try reader.atEnd() else { throw corrupt(path, "trailer: want \"FNASNAP1\" and the end of the file") }
        return Summary(index: index, term: term, files: files, dataBytes: total)
    }

    static func corrupt(_ path: String, _ reason: String) -> FaunaClientError {
        FaunaClientError(.io, "snapshot archive \(path) is damaged: \(reason)")
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
