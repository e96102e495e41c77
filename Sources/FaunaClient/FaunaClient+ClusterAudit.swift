import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaVerify

/// What `audit` found: each node's state digest and tree root at one common revision, and
/// every node that differs from the majority, with where its history forks.
public struct ClusterAudit: Sendable {
    public struct Node: Sendable {
        public var endpoint: Endpoint
        /// The node's answer, or why it gave none.
        public var result: Result<StateDigestResponse, FaunaClientError>
        /// What is wrong with this node (empty: nothing found).
        public var problems: [String]
    }

    /// The revision (= tree size) compared: the smallest applied index among the nodes.
    public var revision: Revision
    public var nodes: [Node]
    /// Problems not tied to one node (no majority, nodes unreachable).
    public var problems: [String]

    /// True when every node answered and none differs.
    public var isClean: Bool { problems.isEmpty && nodes.allSatisfy(\.problems.isEmpty) }
}

extension FaunaClient {
    /// Asks every node for its state digest and tree root at a common revision (the smallest
    /// applied index), reports nodes that differ from the majority and, for a differing root,
    /// the first entry where that node's history departs (binary search on the roots of
    /// growing prefixes: O(log n) requests). With `checkJournal`, each node also re-hashes its
    /// whole journal against its stored tree (finds a journal edited at rest).
    public func audit(checkJournal: Bool) async throws(FaunaClientError) -> ClusterAudit {
        let statuses = await statusAll()
        let applied = statuses.compactMap { try? $0.1.get().appliedIndex }
        guard let revision = applied.min() else {
            throw FaunaClientError(.unavailable, "no node answered status")
        }
        // Revision 0 asks a node for its own applied index: nothing common to compare yet.
        guard revision.rawValue > 0 else {
            throw FaunaClientError(.unavailable, "a node has applied nothing yet (a learner waiting for its snapshot?); audit again once it has")
        }
        let at = Revision(revision.rawValue)
        // A digest reads the whole state (and the journal, with checkJournal): one attempt per
        // node, allowed the whole deadline, not the per-request timeout.
        let answers = await askEveryNode(
            .stateDigest(StateDigestRequest(revision: at, checkJournal: checkJournal)), within: configuration.deadline,
            attemptTimeout: configuration.deadline
        ) { answer in
            if case .stateDigestResponse(let digest) = answer, digest.revision == at { digest } else { nil }
        }
        var report = ClusterAudit(revision: at, nodes: answers.map { .init(endpoint: $0.0, result: $0.1, problems: []) }, problems: [])
        let answered = answers.compactMap { endpoint, result in (try? result.get()).map { (endpoint, $0) } }
        for (endpoint, result) in answers {
            if case .failure(let error) = result { report.problems.append("\(endpoint) did not answer: \(error)") }
        }
        let digestMajority = Self.majority(answered.map(\.1.digest), of: endpoints.count)
        let rootMajority = Self.majority(answered.map(\.1.treeRoot), of: endpoints.count)
        if digestMajority == nil { report.problems.append("no majority of nodes agrees on the state digest at revision \(at)") }
        if rootMajority == nil { report.problems.append("no majority of nodes agrees on the tree root at size \(at)") }
        let reference = answered.first { $0.1.treeRoot == rootMajority }?.0
        for i in report.nodes.indices {
            guard case .success(let answer) = report.nodes[i].result else { continue }
            let endpoint = report.nodes[i].endpoint
            var problems: [String] = []
            if let digestMajority, answer.digest != digestMajority {
                problems.append("state digest at revision \(at) differs from the majority's (its key-value state changed outside the log)")
            }
            if let rootMajority, answer.treeRoot != rootMajority {
                var where_ = ""
                if let reference, let entry = await firstDifferingEntry(endpoint, reference, size: at.rawValue) {
                    where_ = "; its history departs from the majority's at entry \(entry) (leaf \(entry - 1))"
                }
                problems.append("tree root at size \(at) is \(answer.treeRoot), the majority's is \(rootMajority)\(where_)")
            }
            if !answer.journalProblem.isEmpty {
                problems.append("journal re-hash: \(answer.journalProblem)")
            }
            report.nodes[i].problems = problems
        }
        return report
    }

    /// The first entry (1-based) whose prefix root differs between two nodes, by binary search
    /// over sizes 1…`size`; nil if the nodes stop answering.
    private func firstDifferingEntry(_ a: Endpoint, _ b: Endpoint, size: UInt64) async -> UInt64? {
        var low: UInt64 = 1, high = size  // the answer is in [low, high]
        while low < high {
            let mid = low + (high - low) / 2
            guard let ra = try? await signedTreeHead(of: a, treeSize: mid).head.rootHash,
                let rb = try? await signedTreeHead(of: b, treeSize: mid).head.rootHash
            else { return nil }
            if ra == rb { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// The value more than half of `total` nodes share, if any.
    public static func majority<T: Hashable>(_ values: [T], of total: Int) -> T? {
        var counts: [T: Int] = [:]
        for v in values { counts[v, default: 0] += 1 }
        return counts.first { $0.value * 2 > total }?.key
    }
}
