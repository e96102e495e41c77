import FaunaKV
import FaunaRPC
import FctlCore
import Foundation
import Testing

@Suite struct BenchKeysTests {
    @Test(arguments: [(0, 8, "00000000"), (42, 8, "00000042"), (99_999, 8, "00099999"), (7, 1, "7"), (123, 3, "123")])
    func keyIsZeroPaddedDecimal(index: Int, width: Int, text: String) {
        #expect(BenchKeys.key(index, width: width) == Array(text.utf8))
    }

    @Test func keysAreFixedWidthAndDistinct() {
        var seen = Set<[UInt8]>()
        for index in 0..<100_000 {
            let key = BenchKeys.key(index, width: 8)
            #expect(key.count == 8)
            seen.insert(key)
        }
        #expect(seen.count == 100_000)
    }

    /// etcd's benchmark keys, byte for byte as etcd's `tools/benchmark` (Go's
    /// `binary.PutVarint` into one reused buffer) writes them (one buffer, so a short key keeps a longer one's third byte).
    @Test func varintKeysKeepStaleBytesLikeEtcdsBenchmark() {
        var buffer = [UInt8](repeating: 0, count: 8)
        func next(_ index: Int) -> [UInt8] {
            BenchKeys.writeVarint(index, into: &buffer)
            return buffer
        }
        #expect(next(99_999) == [0xBE, 0x9A, 0x0C, 0, 0, 0, 0, 0])
        #expect(next(5) == [0x0A, 0x9A, 0x0C, 0, 0, 0, 0, 0])
        #expect(next(64) == [0x80, 0x01, 0x0C, 0, 0, 0, 0, 0])
        #expect(next(0) == [0x00, 0x01, 0x0C, 0, 0, 0, 0, 0])
        #expect(BenchKeys.varintBytes(0) == 1 && BenchKeys.varintBytes(63) == 1 && BenchKeys.varintBytes(64) == 2)
        #expect(BenchKeys.varintBytes(99_999) == 3)
    }

    @Test func varintAndFixedKeyParameters() throws {
        var p = BenchParameters(workload: .get)
        p.keyFormat = .varint
        p.keyBytes = 2
        #expect(throws: FctlError.self) { try p.validated() }  // 100,000 keys need 3-byte varints
        p.keyBytes = 3
        #expect(try p.validated().keyFormat == .varint)
        p.fixedKey = Array("bench-range-key".utf8)
        #expect(try p.validated().summary.contains("one key bench-range-key"))
        p.distribution = .zipf
        #expect(throws: FctlError.self) { try p.validated() }
    }

    @Test func capacityIsTenToTheWidthAndSaturates() {
        #expect(BenchKeys.capacity(width: 1) == 10)
        #expect(BenchKeys.capacity(width: 5) == 100_000)
        #expect(BenchKeys.capacity(width: 40) == Int.max)
    }
}

@Suite struct BenchSamplerTests {
    @Test func randomIsReproducibleFromItsSeed() {
        var a = BenchRandom(seed: 7)
        var b = BenchRandom(seed: 7)
        var c = BenchRandom(seed: 8)
        let first = (0..<5).map { _ in a.next() }
        #expect(first == (0..<5).map { _ in b.next() })
        #expect(first != (0..<5).map { _ in c.next() })
    }

    @Test func zipfTableMatchesTheDefinition() {
        let zipf = BenchZipf(count: 1000, exponent: 0.99)
        var harmonic = 0.0
        for k in 1...1000 { harmonic += 1 / pow(Double(k), 0.99) }
        for k in [0, 1, 9, 999] {
            let want = 1 / pow(Double(k + 1), 0.99) / harmonic
            #expect(abs(zipf.probability(k) - want) < 1e-12, "rank \(k)")
        }
        #expect(zipf.cdf.last == 1)
    }

    /// Frequencies of 400,000 draws (fixed seed) are within 5 % of the zipf probabilities for
    /// the hot ranks, and rank 0 is drawn ~ (k+1)^0.99 times as often as rank k.
    @Test func zipfFrequenciesFollowTheDistribution() {
        let zipf = BenchZipf(count: 1000, exponent: BenchParameters.zipfExponent)
        var random = BenchRandom(seed: 42)
        let draws = 400_000
        var counts = [Int](repeating: 0, count: 1000)
        for _ in 0..<draws { counts[zipf.sample(using: &random)] += 1 }
        for k in [0, 1, 2, 4, 9, 19] {
            let want = zipf.probability(k) * Double(draws)
            #expect(abs(Double(counts[k]) - want) / want < 0.05, "rank \(k): got \(counts[k]), want ~\(Int(want))")
        }
        let ratio = Double(counts[0]) / Double(counts[9])
        #expect(ratio > 8.5 && ratio < 11.5, "rank 0 / rank 9: got \(ratio), want ~\(pow(10.0, 0.99))")
        #expect(counts.reduce(0, +) == draws)
    }

    @Test func zipfWithExponentZeroIsUniform() {
        let zipf = BenchZipf(count: 4, exponent: 0)
        #expect(zipf.cdf == [0.25, 0.5, 0.75, 1])
    }
}

