import Crypto
import FaunaClient
import FaunaKV
import FaunaRPC
import FaunaRaft
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

let group = MultiThreadedEventLoopGroup.singleton
let quiet = Logger(label: "fauna.client.test", factory: { _ in SwiftLogNoOpLogHandler() })

/// A fake node: `answer` decides each request's reply (nil: never answer); it records every
/// write's session.
final class FakeNode: Sendable {
    let sessions = NIOLockedValueBox<[ClientSession]>([])
    let requests = NIOLockedValueBox(0)
    let server: RPCServer

    init(_ answer: @escaping @Sendable (RPCMessage, Int) -> RPCMessage?) async throws {
        let sessions = self.sessions
        let requests = self.requests
        server = try await RPCServer.start(configuration: RPCServerConfiguration(), group: group, logger: quiet) { message, context in
            let n = requests.withLockedValue { $0 += 1; return $0 }
            if case .write(let write) = message, let session = write.proposal.session {
                sessions.withLockedValue { $0.append(session) }
            }
            if let reply = answer(message, n) { context.respond(reply) }
        }
    }

    var endpoint: Endpoint { Endpoint(host: "127.0.0.1", port: UInt16(server.port!)) }
    var seen: [ClientSession] { sessions.withLockedValue { $0 } }
    func close() async { try? await server.close() }
}

func success(_ revision: UInt64) -> RPCMessage {
    .writeResponse(KVApplyResult(revision: Revision(revision), outcome: .success(succeeded: true, results: [.put(previous: nil)])))
}

/// Short backoffs; timeouts long enough that an answer the fake does send always arrives in
/// time, even on a loaded 2-core machine (the whole suite runs in parallel).
/// Short backoffs. The connect timeout stays long: a loopback connect that cannot fail fast
/// succeeds, and on a loaded 2-core CI run the shared event loops lagged past 500 ms for
/// seconds, so every connect of StatusRecordCacheTests timed out (clean-clone CI, 2026-12-04).
func fast(deadline: Duration = .seconds(60), requestTimeout: Duration = .seconds(5)) -> FaunaClientConfiguration {
    FaunaClientConfiguration(deadline: deadline, requestTimeout: requestTimeout, connectTimeout: .seconds(5), backoffInitial: .milliseconds(5), backoffMax: .milliseconds(50))
}

