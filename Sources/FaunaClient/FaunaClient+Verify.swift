import Crypto
import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaVerify

/// A record and everything that proves it (docs/AUDIT.md): the journal entry that wrote it,
/// its inclusion path, and the quorum-signed tree head the path leads to.
public struct VerifiedRecord: Sendable {
    public var record: KVKeyValue
    /// Entry, inclusion path and the head with the signatures that made the quorum.
    public var proof: EntryProof
    /// The members whose signatures counted.
    public var signers: [NodeID]
    /// How the entry wrote the record: "put", "txn (then branch)", … for a v2 leaf; for a v1
    /// leaf, what the entry proposes followed by "effect not proven (leaf v1)".
    public var writtenBy: String
    /// For a v2 leaf: the path of the record's put among the entry's committed effects.
    public var effectProof: EffectProof?
    /// The node that served the record and the proofs.
    public var servedBy: Endpoint
    /// The trusted state after this check (advanced if the head was newer).
    public var trust: TrustedCluster
    /// The trusted head before this check.
    public var trustedBefore: TreeHead
    /// Pinned members whose removal this check found committed: their keys no longer count.
    public var removedMembers: [NodeID]
}

/// The outcome of advancing the trusted state to the cluster's current head.
public struct VerifiedHead: Sendable {
    public var head: SignedTreeHead
    public var signers: [NodeID]
    public var trust: TrustedCluster
    public var trustedBefore: TreeHead
    /// Pinned members whose removal this check found committed: their keys no longer count.
    public var removedMembers: [NodeID]
}

