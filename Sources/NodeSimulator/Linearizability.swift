// Linearizability of client histories against a key-value register model.
//
// Keys are independent registers, so a history is linearizable iff each key's sub-history is
// (P-compositionality); every key is checked on its own. Per key the search is Wing & Gong's
// with Lowe's memoization: the operations' call and return events sit in a doubly linked list
// in time order; the search walks it, linearizes an operation whose call it meets if the model
// accepts it and (set of linearized operations, register value) is new, and backtracks when it
// meets the return of an operation it has not linearized (that operation had to take effect
// before its return). The history is linearizable once no return is left in the list.
//
// Operations with an unknown outcome (timeout, lost connection): a read carries no information
// and is dropped; a write or compare-and-swap is optional: it may take effect at any time after
// its call, or never, so it has a call and no return. That makes a failing search expensive
// (an optional write could go anywhere), so: optional calls are tried after the required ones
// at each point; a memoized state also stands for every state with the same required
// operations and register value that has consumed more optional ones (those can only do less
// from there); an optional operation is tried only while something not yet linearized could
// use its value (`LinUse`); and never is an optional write tried right after another optional
// operation (the same write from the state before that one covers it).
//
// Times: an operation precedes another only if it completed strictly before the other was
// invoked; equal times are concurrent. A recorder with coarse ticks that wants a reply and the
// next call at the same tick ordered should record distinct times.
//
// The search is bounded by a budget of memoized states per key: past it the key is
// `.tooComplex`, never a pass.

/// One client operation on one key, as recorded against a simulated cluster.
public struct HistoryOp: Sendable, Hashable {
    public enum Call: Sendable, Hashable {
        /// Put the value, or delete the key (nil).
        case write([UInt8]?)
        /// A transaction: if the value is `expected` (nil: absent) then set `new` (nil: delete).
        case cas(expected: [UInt8]?, new: [UInt8]?)
        case read
    }

    public enum Outcome: Sendable, Hashable {
        /// A write, or a cas whose comparison held, was acknowledged.
        case written
        /// The cas was acknowledged and its comparison failed: it changed nothing, and the value
        /// at its linearization point differed from `expected`.
        case casFailed
        /// The read returned this value (nil: absent).
        case read([UInt8]?)
        /// Timed out or connection lost: a write or cas may have taken effect at any point after
        /// `invoke`, or never; a read tells nothing. `complete` is ignored.
        case unknown
    }

    public var id: Int
    public var client: Int
    public var key: [UInt8]
    public var call: Call
    /// Virtual time of the call (ns or ticks).
    public var invoke: UInt64
    /// Virtual time of the reply; nil when the outcome is `.unknown`.
    public var complete: UInt64?
    public var outcome: Outcome

    public init(id: Int, client: Int, key: [UInt8], call: Call, invoke: UInt64, complete: UInt64?, outcome: Outcome) {
        self.id = id
        self.client = client
        self.key = key
        self.call = call
        self.invoke = invoke
        self.complete = complete
        self.outcome = outcome
    }
}

public enum LinearizabilityVerdict: Sendable, Hashable {
    case linearizable
    /// The key's sub-history has no linearization (or an operation on it is malformed).
    /// `explanation` names the smallest failing window of operations found and the operation
    /// the search could not place, with times, clients and values.
    case violation(key: [UInt8], explanation: String)
    /// The search for this key ran out of its state budget: neither a pass nor a failure.
    case tooComplex(key: [UInt8])
}

extension LinearizabilityVerdict: CustomStringConvertible {
    public var description: String {
        switch self {
        case .linearizable: return "linearizable"
        case let .violation(key, explanation): return "violation on key \(LinFormat.value(key)): \(explanation)"
        case let .tooComplex(key): return "too complex to check: key \(LinFormat.value(key))"
        }
    }
}

/// Checks `history` for linearizability against a map of independent registers that start at
/// `initial` (absent keys start absent). Keys are checked in the order of their first operation;
/// a violation on any key wins over another key being too complex. `stateBudget` bounds the
/// memoized states of each key's search (and, capped by memory, of each explanation step).
public func checkLinearizable(
    _ history: [HistoryOp], initial: [[UInt8]: [UInt8]] = [:], stateBudget: Int = 2_000_000
) -> LinearizabilityVerdict {
    for op in history {
        if let problem = LinModel.malformation(op) {
            return .violation(key: op.key, explanation: "malformed history: \(LinFormat.op(op)): \(problem)")
        }
    }
    var order: [[UInt8]] = []
    var byKey: [[UInt8]: [Int]] = [:]
    for (i, op) in history.enumerated() {
        if byKey[op.key] == nil { order.append(op.key) }
        byKey[op.key, default: []].append(i)
    }
    let budget = max(1, stateBudget)
    var tooComplex: [UInt8]?
    for key in order {
        let register = LinRegister(history: history, indices: byKey[key] ?? [], initial: initial[key])
        let result = LinSearch.run(register.ops, initial: register.initial, valueCount: register.values.count, budget: budget)
        switch result.verdict {
        case .linearizable:
            continue
        case .exhausted:
            if tooComplex == nil { tooComplex = key }
        case .violation:
            var explainer = LinExplainer(register: register, history: history, budget: budget)
            let text = explainer.explain()
            return .violation(key: key, explanation: text)
        }
    }
    if let key = tooComplex { return .tooComplex(key: key) }
    return .linearizable
}

