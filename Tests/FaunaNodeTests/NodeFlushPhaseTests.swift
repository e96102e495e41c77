import FaunaNode
import FaunaRaft
import Testing

/// Members of a cluster flush their state at different entries (`NodeSettings.stateFlushPhase`).
@Suite("Node flush phase")
struct NodeFlushPhaseTests {
    @Test func consecutiveNodeIDsGetPhasesApart() {
        let phases = (1...3).map { NodeSettings.stateFlushPhase(of: NodeID($0)) }
        for p in phases { #expect(p >= 0 && p < 1) }
        for i in 0..<3 {
            for j in (i + 1)..<3 { #expect(abs(phases[i] - phases[j]) >= 0.2, "phases \(phases)") }
        }
        #expect(NodeSettings.stateFlushPhase(of: NodeID(UInt64.max)) < 1)
    }
}
