import Foundation

/// Keys of `fctl bench`: fixed-width ASCII decimal numbers derived from an integer index, so a
/// key printed by `fctl get` reads as its index (`--key-size 8`: index 42 is `00000042`).
public enum BenchKeys {
    /// How many distinct keys of `width` bytes there are (10^width, capped at `Int.max`).
    public static func capacity(width: Int) -> Int {
        precondition(width >= 1, "key width: got \(width), want >= 1")
        var result = 1
        for _ in 0..<width {
            let (next, overflow) = result.multipliedReportingOverflow(by: 10)
            if overflow { return Int.max }
            result = next
        }
        return result
    }

    /// The key of `index`: `width` ASCII digits, zero-padded on the left.
    /// - Precondition: `0 <= index < capacity(width:)`.
    public static func key(_ index: Int, width: Int) -> [UInt8] {
        precondition(index >= 0 && index < capacity(width: width), "key index: got \(index), want 0..<10^\(width)")
        var key = [UInt8](repeating: UInt8(ascii: "0"), count: width)
        var rest = index
        var position = width - 1
        while rest > 0 {
            key[position] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
            position -= 1
        }
        return key
    }

    /// Bytes of the zig-zag varint of `index` (unsigned LEB128 of 2·index).
    public static func varintBytes(_ index: Int) -> Int {
        precondition(index >= 0, "key index: got \(index), want >= 0")
        var z = UInt64(index) << 1
        var n = 1
        while z >= 0x80 {
            z >>= 7
            n += 1
        }
        return n
    }

    /// Writes the zig-zag varint of `index` over the start of `buffer` and leaves the rest of
    /// it as it was: Go's `binary.PutVarint(buf, n)` as etcd's benchmark calls it, stale bytes
    /// included (docs/PERFORMANCE.md "Fauna vs etcd").
    /// - Precondition: `varintBytes(index) <= buffer.count`.
    public static func writeVarint(_ index: Int, into buffer: inout [UInt8]) {
        precondition(varintBytes(index) <= buffer.count, "varint of \(index) does not fit \(buffer.count) bytes")
        var z = UInt64(index) << 1
        var i = 0
        while z >= 0x80 {
            buffer[i] = UInt8(truncatingIfNeeded: z) | 0x80
            z >>= 7
            i += 1
        }
        buffer[i] = UInt8(z)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small seeded generator, so a `--seed` replays the
/// same key sequence. Not for cryptography.
public struct BenchRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) from the top 53 bits.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}

/// Zipf-distributed ranks in `0..<count`: rank k is drawn with probability proportional to
/// 1 / (k + 1)^exponent, so rank 0 (key index 0) is the hottest key.
///
/// Sampling inverts a precomputed cumulative distribution (8 bytes per key, built once and
/// shared read-only by every worker) with a binary search: exact for any exponent, O(log n)
/// per draw. `BenchParameters.keySpaceMax` bounds the table at 80 MB.
public struct BenchZipf: Sendable {
    /// cdf[k] = P(rank <= k); non-decreasing, last element exactly 1.
    public let cdf: [Double]
    /// The exponent s.
    public let exponent: Double

    /// A sampler over `count` ranks with exponent `exponent` (etcd/YCSB use 0.99).
    /// - Precondition: `count >= 1`, `exponent >= 0`.
    public init(count: Int, exponent: Double) {
        precondition(count >= 1, "zipf count: got \(count), want >= 1")
        precondition(exponent >= 0 && exponent.isFinite, "zipf exponent: got \(exponent), want >= 0")
        var cdf = [Double](repeating: 0, count: count)
        var sum = 0.0
        for k in 0..<count {
            sum += 1.0 / Foundation.pow(Double(k + 1), exponent)
            cdf[k] = sum
        }
        for k in 0..<count { cdf[k] /= sum }
        cdf[count - 1] = 1
        self.cdf = cdf
        self.exponent = exponent
    }

    /// The probability of rank `k`.
    public func probability(_ k: Int) -> Double { k == 0 ? cdf[0] : cdf[k] - cdf[k - 1] }

    /// A rank: the first k with cdf[k] > u for a uniform u in [0, 1).
    public func sample(using random: inout BenchRandom) -> Int {
        let u = random.nextUnit()
        var low = 0
        var high = cdf.count - 1
        while low < high {
            let middle = (low + high) / 2
            if cdf[middle] > u { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
