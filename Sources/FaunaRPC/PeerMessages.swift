import FaunaRaft

// docs/PROTOCOL.md "Peer messages": handshake and snapshot transfer. Snapshot transfer is
// transport-agnostic: the same chunk message serves leader → follower installs (answered by
// `snapshotAck`) and admin `snapshotSave` streams.

/// The first frame on a peer connection. The receiver checks all three fields, so a peer with
/// another cluster's config, or one that dialled the wrong address, is turned away at once.
public struct PeerHello: Hashable, Sendable {
    /// `[cluster] name` of cluster.toml; at most `RPCLimits.clusterNameBytesMax` bytes.
    public var clusterName: String
    /// The dialling node.
    public var from: NodeID
    /// The node the dialler believes it is connected to.
    public var to: NodeID
    /// The dialler's tree-head public key (Ed25519, 32 bytes), or empty (a node of a version
    /// before keys were exchanged). Reported by `members`; never a trust anchor by itself.
    public var publicKey: [UInt8]
    /// What the dialler's log entries may use (`PeerFeatures`).
    public var features: PeerFeatures

    /// A hello from `from` to `to` in cluster `clusterName`.
    public init(clusterName: String, from: NodeID, to: NodeID, publicKey: [UInt8] = [], features: PeerFeatures = .current) {
        self.clusterName = clusterName
        self.from = from
        self.to = to
        self.publicKey = publicKey
        self.features = features
    }
}

/// Features of the log entries a node writes and applies, exchanged in hellos and welcomes. A
/// node talks only to peers that have every feature it requires (`required`): an entry using a
/// feature would apply differently on a node without it (docs/PROTOCOL.md "Peer messages").
public struct PeerFeatures: OptionSet, Hashable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Proposals may name a principal and carry auth commands (users and roles, KV-COMMANDS.md).
    public static let principals = PeerFeatures(rawValue: 1 << 0)
    /// Entries may raise the state level (`upgradeState`, KV-COMMANDS.md "State levels"),
    /// after which sessions belong to users.
    public static let stateLevels = PeerFeatures(rawValue: 1 << 1)

    /// What this build's entries may use.
    public static let current: PeerFeatures = [.principals, .stateLevels]
    /// What a peer must have for this node to exchange entries with it.
    public static let required: PeerFeatures = [.principals, .stateLevels]

    /// Nil if `features` (a peer's) has every required one, else why not.
    public static func problem(_ features: PeerFeatures, of peer: String) -> String? {
        guard !features.isSuperset(of: required) else { return nil }
        let missing = required.subtracting(features)
        var names: [String] = []
        if missing.contains(.principals) { names.append("users and roles") }
        if missing.contains(.stateLevels) { names.append("state levels") }
        return "\(peer) runs an earlier version, without \(names.joined(separator: " and ")) "
            + "(features 0x\(String(features.rawValue, radix: 16)), want 0x\(String(required.rawValue, radix: 16))): upgrade it; until then it is left out"
    }
}

/// The answer to an accepted `PeerHello` (a rejected one gets an `RPCErrorResponse` and the
/// connection is closed).
public struct PeerWelcome: Hashable, Sendable {
    /// The accepting node's cluster name.
    public var clusterName: String
    /// The accepting node.
    public var nodeID: NodeID
    /// The accepting node's tree-head public key, or empty (as in `PeerHello`).
    public var publicKey: [UInt8]
    /// As in `PeerHello`.
    public var features: PeerFeatures

    /// A welcome from `nodeID` of `clusterName`.
    public init(clusterName: String, nodeID: NodeID, publicKey: [UInt8] = [], features: PeerFeatures = .current) {
        self.clusterName = clusterName
        self.nodeID = nodeID
        self.publicKey = publicKey
        self.features = features
    }
}

/// One file of a snapshot as an offer lists it.
public struct SnapshotFile: Hashable, Sendable {
    /// A plain file name: 1...255 bytes of UTF-8, no `/` or NUL, not `.` or `..`.
    public var name: String
    /// The file's size.
    public var sizeBytes: UInt64
    /// The file's checksum (the node chooses the algorithm, e.g. SHA-256); at most 64 bytes.
    public var checksum: [UInt8]

    /// A file entry.
    public init(name: String, sizeBytes: UInt64, checksum: [UInt8]) {
        self.name = name
        self.sizeBytes = sizeBytes
        self.checksum = checksum
    }
}

/// Leader → follower: a snapshot at `metadata` is ready; these are its files.
public struct SnapshotOffer: Hashable, Sendable {
    /// Index, term and configuration the snapshot captures.
    public var metadata: SnapshotMetadata
    /// The files to be streamed, in the order they will be sent.
    public var files: [SnapshotFile]

