import FaunaKV
import FaunaRaft
import FaunaRPC
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// Collects log messages so tests can check that a reason was logged.
final class CapturedLogs: Sendable {
    let lines = NIOLockedValueBox<[String]>([])
    var all: [String] { lines.withLockedValue { $0 } }

    var logger: Logger {
        Logger(label: "fauna.rpc.test") { _ in Handler(sink: self) }
    }

    struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            log(level: event.level, message: event.message, metadata: event.metadata, source: event.source, file: event.file, function: event.function, line: event.line)
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            let all = self.metadata.merging(metadata ?? [:]) { $1 }
            sink.lines.withLockedValue { $0.append("\(level) \(message) \(all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))") }
        }
    }
}

/// Polls `condition` every 10 ms for up to `seconds`. The bound only limits how long a failing
/// test waits (a passing one returns as soon as the condition holds), so it is generous: on two
/// cores shared with the simulator sweeps and a dozen faunad processes, a loopback connect has
/// taken over 5 s.
func eventually(seconds: Double = 30, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

let group = MultiThreadedEventLoopGroup.singleton

/// A test server: answers `leaderTransfer(n)` with a status naming node n, from another task
/// after a random delay (so answers come out of order), and records what else it gets.
func echoServer(logs: CapturedLogs, configuration: RPCServerConfiguration = RPCServerConfiguration(requestsInFlightMax: 2048)) async throws -> RPCServer {
    try await RPCServer.start(configuration: configuration, group: group, logger: logs.logger) { message, context in
        switch message {
        case .leaderTransfer(let id):
            Task {
                try? await Task.sleep(for: .microseconds(Int.random(in: 0...2000)))
                context.respond(.statusResponse(NodeStatus(
                    nodeID: id, role: .leader, term: Term(1), leader: id, commitIndex: LogIndex(id.rawValue),
                    appliedIndex: LogIndex(id.rawValue), treeSize: id.rawValue, dbSizeBytes: 0)))
            }
        case .snapshotSave:
            for i in 0..<3 {
                context.respondPartial(.snapshotSaveChunk(SnapshotChunk(
                    index: LogIndex(5), term: Term(1), fileName: "f\(i)", offset: 0, data: [UInt8(i)], fileChecksum: [],
                    isLastOfFile: true, isLastOfSnapshot: false)))
            }
            context.respond(.snapshotSaveChunk(SnapshotChunk(
                index: LogIndex(5), term: Term(1), fileName: "end", offset: 0, data: [], fileChecksum: [],
                isLastOfFile: true, isLastOfSnapshot: true)))
        case .hashKV:
            break  // never answered: for timeout and in-flight tests
        default:
            context.respond(.error(RPCErrorResponse(.unsupported, "\(message.kind)")))
        }
    }
}

func endpoint(of server: RPCServer) throws -> Endpoint {
    Endpoint(host: "127.0.0.1", port: UInt16(try #require(server.port)))
}

/// What these tests check is matching and framing, not speed: a client that waits long enough
/// for a loaded machine (the whole test run shares 2 cores; 5 s answers timed out there).
let patient = RPCClientConfiguration(requestTimeout: .seconds(30))

@Suite(.timeLimit(.minutes(3))) struct LoopbackTests {
    @Test func thousandPipelinedRequestsAreMatched() async throws {
        let logs = CapturedLogs()
        let server = try await echoServer(logs: logs)
        let client = try await RPCClient.connect(
            to: try endpoint(of: server), configuration: RPCClientConfiguration(requestsInFlightMax: 1000, requestTimeout: .seconds(30)),
            group: group, logger: logs.logger)
        let answers = try await withThrowingTaskGroup(of: (UInt64, RPCMessage).self) { tasks in
            for i in 1...1000 {
                tasks.addTask { (UInt64(i), try await client.call(.leaderTransfer(NodeID(UInt64(i))))) }
            }
            var all: [(UInt64, RPCMessage)] = []
            for try await answer in tasks { all.append(answer) }
            return all
        }
        #expect(answers.count == 1000)
        for (i, answer) in answers {
            guard case .statusResponse(let status) = answer else {
                Issue.record("request \(i): got \(answer.kind)")
                continue
            }
            #expect(status.nodeID == NodeID(i))
        }
        await client.close()
        try await server.close()
    }

    @Test func streamedAnswer() async throws {
        let logs = CapturedLogs()
        let server = try await echoServer(logs: logs)
        let client = try await RPCClient.connect(to: try endpoint(of: server), group: group, logger: logs.logger)
        let parts = NIOLockedValueBox<[String]>([])
        let last = try await client.stream(.snapshotSave, timeout: .seconds(30)) { part in
            if case .snapshotSaveChunk(let chunk) = part { parts.withLockedValue { $0.append(chunk.fileName) } }
        }
        #expect(parts.withLockedValue { $0 } == ["f0", "f1", "f2"])
        guard case .snapshotSaveChunk(let end) = last else { Issue.record("got \(last.kind)"); return }
        #expect(end.isLastOfSnapshot)
        await client.close()
        try await server.close()
    }

    @Test func timeoutsAndInFlightBounds() async throws {
        let logs = CapturedLogs()
        let server = try await echoServer(logs: logs, configuration: RPCServerConfiguration(requestsInFlightMax: 2))
        let client = try await RPCClient.connect(
            to: try endpoint(of: server), configuration: RPCClientConfiguration(requestsInFlightMax: 3),
            group: group, logger: logs.logger)
        // Three requests at once, room on the server for two: whichever arrives third is
        // answered `overloaded` at once; the two the server holds time out (hashKV is never
        // answered). Which is third depends on scheduling, not on a sleep.
        let outcomes = await withTaskGroup(of: String.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    do {
                        let answer = try await client.call(.hashKV, timeout: .seconds(6))  // 2 s was too short for the immediate `overloaded` on a loaded CI run (2026-12-04)
                        if case .error(let error) = answer { return "\(error.code)" }
                        return "answered \(answer.kind)"
                    } catch {
                        return (error as? RPCClientError).map { "\($0.code)" } ?? "\(error)"
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }.sorted()
        }
        #expect(outcomes == ["overloaded", "timeout", "timeout"], "\(outcomes)")
        await client.close()
        try await server.close()
    }

    @Test func clientBoundFailsFast() async throws {
        let logs = CapturedLogs()
        let server = try await echoServer(logs: logs)
        let client = try await RPCClient.connect(
            to: try endpoint(of: server), configuration: RPCClientConfiguration(requestsInFlightMax: 1),
            group: group, logger: logs.logger)
        // Two calls at once with room for one: whichever is written second is refused at once
        // (`tooManyInFlight`), the other holds the slot until its timeout (hashKV is never
        // answered). Which one wins depends on scheduling, not on a sleep.
        @Sendable func outcome() async -> String {
            do {
                return "answered \(try await client.call(.hashKV, timeout: .seconds(3)).kind)"
            } catch {
                return "\(error.code)"
            }
        }
        async let a = outcome()
        async let b = outcome()
        let outcomes = await [a, b].sorted()
        #expect(outcomes == ["timeout", "tooManyInFlight"].sorted(), "\(outcomes)")
        await client.close()
        try await server.close()
    }

    /// Closing the server ends its connections: a waiting call fails, and a call on the closed
    /// connection fails at once instead of waiting for its timeout.
    @Test func serverCloseEndsConnectionsAndCallsFailFast() async throws {
        let logs = CapturedLogs()
        let server = try await echoServer(logs: logs)
        let client = try await RPCClient.connect(to: try endpoint(of: server), group: group, logger: logs.logger)
        #expect(await eventually { server.connectionCount == 1 })
        let waiting = Task { try await client.call(.hashKV, timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(50))
        try await server.close()
        await #expect { try await waiting.value } throws: { ($0 as? RPCClientError)?.code == .connectionClosed }
        let start = ContinuousClock.now
        await #expect { try await client.call(.status(), timeout: .seconds(30)) } throws: { ($0 as? RPCClientError)?.code == .connectionClosed }
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(server.connectionCount == 0)
    }

    static let garbage: [(String, [UInt8])] = {
        var oversized = Frame(kind: .status, requestID: RequestID(1), body: []).encoded()
        oversized.replaceSubrange(4..<8, with: [0x7F, 0xFF, 0xFF, 0xFF])
        let response = Frame(.leaderTransferResponse, requestID: RequestID(1)).encoded()
        let peerOnClientPort = Frame(.raftMessages([Message(type: .heartbeat, from: NodeID(1), to: NodeID(2), term: Term(1))]), requestID: .none).encoded()
        var badCRC = Frame(.status(), requestID: RequestID(1)).encoded()
        badCRC[20] ^= 0x10
        return [
            ("http", Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)),
            ("oversized", oversized),
            ("response kind", response),
            ("peer kind on client port", peerOnClientPort),
            ("bad crc", badCRC),
            ("truncated", Array(Frame(.status(), requestID: RequestID(1)).encoded().dropLast(1))),
        ]
    }()

    /// Well-formed write frames whose proposals break a rule (docs/PROTOCOL.md: only broken
    /// framing closes a connection).
    static let invalidWrites: [(String, [UInt8])] = {
        let k = Array("k".utf8)
        func proposal(_ command: KVCommand, session: ClientSession? = nil) -> [UInt8] {
            KVProposal(session: session, command: command).encoded()  // encoded() does not validate
        }
        var unknownVersion = proposal(.put(KVPut(key: k, value: k)))
        unknownVersion[0] = 9
        return [
            ("empty key", proposal(.put(KVPut(key: [], value: k)))),
            ("key over 4,096 bytes", proposal(.put(KVPut(key: [UInt8](repeating: 1, count: KVLimits.keyBytesMax + 1), value: k)))),
            ("value over 1 MiB", proposal(.put(KVPut(key: k, value: [UInt8](repeating: 2, count: KVLimits.valueBytesMax + 1))))),
            ("key twice in a txn branch", proposal(.txn(KVTxn(compares: [], success: [.put(KVPut(key: k, value: k)), .put(KVPut(key: k, value: []))])))),
            ("session sequence 0", proposal(.put(KVPut(key: k, value: k)), session: ClientSession(clientID: ClientID(5), sequence: SequenceNumber(0)))),
            ("compact 0", proposal(.compact(Revision(0)))),
            ("unknown proposal version", unknownVersion),
        ]
    }()

    /// Each invalid write over a raw socket is answered `invalidRequest` with its reason on the
    /// same connection, which then serves a valid request.
    @Test(arguments: LoopbackTests.invalidWrites.map { $0.0 })
    func invalidWriteIsAnsweredNotDisconnected(name: String) async throws {
        let body = try #require(Self.invalidWrites.first { $0.0 == name }?.1)
        let logs = CapturedLogs()
        let server = try await echoServer(logs: logs)
        let raw = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: try #require(server.port)).get()
        let received = NIOLockedValueBox<[UInt8]>([])
        try await raw.pipeline.addHandler(ByteCollector(into: received))
        try await raw.writeAndFlush(ByteBuffer(bytes: Frame(kind: .write, requestID: RequestID(7), body: body).encoded()))
        func frames() -> [Frame] {
            var bytes = received.withLockedValue { $0 }
            var out: [Frame] = []
            while let (frame, used) = (try? Frame.decode(bytes)) ?? nil {
                out.append(frame)
                bytes.removeFirst(used)
            }
            return out
        }
        #expect(await eventually { frames().count == 1 }, "no answer to \(name)")
        let answer = try #require(frames().first)
        #expect(answer.requestID == RequestID(7))
        guard case .error(let error) = try RPCMessage(answer) else { Issue.record("got \(answer.kind)"); return }
        #expect(error.code == .invalidRequest && error.message.hasPrefix("write: "), "\(name): \(error)")
        try await raw.writeAndFlush(ByteBuffer(bytes: Frame(.leaderTransfer(NodeID(3)), requestID: RequestID(8)).encoded()))
        #expect(await eventually { frames().count == 2 }, "the connection did not serve a valid request after \(name)")
        #expect(frames().last?.kind == .statusResponse)
        #expect(raw.isActive)
        #expect(!logs.all.contains { $0.contains("closing rpc connection") }, "\(logs.all)")
        try await raw.close()
        try await server.close()
    }

    /// A client sending garbage is disconnected with a logged reason; a good client on the
    /// same server keeps working before, during and after.
    @Test(arguments: LoopbackTests.garbage.map { $0.0 })
    func garbageClientIsDisconnected(name: String) async throws {
        let bytes = try #require(Self.garbage.first { $0.0 == name }?.1)
        let logs = CapturedLogs()
        let server = try await echoServer(logs: logs)
        let good = try await RPCClient.connect(to: try endpoint(of: server), configuration: patient, group: group, logger: logs.logger)
        #expect(try await good.call(.leaderTransfer(NodeID(1))).kind == .statusResponse)

        let raw = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: try #require(server.port)).get()
        try await raw.writeAndFlush(ByteBuffer(bytes: bytes))
        if name == "truncated" { try await raw.close(mode: .output) }
        let closed = raw.closeFuture.isFulfilledFlag()
        #expect(await eventually { closed.withLockedValue { $0 } }, "server kept the \(name) connection open")
        #expect(await eventually { logs.all.contains { $0.contains("closing rpc connection") } }, "\(logs.all)")

        #expect(try await good.call(.leaderTransfer(NodeID(2))).kind == .statusResponse)
        await good.close()
        try await server.close()
    }
}

extension EventLoopFuture {
    /// A flag set once the future completes (polled by tests).
    func isFulfilledFlag() -> NIOLockedValueBox<Bool> {
        let done = NIOLockedValueBox(false)
        whenComplete { _ in done.withLockedValue { $0 = true } }
        return done
    }
}
