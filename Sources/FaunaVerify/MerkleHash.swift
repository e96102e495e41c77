import Crypto

/// A SHA-256 value in the audit tree (RFC 9162 §2.1): a leaf hash, a node hash or a root hash.
///
/// Stored inline as 32 bytes (no allocation). `==` runs in constant time, so comparing a
/// computed root against an expected one leaks nothing about where they differ.
public struct MerkleHash: Hashable, Sendable, CustomStringConvertible {
    /// The size of every hash in bytes.
    public static let sizeBytes = 32

    // The 32 bytes in order, in native memory layout (not integers: never do arithmetic on them).
    private var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    /// Creates a hash from exactly 32 bytes; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Self.sizeBytes else { return nil }
        (w0, w1, w2, w3) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &self) { out in out.copyBytes(from: bytes) }
    }

    /// Creates a hash from a SHA-256 digest.
    public init(_ digest: SHA256Digest) {
        (w0, w1, w2, w3) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &self) { out in
            digest.withUnsafeBytes { out.copyMemory(from: $0) }
        }
    }

    /// Creates a hash from the 32 bytes `fill` writes (a SHA-256 implementation's output).
    public init(writing fill: (UnsafeMutableRawBufferPointer) -> Void) {
        (w0, w1, w2, w3) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &self) { fill($0) }
    }

    /// The 32 bytes of the hash.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Calls `body` with the 32 bytes of the hash, without copying them to the heap.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: self, body)
    }

    /// Constant-time equality: every byte is compared whatever the first difference.
    public static func == (a: MerkleHash, b: MerkleHash) -> Bool {
        ((a.w0 ^ b.w0) | (a.w1 ^ b.w1) | (a.w2 ^ b.w2) | (a.w3 ^ b.w3)) == 0
    }

    /// Lowercase hex, 64 characters.
    public var description: String { hexString(bytes) }
}

/// Lowercase hex of `bytes`, for error messages and descriptions.
func hexString(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0x0f)]) }
    return String(decoding: out, as: UTF8.self)
}
