// Explanations of linearizability violations: the smallest window of one key's history that
// still cannot be linearized, and the operation the search could not place in it.
//
// Every step below only weakens the key's history, so a window that fails proves the whole
// history fails (and each window printed was checked to fail):
// - Cut at time T: operations called after T are dropped; those acknowledged after T lose their
//   result (reads are dropped, writes and cas become optional). A linearization of the whole
//   history, cut after the effects at or before T, linearizes this. The smallest such T that
//   fails is the completion that first makes the history non-linearizable.
// - Start at time S: operations acknowledged before S are dropped; those called before S and
//   acknowledged after lose their result the same way (they may have taken effect before S);
//   the register starts at an unknown value that the first read or cas learns. The largest S
//   that still fails is taken.
// - Timed-out writes nothing in the window can use are left out (that changes nothing).
// - Reads and failed cas in the window are dropped one at a time while the window still fails:
//   dropping a read never makes a linearizable history non-linearizable.

struct LinExplainer {
    let register: LinRegister
    let history: [HistoryOp]
    let budget: Int
    /// States all the probes together may explore.
    private var remaining: Int
    static let maxDropTries = 200
    static let maxStartTries = 2_000
    static let maxListed = 40

    init(register: LinRegister, history: [HistoryOp], budget: Int) {
        self.register = register
        self.history = history
        self.budget = budget
        let (twice, overflow) = budget.multipliedReportingOverflow(by: 2)
        remaining = overflow ? Int.max : max(twice, 100_000)
    }

    private mutating func fails(_ ops: [LinOp], from initial: LinValue) -> LinSearch.Result? {
        guard remaining > 0 else { return nil }
        let r = LinSearch.run(ops, initial: initial, valueCount: register.values.count, budget: min(budget, remaining))
        remaining -= r.states
        return r.verdict == .violation ? r : nil
    }

    static func truncated(_ ops: [LinOp], at end: UInt64) -> [LinOp] {
        var out: [LinOp] = []
        for var op in ops where op.invoke <= end {
            if let d = op.deadline, d > end {
                switch op.kind {
                case .read, .casFailed: continue
                case .write, .cas:
                    op.deadline = nil
                    op.note = .runningAtEnd(d)
                }
            }
            out.append(op)
        }
        return out
    }

    static func window(_ ops: [LinOp], from start: UInt64) -> [LinOp] {
        var out: [LinOp] = []
        for var op in ops {
            if let d = op.deadline {
                if d < start { continue }
                if op.invoke < start {
                    switch op.kind {
                    case .read, .casFailed: continue
                    case .write, .cas:
                        op.deadline = nil
                        op.note = .straddlesStart(d)
                    }
                }
            }
            out.append(op)
        }
        return out
    }

    mutating func explain() -> String {
        let all = register.ops
        guard var current = fails(all, from: register.initial) else {
            return "not linearizable (the explanation ran out of its state budget)"
        }
        var ops = all
        var initial = register.initial

        // The first completion at which the history stops being linearizable.
        let completions = Array(Set(all.compactMap(\.deadline))).sorted()
        var end = completions.last ?? 0
        var lo = 0, hi = completions.count - 1
        while lo <= hi && remaining > 0 {
            let mid = (lo + hi) / 2
            let cut = Self.truncated(all, at: completions[mid])
            if let r = fails(cut, from: register.initial) {
                (ops, current, end) = (cut, r, completions[mid])
                hi = mid - 1
            } else {
                lo = mid + 1
            }
        }

        // The latest start that still fails from an unknown value, tried from the end back
        // (failing is not monotone in the start: an operation acknowledged just after it loses
        // its deadline, one acknowledged just before it is dropped).
        var start: UInt64?
        let times = Array(Set(ops.flatMap { [$0.invoke] + ($0.deadline.map { [$0] } ?? []) })).sorted()
        let cut = ops
        var tried = 0
        for t in times.reversed() where remaining > 0 && tried < Self.maxStartTries {
            tried += 1
            let w = Self.window(cut, from: t)
            if let r = fails(w, from: LinModel.anyValue) {
                (ops, current, start, initial) = (w, r, t, LinModel.anyValue)
                break
            }
        }

        // Timed-out writes that nothing in the window can use.
        ops = LinSearch.usable(ops, initial: initial, valueCount: register.values.count)

        // Reads and failed cas that the contradiction does not need.
        var dropped = 0
        var tries = 0
        var i = 0
        while i < ops.count && tries < Self.maxDropTries && remaining > 0 {
            let op = ops[i]
            let droppable: Bool
            switch op.kind {
            case .read, .casFailed: droppable = op.deadline != nil && op.deadline != end
            default: droppable = false
            }
            if droppable {
                tries += 1
                var fewer = ops
                fewer.remove(at: i)
                if let r = fails(fewer, from: initial) {
                    (ops, current) = (fewer, r)
                    dropped += 1
                    continue
                }
            }
            i += 1
        }

        ops = LinSearch.usable(ops, initial: initial, valueCount: register.values.count)
        return describe(ops: ops, result: current, initial: initial, start: start, end: end, dropped: dropped)
    }

