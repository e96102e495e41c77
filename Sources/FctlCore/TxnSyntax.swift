import FaunaKV

/// fctl's transaction syntax (docs/CLI.md "Transactions"):
///
/// - compare (`--if`): `TARGET(KEY) OP OPERAND`, TARGET one of `value`, `version`, `create`,
///   `mod`; OP one of `=` (or `==`), `!=`, `<`, `>`; the operand of `value` is a value in the
///   active encoding, the others a decimal number.
/// - operation (`--then`, `--else`): `put KEY VALUE`, `del KEY`, `del-prefix PREFIX`,
///   `get KEY`, `range-prefix PREFIX`, `range START END`.
///
/// Words are separated by spaces; a word in double quotes may hold spaces, `\"` and `\\`.
public struct TxnSyntax: Sendable {
    /// How keys and values are written.
    public var encoding: ByteEncoding

    public init(encoding: ByteEncoding = .text) { self.encoding = encoding }

    /// The transaction of `--if`, `--then` and `--else` arguments.
    public func transaction(compares: [String], success: [String], failure: [String]) throws(FctlError) -> KVTxn {
        var txn = KVTxn(compares: [], success: [], failure: [])
        for text in compares { txn.compares.append(try compare(text)) }
        for text in success { txn.success.append(try operation(text)) }
        for text in failure { txn.failure.append(try operation(text)) }
        return txn
    }

    /// Parses one compare, e.g. `value(k1) = v1` or `version(k2) > 3`.
    public func compare(_ text: String) throws(FctlError) -> KVCompare {
        guard let open = text.firstIndex(of: "(") else { throw bad(compare: text, "no \"(\"") }
        let targetName = text[..<open].trimmingSpaces
        var rest: Substring?
        var key: Substring = ""
        var i = text.index(after: open)
        // The key ends at the first ")" that an operator follows.
        while i < text.endIndex {
            if text[i] == ")" {
                let after = text[text.index(after: i)...].drop { $0 == " " }
                if ["=", "!", "<", ">"].contains(after.first) {
                    key = text[text.index(after: open)..<i]
                    rest = after
                    break
                }
            }
            i = text.index(after: i)
        }
        guard var rest else { throw bad(compare: text, "no \")\" followed by =, !=, < or >") }
        let op: KVCompare.Operator
        if rest.hasPrefix("!=") { op = .notEqual; rest = rest.dropFirst(2) }
        else if rest.hasPrefix("==") { op = .equal; rest = rest.dropFirst(2) }
        else if rest.hasPrefix("=") { op = .equal; rest = rest.dropFirst() }
        else if rest.hasPrefix("<") { op = .less; rest = rest.dropFirst() }
        else { op = .greater; rest = rest.dropFirst() }
        let operandWords = try Self.words(String(rest))
        guard operandWords.count == 1 else { throw bad(compare: text, "got \(operandWords.count) operand words, want 1 (quote values with spaces)") }
        let operand = operandWords[0]
        let keyWords = try Self.words(String(key))
        guard keyWords.count == 1 else { throw bad(compare: text, "got \(keyWords.count) key words, want 1") }
        let keyBytes = try encoding.decode(keyWords[0], what: "key")
        let target: KVCompare.Target
        switch targetName {
        case "value": target = .value(try encoding.decode(operand, what: "value"))
        case "version": target = .version(try number(operand, text))
        case "create": target = .createRevision(Revision(try number(operand, text)))
        case "mod": target = .modRevision(Revision(try number(operand, text)))
        default: throw bad(compare: text, "target \"\(targetName)\", want value, version, create or mod")
        }
        return KVCompare(key: keyBytes, target, op)
    }

    /// Parses one operation, e.g. `put k1 v2` or `del-prefix p/`.
    public func operation(_ text: String) throws(FctlError) -> KVOperation {
        let words = try Self.words(text)
        guard let verb = words.first else { throw FctlError(.usage, "txn operation is empty: want e.g. 'put k1 v1'") }
        let args = Array(words.dropFirst())
        func want(_ n: Int, _ usage: String) throws(FctlError) {
            guard args.count == n else { throw FctlError(.usage, "txn operation \"\(text)\": got \(args.count) arguments, want '\(usage)'") }
        }
        switch verb {
        case "put":
            try want(2, "put KEY VALUE")
            return .put(KVPut(key: try encoding.decode(args[0], what: "key"), value: try encoding.decode(args[1], what: "value")))
        case "del":
            try want(1, "del KEY")
            return .deleteRange(KVDeleteRange(range: .single(try encoding.decode(args[0], what: "key"))))
        case "del-prefix":
            try want(1, "del-prefix PREFIX")
            return .deleteRange(KVDeleteRange(range: .prefix(try encoding.decode(args[0], what: "prefix"))))
        case "get":
            try want(1, "get KEY")
            return .range(KVRangeRequest(range: .single(try encoding.decode(args[0], what: "key"))))
        case "range-prefix":
            try want(1, "range-prefix PREFIX")
            return .range(KVRangeRequest(range: .prefix(try encoding.decode(args[0], what: "prefix"))))
        case "range":
            try want(2, "range START END")
            return .range(KVRangeRequest(range: KeyRange(start: try encoding.decode(args[0], what: "key"), end: try encoding.decode(args[1], what: "key"))))
        default:
            throw FctlError(.usage, "txn operation \"\(text)\": unknown \"\(verb)\", want put, del, del-prefix, get, range-prefix or range")
        }
    }

    /// Splits `text` into words at spaces; double quotes group, `\"` and `\\` escape inside.
    public static func words(_ text: String) throws(FctlError) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var inQuotes = false
        var iterator = text.makeIterator()
        while let c = iterator.next() {
            if inQuotes {
                if c == "\\" {
                    guard let next = iterator.next() else { break }
                    guard next == "\"" || next == "\\" else { throw FctlError(.usage, "in \(text): unknown escape \\\(next), want \\\" or \\\\") }
                    current.append(next)
                } else if c == "\"" {
                    inQuotes = false
                } else {
                    current.append(c)
                }
            } else if c == " " || c == "\t" {
                if inWord { words.append(current); current = ""; inWord = false }
            } else if c == "\"" {
                inQuotes = true
                inWord = true
            } else {
                current.append(c)
                inWord = true
            }
        }
        guard !inQuotes else { throw FctlError(.usage, "in \(text): unterminated double quote") }
        if inWord { words.append(current) }
        return words
    }

    private func number(_ text: String, _ compare: String) throws(FctlError) -> UInt64 {
        guard let n = UInt64(text) else { throw bad(compare: compare, "operand \"\(text)\", want a decimal number") }
        return n
    }

    private func bad(compare text: String, _ reason: String) -> FctlError {
        FctlError(.usage, "txn compare \"\(text)\": \(reason); want e.g. 'value(k1) = v1' or 'version(k2) > 3'")
    }
}

extension Substring {
    var trimmingSpaces: String {
        String(self.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
