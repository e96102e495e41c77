import FaunaKV
import FaunaRPC
import FaunaRaft
import NIOConcurrencyHelpers

/// The writes and membership changes this node proposed, by log index, until each is answered.
/// Shared by the owner thread and the apply stage, so that an applied write is answered where
/// it is applied, without a wake-up of the owner in between (issue 19, "fewer hand-offs"):
///
/// - the owner registers each proposal with its term and deadline (`register`), answers those
///   past their deadline (`expire`), those an install or a stop ends (`removeAll`), and the
///   membership changes once applied (`takeMemberChanges`: their answer is the owner's member
///   list);
/// - the apply stage, after each successful apply, answers the writes it applied and any
///   proposal whose index now holds another leader's entry (`settle`).
///
/// Whoever removes a proposal under the lock answers it, after releasing the lock: each
/// request is answered exactly once, whichever comes first. The registry holds at most what
/// the owner admits (`PipelineSettings.pendingProposalsMax`, checked against `count`).
public final class ProposalRegistry: Sendable {
    struct Proposal: Sendable {
        enum Kind: Sendable { case write, memberChange }
        var kind: Kind
        var term: Term
        var deadline: NodeInstant
        var context: RPCRequestContext
    }

    /// An applied entry, as `settle` matches it to a proposal.
    struct Applied {
        var index: LogIndex
        var term: Term
        var result: KVApplyResult?
    }

    private struct State {
        var byIndex: [LogIndex: Proposal] = [:]
        /// The leader as the owner last saw it, for the hint of a "replaced" answer.
        var leader: NodeID?
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// Proposals waiting for an answer.
    public var count: Int { state.withLockedValue { $0.byIndex.count } }

    /// The leader the owner last saw (set by the owner whenever its soft state changes).
    var leader: NodeID? {
        get { state.withLockedValue { $0.leader } }
        set { state.withLockedValue { $0.leader = newValue } }
    }

    /// Records a proposal at `index`; returns the one it replaces, if any (an older proposal of
    /// this node whose entry a later leader's log overwrote), for the caller to answer.
    func register(_ proposal: Proposal, at index: LogIndex) -> Proposal? {
        state.withLockedValue { $0.byIndex.updateValue(proposal, forKey: index) }
    }

    /// Removes and returns the proposals whose deadline is before `now`.
    func expire(before now: NodeInstant) -> [(index: LogIndex, proposal: Proposal)] {
        state.withLockedValue { state in
            guard !state.byIndex.isEmpty else { return [] }
            var out: [(index: LogIndex, proposal: Proposal)] = []
            for (index, p) in state.byIndex where p.deadline < now { out.append((index, p)) }
            for item in out { state.byIndex[item.index] = nil }
            return out
        }
    }

    /// Removes and returns every proposal.
    func removeAll() -> [Proposal] {
        state.withLockedValue { state in
            defer { state.byIndex = [:] }
            return Array(state.byIndex.values)
        }
    }

    /// Removes and returns the membership changes still waiting at `indexes` (those `settle`
    /// left for the owner; a timeout may have answered some meanwhile).
    func takeMemberChanges(at indexes: [LogIndex]) -> [Proposal] {
        guard !indexes.isEmpty else { return [] }
        return state.withLockedValue { state in
            indexes.compactMap { index in
                guard state.byIndex[index]?.kind == .memberChange else { return nil }
                return state.byIndex.removeValue(forKey: index)
            }
        }
    }

    /// After the apply stage applied `applied`: gathers into `answers` the answer to each write
    /// proposed at one of their indexes — its result, or "replaced" if the entry there is of
    /// another term (another leader's) — and to each membership change replaced likewise.
    /// Returns the indexes of the membership changes that were applied: the owner answers them
    /// (`takeMemberChanges`) with the member list it acts on.
    func settle(
        _ applied: [Applied], into answers: inout RPCResponseBatch, leaderHint: (NodeID) -> LeaderHint
    ) -> [LogIndex] {
        guard let first = applied.first?.index else { return [] }
        var taken: [(entry: Applied, proposal: Proposal)] = []
        var memberChanges: [LogIndex] = []
        func take(_ entry: Applied, from state: inout State) {
            guard let p = state.byIndex[entry.index] else { return }
            if p.kind == .memberChange && p.term == entry.term {
                memberChanges.append(entry.index)
                return
            }
            state.byIndex[entry.index] = nil
            taken.append((entry, p))
        }
        let leader: NodeID? = state.withLockedValue { state in
            guard !state.byIndex.isEmpty else { return nil }
            if state.byIndex.count < applied.count {
                // Fewer proposals than entries (other nodes' proposals, a big group): look the
                // proposals up among the entries (contiguous, in order) rather than the reverse.
                for index in state.byIndex.keys.filter({ $0 >= first }) {
                    let offset = index.rawValue - first.rawValue
                    guard offset < UInt64(applied.count), applied[Int(offset)].index == index else { continue }
                    take(applied[Int(offset)], from: &state)
                }
            } else {
                for entry in applied { take(entry, from: &state) }
            }
            return state.leader
        }
        // Outside the lock: ordering and encoding the answers.
        taken.sort { $0.entry.index < $1.entry.index }
        for (entry, p) in taken {
            guard p.term == entry.term else {
                answers.add(.error(RPCErrorResponse(
                    .notLeader, Self.replaced(entry.index), leaderHint: leader.map(leaderHint))), for: p.context)
                continue
            }
            if let result = entry.result {
                answers.add(.writeResponse(result), for: p.context)
            } else {
                answers.add(.error(RPCErrorResponse(.internalError, "entry \(entry.index) applied without a result")), for: p.context)
            }
        }
        return memberChanges.sorted()
    }

    /// The answer's text for a proposal whose entry was replaced by another leader's.
    static func replaced(_ index: LogIndex) -> String {
        "entry \(index) was replaced after a leader change; retry (same session: applied once)"
    }
}
