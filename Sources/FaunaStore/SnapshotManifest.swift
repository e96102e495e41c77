import FaunaRaft

/// Describes a state snapshot: the applied index it was taken at and every file of the
/// RocksDB checkpoint with its size and SHA-256. Sent first; chunks follow (docs/STORAGE.md
/// "Snapshots"). Transport-agnostic: `encoded` / `init(decoding:)` are the wire form.
public struct SnapshotManifest: Sendable, Hashable {
    public struct File: Sendable, Hashable {
        /// A plain file name inside the checkpoint directory (no separators, not "." or "..").
        public var name: String
        public var sizeBytes: UInt64
        /// SHA-256 of the whole file.
        public var sha256: [UInt8]

        public init(name: String, sizeBytes: UInt64, sha256: [UInt8]) {
            self.name = name
            self.sizeBytes = sizeBytes
            self.sha256 = sha256
        }
    }

    public static let formatVersion: UInt8 = 1
    public static let filesMax = 100_000
    public static let nameBytesMax = 255

    /// The snapshot's Raft metadata: last applied index, its term, and the membership.
    public var metadata: SnapshotMetadata
    public var files: [File]

    public var totalBytes: UInt64 { files.reduce(0) { $0 + $1.sizeBytes } }

    /// `u8 version=1 | u64 index | u64 term | conf state | u32 fileCount | per file:
    /// u16 nameLength | name | u64 size | 32 bytes sha256`.
    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: 64 + files.count * 64)
        w.u8(Self.formatVersion)
        w.u64(metadata.index.rawValue)
        w.u64(metadata.term.rawValue)
        RaftLogCodec.appendConfState(metadata.confState, to: &w)
        w.u32(UInt32(files.count))
        for f in files {
            let name = Array(f.name.utf8)
            w.u8(UInt8(name.count >> 8))
            w.u8(UInt8(name.count & 0xFF))
            w.raw(name)
            w.u64(f.sizeBytes)
            w.raw(f.sha256)
        }
        return w.bytes
    }

    public init(metadata: SnapshotMetadata, files: [File]) {
        self.metadata = metadata
        self.files = files
    }

    /// Decodes and validates a manifest received from a peer.
    public init(decoding bytes: [UInt8]) throws(StoreError) {
        do throws(DecodeError) {
            var r = ByteReader(bytes)
            try r.version(Self.formatVersion)
            let index = try r.u64(), term = try r.u64()
            let conf = try RaftLogCodec.readConfState(&r)
            let count = Int(try r.u32())
            guard count <= Self.filesMax, count <= r.remaining / 42 else {
                throw DecodeError(reason: "file count: got \(count), want ≤ \(min(Self.filesMax, r.remaining / 42))")
            }
            var files: [File] = []
            for _ in 0..<count {
                let length = Int(try r.u8()) << 8 | Int(try r.u8())
                guard length >= 1, length <= Self.nameBytesMax, length <= r.remaining else {
                    throw DecodeError(reason: "file name length: got \(length), want 1...\(Self.nameBytesMax)")
                }
                var nameBytes: [UInt8] = []
                for _ in 0..<length { nameBytes.append(try r.u8()) }
                let name = String(decoding: nameBytes, as: UTF8.self)
                guard Self.isSafeName(name), Array(name.utf8) == nameBytes else {
                    throw DecodeError(reason: "file name: got \(name.debugDescription), want a plain file name")
                }
                let size = try r.u64()
                var hash: [UInt8] = []
                for _ in 0..<32 { hash.append(try r.u8()) }
                files.append(File(name: name, sizeBytes: size, sha256: hash))
            }
            try r.end()
            guard Set(files.map(\.name)).count == files.count else {
                throw DecodeError(reason: "duplicate file names")
            }
            self.init(metadata: SnapshotMetadata(index: LogIndex(index), term: Term(term), confState: conf), files: files)
        } catch {
            throw StoreError(.snapshotInvalid, "snapshot manifest: \(error.reason)")
        }
    }

    static func isSafeName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\0")
            && name.utf8.count <= nameBytesMax
    }
}

/// One piece of one snapshot file. Chunks of a file arrive in order (`offset` equals the bytes
/// received so far); at most `SnapshotChunk.bytesMax` data bytes each.
public struct SnapshotChunk: Sendable, Hashable {
    public static let bytesMax = 1 << 20
    public static let formatVersion: UInt8 = 1

    /// Position of the file in `SnapshotManifest.files`.
    public var fileIndex: Int
    public var offset: UInt64
    public var data: [UInt8]

    public init(fileIndex: Int, offset: UInt64, data: [UInt8]) {
        self.fileIndex = fileIndex
        self.offset = offset
        self.data = data
    }

    /// `u8 version=1 | u32 fileIndex | u64 offset | u32 length | data`.
    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: 17 + data.count)
        w.u8(Self.formatVersion)
        w.u32(UInt32(fileIndex))
        w.u64(offset)
        w.u32(UInt32(data.count))
        w.raw(data)
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws(StoreError) {
        do throws(DecodeError) {
            var r = ByteReader(bytes)
            try r.version(Self.formatVersion)
            let file = Int(try r.u32())
            let offset = try r.u64()
            let length = Int(try r.u32())
            guard length <= Self.bytesMax, length == r.remaining else {
                throw DecodeError(reason: "chunk length: got \(length) (\(r.remaining) present), want ≤ \(Self.bytesMax)")
            }
            self.init(fileIndex: file, offset: offset, data: r.rest())
        } catch {
            throw StoreError(.snapshotInvalid, "snapshot chunk: \(error.reason)")
        }
    }
}
