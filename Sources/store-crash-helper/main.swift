// Crash-test helper (Tests/FaunaStoreTests/CrashKillTests.swift): opens the store at argv[1],
// then forever persists the next entries of a deterministic workload to the Raft log (synced,
// group commit) and applies them (synced), printing "durable <index>" after each batch
// returns. The test SIGKILLs it at random moments and checks nothing printed is missing.
//
// Entry i of the workload: i % 10 == 0 → a no-op; i % 25 == 0 → a membership change
// (payload [i & 0xFF]); otherwise a put of "k<i % 17>" = "v<i>". The test uses the same rule.
import FaunaKV
import FaunaRaft
import FaunaStore
import Foundation

func workloadEntry(_ i: UInt64) -> Entry {
    if i % 10 == 0 { return Entry(term: Term(1), index: LogIndex(i)) }
    if i % 25 == 0 { return Entry(term: Term(1), index: LogIndex(i), type: .confChange, data: [UInt8(i & 0xFF)]) }
    let put = KVPut(key: Array("k\(i % 17)".utf8), value: Array("v\(i)".utf8))
    return Entry(term: Term(1), index: LogIndex(i), type: .normal, data: KVProposal(command: .put(put)).encoded())
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

func run(arguments: [String]) -> Int32 {
    guard arguments.count >= 2 else {
        FileHandle.standardError.write(Data("usage: store-crash-helper DATA_DIR [SEED]\n".utf8))
        return 2
    }
    var rng = SplitMix(state: UInt64(arguments.count > 2 ? arguments[2] : "1") ?? 1)
    do {
        // Small chunks: a long group then spans several, so kills land between them.
        var options = Store.Options()
        options.applyChunkEntries = 64
        let store = try Store(path: arguments[1], options: options)
        var next = store.appliedIndex + 1
        let logLast = try store.raftLog.lastIndex()
        say("opened applied=\(store.appliedIndex) log=\(logLast)")
        while true {
            // Mostly short groups (a leader's pace); one in eight longer than a chunk, so kills
            // also land while a pipelined apply has a chunk in flight.
            let count = rng.next() % 8 == 0 ? 1 + rng.next() % UInt64(3 * store.applyChunkEntries) : 1 + rng.next() % 16
            let batch = (0..<count).map { workloadEntry(next.rawValue + $0) }
            // Persist to the log first (a follower's order), then apply: both synced.
            let toLog = batch.filter { $0.index > logLast }
            if let last = toLog.last {
                try store.raftLog.persist(RaftLogUpdate(
                    entries: toLog, hardState: HardState(term: Term(1), vote: NodeID(1), commit: last.index)))
            }
            try store.apply(batch, sync: true)
            next = next + count
            say("durable \(next.rawValue - 1)")
        }
    } catch {
        say("error \(error)")
        return 1
    }
}

exit(run(arguments: CommandLine.arguments))
