import FaunaRaft

/// Versioned binary encodings of the `raft` and `journal` column families' values
/// (docs/STORAGE.md). Every decoder validates lengths, versions and enum values and throws
/// instead of trapping: these bytes come from disk.
enum RaftLogCodec {
    static let version: UInt8 = 1

    /// `u8 version=1 | u64 term | u8 type | payload` (the index is in the key).
    static func encode(entry: Entry) -> [UInt8] {
        var w = ByteWriter(capacity: 10 + entry.data.count)
        w.u8(version)
        w.u64(entry.term.rawValue)
        w.u8(entry.type.rawValue)
        w.raw(entry.data)
        return w.bytes
    }

    static func decodeEntry(_ bytes: [UInt8], index: LogIndex) throws(DecodeError) -> Entry {
        var r = ByteReader(bytes)
        try r.version(version)
        let term = try r.u64()
        let rawType = try r.u8()
        guard let type = EntryType(rawValue: rawType) else {
            throw DecodeError(reason: "entry type: got \(rawType), want 0 or 1")
        }
        return Entry(term: Term(term), index: index, type: type, data: r.rest())
    }

    /// Only the term of an encoded entry (term lookups need no payload copy).
    static func decodeTerm(_ bytes: [UInt8]) throws(DecodeError) -> Term {
        var r = ByteReader(bytes)
        try r.version(version)
        return Term(try r.u64())
    }

    /// `u8 version=1 | u64 term | u64 vote (0 = none) | u64 commit`.
    static func encode(hardState h: HardState) -> [UInt8] {
        var w = ByteWriter(capacity: 25)
        w.u8(version)
        w.u64(h.term.rawValue)
        w.u64(h.vote?.rawValue ?? 0)
        w.u64(h.commit.rawValue)
        return w.bytes
    }

    static func decodeHardState(_ bytes: [UInt8]) throws(DecodeError) -> HardState {
        var r = ByteReader(bytes)
        try r.version(version)
        let term = try r.u64(), vote = try r.u64(), commit = try r.u64()
        try r.end()
        return HardState(term: Term(term), vote: vote == 0 ? nil : NodeID(vote), commit: LogIndex(commit))
    }

    /// `u8 version=1 | u32 voterCount | u64 voter... | u32 learnerCount | u64 learner...`.
    static func encode(confState c: ConfState) -> [UInt8] {
        var w = ByteWriter(capacity: 9 + 8 * (c.voters.count + c.learners.count))
        w.u8(version)
        appendConfState(c, to: &w)
        return w.bytes
    }

    static func appendConfState(_ c: ConfState, to w: inout ByteWriter) {
        w.u32(UInt32(c.voters.count))
        c.voters.forEach { w.u64($0.rawValue) }
        w.u32(UInt32(c.learners.count))
        c.learners.forEach { w.u64($0.rawValue) }
    }

    static func decodeConfState(_ bytes: [UInt8]) throws(DecodeError) -> ConfState {
        var r = ByteReader(bytes)
        try r.version(version)
        let c = try readConfState(&r)
        try r.end()
        return c
    }

    static func readConfState(_ r: inout ByteReader) throws(DecodeError) -> ConfState {
        func ids(_ r: inout ByteReader) throws(DecodeError) -> [NodeID] {
            let count = Int(try r.u32())
            // Check the count against the bytes present before allocating anything.
            guard count <= r.remaining / 8 else {
                throw DecodeError(reason: "member count: got \(count), want ≤ \(r.remaining / 8)")
            }
            var out: [NodeID] = []
            out.reserveCapacity(count)
            for _ in 0..<count { out.append(NodeID(try r.u64())) }
            return out
        }
        let voters = try ids(&r)
        let learners = try ids(&r)
        return ConfState(voters: voters, learners: learners)
    }

    /// `u8 version=1 | u64 index | u64 term | conf state (counts + ids, as above)`.
    static func encode(snapshot m: SnapshotMetadata) -> [UInt8] {
        var w = ByteWriter(capacity: 32)
        w.u8(version)
        w.u64(m.index.rawValue)
        w.u64(m.term.rawValue)
        appendConfState(m.confState, to: &w)
        return w.bytes
    }

    static func decodeSnapshot(_ bytes: [UInt8]) throws(DecodeError) -> SnapshotMetadata {
        var r = ByteReader(bytes)
        try r.version(version)
        let index = try r.u64(), term = try r.u64()
        let conf = try readConfState(&r)
        try r.end()
        return SnapshotMetadata(index: LogIndex(index), term: Term(term), confState: conf)
    }
}
