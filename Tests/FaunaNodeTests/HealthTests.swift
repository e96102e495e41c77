import FaunaRaft
import FaunaStore
import Testing

@testable import FaunaPipeline

/// `/livez` and `/readyz` verdicts from the vitals (docs/METRICS.md "Health"), and the
/// propose-to-commit timer's bookkeeping. The HTTP port itself is tested on a real cluster
/// (clients/python/tests/test_node_http*.py).
@Suite struct HealthTests {
    static let now = NodeInstant(.seconds(100))

    /// A follower that knows its leader, caught up, with plenty of disk.
    static var healthy: NodeVitals {
        var v = NodeVitals()
        v.term = Term(3)
        v.leader = NodeID(1)
        v.commitIndex = LogIndex(1_000)
        v.appliedIndex = LogIndex(990)
        v.lastRound = NodeInstant(now.sinceOrigin - .milliseconds(20))
        var storage = StorageStats()
        storage.diskFreeBytes = 10 << 30
        storage.diskFreeBytesMin = 256 << 20
        v.storage = storage
        return v
    }

    static var limits: NodeHealth.Limits {
        var l = NodeHealth.Limits()
        l.diskFreeBytesMin = 512 << 20
        return l
    }

    func failing(_ h: NodeHealth) -> [String] { h.checks.filter { !$0.ok }.map(\.name) }

    @Test func aHealthyNodeIsLiveAndReady() {
        let ready = NodeHealth.ready(Self.healthy, now: Self.now, limits: Self.limits)
        #expect(ready.ok, "\(ready.text)")
        #expect(ready.text.hasSuffix("ok\n") && ready.text.contains("[+]leader ok"))
        #expect(NodeHealth.live(Self.healthy, now: Self.now, limits: Self.limits).ok)
    }

    @Test func noLeaderIsLiveButNotReady() {
        var v = Self.healthy
        v.leader = nil
        let ready = NodeHealth.ready(v, now: Self.now, limits: Self.limits)
        #expect(failing(ready) == ["leader"])
        #expect(ready.text.contains("[-]leader: no leader known in term 3"))
        #expect(ready.text.hasSuffix("not ok\n"))
        #expect(NodeHealth.live(v, now: Self.now, limits: Self.limits).ok)
    }

    @Test func applyingFarBehindCommitIsNotReady() {
        var v = Self.healthy
        v.commitIndex = LogIndex(200_000)
        v.appliedIndex = LogIndex(100_000)
        #expect(failing(NodeHealth.ready(v, now: Self.now, limits: Self.limits)) == ["applied"])
        v.appliedIndex = LogIndex(150_000)  // exactly the bound behind
        #expect(NodeHealth.ready(v, now: Self.now, limits: Self.limits).ok)
    }

    @Test func diskBelowTheReadyThresholdIsNotReady() {
        var v = Self.healthy
        v.storage?.diskFreeBytes = 400 << 20  // above the 256 MiB stop, below the 512 MiB ready bound
        let ready = NodeHealth.ready(v, now: Self.now, limits: Self.limits)
        #expect(failing(ready) == ["disk"])
        #expect(ready.text.contains("disk nearly full: 400 MiB free, want ≥ 512 MiB"))
        // The store's own stop threshold counts even with no ready bound configured.
        var noBound = Self.limits
        noBound.diskFreeBytesMin = 0
        v.storage?.diskFreeBytes = 100 << 20
        #expect(failing(NodeHealth.ready(v, now: Self.now, limits: noBound)) == ["disk"])
        v.storage?.diskFreeBytes = 10 << 30
        v.storage?.writeStopped = true
        #expect(failing(NodeHealth.ready(v, now: Self.now, limits: Self.limits)) == ["disk"])
    }

    @Test func aStalledOwnerIsNeitherLiveNorReady() {
        var v = Self.healthy
        v.lastRound = NodeInstant(Self.now.sinceOrigin - .seconds(6))
        #expect(failing(NodeHealth.live(v, now: Self.now, limits: Self.limits)) == ["loop"])
        #expect(failing(NodeHealth.ready(v, now: Self.now, limits: Self.limits)) == ["loop"])
        v.lastRound = nil
        #expect(failing(NodeHealth.live(v, now: Self.now, limits: Self.limits)) == ["loop"])
    }

    @Test func aStoppedNodeIsNotLive() {
        var v = Self.healthy
        v.stopped = "stopped on a disk error: disk full"
        let live = NodeHealth.live(v, now: Self.now, limits: Self.limits)
        #expect(failing(live) == ["stopped"])
        #expect(live.text.contains("[-]stopped: stopped on a disk error: disk full"))
    }

    @Test func proposalTimerTimesCommittedBatchesOnceAndStaysBounded() {
        var timer = ProposalTimer(capacity: 3)
        let t0 = NodeInstant(.seconds(1))
        timer.proposed(through: LogIndex(10), at: t0)
        timer.proposed(through: LogIndex(20), at: t0 + .milliseconds(5))
        var ages: [Duration] = []
        timer.committed(through: LogIndex(15), at: t0 + .milliseconds(8)) { ages.append($0) }
        #expect(ages == [.milliseconds(8)], "only the batch through 10 is committed")
        timer.committed(through: LogIndex(20), at: t0 + .milliseconds(9)) { ages.append($0) }
        #expect(ages == [.milliseconds(8), .milliseconds(4)])
        timer.committed(through: LogIndex(20), at: t0 + .milliseconds(10)) { ages.append($0) }
        #expect(ages.count == 2, "a batch is timed once")
        // Past its capacity the oldest batches are dropped, not timed.
        for i in 1...5 { timer.proposed(through: LogIndex(20 + UInt64(i)), at: t0) }
        var count = 0
        timer.committed(through: LogIndex(100), at: t0) { _ in count += 1 }
        #expect(count == 3)
        timer.proposed(through: LogIndex(101), at: t0)
        timer.forgetAll()
        timer.committed(through: LogIndex(200), at: t0) { _ in count += 1 }
        #expect(count == 3, "a lost leadership forgets its batches")
    }
}
