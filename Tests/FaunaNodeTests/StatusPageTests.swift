import Testing

@testable import FaunaNode

/// The status page's alerts and latency quantiles, from data made here. The page itself is
/// tested in a headless browser on a real cluster (clients/python/tests/test_status_page.py).
@Suite struct StatusPageTests {
    static func node(_ id: UInt64, role: String = "follower", applied: UInt64 = 100, commit: UInt64 = 100) -> StatusPageData.Node {
        var n = StatusPageData.Node(id: id, name: "n\(id)", client: "10.0.0.\(id):7001", me: id == 1, reachable: true)
        n.role = role
        n.commit = commit
        n.applied = applied
        n.treeSize = applied
        n.checks = [.init(name: "disk", ok: true)]
        n.ready = true
        n.rootAgrees = true
        return n
    }

    static var healthy: StatusPageData {
        var p = StatusPageData(cluster: "c", node: "n1", auditIntervalSeconds: 300)
        p.nodes = [node(1, role: "leader"), node(2), node(3)]
        p.commonSize = 100
        return p
    }

    static func alerts(_ p: StatusPageData) -> [String] {
        ClusterMonitor.alerts(p, behindMax: 1_000).map { "\($0.level): \($0.text)" }
    }

    @Test func aHealthyClusterHasNoAlerts() {
        #expect(Self.alerts(Self.healthy).isEmpty)
    }

    @Test func eachProblemIsOneAlertOfItsLevel() {
        var p = Self.healthy
        p.nodes[2].reachable = false
        p.nodes[2].error = "connection refused"
        p.nodes[0].commit = 5_000
        p.nodes[0].applied = 5_000
        p.nodes[1].applied = 50
        p.nodes[0].checks = [.init(name: "disk", ok: false, detail: "300 MiB free, want ≥ 512 MiB")]
        p.nodes[1].rootAgrees = false
        let got = Self.alerts(p)
        #expect(got.contains("critical: n3 (10.0.0.3:7001) does not answer: connection refused"))
        #expect(got.contains("critical: disk nearly full on n1: 300 MiB free, want ≥ 512 MiB"))
        #expect(got.contains("critical: n2's tree root at size 100 differs from the majority's: its history departs"))
        #expect(got.contains("warning: n2 is 4950 entries behind the highest commit index"))
        #expect(got.count == 4, "\(got)")
        // Critical alerts come first.
        #expect(got.firstIndex { $0.hasPrefix("warning") }! > got.lastIndex { $0.hasPrefix("critical") }!)
    }

    @Test func noLeaderAndNoQuorum() {
        var p = Self.healthy
        p.nodes[0].role = "follower"
        for i in 1...2 { p.nodes[i].reachable = false }
        let got = Self.alerts(p)
        #expect(got.contains("critical: no member reports itself leader"))
        #expect(got.contains("critical: only 1 of 3 members answer: no quorum is reachable from n1"))
    }

    @Test func anAuditNamesTheNodeWhoseDigestDiffersOnce() {
        var p = Self.healthy
        p.audit = .init(
            at: 0, revision: 90, clean: false,
            problems: ["n2 state digest at revision 90 differs from the majority's (its key-value state changed outside the log)"],
            nodeProblems: [:], digestDiffers: ["n2"])
        #expect(Self.alerts(p) == ["critical: n2's state digest differs from the majority's (audit at revision 90)"])
        // An audit that could not run is a warning, not a verdict.
        p.audit = .init(at: 0, revision: nil, clean: false, problems: ["no node answered status"], nodeProblems: [:], digestDiffers: [])
        #expect(Self.alerts(p) == ["warning: the last audit could not run: no node answered status"])
    }

    @Test func latencyWindowQuantilesAreWithinABucket() {
        var w = LatencyWindow()
        #expect(w.quantileMilliseconds(0.99) == nil && w.meanMilliseconds == nil)
        for _ in 0..<980 { w.record(1_000_000) }  // 1 ms
        for _ in 0..<20 { w.record(50_000_000) }  // 50 ms
        #expect(w.count == 1_000)
        let p50 = w.quantileMilliseconds(0.5)!
        let p99 = w.quantileMilliseconds(0.99)!
        #expect(p50 >= 1 && p50 <= 1.2, "\(p50)")
        #expect(p99 >= 50 && p99 <= 60, "\(p99)")
        #expect(abs(w.meanMilliseconds! - 1.98) < 0.001)
        // Beyond the last bucket, and below 1 µs: counted, bounded.
        w.record(3_600_000_000_000)
        w.record(0)
        #expect(w.count == 1_002 && w.quantileMilliseconds(1.0)! > 20_000)
    }
}
