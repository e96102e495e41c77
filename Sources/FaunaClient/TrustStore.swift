import Crypto
import FaunaRaft
import FaunaVerify
import Foundation

/// What a client trusts about one cluster (docs/AUDIT.md §6): its ID, its members' tree-head
/// keys, and the last tree head it verified. Kept in `trusted.json`; only ever advanced by a
/// quorum-signed head with a consistency proof.
public struct TrustedCluster: Sendable, Hashable {
    /// One pinned member key.
    public struct MemberKey: Sendable, Hashable {
        public var nodeID: NodeID
        public var publicKey: Curve25519.Signing.PublicKey
        public init(nodeID: NodeID, publicKey: Curve25519.Signing.PublicKey) {
            self.nodeID = nodeID
            self.publicKey = publicKey
        }
        public static func == (a: MemberKey, b: MemberKey) -> Bool {
            a.nodeID == b.nodeID && a.publicKey.rawRepresentation == b.publicKey.rawRepresentation
        }
        public func hash(into hasher: inout Hasher) {
            hasher.combine(nodeID)
            hasher.combine(publicKey.rawRepresentation)
        }
    }

    /// The cluster name of cluster.toml (the directory name of the default path).
    public var name: String
    public var clusterID: ClusterID
    public var members: [MemberKey]
    /// The last verified head (size 0 and the empty root before the first).
    public var head: TreeHead
    /// The tree size up to which committed membership removals have been applied to
    /// `members` (docs/AUDIT.md §9): a removed member's key stops counting.
    public var membershipCheckedSize: UInt64

    public init(name: String, clusterID: ClusterID, members: [MemberKey], head: TreeHead? = nil, membershipCheckedSize: UInt64 = 0) {
        self.name = name
        self.clusterID = clusterID
        self.members = members
        self.head = head ?? TreeHead(clusterID: clusterID, treeSize: 0, rootHash: MerkleHasher.emptyRoot)
        self.membershipCheckedSize = membershipCheckedSize
    }

    /// `self` after another process saved `other` for the same cluster: the larger head (the
    /// trusted head never moves back), the members both still pin (removals are for good).
    /// - Throws: `verificationFailed` if both hold different roots for the same size (a fork).
    func merged(with other: TrustedCluster) throws(FaunaClientError) -> TrustedCluster {
        guard other.clusterID == clusterID else { return self }
        if other.head.treeSize == head.treeSize && other.head.rootHash != head.rootHash {
            throw FaunaClientError(
                .verificationFailed,
                "fork: the trusted state was advanced by another process to root \(other.head.rootHash) for tree size \(head.treeSize), this one verified \(head.rootHash)")
        }
        var out = self
        if other.head.treeSize > head.treeSize { out.head = other.head }
        out.members = members.filter { other.members.contains($0) }
        out.membershipCheckedSize = max(membershipCheckedSize, other.membershipCheckedSize)
        return out
    }

    /// FaunaVerify's view: the keys and the head.
    public var state: TrustedState { TrustedState(members: members.map(\.publicKey), trusting: head) }

    /// The member whose key this is.
    public func member(withKey key: [UInt8]) -> NodeID? {
        members.first { Array($0.publicKey.rawRepresentation) == key }?.nodeID
    }

    /// Signatures a head needs: more than half of the pinned keys.
    public var quorum: Int { members.count / 2 + 1 }
}

