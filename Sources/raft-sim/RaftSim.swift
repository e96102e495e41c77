import RaftSimulator

/// `raft-sim --seeds N [--first S] [--nodes 3|5] [--ticks T]` (`--steps` = `--ticks`): runs N seeded simulations and
/// ends with `N passed, M failed`; each failure prints its seed and the command replaying it.
@main
struct RaftSim {
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        var seeds = 100
        var first: UInt64 = 1
        var options = SimOptions()
        var verbose = false
        func value(_ name: String) -> String? {
            guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
            defer { arguments.removeSubrange(i...i + 1) }
            return arguments[i + 1]
        }
        func fail(_ message: String) -> Never {
            print("raft-sim: \(message)\nusage: raft-sim [--seeds N] [--first S | --seed S] [--nodes 3|5] [--ticks T | --steps T] [--verbose]")
            exit(2)
        }
        func number<T: LosslessStringConvertible>(_ name: String, _ v: String) -> T {
            guard let n = T(v) else { fail("\(name): got \(v), want a number") }
            return n
        }
        if let v = value("--seeds") { seeds = number("--seeds", v) }
        if let v = value("--first") { first = number("--first", v) }
        if let v = value("--seed") {
            first = number("--seed", v)
            seeds = 1
            verbose = true
        }
        if let v = value("--nodes") {
            guard let n = Int(v), n == 3 || n == 5 else { fail("--nodes: got \(v), want 3 or 5") }
            options.nodeCount = n
        }
        if let v = value("--ticks") { options.faultTicks = number("--ticks", v) }
        if let v = value("--steps") { options.faultTicks = number("--steps", v) }  // alias: one step is one tick
        if let i = arguments.firstIndex(of: "--verbose") {
            verbose = true
            arguments.remove(at: i)
        }
        if !arguments.isEmpty { fail("unknown arguments: \(arguments.joined(separator: " "))") }

        var passed = 0
        var failed = 0
        for seed in first..<first + UInt64(seeds) {
            let report = Simulator(seed: seed, options: options).run()
            if report.passed {
                passed += 1
                if verbose { print(report) }
            } else {
                failed += 1
                print(report)
                print("replay: tools/sim --seed \(seed) --nodes \(options.nodeCount) --ticks \(options.faultTicks)")
            }
        }
        print("\(passed) passed, \(failed) failed")
        exit(failed == 0 ? 0 : 1)
    }
}

#if canImport(Glibc)
import Glibc
#endif
