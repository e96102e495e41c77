import FaunaKV
import FaunaRaft
import Foundation
import Testing

@testable import FaunaStore

@Suite("Snapshots")
struct SnapshotTests {
    /// Streams every chunk of `source` into `receiver` through the byte encodings.
    func transfer(_ source: SnapshotSource, to receiver: SnapshotReceiver, chunkBytes: Int) throws -> Int {
        var chunks = 0
        while let chunk = try source.nextChunk(maxBytes: chunkBytes) {
            try receiver.receive(try SnapshotChunk(decoding: chunk.encoded))
            chunks += 1
        }
        return chunks
    }

    @Test func roundTripGivesIdenticalDigestAndTreeRoot() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let sender = try Store(path: dir.sub("sender"))
        defer { sender.close() }
        let all = workload(1...400)
        try sender.applyLogged(Array(all[0..<200]))
        try sender.applyLogged(Array(all[200...]), confState: ConfState(voters: [NodeID(1), NodeID(2)]))
        let source = try sender.makeSnapshotSource()
        defer { source.close() }
        let manifest = try SnapshotManifest(decoding: source.manifest.encoded)
        #expect(manifest == source.manifest)
        #expect(manifest.metadata.index == LogIndex(400))
        #expect(manifest.metadata.confState == ConfState(voters: [NodeID(1), NodeID(2)]))

