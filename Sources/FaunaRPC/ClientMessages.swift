import FaunaKV
import FaunaRaft

// docs/PROTOCOL.md "Client messages". Writes carry the exact `KVProposal` bytes the leader
// proposes as entry data, reads a `KVRangeRequest`; both reuse FaunaKV's codecs.

/// A write: put, delete range, transaction or compaction, as one `KVProposal`.
public struct WriteRequest: Hashable, Sendable {
    /// The decoded, validated proposal.
    public let proposal: KVProposal
    /// Its encoding: the frame body, and the data of the entry the leader proposes.
    public let proposalBytes: [UInt8]

    /// A write of `proposal` (the caller validates it first, `KVProposal.validate()`).
    public init(_ proposal: KVProposal) {
        self.proposal = proposal
        self.proposalBytes = proposal.encoded()
    }

    /// Decodes and validates `proposalBytes` (FaunaKV's rules).
    public init(proposalBytes: [UInt8]) throws(RPCDecodingError) {
        do {
            self.proposal = try KVProposal(decoding: proposalBytes)
        } catch {
            throw RPCDecodingError(.invalidValue, "write proposal: \(error.reason)")
        }
        guard proposal.principal == nil else {
            throw RPCDecodingError(.invalidValue, "write proposal: names a principal; the node sets it from the connection's user")
        }
        self.proposalBytes = proposalBytes
    }
}

/// A user name and password that bind the connection to that user (`authenticate`). The
/// password travels inside TLS; the node hashes it with the stored salt and compares.
public struct AuthenticateRequest: Hashable, Sendable, CustomStringConvertible {
    public var user: [UInt8]
    public var password: [UInt8]
    public static let passwordBytesMax = 1024
    /// Never the password (requests may be logged).
    public var description: String { "AuthenticateRequest(user: \(String(decoding: user, as: UTF8.self)), password: <\(password.count) bytes>)" }

    public init(user: [UInt8], password: [UInt8]) {
        self.user = user
        self.password = password
    }

    func encode(into w: inout WireWriter) {
        w.lengthPrefixed(user)
        w.lengthPrefixed(password)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let user = try r.lengthPrefixed("user", max: KVAuthLimits.nameBytesMax)
        let password = try r.lengthPrefixed("password", max: Self.passwordBytesMax)
        guard !user.isEmpty, !password.isEmpty else {
            throw RPCDecodingError(.invalidValue, "authenticate: got an empty user name or password, want both")
        }
        self.init(user: user, password: password)
    }
}

/// How fresh a read must be (docs/RELIABILITY.md "Reads").
public enum ReadConsistency: UInt8, Hashable, Sendable, CaseIterable {
    /// ReadIndex: sees every write committed before the read began. The default.
    case linearizable = 0
    /// The local replica's applied state; may be stale, works without a leader.
    case serializable = 1
}

/// A read of a key range (a get is a range of one key, `KeyRange.single`).
public struct ReadRequest: Hashable, Sendable {
    /// What to read.
    public var range: KVRangeRequest
    /// How fresh.
    public var consistency: ReadConsistency

    /// A read of `range`, linearizable by default.
    public init(_ range: KVRangeRequest, consistency: ReadConsistency = .linearizable) {
        self.range = range
        self.consistency = consistency
    }
}

