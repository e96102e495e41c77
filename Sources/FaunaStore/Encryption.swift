import CAESGCM
import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The master key of encryption at rest (docs/SECURITY.md "Encryption at rest", ADR 0013): 32
/// bytes, written as 64 hex digits in a file only its owner may read. It never encrypts values
/// itself: it wraps the data keys of a `Keyring`. Every node of a cluster holds the same one (a
/// node installs the data directories of the others as snapshots, data keys included).
public struct MasterKey: Sendable {
    let key: SymmetricKey
    /// The file it was read from (named in errors).
    public let path: String

    /// The first 8 bytes of SHA-256("fauna master key v1" ‖ key): names the key in the keyring
    /// record and in errors without revealing it.
    public var fingerprint: [UInt8] {
        var h = SHA256()
        h.update(data: Array("fauna master key v1".utf8))
        key.withUnsafeBytes { h.update(bufferPointer: $0) }
        return Array(h.finalize().prefix(8))
    }

    public var fingerprintHex: String { Keyring.hex(fingerprint) }

    /// A key from its 32 bytes (tests).
    public init(bytes: [UInt8], path: String = "(memory)") {
        precondition(bytes.count == 32, "a master key has 32 bytes")
        self.key = SymmetricKey(data: bytes)
        self.path = path
    }

    /// Reads the key file at `path`: a regular file that neither group nor others may read or
    /// write, holding 64 hex digits (surrounding white space ignored; `openssl rand -hex 32`).
    ///
    /// - Throws: `StoreError(.encryptionKey)` naming the file and what is wrong with it.
    public static func load(path: String) throws(StoreError) -> MasterKey {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            throw StoreError(.encryptionKey, "master key file \(path): \(reason) (make one with: openssl rand -hex 32 > FILE; chmod 600 FILE)")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw StoreError(.encryptionKey, "master key file \(path): not a regular file")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw StoreError(
                .encryptionKey,
                "master key file \(path): mode \(String(mode, radix: 8)) lets others read it; want 600 (chmod 600 \(path))")
        }
        guard let data = FileManager.default.contents(atPath: path), data.count <= 4096 else {
            throw StoreError(.encryptionKey, "master key file \(path): cannot read it, or longer than 4 KiB")
        }
        let bytes = [UInt8](data)
        let text = bytes.filter { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }
        guard text.count == 64, let key = Keyring.unhex(text) else {
            throw StoreError(
                .encryptionKey, "master key file \(path): want 64 hex digits (32 bytes), got \(text.count) characters that are not")
        }
        return MasterKey(bytes: key, path: path)
    }

    /// AES-256-GCM under the master key, authenticated with `context`: the combined box (12-byte
    /// nonce, ciphertext, 16-byte tag). What wraps the data keys and seals `node.key`.
    /// `what` names the secret in errors.
    func wrap(_ secret: [UInt8], authenticating context: [UInt8], what: String) throws(StoreError) -> [UInt8] {
        do {
            let box = try AES.GCM.seal(secret, using: key, authenticating: context)
            guard let combined = box.combined else { throw StoreError(.encryptionKey, "wrapping \(what) gave no combined box") }
            return Array(combined)
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError(.encryptionKey, "wrapping \(what): \(error)")
        }
    }

    /// What `wrap` wrapped with this key for `context`, or nil if `combined` does not open
    /// (changed, wrapped by another key or for another context).
    func unwrap(_ combined: some DataProtocol, authenticating context: [UInt8]) -> [UInt8]? {
        guard let box = try? AES.GCM.SealedBox(combined: combined),
            let secret = try? AES.GCM.open(box, using: key, authenticating: context)
        else { return nil }
        return Array(secret)
    }

    // MARK: Secrets kept in files of their own

    /// The first bytes of a file `sealFile` wrote.
    static let sealedFileMagic = Array("FNS1".utf8)

    /// Seals a secret the node keeps in a file of its own (the tree-head signing key,
    /// `node.key`): `"FNS1" | 8-byte master fingerprint | AES-256-GCM combined box (12-byte
    /// nonce, ciphertext, 16-byte tag)`, authenticated with `context`, so a file sealed for
    /// another purpose does not open as this one.
    public func sealFile(_ secret: [UInt8], context: String) throws(StoreError) -> [UInt8] {
        Self.sealedFileMagic + fingerprint + (try wrap(secret, authenticating: Array(context.utf8), what: context))
    }

    /// The fingerprint (hex) of the master key that sealed `file` (what `sealFile` wrote), or
    /// nil if `file` is not a sealed file.
    public static func sealedFileFingerprint(_ file: [UInt8]) -> String? {
        guard file.count > sealedFileMagic.count + 8 + 28, file.starts(with: sealedFileMagic) else { return nil }
        return Keyring.hex(Array(file[sealedFileMagic.count..<sealedFileMagic.count + 8]))
    }

    /// Opens what `sealFile` sealed with this key for `context`.
    ///
    /// - Throws: `StoreError(.encryptionKey)` if `file` is not a sealed file, another master key
    ///   sealed it (both fingerprints named), or it does not open (changed, or sealed for
    ///   another purpose).
    public func openFile(_ file: [UInt8], context: String) throws(StoreError) -> [UInt8] {
        guard let sealedBy = Self.sealedFileFingerprint(file) else {
            throw StoreError(.encryptionKey, "\(context): not a sealed file")
        }
        guard sealedBy == fingerprintHex else {
            throw StoreError(
                .encryptionKey, "\(context): sealed by master key \(sealedBy), the configured one (\(path)) is \(fingerprintHex)")
        }
        guard let secret = unwrap(file[(Self.sealedFileMagic.count + 8)...], authenticating: Array(context.utf8)) else {
            throw StoreError(.encryptionKey, "\(context): does not open with master key \(fingerprintHex) (changed on disk?)")
        }
        return secret
    }
}

