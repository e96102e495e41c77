import ArgumentParser
import FaunaClient
import FaunaKV
import FctlCore
import Foundation

struct Txn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a transaction: if every --if holds, the --then operations, else the --else ones.",
        discussion: """
            Compares: TARGET(KEY) OP OPERAND with TARGET value|version|create|mod, OP = != < >.
            Operations: put KEY VALUE | del KEY | del-prefix PREFIX | get KEY | range-prefix PREFIX | range START END.
            Example: fctl txn --if 'value(k1) = v1' --then 'put k1 v2' --else 'get k1'
            Or --file F.json (docs/CLI.md "Transactions"). Exit 1 if the else branch ran.
            With --isolation LEVEL (serializable-snapshot, serializable, repeatable-reads, \
            read-committed) the --then operations (get, put, del only) run as one client-side \
            transaction at that level: the gets read first, and the writes commit only if what the \
            level protects did not change meanwhile, else it all runs again (at most --attempts \
            times; exit 1 if it still conflicts). docs/KV-COMMANDS.md "Isolation levels".
            """)
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("if"), help: "A compare, e.g. 'version(k2) > 3'.") var compares: [String] = []
    @Option(name: .customLong("then"), help: "An operation if every compare holds.") var success: [String] = []
    @Option(name: .customLong("else"), help: "An operation otherwise.") var failure: [String] = []
    @Option(help: "A JSON file with the whole transaction (- for stdin).") var file: String?
    @Option(help: "Run the --then operations as a transaction at this isolation level.") var isolation: IsolationLevel?
    @Option(help: "With --isolation: attempts before giving up on conflicts.") var attempts = 10

    func validate() throws {
        if file != nil && !(compares.isEmpty && success.isEmpty && failure.isEmpty) {
            throw ValidationError("give --file or --if/--then/--else, not both")
        }
        if isolation != nil && (file != nil || !compares.isEmpty || !failure.isEmpty) {
            throw ValidationError("--isolation takes --then operations only (the level decides what is compared)")
        }
        if attempts < 1 || attempts > 1000 { throw ValidationError("--attempts \(attempts): want 1...1000") }
    }

    func run() async throws {
        if let isolation { return try await runIsolated(isolation) }
        let txn: KVTxn
        if let file {
            txn = try TxnFile.transaction(json: try readFile(file), encoding: global.encoding)
        } else {
            txn = try TxnSyntax(encoding: global.encoding).transaction(compares: compares, success: success, failure: failure)
        }
        let result = try await withClient(global, doing: "txn") { client throws(FaunaClientError) in
            try await client.txn(txn)
        }
        let (succeeded, results) = try successResults(result, global, "txn")
        if global.json {
            global.printJSON([
                "succeeded": succeeded, "revision": result.revision.rawValue, "isReplay": result.isReplay,
                "results": results.map(resultJSON),
            ])
        } else {
            print("txn \(succeeded ? "succeeded (then branch)" : "compare failed (else branch)") → revision \(result.revision)\(replayNote(result))")
            for r in results { print(resultLine(r)) }
        }
        if !succeeded { throw FctlError(.notFound, "txn: a compare failed; the else branch ran") }
    }

    /// The --then operations as one client-side transaction (FaunaClient.transaction).
    private func runIsolated(_ level: IsolationLevel) async throws {
        enum Step { case get([UInt8]), put([UInt8], [UInt8]), delete([UInt8]) }
        let parsed = try TxnSyntax(encoding: global.encoding).transaction(compares: [], success: success, failure: [])
        let steps: [Step] = try parsed.success.map { op throws(FctlError) -> Step in
            switch op {
            case .put(let p): return .put(p.key, p.value)
            case .range(let r) where r.range == .single(r.range.start): return .get(r.range.start)
            case .deleteRange(let d) where d.range == .single(d.range.start): return .delete(d.range.start)
            default: throw FctlError(.usage, "--isolation: operations get KEY, put KEY VALUE and del KEY only")
            }
        }
        let client = try global.makeClient()
        let outcome: STMOutcome<[(key: [UInt8], value: [UInt8]?)]>
        do {
            outcome = try await client.transaction(isolation: level, attemptsMax: attempts) { stm in
                var reads: [(key: [UInt8], value: [UInt8]?)] = []
                for step in steps {
                    switch step {
                    case .get(let k): reads.append((k, try await stm.get(k)))
                    case .put(let k, let v): stm.put(k, v)
                    case .delete(let k): stm.delete(k)
                    }
                }
                return reads
            }
        } catch let error as FaunaClientError {
            await client.close()
            throw FctlError(error, doing: "txn --isolation \(level)")
        }
        await client.close()
        if global.json {
            global.printJSON([
                "isolation": level.rawValue, "revision": outcome.revision.rawValue, "attempts": outcome.attempts,
                "reads": outcome.value.map { ["key": global.show($0.key), "value": $0.value.map(global.show) ?? NSNull()] as [String: Any] },
            ])
            return
        }
        for read in outcome.value {
            print(read.value.map { "\(global.show(read.key))\t\(global.show($0))" } ?? "(no key \(global.show(read.key)))")
        }
        print("txn committed (\(level)) → revision \(outcome.revision) after \(outcome.attempts) attempt\(outcome.attempts == 1 ? "" : "s")")
    }

    func readFile(_ path: String) throws(FctlError) -> [UInt8] {
        let handle: FileHandle? = path == "-" ? FileHandle.standardInput : FileHandle(forReadingAtPath: path)
        guard let handle else { throw FctlError(.usage, "txn --file \(path): cannot open it") }
        let data = (try? handle.read(upToCount: TxnFile.fileBytesMax + 1)) ?? Data()
        guard data.count <= TxnFile.fileBytesMax else { throw FctlError(.usage, "txn --file \(path): larger than \(TxnFile.fileBytesMax) bytes") }
        return Array(data)
    }

    func resultLine(_ result: KVOperationResult) -> String {
        switch result {
        case .put: return "put ok"
        case .deleteRange(let deleted, _): return "deleted \(deleted)"
        case .range(let r):
            let lines = r.records.map { "\(global.show($0.key))\t\(global.show($0.record.value))" }
            return lines.isEmpty ? "(no keys)" : lines.joined(separator: "\n")
        case .lease(let id, let ttl): return "lease \(id) granted, TTL \(ttl) s"
        }
    }

    func resultJSON(_ result: KVOperationResult) -> [String: Any] {
        switch result {
        case .put: return ["op": "put"]
        case .deleteRange(let deleted, _): return ["op": "del", "deleted": deleted]
        case .range(let r): return ["op": "range", "count": r.count, "hasMore": r.hasMore, "records": r.records.map(global.recordJSON)]
        case .lease(let id, let ttl): return ["op": "lease", "id": id, "ttl": ttl]
        }
    }
}

extension IsolationLevel: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}
