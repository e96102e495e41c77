import ArgumentParser
import FaunaClient
import FaunaKV
import FaunaRPC
import FaunaVerify
import FctlCore
import Foundation

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the changes to KEY, a prefix (--prefix) or [KEY, END) as they commit.",
        discussion: """
            One line per event: PUT<TAB>REVISION<TAB>KEY<TAB>VALUE or DELETE<TAB>REVISION<TAB>KEY (with \
            --prev-value a last column: the value before, or - if the key did not exist). With --json, \
            one object per event. Runs until interrupted, until --count events, or until --until-rev is \
            passed. --rev starts in the past (changes kept since the last compaction); without it the \
            watch starts after the serving node's current revision. The watch survives node failures and \
            leader changes: it moves to another node and resumes where it stopped, with no event lost or \
            repeated (docs/PROTOCOL.md "Watch"). Exits 4 (rejected) when the start revision is compacted.
            """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The key, or the start of the range.") var key: String
    @Argument(help: "The end of the range (exclusive).") var end: String?
    @Flag(help: "Every key that begins with KEY.") var prefix = false
    @Option(name: .customLong("rev"), help: "Start at this revision (its changes included).") var revision: UInt64?
    @Flag(name: .customLong("prev-value"), help: "Also print each key's value before the change.") var prevValue = false
    @Flag(name: .customLong("no-put"), help: "Leave put events out.") var noPut = false
    @Flag(name: .customLong("no-delete"), help: "Leave delete events out.") var noDelete = false
    @Flag(help: "Print a PROGRESS<TAB>REVISION line when nothing changed for a while.") var progress = false
    @Option(help: "Exit after this many events.") var count: Int?
    @Option(name: .customLong("until-rev"), help: "Exit once every change up to this revision was printed.") var untilRevision: UInt64?
    @Flag(help: "Prove each batch of events before printing it: each is among its entry's committed effects, the entries are leaves of a tree head signed by a majority of members, and that head extends the trusted state (docs/AUDIT.md §14). Exit 6 if one is not.")
    var verify = false
    @OptionGroup var audit: AuditOptions

    func validate() throws {
        if prefix && end != nil { throw ValidationError("give END or --prefix, not both") }
        if noPut && noDelete { throw ValidationError("--no-put and --no-delete together leave nothing to watch") }
        if let count, count < 1 { throw ValidationError("--count \(count): want >= 1") }
        if let revision, revision < 1 { throw ValidationError("--rev \(revision): want >= 1") }
        if verify && prevValue { throw ValidationError("--verify proves the changes, not the previous values: drop --prev-value") }
    }

    func run() async throws {
        let keyBytes = try global.bytes(key, "key")
        let range: KeyRange =
            prefix ? .prefix(keyBytes) : try end.map { KeyRange(start: keyBytes, end: try global.bytes($0, "end key")) } ?? .single(keyBytes)
        if let end = range.end, !range.start.lexicographicallyPrecedes(end) {
            throw FctlError(.usage, "the range [\(key), \(self.end ?? "")) is empty: END must sort after KEY")
        }
        var options: WatchRequest.Options = []
        if prevValue { options.insert(.prevValue) }
        if noPut { options.insert(.noPut) }
        if noDelete { options.insert(.noDelete) }
        if progress { options.insert(.progressNotify) }
        var settings = WatchOptions(endpoint: try audit.servingNode(global))
        settings.reconnectDeadline = .milliseconds(Int64(max(global.timeout, 60) * 1000))
        let client = try global.makeClient()
        var trusted: (store: TrustStore, trust: TrustedCluster)?
        if verify {
            let (store, trust, pinned) = try await audit.loadOrPin(client, global)
            if pinned { printError(pinNote(trust, store)) }
            trusted = (store, trust)
        }
        let watch = client.watch(range, from: revision ?? 0, options: options, settings)
        var printed = 0
        do {
            loop: for try await batch in watch {
                if batch.events.isEmpty, progress {
                    emitLine(global.json ? global.jsonLine(["progress": batch.completeThrough]) : "PROGRESS\t\(batch.completeThrough)")
                }
                var proven: VerifiedEvents?
                if let (store, trust) = trusted, !batch.events.isEmpty {
                    let node = batch.servedBy ?? client.endpoints[0]
                    let verified = try await client.verifyEvents(batch.events, servedBy: node, trust: trust)
                    do { try store.save(verified.trust) } catch { throw FctlError(error, doing: "saving the trusted state") }
                    trusted = (store, verified.trust)
                    proven = verified
                    if !global.json {
                        let revisions = verified.revisions
                        printError(
                            "verified: revision\(revisions.count == 1 ? " \(revisions[0])" : "s \(revisions.first!)–\(revisions.last!)") from \(node): "
                                + "committed effects of their entries, leaves of tree size \(verified.head.head.treeSize) signed by "
                                + verified.signers.map { "\($0)" }.joined(separator: ", "))
                    }
                }
                for event in batch.events where untilRevision.map({ event.revision <= $0 }) ?? true {
                    emitLine(line(event, proven: proven))
                    printed += 1
                    if let count, printed >= count { break loop }
                }
                if let untilRevision, batch.completeThrough >= untilRevision { break loop }
            }
        } catch let error as FaunaClientError {
            watch.cancel()
            await client.close()
            throw FctlError(error, doing: verify ? "watch --verify" : "watch")
        } catch {
            watch.cancel()
            await client.close()
            throw error
        }
        watch.cancel()
        await client.close()
    }

    private func line(_ event: WatchEvent, proven: VerifiedEvents?) -> String {
        if global.json {
            var object: [String: Any] = [
                "type": event.kind == .put ? "put" : "delete", "revision": event.revision, "key": global.show(event.key),
            ]
            if let record = event.record {
                object["value"] = global.show(record.value)
                object["createRevision"] = record.createRevision.rawValue
                object["version"] = record.version
            }
            if prevValue { object["prevValue"] = event.previous.map { global.show($0.value) } ?? NSNull() }
            if let proven {
                object["verified"] = [
                    "treeSize": proven.head.head.treeSize, "rootHash": "\(proven.head.head.rootHash)",
                    "signers": proven.signers.map { "\($0)" },
                ] as [String: Any]
            }
            return global.jsonLine(object)
        }
        var fields = [event.kind == .put ? "PUT" : "DELETE", "\(event.revision)", global.show(event.key)]
        if let record = event.record { fields.append(global.show(record.value)) }
        if prevValue { fields.append(event.previous.map { global.show($0.value) } ?? "-") }
        return fields.joined(separator: "\t")
    }
}
