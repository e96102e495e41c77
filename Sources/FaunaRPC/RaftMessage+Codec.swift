import FaunaRaft

// docs/PROTOCOL.md "raftMessages". Each message: u8 type | varint from | varint to |
// varint term | u8 presence bits | the present fields in bit order. A field is present iff it
// differs from its default, so every message has exactly one encoding.

/// Presence bits of the optional fields of a Raft message.
enum RaftFieldBits {
    static let logTerm: UInt8 = 0x01
    static let index: UInt8 = 0x02
    static let entries: UInt8 = 0x04
    static let commit: UInt8 = 0x08
    static let reject: UInt8 = 0x10  // no payload: the bit is the value
    static let rejectHint: UInt8 = 0x20
    static let snapshot: UInt8 = 0x40
    static let context: UInt8 = 0x80
}

extension Message {
    /// The fewest bytes one encoded message takes (type, from, to, term, presence bits).
    static let encodedBytesMin = 5

    /// Appends the encoding of this message.
    public func encode(into w: inout WireWriter) {
        w.u8(type.rawValue)
        w.varint(from.rawValue)
        w.varint(to.rawValue)
        w.varint(term.rawValue)
        var bits: UInt8 = 0
        if logTerm != .zero { bits |= RaftFieldBits.logTerm }
        if index != .zero { bits |= RaftFieldBits.index }
        if !entries.isEmpty { bits |= RaftFieldBits.entries }
        if commit != .zero { bits |= RaftFieldBits.commit }
        if reject { bits |= RaftFieldBits.reject }
        if rejectHint != .zero { bits |= RaftFieldBits.rejectHint }
        if snapshot != nil { bits |= RaftFieldBits.snapshot }
        if !context.isEmpty { bits |= RaftFieldBits.context }
        w.u8(bits)
        if logTerm != .zero { w.varint(logTerm.rawValue) }
        if index != .zero { w.varint(index.rawValue) }
        if !entries.isEmpty {
            w.varint(UInt64(entries.count))
            for entry in entries { entry.encode(into: &w) }
        }
        if commit != .zero { w.varint(commit.rawValue) }
        if rejectHint != .zero { w.varint(rejectHint.rawValue) }
        if let snapshot { snapshot.encode(into: &w) }
        if !context.isEmpty { w.lengthPrefixed(context) }
    }

    /// Decodes one message; throws on anything `encode(into:)` cannot produce.
    public init(from r: inout WireReader) throws(RPCDecodingError) {
        let rawType = try r.u8("message type")
        guard let type = MessageType(rawValue: rawType) else {
            throw RPCDecodingError(.unknownTag, "raft message type: got \(rawType), want 1...12")
        }
        let from = try r.nodeID("message from")
        let to = try r.nodeID("message to")
        let term = Term(try r.varint("message term"))
        let bits = try r.u8("message field bits")
        self.init(type: type, from: from, to: to, term: term)
        if bits & RaftFieldBits.logTerm != 0 { logTerm = Term(try r.nonZeroVarint("message log term")) }
        if bits & RaftFieldBits.index != 0 { index = LogIndex(try r.nonZeroVarint("message index")) }
        if bits & RaftFieldBits.entries != 0 {
            let n = try r.itemCount("message entry count", max: Int.max, minBytes: Entry.encodedBytesMin)
            guard n > 0 else {
                throw RPCDecodingError(.invalidValue, "raft message entry count: got 0 with its presence bit set, want >= 1")
            }
            entries.reserveCapacity(n)
            for _ in 0..<n { entries.append(try Entry(from: &r)) }
        }
        if bits & RaftFieldBits.commit != 0 { commit = LogIndex(try r.nonZeroVarint("message commit")) }
        reject = bits & RaftFieldBits.reject != 0
        if bits & RaftFieldBits.rejectHint != 0 { rejectHint = LogIndex(try r.nonZeroVarint("message reject hint")) }
        if bits & RaftFieldBits.snapshot != 0 { snapshot = try Snapshot(from: &r) }
        if bits & RaftFieldBits.context != 0 {
            context = try r.lengthPrefixed("message context", max: RPCLimits.contextBytesMax)
            guard !context.isEmpty else {
                throw RPCDecodingError(.invalidValue, "raft message context: got 0 bytes with its presence bit set, want >= 1")
            }
        }
    }
}

extension Entry {
    /// The fewest bytes one encoded entry takes.
    static let encodedBytesMin = 4

    /// `varint term | varint index | u8 type | varint length | data`.
    public func encode(into w: inout WireWriter) {
        w.varint(term.rawValue)
        w.varint(index.rawValue)
        w.u8(type.rawValue)
        w.lengthPrefixed(data)
    }