/// A host and port (cluster.toml's `peer` and `client` addresses).
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    /// A host name or IP address literal (IPv6 without brackets); 1...255 bytes.
    public var host: String
    /// The TCP port.
    public var port: UInt16

    /// `host:port`.
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6]:port`; nil if malformed.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, host.utf8.count <= RPCLimits.hostBytesMax else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A stable error code (swift-nio style: a struct, so new codes do not break callers; unknown
/// codes from newer peers decode as themselves).
public struct RPCErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The wire value.
    public var rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// This node is not the leader; retry at `leaderHint` if present.
    public static let notLeader = RPCErrorCode(rawValue: 1)
    /// No leader is known (election in progress) or the node is shutting down; retry later.
    public static let unavailable = RPCErrorCode(rawValue: 2)
    /// A queue or limit is full (proposals, reads, in-flight requests); back off.
    public static let overloaded = RPCErrorCode(rawValue: 3)
    /// The request did not complete in time; a write may still commit (retry with the same
    /// session sequence to stay exactly-once).
    public static let timeout = RPCErrorCode(rawValue: 4)
    /// The revision asked for is below the compacted revision.
    public static let compacted = RPCErrorCode(rawValue: 5)
    /// The revision asked for is above the current revision.
    public static let futureRevision = RPCErrorCode(rawValue: 6)
    /// The request breaks a rule or limit (message says which).
    public static let invalidRequest = RPCErrorCode(rawValue: 7)
    /// A bug or an unexpected failure on the node.
    public static let internalError = RPCErrorCode(rawValue: 8)
    /// A peer hello named another cluster or another node.
    public static let peerRejected = RPCErrorCode(rawValue: 9)
    /// The node does not implement this request kind (yet).
    public static let unsupported = RPCErrorCode(rawValue: 10)
    /// The node has not applied as far as the request needs (a tree size, a revision) or
    /// has no cluster ID yet; retry shortly or ask another node.
    public static let behind = RPCErrorCode(rawValue: 11)
    /// The lease named does not exist (never granted, revoked or expired).
    public static let leaseNotFound = RPCErrorCode(rawValue: 12)
    /// A plaintext request on a port that takes TLS only (sent in plaintext, then the
    /// connection is closed).
    public static let tlsRequired = RPCErrorCode(rawValue: 13)
    /// Authentication is enabled and the connection is bound to no user: authenticate first.
    public static let authRequired = RPCErrorCode(rawValue: 14)
    /// Unknown user or wrong password (which one is not said).
    public static let authFailed = RPCErrorCode(rawValue: 15)
    /// The connection's user may not do this (message says what it lacks).
    public static let permissionDenied = RPCErrorCode(rawValue: 16)
    /// A peer hello from a node whose removal from the cluster the answering node has applied
    /// (same node ID, same public key): the dialler was removed and should stop.
    public static let memberRemoved = RPCErrorCode(rawValue: 17)

    public var description: String {
        switch self {
        case .notLeader: "notLeader"
        case .unavailable: "unavailable"
        case .overloaded: "overloaded"
        case .timeout: "timeout"
        case .compacted: "compacted"
        case .futureRevision: "futureRevision"
        case .invalidRequest: "invalidRequest"
        case .internalError: "internalError"
        case .peerRejected: "peerRejected"
        case .unsupported: "unsupported"
        case .behind: "behind"
        case .leaseNotFound: "leaseNotFound"
        case .tlsRequired: "tlsRequired"
        case .authRequired: "authRequired"
        case .authFailed: "authFailed"
        case .permissionDenied: "permissionDenied"
        case .memberRemoved: "memberRemoved"
        default: "code\(rawValue)"
        }
    }
}

/// Where the leader is, as far as the answering node knows.
public struct LeaderHint: Hashable, Sendable {
    /// The leader.
    public var nodeID: NodeID
    /// Its client address, if the answering node knows it.
    public var clientAddress: Endpoint?

    /// A hint naming `nodeID`.
    public init(nodeID: NodeID, clientAddress: Endpoint? = nil) {
        self.nodeID = nodeID
        self.clientAddress = clientAddress
    }
}

/// A failed request: the body of an `error` frame.
public struct RPCErrorResponse: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var code: RPCErrorCode
    /// Human-readable detail, at most `RPCLimits.messageBytesMax` bytes of UTF-8 (longer
    /// messages are cut at a character boundary).
    public var message: String
    /// For `notLeader` (and possibly `unavailable`): where to retry.
    public var leaderHint: LeaderHint?

    /// An error response.
    public init(_ code: RPCErrorCode, _ message: String, leaderHint: LeaderHint? = nil) {
        self.code = code
        self.message = RPCErrorResponse.truncated(message, bytesMax: RPCLimits.messageBytesMax)
        self.leaderHint = leaderHint
    }

    /// The longest prefix of `text` of whole characters within `bytesMax` UTF-8 bytes.
    static func truncated(_ text: String, bytesMax: Int) -> String {
        guard text.utf8.count > bytesMax else { return text }
        var bytes = 0
        var end = text.startIndex
        for i in text.indices {
            let size = text[i].utf8.count
            if bytes + size > bytesMax { break }
            bytes += size
            end = text.index(after: i)
        }
        return String(text[..<end])
    }

    public var description: String {
        "\(code): \(message)" + (leaderHint.map { " (leader \($0.nodeID)\($0.clientAddress.map { " at \($0)" } ?? ""))" } ?? "")
    }
}

// MARK: - Codecs

extension ReadRequest {
    func encode(into w: inout WireWriter) {
        w.u8(consistency.rawValue)
        w.raw(range.encoded())
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let raw = try r.u8("consistency")
        guard let consistency = ReadConsistency(rawValue: raw) else {
            throw RPCDecodingError(.unknownTag, "read consistency: got \(raw), want 0 or 1")
        }
        let rest = try r.raw("range request", count: r.remaining)
        do {
            self.init(try KVRangeRequest(decoding: rest), consistency: consistency)
        } catch {
            throw RPCDecodingError(.invalidValue, "read range request: \(error.reason)")
        }
    }
}

extension Endpoint {
    func encode(into w: inout WireWriter) {
        w.string(host)
        w.u8(UInt8(truncatingIfNeeded: port >> 8))
        w.u8(UInt8(truncatingIfNeeded: port))
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let host = try r.string("host", max: RPCLimits.hostBytesMax)
        guard !host.isEmpty else { throw RPCDecodingError(.invalidValue, "\(r.context) host: got 0 bytes, want >= 1") }
        let hi = try r.u8("port")
        let lo = try r.u8("port")
        self.init(host: host, port: UInt16(hi) << 8 | UInt16(lo))
    }
}

extension RPCErrorResponse {
    func encode(into w: inout WireWriter) {
        w.varint(UInt64(code.rawValue))
        w.string(message)
        var flags: UInt8 = 0
        if leaderHint != nil { flags |= 0x01 }
        if leaderHint?.clientAddress != nil { flags |= 0x02 }
        w.u8(flags)
        if let leaderHint {
            w.varint(leaderHint.nodeID.rawValue)
            leaderHint.clientAddress?.encode(into: &w)
        }
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let rawCode = try r.varint("code")
        guard let code = UInt16(exactly: rawCode) else {
            throw RPCDecodingError(.limitExceeded, "error code: got \(rawCode), want <= 65535")
        }
        let message = try r.string("message", max: RPCLimits.messageBytesMax)
        let flags = try r.flags("leader hint flags", allowed: 0x03)
        guard flags != 0x02 else {
            throw RPCDecodingError(.invalidValue, "leader hint flags: got an address without a leader, want 0x01 with 0x02")
        }
        var hint: LeaderHint?
        if flags & 0x01 != 0 {
            let id = try r.nodeID("leader")
            hint = LeaderHint(nodeID: id, clientAddress: flags & 0x02 != 0 ? try Endpoint(from: &r) : nil)
        }
        self.init(RPCErrorCode(rawValue: code), message, leaderHint: hint)
    }
}
