#if canImport(Glibc)
import Glibc
#endif
import NodeSimulator

// node-sim: runs whole node pipelines in the deterministic simulator (docs/TESTING.md "Node
// simulator"). `tools/sim --node` builds it in release mode and runs it.

let usage = """
    usage: node-sim [--seeds N | --seed S] [--first S] [--nodes 3|5] [--faults LIST] [--chaos-ms MS] [--verbose]

      --seeds N       run seeds FIRST..FIRST+N-1 (default 100; FIRST defaults to 1)
      --seed S        run one seed and print its report (replay)
      --nodes 3|5     cluster size (default 3)
      --faults LIST   comma-separated subset of: \(NodeSimOptions.Fault.allCases.map(\.rawValue).joined(separator: ","))
                      (default all)
      --chaos-ms MS   the fault window (default 3000); healing takes as long again
      --verbose       log every node's pipeline with virtual time (with --seed)
      --scenarios     run the scripted pipeline scenarios instead of seeds

    Ends with "N passed, M failed"; exits 1 if any seed failed, 2 on a usage error.
    """

func usageError(_ message: String) -> Never {
    print("node-sim: \(message)\n\n\(usage)")
    exit(2)
}

/// What replays one seed: printed with every failure, and by the crash handler.
func replayCommand(_ options: NodeSimOptions) -> String {
    var parts = ["tools/sim --node --nodes \(options.nodes) --seed \(options.seed)"]
    if options.faults != Set(NodeSimOptions.Fault.allCases) {
        parts.append("--faults \(options.faults.map(\.rawValue).sorted().joined(separator: ","))")
    }
    if options.chaosMillis != NodeSimOptions().chaosMillis { parts.append("--chaos-ms \(options.chaosMillis)") }
    return parts.joined(separator: " ")
}

// A trap (a precondition in the pipeline) ends the process: the handler says which seed did it.
nonisolated(unsafe) var crashLine = [CChar](repeating: 0, count: 512)

func number<T: FixedWidthInteger>(_ text: String, _ flag: String) -> T {
    guard let value = T(text) else { usageError("\(flag): want a number, got \(text)") }
    return value
}

func main() {
    var options = NodeSimOptions()
    var seeds = 100
    var first: UInt64 = 1
    var single: UInt64?
    var args = Array(CommandLine.arguments.dropFirst())
    while !args.isEmpty {
        let arg = args.removeFirst()
        guard arg.hasPrefix("--") || arg == "-h" else { usageError("unexpected argument \(arg)") }
        if arg == "--verbose" { options.verbose = true; continue }
        if arg == "--scenarios" {
            let results = PipelineScenarios.runAll()
            for (name, failure) in results { print(failure.map { "scenario FAILED: \(name): \($0)" } ?? "scenario passed: \(name)") }
            let failed = results.filter { $0.failure != nil }.count
            print("\(results.count - failed) passed, \(failed) failed")
            exit(failed == 0 ? 0 : 1)
        }
        if arg == "-h" || arg == "--help" {
            print(usage)
            exit(0)
        }
        guard !args.isEmpty else { usageError("\(arg) needs a value") }
        let value = args.removeFirst()
        switch arg {
        case "--seeds": seeds = number(value, arg)
        case "--first": first = number(value, arg)
        case "--seed": single = number(value, arg)
        case "--nodes":
            options.nodes = number(value, arg)
            guard options.nodes == 3 || options.nodes == 5 else { usageError("--nodes: want 3 or 5") }
        case "--faults":
            var set = Set<NodeSimOptions.Fault>()
            for name in value.split(separator: ",") {
                guard let fault = NodeSimOptions.Fault(rawValue: String(name)) else { usageError("unknown fault \(name)") }
                set.insert(fault)
            }
            options.faults = set
        case "--chaos-ms":
            options.chaosMillis = number(value, arg)
            options.healMillis = max(options.chaosMillis, 3000)
        default: usageError("unknown argument \(arg)")
        }
    }
    for sig in [SIGILL, SIGTRAP, SIGSEGV, SIGABRT, SIGBUS] {
        signal(sig) { sig in
            crashLine.withUnsafeBufferPointer { buf in _ = write(2, buf.baseAddress, strlen(buf.baseAddress!)) }
            signal(sig, SIG_DFL)
            raise(sig)
        }
    }
    let range: [UInt64] = single.map { [$0] } ?? (0..<seeds).map { first + UInt64($0) }
    var passed = 0
    var failed = 0
    for seed in range {
        options.seed = seed
        let text = "\nnode-sim: seed \(seed) crashed the process; replay: \(replayCommand(options))\n"
        crashLine = Array(text.utf8CString.prefix(511)) + [0]
        do {
            let report = try Simulation(options: options).run()
            passed += 1
            if single != nil { print("seed \(seed): passed — \(report)") }
        } catch {
            failed += 1
            print("seed \(seed) FAILED \(error)\n  replay: \(replayCommand(options))")
        }
    }
    print("\(passed) passed, \(failed) failed")
    exit(failed == 0 ? 0 : 1)
}

main()
