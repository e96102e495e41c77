// Crash-test helper (Tests/FaunaStoreTests/CrashKillTests.swift): opens the store at argv[1],
// re-applies what the log holds beyond the applied index (as a restarted node's Raft core hands
// it out), then forever persists the next entries of a deterministic workload to the entry log
// (synced) and applies them (without a WAL, as a node does; the state is flushed in the
// background every few hundred entries), printing "durable <index>" once the log write returns.
// Every 8 batches it moves the Raft compaction point (a node's log compaction).
//
// `store-crash-helper DIR [SEED [STEP BATCH]]`: with STEP and BATCH, the helper SIGKILLs itself
// at that step of batch number BATCH: `logged` (after the log's fsync, before the apply),
// `applied` (after the state write, before any flush), `flushed` (after a synced state flush),
// `compacted` (after the compaction point moved). The test SIGKILLs it at random moments too,
// and checks that nothing printed is missing and that state and tree equal a reference replay.
//
import FaunaKV
import FaunaRaft
import FaunaStore
import Foundation

func workloadEntry(_ i: UInt64) -> Entry {
    if i % 10 == 0 { return Entry(term: Term(1), index: LogIndex(i)) }
    if i % 25 == 0 { return Entry(term: Term(1), index: LogIndex(i), type: .confChange, data: [UInt8(i & 0xFF)]) }
    let put = KVPut(key: Array("k\(i % 17)".utf8), value: Array("v\(i)".utf8))
    // Every put comes from one of three client sessions (client i % 3 + 1): its first put, one
    // of entries 1 to 3, opens the session with sequence 1, and each later one uses sequence i.
    let session = ClientSession(clientID: ClientID(i % 3 + 1), sequence: SequenceNumber(i <= 3 ? 1 : i))
    return Entry(term: Term(1), index: LogIndex(i), type: .normal, data: KVProposal(session: session, command: .put(put)).encoded())
}

/// SplitMix64: deterministic batch sizes for a given seed.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Writes one line to stdout unbuffered, so a line printed is a line the test can read.
/// Retries failed writes: under libfiu (the EIO test) stdout writes fail at random too.
func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    var done = 0, failures = 0
    while done < bytes.count && failures < 1000 {
        let n = bytes.withUnsafeBytes { write(1, $0.baseAddress! + done, bytes.count - done) }
        if n > 0 { done += n } else { failures += 1 }
    }
}

/// Where a batch may be told to die (`STEP`).
enum Step: String { case logged, applied, flushed, compacted }

func run(arguments: [String]) -> Int32 {
    guard arguments.count >= 2 else {
        FileHandle.standardError.write(Data("usage: store-crash-helper DATA_DIR [SEED [STEP BATCH]]\n".utf8))
        return 2
    }
    var rng = SplitMix(state: UInt64(arguments.count > 2 ? arguments[2] : "1") ?? 1)
    var killAt: (step: Step, batch: Int)?
    if arguments.count > 4 {
        guard let step = Step(rawValue: arguments[3]), let batch = Int(arguments[4]) else {
            FileHandle.standardError.write(Data("store-crash-helper: STEP is logged|applied|flushed|compacted, BATCH a number\n".utf8))
            return 2
        }
        killAt = (step, batch)
    }
    do {
        // Small chunks: a long group then spans several, so kills land between them. A small
        // replay bound: background flushes run every 150 entries, at 92, 242, ... as a node's
        // phase puts them (not at multiples of 150).
        var options = Store.Options()
        options.applyChunkEntries = 64
        options.replayEntriesMax = 300
        options.stateFlushPhase = 0.618
        let store = try Store(path: arguments[1], options: options)
        let logLast = try store.raftLog.lastIndex()
        say("opened applied=\(store.appliedIndex) log=\(logLast)")
        // What a restarted node's core does: hand out the committed entries after the applied
        // index again (everything in this log is committed).
        var replay = store.appliedIndex + 1
        while replay <= logLast {
            let entries = try store.raftLog.entries(from: replay, to: logLast + 1, maxBytes: 1 << 20)
            try store.apply(entries)
            replay = replay + UInt64(entries.count)
        }
        var next = logLast + 1
        var batchNumber = 0
        func die(at step: Step) {
            guard let killAt, killAt.step == step, killAt.batch == batchNumber else { return }
            say("killing at \(step) of batch \(batchNumber)")
            kill(getpid(), SIGKILL)
        }
        while true {
            batchNumber += 1
            // Mostly short groups (a leader's pace); one in eight longer than a chunk, so kills
            // also land while a pipelined apply has a chunk in flight.
            let count = rng.next() % 8 == 0 ? 1 + rng.next() % UInt64(3 * store.applyChunkEntries) : 1 + rng.next() % 16
            let batch = (0..<count).map { workloadEntry(next.rawValue + $0) }
            // Persist to the log first (durable), then apply (state, flushed in the background).
            try store.raftLog.persist(RaftLogUpdate(
                entries: batch, hardState: HardState(term: Term(1), vote: NodeID(1), commit: batch.last!.index)))
            say("durable \(batch.last!.index)")
            die(at: .logged)
            try store.apply(batch)
            die(at: .applied)
            if killAt?.step == .flushed && killAt?.batch == batchNumber {
                say("flushed \(try store.flushState())")
                die(at: .flushed)
            }
            if batchNumber % 8 == 0 {
                // Through the applied index, which may be ahead of the flushed state (as a
                // node's compaction may be): a crash then leaves the compaction point above
                // the state on disk, which the next open lowers.
                let through = store.appliedIndex
                if through > .zero { try store.raftLog.compact(through: through, confState: store.appliedConfState) }
                die(at: .compacted)
            }
            next = next + count
        }
    } catch {
        say("error \(error)")
        return 1
    }
}

exit(run(arguments: CommandLine.arguments))
