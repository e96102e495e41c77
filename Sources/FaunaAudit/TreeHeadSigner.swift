import Crypto
import FaunaVerify

/// Signs tree heads with a member's Ed25519 key (RFC 8032 via swift-crypto).
public struct TreeHeadSigner: Sendable {
    /// The member's signing key.
    public let privateKey: Curve25519.Signing.PrivateKey

    public init(privateKey: Curve25519.Signing.PrivateKey) {
        self.privateKey = privateKey
    }

    /// The public key clients list among the members.
    public var publicKey: Curve25519.Signing.PublicKey { privateKey.publicKey }

    /// The signature of `head.canonicalBytes`, with the signer's public key.
    /// - Throws: what swift-crypto throws when signing fails.
    public func sign(_ head: TreeHead) throws -> TreeHeadSignature {
        let signature = try privateKey.signature(for: head.canonicalBytes)
        return TreeHeadSignature(publicKey: Array(publicKey.rawRepresentation), signature: Array(signature))
    }
}