/// The data keys of one data directory, each wrapped by the master key, kept in group 0's
/// `meta` under `keyring` (docs/STORAGE.md "Encryption at rest"). Values are sealed with the
/// newest key; older keys stay to open what they sealed (rotation never rewrites data).
///
/// A sealed value is `u8 0xE1 | u32 BE key id | 12-byte nonce | AES-256-GCM ciphertext | 16-byte
/// tag`, authenticated together with its column family's name and its stored key, so a value
/// moved to another key or family does not open. Nonces are a 96-bit counter that starts at a
/// random point for each keyring opened (and again after 2^64 values): unique without
/// persisting a counter, with no 2^32 limit of random nonces.
///
/// `@unchecked Sendable`: the keys are immutable after init; the nonce counter is guarded by
/// `lock`. Used by every thread that reads or writes sealed families.
public final class Keyring: @unchecked Sendable {
    struct DataKey {
        let id: UInt32
        let createdUnixSeconds: UInt64
        let key: SymmetricKey
        let wrapped: [UInt8]
        /// The same key in libcrypto, for values (CAESGCM).
        let cipher: GCMKey

        init(id: UInt32, createdUnixSeconds: UInt64, key: SymmetricKey, wrapped: [UInt8]) throws(StoreError) {
            self.id = id
            self.createdUnixSeconds = createdUnixSeconds
            self.key = key
            self.wrapped = wrapped
            guard let cipher = GCMKey(key.withUnsafeBytes { Array($0) }) else {
                throw StoreError(.encryptionKey, "libcrypto could not set up AES-256-GCM for data key \(id)")
            }
            self.cipher = cipher
        }
    }

    static let sealedTag: UInt8 = 0xE1
    /// Tag, key id, nonce and GCM tag: what sealing adds to a value.
    public static let overheadBytes = 1 + 4 + 12 + 16
    static let recordVersion: UInt8 = 1
    static let keysMax = 4096

    let master: MasterKey
    let keys: [UInt32: DataKey]
    /// In creation order; the last seals.
    let order: [UInt32]
    let current: DataKey
    private let lock = NSLock()
    private var nonceHigh: UInt32
    private var nonceLow: UInt64