    /// Decodes one entry.
    public init(from r: inout WireReader) throws(RPCDecodingError) {
        let term = Term(try r.varint("entry term"))
        let index = LogIndex(try r.varint("entry index"))
        let rawType = try r.u8("entry type")
        guard let type = EntryType(rawValue: rawType) else {
            throw RPCDecodingError(.unknownTag, "entry type: got \(rawType), want 0 or 1")
        }
        let data = try r.lengthPrefixed("entry data", max: Int(Int32.max))
        self.init(term: term, index: index, type: type, data: data)
    }
}

extension Snapshot {
    /// `metadata | varint length | data`.
    public func encode(into w: inout WireWriter) {
        metadata.encode(into: &w)
        w.lengthPrefixed(data)
    }

    /// Decodes a snapshot.
    public init(from r: inout WireReader) throws(RPCDecodingError) {
        let metadata = try SnapshotMetadata(from: &r)
        self.init(metadata: metadata, data: try r.lengthPrefixed("snapshot data", max: Int(Int32.max)))
    }
}

extension SnapshotMetadata {
    /// `varint index | varint term | conf state`.
    public func encode(into w: inout WireWriter) {
        w.varint(index.rawValue)
        w.varint(term.rawValue)
        confState.encode(into: &w)
    }

    /// Decodes snapshot metadata.
    public init(from r: inout WireReader) throws(RPCDecodingError) {
        let index = LogIndex(try r.varint("snapshot index"))
        let term = Term(try r.varint("snapshot term"))
        self.init(index: index, term: term, confState: try ConfState(from: &r))
    }
}

extension ConfState {
    /// `varint voterCount | varint id* | varint learnerCount | varint id*`, ids ascending.
    public func encode(into w: inout WireWriter) {
        for group in [voters, learners] {
            w.varint(UInt64(group.count))
            for id in group { w.varint(id.rawValue) }
        }
    }

    /// Decodes a conf state; ids must be non-zero, strictly ascending and the two groups
    /// disjoint (the invariant of `ConfState`), so decoding never silently normalises.
    public init(from r: inout WireReader) throws(RPCDecodingError) {
        var groups: [[NodeID]] = []
        for name in ["voter", "learner"] {
            let n = try r.itemCount("conf state \(name) count", max: RPCLimits.membersMax, minBytes: 1)
            var ids: [NodeID] = []
            ids.reserveCapacity(n)
            for _ in 0..<n {
                let id = try r.nodeID("conf state \(name)")
                if let last = ids.last, id <= last {
                    throw RPCDecodingError(.invalidValue, "conf state \(name)s: got \(id) after \(last), want strictly ascending ids")
                }
                ids.append(id)
            }
            groups.append(ids)
        }
        if let both = Set(groups[0]).intersection(groups[1]).min() {
            throw RPCDecodingError(.invalidValue, "conf state: got \(both) as voter and learner, want disjoint groups")
        }
        self.init(voters: groups[0], learners: groups[1])
    }
}

extension WireReader {
    /// A varint node ID; 0 ("no node") is rejected.
    mutating func nodeID(_ field: String) throws(RPCDecodingError) -> NodeID {
        let raw = try varint(field)
        guard raw != 0 else { throw RPCDecodingError(.invalidValue, "\(context) \(field): got node 0, want >= 1") }
        return NodeID(raw)
    }

    /// A varint that is present only when non-zero.
    mutating func nonZeroVarint(_ field: String) throws(RPCDecodingError) -> UInt64 {
        let raw = try varint(field)
        guard raw != 0 else {
            throw RPCDecodingError(.invalidValue, "\(context) \(field): got 0 with its presence bit set, want >= 1")
        }
        return raw
    }
}

/// The body of a `raftMessages` frame: `varint count | message*`.
public enum RaftBatchCodec {
    /// Encodes `messages` as one frame body.
    public static func encode(_ messages: [Message]) -> [UInt8] {
        var w = WireWriter(capacity: messages.reduce(8) { $0 + $1.sizeBytes })
        w.varint(UInt64(messages.count))
        for m in messages { m.encode(into: &w) }
        return w.bytes
    }

    /// Decodes a `raftMessages` body; at least one message.
    public static func decode(_ body: [UInt8]) throws(RPCDecodingError) -> [Message] {
        var r = WireReader(body, context: "raft messages")
        let n = try r.itemCount("count", max: Int.max, minBytes: Message.encodedBytesMin)
        guard n > 0 else { throw RPCDecodingError(.invalidValue, "raft messages count: got 0, want >= 1") }
        var messages: [Message] = []
        messages.reserveCapacity(n)
        for _ in 0..<n { messages.append(try Message(from: &r)) }
        try r.finish()
        return messages
    }
}
