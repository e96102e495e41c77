/// How fctl reads KEY/VALUE arguments and prints keys and values (docs/CLI.md "Encodings").
public enum ByteEncoding: String, Sendable, CaseIterable {
    /// In: the argument's UTF-8 bytes. Out: the bytes as text if they are printable UTF-8
    /// (no control characters but tab and newline), else `0x` and lowercase hex.
    case text
    /// In and out: hex digits (an optional `0x` prefix; upper or lower case).
    case hex
    /// In and out: standard base64 with padding (RFC 4648 §4).
    case base64

    /// The bytes an argument stands for.
    /// - Throws: `FctlError` (usage) for malformed hex or base64.
    public func decode(_ text: String, what: String = "argument") throws(FctlError) -> [UInt8] {
        switch self {
        case .text: return Array(text.utf8)
        case .hex:
            guard let bytes = Self.hexBytes(text) else {
                throw FctlError(.usage, "\(what) \"\(text)\": want hex digits (e.g. 6b31), as --hex asks")
            }
            return bytes
        case .base64:
            guard let bytes = Base64.decode(text) else {
                throw FctlError(.usage, "\(what) \"\(text)\": want standard base64 (e.g. azE=), as --base64 asks")
            }
            return bytes
        }
    }

    /// How `bytes` are printed.
    public func format(_ bytes: [UInt8]) -> String {
        switch self {
        case .text: return Self.isPrintable(bytes) ? String(decoding: bytes, as: UTF8.self) : "0x" + Self.hexString(bytes)
        case .hex: return Self.hexString(bytes)
        case .base64: return Base64.encode(bytes)
        }
    }

    /// Whether `bytes` are valid UTF-8 without control characters other than tab and newline.
    public static func isPrintable(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        guard Array(text.utf8) == bytes else { return false }
        return text.unicodeScalars.allSatisfy { scalar in
            scalar == "\t" || scalar == "\n" || !(scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value))
        }
    }

    /// Lowercase hex.
    public static func hexString(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses hex digits (optional `0x`); nil if malformed or odd in length.
    public static func hexBytes(_ text: String) -> [UInt8]? {
        var digits = Substring(text)
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
        let nibbles = digits.utf8.map { c -> UInt8? in
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        guard nibbles.count % 2 == 0, !nibbles.contains(nil) else { return nil }
        return stride(from: 0, to: nibbles.count, by: 2).map { nibbles[$0]! << 4 | nibbles[$0 + 1]! }
    }
}

/// RFC 4648 §4 base64 with padding.
enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            let b0 = UInt32(bytes[i])
            let b1 = n > 1 ? UInt32(bytes[i + 1]) : 0
            let b2 = n > 2 ? UInt32(bytes[i + 2]) : 0
            let word = b0 << 16 | b1 << 8 | b2
            for j in 0..<4 {
                out.append(j <= n ? alphabet[Int(word >> (18 - 6 * UInt32(j)) & 0x3F)] : UInt8(ascii: "="))
            }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 4 * 3)
        var i = 0
        while i < chars.count {
            var word: UInt32 = 0
            var padding = 0
            for j in 0..<4 {
                let c = chars[i + j]
                if c == UInt8(ascii: "=") {
                    // Padding only at the end of the last group, at most two.
                    guard i + 4 == chars.count, j >= 2 else { return nil }
                    padding += 1
                    word <<= 6
                } else {
                    guard padding == 0, let v = alphabet.firstIndex(of: c) else { return nil }
                    word = word << 6 | UInt32(v)
                }
            }
            out.append(UInt8(word >> 16 & 0xFF))
            if padding < 2 { out.append(UInt8(word >> 8 & 0xFF)) }
            if padding < 1 { out.append(UInt8(word & 0xFF)) }
            i += 4
        }
        // Canonical form only: re-encoding must give the input back.
        return encode(out) == text ? out : nil
    }
}
