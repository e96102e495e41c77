import FaunaKV
import Foundation
import Testing

@testable import FaunaStore

@Suite("Store layout")
struct StoreLayoutTests {
    @Test func sixColumnFamiliesAndZstdOnJournalAndHistory() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            try store.apply(workload(1...20), sync: true)
        }
        let families = try RocksDB.listColumnFamilies(path: dir.sub("n1/db"))
        #expect(Set(families) == ["default", "raft", "kv", "history", "journal", "merkle", "meta"])
        // The newest OPTIONS file records each family's compression.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.sub("n1/db"))
        let options = try #require(files.filter { $0.hasPrefix("OPTIONS-") }.max { Int($0.dropFirst(8))! < Int($1.dropFirst(8))! })
        let text = try String(contentsOfFile: dir.sub("n1/db/\(options)"), encoding: .utf8)
        var compression: [String: String] = [:]
        var family = ""
        for line in text.split(separator: "\n") {
            if line.hasPrefix("[CFOptions \"") { family = String(line.dropFirst(12).dropLast(2)) }
            if line.hasPrefix("  compression=") { compression[family] = String(line.dropFirst(14)) }
        }
        #expect(compression["journal"] == "kZSTD")
        #expect(compression["history"] == "kZSTD")
        #expect(compression["kv"] == "kLZ4Compression")
        // Insert hints (set through RocksDB's options-string parser) where they were asked for.
        var hinted: Set<String> = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("[CFOptions \"") { family = String(line.dropFirst(12).dropLast(2)) }
            if line.hasPrefix("  memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.0") { hinted.insert(family) }
        }
        #expect(hinted == ["kv", "history", "merkle"])

        // Debian's rocksdb-tools sees the same six families (when installed: tools/setup).
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/ldb") {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/ldb")
            p.arguments = ["--db=\(dir.sub("n1/db"))", "list_column_families"]
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            p.waitUntilExit()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(text.contains("{default, raft, kv, history, journal, merkle, meta}"), "ldb printed: \(text)")
        }
    }

    /// Schema 1 kept each key's current version in history too; it reads correctly under
    /// schema 2's rules, so opening it upgrades the number in place (ADR 0008).
    @Test func schemaOneIsUpgradedAndANewerSchemaIsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        func setSchema(_ version: UInt8) throws {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            try store.db.put(store.cfs.meta, MetaKey.schema, [0, 0, 0, version], sync: true)
        }
        func storedSchema() throws -> [UInt8]? {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            return try store.db.get(store.cfs.meta, MetaKey.schema)
        }
        let digest: StateDigest, currentDigest: StateDigest
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            try store.apply(workload(1...120), sync: true)
            digest = try store.stateDigest(at: Revision(60))
            currentDigest = try store.stateDigest(at: Revision(120))
        }
        #expect(try storedSchema() == [0, 0, 0, 2])
        try setSchema(1)
        do {  // what schema 1 also held: each current record in history at its mod revision
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            var copies = 0
            try store.makeKVBackend().scanRecords(in: .all, reverse: false) { key, record in
                let historyKey = HistoryKey(key: key, revision: record.modRevision).encoded
                try store.db.put(store.cfs.history, historyKey, KVHistoryValue.record(record).encoded, sync: false)
                copies += 1
                return true
            }
            #expect(copies == 37)
        }
        do {
            let store = try Store(path: dir.sub("n1"))
            defer { store.close() }
            #expect(try store.stateDigest(at: Revision(60)) == digest)
            #expect(try store.stateDigest(at: Revision(120)) == currentDigest)
        }
        #expect(try storedSchema() == [0, 0, 0, 2])
        try setSchema(3)
        #expect {
            _ = try Store(path: dir.sub("n1"))
        } throws: { error in
            "\(error)".contains("got 3, want 2") && "\(error)".contains("newer Fauna")
        }
    }
}
