import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaVerify

/// What a verified batch of watch events proved (docs/AUDIT.md §14).
public struct VerifiedEvents: Sendable {
    /// The head the events' entries were proven in (signed by a quorum of the trusted
    /// members), and the members whose signatures counted.
    public var head: SignedTreeHead
    public var signers: [NodeID]
    /// The trusted state after the check (advanced to `head`).
    public var trust: TrustedCluster
    /// The entries proven, ascending.
    public var revisions: [UInt64]
}

extension FaunaClient {
    /// Proves a batch of watch events against the cluster (docs/AUDIT.md §14): for each event,
    /// the journal entry at its revision committed exactly that change among its effects (a
    /// put of this value under this key, or a delete of this key), through the entry's leaf v2
    /// effects tree; each such entry is a leaf of one tree head signed by a quorum of `trust`'s
    /// members; that head is consistent with the trusted one. The proofs are asked of `node`
    /// (the node that served the events, so that it must back what it sent).
    ///
    /// It proves that what was sent was committed, not that nothing was left out.
    /// - Throws: `verificationFailed` naming the event and the check that failed.
    public func verifyEvents(_ events: [WatchEvent], servedBy node: Endpoint, trust: TrustedCluster) async throws(FaunaClientError) -> VerifiedEvents {
        guard let newest = events.map(\.revision).max() else {
            throw FaunaClientError(.invalidRequest, "verifyEvents: no events")
        }
        var leaves: [UInt64: MerkleHash] = [:]
        for event in events {
            let answer = try await entryProof(at: event.revision, key: event.key, from: node)
            let entry = answer.entry
            guard entry.index == event.revision else {
                throw FaunaClientError(.verificationFailed, "\(node) sent journal entry \(entry.index) when asked for \(event.revision)")
            }
            if let known = leaves[entry.index], known != entry.leafHash {
                throw FaunaClientError(.verificationFailed, "\(node) sent two different journal entries for revision \(entry.index)")
            }
            leaves[entry.index] = entry.leafHash
            if let why = Self.mismatch(event, entry: entry, effectProof: answer.effect?.1) {
                throw FaunaClientError(
                    .verificationFailed,
                    "the watch event \(event.kind) of key \(String(decoding: event.key.prefix(64), as: UTF8.self)) at revision \(event.revision) from \(node) is not what its journal entry committed: \(why)")
            }
        }
        let revisions = leaves.keys.sorted()
        let leafHashes = leaves
        let current = try await signedTreeHead(of: node)
        let (signed, signers, _, after) = try await proveHead(from: node, current: current, covering: newest, trust: trust) {
            size throws(FaunaClientError) in
            // Every entry's inclusion path must lead to one root: the head's.
            var root: MerkleHash?
            for revision in revisions {
                let inclusion = try await self.inclusionProof(ofEntry: revision, treeSize: size, from: node)
                let leafRoot: MerkleHash
                do {
                    leafRoot = try inclusion.rootHash(fromLeafHash: leafHashes[revision]!)
                } catch {
                    throw FaunaClientError(.verificationFailed, "inclusion proof of entry \(revision) in tree size \(size) from \(node): \(error)")
                }
                if let root, root != leafRoot {
                    throw FaunaClientError(
                        .verificationFailed, "the inclusion proofs from \(node) of entries \(revisions.first!) and \(revision) lead to different roots of size \(size)")
                }
                root = leafRoot
            }
            return (root!, nil)
        }
        let (trusted, _) = try await droppingRemovedMembers(after, from: node)
        return VerifiedEvents(head: signed.head, signers: signers, trust: trusted, revisions: revisions)
    }

    /// Why `event` is not among `entry`'s committed effects; nil if it is.
    static func mismatch(_ event: WatchEvent, entry: JournalEntry, effectProof: EffectProof?) -> String? {
        guard let summary = entry.effects else {
            return "entry \(entry.index) has a v1 leaf: its effects are not committed (docs/AUDIT.md §1)"
        }
        guard summary.outcome == .success else {
            return "entry \(entry.index) wrote nothing: its committed outcome is \(summary.outcome)"
        }
        guard let effectProof else {
            return "entry \(entry.index) did not change this key (no such effect among its \(summary.count))"
        }
        guard effectProof.summary == summary else {
            return "the effect proof is for another effects summary than entry \(entry.index)'s"
        }
        let effect: Effect
        switch event.kind {
        case .put:
            guard let record = event.record else { return "a put event without a record" }
            effect = .put(key: event.key, value: record.value)
        case .delete:
            effect = Effect(key: event.key, valueHash: nil)
        }
        do {
            try effectProof.verify(effect)
        } catch {
            return "entry \(entry.index) did not \(event.kind == .put ? "put this value under" : "delete") this key: \(error.reason)"
        }
        return nil
    }
}