// Three minutes: on a loaded 2-core run a test waited 85 s for threads (CI, 2026-12-03).
@Suite(.timeLimit(.minutes(3))) struct ClientRetryTests {
    @Test func writeFollowsNotLeaderHint() async throws {
        let b = try await FakeNode { message, _ in if case .write = message { success(12) } else { nil } }
        let hint = LeaderHint(nodeID: NodeID(2), clientAddress: b.endpoint)
        let a = try await FakeNode { _, _ in .error(RPCErrorResponse(.notLeader, "not the leader", leaderHint: hint)) }
        let client = FaunaClient(endpoints: [a.endpoint], configuration: fast(), group: group)
        let result = try await client.put(Array("k1".utf8), Array("v1".utf8))
        #expect(result.revision == Revision(12))
        #expect(client.knownLeader == b.endpoint)
        #expect(a.seen.count == 1 && b.seen.count == 1)
        #expect(a.seen == b.seen, "the redirected write keeps its session and sequence")
        // The next write goes straight to the leader.
        _ = try await client.put(Array("k2".utf8), Array("v2".utf8))
        #expect(a.seen.count == 1 && b.seen.count == 2)
        await client.close()
        await a.close()
        await b.close()
    }

    @Test func retryAfterLostAnswerReusesSessionAndSequence() async throws {
        // The first write is never answered (as if the answer were lost); the retry is.
        let node = try await FakeNode { message, n in
            guard case .write = message else { return nil }
            return n == 1 ? nil : .writeResponse(KVApplyResult(revision: Revision(7), outcome: .success(succeeded: true, results: [.put(previous: nil)]), isReplay: true))
        }
        let client = FaunaClient(endpoints: [node.endpoint], configuration: fast(requestTimeout: .seconds(1)), group: group)
        let result = try await client.put(Array("k".utf8), Array("v".utf8))
        #expect(result.isReplay)
        // Two attempts, or more when a loaded machine delays the answer past the 1 s timeout
        // too (CI, 2026-12-04): every attempt carries the same session and sequence.
        let seen = node.seen
        try #require(seen.count >= 2)
        #expect(seen.allSatisfy { $0 == seen[0] }, "\(seen)")
        #expect(seen[0].sequence == .first)
        // The session goes back to the pool: the next write uses it with the next sequence.
        _ = try await client.put(Array("k".utf8), Array("v".utf8))
        #expect(node.seen.last == ClientSession(clientID: seen[0].clientID, sequence: SequenceNumber(2)))
        await client.close()
        await node.close()
    }

    @Test func concurrentWritesUseDistinctSessions() async throws {
        let node = try await FakeNode { message, n in if case .write = message { success(UInt64(n)) } else { nil } }
        let client = FaunaClient(endpoints: [node.endpoint], configuration: fast(), group: group)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for i in 0..<32 { tasks.addTask { _ = try await client.put(Array("k\(i)".utf8), []) } }
            try await tasks.waitForAll()
        }
        let seen = node.seen
        #expect(seen.count == 32)
        #expect(Set(seen).count == 32, "no two writes share a session and sequence")
        await client.close()
        await node.close()
    }

    @Test func expiredSessionOfAFirstAttemptIsReplacedByAFreshOne() async throws {
        let node = try await FakeNode { message, n in
            guard case .write = message else { return nil }
            return n == 1 ? .writeResponse(KVApplyResult(revision: Revision(3), outcome: .sessionExpired(sequence: .first, lastApplied: SequenceNumber(9)))) : success(4)
        }
        let client = FaunaClient(endpoints: [node.endpoint], configuration: fast(), group: group)
        let result = try await client.put(Array("k".utf8), Array("v".utf8))
        #expect(result.revision == Revision(4))
        let seen = node.seen
        try #require(seen.count == 2)
        #expect(seen[0].clientID != seen[1].clientID)
        #expect(seen[1].sequence == .first)
        await client.close()
        await node.close()
    }

    @Test func aSessionRefusedForItsUserIsNotReused() async throws {
        // Request 2 is refused as another user's session would be; request 3 as a lease
        // refusal, which leaves the session usable.
        let node = try await FakeNode { message, n in
            guard case .write = message else { return nil }
            switch n {
            case 2: return .writeResponse(KVApplyResult(revision: Revision(3), outcome: .invalid(KVCommandError(.permissionDenied, "client session belongs to another user"))))
            case 4: return .writeResponse(KVApplyResult(revision: Revision(5), outcome: .invalid(KVCommandError(.leaseNotFound, "no lease 9"))))
            default: return success(UInt64(n))
            }
        }
        let client = FaunaClient(endpoints: [node.endpoint], configuration: fast(), group: group)
        _ = try await client.put(Array("k".utf8), Array("v".utf8))
        await #expect(throws: FaunaClientError.self) { _ = try await client.put(Array("k".utf8), Array("v".utf8)) }
        _ = try await client.put(Array("k".utf8), Array("v".utf8))
        _ = try await client.put(Array("k".utf8), Array("v".utf8))  // leaseNotFound: an outcome
        _ = try await client.put(Array("k".utf8), Array("v".utf8))
        let seen = node.seen
        try #require(seen.count == 5)
        #expect(seen[1] == ClientSession(clientID: seen[0].clientID, sequence: SequenceNumber(2)))
        #expect(seen[2].clientID != seen[0].clientID && seen[2].sequence == .first, "a fresh session after the refusal")
        #expect(seen[3] == ClientSession(clientID: seen[2].clientID, sequence: SequenceNumber(2)))
        #expect(seen[4] == ClientSession(clientID: seen[2].clientID, sequence: SequenceNumber(3)), "kept after another refusal")
        await client.close()
        await node.close()
    }

    @Test func expiredSessionAfterAnUnknownResultIsReported() async throws {
        let node = try await FakeNode { message, n in
            guard case .write = message else { return nil }
            return n == 1 ? nil : .writeResponse(KVApplyResult(revision: Revision(3), outcome: .sessionExpired(sequence: .first, lastApplied: nil)))
        }
        let client = FaunaClient(endpoints: [node.endpoint], configuration: fast(requestTimeout: .seconds(1)), group: group)
        await #expect(throws: FaunaClientError.self) { _ = try await client.put(Array("k".utf8), []) }
        do {
            _ = try await client.put(Array("k".utf8), [])
        } catch {
            #expect(error.code == .sessionExpired || error.code == .timeout)
        }
        await client.close()
        await node.close()
    }

    @Test func allEndpointsDownIsUnavailableWithinTheDeadline() async throws {
        let a = try await FakeNode { _, _ in nil }
        let b = try await FakeNode { _, _ in nil }
        let endpoints = [a.endpoint, b.endpoint]
        await a.close()
        await b.close()
        let client = FaunaClient(endpoints: endpoints, configuration: fast(deadline: .seconds(1)), group: group)
        let start = ContinuousClock.now
        do {
            _ = try await client.put(Array("k".utf8), [])
            Issue.record("a write to stopped nodes succeeded")
        } catch {
            #expect(error.code == .unavailable, "\(error)")
            #expect(error.isUnavailable)
        }
        #expect(ContinuousClock.now - start < .seconds(10))
        await client.close()
    }

    @Test func unansweredRequestsTimeOutWithinTheDeadline() async throws {
        let node = try await FakeNode { _, _ in nil }
        // Two attempts, then the call gives up. The deadline is only a backstop: under a full
        // test run the retry loop's task can wait seconds for a thread of the cooperative pool,
        // and an 8 s deadline then ran out after one attempt (twice in a day of clean-clone
        // runs). Counting attempts instead of racing the clock keeps the point: it retried,
        // and it stopped.
        // Each attempt waits 2 s for its answer and up to 5 s to connect: with 300 ms and
        // 500 ms, a loaded run once timed both attempts out before the node had read either.
        var configuration = FaunaClientConfiguration(
            deadline: .seconds(40), requestTimeout: .seconds(2), connectTimeout: .seconds(5),
            backoffInitial: .milliseconds(5), backoffMax: .milliseconds(50))
        configuration.attemptsMax = 2
        let client = FaunaClient(endpoints: [node.endpoint], configuration: configuration, group: group)
        let start = ContinuousClock.now
        await #expect { _ = try await client.get(Array("k".utf8)) } throws: { ($0 as? FaunaClientError)?.code == .timeout }
        #expect(ContinuousClock.now - start < .seconds(45))
        #expect(node.requests.withLockedValue { $0 } == 2, "it retried once, then stopped")
        await client.close()
        await node.close()
    }

    @Test func rejectedRequestIsNotRetried() async throws {
        let node = try await FakeNode { _, _ in .error(RPCErrorResponse(.compacted, "revision 3 < 10")) }
        let client = FaunaClient(endpoints: [node.endpoint], configuration: fast(), group: group)
        await #expect { _ = try await client.get(Array("k".utf8), revision: Revision(3)) } throws: { ($0 as? FaunaClientError)?.code == .compacted }
        #expect(node.requests.withLockedValue { $0 } == 1)
        await client.close()
        await node.close()
    }

    @Test func unavailableIsRetriedUntilTheLeaderAnswers() async throws {
        let record = KVKeyValue(key: Array("k".utf8), record: KVRecord(value: Array("v".utf8), createRevision: Revision(2), modRevision: Revision(5), version: 2))
        let node = try await FakeNode { _, n in
            n <= 3 ? .error(RPCErrorResponse(.unavailable, "electing")) : .readResponse(KVRangeResult(records: [record], count: 1, hasMore: false, revision: Revision(5)))
        }
        let client = FaunaClient(endpoints: [node.endpoint], configuration: fast(), group: group)
        let got = try await client.get(Array("k".utf8))
        #expect(got == record)
        #expect(node.requests.withLockedValue { $0 } == 4)
        await client.close()
        await node.close()
    }
}
