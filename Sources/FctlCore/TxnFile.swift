import FaunaKV
import Foundation

/// The JSON shape of `fctl txn --file F.json` (docs/CLI.md "Transactions"). Keys and values
/// are strings in the active encoding (text, --hex or --base64).
///
/// ```json
/// {"compare": [{"target": "value", "key": "k1", "op": "=", "value": "v1"},
///              {"target": "version", "key": "k2", "op": ">", "number": 3}],
///  "success": [{"op": "put", "key": "k1", "value": "v2"}, {"op": "del", "key": "k3"}],
///  "failure": [{"op": "get", "key": "k1"}]}
/// ```
/// Operations: `put` (key, value), `del` (key), `del-prefix` (key = the prefix), `get` (key),
/// `range-prefix` (key = the prefix), `range` (key, end). Targets: `value` (with `value`),
/// `version`, `create`, `mod` (with `number`).
public struct TxnFile: Decodable, Sendable {
    public struct Compare: Decodable, Sendable {
        public var target: String
        public var key: String
        public var op: String
        public var value: String?
        public var number: UInt64?
    }

    public struct Operation: Decodable, Sendable {
        public var op: String
        public var key: String
        public var value: String?
        public var end: String?
    }

    public var compare: [Compare]?
    public var success: [Operation]?
    public var failure: [Operation]?

    /// The largest file read (the proposal limit, with room for JSON syntax and encodings).
    public static let fileBytesMax = 4 * KVLimits.proposalBytesMax

    /// Decodes `data` and builds the transaction.
    public static func transaction(json data: [UInt8], encoding: ByteEncoding) throws(FctlError) -> KVTxn {
        let file: TxnFile
        do {
            file = try JSONDecoder().decode(TxnFile.self, from: Data(data))
        } catch {
            throw FctlError(.usage, "txn file: not the documented JSON shape (\(error)); see docs/CLI.md \"Transactions\"")
        }
        var txn = KVTxn(compares: [], success: [], failure: [])
        for c in file.compare ?? [] { txn.compares.append(try c.compare(encoding)) }
        for o in file.success ?? [] { txn.success.append(try o.operation(encoding)) }
        for o in file.failure ?? [] { txn.failure.append(try o.operation(encoding)) }
        return txn
    }
}

extension TxnFile.Compare {
    func compare(_ encoding: ByteEncoding) throws(FctlError) -> KVCompare {
        let ops: [String: KVCompare.Operator] = ["=": .equal, "==": .equal, "!=": .notEqual, "<": .less, ">": .greater]
        guard let op = ops[op] else { throw FctlError(.usage, "txn file compare op \"\(op)\": want =, !=, < or >") }
        let key = try encoding.decode(key, what: "key")
        let operand = self.number
        func requiredNumber() throws(FctlError) -> UInt64 {
            guard let number = operand else { throw FctlError(.usage, "txn file compare \(target): want a \"number\" field") }
            return number
        }
        switch target {
        case "value":
            guard let value else { throw FctlError(.usage, "txn file compare value: want a \"value\" field") }
            return KVCompare(key: key, .value(try encoding.decode(value, what: "value")), op)
        case "version": return KVCompare(key: key, .version(try requiredNumber()), op)
        case "create": return KVCompare(key: key, .createRevision(Revision(try requiredNumber())), op)
        case "mod": return KVCompare(key: key, .modRevision(Revision(try requiredNumber())), op)
        default: throw FctlError(.usage, "txn file compare target \"\(target)\": want value, version, create or mod")
        }
    }
}

extension TxnFile.Operation {
    func operation(_ encoding: ByteEncoding) throws(FctlError) -> KVOperation {
        let key = try encoding.decode(key, what: "key")
        switch op {
        case "put":
            guard let value else { throw FctlError(.usage, "txn file put: want a \"value\" field") }
            return .put(KVPut(key: key, value: try encoding.decode(value, what: "value")))
        case "del": return .deleteRange(KVDeleteRange(range: .single(key)))
        case "del-prefix": return .deleteRange(KVDeleteRange(range: .prefix(key)))
        case "get": return .range(KVRangeRequest(range: .single(key)))
        case "range-prefix": return .range(KVRangeRequest(range: .prefix(key)))
        case "range":
            guard let end else { throw FctlError(.usage, "txn file range: want an \"end\" field") }
            return .range(KVRangeRequest(range: KeyRange(start: key, end: try encoding.decode(end, what: "end"))))
        default:
            throw FctlError(.usage, "txn file op \"\(op)\": want put, del, del-prefix, get, range-prefix or range")
        }
    }
}
