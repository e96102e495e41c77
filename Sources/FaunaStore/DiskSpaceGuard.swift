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
///
/// A `statvfs` per write was 1.6% of the applying thread at one client, so a check may reuse
/// the last figure: only while it is younger than `sampleAgeNanoseconds` and, after the bytes
/// checked since, still leaves `sampledHeadroom` beyond the reserve. Whatever else writes to the
/// disk meanwhile (RocksDB's flushes and compactions, other programs) would have to write that
/// headroom within the sample's age to slip past; near the reserve every check calls `statvfs`.
struct DiskSpaceGuard: Sendable {
    let path: String
    let freeBytesMin: UInt64
    private let sample = FreeSpaceSample()

    /// Free space beyond the reserve above which a recent sample is trusted.
    static let sampledHeadroom: UInt64 = 256 << 20
    /// How long a sample is trusted.
    static let sampleAgeNanoseconds: UInt64 = 50_000_000

    init(path: String, freeBytesMin: UInt64) {
        self.path = path
        self.freeBytesMin = freeBytesMin
    }

    /// Free bytes available to unprivileged writers, or nil if statvfs fails.
    func freeBytes() -> UInt64? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return UInt64(s.f_bavail) * UInt64(s.f_frsize)
    }

    /// Throws `.diskFull` (fail-stop) unless `adding` more bytes leaves `freeBytesMin` free.
    func check(adding bytes: Int, operation: String) throws(StoreError) {
        guard freeBytesMin > 0 else { return }
        let need = UInt64(max(bytes, 0))
        let now = FreeSpaceSample.monotonicNanoseconds()
        if sample.spend(need, now: now, keeping: freeBytesMin + Self.sampledHeadroom) { return }
        guard let free = freeBytes() else {
            throw StoreError(.fileSystem, "\(operation): statvfs \(path) failed (errno \(errno))")
        }
        sample.record(free, now: now)
        if free < freeBytesMin + need {
            throw StoreError(
                .diskFull,
                "\(operation): disk nearly full at \(path): \(free) bytes free, need \(bytes) + reserve \(freeBytesMin)")
        }
    }
}

/// The last `statvfs` figure of a `DiskSpaceGuard` and the bytes checked since (shared by the
/// log writer and the applying thread).
final class FreeSpaceSample: @unchecked Sendable {
    private var lock = pthread_mutex_t()
    private var free: UInt64 = 0
    private var at: UInt64 = 0
    private var spent: UInt64 = 0

    init() { pthread_mutex_init(&lock, nil) }
    deinit { pthread_mutex_destroy(&lock) }

    static func monotonicNanoseconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    /// Counts `bytes` against the sample and returns true if the sample is younger than
    /// `DiskSpaceGuard.sampleAgeNanoseconds` and leaves more than `keeping` free after them;
    /// false (nothing counted) if a fresh `statvfs` is needed.
    func spend(_ bytes: UInt64, now: UInt64, keeping: UInt64) -> Bool {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        guard at != 0, now &- at < DiskSpaceGuard.sampleAgeNanoseconds else { return false }
        let (left, under) = free.subtractingReportingOverflow(spent &+ bytes)
        guard !under, left > keeping else { return false }
        spent &+= bytes
        return true
    }

    func record(_ freeBytes: UInt64, now: UInt64) {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        free = freeBytes
        at = now
        spent = 0
    }
}