    /// An offer of `files` for the snapshot at `metadata`.
    public init(metadata: SnapshotMetadata, files: [SnapshotFile]) {
        self.metadata = metadata
        self.files = files
    }
}

/// A piece of one snapshot file.
public struct SnapshotChunk: Hashable, Sendable {
    /// The snapshot's last included index.
    public var index: LogIndex
    /// The term of that entry.
    public var term: Term
    /// The file this piece belongs to (rules of `SnapshotFile.name`).
    public var fileName: String
    /// Where `data` starts in the file.
    public var offset: UInt64
    /// The bytes; bounded only by the frame size (1 MiB pieces are a good choice).
    public var data: [UInt8]
    /// The checksum of the whole file (as in the offer); the receiver checks it after the
    /// piece with `isLastOfFile`.
    public var fileChecksum: [UInt8]
    /// The last piece of this file.
    public var isLastOfFile: Bool
    /// The last piece of the whole snapshot (implies `isLastOfFile`).
    public var isLastOfSnapshot: Bool

    /// A piece of `fileName` at `offset`.
    public init(
        index: LogIndex, term: Term, fileName: String, offset: UInt64, data: [UInt8],
        fileChecksum: [UInt8], isLastOfFile: Bool, isLastOfSnapshot: Bool
    ) {
        self.index = index
        self.term = term
        self.fileName = fileName
        self.offset = offset
        self.data = data
        self.fileChecksum = fileChecksum
        self.isLastOfFile = isLastOfFile || isLastOfSnapshot
        self.isLastOfSnapshot = isLastOfSnapshot
    }
}

/// The answer to a `snapshotOffer` or `snapshotChunk`.
public struct SnapshotAck: Hashable, Sendable {
    /// The snapshot's index.
    public var index: LogIndex
    /// The snapshot's term.
    public var term: Term
    /// The file of the acknowledged chunk; empty for an offer.
    public var fileName: String
    /// The next offset the receiver wants in that file (everything before it is stored).
    public var nextOffset: UInt64
    /// False: the receiver refuses (stale term, checksum mismatch, disk full); stop sending.
    public var isAccepted: Bool
    /// Why it was refused; empty when accepted.
    public var reason: String

    /// An acknowledgement.
    public init(index: LogIndex, term: Term, fileName: String = "", nextOffset: UInt64 = 0, isAccepted: Bool, reason: String = "") {
        self.index = index
        self.term = term
        self.fileName = fileName
        self.nextOffset = nextOffset
        self.isAccepted = isAccepted
        self.reason = reason
    }
}

// MARK: - Codecs

extension PeerHello {
    func encode(into w: inout WireWriter) {
        w.string(clusterName)
        w.varint(from.rawValue)
        w.varint(to.rawValue)
        Self.encodeTrailer(publicKey, features, into: &w)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let name = try r.string("cluster name", max: RPCLimits.clusterNameBytesMax)
        let from = try r.nodeID("from"), to = try r.nodeID("to")
        let (key, features) = try Self.trailer(&r)
        self.init(clusterName: name, from: from, to: to, publicKey: key, features: features)
    }

    /// `[bytes publicKey [varint features]]`: the key is left out when it is empty and there
    /// are no features (older nodes); features are left out when there are none.
    static func encodeTrailer(_ key: [UInt8], _ features: PeerFeatures, into w: inout WireWriter) {
        guard !key.isEmpty || !features.isEmpty else { return }
        w.lengthPrefixed(key)
        if !features.isEmpty { w.varint(features.rawValue) }
    }

    /// The optional trailer of a hello or welcome: absent (nothing left) in the messages of
    /// older nodes; a key of 1...`publicKeyBytesMax` bytes (empty only before features), then
    /// optional features (not zero).
    static func trailer(_ r: inout WireReader) throws(RPCDecodingError) -> ([UInt8], PeerFeatures) {
        guard r.remaining > 0 else { return ([], []) }
        let key = try r.lengthPrefixed("public key", max: RPCLimits.publicKeyBytesMax)
        guard r.remaining > 0 else {
            guard !key.isEmpty else { throw RPCDecodingError(.invalidValue, "public key: got 0 bytes and no features, want the field left out") }
            return (key, [])
        }
        let raw = try r.varint("features")
        guard raw != 0 else { throw RPCDecodingError(.invalidValue, "features: got 0, want the field left out") }
        return (key, PeerFeatures(rawValue: raw))
    }
}

