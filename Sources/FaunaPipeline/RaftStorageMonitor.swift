import FaunaRaft
import FaunaStore

/// The store's Raft log as the core reads it, remembering the first error that is not a
/// `RaftStorageError`: a log record that does not decode, a failed read. The core records the
/// same error (`RaftNode.storageFailure`) and stops; this keeps it as the store reported it,
/// and the owner thread checks both after every round and after every `ready()` and stops the
/// node (docs/RELIABILITY.md "Corrupt records", ADR 0006 "Storage failures").
///
/// Not thread-safe, and not Sendable: only the owner thread, which drives the core, uses it.
public final class RaftStorageMonitor: RaftStorage {
    let log: any EntryLog
    /// The first storage failure the core met, if any.
    public private(set) var failure: StoreError?

    public init(_ log: any EntryLog) { self.log = log }

    private func watch<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as RaftStorageError {
            throw error  // the log's conventions (compacted, not yet there), not damage
        } catch {
            if failure == nil { failure = StoreError(wrapping: error, "reading the Raft log") }
            throw error
        }
    }

    public func initialState() throws -> (HardState, ConfState) { try watch { try log.initialState() } }

    public func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws -> [Entry] {
        try watch { try log.entries(from: low, to: high, maxBytes: maxBytes) }
    }

    public func term(at index: LogIndex) throws -> Term { try watch { try log.term(at: index) } }
    public func firstIndex() throws -> LogIndex { try watch { try log.firstIndex() } }
    public func lastIndex() throws -> LogIndex { try watch { try log.lastIndex() } }
    public func snapshot() throws -> Snapshot { try watch { try log.snapshot() } }
}
