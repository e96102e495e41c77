import Testing

@testable import FaunaKV

/// Bytes of an ASCII literal: keys and values are `[UInt8]`, never String.
func b(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A seeded generator (SplitMix64): every property test replays from its seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One replica: a memory backend, the state machine and the next revision. Every command goes
/// through the entry codec (`apply(entryData:)`), as in production.
struct Harness {
    var backend = MemoryKVBackend()
    var machine: KVStateMachine
    var revision: UInt64 = 0
    /// The effects of the last `apply` (leaf v2).
    var lastEffects = KVEntryEffects.noCommand

    init(sessionsMax: Int = KVLimits.sessionsMaxDefault) {
        machine = KVStateMachine(sessionsMax: sessionsMax)
    }

    /// Applies `command` at the current revision + `gap`, in its own batch, and commits it.
    @discardableResult
    mutating func apply(_ command: KVCommand, session: ClientSession? = nil, gap: UInt64 = 1, as principal: [UInt8]? = nil) throws -> KVApplyResult {
        revision += gap
        var batch = KVWriteBatch()
        let data = KVProposal(session: session, command: command, principal: principal).encoded()
        let result = try machine.apply(entryData: data, at: Revision(revision), on: backend, into: &batch, effects: &lastEffects)
        backend.commit(batch)
        return result
    }

    /// Applies and requires `.success`; returns the branch flag and the operation results.
    @discardableResult
    mutating func succeed(
        _ command: KVCommand, session: ClientSession? = nil, gap: UInt64 = 1, as principal: [UInt8]? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> (succeeded: Bool, results: [KVOperationResult]) {
        let result = try apply(command, session: session, gap: gap, as: principal)
        guard case .success(let succeeded, let results) = result.outcome else {
            Issue.record("want success, got \(result.outcome)", sourceLocation: sourceLocation)
            return (false, [])
        }
        return (succeeded, results)
    }

    mutating func put(_ key: String, _ value: String, gap: UInt64 = 1) throws {
        try succeed(.put(KVPut(key: b(key), value: b(value))), gap: gap)
    }

    func get(_ key: String, at revision: UInt64? = nil) throws -> KVRecord? {
        try machine.get(b(key), at: revision.map { Revision($0) }, on: backend)
    }

    func value(_ key: String, at revision: UInt64? = nil) throws -> String? {
        try get(key, at: revision).map { String(decoding: $0.value, as: UTF8.self) }
    }

    func range(_ request: KVRangeRequest) throws -> KVRangeResult { try machine.range(request, on: backend) }

    /// The keys of a range read, as strings (for readable expectations).
    func keys(_ request: KVRangeRequest) throws -> [String] {
        try range(request).records.map { String(decoding: $0.key, as: UTF8.self) }
    }

    func digest() throws -> [UInt8] {
        var out: [UInt8] = []
        try machine.digestStream(on: backend) { out.append(contentsOf: $0) }
        return out
    }
}

/// A record as the state machine should have written it.
func record(_ value: String, create: UInt64, mod: UInt64, version: UInt64) -> KVRecord {
    KVRecord(value: b(value), createRevision: Revision(create), modRevision: Revision(mod), version: version)
}