extension FaunaClient {
    /// Pins every configured node's tree-head key (trust on first use) and the cluster ID they
    /// agree on. With `requireAll` every configured node must answer (a key not pinned now
    /// would never count) and every member the cluster lists must be among them (so that a
    /// client configured with one node does not end up trusting that node alone); without it,
    /// the answering nodes' keys are returned (`fctl trust init --keys` checks them against a file).
    public func pinMembers(cluster name: String, requireAll: Bool = true) async throws(FaunaClientError) -> TrustedCluster {
        let heads = await askEveryNode(.signedTreeHead(TreeHeadRequest()), within: configuration.deadline) { answer in
            if case .signedTreeHeadResponse(let head) = answer { head } else { nil }
        }
        var members: [TrustedCluster.MemberKey] = []
        var clusterID: ClusterID?
        for (endpoint, result) in heads {
            let head: SignedTreeHeadResponse
            switch result {
            case .success(let h): head = h
            case .failure(let error):
                guard requireAll else { continue }
                throw FaunaClientError(.unavailable, "cannot pin the key of \(endpoint): \(error). Pin when every member is up, or use `fctl trust init --keys FILE`")
            }
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: head.signature.publicKey) else {
                throw FaunaClientError(.verificationFailed, "\(endpoint) (\(head.nodeID)) sent a public key of \(head.signature.publicKey.count) bytes, want 32")
            }
            // The node's own signature shows it holds the key it sent.
            guard key.isValidSignature(head.signature.signature, for: head.head.canonicalBytes) else {
                throw FaunaClientError(.verificationFailed, "\(endpoint) (\(head.nodeID)) signed its tree head with a key other than the one it sent")
            }
            if let known = clusterID, known != head.head.clusterID {
                throw FaunaClientError(.verificationFailed, "nodes disagree on the cluster ID: \(known) and \(head.head.clusterID) (\(head.nodeID) at \(endpoint))")
            }
            clusterID = head.head.clusterID
            guard !members.contains(where: { $0.nodeID == head.nodeID }) else {
                throw FaunaClientError(.invalidRequest, "two endpoints answered as \(head.nodeID); check the configuration")
            }
            guard !members.contains(where: { $0.publicKey.rawRepresentation == key.rawRepresentation }) else {
                throw FaunaClientError(.verificationFailed, "\(head.nodeID) at \(endpoint) presents the key of another member (a copied node.key?)")
            }
            members.append(.init(nodeID: head.nodeID, publicKey: key))
        }
        guard let clusterID else { throw FaunaClientError(.unavailable, "no node answered") }
        if requireAll {
            let listed = try await self.members().map(\.nodeID)
            let missing = listed.filter { id in !members.contains { $0.nodeID == id } }
            guard missing.isEmpty else {
                throw FaunaClientError(
                    .invalidRequest,
                    "cannot pin on first use: the cluster lists \(listed.count) members but only \(members.count) are configured here "
                        + "(missing \(missing.map { "\($0)" }.joined(separator: ", "))); a quorum of a partial set proves nothing. "
                        + "Configure every member (--config), or use `fctl trust init --keys FILE`")
            }
        }
        return TrustedCluster(name: name, clusterID: clusterID, members: members.sorted { $0.nodeID < $1.nodeID })
    }

    /// Reads `key` from the node at `servedBy` (the leader if nil) and proves it: the journal
    /// entry at its mod revision writes exactly this key and value; the entry's leaf is in the
    /// tree of a head signed by a quorum of `trust`'s members; that head is consistent with the
    /// trusted one. Returns nil if the key does not exist (absence is not provable: the tree
    /// commits to entries, not to the key space).
    /// - Throws: `verificationFailed` naming the check that failed and the node.
    public func verifiedGet(
        _ key: [UInt8], revision: Revision? = nil, servedBy: Endpoint? = nil, trust: TrustedCluster
    ) async throws(FaunaClientError) -> VerifiedRecord? {
        let node: Endpoint
        if let servedBy { node = servedBy } else { node = try await findLeader() }
        guard let record = try await get(key, revision: revision, servedBy: node) else { return nil }
        if let asOf = revision, asOf != .zero, record.record.modRevision > asOf {
            throw FaunaClientError(
                .verificationFailed, "\(node) answered a read as of revision \(asOf) with a record written at \(record.record.modRevision)")
        }
        let revision = record.record.modRevision.rawValue
        // Independent: the entry that wrote the record, and the node's current head (its size).
        async let entryAnswer = Self.result { () throws(FaunaClientError) in try await self.entryProof(at: revision, key: key, from: node) }
        async let currentAnswer = Self.result { () throws(FaunaClientError) in try await self.signedTreeHead(of: node) }
        let answer = try await entryAnswer.get()
        let entry = answer.entry
        let current = try await currentAnswer.get()
        guard entry.index == revision else {
            throw FaunaClientError(.verificationFailed, "\(node) sent journal entry \(entry.index) when asked for \(revision)")
        }
        let writtenBy: String
        let effectProof = answer.effect?.1
        switch EntryPayload.check(entry, effectProof: effectProof, writes: key, value: record.record.value) {
        case .success(let how): writtenBy = how
        case .failure(let why):
            throw FaunaClientError(.verificationFailed, "the record \(node) served is not what its journal entry \(revision) wrote: \(why)")
        }
        let (signed, signers, before, after) = try await proveHead(from: node, current: current, covering: revision, trust: trust) { size throws(FaunaClientError) in
            let inclusion = try await self.inclusionProof(ofEntry: revision, treeSize: size, from: node)
            do {
                return (try inclusion.rootHash(fromLeafHash: entry.leafHash), inclusion)
            } catch {
                throw FaunaClientError(.verificationFailed, "inclusion proof of entry \(revision) in tree size \(size) from \(node): \(error)")
            }
        }
        guard let inclusion = signed.inclusion else { throw FaunaClientError(.internal, "no inclusion proof kept") }
        let proof = EntryProof(entry: entry, inclusion: inclusion, signedHead: signed.head)
        do {
            try proof.verify(clusterID: trust.clusterID, members: trust.members.map(\.publicKey))
        } catch {
            throw FaunaClientError(.verificationFailed, "entry proof: \(error)")
        }
        let (trusted, removed) = try await droppingRemovedMembers(after, from: node)
        return VerifiedRecord(
            record: record, proof: proof, signers: signers, writtenBy: writtenBy, effectProof: effectProof, servedBy: node, trust: trusted,
            trustedBefore: before, removedMembers: removed)
    }

    /// Advances the trusted state to the cluster's current head: signed by a quorum and
    /// consistent with the trusted head.
    public func verifyHead(servedBy: Endpoint? = nil, trust: TrustedCluster) async throws(FaunaClientError) -> VerifiedHead {
        let node: Endpoint
        if let servedBy { node = servedBy } else { node = try await findLeader() }
        let current = try await signedTreeHead(of: node)
        let (signed, signers, before, after) = try await proveHead(from: node, current: current, covering: 0, trust: trust) { size throws(FaunaClientError) in
            (try await self.signedTreeHead(of: node, treeSize: size).head.rootHash, nil)
        }
        let (trusted, removed) = try await droppingRemovedMembers(after, from: node)
        return VerifiedHead(head: signed.head, signers: signers, trust: trusted, trustedBefore: before, removedMembers: removed)
    }

    /// Moves the trusted state of a cluster to the keys of its restored continuation
    /// (`fctl trust accept-restore`, docs/AUDIT.md §13). The keys a client accepts are those
    /// the restore declared in committed `addVoter` entries (context `key=`; the cluster's last
    /// 64 membership changes are read), minus members removed after them; and the cluster is
    /// accepted only if
    ///
    /// - it has the trusted cluster ID;
    /// - its current head is signed by a majority of those declared keys;
    /// - that head is consistent with the trusted head, which a majority of the old members
    ///   signed: the restored history extends exactly what the client trusted;
    /// - every declaring entry is a leaf of that head (inclusion proofs).
    ///
    /// - Returns: the new trusted state (the old members' keys dropped) and the entries that
    ///   declared the keys.
    /// - Throws: `verificationFailed` naming the check that failed; `invalidRequest` if no
    ///   entry after the trusted head declares a key (not a restored cluster).
    public func acceptRestore(trust: TrustedCluster) async throws(FaunaClientError) -> (head: VerifiedHead, declaredAt: [UInt64]) {
        let node = try await findLeader()
        let current = try await signedTreeHead(of: node)
        let from = trust.head.treeSize
        var keys: [NodeID: [UInt8]] = [:]
        var declaredAt: [UInt64] = []
        var changes: [JournalEntry] = []
        // All recent changes, not only those after the trusted head: a client that trusted a
        // head beyond the backup must hear that the history was cut (the consistency check
        // below fails), not that there is nothing to accept.
        for index in try await membershipChanges(after: 0, from: node) {
            let entry = try await entryProof(at: index.rawValue, key: [], from: node).entry
            guard entry.index == index.rawValue, entry.type == 1, let change = ConfChange(decoding: entry.payload) else {
                throw FaunaClientError(.verificationFailed, "\(node) named entry \(index) as a membership change; it is not one")
            }
            changes.append(entry)
            switch change.kind {
            case .addVoter:
                if let key = RestoreContext.publicKey(in: change.context) {
                    keys[change.nodeID] = key
                    declaredAt.append(entry.index)
                }
            case .remove: keys[change.nodeID] = nil
            case .addLearner: break
            }
        }
        guard !declaredAt.isEmpty else {
            throw FaunaClientError(
                .invalidRequest,
                "no recent membership change declares a member key: \(node) serves no restore of a cluster (trusted tree size \(from))")
        }
        var members: [TrustedCluster.MemberKey] = []
        for (id, raw) in keys.sorted(by: { $0.key < $1.key }) {
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
                throw FaunaClientError(.verificationFailed, "entry declaring \(id)'s key holds \(raw.count) bytes, want an Ed25519 key")
            }
            members.append(.init(nodeID: id, publicKey: key))
        }
        var candidate = trust
        candidate.members = members
        candidate.membershipCheckedSize = 0
        let (signed, signers, before, after) = try await proveHead(from: node, current: current, covering: 0, trust: candidate) { size throws(FaunaClientError) in
            (try await self.signedTreeHead(of: node, treeSize: size).head.rootHash, nil)
        }
        for entry in changes {
            let inclusion = try await inclusionProof(ofEntry: entry.index, treeSize: signed.head.head.treeSize, from: node)
            do {
                try inclusion.verify(leafHash: entry.leafHash, treeHead: signed.head.head)
            } catch {
                throw FaunaClientError(.verificationFailed, "membership change \(entry.index) from \(node) is not in the head it signed: \(error)")
            }
        }
        var accepted = after
        accepted.membershipCheckedSize = signed.head.head.treeSize
        return (VerifiedHead(head: signed.head, signers: signers, trust: accepted, trustedBefore: before, removedMembers: []), declaredAt)
    }


    /// Removals are leaves: drops the pinned key of every member whose removal was committed
    /// up to the trusted head, each proven by its entry's inclusion in that (quorum-verified)
    /// head, so that a removed member's key — a decommissioned disk, a leaked key — no longer
    /// counts toward a quorum. `node` names the recent membership changes (the last 64); a
    /// node that leaves one out only keeps a key counting, as before; one that names an entry
    /// that is not a membership change in the tree is refused. Additions never extend the
    /// pinned set: a new member counts only after `fctl trust init --force`.
    func droppingRemovedMembers(
        _ trust: TrustedCluster, from node: Endpoint
    ) async throws(FaunaClientError) -> (TrustedCluster, [NodeID]) {
        let size = trust.head.treeSize
        guard size > trust.membershipCheckedSize else { return (trust, []) }
        let indexes = try await membershipChanges(after: trust.membershipCheckedSize, from: node)
        var out = trust
        var removed: [NodeID] = []
        for index in indexes where index.rawValue > trust.membershipCheckedSize && index.rawValue <= size {
            let entry = try await entryProof(at: index.rawValue, key: [], from: node).entry
            let inclusion = try await inclusionProof(ofEntry: index.rawValue, treeSize: size, from: node)
            guard entry.index == index.rawValue, entry.type == 1, let change = ConfChange(decoding: entry.payload) else {
                throw FaunaClientError(.verificationFailed, "\(node) named entry \(index) as a membership change; it is not one")
            }
            do {
                try inclusion.verify(leafHash: entry.leafHash, treeHead: trust.head)
            } catch {
                throw FaunaClientError(.verificationFailed, "membership change \(index) from \(node) is not in the trusted tree of size \(size): \(error)")
            }
            if change.kind == .remove, out.members.contains(where: { $0.nodeID == change.nodeID }) {
                out.members.removeAll { $0.nodeID == change.nodeID }
                removed.append(change.nodeID)
            }
        }
        out.membershipCheckedSize = size
        return (out, removed)
    }

    /// The common part of a verified read and a head check: picks the size (the node's applied
    /// size, at least the trusted size and `covering`), has `root` say which root a head of
    /// that size must have, collects a quorum of signatures for it, and advances the trusted
    /// state with a consistency proof.
    ///
    /// The inclusion proof, every member's signature and the consistency proof are fetched
    /// concurrently (they depend only on the size); the checks run once all are in.
    func proveHead(
        from node: Endpoint, current: SignedTreeHeadResponse, covering index: UInt64, trust: TrustedCluster,
        root: @escaping @Sendable (UInt64) async throws(FaunaClientError) -> (MerkleHash, InclusionProof?)
    ) async throws(FaunaClientError) -> (
        signed: (head: SignedTreeHead, inclusion: InclusionProof?), signers: [NodeID], before: TreeHead, after: TrustedCluster
    ) {
        guard current.head.clusterID == trust.clusterID else {
            throw FaunaClientError(
                .verificationFailed,
                "\(node) is in cluster \(current.head.clusterID), want the trusted \(trust.clusterID) (a cluster created anew, e.g. by "
                    + "`tools/cluster reset`, is another cluster: trust it with `fctl trust init --force`)")
        }
        var size = max(current.head.treeSize, index)
        if size < trust.head.treeSize {
            // The node is behind what we trust, or the cluster lost history (restored from an
            // older backup). Give the node a moment, then decide.
            size = trust.head.treeSize
            do {
                _ = try await signedTreeHead(of: node, treeSize: size, within: .seconds(3))
            } catch {
                let largest = await statusAll().compactMap { try? $0.1.get().treeSize }.max() ?? current.head.treeSize
                if largest < size {
                    throw FaunaClientError(
                        .verificationFailed,
                        "rollback: the trusted tree has \(trust.head.treeSize) entries but no node has more than \(largest): the cluster's history was rolled back (restored from an older backup?)")
                }
                throw FaunaClientError(.unavailable, "\(node) is behind the trusted tree size \(size); ask another node (--node)")
            }
        }
        let before = trust.head
        let (older, newer) = size < before.treeSize ? (size, before.treeSize) : (before.treeSize, size)
        let treeSize = size
        async let rootAnswer = Self.result { () throws(FaunaClientError) in try await root(treeSize) }
        async let heads = gatherHeads(size: treeSize)
        async let consistencyAnswer = Self.result { () throws(FaunaClientError) in
            older == 0 || older == newer
                ? ConsistencyProof(oldSize: older, newSize: newer, path: [])
                : try await self.consistencyProof(from: older, to: newer, at: node)
        }
        let (rootHash, inclusion) = try await rootAnswer.get()
        let head = TreeHead(clusterID: trust.clusterID, treeSize: size, rootHash: rootHash)
        let (signed, signers) = try Self.quorum(for: head, among: await heads, trust: trust, proofFrom: node)
        let consistency = try await consistencyAnswer.get()
        var state = trust.state
        do {
            try state.advance(to: signed, consistency: consistency)
        } catch {
            let what = error.code == .forkedHistory || error.code == .inconsistentHistory ? "fork or rollback" : "history"
            throw FaunaClientError(
                .verificationFailed, "\(what): the head of size \(size) does not extend the trusted head of size \(before.treeSize) (\(node)): \(error)")
        }
        var after = trust
        after.head = state.head
        return ((signed, inclusion), signers, before, after)
    }

    /// Runs `body`, its typed error kept in the result (for `async let`).
    static func result<T>(_ body: () async throws(FaunaClientError) -> T) async -> Result<T, FaunaClientError> {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    /// Every node's own signed head at `size` (a node behind is retried for up to 3 s).
    func gatherHeads(size: UInt64) async -> [(Endpoint, Result<SignedTreeHeadResponse, FaunaClientError>)] {
        await withTaskGroup(of: (Endpoint, Result<SignedTreeHeadResponse, FaunaClientError>).self) { tasks in
            for endpoint in endpoints {
                tasks.addTask {
                    (endpoint, await Self.result { () throws(FaunaClientError) in
                        try await self.signedTreeHead(of: endpoint, treeSize: size, within: .seconds(3))
                    })
                }
            }
            var out: [(Endpoint, Result<SignedTreeHeadResponse, FaunaClientError>)] = []
            for await answer in tasks { out.append(answer) }
            return out
        }
    }

    /// Keeps the signatures over exactly `head` among `answers`.
    /// - Throws: `verificationFailed` (no quorum) saying who signed what.
    static func quorum(
        for head: TreeHead, among answers: [(Endpoint, Result<SignedTreeHeadResponse, FaunaClientError>)],
        trust: TrustedCluster, proofFrom node: Endpoint
    ) throws(FaunaClientError) -> (SignedTreeHead, [NodeID]) {
        var signatures: [TreeHeadSignature] = []
        var signers: [NodeID] = []
        var dissent: [String] = []
        /// Valid signatures by trusted members over other roots of this size.
        var otherRoots: [MerkleHash: [NodeID]] = [:]
        func trustedSigner(_ answer: SignedTreeHeadResponse) -> NodeID? {
            guard let member = trust.member(withKey: answer.signature.publicKey),
                let key = try? Curve25519.Signing.PublicKey(rawRepresentation: answer.signature.publicKey),
                key.isValidSignature(answer.signature.signature, for: answer.head.canonicalBytes)
            else { return nil }
            return member
        }
        for (endpoint, result) in answers {
            switch result {
            case .success(let answer):
                guard let member = trustedSigner(answer), answer.head.clusterID == head.clusterID, answer.head.treeSize == head.treeSize else {
                    dissent.append("\(answer.nodeID) at \(endpoint): head of another cluster or size, or signed by an untrusted key")
                    continue
                }
                if answer.head.rootHash == head.rootHash {
                    if !signers.contains(member) {
                        signatures.append(answer.signature)
                        signers.append(member)
                    }
                } else {
                    otherRoots[answer.head.rootHash, default: []].append(member)
                }
            case .failure(let error):
                dissent.append("\(endpoint): \(error.code)")
            }
        }
        let signed = SignedTreeHead(head: head, signatures: signatures)
        do {
            try signed.verify(clusterID: trust.clusterID, members: trust.members.map(\.publicKey))
        } catch {
            func names(_ ids: [NodeID]) -> String { ids.sorted().map { "\($0)" }.joined(separator: ", ") }
            if let (root, quorum) = otherRoots.first(where: { Set($0.value).count >= trust.quorum }) {
                throw FaunaClientError(
                    .verificationFailed,
                    "what \(node) sent leads to root \(head.rootHash) for tree size \(head.treeSize), but a quorum (\(names(quorum))) signed root \(root) "
                        + "for that size: \(node)'s record, entry or inclusion proof is false"
                        + (signers.isEmpty ? "" : "; only \(names(signers)) signed the root it leads to"))
            }
            throw FaunaClientError(
                .verificationFailed,
                "no quorum: the tree head of size \(head.treeSize) with root \(head.rootHash) that \(node)'s answer leads to is signed by "
                    + "\(signers.count) of \(trust.members.count) trusted members (\(names(signers))), want \(trust.quorum)"
                    + (otherRoots.isEmpty ? "" : "; " + otherRoots.map { "\(names($0.value)) signed root \($0.key)" }.sorted().joined(separator: "; "))
                    + (dissent.isEmpty ? "" : "; " + dissent.sorted().joined(separator: "; ")))
        }
        return (signed, signers.sorted())
    }
}

