import FaunaPipeline
import FaunaRPC
import FaunaRaft
import FaunaStore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Leader side of a snapshot install (ADR 0007, docs/RELIABILITY.md "Catch-up"): the Raft core
/// only says "send a snapshot to X". The node then takes a checkpoint of its applied state,
/// streams it to X's peer port (`snapshotOffer`, then `snapshotChunk`s, each acknowledged),
/// and only after the last acknowledgement sends X the Raft snapshot message, carrying the
/// checkpoint's metadata. One transfer per peer at a time; a failed one is retried when the
/// core asks again (it gives up waiting after an election timeout).
final class SnapshotSender: Sendable {
    private let inProgress = NIOLockedValueBox<Set<NodeID>>([])
    private let identity: PeerIdentity
    private let group: any EventLoopGroup
    private let tls: TLSContexts?
    private let logger: Logger
    /// File reads happen here, off the event loops and the cooperative pool.
    private let io = DispatchQueue(label: "fauna-snapshot-send")
    static let chunkBytes = 512 << 10

    init(identity: PeerIdentity, group: any EventLoopGroup, tls: TLSContexts?, logger: Logger) {
        self.identity = identity
        self.group = group
        self.tls = tls
        self.logger = logger
    }

    /// Claims the transfer slot for `peer`; false if one is already running.
    func claim(_ peer: NodeID) -> Bool { inProgress.withLockedValue { $0.insert(peer).inserted } }

    func release(_ peer: NodeID) { _ = inProgress.withLockedValue { $0.remove(peer) } }

    /// Hashes `checkpoint` (on the io queue) and streams it to `peer`; `done` gets the snapshot
    /// metadata on success, nil on failure. Always releases the slot and removes the checkpoint.
    func send(
        _ checkpoint: Checkpoint, to peer: NodeID, at endpoint: Endpoint,
        done: @escaping @Sendable (SnapshotMetadata?) -> Void
    ) {
        io.async { [self] in
            let source: SnapshotSource
            do {
                source = try SnapshotSource(checkpoint: checkpoint)
            } catch {
                logger.error("snapshot for \(peer): hashing the checkpoint: \(error)")
                release(peer)
                done(nil)
                return
            }
            stream(UncheckedBox(source), to: peer, at: endpoint, done: done)
        }
    }

    private func stream(
        _ box: UncheckedBox<SnapshotSource>, to peer: NodeID, at endpoint: Endpoint,
        done: @escaping @Sendable (SnapshotMetadata?) -> Void
    ) {
        Task {
            let started = Date()
            let ok = await self.stream(box, to: peer, at: endpoint)
            box.value.close()
            self.release(peer)
            let meta = box.value.manifest.metadata
            if ok {
                self.logger.info("snapshot sent", metadata: [
                    "peer": "\(peer)", "index": "\(meta.index)", "bytes": "\(box.value.manifest.totalBytes)",
                    "seconds": "\(String(format: "%.2f", Date().timeIntervalSince(started)))",
                ])
            }
            done(ok ? meta : nil)
        }
    }

    private func stream(_ box: UncheckedBox<SnapshotSource>, to peer: NodeID, at endpoint: Endpoint) async -> Bool {
        let manifest = box.value.manifest
        let meta = manifest.metadata
        let hello = PeerHello(clusterName: identity.clusterName, from: identity.nodeID, to: peer, publicKey: identity.publicKey)
        let client: RPCClient
        var configuration = RPCClientConfiguration(requestTimeout: .seconds(30), hello: hello)
        configuration.tls = tls
        do {
            client = try await RPCClient.connect(
                to: endpoint, configuration: configuration,
                group: group, logger: logger)
        } catch {
            logger.warning("snapshot to \(peer): \(error)")
            return false
        }
        defer { Task { await client.close() } }
        let offer = SnapshotOffer(
            metadata: meta,
            files: manifest.files.map { SnapshotFile(name: $0.name, sizeBytes: $0.sizeBytes, checksum: $0.sha256) })
        guard await acknowledged(try? await client.call(.snapshotOffer(offer)), peer: peer) else { return false }
        var remaining = manifest.files.count
        var progress = TransferProgress(totalBytes: manifest.totalBytes)
        while true {
            let next: Result<FaunaStore.SnapshotChunk?, StoreError> = await withCheckedContinuation { continuation in
                io.async {
                    continuation.resume(returning: Result { () throws(StoreError) in try box.value.nextChunk(maxBytes: Self.chunkBytes) })
                }
            }
            guard case .success(let piece) = next else {
                logger.error("snapshot to \(peer): reading the checkpoint: \(next)")
                return false
            }
            guard let piece else { return remaining == 0 }
            let chunk = manifest.wireChunk(piece, filesLeft: &remaining)
            guard await acknowledged(try? await client.call(.snapshotChunk(chunk)), peer: peer) else { return false }
            if var line = progress.add(piece.data.count) {
                line["peer"] = "\(peer)"
                line["index"] = "\(meta.index)"
                logger.info("sending a snapshot", metadata: line)
            }
        }
    }

