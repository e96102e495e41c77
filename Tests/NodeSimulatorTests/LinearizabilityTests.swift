import Testing
@testable import NodeSimulator

/// Builds histories with ids 1, 2, ... in the order the operations are added.
private struct Recorder {
    var ops: [HistoryOp] = []

    @discardableResult
    mutating func add(
        _ call: HistoryOp.Call, _ outcome: HistoryOp.Outcome, _ invoke: UInt64, _ complete: UInt64?,
        client: Int, key: String
    ) -> Int {
        let id = ops.count + 1
        ops.append(HistoryOp(id: id, client: client, key: Array(key.utf8), call: call, invoke: invoke,
                             complete: outcome == .unknown ? nil : complete, outcome: outcome))
        return id
    }

    @discardableResult
    mutating func write(_ v: String?, _ t: ClosedRange<UInt64>, client: Int = 1, key: String = "k") -> Int {
        add(.write(bytes(v)), .written, t.lowerBound, t.upperBound, client: client, key: key)
    }

    @discardableResult
    mutating func writeUnknown(_ v: String?, at t: UInt64, client: Int = 1, key: String = "k") -> Int {
        add(.write(bytes(v)), .unknown, t, nil, client: client, key: key)
    }

    @discardableResult
    mutating func read(_ v: String?, _ t: ClosedRange<UInt64>, client: Int = 2, key: String = "k") -> Int {
        add(.read, .read(bytes(v)), t.lowerBound, t.upperBound, client: client, key: key)
    }

    @discardableResult
    mutating func cas(_ e: String?, _ n: String?, _ t: ClosedRange<UInt64>, ok: Bool, client: Int = 3, key: String = "k") -> Int {
        add(.cas(expected: bytes(e), new: bytes(n)), ok ? .written : .casFailed, t.lowerBound, t.upperBound, client: client, key: key)
    }

    @discardableResult
    mutating func casUnknown(_ e: String?, _ n: String?, at t: UInt64, client: Int = 3, key: String = "k") -> Int {
        add(.cas(expected: bytes(e), new: bytes(n)), .unknown, t, nil, client: client, key: key)
    }
}

private func bytes(_ s: String?) -> [UInt8]? { s.map { Array($0.utf8) } }

private func violation(_ verdict: LinearizabilityVerdict) -> (key: [UInt8], explanation: String)? {
    if case let .violation(key, explanation) = verdict { return (key, explanation) }
    return nil
}

@Suite struct LinearizabilityTests {
    // MARK: Known-good histories

    @Test func concurrentWritesAndReadsInAnyLegalOrder() {
        var h = Recorder()
        h.write("a", 0...100, client: 1)
        h.write("b", 10...110, client: 2)
        h.read("a", 20...30, client: 3)
        h.read("b", 40...50, client: 4)
        h.read("b", 120...130, client: 3)
        #expect(checkLinearizable(h.ops) == .linearizable)

        // Two concurrent readers see the two concurrent writes in opposite orders; either
        // write may be the last.
        for last in ["x", "y"] {
            var g = Recorder()
            g.write("x", 0...100, client: 1)
            g.write("y", 0...100, client: 2)
            g.read("x", 10...90, client: 3)
            g.read("y", 10...90, client: 4)
            g.read(last, 200...210, client: 5)
            #expect(checkLinearizable(g.ops) == .linearizable, "last read \(last)")
        }

        // Operations that share a time are concurrent.
        var t = Recorder()
        t.write("a", 0...10)
        t.write("b", 10...20)
        t.read("a", 20...30)
        #expect(checkLinearizable(t.ops) == .linearizable)
    }

    @Test func unknownWriteThatTookEffect() {
        var h = Recorder()
        h.write("a", 0...10, client: 1)
        h.writeUnknown("b", at: 20, client: 2)
        h.read("a", 30...40, client: 3)
        h.write("c", 500...510, client: 1)
        h.read("c", 520...530, client: 3)
        // No upper bound: the timed-out write lands long after a later acknowledged one.
        h.read("b", 1000...1010, client: 4)
        h.read("b", 1100...1110, client: 3)
        #expect(checkLinearizable(h.ops) == .linearizable)
    }

