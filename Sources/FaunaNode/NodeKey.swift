import Crypto
import FaunaAudit
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The node's Ed25519 tree-head signing key: `<data>/node.key`, the 32-byte private key seed,
/// created on first start with mode 0600 and never rewritten. It lives beside the database,
/// not in it, so a snapshot install or a restored backup never replaces a node's identity.
enum NodeKey {
    static let fileName = "node.key"

    /// Loads the key, creating it if the file does not exist.
    /// - Throws: `NodeStartError` if the file is unreadable, not 32 bytes, or readable by
    ///   group or others (like ssh, we refuse a key others may have copied).
    static func loadOrCreate(dataDirectory: String) throws -> TreeHeadSigner {
        let path = "\(dataDirectory)/\(fileName)"
        if let signer = try load(path) { return signer }
        let key = Curve25519.Signing.PrivateKey()
        try create(path, bytes: Array(key.rawRepresentation))
        // Read back what is on disk: a racing second start must not sign with another key.
        guard let signer = try load(path) else { throw NodeStartError("\(path): vanished after it was created") }
        return signer
    }

    private static func load(_ path: String) throws -> TreeHeadSigner? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw NodeStartError("\(path): cannot stat: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw NodeStartError(
                "\(path): mode \(String(info.st_mode & 0o777, radix: 8)) lets others read the signing key; want 600 (chmod 600 \(path))")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw NodeStartError("\(path): cannot read the signing key")
        }
        guard data.count == 32, let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: data) else {
            throw NodeStartError("\(path): got \(data.count) bytes, want a 32-byte Ed25519 seed")
        }
        return TreeHeadSigner(privateKey: key)
    }

    /// Writes the key aside, fsyncs it, then links it into place (`link` fails if the name
    /// exists, so a racing start keeps the first key), fsyncs the directory: a crash leaves
    /// either no key file or a whole one, never an empty one.
    private static func create(_ path: String, bytes: [UInt8]) throws {
        let temporary = "\(path).tmp.\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw NodeStartError("\(temporary): cannot create the signing key: \(String(cString: strerror(errno)))")
        }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = written == bytes.count && fsync(fd) == 0
        let failure = errno
        close(fd)
        defer { unlink(temporary) }
        guard synced else {
            throw NodeStartError("\(temporary): cannot write the signing key: \(String(cString: strerror(failure)))")
        }
        if link(temporary, path) != 0 && errno != EEXIST {  // EEXIST: another start won the race
            throw NodeStartError("\(path): cannot create the signing key: \(String(cString: strerror(errno)))")
        }
        let dir = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }
}