/// Whether a journal entry wrote a given key and value (docs/AUDIT.md §10 step 2).
public enum EntryPayload {
    /// For a v2 leaf (`entry.effects` set): `.success(how)` if the entry succeeded and
    /// `effectProof` shows a put of exactly `value` under `key` among its committed effects;
    /// an entry that wrote nothing (put-if-absent on an existing key, an expired session, a
    /// replay, a failed compare's untaken branch) fails. For a v1 leaf: what the entry
    /// proposes (`check(_:writes:value:)`), with "effect not proven (leaf v1)" appended.
    public static func check(
        _ entry: JournalEntry, effectProof: EffectProof?, writes key: [UInt8], value: [UInt8]
    ) -> Result<String, EntryPayloadMismatch> {
        guard let summary = entry.effects else {
            return check(entry, writes: key, value: value).map { "\($0); effect not proven (leaf v1)" }
        }
        guard summary.outcome == .success else {
            return .failure(EntryPayloadMismatch("entry \(entry.index) wrote nothing: its committed outcome is \(summary.outcome)"))
        }
        guard let effectProof else {
            return .failure(EntryPayloadMismatch("entry \(entry.index) did not write this key (no such effect among its \(summary.count))"))
        }
        guard effectProof.summary == summary else {
            return .failure(EntryPayloadMismatch("the effect proof is for another effects summary than entry \(entry.index)'s"))
        }
        do {
            try effectProof.verify(Effect.put(key: key, value: value))
        } catch {
            return .failure(EntryPayloadMismatch("entry \(entry.index) did not write this value under this key: \(error.reason)"))
        }
        switch summary.branch {
        case .none: return .success("put")
        case .then: return .success("txn (then branch)")
        case .else: return .success("txn (else branch)")
        }
    }