    @Test func unknownWritesThatNeverTookEffect() {
        var h = Recorder()
        h.write("a", 0...10, client: 1)
        h.writeUnknown("b", at: 20, client: 2)
        h.casUnknown("a", "z", at: 25, client: 5)
        h.add(.read, .unknown, 30, nil, client: 4, key: "k")  // a read that timed out tells nothing
        h.read("a", 30...40, client: 3)
        h.read("a", 1000...1010, client: 3)
        // The timed-out value is written again later and read: still need not be the first.
        h.write("b", 2000...2010, client: 1)
        h.read("b", 2020...2030, client: 3)
        h.write("z", 3000...3010, client: 1)
        h.read("z", 3020...3030, client: 3)
        #expect(checkLinearizable(h.ops) == .linearizable)
    }

    @Test func casSuccessAndFailure() {
        var h = Recorder()
        h.cas("a", "b", 0...10, ok: true)
        h.cas("a", "c", 20...30, ok: false)
        h.read("b", 40...50)
        // Two racing cas from b: one wins.
        h.cas("b", "x", 60...100, ok: true, client: 3)
        h.cas("b", "y", 60...100, ok: false, client: 4)
        h.read("x", 110...120)
        // A cas may fail because a concurrent write changed the value first.
        h.cas("x", "q", 200...240, ok: false, client: 3)
        h.write("w", 210...230, client: 1)
        h.read("w", 250...260)
        #expect(checkLinearizable(h.ops, initial: [Array("k".utf8): Array("a".utf8)]) == .linearizable)

        // Create-if-absent, delete, create again.
        var c = Recorder()
        c.cas(nil, "1", 0...10, ok: true, key: "n")
        c.cas(nil, "2", 20...30, ok: false, key: "n")
        c.read("1", 40...50, key: "n")
        c.write(nil, 60...70, key: "n")
        c.read(nil, 80...90, key: "n")
        c.cas(nil, "3", 100...110, ok: true, key: "n")
        c.read("3", 120...130, key: "n")
        #expect(checkLinearizable(c.ops) == .linearizable)
    }

    @Test func keysAreIndependentRegisters() {
        var h = Recorder()
        h.write("a", 0...10, key: "k1")
        h.write("b", 20...30, key: "k2")
        h.read("a", 40...50, key: "k1")
        h.read(nil, 40...50, key: "k3")
        h.read("b", 60...70, key: "k2")
        #expect(checkLinearizable(h.ops) == .linearizable)
        // The same reads on one key are not linearizable.
        var one = Recorder()
        one.write("a", 0...10)
        one.write("b", 20...30)
        one.read("a", 40...50)
        #expect(violation(checkLinearizable(one.ops)) != nil)
    }

    // MARK: Known-bad histories

    @Test func staleReadAfterCompletedWrite() throws {
        var h = Recorder()
        h.write("a", 0...10, client: 1)
        h.write("b", 20...30, client: 2)
        let stale = h.read("a", 40...50, client: 3)
        let v = try #require(violation(checkLinearizable(h.ops)))
        #expect(v.key == Array("k".utf8))
        #expect(v.explanation.contains("#\(stale) client 3 [40, 50] read -> \"a\"   <- cannot take effect"), "\(v.explanation)")
        #expect(v.explanation.contains("holding \"b\""), "\(v.explanation)")
    }

    @Test func readOfValueNeverWritten() throws {
        var h = Recorder()
        h.write("a", 0...10)
        h.read("zz", 20...30)
        let v = try #require(violation(checkLinearizable(h.ops)))
        #expect(v.explanation.contains("\"zz\" is never written"), "\(v.explanation)")

        var bin = Recorder()
        bin.write("a", 0...10)
        bin.add(.read, .read([0xFF, 0x00, 0x41]), 20, 30, client: 2, key: "k")
        let b = try #require(violation(checkLinearizable(bin.ops)))
        #expect(b.explanation.contains("read -> 0xff0041"), "\(b.explanation)")
    }

