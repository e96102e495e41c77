import FaunaClient
import FaunaKV
import FaunaRPC
import FctlCore
import NIOConcurrencyHelpers

/// What every worker of a run shares, read-only: the parameters, the value, the key sampler.
struct BenchPlan: Sendable {
    let parameters: BenchParameters
    /// The values of the puts: random bytes drawn once per run; one value for every put by
    /// default, as etcd's benchmark does (`--values`).
    let values: [[UInt8]]
    /// The zipf sampler, when keys are zipf-distributed.
    let zipf: BenchZipf?
    /// For verified gets: the member keys pinned at the start (never saved).
    var trust: TrustedCluster? = nil
    /// `keepalive`: the leases granted by the preload phase.
    let leases = BenchLeases()

    /// The value written to key `keyIndex`.
    func value(for keyIndex: Int) -> [UInt8] { values[keyIndex % values.count] }

    /// A key index for the next request.
    func keyIndex(_ random: inout BenchRandom) -> Int {
        if let zipf { return zipf.sample(using: &random) }
        return Int.random(in: 0..<parameters.keySpace, using: &random)
    }

    /// The next request of the workload.
    func nextRequest(_ random: inout BenchRandom) -> BenchRequest {
        let kind: BenchRequest.Kind
        switch parameters.workload {
        case .put: kind = .put
        case .get: kind = .get
        case .txn: kind = .txn
        case .mixed: kind = random.nextUnit() < parameters.readRatio ? .get : .put
        case .keepalive: kind = .keepAlive
        }
        return BenchRequest(kind: kind, keyIndex: keyIndex(&random))
    }
}

/// One request to send.
struct BenchRequest: Sendable {
    enum Kind: Sendable { case put, get, txn, grant, keepAlive }
    var kind: Kind
    var keyIndex: Int
}

/// What a worker collected; merged across workers at the end of a phase.
struct BenchWorkerResult: Sendable {
    var latencies = BenchLatencies()
    var successes = 0
    var errorsByKind: [String: Int] = [:]
    var notes: [String: Int] = [:]

    mutating func merge(_ other: BenchWorkerResult) {
        latencies.merge(other.latencies)
        successes += other.successes
        errorsByKind.merge(other.errorsByKind, uniquingKeysWith: +)
        notes.merge(other.notes, uniquingKeysWith: +)
    }
}

/// One closed-loop client: claims a ticket, sends one request, waits for its answer, repeats.
struct BenchWorker: Sendable {
    let id: Int
    let plan: BenchPlan
    let client: FaunaClient
    let tickets: BenchTickets
    /// Preload: ticket n puts key n (every key once, in order).
    let isPreload: Bool

    func run() async -> BenchWorkerResult {
        var random = BenchRandom(seed: plan.parameters.seed ^ (UInt64(id + 1) &* 0xD1B5_4A32_D192_ED03))
        var result = BenchWorkerResult()
        var varintBuffer = [UInt8](repeating: 0, count: plan.parameters.keyBytes)
        while let ticket = tickets.claim() {
            let request: BenchRequest
            switch (isPreload, plan.parameters.workload) {
            case (true, .keepalive): request = BenchRequest(kind: .grant, keyIndex: ticket)
            case (true, _): request = BenchRequest(kind: .put, keyIndex: ticket)
            // Round-robin: each lease renewed once every `leases` keep-alives.
            case (false, .keepalive): request = BenchRequest(kind: .keepAlive, keyIndex: ticket % max(1, plan.leases.count))
            case (false, _): request = plan.nextRequest(&random)
            }
            var key: [UInt8] = []
            if request.kind == .grant || request.kind == .keepAlive {
                // No key: the request names a lease.
            } else if let fixed = plan.parameters.fixedKey {
                key = fixed
            } else if plan.parameters.keyFormat == .varint {
                // The preload writes keys in order with a fresh buffer each: no stale bytes.
                if isPreload { varintBuffer = [UInt8](repeating: 0, count: plan.parameters.keyBytes) }
                BenchKeys.writeVarint(request.keyIndex, into: &varintBuffer)
                key = varintBuffer
            } else {
                key = BenchKeys.key(request.keyIndex, width: plan.parameters.keyBytes)
            }
            let start = ContinuousClock.now
            let answer = await send(request, key)
            let elapsed = ContinuousClock.now - start
            switch answer {
            case .answered(let note):
                result.latencies.record(elapsed)
                result.successes += 1
                if let note { result.notes[note, default: 0] += 1 }
                tickets.finish(failed: false)
            case .failed(let kind):
                result.errorsByKind[kind, default: 0] += 1
                tickets.finish(failed: true)
            }
        }
        return result
    }

    enum Answer {
        /// Answered; `note` names an answer worth counting that is not an error.
        case answered(note: String?)
        /// Failed after the client's retries, or rejected: the error kind.
        case failed(kind: String)
    }

    func send(_ request: BenchRequest, _ key: [UInt8]) async -> Answer {
        do throws(FaunaClientError) {
            switch request.kind {
            case .put:
                return Self.answer(try await client.put(key, plan.value(for: request.keyIndex)))
            case .get:
                if let trust = plan.trust {
                    let verified = try await client.verifiedGet(key, trust: trust)
                    return .answered(note: verified == nil ? "getMiss" : nil)
                }
                let record = try await client.get(key, consistency: plan.parameters.consistency)
                return .answered(note: record == nil ? "getMiss" : nil)
            case .txn:
                let value = plan.value(for: request.keyIndex)
                let txn = KVTxn(compares: [KVCompare(key: key, .value(value), .equal)], success: [.put(KVPut(key: key, value: value))])
                return Self.answer(try await client.txn(txn))
            case .grant:
                plan.leases.append(try await client.grantLease(ttlSeconds: plan.parameters.leaseTTLSeconds).id)
                return .answered(note: nil)
            case .keepAlive:
                guard let id = plan.leases[request.keyIndex] else { return .failed(kind: "noLease") }
                _ = try await client.keepAliveOnce(id)
                return .answered(note: nil)
            }
        } catch {
            return .failed(kind: error.code.description)
        }
    }

    /// A write's answer: success (with a note for a failed compare or a replay) or a rejection.
    static func answer(_ result: KVApplyResult) -> Answer {
        switch result.outcome {
        case .success(let succeeded, _):
            return .answered(note: !succeeded ? "txnElse" : result.isReplay ? "replay" : nil)
        case .alreadyExists: return .failed(kind: "outcome.alreadyExists")
        case .compacted: return .failed(kind: "outcome.compacted")
        case .futureRevision: return .failed(kind: "outcome.futureRevision")
        case .invalid: return .failed(kind: "outcome.invalid")
        case .sessionExpired: return .failed(kind: "outcome.sessionExpired")
        }
    }
}

/// The leases a `keepalive` run granted, in grant order (appended by the preload's workers).
final class BenchLeases: Sendable {
    private let ids = NIOLockedValueBox<[UInt64]>([])

    func append(_ id: UInt64) { ids.withLockedValue { $0.append(id) } }
    var count: Int { ids.withLockedValue { $0.count } }
    var all: [UInt64] { ids.withLockedValue { $0 } }
    subscript(index: Int) -> UInt64? { ids.withLockedValue { index < $0.count ? $0[index] : nil } }
}
