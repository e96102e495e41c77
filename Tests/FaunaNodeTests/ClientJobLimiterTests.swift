import Testing

@testable import FaunaPipeline

/// The slots that bound client-caused jobs (digests, snapshot saves) on a node.
@Suite struct ClientJobLimiterTests {
    @Test func claimsUpToTheLimitThenRefusesUntilASlotIsGivenBack() {
        let limiter = ClientJobLimiter(stateDigestsMax: 2, snapshotSavesMax: 1)
        let first = limiter.claim(.stateDigest)
        let second = limiter.claim(.stateDigest)
        #expect(first != nil && second != nil)
        #expect(limiter.claim(.stateDigest) == nil, "a third digest got a slot")
        #expect(limiter.held(.stateDigest) == 2)
        // Kinds are counted apart: digests do not use up snapshot saves.
        let save = limiter.claim(.snapshotSave)
        #expect(save != nil)
        #expect(limiter.claim(.snapshotSave) == nil)
        first?.release()
        first?.release()  // a second release gives nothing back twice
        #expect(limiter.held(.stateDigest) == 1)
        let third = limiter.claim(.stateDigest)
        #expect(third != nil)
        #expect(limiter.held(.stateDigest) == 2)
        withExtendedLifetime((second, save, third)) {}
    }

    /// A job dropped with its slot (a closing queue discards it) gives the slot back.
    @Test func aDroppedSlotIsGivenBack() {
        let limiter = ClientJobLimiter(stateDigestsMax: 1, snapshotSavesMax: 1)
        do {
            let slot = limiter.claim(.stateDigest)
            withExtendedLifetime(slot) {
                #expect(slot != nil)
                #expect(limiter.claim(.stateDigest) == nil)
            }
        }
        #expect(limiter.held(.stateDigest) == 0)
        #expect(limiter.claim(.stateDigest) != nil)
    }

    /// Many threads claiming and releasing leave the count balanced (a lost update would leave
    /// slots held for ever) and never see more than the limit held. (The second rarely has a
    /// chance to fail on two cores; the unit tests above catch an off-by-one limit.)
    @Test func concurrentClaimsAndReleasesBalance() async {
        let limiter = ClientJobLimiter(stateDigestsMax: 2, snapshotSavesMax: 1)
        let peaks = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    var peak = 0
                    for _ in 0..<2_000 {
                        guard let slot = limiter.claim(.stateDigest) else { continue }
                        peak = max(peak, limiter.held(.stateDigest))
                        slot.release()
                    }
                    return peak
                }
            }
            var all: [Int] = []
            for await p in group { all.append(p) }
            return all
        }
        #expect(peaks.max() ?? 0 <= 2)
        #expect(limiter.held(.stateDigest) == 0)
    }
}