// MARK: - The register model

/// A register value as the search sees it: an index into `LinRegister.values` (0 is absent),
/// or `anyValue`, the unknown value a window of the history starts from.
typealias LinValue = Int32

enum LinModel {
    static let absent: LinValue = 0
    static let anyValue: LinValue = -1

    enum Kind: Hashable {
        case read(LinValue)
        case write(LinValue)
        /// Comparison held: needs `expected`, sets `new`.
        case cas(expected: LinValue, new: LinValue)
        /// Comparison failed: needs a value other than `expected`, changes nothing.
        case casFailed(expected: LinValue)
    }

    /// The value after `kind` takes effect on `value`, or nil if it cannot take effect there.
    /// From `anyValue` a read or a successful cas learns the value; a failed cas leaves it
    /// unknown (more permissive than any one value, which is what a window start needs).
    @inline(__always)
    static func step(_ kind: Kind, _ value: LinValue) -> LinValue? {
        switch kind {
        case let .read(v): return value == v || value == anyValue ? v : nil
        case let .write(v): return v
        case let .cas(e, n): return value == e || value == anyValue ? n : nil
        case let .casFailed(e): return value != e ? value : nil
        }
    }

    static func malformation(_ op: HistoryOp) -> String? {
        if op.outcome == .unknown { return nil }
        guard let complete = op.complete else { return "an acknowledged operation has no completion time" }
        if complete < op.invoke { return "completes before it is invoked" }
        switch (op.call, op.outcome) {
        case (.read, .read), (.write, .written), (.cas, .written), (.cas, .casFailed): return nil
        default: return "outcome does not fit the call"
        }
    }
}

/// One operation as the search sees it.
struct LinOp {
    /// Index into the history.
    var source: Int
    var kind: LinModel.Kind
    var invoke: UInt64
    /// nil: optional (may take effect at any time after `invoke`, or never).
    var deadline: UInt64?
    var note: Note = .none

    enum Note: Equatable {
        case none
        /// Acknowledged after the end of the window: its effect is optional there.
        case runningAtEnd(UInt64)
        /// Invoked before the start of the window and acknowledged in it: it may have taken
        /// effect before the window, so its effect is optional there.
        case straddlesStart(UInt64)
    }
}

/// One key's operations, with values interned.
struct LinRegister {
    var ops: [LinOp] = []
    var values: [[UInt8]?] = [nil]
    var initial: LinValue = LinModel.absent
    /// Values that some operation on this key (or the initial state) can set.
    var writable: Set<LinValue> = [LinModel.absent]
    private var ids: [[UInt8]: LinValue] = [:]

    init(history: [HistoryOp], indices: [Int], initial: [UInt8]?) {
        self.initial = intern(initial)
        writable = [self.initial]
        for i in indices {
            let op = history[i]
            let deadline = op.outcome == .unknown ? nil : op.complete
            let kind: LinModel.Kind
            switch (op.call, op.outcome) {
            case (.read, .read(let v)): kind = .read(intern(v))
            case (.read, _): continue  // unknown read: no information
            case (.write(let v), _): kind = .write(intern(v))
            case (.cas(let e, _), .casFailed): kind = .casFailed(expected: intern(e))
            case (.cas(let e, let n), _): kind = .cas(expected: intern(e), new: intern(n))
            }
            switch kind {
            case let .write(v), let .cas(_, v): writable.insert(v)
            default: break
            }
            ops.append(LinOp(source: i, kind: kind, invoke: op.invoke, deadline: deadline))
        }
    }

    private mutating func intern(_ v: [UInt8]?) -> LinValue {
        guard let v else { return LinModel.absent }
        if let id = ids[v] { return id }
        let id = LinValue(values.count)
        values.append(v)
        ids[v] = id
        return id
    }
}

// MARK: - The search

