import Testing

@testable import NodeSimulator

/// The debug-sized sweep of the node simulator: whole pipelines, every fault (release sweeps:
/// `tools/sim --node`, docs/TESTING.md "Node simulator"). A failure prints the seed and the
/// command that replays it.
@Suite struct NodeSimulatorSweepTests {
    @Test(arguments: [3, 5]) func seedsPass(nodes: Int) async {
        let seeds: ClosedRange<UInt64> = nodes == 3 ? 1...150 : 1...75
        var failures: [String] = []
        for seed in seeds {
            // Gives the thread back between seeds: the concurrency pool has one thread per core,
            // and tests that wait on processes and sockets meanwhile must not starve (on two
            // cores, a minute of uninterrupted sweeps made their 60 s deadlines expire).
            await Task.yield()
            var options = NodeSimOptions()
            options.seed = seed
            options.nodes = nodes
            do { _ = try Simulation(options: options).run() } catch {
                failures.append("seed \(seed): \(error)\n  replay: tools/sim --node --nodes \(nodes) --seed \(seed)")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) of \(seeds.count) seeds failed:\n\(failures.joined(separator: "\n"))")
    }

    /// The same seed replays the same run: the report (every count) is identical.
    @Test func aSeedReplaysExactly() throws {
        var options = NodeSimOptions()
        options.seed = 7
        let first = try Simulation(options: options).run()
        let second = try Simulation(options: options).run()
        #expect(first.description == second.description)
        #expect(first.operations > 50 && first.acknowledgedWrites > 10, "\(first)")
    }
}
