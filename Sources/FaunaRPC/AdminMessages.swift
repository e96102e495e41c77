import FaunaKV
import FaunaRaft

// docs/PROTOCOL.md "Admin messages": status, members, membership changes, leader transfer,
// hashkv. Snapshot save streams `SnapshotChunk`s (PeerMessages.swift).

/// What `status` reports about one node.
public struct NodeStatus: Hashable, Sendable {
    /// The answering node.
    public var nodeID: NodeID
    /// Its Raft role in `term`.
    public var role: RaftRole
    /// Whether it is a learner (non-voting) in its current configuration.
    public var isLearner: Bool
    /// Its current term.
    public var term: Term
    /// The leader it knows of, if any.
    public var leader: NodeID?
    /// The highest index it knows committed.
    public var commitIndex: LogIndex
    /// The highest index its state machine applied.
    public var appliedIndex: LogIndex
    /// The number of leaves in its audit tree (= applied entries).
    public var treeSize: UInt64
    /// The size of its database on disk.
    public var dbSizeBytes: UInt64
    /// Its record cache, if the request asked for it (`StatusRequest.withRecordCache`); nil
    /// otherwise.
    public var recordCache: RecordCacheStatus?
    /// The node's readiness checks (what its `/readyz` answers), if the request asked for
    /// them (`StatusRequest.withHealth`); nil otherwise.
    public var health: [HealthCheck]?

    /// A status report.
    public init(
        nodeID: NodeID, role: RaftRole, isLearner: Bool = false, term: Term, leader: NodeID?,
        commitIndex: LogIndex, appliedIndex: LogIndex, treeSize: UInt64, dbSizeBytes: UInt64,
        recordCache: RecordCacheStatus? = nil, health: [HealthCheck]? = nil
    ) {
        self.health = health
        self.nodeID = nodeID
        self.role = role
        self.isLearner = isLearner
        self.term = term
        self.leader = leader
        self.commitIndex = commitIndex
        self.appliedIndex = appliedIndex
        self.treeSize = treeSize
        self.dbSizeBytes = dbSizeBytes
        self.recordCache = recordCache
    }
}

/// What a `status` request asks for beyond the basic figures.
public struct StatusRequest: Hashable, Sendable {
    /// Also report the node's record cache (`NodeStatus.recordCache`). A node of a build
    /// before this field answers such a request with `invalidRequest` (docs/PROTOCOL.md).
    public var withRecordCache: Bool
    /// Also report the node's readiness checks (`NodeStatus.health`); implies
    /// `withRecordCache` on the wire (the answer's sections come in that order). A node of a
    /// build before this field answers `invalidRequest`.
    public var withHealth: Bool

    public init(withRecordCache: Bool = false, withHealth: Bool = false) {
        self.withRecordCache = withRecordCache || withHealth
        self.withHealth = withHealth
    }
}

/// One readiness check of a node: its name and, if it fails, why (docs/METRICS.md "Health").
public struct HealthCheck: Hashable, Sendable {
    public var name: String
    public var failure: String?
    public var ok: Bool { failure == nil }

    public init(name: String, failure: String?) {
        self.name = name
        self.failure = failure
    }

    static let countMax = 16
    static let nameBytesMax = 64
    static let failureBytesMax = 1024

    /// `text` cut at a character boundary to at most `bytesMax` UTF-8 bytes.
    static func truncated(_ text: String, bytesMax: Int) -> String {
        guard text.utf8.count > bytesMax else { return text }
        var out = ""
        for c in text {
            guard out.utf8.count + String(c).utf8.count <= bytesMax else { break }
            out.append(c)
        }
        return out
    }
}

/// A node's cache of current records for its apply path (docs/STORAGE.md "Tuning"), as of its
/// last applied chunk; the counters run from when its store was opened.
public struct RecordCacheStatus: Hashable, Sendable {
    /// The memory bound (0: the cache is off).
    public var budgetBytes: UInt64
    /// Memory held now: keys, values and the cache's tables.
    public var bytes: UInt64
    /// Keys cached now.
    public var entries: UInt64
    /// Reads of a current record the cache answered.
    public var hits: UInt64
    /// Reads that went to the database.
    public var misses: UInt64

    public init(budgetBytes: UInt64, bytes: UInt64, entries: UInt64, hits: UInt64, misses: UInt64) {
        self.budgetBytes = budgetBytes
        self.bytes = bytes
        self.entries = entries
        self.hits = hits
        self.misses = misses
    }
}

/// One cluster member.
public struct Member: Hashable, Sendable {
    /// Its ID.
    public var nodeID: NodeID
    /// Where peers reach it.
    public var peerAddress: Endpoint
    /// Where clients reach it.
    public var clientAddress: Endpoint
    /// Non-voting (receives the log only).
    public var isLearner: Bool
    /// Its tree-head signing key (Ed25519: 32 bytes); empty if unknown.
    public var publicKey: [UInt8]

