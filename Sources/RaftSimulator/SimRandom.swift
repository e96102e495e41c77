/// The simulator's only source of randomness: one seed replays a whole run exactly.
public struct SimRandom: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed ^ 0x5DEE_CE66_D1CE_4E5B }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { p > 0 && Double(next() >> 11) / Double(1 << 53) < p }
    public mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &self) }
    public mutating func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[int(0..<items.count)] }
}

/// FNV-1a, used to fingerprint entries and state-machine histories (not for security).
@inlinable
func fnv1a(_ bytes: [UInt8], seed: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
    var h = seed
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}

func u64Bytes(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> UInt64(56 - 8 * $0)) } }

func readU64(_ bytes: [UInt8], at offset: Int) -> UInt64? {
    guard offset >= 0, offset + 8 <= bytes.count else { return nil }
    var v: UInt64 = 0
    for i in offset..<offset + 8 { v = v << 8 | UInt64(bytes[i]) }
    return v
}