    @Test func readGoesBackInTimeAcrossSequentialReads() throws {
        var h = Recorder()
        h.write("a", 0...10, client: 1)
        h.write("b", 20...100, client: 1)
        let first = h.read("b", 30...40, client: 2)
        let second = h.read("a", 50...60, client: 3)
        let v = try #require(violation(checkLinearizable(h.ops)))
        #expect(v.explanation.contains("#\(first) client 2"), "\(v.explanation)")
        #expect(v.explanation.contains("#\(second) client 3 [50, 60] read -> \"a\"   <- cannot take effect"), "\(v.explanation)")
        // Without the first read it is fine: the write of b may still be in flight.
        #expect(checkLinearizable(h.ops.filter { $0.id != first }) == .linearizable)
    }

    @Test func lostAcknowledgedWrite() throws {
        var h = Recorder()
        h.write("a", 0...10, client: 1)
        let lost = h.write("b", 20...30, client: 2)
        h.writeUnknown("c", at: 25, client: 3)  // never read: no excuse
        h.read("a", 40...50, client: 4)
        h.read("a", 60...70, client: 4)
        let v = try #require(violation(checkLinearizable(h.ops)))
        // The window is the lost write and the first read that misses it.
        let lines = v.explanation.split(separator: "\n").map(String.init)
        #expect(lines[0].hasSuffix("t=20 to t=50, 2 operations, starting from any value:"), "\(v.explanation)")
        #expect(lines[1] == "  #\(lost) client 2 [20, 30] write \"b\"", "\(v.explanation)")
    }

    @Test func casThatSucceededAlthoughTheValueDiffered() throws {
        var h = Recorder()
        h.write("a", 0...10)
        let bad = h.cas("x", "y", 20...30, ok: true)
        h.read("y", 40...50)
        let v = try #require(violation(checkLinearizable(h.ops)))
        #expect(v.explanation.contains("#\(bad) client 3 [20, 30] cas \"x\" -> \"y\": ok   <- cannot take effect"), "\(v.explanation)")

        // And the converse: a cas that failed although the value matched.
        var f = Recorder()
        f.cas("a", "b", 0...10, ok: false)
        let w = try #require(violation(checkLinearizable(f.ops, initial: [Array("k".utf8): Array("a".utf8)])))
        #expect(w.explanation.contains("cas \"a\" -> \"b\": failed"), "\(w.explanation)")
    }

    @Test func unknownWriteCannotTakeEffectBeforeItsCallOrTwice() {
        var early = Recorder()
        early.write("a", 0...10)
        early.read("b", 20...30)
        early.writeUnknown("b", at: 40)
        #expect(violation(checkLinearizable(early.ops)) != nil)

        var twice = Recorder()
        twice.write("a", 0...10)
        twice.writeUnknown("b", at: 20)
        twice.read("b", 30...40)
        twice.write("c", 50...60)
        twice.read("c", 70...80)
        twice.read("b", 90...100)
        #expect(violation(checkLinearizable(twice.ops)) != nil)
    }

    @Test func malformedOperationIsNeverAPass() throws {
        var h = Recorder()
        h.add(.read, .written, 0, 10, client: 1, key: "k")
        let v = try #require(violation(checkLinearizable(h.ops)))
        #expect(v.explanation.hasPrefix("malformed history"))
        var late = Recorder()
        late.add(.write(bytes("a")), .written, 10, 5, client: 1, key: "k")
        #expect(violation(checkLinearizable(late.ops)) != nil)
    }

    // MARK: Explanations

