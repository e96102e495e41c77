import FaunaKV
import FaunaRaft
import Foundation
import Testing

@testable import FaunaStore

/// Encryption at rest (docs/SECURITY.md "Encryption at rest", ADR 0013): values never reach a
/// file in clear, the state and tree are those of a plaintext store, and every key problem is a
/// refusal that names it.
@Suite("Encryption at rest")
struct EncryptionTests {
    static let keyA = MasterKey(bytes: Array(repeating: 0xA5, count: 32), path: "keyA")
    static let keyB = MasterKey(bytes: (0..<32).map { UInt8($0) }, path: "keyB")

    static func options(_ key: MasterKey?) -> Store.Options {
        var o = Store.Options()
        o.masterKey = key
        return o
    }

    /// Puts whose values hold `marker`, mixed with the usual workload.
    static func markedWorkload(_ range: ClosedRange<UInt64>, marker: String) -> [Entry] {
        workload(range).map { e in
            e.index.rawValue % 3 == 0 && e.type == .normal && e.index.rawValue > 1
                ? putEntry(e.index.rawValue, key: "secret-\(e.index.rawValue % 7)", value: "\(marker)-\(e.index.rawValue)")
                : e
        }
    }

    /// The files under `root` (every depth) whose bytes contain `marker`.
    static func filesContaining(_ marker: String, under root: String) -> [String] {
        let needle = Data(marker.utf8)
        var found: [String] = []
        let walker = FileManager.default.enumerator(atPath: root)
        while let name = walker?.nextObject() as? String {
            let path = "\(root)/\(name)"
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                let data = FileManager.default.contents(atPath: path)
            else { continue }
            if data.range(of: needle) != nil { found.append(name) }
        }
        return found
    }

    static func marker() -> String { "MARKER\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))" }

