import ArgumentParser
import FaunaClient
import FaunaKV
import FaunaRPC
import FctlCore
import Foundation

/// The branch results of a successful write, or the fctl error for its domain outcome.
func successResults(_ result: KVApplyResult, _ global: GlobalOptions, _ action: String) throws(FctlError) -> (succeeded: Bool, results: [KVOperationResult]) {
    switch result.outcome {
    case .success(let succeeded, let results): return (succeeded, results)
    case .alreadyExists(let key): throw FctlError(.notFound, "\(action): key \(global.show(key)) exists; nothing written")
    case .compacted(let requested, let compacted):
        throw FctlError(.rejected, "\(action) rejected: revision \(requested) is compacted (compacted up to \(compacted)); use a revision >= \(compacted)")
    case .futureRevision(let requested, let current):
        throw FctlError(.rejected, "\(action) rejected: revision \(requested) is in the future (current \(current))")
    case .invalid(let error): throw FctlError(.rejected, "\(action) rejected by the server: \(error)")
    case .sessionExpired(let sequence, _): throw FctlError(.internalError, "\(action): session sequence \(sequence) expired; the result is unknown")
    }
}

func replayNote(_ result: KVApplyResult) -> String { result.isReplay ? " (replay of an earlier attempt)" : "" }

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set KEY to VALUE (VALUE - reads stdin, at most 1 MiB).",
        discussion: "Prints: put KEY → revision N. Exit 1 if --if-absent found the key.")
    @OptionGroup var global: GlobalOptions
    @Argument var key: String
    @Argument var value: String
    @Flag(name: .customLong("if-absent"), help: "Write only if the key does not exist.") var ifAbsent = false
    @Option(help: "Attach the key to this lease: it is deleted when the lease is revoked or expires (`fctl lease`).") var lease: UInt64?

    func run() async throws {
        let keyBytes = try global.bytes(key, "key")
        let valueBytes = value == "-" ? try readStdin() : try global.bytes(value, "value")
        if lease == 0 { throw FctlError(.usage, "--lease 0: want the ID of a lease (`fctl lease grant TTL`)") }
        let result = try await withClient(global, doing: "put") { client throws(FaunaClientError) in
            try await client.put(keyBytes, valueBytes, ifAbsent: ifAbsent, lease: lease ?? 0)
        }
        _ = try successResults(result, global, "put")
        if global.json {
            global.printJSON(["key": global.show(keyBytes), "revision": result.revision.rawValue, "isReplay": result.isReplay])
        } else {
            print("put \(global.show(keyBytes)) → revision \(result.revision)\(replayNote(result))")
        }
    }

    /// Stdin, decoded like an argument (raw bytes in text mode), at most `KVLimits.valueBytesMax`.
    func readStdin() throws(FctlError) -> [UInt8] {
        var data: [UInt8] = []
        while let chunk = try? FileHandle.standardInput.read(upToCount: 64 * 1024), !chunk.isEmpty {
            data.append(contentsOf: chunk)
            guard data.count <= KVLimits.valueBytesMax * 2 else { break }
        }
        if global.encoding != .text {
            // Encoded input: surrounding whitespace (a final newline) is not part of it.
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            data = try global.bytes(text, "value from stdin")
        }
        guard data.count <= KVLimits.valueBytesMax else {
            throw FctlError(.usage, "value from stdin: got more than \(KVLimits.valueBytesMax) bytes, want at most \(KVLimits.valueBytesMax)")
        }
        return data
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the value of KEY.",
        discussion: "Prints the value and a newline; --json adds key, revisions and version. Exit 1 if the key does not exist.")
    @OptionGroup var global: GlobalOptions
    @Argument var key: String
    @Option(name: .customLong("rev"), help: "Read as of this revision.") var revision: UInt64?
    @Flag(help: "Read from any node (may be stale).") var serializable = false
    @Flag(help: "Prove the record: its journal entry, inclusion in a tree head signed by a majority of members, consistency with the trusted state (docs/AUDIT.md).")
    var verify = false
    @OptionGroup var audit: AuditOptions

    func run() async throws {
        let keyBytes = try global.bytes(key, "key")
        if verify {
            guard !serializable else { throw FctlError(.usage, "--verify reads linearizably; drop --serializable") }
            return try await verifiedGet(keyBytes, revision: revision, global, audit)
        }
        let consistency: ReadConsistency = serializable ? .serializable : .linearizable
        let record = try await withClient(global, doing: "get") { client throws(FaunaClientError) in
            try await client.get(keyBytes, revision: revision.map { Revision($0) }, consistency: consistency)
        }
        guard let record else { throw FctlError(.notFound, "get: key \(global.show(keyBytes)) not found") }
        if global.json { global.printJSON(global.recordJSON(record)) } else { print(global.show(record.record.value)) }
    }
}