enum LinSearch {
    enum Verdict { case linearizable, violation, exhausted }

    struct Result {
        var verdict: Verdict
        var states: Int
        /// For each operation (by history index) the search met the return of without having
        /// linearized it: the register values it held there (at most `maxCandidates`).
        var stuck: [Int: [LinValue]]
        /// The operation whose return stopped the deepest partial linearization, and its value.
        var deepest: (source: Int, value: LinValue)?
    }

    static let maxCandidates = 8
    /// Memo bitsets stay under this many 64-bit words (256 MiB); past it the key is too complex.
    static let memoWordCap = 1 << 25

    /// `ops` without the optional operations nothing can use (see `LinUse`): linearizable
    /// exactly when `ops` is. The search also skips the rest once nothing left can use them.
    static func usable(_ ops: [LinOp], initial: LinValue, valueCount: Int) -> [LinOp] {
        var kept = ops
        // Dropping an optional cas can leave its expected value unused: a few rounds.
        for _ in 0..<8 {
            let use = LinUse(kept, initial: initial, valueCount: valueCount)
            let fewer = kept.filter { $0.deadline != nil || use.useful($0.kind) }
            if fewer.count == kept.count { break }
            kept = fewer
        }
        return kept
    }

    static func run(_ allOps: [LinOp], initial: LinValue, valueCount: Int, budget: Int) -> Result {
        let ops = usable(allOps, initial: initial, valueCount: valueCount)
        var use = LinUse(ops, initial: initial, valueCount: valueCount)
        let n = ops.count
        let words = max(1, (n + 63) / 64)
        let maxEntries = max(1, min(budget, memoWordCap / words))  // also keeps entries in Int32

        // Main list: calls and returns of required operations; entries 1...m, 0 head, m+1 tail.
        var events: [(time: UInt64, isReturn: Bool, op: Int)] = []
        var optional: [Int] = []
        events.reserveCapacity(2 * n)
        for (i, op) in ops.enumerated() {
            if let deadline = op.deadline {
                events.append((op.invoke, false, i))
                events.append((deadline, true, i))
            } else {
                optional.append(i)
            }
        }
        // Calls before returns at equal times: equal times are concurrent.
        events.sort { a, b in
            if a.time != b.time { return a.time < b.time }
            if a.isReturn != b.isReturn { return !a.isReturn }
            return a.op < b.op
        }
        optional.sort { a, b in ops[a].invoke != ops[b].invoke ? ops[a].invoke < ops[b].invoke : a < b }

        let m = events.count
        let tail = m + 1
        var next = Array(1...(m + 1)) + [tail]
        var prev = [0] + Array(0...m)
        var opOf = [Int](repeating: -1, count: m + 2)
        var isReturn = [Bool](repeating: false, count: m + 2)
        var timeOf = [UInt64](repeating: 0, count: m + 2)
        var callEntry = [Int](repeating: -1, count: n)
        var returnEntry = [Int](repeating: -1, count: n)
        for (e, ev) in events.enumerated() {
            let entry = e + 1
            opOf[entry] = ev.op
            isReturn[entry] = ev.isReturn
            timeOf[entry] = ev.time
            if ev.isReturn { returnEntry[ev.op] = entry } else { callEntry[ev.op] = entry }
        }
        // Optional list: entries 1...k in call order, 0 head, k+1 tail.
        let k = optional.count
        let optTail = k + 1
        var optNext = Array(1...(k + 1)) + [optTail]
        var optPrev = [0] + Array(0...k)
        let optOp = [-1] + optional + [-1]
        var optEntry = [Int](repeating: -1, count: n)
        for (e, i) in optional.enumerated() { optEntry[i] = e + 1 }

        // Zobrist hashes: required operations and values (optional operations hash to 0, so
        // states that differ only in them meet in the memo's probe sequence).
        var rng = SimRandom(seed: 0x6C69_6E65_6172_697A)  // the simulator's splitmix64: reproducible
        var opHash = [UInt64](repeating: 0, count: n)
        var required = [UInt64](repeating: 0, count: words)
        for i in 0..<n where ops[i].deadline != nil {
            opHash[i] = rng.next()
            required[i >> 6] |= 1 << UInt64(i & 63)
        }
        let valueHash = (0..<(valueCount + 1)).map { _ in rng.next() }  // value v at v + 1
        @inline(__always) func vh(_ v: LinValue) -> UInt64 { valueHash[Int(v) + 1] }

        var memo = LinMemo(words: words, required: required)
        var bits = [UInt64](repeating: 0, count: words)
        var value = initial
        var hash = vh(initial)
        _ = memo.insert(bits, value: value, hash: hash)

        struct Frame { var op: Int; var value: LinValue; var hash: UInt64; var boundary: Int }
        var stack: [Frame] = []
        stack.reserveCapacity(n)
        var returnsLeft = m / 2
        var stuck: [Int: [LinValue]] = [:]
        var deepest: (depth: Int, op: Int, value: LinValue)?

        // Phase 1 scans the main list for calls; at the first return it meets (the boundary)
        // phase 2 tries the optional calls made by then; when those are spent, backtrack.
        var phase1 = true
        var entry = next[0]
        var boundary = -1
        var optCursor = optNext[0]
        // Each frame scans each list entry at most once: this bound is never reached.
        let (product, overflow) = (maxEntries + 1).multipliedReportingOverflow(by: m + k + 4)
        let maxSteps = overflow ? Int.max : product
        var steps = 0

        func result(_ v: Verdict) -> Result {
            Result(verdict: v, states: memo.count, stuck: stuck,
                   deepest: deepest.map { (ops[$0.op].source, $0.value) })
        }

        while steps < maxSteps {
            steps += 1
            var candidate = -1
            if phase1 {
                if returnsLeft == 0 { return result(.linearizable) }
                // A return always precedes the tail while one is left; never a pass otherwise.
                if entry == tail { return result(.exhausted) }
                if !isReturn[entry] {
                    candidate = opOf[entry]
                    entry = next[entry]
                } else {
                    phase1 = false
                    boundary = entry
                    optCursor = optNext[0]
                    continue
                }
            } else if optCursor != optTail && ops[optOp[optCursor]].invoke <= timeOf[boundary] {
                let o = optOp[optCursor]
                optCursor = optNext[optCursor]
                // An optional write right after an optional operation would hide it: the
                // same write without it is tried from the state before it.
                if case .write = ops[o].kind, let top = stack.last, ops[top.op].deadline == nil { continue }
                if !use.useful(ops[o].kind) { continue }
                candidate = o
            } else {
                // The boundary's operation cannot take effect before its return: backtrack.
                let stuckOp = opOf[boundary]
                let source = ops[stuckOp].source
                var seen = stuck[source, default: []]
                if seen.count < maxCandidates && !seen.contains(value) {
                    seen.append(value)
                    stuck[source] = seen
                }
                if deepest == nil || stack.count > deepest!.depth {
                    deepest = (stack.count, stuckOp, value)
                }
                guard let frame = stack.popLast() else { return result(.violation) }
                let i = frame.op
                bits[i >> 6] &= ~(1 << UInt64(i & 63))
                use.putBack(ops[i].kind)
                value = frame.value
                hash = frame.hash
                if ops[i].deadline != nil {
                    let r = returnEntry[i], c = callEntry[i]
                    next[prev[r]] = r; prev[next[r]] = r
                    next[prev[c]] = c; prev[next[c]] = c
                    returnsLeft += 1
                    phase1 = true
                    entry = next[c]
                } else {
                    let o = optEntry[i]
                    optNext[optPrev[o]] = o; optPrev[optNext[o]] = o
                    phase1 = false
                    boundary = frame.boundary
                    optCursor = optNext[o]
                }
                continue
            }

            // Try to linearize `candidate` now.
            guard let newValue = LinModel.step(ops[candidate].kind, value) else { continue }
            let newHash = hash ^ opHash[candidate] ^ vh(value) ^ vh(newValue)
            bits[candidate >> 6] |= 1 << UInt64(candidate & 63)
            if memo.count >= maxEntries {
                if memo.contains(bits, value: newValue, hash: newHash) {
                    bits[candidate >> 6] &= ~(1 << UInt64(candidate & 63))
                    continue
                }
                return result(.exhausted)
            }
            guard memo.insert(bits, value: newValue, hash: newHash) else {
                bits[candidate >> 6] &= ~(1 << UInt64(candidate & 63))
                continue
            }
            stack.append(Frame(op: candidate, value: value, hash: hash, boundary: phase1 ? -1 : boundary))
            use.take(ops[candidate].kind)
            value = newValue
            hash = newHash
            if ops[candidate].deadline != nil {
                let c = callEntry[candidate], r = returnEntry[candidate]
                next[prev[c]] = next[c]; prev[next[c]] = prev[c]
                next[prev[r]] = next[r]; prev[next[r]] = prev[r]
                returnsLeft -= 1
            } else {
                let o = optEntry[candidate]
                optNext[optPrev[o]] = optNext[o]; optPrev[optNext[o]] = optPrev[o]
            }
            phase1 = true
            entry = next[0]
        }
        return result(.exhausted)
    }
}