        do {
            // The receiver has a log and a vote of its own.
            let receiver = try Store(path: dir.sub("receiver"))
            try receiver.raftLog.persist(RaftLogUpdate(
                entries: entries(1...3, term: 7), hardState: HardState(term: Term(7), vote: NodeID(2), commit: LogIndex(1))))
            try receiver.applyLogged(workload(1...3, term: 7))
            let install = try SnapshotReceiver(store: receiver, manifest: manifest)
            let chunks = try transfer(source, to: install, chunkBytes: 4096)
            #expect(chunks >= manifest.files.count)
            try install.finish(hardState: try receiver.raftLog.initialState().0)
            receiver.close()
        }
        let installed = try Store(path: dir.sub("receiver"))
        defer { installed.close() }
        #expect(try installed.stateDigest() == sender.stateDigest())
        #expect(installed.treeHead.treeSize == 400)
        #expect(installed.treeHead.rootHash == sender.treeHead.rootHash)
        let (hard, conf) = try installed.raftLog.initialState()
        #expect(hard.term == Term(7) && hard.vote == NodeID(2) && hard.commit == LogIndex(400))
        #expect(conf == manifest.metadata.confState)
        #expect(try installed.raftLog.firstIndex() == LogIndex(401))
        #expect(try installed.raftLog.lastIndex() == LogIndex(400))
        #expect(try installed.raftLog.term(at: LogIndex(400)) == Term(1))
        // Both continue identically.
        try sender.applyLogged(workload(401...420))
        try installed.applyLogged(workload(401...420))
        #expect(try installed.stateDigest() == sender.stateDigest())
        #expect(installed.treeHead.rootHash == sender.treeHead.rootHash)
        #expect(!FileManager.default.fileExists(atPath: dir.sub("receiver/db.incoming")))
        #expect(!FileManager.default.fileExists(atPath: dir.sub("receiver/db.old")))
    }

    /// A checkpoint of a node still on schema 3 (its sessions with their order index, schema
    /// 4's keys), 5 (a key per Merkle node, the hard state in `meta`), 6 (sessions in `meta`)
    /// or 7 (a record of effects per entry) installs on a schema 8 node, which upgrades it when
    /// it opens the result and then evicts as the sender does; a checkpoint of an unknown
    /// schema is refused.
    @Test(arguments: [3, 5, 6, 7])
    func anOlderSchemaCheckpointInstallsAndIsUpgraded(schema: Int) throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = Store.Options()
        options.sessionsMax = 4
        var rng = SplitMix(seed: 17)
        var clients = StoreSessionOrderTests.Clients()
        let (first, senders) = clients.entries(1..<120, &rng)
        let sender = try Store(path: dir.sub("sender"), options: options)
        defer { sender.close() }
        clients.renew(senders, try sender.applyLogged(first, sync: true).map(\.result))
        if schema == 3 {
            try StoreLayoutTests.makeSchemaThree(sender)
            #expect(try StoreLayoutTests.legacyOrderKeys(sender) == 4)
        } else if schema == 5 {
            try StoreLayoutTests.makeSchemaFive(sender)
        } else if schema == 6 {
            try StoreLayoutTests.makeSchemaSix(sender)
        } else {
            try StoreLayoutTests.makeSchemaSeven(sender)
        }
        do {
            let source = try sender.makeSnapshotSource()
            defer { source.close() }
            let receiver = try Store(path: dir.sub("receiver"), options: options)
            let install = try SnapshotReceiver(store: receiver, manifest: source.manifest)
            _ = try transfer(source, to: install, chunkBytes: 1 << 16)
            try install.finish(hardState: try receiver.raftLog.initialState().0)
            receiver.close()
        }
        let installed = try Store(path: dir.sub("receiver"), options: options)
        defer { installed.close() }
        #expect(try installed.db.get(installed.cfs.nodeMeta, MetaKey.schema) == [0, 0, 0, 8])
        #expect(try StoreLayoutTests.keys(installed, installed.cfs.meta).filter(KVSessionRecency.isSessionKey).isEmpty)
        #expect(try !StoreLayoutTests.keys(installed, installed.cfs.sessions).isEmpty)
        #expect(installed.treeHead == sender.treeHead)
        let size = installed.treeHead.treeSize
        #expect(try StoreLayoutTests.keys(installed, installed.cfs.merkle) == StoreLayoutTests.tileKeys(treeSize: size))
        // The root read back from the tiles (the sender's own tree is no longer in its layout).
        #expect(try installed.makeMerkleProver().rootHash(atSize: size) == sender.treeHead.rootHash)
        #expect(try installed.raftLog.firstIndex() == installed.appliedIndex + 1)
        #expect(try StoreLayoutTests.legacyOrderKeys(installed) == 0)
        #expect(try installed.stateDigest() == sender.stateDigest())
        let then = clients.entries(120..<240, &rng).entries
        let got = try installed.applyLogged(then).map(\.result)
        #expect(got == (try sender.applyLogged(then).map(\.result)))
        #expect(try installed.stateDigest() == sender.stateDigest())

        // A schema this build does not know is refused before anything is installed.
        try sender.db.put(sender.cfs.nodeMeta, MetaKey.schema, [0, 0, 0, 9], sync: true)
        let source = try sender.makeSnapshotSource()
        defer { source.close() }
        let other = try Store(path: dir.sub("other"), options: options)
        defer { other.close() }
        let install = try SnapshotReceiver(store: other, manifest: source.manifest)
        _ = try transfer(source, to: install, chunkBytes: 1 << 16)
        let refusal = #expect(throws: StoreError.self) { try install.finish(hardState: try other.raftLog.initialState().0) }
        #expect(refusal?.code == .snapshotInvalid && refusal?.message.contains("got 9") == true, "\(String(describing: refusal))")
    }

    @Test func tamperedChunkIsRejected() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let sender = try Store(path: dir.sub("sender"))
        defer { sender.close() }
        try sender.applyLogged(workload(1...50))
        let source = try sender.makeSnapshotSource()
        defer { source.close() }
        let receiver = try Store(path: dir.sub("receiver"))
        defer { receiver.close() }
        let install = try SnapshotReceiver(store: receiver, manifest: source.manifest)
        var rejected: StoreError? = nil
        while let chunk = try source.nextChunk(maxBytes: 1024) {
            var bad = chunk
            if !bad.data.isEmpty { bad.data[bad.data.count / 2] ^= 0x01 }
            do { try install.receive(bad) } catch { rejected = error; break }
        }
        #expect(rejected?.code == .snapshotInvalid)
        #expect(throws: StoreError.self) { try install.finish(hardState: HardState()) }
        // Out-of-order and out-of-range chunks are rejected too.
        #expect(throws: StoreError.self) { try install.receive(SnapshotChunk(fileIndex: 99, offset: 0, data: [])) }
        #expect(throws: StoreError.self) { try SnapshotChunk(decoding: [1, 0, 0, 0, 0]) }
        #expect(throws: StoreError.self) { try SnapshotManifest(decoding: [1, 2, 3]) }
    }

    @Test func interruptedInstallIsDiscardedOnReopen() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let sender = try Store(path: dir.sub("sender"))
        defer { sender.close() }
        try sender.applyLogged(workload(1...50))
        let source = try sender.makeSnapshotSource()
        defer { source.close() }
        do {
            let receiver = try Store(path: dir.sub("receiver"))
            try receiver.applyLogged(workload(1...5))
            let install = try SnapshotReceiver(store: receiver, manifest: source.manifest)
            if let chunk = try source.nextChunk(maxBytes: 100) { try install.receive(chunk) }
            receiver.close()
        }
        let reopened = try Store(path: dir.sub("receiver"))
        defer { reopened.close() }
        #expect(reopened.appliedIndex == LogIndex(5))
        #expect(!FileManager.default.fileExists(atPath: dir.sub("receiver/db.incoming")))
    }
}
