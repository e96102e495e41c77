import FaunaRPC
import FaunaRaft

/// The simulated network: every delivery is an event at a virtual time. Raft messages may be
/// dropped, duplicated, delayed (hence reordered) and cut by partitions; snapshot transfers
/// take longer and fail across a partition; answers to clients come back after a short delay.
final class SimNetwork {
    enum Payload {
        case raft(from: NodeID, to: NodeID, [Message])
        case snapshot(from: NodeID, to: NodeID, SimCheckpoint, done: (Bool) -> Void)
        case snapshotAck(done: (Bool) -> Void, ok: Bool)
        case answer(client: Int, attempt: UInt64, [Frame])
    }

    struct InFlight {
        var at: UInt64
        var seq: UInt64
        var payload: Payload
    }

    var inFlight: [InFlight] = []
    private var nextSeq: UInt64 = 0
    /// Unordered pairs that cannot talk (both directions).
    var cut: Set<Pair> = []
    var dropChance = 0.0
    var duplicateChance = 0.0
    /// Delivery delay bounds, in microseconds.
    var delayMin: UInt64 = 200
    var delayMax: UInt64 = 3000
    /// Raft messages sent, dropped, duplicated (the report).
    var sent = 0, dropped = 0, duplicated = 0
    /// In flight at most; beyond, new Raft messages are dropped (a bounded queue, as PeerLink).
    let inFlightMax = 100_000

    struct Pair: Hashable {
        let a: NodeID, b: NodeID
        init(_ x: NodeID, _ y: NodeID) { (a, b) = x < y ? (x, y) : (y, x) }
    }

    func isCut(_ x: NodeID, _ y: NodeID) -> Bool { cut.contains(Pair(x, y)) }

    private func schedule(_ payload: Payload, delay: UInt64, now: UInt64) {
        nextSeq += 1
        inFlight.append(InFlight(at: now + delay, seq: nextSeq, payload: payload))
    }

    func sendRaft(_ messages: [Message], from: NodeID, to: NodeID, sim: Simulation) {
        sent += messages.count
        guard !isCut(from, to), inFlight.count < inFlightMax else {
            dropped += messages.count
            return
        }
        if sim.rng.chance(dropChance) {
            dropped += messages.count
            return
        }
        schedule(.raft(from: from, to: to, messages), delay: sim.rng.delay(delayMin, delayMax), now: sim.time.micros)
        if sim.rng.chance(duplicateChance) {
            duplicated += messages.count
            schedule(.raft(from: from, to: to, messages), delay: sim.rng.delay(delayMin, 4 * delayMax), now: sim.time.micros)
        }
    }

    func sendSnapshot(_ checkpoint: SimCheckpoint, from: NodeID, to: NodeID, sim: Simulation, done: @escaping (Bool) -> Void) {
        // Streaming a checkpoint takes a while; across a partition it fails (after a timeout).
        if isCut(from, to) || sim.rng.chance(dropChance) {
            schedule(.snapshotAck(done: done, ok: false), delay: 50_000, now: sim.time.micros)
            return
        }
        schedule(.snapshot(from: from, to: to, checkpoint, done: done), delay: sim.rng.delay(5_000, 30_000), now: sim.time.micros)
    }

    /// An answer to a client. The pipeline may answer in an order that depends on hashing
    /// (a dictionary of pending requests), so the delay and the tie-break come from the
    /// attempt, not from the seed's random stream: a seed replays exactly in any process.
    func answer(client: Int, attempt: UInt64, frames: [Frame], sim: Simulation) {
        let tag = attempt << 16 | UInt64(client & 0xFFFF)
        var mix = SimRandom(seed: tag &* 0x9E37_79B9_7F4A_7C15 ^ sim.options.seed)
        inFlight.append(InFlight(
            at: sim.time.micros + mix.delay(100, 1000), seq: (1 << 62) + tag, payload: .answer(client: client, attempt: attempt, frames)))
    }

    func ack(_ done: @escaping (Bool) -> Void, ok: Bool, sim: Simulation) {
        schedule(.snapshotAck(done: done, ok: ok), delay: sim.rng.delay(delayMin, delayMax), now: sim.time.micros)
    }

    /// Removes and returns what is due by `now`, in (time, send order).
    func due(now: UInt64) -> [InFlight] {
        guard inFlight.contains(where: { $0.at <= now }) else { return [] }
        var ready: [InFlight] = []
        var rest: [InFlight] = []
        rest.reserveCapacity(inFlight.count)
        for item in inFlight {
            if item.at <= now { ready.append(item) } else { rest.append(item) }
        }
        inFlight = rest
        return ready.sorted { ($0.at, $0.seq) < ($1.at, $1.seq) }
    }
}

extension SimRandom {
    mutating func delay(_ low: UInt64, _ high: UInt64) -> UInt64 { low + next() % max(1, high - low) }
}
