import FaunaPipeline
import FaunaRPC
import FaunaRaft
import FaunaStore
import Foundation
import NIOConcurrencyHelpers

/// Where each member listens. Seeded from `cluster.toml`; members added at run time bring their
/// addresses in the membership change's context (`MemberAddresses.encoded`), which the apply
/// stage records here and in `<data>/members` (so a restarted node still reaches them after the
/// change's log entry was compacted). Also the public keys of members whose removal this node
/// has applied, also kept in `<data>/members`: a removed node that never heard of its removal
/// (down or cut off when it committed) is refused by key when it dials (docs/RELIABILITY.md
/// "Membership"). Thread-safe.
final class MemberDirectory: MemberBook {
    private struct State {
        var addresses: [NodeID: MemberAddresses]
        /// Removed members by the key they had when this node applied their removal.
        var removed: [NodeID: [UInt8]]
    }

    private let state: NIOLockedValueBox<State>
    private let filePath: String
    /// Tree-head public keys: this node's, and each peer's from its last handshake (in memory:
    /// peers present them again on every connection).
    private let keys: NIOLockedValueBox<[NodeID: [UInt8]]>
    /// Removed members remembered at most (beyond it the lowest node IDs are forgotten first).
    static let removedMax = 1024

    init(seed: [NodeID: MemberAddresses], dataDirectory: String, me: NodeID, publicKey: [UInt8]) {
        self.keys = NIOLockedValueBox([me: publicKey])
        self.filePath = "\(dataDirectory)/members"
        var all = seed
        var removed: [NodeID: [UInt8]] = [:]
        // Recorded addresses of members added at run time (`<id> <addresses>`; the
        // configuration file wins for the nodes it names) and removals (`removed <id> <key in
        // base64>`: three fields, which versions before them skip).
        if let text = try? String(contentsOfFile: filePath, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ")
                if fields.count == 3, fields[0] == "removed", let id = UInt64(fields[1]), id > 0,
                    let key = Data(base64Encoded: String(fields[2])), key.count == 32
                {
                    removed[NodeID(id)] = Array(key)
                    continue
                }
                guard fields.count == 2, let id = UInt64(fields[0]), id > 0,
                    let addresses = MemberAddresses(decoding: Array(fields[1].utf8))
                else { continue }
                if all[NodeID(id)] == nil { all[NodeID(id)] = addresses }
            }
        }
        self.state = NIOLockedValueBox(State(addresses: all, removed: removed))
    }

    func addresses(of id: NodeID) -> MemberAddresses? { state.withLockedValue { $0.addresses[id] } }

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
        state.withLockedValue { state in
            state.addresses[id] = addresses
            save(state)
        }
    }

    /// This node has applied the removal of `id`: from now on a hello from `id` with the key it
    /// had is refused. Without a known key (it never connected since this node started),
    /// nothing is recorded: refusing by ID alone could refuse a node re-added under that ID.
    func recordRemoval(of id: NodeID) {
        guard let key = publicKey(of: id) else { return }
        state.withLockedValue { state in
            guard state.removed[id] != key else { return }
            state.removed[id] = key
            while state.removed.count > Self.removedMax, let oldest = state.removed.keys.min() {
                state.removed[oldest] = nil
            }
            save(state)
        }
    }

    /// `id` is a member (again): it is no longer refused.
    func recordMembership(of id: NodeID) {
        state.withLockedValue { state in
            guard state.removed[id] != nil else { return }
            state.removed[id] = nil
            save(state)
        }
    }

    /// Why a hello from `id` presenting `key` is refused, or nil: only a node this directory
    /// recorded as removed, with the same key (a node re-added with a new data directory has
    /// a new key).
    func removalReason(of id: NodeID, key: [UInt8]) -> String? {
        guard !key.isEmpty, state.withLockedValue({ $0.removed[id] == key }) else { return nil }
        return "node \(id) was removed from the cluster (this node has applied its removal): stop it, "
            + "or add it again as a new member with an empty data directory"
    }

    private func save(_ state: State) {
        var lines = state.addresses.keys.sorted().map {
            "\($0.rawValue) \(String(decoding: state.addresses[$0]!.encoded, as: UTF8.self))"
        }
        lines += state.removed.keys.sorted().map { "removed \($0.rawValue) \(Data(state.removed[$0]!).base64EncodedString())" }
        let text = lines.joined(separator: "\n") + "\n"
        let tmp = filePath + ".tmp"
        // FileIO (POSIX), not `FileManager.createFile`: swift-corelibs-foundation writes that
        // one atomically through a /tmp/TemporaryDirectory.* it never removes, one per call.
        guard (try? FileIO.writeFile(tmp, Array(text.utf8))) != nil else { return }
        try? FileIO.rename(tmp, filePath)
    }
}
