import CSHA256
import FaunaVerify

extension SHA256Parts {
    /// SHA-256 by the system's OpenSSL libcrypto, its context on the stack: the same function as
    /// `.swiftCrypto` (`SHA256PartsTests` compares them), about 2.7 times as fast for a tree
    /// node, because swift-crypto allocates a context per hash and copies it to finalize. The
    /// store hashes with it wherever it builds the audit chain (`ChunkAudit`, `JournalRecord`,
    /// the tree rebuilt from the journal); clients and FaunaVerify keep swift-crypto.
    public static let libcrypto = SHA256Parts { a, b, c in
        MerkleHash { out in
            fauna_sha256_parts(
                a.baseAddress, a.count, b.baseAddress, b.count, c.baseAddress, c.count,
                out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }
}