    static func count(_ n: Int, _ noun: String) -> String { n == 1 ? "1 \(noun)" : "\(n) \(noun)s" }

    private func value(_ v: LinValue) -> String {
        v == LinModel.anyValue ? "any value" : LinFormat.value(register.values[Int(v)])
    }

    private func describe(
        ops: [LinOp], result: LinSearch.Result, initial: LinValue, start: UInt64?, end: UInt64, dropped: Int
    ) -> String {
        // The operation the search could not place: one acknowledged at the window's end if the
        // search got stuck there, else where its deepest partial linearization stopped.
        // Prefer one that no value it was stuck at would take (several may end together).
        let atEnd = ops.filter { $0.deadline == end }.sorted { $0.source < $1.source }
        let refused = atEnd.first { op in
            result.stuck[op.source].map { held in held.allSatisfy { LinModel.step(op.kind, $0) == nil } } ?? false
        }
        var stuckSource = refused?.source ?? atEnd.map(\.source).first { result.stuck[$0] != nil }
        var candidates = stuckSource.flatMap { result.stuck[$0] } ?? []
        if stuckSource == nil, let deepest = result.deepest {
            stuckSource = deepest.source
            candidates = result.stuck[deepest.source] ?? [deepest.value]
        }

        var lines: [String] = []
        let total = register.ops.count
        let from = start.map { "t=\($0)" } ?? "from the start"
        let origin = start == nil ? "the initial value \(value(initial))" : "any value"
        lines.append("not linearizable (\(Self.count(total, "operation")) on this key). Smallest failing window found: "
            + "\(from) to t=\(end), \(Self.count(ops.count, "operation")), starting from \(origin):")
        let listed = ops.sorted { ($0.invoke, $0.source) < ($1.invoke, $1.source) }
        for op in listed.prefix(Self.maxListed) {
            var line = "  " + LinFormat.op(history[op.source])
            switch op.note {
            case .none: break
            case let .runningAtEnd(t): line += " (acknowledged at t=\(t), after the window: may or may not take effect in it)"
            case let .straddlesStart(t): line += " (acknowledged at t=\(t), called before the window: may have taken effect before it)"
            }
            if op.source == stuckSource { line += "   <- cannot take effect" }
            lines.append(line)
        }
        if listed.count > Self.maxListed { lines.append("  ... and \(listed.count - Self.maxListed) more") }
        if dropped > 0 {
            let what = dropped == 1 ? "1 read or failed cas in the window is" : "\(dropped) reads or failed cas in the window are"
            lines.append("(\(what) not needed for the contradiction and left out)")
        }
        if let s = stuckSource {
            let op = history[s]
            let held = candidates.isEmpty ? "no value" : candidates.map(value).joined(separator: " or ")
            let by = op.complete.map { "by t=\($0)" } ?? "at any time"
            lines.append("\(LinFormat.op(op)) cannot take effect \(by): every order of the operations before it leaves the register holding \(held).")
            if let k = register.ops.first(where: { $0.source == s })?.kind {
                var needed: LinValue?
                switch k {
                case let .read(v): needed = v
                case let .cas(e, _): needed = e
                default: break
                }
                if let v = needed, !register.writable.contains(v) {
                    lines.append("\(value(v)) is never written to this key.")
                }
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// Operations and values as text: values printable as ASCII are quoted, others are hex.
enum LinFormat {
    static let maxBytes = 32

    static func value(_ v: [UInt8]?) -> String {
        guard let v else { return "absent" }
        let shown = v.prefix(maxBytes)
        let more = v.count > maxBytes ? "...(\(v.count) bytes)" : ""
        if shown.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
            var s = "\""
            for b in shown {
                if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { s += "\\" }
                s.unicodeScalars.append(Unicode.Scalar(b))
            }
            return s + "\"" + more
        }
        let digits = Array("0123456789abcdef")
        var s = "0x"
        for b in shown {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 15)])
        }
        return s + more
    }

    static func op(_ op: HistoryOp) -> String {
        let done = op.outcome == .unknown ? "?" : op.complete.map(String.init) ?? "?"
        var text = "#\(op.id) client \(op.client) [\(op.invoke), \(done)] "
        switch op.call {
        case let .write(v): text += v == nil ? "delete" : "write \(value(v))"
        case let .cas(e, n): text += "cas \(value(e)) -> \(value(n))"
        case .read: text += "read"
        }
        switch op.outcome {
        case .written: if case .cas = op.call { text += ": ok" }
        case .casFailed: text += ": failed"
        case let .read(v): text += " -> \(value(v))"
        case .unknown: text += ": unknown outcome"
        }
        return text
    }
}
