import FaunaKV

// docs/PROTOCOL.md "Watch". A watch is one request whose answer is a stream: `watchResponse`
// frames with `more` set, on the watch request's ID, until a final frame (`canceled`,
// `compacted` or an `error`). Many watches share a connection; each is cancelled by its
// request ID.

/// What a watch asks for: the changes to a key range from a revision.
public struct WatchRequest: Hashable, Sendable {
    public struct Options: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// Each event also carries the key's record before the change.
        public static let prevValue = Options(rawValue: 0x01)
        /// Leave put events out.
        public static let noPut = Options(rawValue: 0x02)
        /// Leave delete events out.
        public static let noDelete = Options(rawValue: 0x04)
        /// Send `progress` when no event was sent for the node's progress interval.
        public static let progressNotify = Options(rawValue: 0x08)
        static let known: Options = [.prevValue, .noPut, .noDelete, .progressNotify]
    }

    /// The keys watched (`KeyRange.single` for one key, `.prefix` for a prefix).
    public var range: KeyRange
    /// The first revision whose changes are sent; 0: the revision after the node's applied
    /// index when it registers the watch ("from now").
    public var startRevision: UInt64
    public var options: Options

    public init(range: KeyRange, startRevision: UInt64 = 0, options: Options = []) {
        self.range = range
        self.startRevision = startRevision
        self.options = options
    }

    /// Whether an event of this kind on `key` is one the watch wants.
    public func wants(_ key: [UInt8], isPut: Bool) -> Bool {
        if isPut ? options.contains(.noPut) : options.contains(.noDelete) { return false }
        return range.contains(key)
    }

    func encode(into w: inout WireWriter) {
        w.u8(options.rawValue)
        w.lengthPrefixed(range.start)
        w.flag(range.end != nil)
        if let end = range.end { w.lengthPrefixed(end) }
        w.varint(startRevision)
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let options = Options(rawValue: try r.flags("watch options", allowed: Options.known.rawValue))
        let start = try r.lengthPrefixed("start", max: KVLimits.keyBytesMax)
        var end: [UInt8]?
        if try r.flag("hasEnd") { end = try r.lengthPrefixed("end", max: KVLimits.rangeEndBytesMax) }
        let startRevision = try r.varint("startRevision")
        if let end, !start.lexicographicallyPrecedes(end) {
            throw RPCDecodingError(.invalidValue, "watch range: the end must sort after the start (an empty range)")
        }
        if options.contains(.noPut) && options.contains(.noDelete) {
            throw RPCDecodingError(.invalidValue, "watch options: noPut and noDelete together leave nothing to watch")
        }
        self.init(range: KeyRange(start: start, end: end), startRevision: startRevision, options: options)
    }
}

/// One change: a put (with the key's new record) or a delete, at a revision (= the index of
/// the entry that made it).
public struct WatchEvent: Hashable, Sendable {
    public enum Kind: UInt8, Hashable, Sendable {
        case put = 1, delete = 2
    }
    public var kind: Kind
    public var key: [UInt8]
    public var revision: UInt64
    /// The new record of a put (its `modRevision` is `revision`); nil for a delete.
    public var record: KVRecord?
    /// The record before the change, when the watch asked for it and the key existed.
    public var previous: KVRecord?

    public init(key: [UInt8], revision: UInt64, record: KVRecord?, previous: KVRecord? = nil) {
        self.kind = record == nil ? .delete : .put
        self.key = key
        self.revision = revision
        self.record = record
        self.previous = previous
    }

    /// Bytes on the wire, about: what batching counts.
    public var sizeBytes: Int { 24 + key.count + (record?.value.count ?? 0) + (previous.map { 24 + $0.value.count } ?? 0) }

