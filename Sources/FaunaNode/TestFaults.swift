import Foundation

/// Deliberate misbehaviour for tests of clients and of the chaos harness: compiled into debug
/// builds only (release builds ignore the environment), chosen with `FAUNA_TEST_FAULT`:
///
/// - `lie-value`: reads answer every value with its last byte changed (or `?` if empty).
/// - `lie-proof`: inclusion proofs carry a changed first hash.
/// - `lie-forge`: reads answer a changed value; the journal entry at a record's revision is
///   forged to write that value; the tree heads this node signs are for the root the forged
///   entry and its real inclusion path lead to — a consistent lie only this node signs.
/// - `lie-unwritten`: a one-key read answers the value of a later committed put of that key
///   that wrote nothing (a put-if-absent that found the key, an expired session), at that
///   entry's revision, with genuine proofs of the entry: caught only by leaf v2 effects.
/// - `stale-reads`: linearizable reads are served from the local state at once, without
///   ReadIndex (the broken node the chaos harness must catch).
struct TestFaults: Sendable {
    var lieValue = false
    var lieProof = false
    var lieForge = false
    var lieUnwritten = false
    var staleReads = false

    static let current: TestFaults = {
        var faults = TestFaults()
        #if DEBUG
        let names = (ProcessInfo.processInfo.environment["FAUNA_TEST_FAULT"] ?? "").split(separator: ",")
        for name in names {
            switch name {
            case "lie-value": faults.lieValue = true
            case "lie-proof": faults.lieProof = true
            case "lie-forge": faults.lieForge = true
            case "lie-unwritten": faults.lieUnwritten = true
            case "stale-reads": faults.staleReads = true
            default: break
            }
        }
        #endif
        return faults
    }()

    var isActive: Bool { lieValue || lieProof || lieForge || lieUnwritten || staleReads }

    /// A value changed in a way a verifier must notice.
    static func corrupt(_ value: [UInt8]) -> [UInt8] {
        guard let last = value.last else { return Array("?".utf8) }
        return value.dropLast() + [last ^ 0x01]
    }
}
