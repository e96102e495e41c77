import Testing

@testable import NodeSimulator

/// The debug-sized sweep of the node simulator: whole pipelines, every fault (release sweeps:
/// `tools/sim --node`, docs/TESTING.md "Node simulator"). A failure prints the seed and the
/// command that replays it.
@Suite struct NodeSimulatorSweepTests {
    /// Seeds 1...150 with 3 nodes and 1...75 with 5, in chunks of about the same work, so
    /// that the two cores stay busy to the end of the test run: as one case per node count,
    /// the 3-node sweep ran alone on one core after everything else had finished.
    static let chunks: [(nodes: Int, seeds: ClosedRange<UInt64>)] = [
        (3, 1...50), (3, 51...100), (3, 101...150), (5, 1...25), (5, 26...50), (5, 51...75),
    ]

    @Test(arguments: chunks) func seedsPass(nodes: Int, seeds: ClosedRange<UInt64>) async {
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