    @Test func explanationIsTheSmallestFailingWindow() throws {
        var h = Recorder()
        for i in 0..<30 {
            let t = UInt64(i) * 20
            h.write("v\(i)", t...(t + 5), client: i % 5)
            h.read("v\(i)", (t + 10)...(t + 15), client: (i + 1) % 5)
        }
        let newer = h.write("new", 1000...1010, client: 7)
        let stale = h.read("v29", 1020...1030, client: 8)
        h.read("new", 1040...1050, client: 9)
        let v = try #require(violation(checkLinearizable(h.ops)))
        print(v.explanation)
        let lines = v.explanation.split(separator: "\n").map(String.init)
        #expect(lines[0] == "not linearizable (63 operations on this key). Smallest failing window found: "
                + "t=1000 to t=1030, 2 operations, starting from any value:", "\(v.explanation)")
        #expect(lines[1] == "  #\(newer) client 7 [1000, 1010] write \"new\"", "\(v.explanation)")
        #expect(lines[2] == "  #\(stale) client 8 [1020, 1030] read -> \"v29\"   <- cannot take effect", "\(v.explanation)")
        #expect(v.explanation.contains("holding \"new\""), "\(v.explanation)")
        #expect(!v.explanation.contains("#1 "), "\(v.explanation)")
    }

    @Test func keysAndValuesPrintAsTextOrHex() {
        #expect(LinFormat.value(nil) == "absent")
        #expect(LinFormat.value([]) == "\"\"")
        #expect(LinFormat.value(Array("a \"q\"".utf8)) == "\"a \\\"q\\\"\"")
        #expect(LinFormat.value([0x00, 0x01, 0xAB]) == "0x0001ab")
        #expect(LinFormat.value([UInt8](repeating: 0x61, count: 40)) == "\"" + String(repeating: "a", count: 32) + "\"...(40 bytes)")
        let verdict = LinearizabilityVerdict.tooComplex(key: [0x00, 0x01])
        #expect(verdict.description == "too complex to check: key 0x0001")
    }

    // MARK: Randomized self-check

    /// A history that is sequential by construction: operations on a model of the registers
    /// take effect at points 100 apart, each inside a random window of up to ±400 around its
    /// point, so windows overlap. Some writes and cas time out (after taking effect, or never).
    static func sequentialHistory(seed: UInt64, count: Int) -> (ops: [HistoryOp], initial: [[UInt8]: [UInt8]]) {
        var rng = SimRandom(seed: seed)
        let keys = (0..<10).map { Array("key\($0)".utf8) }
        let initial = [keys[0]: Array("init".utf8)]
        var model: [[UInt8]: [UInt8]] = initial
        var ops: [HistoryOp] = []
        for i in 0..<count {
            let point = 1_000 + UInt64(i) * 100
            let invoke = point - UInt64(rng.int(0..<400))
            let complete = point + UInt64(rng.int(0..<400))
            let key = keys[rng.int(0..<keys.count)]
            let current = model[key]
            let timesOut = rng.chance(0.15)
            var op = HistoryOp(id: i, client: rng.int(0..<5), key: key, call: .read, invoke: invoke,
                               complete: complete, outcome: .read(current))
            switch rng.int(0..<100) {
            case 0..<35:
                let value = rng.chance(0.1) ? nil : Array("v\(i)".utf8)
                op.call = .write(value)
                op.outcome = .written
                model[key] = value
            case 35..<45:
                let value = Array("c\(i)".utf8)
                op.call = .cas(expected: current, new: value)
                op.outcome = .written
                model[key] = value
            case 45..<50:
                op.call = .cas(expected: Array("nope\(i)".utf8), new: Array("x\(i)".utf8))
                op.outcome = .casFailed
            case 50..<55:
                // Timed out and never took effect.
                op.call = rng.chance(0.5) ? .write(Array("ghost\(i)".utf8))
                    : .cas(expected: current, new: Array("ghost\(i)".utf8))
                op.outcome = .unknown
            default:
                if timesOut { op.outcome = .unknown }
            }
            if timesOut && op.outcome != .casFailed { op.outcome = .unknown }
            if op.outcome == .unknown { op.complete = nil }
            ops.append(op)
        }
        return (ops, initial)
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func randomSequentialHistoriesPassAndAMutatedReadFails(seed: UInt64) throws {
        let (ops, initial) = Self.sequentialHistory(seed: seed, count: 1500)
        let clock = ContinuousClock()
        var verdict = LinearizabilityVerdict.linearizable
        let elapsed = clock.measure { verdict = checkLinearizable(ops, initial: initial) }
        print("seed \(seed): \(ops.count) ops checked in \(elapsed)")
        #expect(verdict == .linearizable, "seed \(seed): \(verdict)")

        var rng = SimRandom(seed: seed ^ 0xBAD)
        let reads = ops.indices.filter { ops[$0].call == .read && ops[$0].outcome != .unknown }
        let picked = rng.pick(reads)
        let i = try #require(picked)
        var mutated = ops
        mutated[i].outcome = .read(Array("never-written".utf8))
        let v = try #require(violation(checkLinearizable(mutated, initial: initial)), "seed \(seed)")
        #expect(v.key == ops[i].key)
        #expect(v.explanation.contains("#\(ops[i].id) client \(ops[i].client)"), "\(v.explanation)")
        #expect(v.explanation.contains("\"never-written\" is never written"), "\(v.explanation)")
    }

    // MARK: Against a brute-force reference

    /// Linearizable by trying every order (and every subset of the timed-out writes): an
    /// operation may go next unless an acknowledged one still left completed before its call.
    static func bruteForce(_ ops: [HistoryOp], initial: [UInt8]?) -> Bool {
        let ops = ops.filter { !($0.call == .read && $0.outcome == .unknown) }
        func search(_ left: [HistoryOp], _ value: [UInt8]?) -> Bool {
            if left.allSatisfy({ $0.outcome == .unknown }) { return true }
            for (i, op) in left.enumerated() {
                let blocked = left.contains { other in
                    other.id != op.id && other.outcome != .unknown && other.complete! < op.invoke
                }
                if blocked { continue }
                var next: [UInt8]?? = nil
                switch (op.call, op.outcome) {
                case let (.read, .read(v)): if v == value { next = .some(value) }
                case let (.write(v), _): next = .some(v)
                case let (.cas(e, n), .casFailed): if e != value { next = .some(value) }; _ = n
                case let (.cas(e, n), _): if e == value { next = .some(n) }
                default: break
                }
                guard let after = next else { continue }
                var rest = left
                rest.remove(at: i)
                if search(rest, after) { return true }
            }
            return false
        }
        return search(ops, initial)
    }

    @Test func agreesWithBruteForceOnSmallRandomHistories() {
        var rng = SimRandom(seed: 20_261_203)
        let values: [[UInt8]?] = [nil, Array("a".utf8), Array("b".utf8), Array("c".utf8)]
        var counts = (linearizable: 0, violation: 0)
        for round in 0..<3_000 {
            let initial = values[rng.int(0..<values.count)]
            var ops: [HistoryOp] = []
            for id in 0..<rng.int(1..<8) {
                let invoke = UInt64(rng.int(0..<12))
                let complete = invoke + UInt64(rng.int(0..<6))
                let value = values[rng.int(0..<values.count)]
                var op = HistoryOp(id: id, client: id, key: Array("k".utf8), call: .read, invoke: invoke,
                                   complete: complete, outcome: .read(value))
                switch rng.int(0..<10) {
                case 0..<3: (op.call, op.outcome) = (.write(value), .written)
                case 3..<5:
                    op.call = .cas(expected: values[rng.int(0..<values.count)], new: value)
                    op.outcome = rng.chance(0.5) ? .written : .casFailed
                default: break
                }
                if rng.chance(0.2) { (op.outcome, op.complete) = (.unknown, nil) }
                ops.append(op)
            }
            let expected = Self.bruteForce(ops, initial: initial)
            let verdict = checkLinearizable(ops, initial: initial.map { [Array("k".utf8): $0] } ?? [:])
            #expect((verdict == .linearizable) == expected, "round \(round): \(verdict)\n\(ops)")
            if !expected {
                #expect(violation(verdict) != nil, "round \(round): \(verdict)")
                counts.violation += 1
            } else {
                counts.linearizable += 1
            }
        }
        // Both kinds must be well represented, or the comparison says little.
        #expect(counts.linearizable > 500 && counts.violation > 500, "\(counts)")
    }

    // MARK: Search cost

    /// 20 concurrent writes, then two sequential reads of two of them: the search must try the
    /// orders of the writes (2^20 subsets × last value) before it can say no.
    static func exponentialHistory(key: String) -> [HistoryOp] {
        var h = Recorder()
        for i in 0..<20 { h.write("w\(i)", 0...100, client: i, key: key) }
        h.read("w0", 200...210, client: 0, key: key)
        h.read("w1", 300...310, client: 1, key: key)
        return h.ops
    }

    @Test func budgetRunsOutAsTooComplexNeverAsAPass() {
        #expect(checkLinearizable(Self.exponentialHistory(key: "hard"), stateBudget: 20_000) == .tooComplex(key: Array("hard".utf8)))

        // A linearizable history that needs more states than the budget is not a pass either.
        var long = Recorder()
        for i in 0..<50 { long.write("v\(i)", UInt64(i * 10)...UInt64(i * 10 + 5)) }
        #expect(checkLinearizable(long.ops, stateBudget: 10) == .tooComplex(key: Array("k".utf8)))
        #expect(checkLinearizable(long.ops, stateBudget: 100) == .linearizable)

        // A violation on another key wins over a key that is too complex.
        var both = Recorder()
        both.ops = Self.exponentialHistory(key: "hard")
        both.write("a", 0...10, key: "easy")
        both.write("b", 20...30, key: "easy")
        both.read("a", 40...50, key: "easy")
        let verdict = checkLinearizable(both.ops, stateBudget: 20_000)
        #expect(violation(verdict)?.key == Array("easy".utf8), "\(verdict)")
    }

    @Test func timedOutWritesStayCheap() {
        // 40 timed-out writes, each read later: each must be placed, none may be placed early.
        var h = Recorder()
        for i in 0..<40 {
            let t = UInt64(i) * 100
            h.writeUnknown("v\(i)", at: t, client: i % 5)
            h.read("v\(i)", (t + 50)...(t + 60), client: 9)
        }
        #expect(checkLinearizable(h.ops, stateBudget: 5_000) == .linearizable)

        // 40 timed-out writes nobody reads, on a key with a failed cas (so they are searched).
        var g = Recorder()
        g.write("a", 0...10)
        for i in 0..<40 {
            let t = 20 + UInt64(i) * 100
            g.writeUnknown("ghost\(i)", at: t, client: i % 5)
            g.read("a", (t + 50)...(t + 60), client: 9)
        }
        g.cas("zz", "q", 9000...9010, ok: false)
        #expect(checkLinearizable(g.ops, stateBudget: 5_000) == .linearizable)
        var bad = g
        bad.read("ghost3", 9100...9110)
        bad.read("a", 9200...9210)
        #expect(violation(checkLinearizable(bad.ops, stateBudget: 50_000)) != nil)

        // 16 writes time out together; their values are read in order, then the first again.
        // Trying them in chains (each hiding the one before) would be 2^16 states.
        var chain = Recorder()
        for i in 0..<16 { chain.writeUnknown("u\(i)", at: 0, client: i) }
        for i in 0..<16 { chain.read("u\(i)", UInt64(100 + 20 * i)...UInt64(110 + 20 * i), client: 20) }
        #expect(checkLinearizable(chain.ops, stateBudget: 20_000) == .linearizable)
        chain.read("u0", 1000...1010, client: 21)
        let verdict = checkLinearizable(chain.ops, stateBudget: 20_000)
        #expect(violation(verdict) != nil, "\(verdict)")
    }

    @Test func aStateWithFewerTimedOutWritesUsedIsNotCoveredByOneWithMore() {
        // The search first reaches {write a, write b, read a} with value a by way of the
        // timed-out write of a (a, b, then it); the only linearization gets there without it
        // (b, a) and needs it for the last read.
        var h = Recorder()
        h.write("a", 0...100, client: 1)
        h.write("b", 0...100, client: 2)
        h.read("a", 0...100, client: 3)
        h.writeUnknown("a", at: 0, client: 4)
        h.read("a", 150...160, client: 3)
        h.write("z", 200...210, client: 1)
        h.read("a", 300...310, client: 3)
        #expect(Self.bruteForce(h.ops, initial: nil))
        #expect(checkLinearizable(h.ops) == .linearizable)
    }
}