@Suite struct BenchParametersTests {
    @Test func defaultsFillTheCountBound() throws {
        let p = try BenchParameters(workload: .put).validated()
        #expect(p.total == BenchParameters.totalDefault)
        #expect(p.durationSeconds == nil)
        var timed = BenchParameters(workload: .get)
        timed.durationSeconds = 10
        #expect(try timed.validated().total == nil)
    }

    static let bad: [(String, @Sendable (inout BenchParameters) -> Void)] = [
        ("--clients 0", { $0.clients = 0 }),
        ("--clients 4097", { $0.clients = 4097 }),
        ("--conns 17", { $0.connections = 17 }),
        ("--total 0", { $0.total = 0 }),
        ("--duration 0", { $0.durationSeconds = 0 }),
        ("--duration 3601", { $0.durationSeconds = 3601 }),
        ("--key-size 0", { $0.keyBytes = 0 }),
        ("--val-size", { $0.valueBytes = KVLimits.valueBytesMax + 1 }),
        ("--key-space 0", { $0.keySpace = 0 }),
        ("--key-space 1000000 does not fit", { $0.keyBytes = 5; $0.keySpace = 1_000_000 }),
        ("--key-space 10000001", { $0.keyBytes = 16; $0.keySpace = 10_000_001 }),
        ("--read-ratio 1.5", { $0.readRatio = 1.5 }),
        ("--values 0", { $0.distinctValues = 0 }),
        ("--values 300000", { $0.distinctValues = 300_000 }),  // 300,000 × 256 B is over 64 MiB
    ]

    @Test func distinctValuesShowInTheParameters() throws {
        var p = BenchParameters(workload: .put)
        p.distinctValues = 4096
        let valid = try p.validated()
        #expect(valid.json["values"] as? Int == 4096)
        #expect(valid.summary.contains("4096 distinct"))
        #expect(try BenchParameters(workload: .put).validated().json["values"] == nil)
    }

    @Test(arguments: 0..<bad.count)
    func rejectsOutOfRange(case index: Int) {
        let (expected, change) = Self.bad[index]
        var p = BenchParameters(workload: .mixed)
        change(&p)
        do {
            _ = try p.validated()
            Issue.record("accepted \(expected)")
        } catch {
            #expect(error.exitCode == .usage)
            #expect(error.message.contains(expected), "message: \(error.message)")
        }
    }
}

@Suite struct BenchReportTests {
    @Test func mergedPercentilesAreThoseOfAllValues() {
        // Worker a: 1..500 ms, worker b: 501..1000 ms; merged, p50 is ~500 ms, p99 ~990 ms.
        var a = BenchLatencies()
        var b = BenchLatencies()
        for ms in 1...500 { a.record(microseconds: UInt64(ms) * 1000) }
        for ms in 501...1000 { b.record(microseconds: UInt64(ms) * 1000) }
        a.merge(b)
        #expect(a.count == 1000)
        #expect(abs(a.milliseconds(atPercentile: 50) - 500) <= 0.5)
        #expect(abs(a.milliseconds(atPercentile: 99) - 990) <= 1)
        #expect(a.maxMilliseconds == 1000)
    }

    @Test func recordsDurationsInMicroseconds() {
        var l = BenchLatencies()
        l.record(.microseconds(1234))
        l.record(.seconds(-1))  // clamped to 1 µs, never dropped
        #expect(l.count == 2)
        #expect(l.maxMilliseconds == 1.234)
    }

    func report(errors: [String: Int]) -> BenchReport {
        var latencies = BenchLatencies()
        for us in [1000, 2000, 3000, 4000] { latencies.record(microseconds: UInt64(us)) }
        var p = BenchParameters(workload: .put)
        p.total = 4
        p.seed = 9
        return BenchReport(
            parameters: p, elapsedSeconds: 2, successes: 4, errorsByKind: errors, notes: ["replay": 1],
            latencies: latencies)
    }

    @Test func textShowsThroughputPercentilesAndErrorsByKind() {
        let text = report(errors: ["timeout": 2, "unavailable": 1]).text(label: "bench put")
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("bench put: 7 ops in 2.00 s = 3.5 ops/s (clients 16, conns 1,"))
        #expect(lines[1] == "latency ms: p50 2.000  p90 4.000  p99 4.000  p99.9 4.000  max 4.000")
        #expect(lines[2] == "errors: 3 (timeout 2, unavailable 1)")
        #expect(lines[3] == "notes: replay 1")
    }

    @Test func jsonHasFiguresAndParametersAndExitStatusFollowsErrors() throws {
        let clean = report(errors: [:])
        #expect(clean.exitStatus == .ok)
        #expect(report(errors: ["timeout": 1]).exitStatus.rawValue == 1)
        let data = try JSONSerialization.data(withJSONObject: clean.json)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["ops"] as? Int == 4)
        #expect(object["opsPerSecond"] as? Double == 2)
        let latency = try #require(object["latencyMs"] as? [String: Any])
        #expect(latency["p50"] as? Double == 2)
        #expect(latency["max"] as? Double == 4)
        let parameters = try #require(object["parameters"] as? [String: Any])
        #expect(parameters["workload"] as? String == "put")
        #expect(parameters["total"] as? Int == 4)
        #expect(parameters["seed"] as? Int == 9)
    }
}
