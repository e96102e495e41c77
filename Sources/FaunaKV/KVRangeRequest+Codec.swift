// Public entry points to the range request and range result encodings, for the RPC layer
// (docs/PROTOCOL.md "read"): the same bytes as inside proposals and apply results
// (docs/KV-COMMANDS.md), so a read is encoded one way only.

extension KVRangeRequest {
    /// The encoding of docs/KV-COMMANDS.md "Range request" (as inside a transaction).
    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        encode(into: &w)
        return w.bytes
    }

    /// Decodes `encoded()`; every length is checked before allocating; never traps. Limits
    /// (key length, negative limit) are checked later by `KVStateMachine.range`, as for
    /// ranges inside transactions.
    public init(decoding bytes: [UInt8]) throws(KVDecodingError) {
        var r = ByteReader(bytes, context: "range request")
        try self.init(from: &r)
        try r.finish()
    }
}

extension KVRangeResult {
    /// The encoding of a range result as inside docs/KV-COMMANDS.md "Apply result" (the
    /// fields after the operation result tag 3): `u64 count | u8 hasMore | u64 revision |
    /// u32 recordCount | (u32 keyLength | key | record)*`.
    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        KVOperationResult.range(self).encode(into: &w)
        return Array(w.bytes.dropFirst())
    }

    /// Decodes `encoded()`; checks every count against the remaining bytes before allocating
    /// (the caller bounds the total size, e.g. by the frame size); never traps.
    public init(decoding bytes: [UInt8]) throws(KVDecodingError) {
        var r = ByteReader([3] + bytes, context: "range result")
        guard case .range(let result) = try KVOperationResult(from: &r) else {
            throw KVDecodingError(.invalidValue, "range result: got another operation result, want a range")
        }
        try r.finish()
        self = result
    }
}
