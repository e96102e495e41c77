import FaunaPipeline
import FaunaRPC
import FaunaRaft
import FaunaStore
import Foundation
import NIOConcurrencyHelpers

/// Where each member listens. Seeded from `cluster.toml`; members added at run time bring their
/// addresses in the membership change's context (`MemberAddresses.encoded`), which the apply
/// stage records here and in `<data>/members` (so a restarted node still reaches them after the
/// change's log entry was compacted). Thread-safe.
final class MemberDirectory: MemberBook {
    private let box: NIOLockedValueBox<[NodeID: MemberAddresses]>
    private let filePath: String
    /// Tree-head public keys: this node's, and each peer's from its last handshake (in memory:
    /// peers present them again on every connection).
    private let keys: NIOLockedValueBox<[NodeID: [UInt8]]>

    init(seed: [NodeID: MemberAddresses], dataDirectory: String, me: NodeID, publicKey: [UInt8]) {
        self.keys = NIOLockedValueBox([me: publicKey])
        self.filePath = "\(dataDirectory)/members"
        var all = seed
        // Recorded addresses of members added at run time; the configuration file wins for
        // the nodes it names.
        if let text = try? String(contentsOfFile: filePath, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count == 2, let id = UInt64(fields[0]), id > 0,
                    let addresses = MemberAddresses(decoding: Array(fields[1].utf8))
                else { continue }
                if all[NodeID(id)] == nil { all[NodeID(id)] = addresses }
            }
        }
        self.box = NIOLockedValueBox(all)
    }

    func addresses(of id: NodeID) -> MemberAddresses? { box.withLockedValue { $0[id] } }

    func publicKey(of id: NodeID) -> [UInt8]? { keys.withLockedValue { $0[id] } }

    /// Records the key a peer presented in a handshake. Only Ed25519 keys (32 bytes) are kept,
    /// and only for nodes this directory knows, so the map stays bounded by the membership.
    func recordKey(_ key: [UInt8], for id: NodeID) {
        guard key.count == 32, addresses(of: id) != nil else { return }
        keys.withLockedValue { $0[id] = key }
    }

    /// Records a member's addresses and rewrites the file (write aside, fsync, rename).
    func record(_ addresses: MemberAddresses, for id: NodeID) {
        // Under the lock, file included: the owner and apply threads both record, and an
        // older copy must never be renamed over a newer one.
        box.withLockedValue { all in
            all[id] = addresses
            save(all)
        }
    }

    private func save(_ snapshot: [NodeID: MemberAddresses]) {
        let text = snapshot.keys.sorted().map { "\($0.rawValue) \(String(decoding: snapshot[$0]!.encoded, as: UTF8.self))" }
            .joined(separator: "\n") + "\n"
        let tmp = filePath + ".tmp"
        // FileIO (POSIX), not `FileManager.createFile`: swift-corelibs-foundation writes that
        // one atomically through a /tmp/TemporaryDirectory.* it never removes, one per call.
        guard (try? FileIO.writeFile(tmp, Array(text.utf8))) != nil else { return }
        try? FileIO.rename(tmp, filePath)
    }
}