/// Which optional operations can still matter. One that sets x matters while an operation not
/// yet linearized reads x or is a cas expecting x, or is a failed cas expecting another value
/// the register can hold (x could stand in the way of it). Leaving out an optional operation
/// that nothing can use leaves a linearization: what follows it until the next write sees the
/// previous value instead of x and cannot tell the difference.
struct LinUse {
    /// Per value (index v + 1): operations not yet linearized that read it or cas from it.
    private var observers: [Int32]
    /// Per value: failed cas not yet linearized that expect it, if the register can hold it.
    private var failedLeft: [Int32]
    private var failedTotal: Int32 = 0
    private let holdable: [Bool]

    init(_ ops: [LinOp], initial: LinValue, valueCount: Int) {
        observers = [Int32](repeating: 0, count: valueCount + 1)
        failedLeft = observers
        var holdable = [Bool](repeating: false, count: valueCount + 1)
        holdable[Int(initial) + 1] = true
        for op in ops {
            switch op.kind {
            case let .write(v), let .cas(_, v): holdable[Int(v) + 1] = true
            // From an unknown start the first read learns its value.
            case let .read(v) where initial == LinModel.anyValue: holdable[Int(v) + 1] = true
            default: break
            }
        }
        self.holdable = holdable
        for op in ops { take(op.kind, -1) }
    }