extension PeerWelcome {
    func encode(into w: inout WireWriter) {
        w.string(clusterName)
        w.varint(nodeID.rawValue)
        PeerHello.encodeTrailer(publicKey, features, into: &w)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let name = try r.string("cluster name", max: RPCLimits.clusterNameBytesMax)
        let id = try r.nodeID("node ID")
        let (key, features) = try PeerHello.trailer(&r)
        self.init(clusterName: name, nodeID: id, publicKey: key, features: features)
    }
}

extension SnapshotFile {
    /// Fewest bytes of one encoded file entry.
    static let encodedBytesMin = 4

    func encode(into w: inout WireWriter) {
        w.string(name)
        w.varint(sizeBytes)
        w.lengthPrefixed(checksum)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let name = try r.fileName("file name")
        let size = try r.varint("file size")
        self.init(name: name, sizeBytes: size, checksum: try r.lengthPrefixed("file checksum", max: RPCLimits.checksumBytesMax))
    }
}

extension SnapshotOffer {
    func encode(into w: inout WireWriter) {
        metadata.encode(into: &w)
        w.varint(UInt64(files.count))
        for file in files { file.encode(into: &w) }
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let metadata = try SnapshotMetadata(from: &r)
        let n = try r.itemCount("file count", max: RPCLimits.snapshotFilesMax, minBytes: SnapshotFile.encodedBytesMin)
        var files: [SnapshotFile] = []
        files.reserveCapacity(n)
        for _ in 0..<n { files.append(try SnapshotFile(from: &r)) }
        self.init(metadata: metadata, files: files)
    }
}

extension SnapshotChunk {
    func encode(into w: inout WireWriter) {
        w.varint(index.rawValue)
        w.varint(term.rawValue)
        w.string(fileName)
        w.varint(offset)
        w.u8((isLastOfFile ? 0x01 : 0) | (isLastOfSnapshot ? 0x02 : 0))
        w.lengthPrefixed(fileChecksum)
        w.lengthPrefixed(data)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let index = LogIndex(try r.varint("snapshot index"))
        let term = Term(try r.varint("snapshot term"))
        let name = try r.fileName("file name")
        let offset = try r.varint("offset")
        let flags = try r.flags("chunk flags", allowed: 0x03)
        guard flags != 0x02 else {
            throw RPCDecodingError(.invalidValue, "chunk flags: got last-of-snapshot without last-of-file, want both")
        }
        let checksum = try r.lengthPrefixed("file checksum", max: RPCLimits.checksumBytesMax)
        let data = try r.lengthPrefixed("chunk data", max: Int(Int32.max))
        guard offset <= UInt64.max - UInt64(data.count) else {
            throw RPCDecodingError(.invalidValue, "chunk offset: got \(offset) + \(data.count) bytes, want an end <= 2^64 - 1")
        }
        self.init(
            index: index, term: term, fileName: name, offset: offset, data: data, fileChecksum: checksum,
            isLastOfFile: flags & 0x01 != 0, isLastOfSnapshot: flags & 0x02 != 0)
    }
}

extension SnapshotAck {
    func encode(into w: inout WireWriter) {
        w.varint(index.rawValue)
        w.varint(term.rawValue)
        w.string(fileName)
        w.varint(nextOffset)
        w.flag(isAccepted)
        w.string(reason)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let index = LogIndex(try r.varint("snapshot index"))
        let term = Term(try r.varint("snapshot term"))
        let name = try r.string("file name", max: RPCLimits.fileNameBytesMax)
        if !name.isEmpty { try SnapshotFile.validateName(name, r.context) }
        let next = try r.varint("next offset")
        let accepted = try r.flag("accepted")
        let reason = try r.string("reason", max: RPCLimits.messageBytesMax)
        self.init(index: index, term: term, fileName: name, nextOffset: next, isAccepted: accepted, reason: reason)
    }
}

extension SnapshotFile {
    /// Throws unless `name` is a plain file name a receiver can safely join to its directory.
    static func validateName(_ name: String, _ context: String) throws(RPCDecodingError) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, !bytes.contains(0x2F), !bytes.contains(0), name != ".", name != ".." else {
            throw RPCDecodingError(.invalidValue, "\(context) file name: got \"\(name)\", want a plain name without '/', NUL, '.' or '..'")
        }
    }
}

extension WireReader {
    mutating func fileName(_ field: String) throws(RPCDecodingError) -> String {
        let name = try string(field, max: RPCLimits.fileNameBytesMax)
        try SnapshotFile.validateName(name, context)
        return name
    }
}
