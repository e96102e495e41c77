import Crypto
import FaunaAudit
import FaunaStore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The node's Ed25519 tree-head signing key: `<data>/node.key`, created on first start with
/// mode 0600. It holds the 32-byte private key seed, or, on a node with encryption at rest, the
/// seed sealed by the master key (`MasterKey.sealFile`; docs/SECURITY.md "Encryption at rest").
/// It lives beside the database, not in it, so a snapshot install or a restored backup never
/// replaces a node's identity.
enum NodeKey {
    static let fileName = "node.key"
    /// What a sealed key is authenticated with.
    static let sealContext = "fauna node key v1"

    /// Loads the key, creating it if the file does not exist. With `master`, a key in clear is
    /// sealed in place, and one sealed by `previous` is sealed again by `master` (each said to
    /// `notice`).
    /// - Throws: `NodeStartError` if the file is unreadable, readable by group or others (like
    ///   ssh, we refuse a key others may have copied), not a 32-byte seed, sealed without a
    ///   master key configured, or sealed by another master key.
    static func loadOrCreate(
        dataDirectory: String, master: MasterKey? = nil, previous: MasterKey? = nil, notice: (String) -> Void = { _ in }
    ) throws -> TreeHeadSigner {
        let path = "\(dataDirectory)/\(fileName)"
        if let signer = try load(path, master: master, previous: previous, notice: notice) { return signer }
        let key = Curve25519.Signing.PrivateKey()
        try write(path, bytes: try stored(Array(key.rawRepresentation), master: master, path: path), replacing: false)
        // Read back what is on disk: a racing second start must not sign with another key.
        guard let signer = try load(path, master: master, previous: nil, notice: notice) else {
            throw NodeStartError("\(path): vanished after it was created")
        }
        return signer
    }

    private static func load(_ path: String, master: MasterKey?, previous: MasterKey?, notice: (String) -> Void) throws -> TreeHeadSigner? {
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
        let file = [UInt8](data)
        var seed = file
        var rewrite: String?
        if let sealedBy = MasterKey.sealedFileFingerprint(file) {
            guard let master else {
                throw NodeStartError(
                    "\(path): the signing key is sealed by master key \(sealedBy) and this node has no master key: "
                        + "configure [encryption] (docs/SECURITY.md)")
            }
            // The previous master key only for a key it sealed (a change of master key under way).
            let opener = previous.flatMap { sealedBy != master.fingerprintHex && sealedBy == $0.fingerprintHex ? $0 : nil } ?? master
            do {
                seed = try opener.openFile(file, context: sealContext)
            } catch {
                throw NodeStartError("\(path): \(error.message)")
            }
            if opener.fingerprintHex != master.fingerprintHex { rewrite = "signing key sealed again by the new master key" }
        } else if master != nil {
            rewrite = "signing key sealed by the master key (it was in clear)"
        }
        guard seed.count == 32, let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw NodeStartError("\(path): got \(seed.count) bytes, want a 32-byte Ed25519 seed, or one sealed by the master key")
        }
        if let rewrite, let master {
            try write(path, bytes: try stored(seed, master: master, path: path), replacing: true)
            notice(rewrite)
        }
        return TreeHeadSigner(privateKey: key)
    }

    /// What the file holds for `seed`: the seed, or the seed sealed by `master`.
    private static func stored(_ seed: [UInt8], master: MasterKey?, path: String) throws -> [UInt8] {
        guard let master else { return seed }
        do {
            return try master.sealFile(seed, context: sealContext)
        } catch {
            throw NodeStartError("\(path): \(error.message)")
        }
    }

    /// Writes the key aside, fsyncs it, then links it into place (`link` fails if the name
    /// exists, so a racing start keeps the first key) or, `replacing`, renames it over the
    /// old file (the store's lock keeps a second start out by then), and fsyncs the directory:
    /// a crash leaves either no key file, the old one or the whole new one, never an empty one.
    private static func write(_ path: String, bytes: [UInt8], replacing: Bool) throws {
        let temporary = "\(path).tmp.\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw NodeStartError("\(temporary): cannot create the signing key: \(String(cString: strerror(errno)))")
        }
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = written == bytes.count && fsync(fd) == 0
        let failure = errno
        close(fd)
        defer { unlink(temporary) }
        guard synced else {
            throw NodeStartError("\(temporary): cannot write the signing key: \(String(cString: strerror(failure)))")
        }
        if replacing {
            if rename(temporary, path) != 0 {
                throw NodeStartError("\(path): cannot replace the signing key: \(String(cString: strerror(errno)))")
            }
        } else if link(temporary, path) != 0 && errno != EEXIST {  // EEXIST: another start won the race
            throw NodeStartError("\(path): cannot create the signing key: \(String(cString: strerror(errno)))")
        }
        let dir = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }
}
