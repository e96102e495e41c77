import FaunaRaft
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The sending side of a state snapshot: a RocksDB checkpoint taken at the applied index,
/// described by `manifest` and read out as chunks of at most `SnapshotChunk.bytesMax` bytes.
/// Removes its checkpoint on `close()` / deinit. Not thread-safe.
public final class SnapshotSource {
    public let manifest: SnapshotManifest
    /// The checkpoint directory (a hard-link copy of the SST files).
    public let directory: String
    private var fileIndex = 0
    private var offset: UInt64 = 0
    private var fd: Int32 = -1
    private var isClosed = false

    init(manifest: SnapshotManifest, directory: String) {
        self.manifest = manifest
        self.directory = directory
    }

    deinit { close() }

    /// The next chunk, or nil after the last one.
    public func nextChunk(maxBytes: Int = SnapshotChunk.bytesMax) throws(StoreError) -> SnapshotChunk? {
        precondition(maxBytes > 0 && maxBytes <= SnapshotChunk.bytesMax, "chunk maxBytes \(maxBytes)")
        guard !isClosed else { throw StoreError(.closed, "snapshot source closed") }
        while fileIndex < manifest.files.count {
            let file = manifest.files[fileIndex]
            let path = "\(directory)/\(file.name)"
            if fd < 0 {
                fd = open(path, O_RDONLY)
                guard fd >= 0 else { throw FileIO.error("open", path) }
            }
            let want = Int(min(UInt64(maxBytes), file.sizeBytes - offset))
            if want == 0 && (offset > 0 || file.sizeBytes > 0) {
                Glibc.close(fd)
                fd = -1
                fileIndex += 1
                offset = 0
                continue
            }
            var data = [UInt8](repeating: 0, count: want)
            var got = 0
            while got < want {
                let n = data.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, want - got, off_t(offset) + off_t(got)) }
                guard n > 0 else {
                    if n < 0 && errno == EINTR { continue }
                    throw n == 0 ? StoreError(.fileSystem, "read \(path): file shorter than its manifest size") : FileIO.error("read", path)
                }
                got += n
            }
            let chunk = SnapshotChunk(fileIndex: fileIndex, offset: offset, data: data)
            offset += UInt64(want)
            if file.sizeBytes == 0 {
                // An empty file is one empty chunk, so the receiver creates it.
                Glibc.close(fd)
                fd = -1
                fileIndex += 1
                offset = 0
            }
            return chunk
        }
        return nil
    }

    /// Closes the open file and removes the checkpoint directory.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        if fd >= 0 { Glibc.close(fd) }
        try? FileIO.removeTree(directory)
    }
}

/// A RocksDB checkpoint of the applied state, not yet hashed: `Store.makeCheckpoint()` takes it
/// quickly (hard links, under the apply lock); `SnapshotSource(checkpoint:)` hashes its files,
/// which reads every byte, on whatever thread the caller picks, without touching the store.
public struct Checkpoint: Sendable {
    public let directory: String
    public let metadata: SnapshotMetadata
}

extension Store {
    /// Takes a snapshot of the applied state: a RocksDB checkpoint made while no apply is in
    /// flight (so it holds exactly the entries up to `appliedIndex`), hashed file by file.
    public func makeSnapshotSource() throws(StoreError) -> SnapshotSource {
        try SnapshotSource(checkpoint: try makeCheckpoint())
    }

    /// The checkpoint part of `makeSnapshotSource()`: fast, and the only part that needs the
    /// store.
    public func makeCheckpoint() throws(StoreError) -> Checkpoint {
        let dir = "\(path)/snapshots/out-\(UUID().uuidString)"
        try FileIO.createDirectory("\(path)/snapshots")
        let state: AppliedState
        do {
            applyLock.lock()
            defer { applyLock.unlock() }
            state = applied
            try rocks { () throws(RocksDBError) in try db.createCheckpoint(at: dir) }
        }
        return Checkpoint(
            directory: dir, metadata: SnapshotMetadata(index: state.index, term: state.term, confState: state.confState))
    }
}

extension SnapshotSource {
    /// Hashes the files of `checkpoint` (removed again if this fails).
    public convenience init(checkpoint: Checkpoint) throws(StoreError) {
        var files: [SnapshotManifest.File] = []
        do {
            // LOCK and RocksDB's info logs are per-instance, not state.
            for name in try FileIO.regularFiles(in: checkpoint.directory) where name != "LOCK" && !name.hasPrefix("LOG") {
                let (size, hash) = try FileIO.sizeAndSHA256(of: "\(checkpoint.directory)/\(name)")
                files.append(SnapshotManifest.File(name: name, sizeBytes: size, sha256: hash))
            }
        } catch {
            try? FileIO.removeTree(checkpoint.directory)
            throw error
        }
        self.init(manifest: SnapshotManifest(metadata: checkpoint.metadata, files: files), directory: checkpoint.directory)
    }
}