    func encode(into w: inout WireWriter) {
        w.u8(kind.rawValue)
        w.varint(revision)
        w.lengthPrefixed(key)
        if let record {
            w.varint(record.createRevision.rawValue)
            w.varint(record.version)
            w.varint(record.lease)
            w.lengthPrefixed(record.value)
        }
        w.flag(previous != nil)
        if let previous {
            w.varint(previous.createRevision.rawValue)
            w.varint(previous.modRevision.rawValue)
            w.varint(previous.version)
            w.varint(previous.lease)
            w.lengthPrefixed(previous.value)
        }
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let raw = try r.u8("event kind")
        guard let kind = Kind(rawValue: raw) else {
            throw RPCDecodingError(.unknownTag, "watch event kind: got \(raw), want 1 put or 2 delete")
        }
        let revision = try r.varint("revision")
        guard revision >= 1 else { throw RPCDecodingError(.invalidValue, "watch event revision: got 0, want >= 1") }
        let key = try r.lengthPrefixed("key", max: KVLimits.keyBytesMax)
        guard !key.isEmpty else { throw RPCDecodingError(.invalidValue, "watch event key: got 0 bytes, want >= 1") }
        var record: KVRecord?
        if kind == .put {
            record = try Self.record(&r, modRevision: revision)
        }
        var previous: KVRecord?
        if try r.flag("hasPrevious") {
            let create = try r.varint("previous createRevision")
            let mod = try r.varint("previous modRevision")
            guard mod < revision else {
                throw RPCDecodingError(.invalidValue, "watch event previous modRevision: got \(mod), want < \(revision)")
            }
            previous = try Self.record(&r, create: create, modRevision: mod)
        }
        self.init(key: key, revision: revision, record: record, previous: previous)
    }

    private static func record(_ r: inout WireReader, modRevision: UInt64) throws(RPCDecodingError) -> KVRecord {
        try record(&r, create: try r.varint("createRevision"), modRevision: modRevision)
    }

    private static func record(_ r: inout WireReader, create: UInt64, modRevision: UInt64) throws(RPCDecodingError) -> KVRecord {
        let version = try r.varint("version")
        let lease = try r.varint("lease")
        let value = try r.lengthPrefixed("value", max: KVLimits.valueBytesMax)
        guard version >= 1, create >= 1, create <= modRevision else {
            throw RPCDecodingError(
                .invalidValue, "watch event record: got version \(version), createRevision \(create), modRevision \(modRevision); "
                    + "want version >= 1 and 1 <= createRevision <= modRevision")
        }
        return KVRecord(value: value, createRevision: Revision(create), modRevision: Revision(modRevision), version: version, lease: lease)
    }
}

/// One frame of a watch's stream.
public enum WatchResponse: Hashable, Sendable {
    /// The first frame: the watch is registered; the first revision whose changes it sends.
    case created(startRevision: UInt64)
    /// Events in (revision, key) order. `completeThrough`: every change up to this revision
    /// has been sent (it is below the last event's revision only when one entry's events are
    /// split over several frames); a watch resumed after it starts at `completeThrough + 1`.
    case events(completeThrough: UInt64, [WatchEvent])
    /// Nothing changed in the range up to `revision` since the last frame.
    case progress(revision: UInt64)
    /// Final: the client cancelled the watch, or the node stopped serving it (reason).
    case canceled(reason: String)
    /// Final: the changes from the watch's next revision are no longer kept (compacted, or
    /// applied before this node recorded effects); `revision` is the first revision to watch
    /// from instead.
    case compacted(compactRevision: UInt64)

    /// Whether this frame ends the stream.
    public var isFinal: Bool {
        switch self {
        case .canceled, .compacted: true
        case .created, .events, .progress: false
        }
    }

    /// Events in one frame, at most (a frame is also cut at about 1 MiB).
    public static let eventsPerFrameMax = 65_536

    func encode(into w: inout WireWriter) {
        switch self {
        case .created(let start):
            w.u8(1)
            w.varint(start)
        case .events(let through, let events):
            w.u8(2)
            w.varint(through)
            w.varint(UInt64(events.count))
            for e in events { e.encode(into: &w) }
        case .progress(let revision):
            w.u8(3)
            w.varint(revision)
        case .canceled(let reason):
            w.u8(4)
            w.string(reason)
        case .compacted(let revision):
            w.u8(5)
            w.varint(revision)
        }
    }

    init(from r: inout WireReader) throws(RPCDecodingError) {
        let type = try r.u8("watch response type")
        switch type {
        case 1: self = .created(startRevision: try r.varint("startRevision"))
        case 2:
            let through = try r.varint("completeThrough")
            let n = try r.itemCount("events", max: Self.eventsPerFrameMax, minBytes: 4)
            guard n >= 1 else { throw RPCDecodingError(.invalidValue, "watch events: got 0, want >= 1") }
            var events: [WatchEvent] = []
            events.reserveCapacity(n)
            for _ in 0..<n { events.append(try WatchEvent(from: &r)) }
            self = .events(completeThrough: through, events)
        case 3: self = .progress(revision: try r.varint("revision"))
        case 4: self = .canceled(reason: try r.string("reason", max: RPCLimits.messageBytesMax))
        case 5: self = .compacted(compactRevision: try r.varint("compactRevision"))
        default: throw RPCDecodingError(.unknownTag, "watch response type: got \(type), want 1...5")
        }
    }
}
