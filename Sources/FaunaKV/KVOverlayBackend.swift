/// A backend that reads `pending` — writes handed off for commit that `base` may not show yet —
/// over `base`. With it a caller can apply the next group of entries while the previous
/// group's batch is still being written (FaunaStore's pipelined apply): the state machine sees
/// exactly the state after the previous group either way.
///
/// Reads of keys `pending` writes come from `pending` (a nil write hides the key); all other
/// reads go to `base`. So `pending` must hold the final state of every key it names, which is
/// what one `KVWriteBatch` filled by `KVStateMachine.apply` holds.
public struct KVOverlayBackend<Base: KVBackend>: KVBackend {
    private let view: KVReadView

    public init(base: Base, pending: KVWriteBatch) {
        view = KVReadView(backend: base, base: pending)
    }

    public func record(forKey key: [UInt8]) throws -> KVRecord? { try view.record(forKey: key) }

    public func scanRecords(
        in range: KeyRange, reverse: Bool, _ body: (_ key: [UInt8], _ record: KVRecord) throws -> Bool
    ) throws {
        try view.scanRecords(in: range, reverse: reverse, body)
    }

    public func historyVersion(forKey key: [UInt8], atOrBefore revision: Revision) throws -> KVHistoryVersion? {
        try view.historyVersion(forKey: key, atOrBefore: revision)
    }

    public func scanHistory(
        in range: KeyRange, reverse: Bool, _ body: (_ key: [UInt8], _ version: KVHistoryVersion) throws -> Bool
    ) throws {
        try view.scanHistory(in: range, reverse: reverse, body)
    }

    public func metaValue(forKey key: [UInt8]) throws -> [UInt8]? { try view.metaValue(forKey: key) }

    public func scanMeta(in range: KeyRange, _ body: (_ key: [UInt8], _ value: [UInt8]) throws -> Bool) throws {
        try view.scanMeta(in: range, body)
    }

    public func scanSessionsByRecency(_ body: (_ lastUsed: Revision, _ client: ClientID) throws -> Bool) throws {
        try view.scanSessionsByRecency(body)
    }
}
