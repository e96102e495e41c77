import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few POSIX file operations snapshots need (explicit fsync of files and directories,
/// positioned reads), with errors naming the path. `writeFile` and `rename` also serve
/// FaunaNode's small files (`package`).
package enum FileIO {
    static func error(_ op: String, _ path: String) -> StoreError {
        StoreError(.fileSystem, "\(op) \(path): \(String(cString: strerror(errno))) (errno \(errno))")
    }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    static func createDirectory(_ path: String) throws(StoreError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw StoreError(.fileSystem, "create directory \(path): \(error)")
        }
    }

    static func removeTree(_ path: String) throws(StoreError) {
        guard exists(path) else { return }
        do { try FileManager.default.removeItem(atPath: path) } catch {
            throw StoreError(.fileSystem, "remove \(path): \(error)")
        }
    }

    package static func rename(_ from: String, _ to: String) throws(StoreError) {
        guard Glibc.rename(from, to) == 0 else { throw error("rename to \(to):", from) }
    }

    /// fsyncs a directory so renames and creations inside it are durable.
    static func fsyncDirectory(_ path: String) throws(StoreError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw error("open directory", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw error("fsync directory", path) }
    }

    /// The regular files directly inside `path`, sorted by name.
    static func regularFiles(in path: String) throws(StoreError) -> [String] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
            throw StoreError(.fileSystem, "list \(path): \(error)")
        }
        return names.filter { name in
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: "\(path)/\(name)", isDirectory: &isDir) && !isDir.boolValue
        }.sorted()
    }

    /// Size and SHA-256 of a file, read in 1 MiB pieces.
    static func sizeAndSHA256(of path: String) throws(StoreError) -> (UInt64, [UInt8]) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw error("open", path) }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total: UInt64 = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n >= 0 else { throw error("read", path) }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            total += UInt64(n)
        }
        return (total, Array(hasher.finalize()))
    }

    /// Writes `bytes` to a new file (replacing any) and fsyncs it.
    package static func writeFile(_ path: String, _ bytes: [UInt8]) throws(StoreError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw error("create", path) }
        defer { close(fd) }
        try writeAll(fd, bytes[...], path)
        guard fsync(fd) == 0 else { throw error("fsync", path) }
    }

    static func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>, _ path: String) throws(StoreError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw error("write", path)
            }
            done += n
        }
    }
}
