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
}
