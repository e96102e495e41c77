import FaunaKV
import FaunaRaft
import FaunaRPC
import Testing

/// The worked examples of docs/PROTOCOL.md: if an encoding changes, this fails and the
/// document must change with it (and the protocol version, if the change is on the wire).
@Suite struct ProtocolExampleTests {
    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { b in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined(separator: " ")
    }

    static let examples: [(String, Frame, String)] = [
        (
            "write: put k1=v1, session (client 77, sequence 1), request 1",
            Frame(.write(WriteRequest(KVProposal(
                session: ClientSession(clientID: ClientID(77), sequence: .first),
                command: .put(KVPut(key: Array("k1".utf8), value: Array("v1".utf8)))))), requestID: RequestID(1)),
            "46 4e 41 01 00 00 00 20 10 00 00 00 00 00 00 00 00 01 1d 5b b6 5c | 01 01 00 00 00 00 00 00 00 4d 00 00 00 00 00 00 00 01 01 00 00 00 00 02 6b 31 00 00 00 02 76 31"
        ),
        (
            "writeResponse: success at revision 12, one put result, request 1",
            Frame(.writeResponse(KVApplyResult(revision: Revision(12), outcome: .success(succeeded: true, results: [.put(previous: nil)]))), requestID: RequestID(1)),
            "46 4e 41 01 00 00 00 10 90 00 00 00 00 00 00 00 00 01 5d a8 74 06 | 01 00 00 00 00 00 00 00 0c 00 00 01 00 01 01 00"
        ),
        (
            "read: get k1, linearizable, request 2",
            Frame(.read(ReadRequest(KVRangeRequest(range: .single(Array("k1".utf8))))), requestID: RequestID(2)),
            "46 4e 41 01 00 00 00 10 11 00 00 00 00 00 00 00 00 02 b3 b5 e4 6a | 00 00 00 00 00 02 6b 31 01 00 00 00 03 6b 31 00"
        ),
        (
            "error: notLeader, leader n2 at 127.0.0.1:7102, request 2",
            Frame(.error(RPCErrorResponse(.notLeader, "not the leader", leaderHint: LeaderHint(nodeID: NodeID(2), clientAddress: Endpoint(host: "127.0.0.1", port: 7102)))), requestID: RequestID(2)),
            "46 4e 41 01 00 00 00 1e ff 00 00 00 00 00 00 00 00 02 8b b2 19 d1 | 01 0e 6e 6f 74 20 74 68 65 20 6c 65 61 64 65 72 03 02 09 31 32 37 2e 30 2e 30 2e 31 1b be"
        ),
        (
            "raftMessages: heartbeat n1 → n2, term 3, commit 40 (one-way)",
            Frame(.raftMessages([Message(type: .heartbeat, from: NodeID(1), to: NodeID(2), term: Term(3), commit: LogIndex(40))]), requestID: .none),
            "46 4e 41 01 00 00 00 07 02 00 00 00 00 00 00 00 00 00 0f 5c 23 ff | 01 07 01 02 03 08 28"
        ),
    ]

    @Test func documentedExamples() throws {
        for (name, frame, expected) in Self.examples {
            let bytes = frame.encoded()
            let header = Self.hex(Array(bytes[..<FrameHeader.sizeBytes]))
            let body = Self.hex(Array(bytes[FrameHeader.sizeBytes...]))
            #expect("\(header) | \(body)" == expected, "\(name)")
            #expect(try RPCMessage(try #require(try Frame.decode(bytes)).frame) == RPCMessage(frame))
        }
    }
}