    /// A member.
    public init(nodeID: NodeID, peerAddress: Endpoint, clientAddress: Endpoint, isLearner: Bool, publicKey: [UInt8] = []) {
        self.nodeID = nodeID
        self.peerAddress = peerAddress
        self.clientAddress = clientAddress
        self.isLearner = isLearner
        self.publicKey = publicKey
    }
}

/// A single-server membership change (thesis §4.1), answered with the new member list.
public enum MemberChange: Hashable, Sendable {
    /// Add a learner with these addresses (and key).
    case addLearner(Member)
    /// Make a learner a voter.
    case promote(NodeID)
    /// Remove a member.
    case remove(NodeID)
}

/// A node's state digest (docs/KV-COMMANDS.md "Digest"): equal on replicas that applied the
/// same entries.
public struct HashKVResult: Hashable, Sendable {
    /// The answering node.
    public var nodeID: NodeID
    /// The applied index the digest covers.
    public var appliedIndex: LogIndex
    /// The compacted revision at that point.
    public var compactRevision: Revision
    /// The digest (SHA-256: 32 bytes); at most 64 bytes.
    public var digest: [UInt8]
    /// The audit tree's size at `appliedIndex` (equal to it).
    public var treeSize: UInt64
    /// The audit tree's root hash at that size (32 bytes; empty if not reported).
    public var treeRoot: [UInt8]

    /// A digest report.
    public init(
        nodeID: NodeID, appliedIndex: LogIndex, compactRevision: Revision, digest: [UInt8], treeSize: UInt64 = 0,
        treeRoot: [UInt8] = []
    ) {
        self.nodeID = nodeID
        self.appliedIndex = appliedIndex
        self.compactRevision = compactRevision
        self.digest = digest
        self.treeSize = treeSize
        self.treeRoot = treeRoot
    }
}

// MARK: - Codecs

extension RaftRole {
    /// Wire values, fixed forever (independent of the enum's declaration order).
    var wireValue: UInt8 {
        switch self {
        case .follower: 0
        case .preCandidate: 1
        case .candidate: 2
        case .leader: 3
        }
    }

    init(wireValue: UInt8, _ context: String) throws(RPCDecodingError) {
        switch wireValue {
        case 0: self = .follower
        case 1: self = .preCandidate
        case 2: self = .candidate
        case 3: self = .leader
        default: throw RPCDecodingError(.unknownTag, "\(context) role: got \(wireValue), want 0...3")
        }
    }
}

extension NodeStatus {
    func encode(into w: inout WireWriter) {
        w.varint(nodeID.rawValue)
        w.u8(role.wireValue)
        w.u8((isLearner ? 0x01 : 0) | (leader != nil ? 0x02 : 0))
        w.varint(term.rawValue)
        if let leader { w.varint(leader.rawValue) }
        w.varint(commitIndex.rawValue)
        w.varint(appliedIndex.rawValue)
        w.varint(treeSize)
        w.varint(dbSizeBytes)
        if let c = recordCache {
            w.varint(c.budgetBytes)
            w.varint(c.bytes)
            w.varint(c.entries)
            w.varint(c.hits)
            w.varint(c.misses)
        }
        // Only after a record cache section (a request for health asks for both).
        if let health, recordCache != nil {
            let checks = health.prefix(HealthCheck.countMax)
            w.varint(UInt64(checks.count))
            for c in checks {
                w.string(HealthCheck.truncated(c.name, bytesMax: HealthCheck.nameBytesMax))
                w.u8(c.ok ? 0 : 1)
                if let failure = c.failure { w.string(HealthCheck.truncated(failure, bytesMax: HealthCheck.failureBytesMax)) }
            }
        }
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let id = try r.nodeID("node ID")
        let role = try RaftRole(wireValue: try r.u8("role"), r.context)
        let flags = try r.flags("status flags", allowed: 0x03)
        let term = Term(try r.varint("term"))
        let leader: NodeID? = flags & 0x02 != 0 ? try r.nodeID("leader") : nil
        self.init(
            nodeID: id, role: role, isLearner: flags & 0x01 != 0, term: term, leader: leader,
            commitIndex: LogIndex(try r.varint("commit index")), appliedIndex: LogIndex(try r.varint("applied index")),
            treeSize: try r.varint("tree size"), dbSizeBytes: try r.varint("db size"))
        // Optional and last: only in answers to a request that asked for it.
        if r.remaining > 0 {
            recordCache = RecordCacheStatus(
                budgetBytes: try r.varint("record cache budget"), bytes: try r.varint("record cache bytes"),
                entries: try r.varint("record cache entries"), hits: try r.varint("record cache hits"),
                misses: try r.varint("record cache misses"))
        }
        if r.remaining > 0 {
            let count = try r.varint("health check count")
            guard count <= UInt64(HealthCheck.countMax) else {
                throw RPCDecodingError(.invalidValue, "health check count: got \(count), want ≤ \(HealthCheck.countMax)")
            }
            var checks: [HealthCheck] = []
            for _ in 0..<count {
                let name = try r.string("health check name", max: HealthCheck.nameBytesMax)
                let failed = try r.flags("health check flags", allowed: 0x01) != 0
                let failure = failed ? try r.string("health check failure", max: HealthCheck.failureBytesMax) : nil
                checks.append(HealthCheck(name: name, failure: failure))
            }
            health = checks
        }
    }
}