    @inline(__always)
    mutating func take(_ kind: LinModel.Kind, _ delta: Int32 = 1) {
        switch kind {
        case let .read(v), let .cas(v, _):
            observers[Int(v) + 1] -= delta
        case let .casFailed(e) where holdable[Int(e) + 1]:
            failedLeft[Int(e) + 1] -= delta
            failedTotal -= delta
        default: break
        }
    }

    @inline(__always)
    mutating func putBack(_ kind: LinModel.Kind) { take(kind, -1) }

    @inline(__always)
    func useful(_ kind: LinModel.Kind) -> Bool {
        switch kind {
        case let .write(x), let .cas(_, x):
            return observers[Int(x) + 1] > 0 || failedTotal - failedLeft[Int(x) + 1] > 0
        default: return true
        }
    }
}

/// The states the search has explored: (set of linearized operations, register value), in an
/// open-addressing table over flat arrays. A state is already covered if an entry has the same
/// value, the same required operations and a subset of its optional ones.
struct LinMemo {
    let words: Int
    let required: [UInt64]
    private(set) var count = 0
    private var bits: [UInt64] = []
    private var values: [LinValue] = []
    private var hashes: [UInt64] = []
    private var slots: [Int32]

    init(words: Int, required: [UInt64]) {
        self.words = words
        self.required = required
        slots = [Int32](repeating: -1, count: 1024)
    }

    @inline(__always)
    private static func slot(_ hash: UInt64, _ mask: Int) -> Int {
        var z = hash
        z = (z ^ (z >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        z = (z ^ (z >> 33)) &* 0xC4CE_B9FE_1A85_EC53
        return Int(truncatingIfNeeded: z ^ (z >> 33)) & mask
    }

    private func covers(_ e: Int, _ set: [UInt64]) -> Bool {
        let base = e * words
        for w in 0..<words {
            let stored = bits[base + w], mine = set[w], req = required[w]
            if (stored ^ mine) & req != 0 { return false }
            if stored & ~req & ~mine != 0 { return false }
        }
        return true
    }

    func contains(_ set: [UInt64], value: LinValue, hash: UInt64) -> Bool {
        let mask = slots.count - 1
        var i = Self.slot(hash, mask)
        for _ in 0..<slots.count {
            let e = Int(slots[i])
            if e < 0 { return false }
            if hashes[e] == hash && values[e] == value && covers(e, set) { return true }
            i = (i + 1) & mask
        }
        return false
    }

    /// Adds the state unless it is covered; true if added.
    mutating func insert(_ set: [UInt64], value: LinValue, hash: UInt64) -> Bool {
        if contains(set, value: value, hash: hash) { return false }
        if (count + 1) * 2 > slots.count { grow() }
        let mask = slots.count - 1
        var i = Self.slot(hash, mask)
        while slots[i] >= 0 { i = (i + 1) & mask }  // load <= 1/2: a free slot exists
        slots[i] = Int32(count)
        bits.append(contentsOf: set)
        values.append(value)
        hashes.append(hash)
        count += 1
        return true
    }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        let mask = slots.count - 1
        for e in 0..<count {
            var i = Self.slot(hashes[e], mask)
            while slots[i] >= 0 { i = (i + 1) & mask }
            slots[i] = Int32(e)
        }
    }
}
