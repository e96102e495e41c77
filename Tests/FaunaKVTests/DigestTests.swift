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
