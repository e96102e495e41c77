import Crypto
import FaunaClient
import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaVerify
import Foundation
import NIOConcurrencyHelpers
import Testing

@Suite(.timeLimit(.minutes(3))) struct SnapshotSaveTests {
    static let files: [(String, [UInt8])] = [
        ("CURRENT", Array("MANIFEST-000001\n".utf8)),
        ("000001.sst", (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }),
        ("empty", []),
    ]

    /// The chunks of `files`, 64 KiB each; `skip` drops one to make a gap.
    func chunks(skipping skip: Int?) -> [SnapshotChunk] {
        var out: [SnapshotChunk] = []
        for (f, (name, data)) in Self.files.enumerated() {
            let checksum = Array(SHA256.hash(data: data))
            var offset = 0
            repeat {
                let end = min(offset + 65_536, data.count)
                out.append(SnapshotChunk(
                    index: LogIndex(40), term: Term(3), fileName: name, offset: UInt64(offset), data: Array(data[offset..<end]),
                    fileChecksum: checksum, isLastOfFile: end == data.count, isLastOfSnapshot: end == data.count && f == Self.files.count - 1))
                offset = end
            } while offset < data.count
        }
        if let skip { out.remove(at: skip) }
        return out
    }

    /// The one member's key, and the head of size 40 it signs.
    static let key = Curve25519.Signing.PrivateKey()
    static let head = TreeHead(
        clusterID: ClusterID(bytes: [UInt8](repeating: 7, count: 16))!, treeSize: 40,
        rootHash: MerkleHash(bytes: [UInt8](repeating: 9, count: 32))!)

    /// A one-node "cluster" that streams `chunks` and signs the head of size 40 (with
    /// `signs` false: a head signed by a key other than the member's).
    func serve(_ chunks: [SnapshotChunk], signs: Bool = true) async throws -> RPCServer {
        let server = try await RPCServer.start(configuration: RPCServerConfiguration(), group: group, logger: quiet) { message, context in
            let signer = signs ? Self.key : Curve25519.Signing.PrivateKey()
            switch message {
            case .snapshotSave:
                for chunk in chunks.dropLast() { context.respondPartial(.snapshotSaveChunk(chunk)) }
                context.respond(.snapshotSaveChunk(chunks.last!))
            case .signedTreeHead(let request) where request.treeSize == 40:
                let signature = try! signer.signature(for: Self.head.canonicalBytes)
                context.respond(.signedTreeHeadResponse(SignedTreeHeadResponse(
                    nodeID: NodeID(1), appliedIndex: LogIndex(41), head: Self.head,
                    signature: TreeHeadSignature(publicKey: Array(signer.publicKey.rawRepresentation), signature: Array(signature)))))
            case .members:
                let me = Endpoint(host: "127.0.0.1", port: 1)
                context.respond(.membersResponse([Member(
                    nodeID: NodeID(1), peerAddress: me, clientAddress: me, isLearner: false,
                    publicKey: Array(Self.key.publicKey.rawRepresentation))]))
            default:
                context.respond(.error(RPCErrorResponse(.unsupported, "not here")))
            }
        }
        return server
    }

    func temporaryPath(_ name: String) -> String {
        NSTemporaryDirectory() + "fauna-client-test-\(UInt64.random(in: 0...UInt64.max))-\(name)"
    }

    @Test func savesAnArchiveThatVerifies() async throws {
        let server = try await serve(chunks(skipping: nil))
        let endpoint = Endpoint(host: "127.0.0.1", port: UInt16(server.port!))
        let client = FaunaClient(endpoints: [endpoint], configuration: fast(), group: group)
        let path = temporaryPath("ok.fsnap")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let written = NIOLockedValueBox<[UInt64]>([])
        let summary = try await client.saveSnapshot(to: path, from: endpoint) { n in written.withLockedValue { $0.append(n) } }
        #expect(summary.index == LogIndex(40) && summary.term == Term(3))
        #expect(summary.files.map(\.name) == Self.files.map(\.0))
        #expect(summary.dataBytes == UInt64(Self.files.map(\.1.count).reduce(0, +)))
        // The member's signature over the head at the snapshot's index is in the archive.
        #expect(summary.version == 2 && summary.signedHead?.head == Self.head)
        #expect(try summary.signedHead?.verify(clusterID: Self.head.clusterID, members: [Self.key.publicKey]) == 1)
        // Progress: once per chunk, growing, ending at every data byte.
        let reported = written.withLockedValue { $0 }
        #expect(reported.count == chunks(skipping: nil).count)
        #expect(reported == reported.sorted() && reported.last == summary.dataBytes)
        var hashed: [(UInt64, UInt64?)] = []
        #expect(try SnapshotArchive.verify(path: path) { hashed.append(($0, $1)) } == summary)
        let archiveBytes = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value
        #expect(archiveBytes != nil)
        #expect(hashed.last?.0 == summary.dataBytes && hashed.allSatisfy { $0.1 == archiveBytes })
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))

        let saved = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        // The same archive in version 1 (no proof record, FNASNAP1 at both ends) still reads,
        // and says it carries no head.
        var v1 = Array(saved[..<(saved.count - 21 - (1 + 2 + 72 + 96))]) + Array(saved[(saved.count - 21)...])
        v1.replaceSubrange(0..<8, with: SnapshotArchive.magicV1)
        v1.replaceSubrange((v1.count - 8)..., with: SnapshotArchive.magicV1)
        try Data(v1).write(to: URL(fileURLWithPath: path))
        let old = try SnapshotArchive.verify(path: path)
        #expect(old.version == 1 && old.signedHead == nil && old.files == summary.files && old.index == summary.index)

        // A flipped data byte is detected, naming the file.
        var bytes = saved
        bytes[bytes.count / 2] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect { try SnapshotArchive.verify(path: path) } throws: {
            ($0 as? FaunaClientError)?.code == .verificationFailed && "\($0)".contains("file 000001.sst: SHA-256 differs")
        }
        // A flipped bit of the signed root reads back, and no longer verifies.
        bytes = saved
        let proofAt = bytes.count - 21 - 96 - 32  // trailer 21, one signature 96, root 32
        bytes[proofAt] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let forged = try SnapshotArchive.verify(path: path)
        #expect(forged.signedHead?.head.rootHash != Self.head.rootHash)
        #expect(throws: VerificationError.self) {
            try forged.signedHead?.verify(clusterID: Self.head.clusterID, members: [Self.key.publicKey])
        }
        await client.close()
        try await server.close()
    }

    @Test func withoutAMajorityOfSignaturesTheSaveFailsAndLeavesNoFile() async throws {
        let server = try await serve(chunks(skipping: nil), signs: false)
        let endpoint = Endpoint(host: "127.0.0.1", port: UInt16(server.port!))
        let client = FaunaClient(endpoints: [endpoint], configuration: fast(), group: group)
        let path = temporaryPath("unsigned.fsnap")
        await #expect { _ = try await client.saveSnapshot(to: path, from: endpoint) } throws: {
            ($0 as? FaunaClientError)?.code == .unavailable && "\($0)".contains("0 of 1 voters signed the tree head of size 40")
        }
        #expect(!FileManager.default.fileExists(atPath: path) && !FileManager.default.fileExists(atPath: path + ".tmp"))
        await client.close()
        try await server.close()
    }

    @Test func aGapInTheStreamFailsAndLeavesNoFile() async throws {
        let server = try await serve(chunks(skipping: 2))
        let endpoint = Endpoint(host: "127.0.0.1", port: UInt16(server.port!))
        let client = FaunaClient(endpoints: [endpoint], configuration: fast(), group: group)
        let path = temporaryPath("gap.fsnap")
        await #expect { _ = try await client.saveSnapshot(to: path, from: endpoint) } throws: { ($0 as? FaunaClientError)?.code == .internal }
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        await client.close()
        try await server.close()
    }
}
