import FaunaClient
import FaunaKV
import FaunaRPC
import FctlCore
import Foundation
import NIOConcurrencyHelpers
import NIOPosix

/// Runs one `fctl bench` workload: optional preload, then the measured phase (docs/CLI.md).
struct BenchRunner {
    let global: GlobalOptions
    let parameters: BenchParameters

    func run() async throws(FctlError) {
        let p = parameters
        let endpoints = try global.resolveEndpoints()
        // Every worker of a client instance may be in flight on one connection and hold one
        // write session: size both so the client neither backs off nor churns sessions (a
        // session dropped for want of room would leave a new session on the server per write).
        let workersPerClient = (p.clients + p.connections - 1) / p.connections
        let deadline = Duration.milliseconds(Int64(global.timeout * 1000))
        let tls = try global.tlsContexts()
        let configuration = FaunaClientConfiguration(
            deadline: deadline, requestTimeout: min(deadline, .seconds(3)),
            requestsInFlightMax: max(256, workersPerClient), idleSessionsMax: max(64, workersPerClient), tls: tls)
        // Client i's connections live on event loop i (round robin), and its workers run there
        // (`measure`): no thread hop between a worker and its connection.
        let loops = (0..<p.connections).map { _ in MultiThreadedEventLoopGroup.singleton.next() }
        let clients = loops.map { FaunaClient(endpoints: endpoints, configuration: configuration, group: $0) }
        let executors = loops.map { EventLoopTaskExecutor($0) }
        var random = BenchRandom(seed: p.seed)
        let values = (0..<p.distinctValues).map { _ in (0..<p.valueBytes).map { _ in UInt8.random(in: 0...255, using: &random) } }
        let zipf = p.distribution == .zipf ? BenchZipf(count: p.keySpace, exponent: BenchParameters.zipfExponent) : nil
        var plan = BenchPlan(parameters: p, values: values, zipf: zipf)
        if p.verify {
            do {
                plan.trust = try await clients[0].pinMembers(cluster: "bench")
            } catch {
                for client in clients { await client.close() }
                throw FctlError(error, doing: "bench get --verify: pinning the member keys")
            }
        }

        var preloadReport: BenchReport?
        if p.preload {
            let report = await measure(plan, clients, executors, isPreload: true)
            if !global.json { print(report.text(label: "preload")) }
            preloadReport = report
        }
        var watchers: BenchWatchers?
        if p.watchers > 0 {
            let endpoint: Endpoint
            if let text = p.watchEndpoint {
                guard let parsed = Endpoint(parsing: text) else { throw FctlError(.usage, "bench: --watch-endpoint \(text): want host:port") }
                endpoint = parsed
            } else {
                endpoint = endpoints[0]
            }
            do {
                watchers = try await BenchWatchers(p, endpoint: endpoint, tls: tls, timeout: .seconds(60))
            } catch {
                for client in clients { await client.close() }
                throw error
            }
        }
        let eventsBefore = watchers?.events ?? 0
        var report = await measure(plan, clients, executors, isPreload: false)
        if let watchers {
            report.figures.merge(await Self.watchFigures(watchers, since: eventsBefore, report, clients[0]), uniquingKeysWith: { $1 })
            await watchers.close()
        }
        if p.workload == .keepalive {
            report.figures.merge(await Self.leaseFigures(plan.leases, report, clients[0]), uniquingKeysWith: { $1 })
        }
        for client in clients { await client.close() }
        if global.json {
            var object = report.json
            if let preloadReport { object["preload"] = preloadReport.json }
            global.printJSON(object)
        } else {
            print(report.text(label: "bench \(p.workload.rawValue)"))
        }
        let failed = report.errors + (preloadReport?.errors ?? 0)
        if failed > 0 {
            throw FctlError(.notFound, "bench: \(failed) requests failed after the client's retries (errors by kind above); check the nodes' logs and `fctl status`")
        }
    }

    /// One phase: every key once in order (preload), or the workload until a bound is reached.
    func measure(_ plan: BenchPlan, _ clients: [FaunaClient], _ executors: [EventLoopTaskExecutor], isPreload: Bool) async -> BenchReport {
        let p = plan.parameters
        let tickets: BenchTickets
        if isPreload {
            tickets = BenchTickets(limit: p.workload == .keepalive ? p.leases : p.fixedKey == nil ? p.keySpace : 1, deadline: nil)
        } else {
            tickets = BenchTickets(
                limit: p.total, deadline: p.durationSeconds.map { .now + .milliseconds(Int64($0 * 1000)) })
        }
        let label = isPreload ? "preload" : "bench \(p.workload.rawValue)"
        let progress = Task { await Self.reportProgress(tickets, label: label) }
        let start = ContinuousClock.now
        let merged = await withTaskGroup(of: BenchWorkerResult.self) { group in
            for id in 0..<p.clients {
                let worker = BenchWorker(
                    id: id, plan: plan, client: clients[id % clients.count], tickets: tickets, isPreload: isPreload)
                group.addTask(executorPreference: executors[id % executors.count]) { await worker.run() }
            }
            var all = BenchWorkerResult()
            for await result in group { all.merge(result) }
            return all
        }
        let elapsed = ContinuousClock.now - start
        progress.cancel()
        await progress.value
        var reported = p
        if isPreload { reported.workload = .put }
        return BenchReport(
            parameters: reported, elapsedSeconds: elapsed.seconds, successes: merged.successes,
            errorsByKind: merged.errorsByKind, notes: merged.notes, latencies: merged.latencies)
    }

