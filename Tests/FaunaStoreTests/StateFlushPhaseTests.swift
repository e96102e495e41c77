import FaunaRaft
import Testing

@testable import FaunaStore

/// Where a node's background state flushes fall (`Store.Options.stateFlushPhase`): once per
/// interval of `replayEntriesMax / 2` entries, at the node's phase into it.
@Suite("State flush phase")
struct StateFlushPhaseTests {
    /// The indexes at which a flush is requested when entries are applied `step` at a time
    /// from `start` to `end`.
    static func flushPoints(interval: UInt64, phase: Double, start: UInt64 = 0, end: UInt64, step: UInt64 = 1) -> [UInt64] {
        let offset = StateFlusher.offset(interval: interval, phase: phase)
        var last = LogIndex(start)
        var points: [UInt64] = []
        var i = start + step
        while i <= end {
            if StateFlusher.slot(of: LogIndex(i), interval: interval, offset: offset)
                > StateFlusher.slot(of: last, interval: interval, offset: offset)
            {
                points.append(i)
                last = LogIndex(i)
            }
            i += step
        }
        return points
    }

    @Test func phaseZeroFlushesAtMultiplesOfTheInterval() {
        #expect(Self.flushPoints(interval: 10, phase: 0, end: 35) == [10, 20, 30])
    }

    @Test func aPhaseMovesEveryFlushPoint() {
        #expect(Self.flushPoints(interval: 10, phase: 0.5, end: 35) == [5, 15, 25, 35])
        #expect(Self.flushPoints(interval: 10, phase: 0.99, end: 35) == [9, 19, 29])
        // After a reopen at 17 the next flush is still at the phase's point, not 10 later.
        #expect(Self.flushPoints(interval: 10, phase: 0.5, start: 17, end: 35) == [25, 35])
    }

    @Test func batchesRequestAtMostOneFlushPerInterval() {
        // Applied 7 at a time: each interval's point is passed once, by the batch that
        // crosses it, so requests stay at most an interval and a batch apart.
        let points = Self.flushPoints(interval: 10, phase: 0.5, end: 70, step: 7)
        #expect(points == [7, 21, 28, 35, 49, 56, 70])
        for (a, b) in zip(points, points.dropFirst()) { #expect(b - a <= 10 + 7) }
    }

    @Test func aPhaseOutsideZeroToOneIsRefused() throws {
        let dir = TemporaryDirectory()
        var options = Store.Options()
        options.stateFlushPhase = 1
        #expect(throws: StoreError.self) { try Store(path: dir.path + "/db", options: options) }
    }
}
