import Testing

@testable import FaunaKV

@Suite("State digest stream")
struct DigestTests {
    @Test("the stream has the documented layout")
    func layout() throws {
        var h = Harness()
        try h.put("k", "v", gap: 3)
        let stream = try h.digest()
        var want: [UInt8] = b("FKVD") + [1] + [0, 0, 0, 0, 0, 0, 0, 3] + [0, 0, 0, 0, 0, 0, 0, 0]
        want += [1] + [0, 0, 0, 1] + b("k") + record("v", create: 3, mod: 3, version: 1).encoded
        want += [0] + [0, 0, 0, 0, 0, 0, 0, 1]
        #expect(stream == want)
    }

    @Test("replicas that applied the same entries agree; any difference shows")
    func agreement() throws {
        var one = Harness()
        var two = Harness()
        for h in [0, 1] {
            var replica = h == 0 ? one : two
            try replica.put("a", "1")
            try replica.put("b", "2")
            try replica.succeed(.delete(b("a")))
            if h == 0 { one = replica } else { two = replica }
        }
        #expect(try one.digest() == two.digest())
        var diverged = two
        try diverged.put("b", "2")  // same value, but version and revision differ
        #expect(try diverged.digest() != one.digest())
        try one.put("b", "3")
        try two.put("b", "4")
        #expect(try one.digest() != two.digest())
    }
}

@Suite("State digest as of a revision")
struct DigestAtRevisionTests {
    private func digest(_ h: Harness, at revision: UInt64) throws -> [UInt8] {
        var out: [UInt8] = []
        try h.machine.digestStream(at: Revision(revision), on: h.backend) { out.append(contentsOf: $0) }
        return out
    }

    @Test("replicas that applied different amounts agree at a common revision")
    func commonRevision() throws {
        var behind = Harness()
        try behind.put("a", "1")
        try behind.put("b", "2")
        try behind.succeed(.delete(b("a")))
        try behind.put("c", "3")
        var ahead = behind
        try ahead.put("b", "changed")
        try ahead.succeed(.delete(b("c")))
        try ahead.put("d", "4")
        #expect(try digest(ahead, at: 4) == digest(behind, at: 4))
        #expect(try digest(ahead, at: 5) != digest(ahead, at: 4))
        var want: [UInt8] = b("FKVD") + [2] + [0, 0, 0, 0, 0, 0, 0, 4]
        want += [1] + [0, 0, 0, 1] + b("b") + record("2", create: 2, mod: 2, version: 1).encoded
        want += [1] + [0, 0, 0, 1] + b("c") + record("3", create: 4, mod: 4, version: 1).encoded
        want += [0] + [0, 0, 0, 0, 0, 0, 0, 2]
        #expect(try digest(behind, at: 4) == want)
    }

    @Test("an edit of the current state or of history behind the machine's back changes it")
    func tamperShows() throws {
        var h = Harness()
        try h.put("a", "1")
        try h.put("b", "2")
        try h.put("b", "3")
        let before = try digest(h, at: 2)
        var live = KVWriteBatch()
        live.setRecord(record("X", create: 1, mod: 1, version: 1), forKey: b("a"))
        var tampered = h
        tampered.backend.commit(live)
        #expect(try digest(tampered, at: 2) != before)  // "a" unchanged since 2: read from kv
        var old = KVWriteBatch()
        old.setHistory(.record(record("Y", create: 2, mod: 2, version: 1)), forKey: b("b"), at: Revision(2))
        var rewritten = h
        rewritten.backend.commit(old)
        #expect(try digest(rewritten, at: 2) != before)  // "b" changed since 2: read from history
    }

    @Test("a compacted revision is an error; one past the last write reads the current state")
    func bounds() throws {
        var h = Harness()
        try h.put("a", "1")
        try h.put("a", "2")
        try h.succeed(.compact(Revision(2)))
        #expect(throws: KVReadError.self) { try digest(h, at: 1) }
        let atNine = try digest(h, at: 9)
        let atThree = try digest(h, at: 3)
        #expect(atNine.dropFirst(13) == atThree.dropFirst(13))  // same records, other header
    }
}

@Suite("Cluster ID")
struct ClusterIDTests {
    @Test("the first initCluster committed wins; later ones change nothing but the revision")
    func firstWins() throws {
        var h = Harness()
        #expect(try h.machine.clusterID(on: h.backend) == nil)
        let first = [UInt8](repeating: 1, count: 16)
        try h.succeed(.initCluster(first))
        try h.succeed(.initCluster([UInt8](repeating: 2, count: 16)))
        #expect(try h.machine.clusterID(on: h.backend) == first)
        #expect(try h.machine.currentRevision(on: h.backend) == Revision(2))
    }

    @Test("the codec round-trips it and rejects other lengths")
    func codec() throws {
        let p = KVProposal(command: .initCluster(Array(0..<16)))
        #expect(try KVProposal(decoding: p.encoded()) == p)
        let short = KVProposal(command: .initCluster(Array(0..<15))).encoded()
        #expect(throws: KVDecodingError.self) { try KVProposal(decoding: short) }
        let long = KVProposal(command: .initCluster(Array(0..<17))).encoded()
        #expect(throws: KVDecodingError.self) { try KVProposal(decoding: long) }
    }
}
