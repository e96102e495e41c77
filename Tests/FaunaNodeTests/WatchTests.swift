import FaunaClient
import FaunaKV
import FaunaRPC
import FaunaRaft
import Foundation
import Testing

/// Watches against real faunad processes (docs/PROTOCOL.md "Watch"): exactly the committed
/// changes, in order, across a leader kill, on a follower, for a slow consumer; and
/// `fctl watch`.
@Suite(.serialized) struct WatchTests {
    static let names = ["n1", "n2", "n3"]

    /// A change as a watcher should see it.
    struct Change: Hashable, CustomStringConvertible {
        var revision: UInt64
        var key: [UInt8]
        var value: [UInt8]?
        var description: String { "\(revision) \(String(decoding: key, as: UTF8.self))=\(value.map { String(decoding: $0, as: UTF8.self) } ?? "<deleted>")" }
    }

    /// Writes `count` puts and deletes over a few keys of `w/` (and some of `x/`, which the
    /// watchers must not see), returning the changes to `w/` the cluster acknowledged.
    static func writeChanges(_ client: FaunaClient, count: Int, tag: String, onStep: (Int) async -> Void = { _ in }) async throws -> [Change] {
        var changes: [Change] = []
        for i in 0..<count {
            await onStep(i)
            let key = Array("\(i % 3 == 0 ? "x" : "w")/\(i % 7)".utf8)
            if i % 5 == 4 {
                let result = try await client.delete(key)
                guard case .success(_, let ops) = result.outcome, case .deleteRange(let deleted, _)? = ops.first else {
                    Issue.record("delete \(i): \(result.outcome)")
                    continue
                }
                if deleted == 1 && key.first == UInt8(ascii: "w") { changes.append(Change(revision: result.revision.rawValue, key: key, value: nil)) }
            } else {
                let value = Array("\(tag)\(i)".utf8)
                let result = try await client.put(key, value)
                if key.first == UInt8(ascii: "w") { changes.append(Change(revision: result.revision.rawValue, key: key, value: value)) }
            }
        }
        return changes
    }

    /// Reads `watch` until every change through `revision` arrived (bounded).
    static func collect(_ watch: FaunaWatch, through revision: UInt64, seconds: Double = 60, pace: Duration? = nil) async throws -> [Change] {
        try await withThrowingTaskGroup(of: [Change]?.self) { group in
            group.addTask {
                var got: [Change] = []
                for try await batch in watch {
                    if let pace { try await Task.sleep(for: pace) }
                    got += batch.events.map { Change(revision: $0.revision, key: $0.key, value: $0.record?.value) }
                    if batch.completeThrough >= revision { return got }
                }
                return got
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            watch.cancel()
            guard let first else {
                Issue.record("the watch did not reach revision \(revision) within \(seconds) s (next \(watch.nextRevision))")
                return []
            }
            return first
        }
    }

    @Test func watchersOnTheLeaderAndAFollowerSeeExactlyTheCommittedChangesAcrossALeaderKill() async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        let leader = try await cluster.waitForLeader(among: Self.names)
        let follower = Self.names.first { $0 != leader }!
        let endpoint = { (n: String) in Endpoint(host: "127.0.0.1", port: UInt16(cluster.nodes[n]!.client)) }
        let client = FaunaClient(endpoints: Self.names.map(endpoint), configuration: FaunaClientConfiguration(deadline: .seconds(30)))
        defer { Task { await client.close() } }
        var changes = try await Self.writeChanges(client, count: 40, tag: "a")
        // Both start in the past (revision 1); one is served by the leader, which is killed.
        let onLeader = client.watch(.prefix(Array("w/".utf8)), from: 1, WatchOptions(endpoint: endpoint(leader)))
        let onFollower = client.watch(.prefix(Array("w/".utf8)), from: 1, WatchOptions(endpoint: endpoint(follower)))
        changes += try await Self.writeChanges(client, count: 160, tag: "b") { i in
            if i == 60 { await cluster.kill(leader) }
        }
        let last = try #require(changes.last?.revision)
        let gotLeader = try await Self.collect(onLeader, through: last)
        let gotFollower = try await Self.collect(onFollower, through: last)
        #expect(changes.count > 100)
        #expect(Self.difference(gotLeader, changes) == nil, "watch on the killed leader")
        #expect(Self.difference(gotFollower, changes) == nil, "watch on \(follower)")
    }

