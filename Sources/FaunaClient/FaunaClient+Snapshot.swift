import Crypto
import FaunaRPC
import FaunaRaft
import FaunaVerify
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

extension FaunaClient {
    /// Streams a snapshot of one node's state into the archive file `path`
    /// (`SnapshotArchive`): written to `path.tmp`, checked chunk by chunk, fsynced, renamed.
    ///
    /// Memory stays bounded: the stream runs on a connection with its own event loop thread,
    /// and each chunk is written to disk before that thread reads the next one, so a slow disk
    /// slows the sender through TCP flow control instead of filling a queue.
    ///
    /// - Parameters:
    ///   - endpoint: the node to save; nil: the leader.
    ///   - progress: told the bytes written so far after each chunk (on an event loop: must
    ///     not block).
    /// Once the stream has ended, every configured node is asked for its signed tree head at
    /// the snapshot's applied index; the archive carries the saving node's head with the
    /// signatures of every voter that signed the same root, and the save fails unless a
    /// majority of the voters did (docs/AUDIT.md "Backups").
    ///
    /// - Returns: what the archive holds. `verify(path:)` of `SnapshotArchive` re-checks it.
    public func saveSnapshot(
        to path: String, from endpoint: Endpoint? = nil, progress: (@Sendable (_ written: UInt64) -> Void)? = nil
    ) async throws(FaunaClientError) -> SnapshotArchive.Summary {
        let source: Endpoint
        if let endpoint { source = endpoint } else { source = try await findLeader() }
        let sink = SnapshotSink(try SnapshotArchiveWriter(path: path), progress: progress)
        let loop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let summary = try await stream(from: source, into: sink, group: loop)
            try? await loop.shutdownGracefully()
            return summary
        } catch {
            sink.abort()
            try? await loop.shutdownGracefully()
            throw error
        }
    }

    private func stream(from source: Endpoint, into sink: SnapshotSink, group: any EventLoopGroup) async throws(FaunaClientError) -> SnapshotArchive.Summary {
        var rpc = RPCClientConfiguration(requestsInFlightMax: 1, connectTimeout: Self.timeAmount(configuration.connectTimeout))
        rpc.tls = configuration.tls
        let connection: RPCClient
        do {
            connection = try await RPCClient.connect(to: source, configuration: rpc, group: group, logger: configuration.logger)
        } catch {
            throw FaunaClientError(.unavailable, "cannot connect to \(source): \(error.reason)")
        }
        let channel = connection.channel
        let final: RPCMessage
        do {
            final = try await connection.stream(.snapshotSave, timeout: Self.timeAmount(configuration.snapshotTimeout)) { part in
                // A broken stream closes the connection at once; the recorded error explains.
                if !sink.accept(part, isFinal: false) { channel.close(promise: nil) }
            }
            // Closed here, before the caller shuts its event loop down.
            await connection.close()
        } catch {
            await connection.close()
            if let failure = sink.failure { throw failure }
            let code: FaunaClientError.Code = error.code == .timeout ? .timeout : .unavailable
            throw FaunaClientError(code, "snapshot stream from \(source): \(error)")
        }
        if case .error(let response) = final { throw FaunaClientError(response: response, from: source) }
        guard sink.accept(final, isFinal: true) else { throw sink.failure ?? FaunaClientError(.internal, "snapshot stream failed") }
        guard let index = sink.snapshotIndex?.index else { throw FaunaClientError(.internal, "snapshot stream carried no snapshot") }
        return try sink.finish(proof: try await treeHeadProof(at: index, from: source))
    }

    /// `source`'s tree head of size `index` with the valid signatures of every voter that
    /// signed the same head, one per node and key.
    /// - Throws: `unavailable` unless a majority of the current voters signed it.
    func treeHeadProof(at index: LogIndex, from source: Endpoint) async throws(FaunaClientError) -> SignedTreeHead {
        let head = try await signedTreeHead(of: source, treeSize: index.rawValue, within: .seconds(5)).head
        let voters = try await members().filter { !$0.isLearner }
        var signatures: [TreeHeadSignature] = []
        var signers: [NodeID] = []
        var refused: [String] = []
        for (endpoint, result) in await gatherHeads(size: index.rawValue) {
            switch result {
            case .success(let answer):
                guard let voter = voters.first(where: { $0.nodeID == answer.nodeID }), voter.publicKey == answer.signature.publicKey,
                    answer.head == head, !signers.contains(answer.nodeID),
                    let key = try? Curve25519.Signing.PublicKey(rawRepresentation: answer.signature.publicKey),
                    key.isValidSignature(answer.signature.signature, for: head.canonicalBytes)
                else {
                    refused.append("\(answer.nodeID) at \(endpoint): another head, or not a voter with that key")
                    continue
                }
                signatures.append(answer.signature)
                signers.append(answer.nodeID)
            case .failure(let error):
                refused.append("\(endpoint): \(error)")
            }
        }
        guard signers.count * 2 > voters.count else {
            throw FaunaClientError(
                .unavailable,
                "snapshot save: \(signers.count) of \(voters.count) voters signed the tree head of size \(index) (root \(head.rootHash)); "
                    + "an archive needs a majority to prove its history. Configure every member (--config) and save again"
                    + (refused.isEmpty ? "" : "; " + refused.sorted().joined(separator: "; ")))
        }
        return SignedTreeHead(head: head, signatures: signatures)
    }
}

/// The archive writer shared between the event loop (chunks) and the saving task (finish).
/// `@unchecked Sendable`: every access to `writer` and `failure` holds `lock`.
private final class SnapshotSink: @unchecked Sendable {
    private let lock = NIOLock()
    private let writer: SnapshotArchiveWriter
    private var firstFailure: FaunaClientError?
    private let progress: (@Sendable (UInt64) -> Void)?
    private var written: UInt64 = 0

    init(_ writer: SnapshotArchiveWriter, progress: (@Sendable (UInt64) -> Void)?) {
        self.writer = writer
        self.progress = progress
    }

    var failure: FaunaClientError? { lock.withLock { firstFailure } }

    /// Appends a streamed frame; false (and `failure` set) if the stream is broken.
    func accept(_ message: RPCMessage, isFinal: Bool) -> Bool {
        lock.withLock {
            guard firstFailure == nil else { return false }
            do {
                guard case .snapshotSaveChunk(let chunk) = message else {
                    throw FaunaClientError(.internal, "snapshot stream: got \(message.kind), want snapshotSaveChunk")
                }
                guard chunk.isLastOfSnapshot == isFinal else {
                    throw FaunaClientError(.internal, "snapshot stream: lastOfSnapshot \(chunk.isLastOfSnapshot) on \(isFinal ? "the final" : "a partial") frame")
                }
                try writer.append(chunk)
                written += UInt64(chunk.data.count)
                progress?(written)
                return true
            } catch let error as FaunaClientError {
                firstFailure = error
                return false
            } catch {
                preconditionFailure("only FaunaClientError is thrown here: \(error)")
            }
        }
    }

    var snapshotIndex: (index: LogIndex, term: Term)? { lock.withLock { writer.snapshotIndex } }

    func finish(proof: SignedTreeHead) throws(FaunaClientError) -> SnapshotArchive.Summary {
        lock.lock()
        defer { lock.unlock() }
        return try writer.finish(proof: proof)
    }

    func abort() { lock.withLock { writer.abort() } }
}