struct Del: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete KEY, or every key starting with it (--prefix).",
        discussion: "Prints: deleted N → revision R. Exit 1 if a single KEY did not exist.")
    @OptionGroup var global: GlobalOptions
    @Argument var key: String
    @Flag(help: "Delete every key that begins with KEY.") var prefix = false

    func run() async throws {
        let keyBytes = try global.bytes(key, "key")
        let result = try await withClient(global, doing: "del") { client throws(FaunaClientError) in
            prefix ? try await client.deletePrefix(keyBytes) : try await client.delete(keyBytes)
        }
        let (_, results) = try successResults(result, global, "del")
        var deleted = 0
        if case .deleteRange(let n, _)? = results.first { deleted = n }
        if global.json {
            global.printJSON(["deleted": deleted, "revision": result.revision.rawValue, "isReplay": result.isReplay])
        } else {
            print("deleted \(deleted) → revision \(result.revision)\(replayNote(result))")
        }
        if !prefix && deleted == 0 && !result.isReplay { throw FctlError(.notFound, "del: key \(global.show(keyBytes)) not found") }
    }
}

struct RangeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "range",
        abstract: "List keys in [START, END), or with prefix START (--prefix).",
        discussion: "Prints one line per key: KEY<TAB>VALUE (KEY alone with --keys-only); with --count only the number.")
    @OptionGroup var global: GlobalOptions
    @Argument var start: String
    @Argument var end: String?
    @Flag(help: "Every key that begins with START.") var prefix = false
    @Option(help: "At most this many keys.") var limit: Int?
    @Option(name: .customLong("rev"), help: "Read as of this revision.") var revision: UInt64?
    @Flag(name: .customLong("keys-only")) var keysOnly = false
    @Flag(help: "Print only the number of keys.") var count = false
    @Flag(help: "Descending key order.") var reverse = false
    @Flag(help: "Read from any node (may be stale).") var serializable = false

    func validate() throws {
        if prefix && end != nil { throw ValidationError("give END or --prefix, not both") }
        if let limit, limit < 1 { throw ValidationError("--limit \(limit): want >= 1") }
    }

    func run() async throws {
        let startBytes = try global.bytes(start, "start key")
        let range: KeyRange =
            prefix ? .prefix(startBytes) : try end.map { KeyRange(start: startBytes, end: try global.bytes($0, "end key")) } ?? .single(startBytes)
        let request = KVRangeRequest(range: range, limit: limit, revision: revision.map { Revision($0) }, isReversed: reverse, isKeysOnly: keysOnly, isCountOnly: count)
        let consistency: ReadConsistency = serializable ? .serializable : .linearizable
        let result = try await withClient(global, doing: "range") { client throws(FaunaClientError) in
            try await client.range(request, consistency: consistency)
        }
        if global.json {
            global.printJSON([
                "count": result.count, "hasMore": result.hasMore, "revision": result.revision.rawValue,
                "records": result.records.map(global.recordJSON),
            ])
            return
        }
        if count { print(result.count); return }
        for kv in result.records {
            print(keysOnly ? global.show(kv.key) : "\(global.show(kv.key))\t\(global.show(kv.record.value))")
        }
        if result.hasMore { printError("(\(result.count - result.records.count) more keys; raise --limit)") }
    }
}

struct Compact: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Discard history below revision REV.")
    @OptionGroup var global: GlobalOptions
    @Argument var revision: UInt64

    func run() async throws {
        let result = try await withClient(global, doing: "compact") { client throws(FaunaClientError) in
            try await client.compact(Revision(revision))
        }
        _ = try successResults(result, global, "compact")
        if global.json {
            global.printJSON(["compactedTo": revision, "revision": result.revision.rawValue])
        } else {
            print("compacted below revision \(revision) → revision \(result.revision)\(replayNote(result))")
        }
    }
}