    /// What a v1 leaf can show: `.success(how)` if `entry` proposes exactly `value` under `key`: a put, or a put in either
    /// branch of a transaction (which branch ran depends on state the entry does not carry,
    /// so "txn" says the branch is not proven). Else `.failure(what the entry does)`.
    public static func check(_ entry: JournalEntry, writes key: [UInt8], value: [UInt8]) -> Result<String, EntryPayloadMismatch> {
        guard entry.type == 0 else { return .failure(EntryPayloadMismatch("entry \(entry.index) is a configuration change")) }
        let proposal: KVProposal
        do { proposal = try KVProposal(decoding: entry.payload) } catch {
            return .failure(EntryPayloadMismatch("entry \(entry.index) does not decode: \(error.reason)"))
        }
        func matches(_ put: KVPut) -> Bool { put.key == key && put.value == value }
        switch proposal.command {
        case .put(let put):
            if matches(put) { return .success("put") }
            return .failure(EntryPayloadMismatch(
                put.key == key ? "entry \(entry.index) puts another value (\(put.value.count) bytes) under this key" : "entry \(entry.index) puts another key"))
        case .txn(let txn):
            let puts = (txn.success + txn.failure).compactMap { op -> KVPut? in if case .put(let p) = op { p } else { nil } }
            if puts.contains(where: matches) { return .success("txn (branch taken not proven)") }
            return .failure(EntryPayloadMismatch("entry \(entry.index) is a txn that puts no such value under this key"))
        case .deleteRange: return .failure(EntryPayloadMismatch("entry \(entry.index) is a delete"))
        case .compact: return .failure(EntryPayloadMismatch("entry \(entry.index) is a compaction"))
        case .initCluster: return .failure(EntryPayloadMismatch("entry \(entry.index) records the cluster ID"))
        case .upgradeLeaves: return .failure(EntryPayloadMismatch("entry \(entry.index) starts leaf v2"))
        case .upgradeState(let level): return .failure(EntryPayloadMismatch("entry \(entry.index) takes the state to level \(level)"))
        case .leaseGrant, .leaseRevoke, .leaseCheckpoint: return .failure(EntryPayloadMismatch("entry \(entry.index) is a lease command"))
        case .auth: return .failure(EntryPayloadMismatch("entry \(entry.index) changes users or roles"))
        }
    }
}

/// What a journal entry does instead of writing the expected record.
public struct EntryPayloadMismatch: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The context of the `addVoter` entries a restore commits (docs/AUDIT.md §13): the member's
/// addresses as a membership change carries them, and its new tree-head key, which address
/// parsers ignore. `peer=HOST:PORT,client=HOST:PORT,key=<64 hex digits>`.
public enum RestoreContext {
    public static func encode(peer: String, client: String, publicKey: [UInt8]) -> [UInt8] {
        let hex = publicKey.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
        return Array("peer=\(peer),client=\(client),key=\(hex)".utf8)
    }

    /// The key `context` declares; nil if it declares none (an ordinary membership change).
    public static func publicKey(in context: [UInt8]) -> [UInt8]? {
        let text = String(decoding: context, as: UTF8.self)
        guard let field = text.split(separator: ",").first(where: { $0.hasPrefix("key=") }),
            let raw = TrustStore.hexBytes(String(field.dropFirst(4))), raw.count == 32
        else { return nil }
        return raw
    }
}
