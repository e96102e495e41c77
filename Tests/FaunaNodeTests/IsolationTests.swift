import FaunaClient
import FaunaKV
import FaunaRPC
import Foundation
import Testing

/// Isolation levels of `FaunaClient.transaction` (docs/KV-COMMANDS.md "Isolation levels"),
/// with forced interleavings: the competing transaction runs inside the first one's body,
/// between its reads and its commit, on its first attempt only. No timing is involved: each
/// level shows the anomaly it allows and refuses the one it forbids, every run.
@Suite(.serialized) struct IsolationTests {
    static func int(_ bytes: [UInt8]?) -> Int { bytes.flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0 }
    static func bytes(_ n: Int) -> [UInt8] { Array("\(n)".utf8) }
    static func key(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// One cluster for every check (one node: isolation is the client's and the state
    /// machine's, not replication's).
    static func withCluster(_ body: (FaunaClient) async throws -> Void) async throws {
        let cluster = try ProcessCluster(names: ["n1"])
        defer { Task { await cluster.shutdown() } }
        try cluster.start("n1")
        _ = try await cluster.waitForLeader(among: ["n1"])
        let client = FaunaClient(
            endpoints: [Endpoint(host: "127.0.0.1", port: UInt16(cluster.nodes["n1"]!.client))],
            configuration: FaunaClientConfiguration(deadline: .seconds(20)))
        defer { Task { await client.close() } }
        try await body(client)
    }

    /// Two increments of one counter, the second run entirely between the first's read and
    /// its commit: read committed loses one; every other level retries the first and keeps both.
    static func lostUpdate(_ client: FaunaClient, _ level: IsolationLevel, key k: [UInt8]) async throws -> (final: Int, attempts: Int) {
        _ = try await client.put(k, bytes(0))
        let outcome = try await client.transaction(isolation: level) { stm in
            let seen = int(try await stm.get(k))
            if stm.attempt == 1 {
                _ = try await client.transaction(isolation: level) { other in
                    other.put(k, bytes(int(try await other.get(k)) + 1))
                }
            }
            stm.put(k, bytes(seen + 1))
        }
        return (int(try await client.get(k)?.record.value), outcome.attempts)
    }

    /// Write skew: "at least one doctor on call" (a = b = 1). Each transaction reads both and,
    /// seeing two on call, takes its own off; the second runs between the first's reads and
    /// commit. Read committed ends with none on call; repeatable reads retries the first, which
    /// then sees one on call and changes nothing.
    static func writeSkew(_ client: FaunaClient, _ level: IsolationLevel, prefix: String) async throws -> Int {
        let a = key("\(prefix)/a"), b = key("\(prefix)/b")
        _ = try await client.put(a, bytes(1))
        _ = try await client.put(b, bytes(1))
        func goOff(_ stm: STM, _ me: [UInt8]) async throws {
            let onCall = int(try await stm.get(a)) + int(try await stm.get(b))
            if onCall >= 2 { stm.put(me, bytes(0)) }
        }
        _ = try await client.transaction(isolation: level) { stm in
            let onCall = int(try await stm.get(a)) + int(try await stm.get(b))
            if stm.attempt == 1 {
                _ = try await client.transaction(isolation: level) { other in try await goOff(other, b) }
            }
            if onCall >= 2 { stm.put(a, bytes(0)) }
        }
        return int(try await client.get(a)?.record.value) + int(try await client.get(b)?.record.value)
    }

    /// Read skew: x + y = 100; a transfer of 10 from x to y commits between the reader's read
    /// of x and its read of y. Returns the sum the reader's first attempt saw and its attempts.
    static func readSkew(_ client: FaunaClient, _ level: IsolationLevel, prefix: String) async throws -> (firstSum: Int, attempts: Int) {
        let x = key("\(prefix)/x"), y = key("\(prefix)/y"), log = key("\(prefix)/log")
        _ = try await client.put(x, bytes(50))
        _ = try await client.put(y, bytes(50))
        var firstSum = 0
        let outcome = try await client.transaction(isolation: level) { stm in
            let seenX = int(try await stm.get(x))
            if stm.attempt == 1 {
                _ = try await client.transaction(isolation: .serializableSnapshot) { t in
                    t.put(x, bytes(int(try await t.get(x)) - 10))
                    t.put(y, bytes(int(try await t.get(y)) + 10))
                }
            }
            let sum = seenX + int(try await stm.get(y))
            if stm.attempt == 1 { firstSum = sum }
            stm.put(log, bytes(sum))  // acts on what it read
        }
        #expect(int(try await client.get(log)?.record.value) == 100, "\(level) committed a sum computed from a skewed read")
        return (firstSum, outcome.attempts)
    }

    /// A blind write: the transaction reads `r` and writes `w` without reading it; another
    /// writes `w` in between. Serializable commits over it at once; serializable snapshot
    /// retries (first committer wins on every key it writes).
    static func blindWrite(_ client: FaunaClient, _ level: IsolationLevel, prefix: String) async throws -> (value: String, attempts: Int) {
        let r = key("\(prefix)/r"), w = key("\(prefix)/w")
        _ = try await client.put(r, bytes(1))
        _ = try await client.put(w, key("initial"))
        let outcome = try await client.transaction(isolation: level) { stm in
            _ = try await stm.get(r)
            if stm.attempt == 1 { _ = try await client.put(w, key("other")) }
            stm.put(w, key("mine-\(stm.attempt)"))
        }
        return (String(decoding: try await client.get(w)?.record.value ?? [], as: UTF8.self), outcome.attempts)
    }

    @Test func eachLevelShowsTheAnomalyItAllowsAndRefusesTheOneItForbids() async throws {
        try await Self.withCluster { client in
            // Lost update: allowed by read committed only.
            let rc = try await Self.lostUpdate(client, .readCommitted, key: Self.key("lost/rc"))
            #expect(rc.final == 1 && rc.attempts == 1, "read committed: \(rc)")
            for level in [IsolationLevel.repeatableReads, .serializable, .serializableSnapshot] {
                let r = try await Self.lostUpdate(client, level, key: Self.key("lost/\(level)"))
                #expect(r.final == 2 && r.attempts == 2, "\(level): \(r)")
            }
            // Write skew: allowed by read committed; refused from repeatable reads up.
            #expect(try await Self.writeSkew(client, .readCommitted, prefix: "skew/rc") == 0)
            for level in [IsolationLevel.repeatableReads, .serializable, .serializableSnapshot] {
                #expect(try await Self.writeSkew(client, level, prefix: "skew/\(level)") == 1, "\(level)")
            }
            // Read skew inside the body: repeatable reads sees the halves of two states (and
            // then retries, committing only a consistent sum); the serializable levels read
            // both at one revision.
            let rr = try await Self.readSkew(client, .repeatableReads, prefix: "read/rr")
            #expect(rr.firstSum == 110 && rr.attempts == 2, "repeatable reads: \(rr)")
            for level in [IsolationLevel.serializable, .serializableSnapshot] {
                let r = try await Self.readSkew(client, level, prefix: "read/\(level)")
                #expect(r.firstSum == 100 && r.attempts == 2, "\(level): \(r)")
            }
            // A concurrent write to a key only written: serializable overwrites it on its first
            // attempt; serializable snapshot detects it and retries.
            let s = try await Self.blindWrite(client, .serializable, prefix: "blind/s")
            #expect(s.value == "mine-1" && s.attempts == 1, "serializable: \(s)")
            let ss = try await Self.blindWrite(client, .serializableSnapshot, prefix: "blind/ss")
            #expect(ss.value == "mine-2" && ss.attempts == 2, "serializable snapshot: \(ss)")
        }
    }

    @Test func aTransactionThatKeepsConflictingGivesUpWithConflict() async throws {
        try await Self.withCluster { client in
            let k = Self.key("hot")
            _ = try await client.put(k, Self.bytes(0))
            await #expect(throws: FaunaClientError.self) {
                _ = try await client.transaction(isolation: .serializable, attemptsMax: 3) { stm in
                    let seen = Self.int(try await stm.get(k))
                    _ = try await client.put(k, Self.bytes(seen + 100))  // a competitor, every attempt
                    stm.put(k, Self.bytes(seen + 1))
                }
            }
            do {
                _ = try await client.transaction(isolation: .serializable, attemptsMax: 3) { stm in
                    _ = try await client.put(k, Self.bytes(Self.int(try await stm.get(k)) + 100))
                    stm.put(k, Self.bytes(1))
                }
                Issue.record("want conflict")
            } catch let error as FaunaClientError {
                #expect(error.code == .conflict)
                #expect(error.message.contains("3 attempts"))
            }
            // Every competitor's write stands; none of the transaction's did.
            #expect(Self.int(try await client.get(k)?.record.value) == 600)
        }
    }

