import FaunaRaft

/// The replicated state machine of the simulation: a fingerprint of the whole applied history
/// (so two replicas agree on it only if they applied the same entries in the same order) plus
/// a register per key byte. Durable: the simulator keeps it across crashes, as FaunaStore
/// writes applied state and applied index in one batch.
struct SimStateMachine: Equatable {
    var applied: LogIndex = .zero
    var historyHash: UInt64 = 0
    var registers: [UInt8: UInt64] = [:]

    mutating func apply(_ entry: Entry) {
        precondition(entry.index == applied + 1, "applying \(entry.index) after \(applied)")
        applied = entry.index
        historyHash = fnv1a(u64Bytes(entry.term.rawValue) + [entry.type.rawValue] + entry.data, seed: historyHash)
        if entry.type == .normal, let command = SimCommand(decoding: entry.data) {
            registers[command.key] = command.writeID
        }
    }

    var encoded: [UInt8] {
        var out = u64Bytes(applied.rawValue) + u64Bytes(historyHash)
        for key in registers.keys.sorted() { out += [key] + u64Bytes(registers[key]!) }
        return out
    }

    init() {}

    init?(decoding bytes: [UInt8]) {
        guard let applied = readU64(bytes, at: 0), let hash = readU64(bytes, at: 8), (bytes.count - 16) % 9 == 0 else { return nil }
        self.applied = LogIndex(applied)
        self.historyHash = hash
        var offset = 16
        while offset < bytes.count {
            guard let value = readU64(bytes, at: offset + 1) else { return nil }
            registers[bytes[offset]] = value
            offset += 9
        }
    }
}

/// A client write in the simulation: a unique id and the register it sets.
struct SimCommand {
    var writeID: UInt64
    var key: UInt8

    var encoded: [UInt8] { u64Bytes(writeID) + [key] }

    init(writeID: UInt64, key: UInt8) {
        self.writeID = writeID
        self.key = key
    }

    init?(decoding bytes: [UInt8]) {
        guard bytes.count == 9, let id = readU64(bytes, at: 0) else { return nil }
        self.writeID = id
        self.key = bytes[8]
    }
}
