#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file descriptor with the few calls the snapshot archive needs; every failure is a typed
/// `io` error naming the path and errno; closed on deinit. Not Sendable: one owner at a time.
final class PosixFile {
    let path: String
    private let fd: Int32

    /// Opens `path` for writing, created or truncated, mode 0644.
    static func create(_ path: String) throws(FaunaClientError) -> PosixFile {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Self.failure("create", path) }
        return PosixFile(path: path, fd: fd)
    }

    /// Opens `path` for reading.
    static func openForReading(_ path: String) throws(FaunaClientError) -> PosixFile {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.failure("open", path) }
        return PosixFile(path: path, fd: fd)
    }

    /// Opens (creating, mode 0600) `path` and takes an exclusive `flock` on it, waiting for
    /// other holders; the lock goes with the returned file (closing it releases the lock).
    static func lockExclusively(_ path: String) throws(FaunaClientError) -> PosixFile {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Self.failure("open", path) }
        let file = PosixFile(path: path, fd: fd)
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw Self.failure("flock", path) }
        }
        return file
    }

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { _ = posixClose(fd) }

    /// Writes all of `bytes` at the current position.
    func write(_ bytes: [UInt8]) throws(FaunaClientError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Self.sysWrite(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.failure("write", path)
            }
            done += n
        }
    }

    /// Writes all of `bytes` at `offset` (the position is unchanged).
    func write(_ bytes: [UInt8], at offset: UInt64) throws(FaunaClientError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.failure("pwrite", path)
            }
            done += n
        }
    }

    /// Reads up to `count` bytes; empty at the end of the file.
    /// The file's size, or nil if fstat fails.
    var sizeBytes: UInt64? {
        var s = stat()
        guard fstat(fd, &s) == 0 else { return nil }
        return UInt64(s.st_size)
    }

    func read(upTo count: Int) throws(FaunaClientError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        while true {
            let n = buffer.withUnsafeMutableBytes { Self.sysRead(fd, $0.baseAddress!, count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.failure("read", path)
            }
            buffer.removeLast(count - n)
            return buffer
        }
    }

    /// Makes what was written durable.
    func sync() throws(FaunaClientError) {
        guard fsync(fd) == 0 else { throw Self.failure("fsync", path) }
    }

    /// Renames `from` to `to` atomically, then fsyncs the directory so the rename survives a crash.
    static func rename(_ from: String, to: String) throws(FaunaClientError) {
        guard posixRename(from, to) == 0 else { throw failure("rename to \(to)", from) }
        let slash = to.lastIndex(of: "/")
        let directory = slash.map { String(to[..<$0]) }.map { $0.isEmpty ? "/" : $0 } ?? "."
        let dirFD = open(directory, O_RDONLY | O_CLOEXEC)
        guard dirFD >= 0 else { throw failure("open directory", directory) }
        defer { _ = posixClose(dirFD) }
        guard fsync(dirFD) == 0 else { throw failure("fsync directory", directory) }
    }

    /// Removes `path`, ignoring failures (cleanup of a temporary file).
    static func removeQuietly(_ path: String) { _ = unlink(path) }

    private static func failure(_ operation: String, _ path: String) -> FaunaClientError {
        let code = errno
        return FaunaClientError(.io, "\(operation) \(path): \(String(cString: strerror(code))) (errno \(code))")
    }

    private static func sysWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
        Glibc.write(fd, pointer, count)
        #else
        Darwin.write(fd, pointer, count)
        #endif
    }

    private static func sysRead(_ fd: Int32, _ pointer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
        Glibc.read(fd, pointer, count)
        #else
        Darwin.read(fd, pointer, count)
        #endif
    }
}

#if canImport(Glibc)
private func posixClose(_ fd: Int32) -> Int32 { Glibc.close(fd) }
private func posixRename(_ a: String, _ b: String) -> Int32 { Glibc.rename(a, b) }
#else
private func posixClose(_ fd: Int32) -> Int32 { Darwin.close(fd) }
private func posixRename(_ a: String, _ b: String) -> Int32 { Darwin.rename(a, b) }
#endif
