import Testing

@testable import NodeSimulator

/// The scripted pipeline orderings of `PipelineScenarios` (also run by `node-sim --scenarios`
/// against every node-level mutant).
@Suite struct PipelineScenarioTests {
    @Test(arguments: PipelineScenarios.runAll().map { [$0.name, $0.failure ?? ""] })
    func scenarioHolds(_ result: [String]) {
        #expect(result[1].isEmpty, "\(result[0]): \(result[1])")
    }
}
