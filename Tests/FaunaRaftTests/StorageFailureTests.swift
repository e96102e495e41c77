import Testing

@testable import FaunaRaft

/// A storage that cannot read records it holds (a damaged disk) must not crash the core: it
/// hands out nothing it could not read and reports the error, and the node stops
/// (`RaftStorage`: anything but a `RaftStorageError` is fatal for the node, fail-stop).
@Suite struct StorageFailureTests {
    struct DamagedRecord: Error, Equatable {}

    /// `MemoryStorage` whose entries cannot be read.
    final class DamagedStorage: RaftStorage {
        let base: MemoryStorage
        init(_ base: MemoryStorage) { self.base = base }
        func initialState() throws -> (HardState, ConfState) { try base.initialState() }
        func entries(from low: LogIndex, to high: LogIndex, maxBytes: Int) throws -> [Entry] { throw DamagedRecord() }
        func term(at index: LogIndex) throws -> Term { try base.term(at: index) }
        func firstIndex() throws -> LogIndex { try base.firstIndex() }
        func lastIndex() throws -> LogIndex { try base.lastIndex() }
        func snapshot() throws -> Snapshot { try base.snapshot() }
    }

    @Test func unreadableCommittedEntriesAreReportedNotTrapped() throws {
        let storage = DamagedStorage(MemoryStorage(bootstrap: [NodeID(1), NodeID(2), NodeID(3)]))
        let node = try RaftNode(config: RaftConfig(id: NodeID(1), randomSeed: 1), storage: storage)
        #expect(node.hasReady)
        let ready = node.ready()
        #expect(ready.committedEntries.isEmpty)
        #expect(ready.confState == nil)
        #expect(node.storageFailure as? DamagedRecord == DamagedRecord())
        node.advance(ready)
        #expect(node.ready().committedEntries.isEmpty, "nothing is handed out after a storage failure")
    }
}