    @Test func valuesAreSealedOnDiskAndTheStateAndTreeAreThoseOfAPlainStore() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let marker = Self.marker()
        let entries = Self.markedWorkload(1...300, marker: marker)
        let plainDigest: StateDigest
        do {
            let plain = try Store(path: dir.sub("plain"))
            try plain.applyLogged(entries)
            try plain.flushState()
            let sealed = try Store(path: dir.sub("sealed"), options: Self.options(Self.keyA))
            try sealed.applyLogged(entries)
            try sealed.flushState()
            #expect(try sealed.stateDigest() == plain.stateDigest())
            #expect(sealed.treeHead.rootHash == plain.treeHead.rootHash)
            #expect(try sealed.journalRecord(at: LogIndex(3))?.entry == entries[2])
            plainDigest = try plain.stateDigest()
            plain.close()
            sealed.close()
        }
        // The search finds the marker where values are stored as they are (the WAL and SSTs)...
        #expect(!Self.filesContaining(marker, under: dir.sub("plain")).isEmpty)
        // ...and nowhere in the encrypted directory: entries, records, history, effects, WAL.
        #expect(Self.filesContaining(marker, under: dir.sub("sealed")) == [])
        // Reopened with the key, everything reads back.
        let reopened = try Store(path: dir.sub("sealed"), options: Self.options(Self.keyA))
        defer { reopened.close() }
        #expect(try reopened.stateDigest() == plainDigest)
        let audit = try reopened.auditJournal()
        #expect(audit.entries == 300 && audit.problem == nil)
    }

    @Test func aWrongMissingOrUnneededKeyIsRefusedAndNothingChanges() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let store = try Store(path: dir.sub("n1"), options: Self.options(Self.keyA))
            try store.applyLogged(workload(1...20))
            store.close()
        }
        func refusal(_ options: Store.Options) -> StoreError? {
            do {
                let s = try Store(path: dir.sub("n1"), options: options)
                s.close()
                return nil
            } catch { return error }
        }
        let noKey = refusal(Store.Options())
        #expect(noKey?.code == .encryptionKey)
        #expect(noKey?.message.contains("is encrypted") == true)
        let otherKey = refusal(Self.options(Self.keyB))
        #expect(otherKey?.code == .encryptionKey)
        #expect(otherKey?.message.contains(Self.keyA.fingerprintHex) == true)
        // Still opens with its key, unchanged.
        let store = try Store(path: dir.sub("n1"), options: Self.options(Self.keyA))
        #expect(store.appliedIndex == LogIndex(20))
        store.close()
    }

    @Test func keyFilesMustBeTheOwnersAndHold64HexDigits() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.sub("master.key")
        func load() -> StoreError? {
            do { _ = try MasterKey.load(path: path); return nil } catch { return error }
        }
        #expect(load()?.message.contains("No such file") == true)
        let good = String(repeating: "ab", count: 32) + "\n"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(good.utf8), attributes: [.posixPermissions: 0o644]))
        #expect(load()?.message.contains("mode 644") == true)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        #expect(load() == nil)
        #expect(try MasterKey.load(path: path).fingerprint == MasterKey(bytes: Array(repeating: 0xAB, count: 32)).fingerprint)
        for bad in ["ab", String(repeating: "zz", count: 32), String(repeating: "ab", count: 33)] {
            try Data(bad.utf8).write(to: URL(fileURLWithPath: path))
            #expect(load()?.code == .encryptionKey, "\(bad)")
        }
    }

    @Test func aPlainDirectoryIsSealedWhenOpenedWithAKey() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let marker = Self.marker()
        let digest: StateDigest
        do {
            let plain = try Store(path: dir.sub("n1"))
            try plain.applyLogged(Self.markedWorkload(1...200, marker: marker))
            try plain.flushState()
            digest = try plain.stateDigest()
            plain.close()
        }
        #expect(!Self.filesContaining(marker, under: dir.sub("n1")).isEmpty)
        do {
            let sealed = try Store(path: dir.sub("n1"), options: Self.options(Self.keyA))
            #expect(sealed.keyring != nil)
            #expect(try sealed.stateDigest() == digest)
            try sealed.applyLogged(Self.markedWorkload(201...240, marker: marker))
            sealed.close()
        }
        #expect(Self.filesContaining(marker, under: dir.sub("n1")) == [])
        #expect(!FileManager.default.fileExists(atPath: dir.sub("n1/db.upgrade")))
        #expect(!FileManager.default.fileExists(atPath: dir.sub("n1/db.old")))
        let reopened = try Store(path: dir.sub("n1"), options: Self.options(Self.keyA))
        defer { reopened.close() }
        #expect(reopened.appliedIndex == LogIndex(240))
        #expect(try reopened.auditJournal().problem == nil)
    }

    @Test func aRotatedDataKeySealsNewValuesAndOldOnesStayReadable() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let first: UInt32
        do {
            let store = try Store(path: dir.sub("n1"), options: Self.options(Self.keyA))
            first = try #require(store.keyring?.currentKeyID)
            try store.applyLogged(workload(1...100))
            store.close()
        }
        do {
            var o = Self.options(Self.keyA)
            o.rotateDataKey = true
            let store = try Store(path: dir.sub("n1"), options: o)
            let keyring = try #require(store.keyring)
            #expect(keyring.keyIDs.count == 2 && keyring.keyIDs.first == first && keyring.currentKeyID != first)
            try store.applyLogged(workload(101...200))
            // The newest entry is sealed with the new key (the id follows the tag byte).
            let raw = try #require(try store.db.get(store.cfs.log.sealed(by: nil), RaftKey.entry(LogIndex(200))))
            #expect(Array(raw[1...4]) == bigEndianBytes32(keyring.currentKeyID))
            let old = try #require(try store.db.get(store.cfs.log.sealed(by: nil), RaftKey.entry(LogIndex(50))))
            #expect(Array(old[1...4]) == bigEndianBytes32(first))
            store.close()
        }
        // A new master key: the data keys are wrapped again, nothing else is rewritten.
        do {
            var o = Self.options(Self.keyB)
            o.previousMasterKey = Self.keyA
            let store = try Store(path: dir.sub("n1"), options: o)
            #expect(store.keyring?.masterFingerprintHex == Self.keyB.fingerprintHex)
            store.close()
        }
        let store = try Store(path: dir.sub("n1"), options: Self.options(Self.keyB))
        defer { store.close() }
        #expect(store.keyring?.keyIDs.count == 2)
        #expect(try store.auditJournal().entries == 200)
        #expect(throws: StoreError.self) { try Store(path: dir.sub("n1x"), options: { var o = Store.Options(); o.rotateDataKey = true; return o }()) }
    }

    @Test func aValueMovedToAnotherKeyOrDamagedDoesNotOpen() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(path: dir.sub("n1"), options: Self.options(Self.keyA))
        defer { store.close() }
        try store.applyLogged([Entry(term: Term(1), index: LogIndex(1)), putEntry(2, key: "a", value: "alpha"), putEntry(3, key: "b", value: "beta")])
        let plainKV = store.cfs.kv.sealed(by: nil)
        let sealedA = try #require(try store.db.get(plainKV, bytes("a")))
        #expect(try store.db.get(store.cfs.kv, bytes("a")) != nil)
        // An attacker with the disk swaps b's record for a's: it no longer opens.
        try store.db.put(plainKV, bytes("b"), sealedA, sync: false)
        #expect(throws: RocksDBError.self) { try store.db.get(store.cfs.kv, bytes("b")) }
        var damaged = sealedA
        damaged[damaged.count - 1] ^= 1
        try store.db.put(plainKV, bytes("a"), damaged, sync: false)
        do {
            _ = try store.db.get(store.cfs.kv, bytes("a"))
            Issue.record("a damaged value opened")
        } catch {
            #expect(error.code == .corruption && error.message.contains("does not decrypt"))
        }
        // A value in clear where values are sealed is refused too.
        try store.db.put(plainKV, bytes("c"), [1, 2, 3], sync: false)
        #expect(throws: RocksDBError.self) { try store.db.get(store.cfs.kv, bytes("c")) }
    }

    @Test func anEncryptedSnapshotInstallsOnlyWithTheClustersKey() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let sender = try Store(path: dir.sub("sender"), options: Self.options(Self.keyA))
        defer { sender.close() }
        try sender.applyLogged(workload(1...150))
        func install(into name: String, key: MasterKey?) throws -> Store {
            do {
                let source = try sender.makeSnapshotSource()
                defer { source.close() }
                let receiver = try Store(path: dir.sub(name), options: Self.options(key))
                defer { receiver.close() }
                let install = try SnapshotReceiver(store: receiver, manifest: source.manifest)
                while let chunk = try source.nextChunk(maxBytes: 1 << 16) { try install.receive(chunk) }
                try install.finish(hardState: HardState(term: Term(1), vote: nil, commit: LogIndex(0)))
            }
            return try Store(path: dir.sub(name), options: Self.options(key))
        }
        let installed = try install(into: "same", key: Self.keyA)
        #expect(try installed.stateDigest() == sender.stateDigest())
        #expect(installed.keyring?.keyIDs == sender.keyring?.keyIDs)
        installed.close()
        do {
            _ = try install(into: "plain", key: nil)
            Issue.record("an encrypted snapshot installed without a key")
        } catch let error as StoreError {
            #expect(error.code == .snapshotInvalid && error.message.contains("is encrypted"))
        }
        do {
            _ = try install(into: "other", key: Self.keyB)
            Issue.record("an encrypted snapshot installed with another key")
        } catch let error as StoreError {
            #expect(error.code == .snapshotInvalid && error.message.contains("fingerprint"))
        }
    }
}