    private init(master: MasterKey, keys: [DataKey]) {
        precondition(!keys.isEmpty, "a keyring has a key")
        self.master = master
        self.keys = Dictionary(keys.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        self.order = keys.map(\.id)
        self.current = keys[keys.count - 1]
        self.nonceHigh = UInt32.random(in: .min ... .max)
        self.nonceLow = UInt64.random(in: .min ... .max)
    }

    /// The id of the key that seals new values.
    public var currentKeyID: UInt32 { current.id }
    /// Every key id, oldest first.
    public var keyIDs: [UInt32] { order }
    public var masterFingerprintHex: String { master.fingerprintHex }

    /// A keyring with one fresh data key (a store makes its own; public for benchmarks).
    public static func new(master: MasterKey) throws(StoreError) -> Keyring {
        Keyring(master: master, keys: [try makeKey(master: master, avoiding: [])])
    }

    /// This keyring with a fresh data key added, which seals from now on.
    func rotated() throws(StoreError) -> Keyring {
        guard keys.count < Self.keysMax else {
            throw StoreError(.encryptionKey, "keyring holds \(keys.count) data keys, the most it may")
        }
        return Keyring(master: master, keys: order.map { keys[$0]! } + [try Self.makeKey(master: master, avoiding: Set(order))])
    }

    /// The same data keys wrapped by `master` instead (a new master key).
    func rewrapped(by newMaster: MasterKey) throws(StoreError) -> Keyring {
        var out: [DataKey] = []
        for id in order {
            let k = keys[id]!
            let raw = k.key.withUnsafeBytes { Array($0) }
            out.append(try DataKey(id: id, createdUnixSeconds: k.createdUnixSeconds, key: k.key, wrapped: try Self.wrap(raw, id: id, master: newMaster)))
        }
        return Keyring(master: newMaster, keys: out)
    }

    private static func makeKey(master: MasterKey, avoiding ids: Set<UInt32>) throws(StoreError) -> DataKey {
        var id = UInt32.random(in: 1 ... .max)
        while ids.contains(id) { id = UInt32.random(in: 1 ... .max) }
        var raw = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for i in raw.indices { raw[i] = rng.next() }
        let created = UInt64(max(0, Date().timeIntervalSince1970))
        return try DataKey(id: id, createdUnixSeconds: created, key: SymmetricKey(data: raw), wrapped: try wrap(raw, id: id, master: master))
    }

    private static func wrapContext(_ id: UInt32) -> [UInt8] { Array("fauna data key v1".utf8) + bigEndianBytes32(id) }

    private static func wrap(_ raw: [UInt8], id: UInt32, master: MasterKey) throws(StoreError) -> [UInt8] {
        try master.wrap(raw, authenticating: wrapContext(id), what: "a data key")
    }

    // MARK: The keyring record

    /// `u8 1 | 8-byte master fingerprint | u32 count | count × (u32 id | u64 created | u32 n | n bytes wrapped key)`,
    /// oldest first.
    var encoded: [UInt8] {
        var w = ByteWriter(capacity: 13 + order.count * 76)
        w.u8(Self.recordVersion)
        w.raw(master.fingerprint)
        w.u32(UInt32(order.count))
        for id in order {
            let k = keys[id]!
            w.u32(k.id)
            w.u64(k.createdUnixSeconds)
            w.u32(UInt32(k.wrapped.count))
            w.raw(k.wrapped)
        }
        return w.bytes
    }

    /// The fingerprint of the master key that wrapped the keys of a keyring record.
    static func masterFingerprint(ofRecord record: [UInt8]) -> [UInt8]? {
        guard record.count >= 9, record[0] == recordVersion else { return nil }
        return Array(record[1..<9])
    }

    /// Opens a keyring record with `master`.
    ///
    /// - Throws: `.encryptionKey` if another master key wrapped it, `.corruptRecord` if it does
    ///   not decode or a key does not unwrap.
    static func decode(_ record: [UInt8], master: MasterKey, source: String) throws(StoreError) -> Keyring {
        if let stored = masterFingerprint(ofRecord: record), stored != master.fingerprint {
            throw StoreError(
                .encryptionKey,
                "\(source) was encrypted under the master key with fingerprint \(hex(stored)); \(master.path) has fingerprint "
                    + "\(master.fingerprintHex): name the key this data directory was written with (docs/SECURITY.md)")
        }
        do {
            var r = ByteReader(record)
            guard try r.u8() == recordVersion else { throw DecodeError(reason: "keyring record version \(record[0]), want 1") }
            _ = try r.raw(8)
            let count = Int(try r.u32())
            guard (1...keysMax).contains(count) else { throw DecodeError(reason: "keyring of \(count) keys") }
            var keys: [DataKey] = []
            for _ in 0..<count {
                let id = try r.u32()
                let created = try r.u64()
                let n = Int(try r.u32())
                guard n == 12 + 32 + 16 else { throw DecodeError(reason: "wrapped key \(id) of \(n) bytes, want 60") }
                let wrapped = try r.raw(n)
                guard let raw = master.unwrap(wrapped, authenticating: wrapContext(id)) else {
                    throw DecodeError(reason: "data key \(id) does not unwrap with the master key (damaged record)")
                }
                keys.append(try DataKey(id: id, createdUnixSeconds: created, key: SymmetricKey(data: raw), wrapped: wrapped))
            }
            try r.end()
            guard Set(keys.map(\.id)).count == keys.count else { throw DecodeError(reason: "keyring repeats a key id") }
            return Keyring(master: master, keys: keys)
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError(.corruptRecord, "keyring of \(source): \((error as? DecodeError)?.reason ?? "\(error)")")
        }
    }

    // MARK: Sealing values

    /// The authenticated context of a value: its family and its stored key.
    @inline(__always)
    private static func context(_ family: String, _ storedKey: [UInt8]) -> [UInt8] {
        var c = Array(family.utf8)
        c.reserveCapacity(c.count + 1 + storedKey.count)
        c.append(0)
        c.append(contentsOf: storedKey)
        return c
    }

    /// The next nonce: (high 32 bits, low 64 bits).
    private func nextNonce() -> (UInt32, UInt64) {
        lock.lock()
        defer { lock.unlock() }
        nonceLow &+= 1
        if nonceLow == 0 { nonceHigh = UInt32.random(in: .min ... .max) }
        return (nonceHigh, nonceLow)
    }

    /// `value` sealed with the current key, bound to `family` and `storedKey`.
    public func seal(_ value: [UInt8], family: String, storedKey: [UInt8]) -> [UInt8] {
        let (high, low) = nextNonce()
        let context = Self.context(family, storedKey)
        let total = Self.overheadBytes + value.count
        let id = current.id
        let cipher = current.cipher
        return [UInt8](unsafeUninitializedCapacity: total) { out, initialized in
            let base = out.baseAddress!
            base[0] = Self.sealedTag
            for i in 0..<4 { base[1 + i] = UInt8(truncatingIfNeeded: id >> UInt32(24 - 8 * i)) }
            for i in 0..<4 { base[5 + i] = UInt8(truncatingIfNeeded: high >> UInt32(24 - 8 * i)) }
            for i in 0..<8 { base[9 + i] = UInt8(truncatingIfNeeded: low >> UInt64(56 - 8 * i)) }
            let ok = value.withUnsafeBufferPointer { v in
                context.withUnsafeBufferPointer { c in
                    fauna_gcm_seal(cipher.pointer, base + 5, c.baseAddress, c.count, v.baseAddress, v.count, base + 17, base + 17 + v.count)
                }
            }
            // Fails only if libcrypto cannot allocate a context: nothing to write then.
            precondition(ok == 1, "AES-256-GCM seal failed in libcrypto")
            initialized = total
        }
    }

    /// The value inside `sealed`, checked against `family` and `storedKey`.
    public func open(_ sealed: [UInt8], family: String, storedKey: [UInt8]) throws(RocksDBError) -> [UInt8] {
        func fail(_ why: String) -> RocksDBError {
            RocksDBError(
                code: .corruption, operation: "decrypt", columnFamily: family,
                message: "value of key \(Self.hex(Array(storedKey.prefix(32)))): \(why)")
        }
        guard sealed.count >= Self.overheadBytes, sealed[0] == Self.sealedTag else {
            throw fail("not encrypted (\(sealed.count) bytes, first \(sealed.first.map { String($0) } ?? "none")), in a data directory that is")
        }
        let id = UInt32(sealed[1]) << 24 | UInt32(sealed[2]) << 16 | UInt32(sealed[3]) << 8 | UInt32(sealed[4])
        guard let key = keys[id] else { throw fail("sealed with data key \(id), which the keyring does not hold") }
        let count = sealed.count - Self.overheadBytes
        let context = Self.context(family, storedKey)
        var ok: Int32 = 0
        // One byte more than the plaintext: a valid pointer even for an empty value.
        var plain = [UInt8](unsafeUninitializedCapacity: count + 1) { out, initialized in
            ok = sealed.withUnsafeBufferPointer { s in
                context.withUnsafeBufferPointer { c in
                    let base = s.baseAddress!
                    return fauna_gcm_open(key.cipher.pointer, base + 5, c.baseAddress, c.count, base + 17, count, base + 17 + count, out.baseAddress!)
                }
            }
            out[count] = 0
            initialized = count + 1
        }
        guard ok == 1 else { throw fail("does not decrypt with data key \(id): damaged, or moved from another key") }
        plain.removeLast()
        return plain
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).leftPadded(2) }.joined()
    }

    static func unhex(_ text: [UInt8]) -> [UInt8]? {
        guard text.count % 2 == 0 else { return nil }
        func digit(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 2)
        var i = 0
        while i < text.count {
            guard let h = digit(text[i]), let l = digit(text[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }
}

/// A data key set up in libcrypto (CAESGCM): its contexts keep the key schedule between calls.
final class GCMKey: @unchecked Sendable {
    // @unchecked Sendable: the C side guards its context pool with a mutex.
    let pointer: OpaquePointer

    init?(_ raw: [UInt8]) {
        guard raw.count == 32, let p = raw.withUnsafeBufferPointer({ fauna_gcm_key_new($0.baseAddress) }) else { return nil }
        pointer = p
    }

    deinit { fauna_gcm_key_free(pointer) }
}
