/// What one call may still spend on retries, and what its attempts have seen so far.
struct RetryBudget: Sendable {
    /// When the call gives up.
    let deadline: ContinuousClock.Instant
    /// Attempts left.
    var attemptsLeft: Int
    /// Failed attempts so far (drives the backoff).
    var failures = 0
    /// An attempt ended without knowing whether the node ran the request (a timeout, or the
    /// connection closed after sending): a write may have committed.
    var isAmbiguous = false
    /// The last failure, reported when the budget runs out.
    var lastFailure: FaunaClientError?
    /// Overrides the configuration's per-request timeout (still capped by the deadline).
    var attemptTimeout: Duration?

    init(deadline: ContinuousClock.Instant, attemptsMax: Int) {
        precondition(attemptsMax >= 1, "attemptsMax: got \(attemptsMax), want >= 1")
        self.deadline = deadline
        self.attemptsLeft = attemptsMax
    }

    /// Time left before the deadline, or nil if none is.
    var remaining: Duration? {
        let left = deadline - ContinuousClock.now
        return left > .zero ? left : nil
    }

    /// The pause before the next attempt: exponential from `initial` up to `max`, drawn from
    /// [d/2, d] (jitter, so clients retrying together spread out).
    static func backoff(failures: Int, initial: Duration, max: Duration) -> Duration {
        let exponent = Swift.min(failures, 20)
        let doubled = initial * (1 << exponent)
        let ceiling = doubled > max || doubled < .zero ? max : doubled
        let ceilingNs = ceiling.components.seconds * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000
        guard ceilingNs > 1 else { return ceiling }
        var generator = SystemRandomNumberGenerator()
        return .nanoseconds(Int64.random(in: ceilingNs / 2...ceilingNs, using: &generator))
    }
}
