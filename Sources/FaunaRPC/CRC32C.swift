internal import CCRC32C

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every frame body
/// (docs/PROTOCOL.md "Frame"). RFC 3720 §B.4 gives the test vectors; so do iSCSI and ext4.
///
/// The bytes go to the C target CCRC32C, because only C reaches the CPU's CRC-32C instruction:
/// on x86-64 with SSE4.2 (decided once at run time) it uses `crc32`, 8 bytes per instruction,
/// several times faster than tables (docs/PERFORMANCE.md "CRC32C in hardware"); elsewhere it
/// uses slicing-by-8 tables in C. `CRC32C.Software`, the former Swift tables, stays as the
/// reference the tests compare both against.
public enum CRC32C {
    /// The checksum of `bytes`.
    @inlinable
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc = Update()
        crc.update(bytes)
        return crc.value
    }

    /// A running checksum, for input that arrives in pieces.
    public struct Update: Sendable {
        @usableFromInline var state: UInt32 = 0xFFFF_FFFF

        /// An empty checksum (the checksum of no bytes is 0).
        @inlinable public init() {}

        /// The checksum of everything given so far.
        @inlinable public var value: UInt32 { ~state }

        /// Adds `bytes`.
        @inlinable
        public mutating func update(_ bytes: some Sequence<UInt8>) {
            let done: Void? = bytes.withContiguousStorageIfAvailable { update(UnsafeRawBufferPointer($0)) }
            if done == nil {
                let copy = Array(bytes)
                copy.withUnsafeBytes { update($0) }
            }
        }

        /// Adds the bytes of `buffer`.
        public mutating func update(_ buffer: UnsafeRawBufferPointer) {
            state = fauna_crc32c_update(state, buffer.baseAddress, buffer.count)
        }
    }

    /// Slicing-by-8 in Swift: eight 256-entry tables, eight input bytes per step; about 2.3 GB/s
    /// in release builds here, as fast as the same tables in C. No longer on the frame path: the
    /// tests' reference for the C code.
    enum Software {
        /// `state` (uninverted, as `Update.state`) after the bytes of `buffer`.
        static func update(_ state: UInt32, _ buffer: UnsafeRawBufferPointer) -> UInt32 {
            var crc = state
            var i = 0
            let n = buffer.count
            CRC32C.tables.withUnsafeBufferPointer { t in
                while n - i >= 8 {
                    let lo = crc ^ (UInt32(buffer[i]) | UInt32(buffer[i + 1]) << 8
                        | UInt32(buffer[i + 2]) << 16 | UInt32(buffer[i + 3]) << 24)
                    let hi = UInt32(buffer[i + 4]) | UInt32(buffer[i + 5]) << 8
                        | UInt32(buffer[i + 6]) << 16 | UInt32(buffer[i + 7]) << 24
                    crc = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                        ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                        ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                        ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                    i += 8
                }
                while i < n {
                    crc = t[Int((crc ^ UInt32(buffer[i])) & 0xFF)] ^ (crc >> 8)
                    i += 1
                }
            }
            return crc
        }

        /// The checksum of `bytes`.
        static func checksum(_ bytes: [UInt8]) -> UInt32 {
            ~bytes.withUnsafeBytes { update(0xFFFF_FFFF, $0) }
        }
    }

    /// The reflected Castagnoli polynomial.
    static let polynomial: UInt32 = 0x82F6_3B78

    /// `tables[k * 256 + b]`: the CRC of byte `b` followed by `k` zero bytes.
    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for b in 0..<256 {
            var crc = UInt32(b)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ polynomial : crc >> 1 }
            t[b] = crc
        }
        for k in 1..<8 {
            for b in 0..<256 {
                let prev = t[(k - 1) * 256 + b]
                t[k * 256 + b] = t[Int(prev & 0xFF)] ^ (prev >> 8)
            }
        }
        return t
    }()
}