/// Reads and writes `trusted.json` (format "fauna-trust-v1"), atomically: written aside,
/// fsynced, renamed over the old file. Updates from concurrent processes are serialised by an
/// exclusive lock on `trusted.json.lock` and merged, so the trusted head never moves back.
public struct TrustStore: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// `~/.config/fauna/<cluster>/trusted.json` (`$XDG_CONFIG_HOME` if set).
    public static func defaultPath(cluster name: String) -> String {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "\(environment["HOME"] ?? NSHomeDirectory())/.config"
        return "\(base)/fauna/\(name)/trusted.json"
    }

    /// The trusted state, or nil if the file does not exist.
    public func load() throws(FaunaClientError) -> TrustedCluster? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FaunaClientError(.io, "cannot read \(path)")
        }
        do {
            return try Self.decode(data)
        } catch {
            throw FaunaClientError(.io, "\(path): \(error)")
        }
    }

    /// Saves `trust`, merged with what another process saved meanwhile
    /// (`TrustedCluster.merged`): under the lock, the file is read again and the larger head
    /// kept. With `replacing` (`fctl trust init`), `trust` replaces the file as it is.
    /// - Returns: what was written.
    @discardableResult
    public func save(_ trust: TrustedCluster, replacing: Bool = false) throws(FaunaClientError) -> TrustedCluster {
        let directory = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: directory.isEmpty ? "." : directory, withIntermediateDirectories: true)
        } catch {
            throw FaunaClientError(.io, "cannot create \(directory): \(error.localizedDescription)")
        }
        let lock = try PosixFile.lockExclusively("\(path).lock")
        defer { withExtendedLifetime(lock) {} }
        var merged = trust
        if !replacing, let current = try load() { merged = try trust.merged(with: current) }
        try write(merged)
        return merged
    }

    private func write(_ trust: TrustedCluster) throws(FaunaClientError) {
        let temporary = "\(path).tmp.\(ProcessInfo.processInfo.processIdentifier)"
        let file = try PosixFile.create(temporary)
        do {
            try file.write(Array(Self.encode(trust)))
            try file.sync()
            try PosixFile.rename(temporary, to: path)
        } catch {
            PosixFile.removeQuietly(temporary)
            throw error
        }
    }

    static func encode(_ trust: TrustedCluster) -> Data {
        let object: [String: Any] = [
            "format": "fauna-trust-v1",
            "cluster": trust.name,
            "clusterID": hex(trust.clusterID.bytes),
            "members": trust.members.map { ["nodeID": "\($0.nodeID)", "publicKey": hex($0.publicKey.rawRepresentation)] },
            "treeSize": String(trust.head.treeSize),
            "rootHash": hex(trust.head.rootHash.bytes),
            "membershipCheckedSize": String(trust.membershipCheckedSize),
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data()
        return data + Data("\n".utf8)
    }

    struct Malformed: Error, CustomStringConvertible { let description: String }

    static func decode(_ data: Data) throws -> TrustedCluster {
        guard let doc = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw Malformed(description: "not a JSON object") }
        guard doc["format"] as? String == "fauna-trust-v1" else { throw Malformed(description: "format: want \"fauna-trust-v1\"") }
        let name = doc["cluster"] as? String ?? ""
        guard let id = (doc["clusterID"] as? String).flatMap(Self.hexBytes).flatMap({ ClusterID(bytes: $0) }) else {
            throw Malformed(description: "clusterID: want 32 hex digits")
        }
        let members = try Self.memberKeys(doc["members"])
        guard let sizeText = doc["treeSize"] as? String, let size = UInt64(sizeText) else { throw Malformed(description: "treeSize: want a decimal string") }
        guard let root = (doc["rootHash"] as? String).flatMap(Self.hexBytes).flatMap({ MerkleHash(bytes: $0) }) else {
            throw Malformed(description: "rootHash: want 64 hex digits")
        }
        // Absent in files written before removals were tracked: check from the start.
        let checked = (doc["membershipCheckedSize"] as? String).flatMap { UInt64($0) } ?? 0
        return TrustedCluster(
            name: name, clusterID: id, members: members, head: TreeHead(clusterID: id, treeSize: size, rootHash: root),
            membershipCheckedSize: checked)
    }

    /// Member keys from a JSON array `[{"nodeID": "n1", "publicKey": hex}]` (also the format of
    /// `fctl trust init --keys FILE`).
    public static func memberKeys(json data: Data) throws(FaunaClientError) -> [TrustedCluster.MemberKey] {
        do {
            let doc = try JSONSerialization.jsonObject(with: data)
            return try memberKeys((doc as? [String: Any])?["members"] ?? doc)
        } catch {
            throw FaunaClientError(.invalidRequest, "member keys: \(error)")
        }
    }

    static func memberKeys(_ value: Any?) throws -> [TrustedCluster.MemberKey] {
        guard let list = value as? [[String: Any]], !list.isEmpty else { throw Malformed(description: "members: want a non-empty array") }
        var out: [TrustedCluster.MemberKey] = []
        for item in list {
            guard let name = item["nodeID"] as? String, name.first == "n", let n = UInt64(name.dropFirst()), n > 0 else {
                throw Malformed(description: "members: nodeID: want n<number>")
            }
            guard let raw = (item["publicKey"] as? String).flatMap(Self.hexBytes), raw.count == 32,
                let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
            else { throw Malformed(description: "members: \(name): publicKey: want 64 hex digits") }
            guard !out.contains(where: { $0.nodeID == NodeID(n) || $0.publicKey.rawRepresentation == key.rawRepresentation }) else {
                throw Malformed(description: "members: \(name) or its key appears twice")
            }
            out.append(.init(nodeID: NodeID(n), publicKey: key))
        }
        return out
    }

    /// The bytes of lower-case hex of whole bytes, or nil if `text` is not that.
    public static func hexBytes(_ text: String) -> [UInt8]? {
        guard text.utf8.count % 2 == 0, text.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        return hexDecoded(text)
    }
}