    private func acknowledged(_ answer: RPCMessage?, peer: NodeID) async -> Bool {
        switch answer {
        case .snapshotAck(let ack) where ack.isAccepted: return true
        case .snapshotAck(let ack):
            logger.warning("snapshot to \(peer) refused: \(ack.reason)")
        case .error(let e):
            logger.warning("snapshot to \(peer): \(e)")
        case nil:
            logger.warning("snapshot to \(peer): no answer (connection lost or timed out)")
        case let other?:
            logger.warning("snapshot to \(peer): got \(other.kind), want snapshotAck")
        }
        return false
    }
}

extension SnapshotManifest {
    /// `piece` as a protocol chunk: file name, checksum, and the last-of-file / last-of-snapshot
    /// flags (`filesLeft` counts the files not yet sent to their end).
    func wireChunk(_ piece: FaunaStore.SnapshotChunk, filesLeft: inout Int) -> FaunaRPC.SnapshotChunk {
        let file = files[piece.fileIndex]
        let isLastOfFile = piece.offset + UInt64(piece.data.count) == file.sizeBytes
        if isLastOfFile { filesLeft -= 1 }
        return FaunaRPC.SnapshotChunk(
            index: metadata.index, term: metadata.term, fileName: file.name, offset: piece.offset, data: piece.data,
            fileChecksum: file.sha256, isLastOfFile: isLastOfFile, isLastOfSnapshot: isLastOfFile && filesLeft == 0)
    }
}

/// Follower side: receives the files of one snapshot into `<data>/db.incoming` (FaunaStore's
/// `SnapshotReceiver` checks sizes and SHA-256 per file). The owner thread installs it when
/// the Raft snapshot message for the same index arrives, and only then: a snapshot message
/// without its complete files is dropped (the leader retries).
final class SnapshotInbox: Sendable {
    private struct State {
        var receiver: UncheckedBox<SnapshotReceiver>?
        var from: NodeID?
        var isComplete = false
        /// The owner thread is installing `db.incoming`: refuse new offers until it is done.
        var isInstalling = false
        /// Bytes received so far, for a progress line every few seconds.
        var progress: TransferProgress?
    }
    private let state = NIOLockedValueBox(State())
    /// File writes and fsyncs happen here, off the event loops.
    private let io = DispatchQueue(label: "fauna-snapshot-receive")
    private let dataDirectory: String
    /// The store's master key (encryption at rest): opens an encrypted snapshot's keyring.
    private let masterKey: MasterKey?
    private let logger: Logger

    init(dataDirectory: String, masterKey: MasterKey?, logger: Logger) {
        self.logger = logger
        self.dataDirectory = dataDirectory
        self.masterKey = masterKey
    }

    /// Handles `snapshotOffer` / `snapshotChunk` from a peer; answers through `context`.
    func handle(_ message: RPCMessage, from peer: NodeID, context: RPCRequestContext) {
        io.async { [self] in context.respond(.snapshotAck(process(message, from: peer))) }
    }