extension StatusRequest {
    /// Empty for the plain request, so that nodes of earlier builds (which want an empty
    /// body) answer it as before.
    func encode(into w: inout WireWriter) {
        if withRecordCache || withHealth { w.u8((withRecordCache || withHealth ? 0x01 : 0) | (withHealth ? 0x02 : 0)) }
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        guard r.remaining > 0 else {
            self.init()
            return
        }
        let flags = try r.flags("status request flags", allowed: 0x03)
        guard flags != 0 else { throw RPCDecodingError(.invalidValue, "status request flags: got 0, want the byte left out") }
        guard flags & 0x02 == 0 || flags & 0x01 != 0 else {
            throw RPCDecodingError(.invalidValue, "status request flags: got 0x02, want bit 0 (withRecordCache) with bit 1 (withHealth)")
        }
        self.init(withRecordCache: true, withHealth: flags & 0x02 != 0)
    }
}

extension Member {
    /// Fewest bytes of one encoded member.
    static let encodedBytesMin = 10

    func encode(into w: inout WireWriter) {
        w.varint(nodeID.rawValue)
        peerAddress.encode(into: &w)
        clientAddress.encode(into: &w)
        w.flag(isLearner)
        w.lengthPrefixed(publicKey)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let id = try r.nodeID("member ID")
        let peer = try Endpoint(from: &r)
        let client = try Endpoint(from: &r)
        let learner = try r.flag("learner")
        let key = try r.lengthPrefixed("public key", max: RPCLimits.publicKeyBytesMax)
        self.init(nodeID: id, peerAddress: peer, clientAddress: client, isLearner: learner, publicKey: key)
    }

    /// `varint count | member*`, at most `RPCLimits.membersMax`.
    static func encodeList(_ members: [Member], into w: inout WireWriter) {
        w.varint(UInt64(members.count))
        for m in members { m.encode(into: &w) }
    }

    static func decodeList(_ r: inout WireReader) throws(RPCDecodingError) -> [Member] {
        let n = try r.itemCount("member count", max: RPCLimits.membersMax, minBytes: Member.encodedBytesMin)
        var members: [Member] = []
        members.reserveCapacity(n)
        for _ in 0..<n { members.append(try Member(from: &r)) }
        return members
    }
}

extension MemberChange {
    func encode(into w: inout WireWriter) {
        switch self {
        case .addLearner(let member):
            w.u8(1)
            member.encode(into: &w)
        case .promote(let id):
            w.u8(2)
            w.varint(id.rawValue)
        case .remove(let id):
            w.u8(3)
            w.varint(id.rawValue)
        }
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        switch try r.u8("change") {
        case 1:
            let member = try Member(from: &r)
            guard member.isLearner else {
                throw RPCDecodingError(.invalidValue, "add learner: got a voter, want learner flag 1")
            }
            self = .addLearner(member)
        case 2: self = .promote(try r.nodeID("promote"))
        case 3: self = .remove(try r.nodeID("remove"))
        case let tag: throw RPCDecodingError(.unknownTag, "member change: got \(tag), want 1...3")
        }
    }
}

extension HashKVResult {
    func encode(into w: inout WireWriter) {
        w.varint(nodeID.rawValue)
        w.varint(appliedIndex.rawValue)
        w.varint(compactRevision.rawValue)
        w.lengthPrefixed(digest)
        w.varint(treeSize)
        w.lengthPrefixed(treeRoot)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let id = try r.nodeID("node ID")
        let applied = LogIndex(try r.varint("applied index"))
        let compact = Revision(try r.varint("compact revision"))
        let digest = try r.lengthPrefixed("digest", max: RPCLimits.checksumBytesMax)
        let treeSize = try r.varint("tree size")
        let treeRoot = try r.lengthPrefixed("tree root", max: RPCLimits.checksumBytesMax)
        self.init(nodeID: id, appliedIndex: applied, compactRevision: compact, digest: digest, treeSize: treeSize, treeRoot: treeRoot)
    }
}
