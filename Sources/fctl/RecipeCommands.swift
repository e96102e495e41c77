import ArgumentParser
import FaunaClient
import FaunaKV
import FaunaRPC
import FctlCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

struct LockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock",
        abstract: "Run COMMAND while holding the lock NAME (a lease-backed queue: first come, first served).",
        discussion: """
            Example: fctl lock backups -- tools/backup.sh. Waits for the lock, runs the command with \
            this terminal, releases the lock (revokes its lease) when it ends, and exits with its status. \
            If fctl dies, the lease expires and the next waiter gets the lock within --ttl plus an election \
            timeout (docs/KV-COMMANDS.md "Locks and elections"). Exit 3 if the lock was not got before --wait.
            """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The lock's name (a key prefix: NAME/ holds the queue).") var name: String
    @Option(help: "The lease's TTL in seconds.") var ttl: UInt64 = 10
    @Option(help: "Give up waiting after this many seconds (default: wait for ever).") var wait: Double?
    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.") var command: [String] = []

    func validate() throws {
        if command.isEmpty { throw ValidationError("give the command to run after --, e.g. fctl lock NAME -- make deploy") }
        if ttl < 2 || ttl > 3600 { throw ValidationError("--ttl \(ttl): want 2...3600") }
    }

    func run() async throws {
        let nameBytes = try global.bytes(name, "lock name")
        let client = try global.makeClient()
        let held: FaunaLease
        do {
            held = try await client.lock(nameBytes, ttlSeconds: ttl, deadline: wait.map { .milliseconds(Int64($0 * 1000)) })
        } catch {
            await client.close()
            throw FctlError(error, doing: "lock \(name)")
        }
        printError("fctl: locked \(name) (lease \(held.lease), revision \(held.revision))")
        let status: Int32
        do {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = command
            try process.run()
            process.waitUntilExit()
            status = process.terminationStatus
        } catch {
            await held.release()
            await client.close()
            throw FctlError(.usage, "lock \(name): cannot run \(command.joined(separator: " ")): \(error)")
        }
        let stillHeld = held.isAlive
        await held.release()
        await client.close()
        if !stillHeld { printError("fctl: warning: the lease of \(name) expired while the command ran; the lock was not held to the end") }
        if status != 0 { throw ExitCode(status) }
    }
}

struct ElectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "elect",
        abstract: "Campaign in the election NAME with VALUE and lead until interrupted; or --listen to who leads.",
        discussion: """
            Campaigning blocks until this candidate leads (the earliest candidate still alive), prints \
            `elected NAME = VALUE`, then leads until SIGINT/SIGTERM or --for seconds, and resigns (revokes \
            its lease). --listen prints the leader's value now and on every change (--count: after that many \
            lines). docs/KV-COMMANDS.md "Locks and elections".
            """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The election's name (a key prefix).") var name: String
    @Argument(help: "This candidate's value (what --listen prints while it leads).") var value: String?
    @Flag(help: "Print who leads, and every change.") var listen = false
    @Option(name: .customLong("for"), help: "Lead for this many seconds, then resign.") var seconds: Double?
    @Option(help: "With --listen: exit after this many lines.") var count: Int?
    @Option(help: "The lease's TTL in seconds.") var ttl: UInt64 = 10

    func validate() throws {
        if listen == (value != nil) { throw ValidationError("give VALUE to campaign, or --listen to follow who leads") }
        if ttl < 2 || ttl > 3600 { throw ValidationError("--ttl \(ttl): want 2...3600") }
    }

    func run() async throws {
        let nameBytes = try global.bytes(name, "election name")
        let client = try global.makeClient()
        if listen { return try await follow(nameBytes, client) }
        let valueBytes = try global.bytes(value!, "value")
        let held: FaunaLease
        do {
            held = try await client.campaign(nameBytes, value: valueBytes, ttlSeconds: ttl)
        } catch {
            await client.close()
            throw FctlError(error, doing: "elect \(name)")
        }
        emitLine(global.json ? global.jsonLine(["elected": true, "lease": held.lease, "revision": held.revision.rawValue]) : "elected \(name) = \(value!)")
        let stop = SignalLatch()
        let end = seconds.map { ContinuousClock.now + .milliseconds(Int64($0 * 1000)) }
        while !stop.isSet && held.isAlive && end.map({ ContinuousClock.now < $0 }) ?? true {
            try? await Task.sleep(for: .milliseconds(100))
        }
        let lost = !held.isAlive
        await held.release()
        await client.close()
        if lost { throw FctlError(.unavailable, "elect \(name): the lease expired (no keep-alive reached the leader for \(ttl) s): no longer leading") }
        emitLine(global.json ? global.jsonLine(["resigned": true]) : "resigned \(name)")
    }

    private func follow(_ name: [UInt8], _ client: FaunaClient) async throws {
        var printed = 0
        var last: [UInt8]??
        let prefix = name + [UInt8(ascii: "/")]
        do {
            while count.map({ printed < $0 }) ?? true {
                // The candidates, oldest first: the first leads.
                let result = try await client.range(KVRangeRequest(range: .prefix(prefix)))
                let leader = result.records.min { $0.record.createRevision < $1.record.createRevision }
                if last == nil || last! != leader?.record.value {
                    last = .some(leader?.record.value)
                    let value: Any = leader.map { global.show($0.record.value) } ?? NSNull()
                    emitLine(global.json ? global.jsonLine(["leader": value]) : leader.map { global.show($0.record.value) } ?? "(no leader)")
                    printed += 1
                    continue
                }
                // Wait for a change under the prefix after that read, then look again.
                let watch = client.watch(.prefix(prefix), from: result.revision.rawValue + 1)
                for try await batch in watch where !batch.events.isEmpty { break }
                watch.cancel()
            }
        } catch let error as FaunaClientError {
            await client.close()
            throw FctlError(error, doing: "elect --listen")
        }
        await client.close()
    }
}

/// Set once SIGINT or SIGTERM arrives (a leader resigns cleanly instead of dying with its lease).
final class SignalLatch: @unchecked Sendable {
    private let sources: [DispatchSourceSignal]
    private let flag = NSLock()
    private var set = false

    init() {
        var made: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig)
            made.append(source)
        }
        sources = made
        for source in sources {
            source.setEventHandler { [weak self] in self?.flag.withLock { self?.set = true } }
            source.resume()
        }
    }

    var isSet: Bool { flag.withLock { set } }
}