    private func process(_ message: RPCMessage, from peer: NodeID) -> SnapshotAck {
        switch message {
        case .snapshotOffer(let offer):
            let meta = offer.metadata
            guard !state.withLockedValue({ $0.isInstalling }) else {
                return SnapshotAck(index: meta.index, term: meta.term, isAccepted: false, reason: "installing another snapshot")
            }
            let manifest = SnapshotManifest(
                metadata: meta,
                files: offer.files.map { SnapshotManifest.File(name: $0.name, sizeBytes: $0.sizeBytes, sha256: $0.checksum) })
            do {
                let receiver = try SnapshotReceiver(dataDirectory: dataDirectory, manifest: manifest, masterKey: masterKey)
                state.withLockedValue {
                    $0 = State(receiver: UncheckedBox(receiver), from: peer, progress: TransferProgress(totalBytes: manifest.totalBytes))
                }
                logger.info("receiving a snapshot", metadata: [
                    "from": "\(peer)", "index": "\(meta.index)", "files": "\(offer.files.count)", "bytes": "\(manifest.totalBytes)",
                ])
                return SnapshotAck(index: meta.index, term: meta.term, isAccepted: true)
            } catch {
                return SnapshotAck(index: meta.index, term: meta.term, isAccepted: false, reason: "\(error)")
            }
        case .snapshotChunk(let chunk):
            let current = state.withLockedValue { $0 }
            guard let receiver = current.receiver?.value, current.from == peer,
                receiver.manifest.metadata.index == chunk.index,
                let fileIndex = receiver.manifest.files.firstIndex(where: { $0.name == chunk.fileName })
            else {
                return SnapshotAck(index: chunk.index, term: chunk.term, fileName: chunk.fileName, isAccepted: false,
                                   reason: "no snapshot offer for index \(chunk.index) from \(peer)")
            }
            do {
                try receiver.receive(FaunaStore.SnapshotChunk(fileIndex: fileIndex, offset: chunk.offset, data: chunk.data))
            } catch {
                state.withLockedValue { $0 = State() }
                return SnapshotAck(index: chunk.index, term: chunk.term, fileName: chunk.fileName, isAccepted: false, reason: "\(error)")
            }
            if receiver.isComplete { state.withLockedValue { $0.isComplete = true } }
            if var line = state.withLockedValue({ $0.progress?.add(chunk.data.count) }) {
                line["from"] = "\(peer)"
                line["index"] = "\(chunk.index)"
                logger.info("receiving a snapshot", metadata: line)
            }
            return SnapshotAck(index: chunk.index, term: chunk.term, fileName: chunk.fileName,
                               nextOffset: chunk.offset + UInt64(chunk.data.count), isAccepted: true)
        default:
            return SnapshotAck(index: .zero, term: .zero, isAccepted: false, reason: "not a snapshot frame")
        }
    }

    /// Takes the complete receiver for `index` (the owner thread then finishes and installs it).
    func take(at index: LogIndex) -> SnapshotReceiver? {
        io.sync {
            state.withLockedValue { s in
                guard s.isComplete, let r = s.receiver?.value, r.manifest.metadata.index == index else { return nil }
                s = State()
                s.isInstalling = true
                return r
            }
        }
    }
}

extension SnapshotInbox {
    /// The install `take` started is over (done or failed): offers are welcome again.
    func installFinished() { state.withLockedValue { $0.isInstalling = false } }
}

/// Hands a non-Sendable object to another thread. `@unchecked Sendable`: each use passes the
/// object on; at most one thread uses it at a time (the snapshot IO queues serialise access).
final class UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// The snapshot port: leader-side sends, follower-side inbox, client saves.
final class SnapshotShipper: SnapshotShipping {
    let sender: SnapshotSender
    let inbox: SnapshotInbox
    let members: MemberDirectory
    let logger: Logger

    init(sender: SnapshotSender, inbox: SnapshotInbox, members: MemberDirectory, logger: Logger) {
        self.sender = sender
        self.inbox = inbox
        self.members = members
        self.logger = logger
    }

    func claim(_ peer: NodeID) -> Bool { sender.claim(peer) }
    func release(_ peer: NodeID) { sender.release(peer) }

    func send(_ checkpoint: any StateCheckpoint, to peer: NodeID, done: @escaping @Sendable (SnapshotMetadata?) -> Void) {
        guard let checkpoint = checkpoint as? Checkpoint, let endpoint = members.addresses(of: peer)?.peer else {
            logger.error("snapshot for \(peer): no address known, or not a RocksDB checkpoint")
            sender.release(peer)
            return done(nil)
        }
        sender.send(checkpoint, to: peer, at: endpoint, done: done)
    }

