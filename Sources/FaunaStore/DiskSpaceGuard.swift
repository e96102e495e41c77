#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Refuses a write when the data directory's filesystem has less than `freeBytesMin` free,
/// before RocksDB sees ENOSPC.
///
/// Why: Debian's librocksdb 7.8.3 is built with assertions, and a synced WAL write that fails
/// with ENOSPC trips `WritableFileWriter::AssertFalseAndGetStatusForPrevError` and aborts the
/// process (seen in this repository's ENOSPC test). Stopping on our own, with a typed error,
/// while there is still room is the clear fail-stop docs/RELIABILITY.md promises. A disk that fills
/// between this check and the write still stops the node, by that abort: no acknowledged write
/// is lost either way.
struct DiskSpaceGuard: Sendable {
    let path: String
    let freeBytesMin: UInt64

    /// Free bytes available to unprivileged writers, or nil if statvfs fails.
    func freeBytes() -> UInt64? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return UInt64(s.f_bavail) * UInt64(s.f_frsize)
    }

    /// Throws `.diskFull` (fail-stop) unless `adding` more bytes leaves `freeBytesMin` free.
    func check(adding bytes: Int, operation: String) throws(StoreError) {
        guard freeBytesMin > 0 else { return }
        guard let free = freeBytes() else {
            throw StoreError(.fileSystem, "\(operation): statvfs \(path) failed (errno \(errno))")
        }
        if free < freeBytesMin + UInt64(max(bytes, 0)) {
            throw StoreError(
                .diskFull,
                "\(operation): disk nearly full at \(path): \(free) bytes free, need \(bytes) + reserve \(freeBytesMin)")
        }
    }
}
