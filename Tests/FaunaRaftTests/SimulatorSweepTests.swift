import Testing
import RaftSimulator

/// The debug-sized sweep of the deterministic simulator (release sweeps: `tools/sim`).
/// Seeds are split into chunks so Swift Testing runs them in parallel.
@Suite struct SimulatorSweepTests {
    static let chunks = Array(0..<8)

    @Test(arguments: chunks)
    func threeNodes(chunk: Int) async {
        await sweep(nodes: 3, seeds: UInt64(chunk * 25 + 1)...UInt64(chunk * 25 + 25))
    }

    @Test(arguments: chunks)
    func fiveNodes(chunk: Int) async {
        await sweep(nodes: 5, seeds: UInt64(10_000 + chunk * 12 + 1)...UInt64(10_000 + chunk * 12 + 12))
    }

    func sweep(nodes: Int, seeds: ClosedRange<UInt64>) async {
        var options = SimOptions()
        options.nodeCount = nodes
        for seed in seeds {
            // Between seeds the thread goes back to the concurrency pool (one thread per core),
            // so tests that wait on processes and sockets are not starved by the sweep.
            await Task.yield()
            let report = Simulator(seed: seed, options: options).run()
            #expect(report.passed, "\(report)\nreplay: tools/sim --seed \(seed) --nodes \(nodes)")
            // The run must actually exercise the system, or passing means nothing.
            #expect(report.acknowledgedWrites > 15 && report.readsChecked > 10 && report.crashes > 0,
                    "seed \(seed) exercised too little: \(report)")
        }
    }

    @Test func sameSeedReplaysExactly() {
        let a = Simulator(seed: 77).run()
        let b = Simulator(seed: 77).run()
        #expect(a.description == b.description)
    }
}