    func take(at index: LogIndex) -> (any IncomingSnapshot)? { inbox.take(at: index) }
    func installFinished() { inbox.installFinished() }

    /// `snapshotSave`: hashing and streaming read every byte, on a thread of their own.
    func stream(_ checkpoint: any StateCheckpoint, to context: RPCRequestContext, slot: ClientJobSlot) {
        guard let checkpoint = checkpoint as? Checkpoint else {
            slot.release()
            return context.respond(.error(RPCErrorResponse(.internalError, "snapshot: not a RocksDB checkpoint")))
        }
        let logger = logger
        let thread = Thread {
            defer { slot.release() }
            do {
                Self.stream(try SnapshotSource(checkpoint: checkpoint), to: context, logger: logger)
            } catch {
                context.respond(.error(RPCErrorResponse(.internalError, "snapshot: \(error)")))
            }
        }
        thread.name = "fauna-snapshot-save"
        thread.start()
    }

    private static func stream(_ source: SnapshotSource, to context: RPCRequestContext, logger: Logger) {
        defer { source.close() }
        let manifest = source.manifest
        let meta = manifest.metadata
        // Zero files cannot happen (RocksDB always writes a manifest), but answer sensibly.
        guard !manifest.files.isEmpty else {
            return context.respond(.error(RPCErrorResponse(.internalError, "snapshot has no files")))
        }
        var remaining = manifest.files.count
        do {
            while let piece = try source.nextChunk(maxBytes: SnapshotSender.chunkBytes) {
                let chunk = manifest.wireChunk(piece, filesLeft: &remaining)
                if chunk.isLastOfSnapshot {
                    context.respond(.snapshotSaveChunk(chunk))
                    logger.info("snapshot saved by a client", metadata: ["index": "\(meta.index)", "bytes": "\(manifest.totalBytes)"])
                    return
                }
                context.respondPartial(.snapshotSaveChunk(chunk))
                // Backpressure: a slow reader must not make us buffer the whole database; a
                // reader that takes nothing for a minute is given up.
                let stalledLimit = ContinuousClock.now + .seconds(60)
                while !context.isWritable {
                    guard context.isOpen else {
                        logger.info("snapshot save abandoned: the client closed the connection")
                        return
                    }
                    guard ContinuousClock.now < stalledLimit else {
                        logger.warning("snapshot save abandoned: the client stopped reading")
                        return
                    }
                    usleep(2_000)
                }
            }
            context.respond(.error(RPCErrorResponse(.internalError, "snapshot ended before its last file")))
        } catch {
            context.respond(.error(RPCErrorResponse(.internalError, "snapshot: \(error)")))
        }
    }
}

/// How far a snapshot transfer has come, for a log line at most every `interval` (and none
/// for a transfer shorter than that): bytes done of the total, percent and rate.
struct TransferProgress {
    let totalBytes: UInt64
    let started = ContinuousClock.now
    private(set) var bytes: UInt64 = 0
    private var lastLogged = ContinuousClock.now
    let interval: Duration

    init(totalBytes: UInt64, interval: Duration = .seconds(5)) {
        self.totalBytes = totalBytes
        self.interval = interval
    }

    /// Counts `count` more bytes; the log metadata when a line is due, else nil.
    mutating func add(_ count: Int) -> Logger.Metadata? {
        bytes += UInt64(max(count, 0))
        let now = ContinuousClock.now
        guard now - lastLogged >= interval else { return nil }
        lastLogged = now
        let seconds = Double((now - started).components.seconds) + Double((now - started).components.attoseconds) / 1e18
        let mib = Double(1 << 20)
        return [
            "done": "\(String(format: "%.1f", Double(bytes) / mib)) of \(String(format: "%.1f", Double(totalBytes) / mib)) MiB",
            "percent": "\(totalBytes == 0 ? 100 : bytes * 100 / totalBytes)",
            "rate": "\(String(format: "%.1f", seconds > 0 ? Double(bytes) / mib / seconds : 0)) MiB/s",
        ]
    }
}
