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
            """)
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("if"), help: "A compare, e.g. 'version(k2) > 3'.") var compares: [String] = []
    @Option(name: .customLong("then"), help: "An operation if every compare holds.") var success: [String] = []
    @Option(name: .customLong("else"), help: "An operation otherwise.") var failure: [String] = []
    @Option(help: "A JSON file with the whole transaction (- for stdin).") var file: String?

    func validate() throws {
        if file != nil && !(compares.isEmpty && success.isEmpty && failure.isEmpty) {
            throw ValidationError("give --file or --if/--then/--else, not both")
        }
    }

    func run() async throws {
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
        }
    }

    func resultJSON(_ result: KVOperationResult) -> [String: Any] {
        switch result {
        case .put: return ["op": "put"]
        case .deleteRange(let deleted, _): return ["op": "del", "deleted": deleted]
        case .range(let r): return ["op": "range", "count": r.count, "hasMore": r.hasMore, "records": r.records.map(global.recordJSON)]
        }
    }
}
