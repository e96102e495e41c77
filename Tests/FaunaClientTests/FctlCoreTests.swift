import FaunaKV
import FctlCore
import Testing

@Suite struct ByteEncodingTests {
    @Test(arguments: [
        (ByteEncoding.hex, "6b31", [UInt8]([0x6b, 0x31])),
        (.hex, "0x00FF", [0x00, 0xff]),
        (.base64, "azE=", [0x6b, 0x31]),
        (.base64, "AAEC", [0, 1, 2]),
        (.base64, "", []),
        (.text, "k1", [0x6b, 0x31]),
    ])
    func decodes(encoding: ByteEncoding, text: String, bytes: [UInt8]) throws {
        #expect(try encoding.decode(text) == bytes)
    }

    @Test(arguments: [(ByteEncoding.hex, "6b3"), (.hex, "zz"), (.base64, "azE"), (.base64, "a=E="), (.base64, "azF=")])
    func rejectsMalformed(encoding: ByteEncoding, text: String) {
        #expect(throws: FctlError.self) { try encoding.decode(text) }
    }

    @Test func formatsPrintableTextElseHex() {
        #expect(ByteEncoding.text.format(Array("v1 ok".utf8)) == "v1 ok")
        #expect(ByteEncoding.text.format([0x00, 0x41]) == "0x0041")
        #expect(ByteEncoding.text.format([0xff]) == "0xff")
        #expect(ByteEncoding.hex.format([0xab, 0x01]) == "ab01")
    }

    @Test func base64RoundTripsEveryLength() throws {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(try ByteEncoding.base64.decode(ByteEncoding.base64.format(bytes)) == bytes)
            #expect(try ByteEncoding.hex.decode(ByteEncoding.hex.format(bytes)) == bytes)
        }
    }
}

@Suite struct TxnSyntaxTests {
    let syntax = TxnSyntax()
    func b(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func parsesCompares() throws {
        #expect(try syntax.compare("value(k1) = v1") == KVCompare(key: b("k1"), .value(b("v1")), .equal))
        #expect(try syntax.compare("version(k2) > 3") == KVCompare(key: b("k2"), .version(3), .greater))
        #expect(try syntax.compare("create(k) != 5") == KVCompare(key: b("k"), .createRevision(Revision(5)), .notEqual))
        #expect(try syntax.compare("mod(k)<9") == KVCompare(key: b("k"), .modRevision(Revision(9)), .less))
        #expect(try syntax.compare("value(k1) == \"a b\"") == KVCompare(key: b("k1"), .value(b("a b")), .equal))
        // A ")" inside the key is fine when no operator follows it.
        #expect(try syntax.compare("value(f(x)) = 1") == KVCompare(key: b("f(x)"), .value(b("1")), .equal))
    }

    @Test(arguments: ["value k1 = v1", "value(k1) v1", "size(k1) = 1", "version(k1) > x", "value(k1) = a b", "version(k1) > -1"])
    func rejectsBadCompares(text: String) {
        #expect(throws: FctlError.self) { try syntax.compare(text) }
    }

    @Test func parsesOperations() throws {
        #expect(try syntax.operation("put k1 v2") == .put(KVPut(key: b("k1"), value: b("v2"))))
        #expect(try syntax.operation("put k1 \"x \\\" y\"") == .put(KVPut(key: b("k1"), value: b("x \" y"))))
        #expect(try syntax.operation("del k3") == .deleteRange(KVDeleteRange(range: .single(b("k3")))))
        #expect(try syntax.operation("del-prefix p/") == .deleteRange(KVDeleteRange(range: .prefix(b("p/")))))
        #expect(try syntax.operation("get k1") == .range(KVRangeRequest(range: .single(b("k1")))))
        #expect(try syntax.operation("range-prefix p") == .range(KVRangeRequest(range: .prefix(b("p")))))
    }

    @Test(arguments: ["", "put k1", "del", "get a b", "frob k", "put k \"open"])
    func rejectsBadOperations(text: String) {
        #expect(throws: FctlError.self) { try syntax.operation(text) }
    }

    @Test func hexEncodingAppliesToKeysAndValues() throws {
        let hex = TxnSyntax(encoding: .hex)
        #expect(try hex.compare("value(6b31) = 00ff") == KVCompare(key: b("k1"), .value([0, 0xff]), .equal))
        #expect(try hex.operation("put 6b31 00") == .put(KVPut(key: b("k1"), value: [0])))
    }

    @Test func wholeTransactionAndJSONFileAgree() throws {
        let fromFlags = try syntax.transaction(
            compares: ["value(k1) = v1", "version(k2) > 3"], success: ["put k1 v2", "del k3"], failure: ["get k1"])
        let json = """
            {"compare": [{"target": "value", "key": "k1", "op": "=", "value": "v1"},
                         {"target": "version", "key": "k2", "op": ">", "number": 3}],
             "success": [{"op": "put", "key": "k1", "value": "v2"}, {"op": "del", "key": "k3"}],
             "failure": [{"op": "get", "key": "k1"}]}
            """
        let fromFile = try TxnFile.transaction(json: Array(json.utf8), encoding: .text)
        #expect(fromFlags == fromFile)
        #expect(fromFlags.compares.count == 2 && fromFlags.success.count == 2 && fromFlags.failure.count == 1)
    }

    @Test(arguments: ["{", "{\"compare\": [{\"target\": \"version\", \"key\": \"k\", \"op\": \">\"}]}", "{\"success\": [{\"op\": \"put\", \"key\": \"k\"}]}"])
    func rejectsBadJSON(json: String) {
        #expect(throws: FctlError.self) { try TxnFile.transaction(json: Array(json.utf8), encoding: .text) }
    }
}