    /// What the watchers received during the measured phase, and how long they then took to
    /// receive everything up to the revision the phase ended at (at most 120 s).
    static func watchFigures(_ watchers: BenchWatchers, since before: Int, _ report: BenchReport, _ client: FaunaClient) async -> [String: Double] {
        let during = watchers.events - before
        var figures: [String: Double] = [
            "watchers": Double(report.parameters.watchers),
            "watchEventsDuringRun": Double(during),
            "watchEventsPerSecond": Double(during) / max(report.elapsedSeconds, 1e-9),
        ]
        do throws(FaunaClientError) {
            let revision = try await client.range(KVRangeRequest(range: KeyRange(start: [0], end: nil), limit: 1, isCountOnly: true)).revision
            // Every put of the run is an event for every watcher (all) or for one (slice).
            let p = report.parameters
            let expected = p.watchRange == .all ? report.successes * p.watchers : report.successes
            figures["watchEventsExpected"] = Double(expected)
            if let seconds = await watchers.waitCaughtUp(expected: expected, since: before, revision: revision.rawValue, timeout: .seconds(120)) {
                figures["watchCatchUpSeconds"] = seconds
            } else {
                printError("bench: the watchers had not received everything up to revision \(revision) 120 s after the run")
            }
        } catch {
            printError("bench: could not read the revision the run ended at: \(error)")
        }
        figures["watchEventsTotal"] = Double(watchers.events - before)
        if let failure = watchers.failure { printError("bench: a watcher failed: \(failure)") }
        return figures
    }

    /// How often each lease was renewed, and how many are alive at the leader after the run.
    static func leaseFigures(_ leases: BenchLeases, _ report: BenchReport, _ client: FaunaClient) async -> [String: Double] {
        var figures: [String: Double] = ["leases": Double(leases.count)]
        if report.operationsPerSecond > 0 {
            figures["leaseRenewIntervalSeconds"] = Double(leases.count) / report.operationsPerSecond
        }
        do throws(FaunaClientError) {
            let alive = Set(try await client.leases().map(\.id))
            figures["leasesAlive"] = Double(leases.all.filter { alive.contains($0) }.count)
        } catch {
            printError("bench: could not list the leases after the run: \(error)")
        }
        return figures
    }

    /// Prints done, ops/s over the last second and errors on stderr once a second until cancelled.
    static func reportProgress(_ tickets: BenchTickets, label: String) async {
        var last = tickets.counts
        var lastTime = ContinuousClock.now
        let goal = tickets.limit.map { "/\($0)" } ?? ""
        while true {
            do { try await Task.sleep(for: .seconds(1)) } catch { return }
            let now = ContinuousClock.now
            let counts = tickets.counts
            let rate = Double(counts.done - last.done) / max((now - lastTime).seconds, 1e-9)
            printError("\(label): \(counts.done)\(goal) ops, \(Int(rate.rounded())) ops/s, \(counts.errors) errors")
            (last, lastTime) = (counts, now)
        }
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

/// Shared by a phase's workers: request tickets (the count bound), the time bound and the
/// progress counters. One short lock per claim and per answer; latencies stay per worker.
final class BenchTickets: Sendable {
    struct Counts: Sendable {
        var issued = 0
        var done = 0
        var errors = 0
    }

    /// Tickets issued at most (nil: no count bound).
    let limit: Int?
    /// No ticket is issued at or after this instant (nil: no time bound).
    let deadline: ContinuousClock.Instant?
    private let box = NIOLockedValueBox(Counts())

    init(limit: Int?, deadline: ContinuousClock.Instant?) {
        precondition(limit != nil || deadline != nil, "bench phase: got neither a count nor a time bound")
        self.limit = limit
        self.deadline = deadline
    }

    /// The next ticket number (0, 1, ...), or nil once a bound is reached.
    func claim() -> Int? {
        if let deadline, ContinuousClock.now >= deadline { return nil }
        return box.withLockedValue { counts in
            if let limit, counts.issued >= limit { return nil }
            defer { counts.issued += 1 }
            return counts.issued
        }
    }

    /// Counts one answered or failed request.
    func finish(failed: Bool) {
        box.withLockedValue { counts in
            counts.done += 1
            if failed { counts.errors += 1 }
        }
    }

    var counts: Counts { box.withLockedValue { $0 } }
}
