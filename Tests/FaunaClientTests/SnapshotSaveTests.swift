import Crypto
import FaunaClient
import FaunaKV
import FaunaRPC
import FaunaRaft
import Foundation
import NIOConcurrencyHelpers
import Testing

@Suite(.timeLimit(.minutes(1))) struct SnapshotSaveTests {
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

    func serve(_ chunks: [SnapshotChunk]) async throws -> RPCServer {
        try await RPCServer.start(configuration: RPCServerConfiguration(), group: group, logger: quiet) { message, context in
            guard case .snapshotSave = message else { return context.respond(.error(RPCErrorResponse(.unsupported, "only snapshots"))) }
            for chunk in chunks.dropLast() { context.respondPartial(.snapshotSaveChunk(chunk)) }
            context.respond(.snapshotSaveChunk(chunks.last!))
        }
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

        // A flipped data byte is detected.
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: FaunaClientError.self) { try SnapshotArchive.verify(path: path) }
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
