import Crypto

/// SHA-256 of one message given in up to three parts: the function every hash layout of this
/// module computes (leaves, interior nodes, effects). `.swiftCrypto` is this module's own. A
/// server that hashes millions of short leaves may pass a faster implementation of the same
/// function (FaunaStore's `.libcrypto`); what is hashed, and in which order, stays here.
public struct SHA256Parts: Sendable {
    public typealias Function = @Sendable (
        UnsafeRawBufferPointer, UnsafeRawBufferPointer, UnsafeRawBufferPointer
    ) -> MerkleHash

    /// Hashes the concatenation of its three parts (any may be empty).
    public let hash: Function

    public init(_ hash: @escaping Function) { self.hash = hash }

    /// swift-crypto's SHA-256.
    public static let swiftCrypto = SHA256Parts { a, b, c in
        var sha = SHA256()
        sha.update(bufferPointer: a)
        if !b.isEmpty { sha.update(bufferPointer: b) }
        if !c.isEmpty { sha.update(bufferPointer: c) }
        return MerkleHash(sha.finalize())
    }

    /// The empty part.
    static var nothing: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: nil, count: 0) }

    /// SHA-256 of `a ‖ b`.
    func callAsFunction(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer = nothing) -> MerkleHash {
        hash(a, b, Self.nothing)
    }
}
