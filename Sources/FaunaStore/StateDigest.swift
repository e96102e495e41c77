import Crypto
import FaunaKV
import FaunaRaft

/// SHA-256 of FaunaKV's canonical digest stream of the whole key-value state at an applied
/// index (like etcd's HashKV). Replicas that applied the same entries have equal digests.
public struct StateDigest: Sendable, Hashable, CustomStringConvertible {
    public let appliedIndex: LogIndex
    public let sha256: [UInt8]

    /// Constant-time comparison of the hashes (no early exit on the first differing byte).
    public static func == (a: StateDigest, b: StateDigest) -> Bool {
        guard a.appliedIndex == b.appliedIndex, a.sha256.count == b.sha256.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.sha256.count { diff |= a.sha256[i] ^ b.sha256[i] }
        return diff == 0
    }

    public var description: String {
        "\(appliedIndex):" + sha256.map { String($0, radix: 16).leftPadded(2) }.joined()
    }
}

extension StateDigest {
    /// The SHA-256 of the bytes `stream` hands its sink (FaunaKV's digest stream), as the
    /// digest at `appliedIndex`: for state stores other than `Store` (the node simulator's).
    public init(
        appliedIndex: LogIndex, hashing stream: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
    ) rethrows {
        var hasher = SHA256()
        try stream { hasher.update(bufferPointer: $0) }
        self.init(appliedIndex: appliedIndex, sha256: Array(hasher.finalize()))
    }
}

extension Store {
    /// The digest of the key-value state at the current applied index, read through one
    /// RocksDB snapshot taken while no apply runs (so index and state match).
    public func stateDigest() throws(StoreError) -> StateDigest {
        let (index, snapshot) = applyLock.withLock { (applied.index, db.makeSnapshot()) }
        let backend = RocksDBKVBackend(db: db, cfs: cfs, snapshot: snapshot)
        var hasher = SHA256()
        do {
            try kvStateMachine.digestStream(on: backend) { hasher.update(bufferPointer: $0) }
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError(.corruptRecord, "digest: \(error)")
        }
        return StateDigest(appliedIndex: index, sha256: Array(hasher.finalize()))
    }
}
