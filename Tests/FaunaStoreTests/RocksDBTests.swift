import Foundation
import Testing

@testable import FaunaStore

@Suite("RocksDB wrapper")
struct RocksDBTests {
    static let families = [
        RocksDBColumnFamilyOptions(name: "a"),
        RocksDBColumnFamilyOptions(name: "z", compression: .zstd),
    ]

    @Test func putGetDeleteAcrossColumnFamilies() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let db = try RocksDB(path: dir.sub("db"), columnFamilies: Self.families)
        let a = try #require(db.columnFamily("a"))
        let z = try #require(db.columnFamily("z"))
        let batch = db.makeWriteBatch()
        batch.put(a, bytes("k1"), bytes("v1"))
        batch.put(z, bytes("k1"), bytes("other"))
        batch.put(a, [], [])
        #expect(batch.count == 3)
        try db.write(batch, sync: true)
        #expect(try db.get(a, bytes("k1")) == bytes("v1"))
        #expect(try db.get(z, bytes("k1")) == bytes("other"))
        #expect(try db.get(a, []) == [])
        #expect(try db.get(a, bytes("missing")) == nil)
        let del = db.makeWriteBatch()
        del.delete(a, bytes("k1"))
        try db.write(del, sync: false)
        #expect(try db.get(a, bytes("k1")) == nil)
        #expect(try db.get(z, bytes("k1")) == bytes("other"))
    }

    /// MultiGet answers as one get per key would: values, absent keys, duplicates, an empty key,
    /// a prefixed key space, sealed values, memtable and flushed files alike.
    @Test func multiGetAnswersAsGetsDo() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let db = try RocksDB(path: dir.sub("db"), columnFamilies: Self.families)
        let a = try #require(db.columnFamily("a"))
        let keyring = try Keyring.new(master: MasterKey(bytes: Array(repeating: 7, count: 32)))
        let spaces = [a, a.prefixed(by: [0, 1]), a.prefixed(by: [0, 2]).sealed(by: keyring)]
        for (n, cf) in spaces.enumerated() {
            let batch = db.makeWriteBatch()
            for i in 0..<300 where i % 3 != 0 { batch.put(cf, bytes("k\(i)"), bytes("v\(n)-\(i)")) }
            batch.put(cf, [], bytes("empty-\(n)"))
            try db.write(batch, sync: false)
            if n == 1 { try db.flush([a]) }  // the first two spaces in files, the last in the memtable
        }
        #expect(try db.multiGet(a, []) == [])
        for cf in spaces {
            let keys = [bytes("k5"), bytes("k3"), [], bytes("k5"), bytes("missing")] + (0..<300).map { bytes("k\($0)") }
            let expected = try keys.map { try db.get(cf, $0) }
            #expect(try db.multiGet(cf, keys) == expected)
            #expect(expected.filter { $0 == nil }.count == 102)  // "k3", "missing" and the 100 multiples of 3
        }
        // A sealed value read without its keyring does not open: the same error as a get's.
        #expect(throws: RocksDBError.self) { try db.multiGet(spaces[2].sealed(by: try Keyring.new(master: MasterKey(bytes: Array(repeating: 8, count: 32)))), [bytes("k1")]) }
    }

    @Test func iteratorBoundsReverseAndDeleteRange() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let db = try RocksDB(path: dir.sub("db"), columnFamilies: Self.families)
        let a = try #require(db.columnFamily("a"))
        let batch = db.makeWriteBatch()
        for i: UInt8 in 0..<10 { batch.put(a, [i], [i, i]) }
        try db.write(batch, sync: false)

        let it = db.makeIterator(a, lowerBound: [2], upperBound: [7])
        var forward: [[UInt8]] = []
        it.seekToFirst()
        while it.isValid { forward.append(it.key); it.next() }
        try it.checkError()
        #expect(forward == [[2], [3], [4], [5], [6]])

        var backward: [[UInt8]] = []
        it.seekToLast()
        while it.isValid { backward.append(try it.value); it.previous() }
        #expect(backward == [[6, 6], [5, 5], [4, 4], [3, 3], [2, 2]])

        let range = db.makeWriteBatch()
        range.deleteRange(a, from: [3], to: [8])
        try db.write(range, sync: true)
        let all = db.makeIterator(a)
        var left: [[UInt8]] = []
        all.seekToFirst()
        while all.isValid { left.append(all.key); all.next() }
        #expect(left == [[0], [1], [2], [8], [9]])
    }

    @Test func snapshotSeesOldState() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let db = try RocksDB(path: dir.sub("db"), columnFamilies: Self.families)
        let a = try #require(db.columnFamily("a"))
        try db.put(a, bytes("k"), bytes("old"), sync: false)
        let snap = db.makeSnapshot()
        try db.put(a, bytes("k"), bytes("new"), sync: false)
        #expect(try db.get(a, bytes("k"), snapshot: snap) == bytes("old"))
        #expect(try db.get(a, bytes("k")) == bytes("new"))
        let it = db.makeIterator(a, snapshot: snap)
        it.seekToFirst()
        #expect(try it.isValid && it.value == bytes("old"))
    }

    @Test func reopenListsAndKeepsColumnFamilies() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let db = try RocksDB(path: dir.sub("db"), columnFamilies: Self.families)
            try db.put(try #require(db.columnFamily("z")), bytes("k"), bytes("v"), sync: true)
        }
        #expect(try RocksDB.listColumnFamilies(path: dir.sub("db")).sorted() == ["a", "default", "z"])
        // Opening while naming only some families still works: the rest are listed first.
        let db = try RocksDB(path: dir.sub("db"), columnFamilies: [])
        #expect(try db.get(try #require(db.columnFamily("z")), bytes("k")) == bytes("v"))
    }

    @Test func secondOpenIsAlreadyInUse() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let db = try RocksDB(path: dir.sub("db"), columnFamilies: Self.families)
        let error = #expect(throws: RocksDBError.self) {
            _ = try RocksDB(path: dir.sub("db"), columnFamilies: Self.families)
        }
        #expect(error?.code == .alreadyInUse)
        #expect(error?.description.contains("already in use") == true)
        #expect(error?.isFailStop == false)
        _ = db
    }

    @Test func openWithoutCreateFailsClearly() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        #expect(throws: RocksDBError.self) {
            _ = try RocksDB(path: dir.sub("none"), columnFamilies: [], createIfMissing: false)
        }
    }

    @Test func checkpointFlushAndCompressionProperty() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let db = try RocksDB(path: dir.sub("db"), columnFamilies: Self.families)
        let z = try #require(db.columnFamily("z"))
        let batch = db.makeWriteBatch()
        for i in 0..<1000 { batch.put(z, Array("key\(i)".utf8), [UInt8](repeating: 7, count: 100)) }
        try db.write(batch, sync: false)
        try db.flush()
        #expect(db.property("rocksdb.estimate-num-keys", of: z) == "1000")
        #expect(db.property("rocksdb.no-such-property", of: z) == nil)
        try db.createCheckpoint(at: dir.sub("cp"))
        let copy = try RocksDB(path: dir.sub("cp"), columnFamilies: Self.families, createIfMissing: false)
        #expect(try copy.get(try #require(copy.columnFamily("z")), bytes("key999")) == [UInt8](repeating: 7, count: 100))
        // zstd is recorded in the OPTIONS file for the "z" family.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.sub("db"))
        let optionsFile = try #require(files.filter { $0.hasPrefix("OPTIONS-") }.sorted().last)
        let text = try String(contentsOfFile: dir.sub("db/\(optionsFile)"), encoding: .utf8)
        #expect(text.contains("compression=kZSTD"))
        // A checkpoint target that exists is refused with a typed error.
        #expect(throws: RocksDBError.self) { try db.createCheckpoint(at: dir.sub("cp")) }
    }

    @Test(arguments: [
        ("IO error: While lock file: /x/LOCK: Resource temporarily unavailable", RocksDBError.Code.alreadyInUse),
        ("IO error: lock hold by current process, acquire time 1 acquiring thread 2: /x/LOCK: No locks available",
         .alreadyInUse),
        ("IO error: No space left on device: /x/000012.log", .noSpace),
        ("Corruption: block checksum mismatch: /x/000009.sst", .corruption),
        ("IO error: Input/output error: /x/000009.sst", .ioError),
        ("Invalid argument: Column family not found", .invalidArgument),
    ])
    func classifiesStatusMessages(message: String, code: RocksDBError.Code) {
        #expect(RocksDBError.classify(message) == code)
    }
}
