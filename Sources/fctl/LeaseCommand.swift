import ArgumentParser
import FaunaClient
import FaunaKV
import FaunaRPC
import FctlCore
import Foundation

struct LeaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lease",
        abstract: "Grant, keep alive, revoke and inspect leases (keys that vanish with their owner).",
        discussion: """
            A key put with --lease ID is deleted when the lease is revoked, or when the leader \
            gets no keep-alive for its TTL (docs/KV-COMMANDS.md "Leases").
            """,
        subcommands: [Grant.self, KeepAlive.self, Revoke.self, TTL.self, List.self])

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Grant a lease of TTL seconds; prints its ID.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Seconds it lives without a keep-alive (1...31536000).") var ttl: UInt64
        @Option(help: "Its ID (default: chosen by the cluster).") var id: UInt64 = 0

        func run() async throws {
            let (wantTTL, wantID) = (ttl, id)
            let granted = try await withClient(global, doing: "lease grant") { client throws(FaunaClientError) in
                try await client.grantLease(ttlSeconds: wantTTL, id: wantID)
            }
            if global.json {
                global.printJSON(["id": granted.id, "ttl": granted.ttlSeconds])
            } else {
                print("lease \(granted.id) granted with TTL \(granted.ttlSeconds) s")
            }
        }
    }

    struct KeepAlive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "keep-alive",
            abstract: "Keep lease ID alive until interrupted (--once: one renewal). Exit 1 once it is gone.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: UInt64
        @Flag(help: "Renew once and exit.") var once = false

        func run() async throws {
            if once {
                let ttl = try await withClient(global, doing: "lease keep-alive") { client throws(FaunaClientError) in
                    try await client.keepAliveOnce(id)
                }
                if global.json { global.printJSON(["id": id, "ttl": ttl]) } else { print("lease \(id) kept alive, TTL \(ttl) s") }
                return
            }
            let client = try global.makeClient()
            let keeper = client.keepAlive(id)
            var printed = 0
            while !keeper.isEnded {
                if keeper.renewals > printed {
                    printed = keeper.renewals
                    emitLine(global.json ? global.jsonLine(["id": id, "renewals": printed]) : "lease \(id) kept alive (\(printed))")
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
            let failure = keeper.failure
            await client.close()
            if let failure { throw FctlError(failure, doing: "lease keep-alive") }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke lease ID: it and its keys are deleted.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: UInt64

        func run() async throws {
            let deleted = try await withClient(global, doing: "lease revoke") { client throws(FaunaClientError) in
                try await client.revokeLease(id)
            }
            if global.json { global.printJSON(["id": id, "deleted": deleted]) } else { print("lease \(id) revoked, \(deleted) keys deleted") }
        }
    }

    struct TTL: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ttl", abstract: "Print lease ID's TTL and the time the leader gives it (--keys: and its keys).")
        @OptionGroup var global: GlobalOptions
        @Argument var id: UInt64
        @Flag(help: "Also list its keys (at most 10,000).") var keys = false

        func run() async throws {
            let info = try await withClient(global, doing: "lease ttl") { client throws(FaunaClientError) in
                try await client.leaseTimeToLive(id, withKeys: keys)
            }
            if global.json {
                var object: [String: Any] = [
                    "id": info.id, "ttl": info.ttlSeconds, "remainingMs": info.remainingMilliseconds, "grantRevision": info.grantRevision,
                ]
                if keys {
                    object["keys"] = info.keys.map(global.show)
                    object["truncated"] = info.truncated
                }
                global.printJSON(object)
                return
            }
            print("lease \(info.id): TTL \(info.ttlSeconds) s, \(String(format: "%.1f", Double(info.remainingMilliseconds) / 1000)) s left, granted at revision \(info.grantRevision)")
            for key in info.keys { print(global.show(key)) }
            if info.truncated { printError("(more keys than \(LeaseInfo.keysMax))") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every lease: ID, TTL, time left.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let list = try await withClient(global, doing: "lease list") { client throws(FaunaClientError) in
                try await client.leases()
            }
            if global.json {
                global.printJSON(list.map { ["id": $0.id, "ttl": $0.ttlSeconds, "remainingMs": $0.remainingMilliseconds] as [String: Any] })
                return
            }
            for l in list { print("\(l.id)\tTTL \(l.ttlSeconds) s\t\(String(format: "%.1f", Double(l.remainingMilliseconds) / 1000)) s left") }
        }
    }
}