    @Test func fctlTxnWithIsolationReadsThenCommits() async throws {
        let cluster = try ProcessCluster(names: ["n1"])
        defer { Task { await cluster.shutdown() } }
        try cluster.start("n1")
        _ = try await cluster.waitForLeader(among: ["n1"])
        let config = "\(cluster.root)/cluster.toml"
        _ = try await ClientAndCLITests.fctl(["put", "acct", "7"], config: config)
        let run = try await ClientAndCLITests.fctl(
            ["txn", "--isolation", "repeatable-reads", "--then", "get acct", "--then", "put copy 7", "--then", "get nothing", "--json"], config: config)
        #expect(run.status == 0, "\(run.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        #expect(object?["attempts"] as? Int == 1)
        #expect(object?["isolation"] as? String == "repeatable-reads")
        let reads = object?["reads"] as? [[String: Any]]
        #expect(reads?.first?["value"] as? String == "7")
        #expect(reads?.last?["value"] is NSNull)
        #expect(try await ClientAndCLITests.fctl(["get", "copy"], config: config).stdout == "7\n")
        let refused = try await ClientAndCLITests.fctl(["txn", "--isolation", "serializable", "--then", "range-prefix a"], config: config)
        #expect(refused.status == 2)
        let mixed = try await ClientAndCLITests.fctl(["txn", "--isolation", "serializable", "--if", "version(a) = 0", "--then", "get a"], config: config)
        #expect(mixed.status == 2)
    }
}
