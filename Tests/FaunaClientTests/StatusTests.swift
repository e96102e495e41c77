import FaunaClient
import FaunaRPC
import FaunaRaft
import Testing

/// `statusAll(withRecordCache:)` against a node of this build and one of an earlier build (which
/// refuses a status request with a body as `invalidRequest`).
@Suite(.timeLimit(.minutes(3))) struct StatusRecordCacheTests {
    static let status = NodeStatus(
        nodeID: NodeID(1), role: .leader, term: Term(3), leader: NodeID(1), commitIndex: LogIndex(40),
        appliedIndex: LogIndex(39), treeSize: 39, dbSizeBytes: 1 << 20)
    static let figures = RecordCacheStatus(budgetBytes: 64 << 20, bytes: 4096, entries: 12, hits: 30, misses: 12)

    @Test func anOlderNodeIsAskedAgainWithoutTheFigures() async throws {
        let current = try await FakeNode { message, _ in
            guard case .status(let request) = message else { return nil }
            var s = Self.status
            if request.withRecordCache { s.recordCache = Self.figures }
            return .statusResponse(s)
        }
        let older = try await FakeNode { message, _ in
            guard case .status(let request) = message else { return nil }
            // What an earlier build answers to a status body it cannot decode.
            return request.withRecordCache
                ? .error(RPCErrorResponse(.invalidRequest, "status: got 1 bytes after the end, want 0"))
                : .statusResponse(Self.status)
        }
        let client = FaunaClient(endpoints: [current.endpoint, older.endpoint], configuration: fast(), group: group)
        let all = await client.statusAll(withRecordCache: true)
        #expect(try all[0].1.get().recordCache == Self.figures)
        #expect(try all[1].1.get() == Self.status)
        #expect(older.requests.withLockedValue { $0 } == 2)
        // Without the flag nobody is asked for the figures (and nobody refuses).
        let plain = await client.statusAll()
        #expect(try plain[0].1.get() == Self.status && plain[1].1.get() == Self.status)
        #expect(older.requests.withLockedValue { $0 } == 3)
        await client.close()
        await current.close()
        await older.close()
    }

    /// A node with the record cache but without health answers 0x03 with `invalidRequest`,
    /// 0x01 with the figures: the client asks it again for those, and reads no health.
    @Test func aNodeWithoutHealthIsAskedAgainForTheRecordCacheOnly() async throws {
        let checks = [HealthCheck(name: "leader", failure: "no leader known in term 3")]
        let current = try await FakeNode { message, _ in
            guard case .status(let request) = message else { return nil }
            var s = Self.status
            if request.withRecordCache { s.recordCache = Self.figures }
            if request.withHealth { s.health = checks }
            return .statusResponse(s)
        }
        let recordCacheOnly = try await FakeNode { message, _ in
            guard case .status(let request) = message else { return nil }
            if request.withHealth { return .error(RPCErrorResponse(.invalidRequest, "status request flags: got 0x03")) }
            var s = Self.status
            if request.withRecordCache { s.recordCache = Self.figures }
            return .statusResponse(s)
        }
        let client = FaunaClient(endpoints: [current.endpoint, recordCacheOnly.endpoint], configuration: fast(), group: group)
        let all = await client.statusAll(withRecordCache: true, withHealth: true)
        #expect(try all[0].1.get().health == checks)
        let stepped = try all[1].1.get()
        #expect(stepped.recordCache == Self.figures && stepped.health == nil)
        #expect(recordCacheOnly.requests.withLockedValue { $0 } == 2)
        #expect(current.requests.withLockedValue { $0 } == 1)
        await client.close()
        await current.close()
        await recordCacheOnly.close()
    }
}
