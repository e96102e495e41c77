import Crypto
import FaunaClient
import FaunaRaft
import FaunaVerify
import Foundation
import Testing

/// `trusted.json` is shared by every `fctl` a user runs: concurrent updates must never move
/// the trusted head back, and removals of members must stick (docs/AUDIT.md §9).
@Suite struct TrustStoreTests {
    static let clusterID = ClusterID(bytes: [UInt8](repeating: 7, count: 16))!
    static let keys = (1...3).map { i in
        TrustedCluster.MemberKey(nodeID: NodeID(UInt64(i)), publicKey: Curve25519.Signing.PrivateKey().publicKey)
    }

    /// A trusted state at `size`, whose root is a function of the size (one history).
    static func trust(size: UInt64, members: [TrustedCluster.MemberKey] = keys, root: MerkleHash? = nil) -> TrustedCluster {
        let r = root ?? MerkleHash(SHA256.hash(data: Array("root \(size)".utf8)))
        return TrustedCluster(name: "t", clusterID: clusterID, members: members, head: TreeHead(clusterID: clusterID, treeSize: size, rootHash: r))
    }

    static func temporaryPath() -> String {
        "\(FileManager.default.temporaryDirectory.path)/fauna-trust-\(UUID().uuidString)/trusted.json"
    }

    @Test("an older head saved after a newer one does not move the file back; removals stick")
    func mergeKeepsTheNewestHeadAndRemovals() throws {
        let store = TrustStore(path: Self.temporaryPath())
        defer { try? FileManager.default.removeItem(atPath: (store.path as NSString).deletingLastPathComponent) }
        try store.save(Self.trust(size: 20, members: Array(Self.keys.prefix(2))))
        let written = try store.save(Self.trust(size: 15))
        #expect(written.head.treeSize == 20)
        #expect(try store.load()?.head.treeSize == 20)
        #expect(try store.load()?.members.count == 2, "a removal by another process is kept")
        #expect(throws: FaunaClientError.self) { try store.save(Self.trust(size: 20, root: MerkleHash(SHA256.hash(data: [1])))) }
        try store.save(Self.trust(size: 9), replacing: true)
        #expect(try store.load()?.head.treeSize == 9, "trust init replaces")
    }

    @Test("eight threads saving heads at once: the file's size never goes down and ends at the largest")
    func concurrentSavesNeverMoveBack() async throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let store = TrustStore(path: path)
        try store.save(Self.trust(size: 1))
        let largest = try await withThrowingTaskGroup(of: UInt64.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    var rng = SystemRandomNumberGenerator()
                    var top: UInt64 = 0
                    for _ in 0..<40 {
                        let size = UInt64.random(in: 1...10_000, using: &rng) + UInt64(writer)
                        try store.save(Self.trust(size: size))
                        top = max(top, size)
                    }
                    return top
                }
            }
            group.addTask {  // a reader: the size it sees never decreases
                var seen: UInt64 = 0
                for _ in 0..<400 {
                    guard let size = try TrustStore(path: path).load()?.head.treeSize else { continue }
                    #expect(size >= seen, "trusted size moved back from \(seen) to \(size)")
                    seen = max(seen, size)
                }
                return 0
            }
            var top: UInt64 = 0
            for try await t in group { top = max(top, t) }
            return top
        }
        #expect(try store.load()?.head.treeSize == largest)
    }
}