    @Test func aSlowConsumerStaysWithinItsBufferAndGetsEveryChange() async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: Self.names)
        let endpoints = Self.names.map { Endpoint(host: "127.0.0.1", port: UInt16(cluster.nodes[$0]!.client)) }
        let client = FaunaClient(endpoints: endpoints, configuration: FaunaClientConfiguration(deadline: .seconds(30)))
        defer { Task { await client.close() } }
        var settings = WatchOptions()
        settings.bufferBytesMax = 16 << 10
        let watch = client.watch(.prefix(Array("s/".utf8)), settings)
        // From now: registered before the first write.
        for _ in 0..<300 where watch.nextRevision == 0 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(watch.nextRevision > 0)
        // Writes go on while nobody reads the watch: 1,504 puts of 600 bytes (0.9 MB), 56 times
        // the client's buffer.
        let value = [UInt8](repeating: UInt8(ascii: "v"), count: 600)
        let results = try await withThrowingTaskGroup(of: [(UInt64, [UInt8])].self) { group in
            for w in 0..<16 {
                group.addTask {
                    var mine: [(UInt64, [UInt8])] = []
                    for i in 0..<(1504 / 16) {
                        let key = Array("s/\(w)/\(i % 10)".utf8)
                        mine.append((try await client.put(key, value).revision.rawValue, key))
                    }
                    return mine
                }
            }
            var all: [(UInt64, [UInt8])] = []
            for try await part in group { all += part }
            return all.sorted { $0.0 < $1.0 }
        }
        #expect(watch.bufferedBytes <= settings.bufferBytesMax + 8 << 10)
        let last = try #require(results.last?.0)
        let got = try await Self.collect(watch, through: last, seconds: 90)
        #expect(Self.difference(got, results.map { Change(revision: $0.0, key: $0.1, value: value) }) == nil)
    }

    @Test func fctlWatchPrintsPastChangesAndExitsRejectedBelowCompaction() async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        for n in Self.names { try cluster.start(n) }
        _ = try await cluster.waitForLeader(among: Self.names)
        let config = "\(cluster.root)/cluster.toml"
        func fctl(_ arguments: [String]) async throws -> ClientAndCLITests.Run { try await ClientAndCLITests.fctl(arguments, config: config) }
        let first = try await fctl(["put", "cfg/a", "1", "--json"])
        #expect(first.status == 0, "\(first.stderr)")
        _ = try await fctl(["put", "cfg/a", "2"])
        _ = try await fctl(["put", "other", "x"])
        _ = try await fctl(["del", "cfg/a"])
        let put = try await fctl(["put", "cfg/b", "3", "--json"])
        let lastRevision = try #require(Self.revision(in: put.stdout))
        let firstRevision = try #require(Self.revision(in: first.stdout))
        let text = try await fctl(["watch", "cfg/", "--prefix", "--rev", "\(firstRevision)", "--until-rev", "\(lastRevision)", "--prev-value"])
        #expect(text.status == 0, "\(text.stderr)")
        let lines = text.stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        #expect(lines.map { $0.first ?? "" } == ["PUT", "PUT", "DELETE", "PUT"])
        #expect(lines.map { $0.count > 2 ? $0[2] : "" } == ["cfg/a", "cfg/a", "cfg/a", "cfg/b"])
        #expect(lines.map { $0.last ?? "" } == ["-", "1", "2", "-"])
        let json = try await fctl(["watch", "cfg/b", "--rev", "\(firstRevision)", "--count", "1", "--json"])
        #expect(json.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["type"] as? String == "put")
        #expect(object?["value"] as? String == "3")
        #expect((object?["revision"] as? NSNumber)?.uint64Value == lastRevision)
        _ = try await fctl(["compact", "\(lastRevision)"])
        let compacted = try await fctl(["watch", "cfg/", "--prefix", "--rev", "\(firstRevision)", "--count", "1"])
        #expect(compacted.status == 4, "\(compacted.stdout) \(compacted.stderr)")
        #expect(compacted.stderr.contains("compacted"))
        #expect(compacted.stderr.contains("watch from \(lastRevision + 1) or later"))
        let usage = try await fctl(["watch", "k", "--no-put", "--no-delete"])
        #expect(usage.status == 2)
    }

    @Test func fctlWatchVerifyProvesEventsAndRefusesALyingNode() async throws {
        let cluster = try ProcessCluster(names: Self.names)
        defer { Task { await cluster.shutdown() } }
        try cluster.start("n1")
        try cluster.start("n2", environment: ["FAUNA_TEST_FAULT": "lie-watch"])
        try cluster.start("n3")
        _ = try await cluster.waitForLeader(among: Self.names)
        let config = "\(cluster.root)/cluster.toml"
        let trust = "\(cluster.root)/trusted.json"
        func fctl(_ arguments: [String]) async throws -> ClientAndCLITests.Run { try await ClientAndCLITests.fctl(arguments, config: config) }
        let first = try #require(Self.revision(in: try await fctl(["put", "v/a", "one", "--json"]).stdout))
        _ = try await fctl(["put", "v/b", "two"])
        _ = try await fctl(["del", "v/a"])
        let last = try #require(Self.revision(in: try await fctl(["put", "v/c", "three", "--json"]).stdout))
        let honest = try await fctl([
            "watch", "v/", "--prefix", "--rev", "\(first)", "--until-rev", "\(last)", "--verify", "--node", "n1", "--trust", trust, "--json",
        ])
        #expect(honest.status == 0, "\(honest.stderr)")
        let events = honest.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(events.map { $0["type"] as? String } == ["put", "put", "delete", "put"])
        #expect(events.allSatisfy { ($0["verified"] as? [String: Any])?["treeSize"] != nil })
        #expect(FileManager.default.fileExists(atPath: trust))
        // n2 changes the values it sends: the effects of the entries refuse them.
        let lying = try await fctl(["watch", "v/", "--prefix", "--rev", "\(first)", "--count", "1", "--verify", "--node", "n2", "--trust", trust])
        #expect(lying.status == 6, "\(lying.stdout) \(lying.stderr)")
        #expect(lying.stderr.contains("is not what its journal entry committed"), "\(lying.stderr)")
        #expect(lying.stdout.isEmpty, "an unproven event was printed: \(lying.stdout)")
        // Without --verify the lie goes through: the check is what catches it.
        let unchecked = try await fctl(["watch", "v/b", "--rev", "\(first)", "--count", "1", "--node", "n2"])
        #expect(unchecked.status == 0)
        #expect(unchecked.stdout.hasPrefix("PUT") && !unchecked.stdout.contains("\ttwo\n"), "\(unchecked.stdout)")
    }

    /// Where two event lists first differ, in a line (nil: equal); the lists can be long.
    static func difference(_ got: [Change], _ want: [Change]) -> String? {
        if let i = zip(got, want).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            return "event \(i): got \(got[i]), want \(want[i]) (\(got.count) events, want \(want.count))"
        }
        if got.count != want.count {
            return "got \(got.count) events, want \(want.count); first extra or missing: \(got.count > want.count ? got[want.count] : want[got.count])"
        }
        return nil
    }

    static func revision(in json: String) -> UInt64? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return nil }
        return (object["revision"] as? NSNumber)?.uint64Value
    }
}
