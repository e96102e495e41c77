import Crypto
import CryptoExtras
import FaunaKV
import FaunaRaft
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import SwiftASN1

/// Who is on one client connection (docs/SECURITY.md "Users and roles"): the common name of
/// its verified client certificate, and the user an `authenticate` request bound it to. The
/// requests of a connection share one; safe from any thread.
public final class ConnectionIdentity: Sendable {
    private let state: NIOLockedValueBox<(user: [UInt8]?, certificateName: [UInt8]?)>
    /// The nodes the verified certificate names among its DNS names (`n1`, as on the peer
    /// port): a node's own certificate, used by its status page's requests to the members. The
    /// auth gate lets such a connection act as the node when the name is a current member.
    public let certificateNodes: [NodeID]

    public init(user: [UInt8]? = nil, certificateName: [UInt8]? = nil, certificateNodes: [NodeID] = []) {
        state = NIOLockedValueBox((user, certificateName))
        self.certificateNodes = certificateNodes
    }

    /// The identity of a `channel` whose TLS handshake is over: its verified certificate's
    /// common name and node names (none without TLS or without a client certificate). Call on
    /// the channel's event loop.
    public static func of(_ channel: any Channel, tls: Bool) -> ConnectionIdentity {
        guard tls, let certificate = try? channel.pipeline.syncOperations.nioSSL_peerCertificate() else { return ConnectionIdentity() }
        let nodes = TLSContexts.dnsNames(of: certificate).compactMap { name -> NodeID? in
            guard name.first == "n", let n = UInt64(name.dropFirst()), n > 0, name == "n\(n)" else { return nil }
            return NodeID(n)
        }
        return ConnectionIdentity(certificateName: (try? certificate.toDERBytes()).flatMap(commonName(ofDER:)), certificateNodes: nodes)
    }

    /// Whether a user is bound (`authenticate`): it then takes precedence over the certificate.
    public var hasBoundUser: Bool { state.withLockedValue { $0.user != nil } }

    /// Binds the connection to `user` (a successful `authenticate`); later requests run as it.
    public func bind(_ user: [UInt8]) { state.withLockedValue { $0.user = user } }

    /// The common name of the client certificate, if the connection presented one.
    public var certificateName: [UInt8]? { state.withLockedValue { $0.certificateName } }

    /// Who the connection's requests run as: the user `authenticate` bound, else the
    /// certificate's common name, else nobody (empty).
    public var principal: [UInt8] {
        state.withLockedValue { $0.user ?? $0.certificateName ?? [] }
    }

    /// The first common name (OID 2.5.4.3) of a DER certificate's subject, or nil.
    static func commonName(ofDER der: [UInt8]) -> [UInt8]? {
        func children(_ node: ASN1Node) -> [ASN1Node]? {
            if case .constructed(let nodes) = node.content { return Array(nodes) }
            return nil
        }
        guard let certificate = try? DER.parse(der), let parts = children(certificate), let tbs = parts.first.flatMap(children) else {
            return nil
        }
        // TBSCertificate: [0] version (optional), serial, signature, issuer, validity, subject.
        let versionTag = ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)
        let first = tbs.first?.identifier == versionTag ? 1 : 0
        guard tbs.count > first + 4, let rdns = children(tbs[first + 4]) else { return nil }
        let commonNameOID: ASN1ObjectIdentifier = [2, 5, 4, 3]
        for rdn in rdns {
            for attribute in children(rdn) ?? [] {
                guard let pair = children(attribute), pair.count == 2,
                    let oid = try? ASN1ObjectIdentifier(derEncoded: pair[0], withIdentifier: .objectIdentifier), oid == commonNameOID,
                    case .primitive(let value) = pair[1].content
                else { continue }
                // Only a name that can be a user's (a UTF8String or PrintableString of the
                // user-name alphabet): anything else binds no user.
                guard [.utf8String, .printableString].contains(pair[1].identifier), (try? KVAuthLimits.validateName(Array(value), "")) != nil
                else { return nil }
                return Array(value)
            }
        }
        return nil
    }
}

enum PasswordError: Error { case empty }

/// Salted scrypt password hashes (ADR 0012): made by a client for `user add`/`passwd`, checked
/// by a node for `authenticate`. Hashing costs about 32 MiB and tens of milliseconds: never on
/// an event loop.
public enum PasswordHashing {
    /// N = 2^15, r = 8, p = 1, 16-byte salt, 32-byte hash.
    public static func hash(password: [UInt8]) throws -> KVPasswordHash {
        var salt = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = UInt8.random(in: 0...255, using: &rng) }
        let params = KVPasswordHash(logN: 15, r: 8, p: 1, salt: salt, hash: [])
        return KVPasswordHash(logN: 15, r: 8, p: 1, salt: salt, hash: try derive(password, like: params, bytes: 32))
    }

    /// Whether `password` matches `stored` (compared in constant time).
    public static func matches(_ password: [UInt8], _ stored: KVPasswordHash) throws -> Bool {
        let candidate = try derive(password, like: stored, bytes: stored.hash.count)
        guard candidate.count == stored.hash.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(candidate, stored.hash) { difference |= a ^ b }
        return difference == 0
    }

    static func derive(_ password: [UInt8], like stored: KVPasswordHash, bytes: Int) throws -> [UInt8] {
        // swift-crypto's scrypt takes the address of the first byte: never empty input.
        guard !password.isEmpty, !stored.salt.isEmpty else { throw PasswordError.empty }
        let key = try KDF.Scrypt.deriveKey(
            from: password, salt: stored.salt, outputByteCount: bytes, rounds: 1 << Int(stored.logN), blockSize: Int(stored.r),
            parallelism: Int(stored.p))
        return key.withUnsafeBytes { Array($0) }
    }
}
