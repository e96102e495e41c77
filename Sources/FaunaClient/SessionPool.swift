import FaunaKV
import NIOConcurrencyHelpers

/// Write sessions (Raft thesis §6.3) not in use. Each write in flight owns one session, so
/// concurrent writes never share a sequence, and a retry resends its own session and sequence.
final class SessionPool: Sendable {
    /// A session and the sequence number its next write will use.
    struct Lease: Hashable, Sendable {
        var clientID: ClientID
        var next: SequenceNumber
        var session: ClientSession { ClientSession(clientID: clientID, sequence: next) }
    }

    private let idle: NIOLockedValueBox<[Lease]>
    private let idleMax: Int

    init(idleMax: Int) {
        precondition(idleMax >= 0, "idleSessionsMax: got \(idleMax), want >= 0")
        self.idle = NIOLockedValueBox([])
        self.idleMax = idleMax
    }

    /// An idle session, or a new one with a random client ID (starting at `.first`).
    func take() -> Lease {
        idle.withLockedValue { $0.popLast() } ?? Self.fresh()
    }

    /// A new session: a random non-zero 64-bit client ID, sequence `.first`.
    static func fresh() -> Lease {
        var generator = SystemRandomNumberGenerator()
        var id: UInt64 = 0
        while id == 0 { id = generator.next() }
        return Lease(clientID: ClientID(id), next: .first)
    }

    /// Returns a session whose write has finished (or was given up): its next write uses the
    /// following sequence number. Gaps are allowed, so a write given up on never reuses a number.
    func giveBack(_ lease: Lease) {
        let next = Lease(clientID: lease.clientID, next: SequenceNumber(lease.next.rawValue + 1))
        idle.withLockedValue { sessions in
            if sessions.count < idleMax { sessions.append(next) }
        }
    }

    /// Idle sessions now (tests).
    var idleCount: Int { idle.withLockedValue { $0.count } }
}
