/// Bytes that are not a valid frame or message body. A struct with a code so that new cases do
/// not break callers (swift-nio's style). Every reason is in "got X, want Y" form.
public struct RPCDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem; stable across releases.
    public var code: Code
    /// What was wrong, naming the field.
    public var reason: String

    /// An error of kind `code`, explained by `reason`.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    /// The kinds of problem.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        private init(_ name: String) { self.name = name }

        /// The first four bytes are not the Fauna magic.
        public static let badMagic = Code("badMagic")
        /// The first bytes are a TLS handshake record: a TLS client on a plaintext port.
        public static let tlsHandshake = Code("tlsHandshake")
        /// The magic matched but the protocol version is not one this build speaks.
        public static let unsupportedVersion = Code("unsupportedVersion")
        /// The body length is above the configured maximum frame size.
        public static let frameTooLarge = Code("frameTooLarge")
        /// The body's CRC32C does not match the header.
        public static let checksumMismatch = Code("checksumMismatch")
        /// A frame kind this build does not know.
        public static let unknownKind = Code("unknownKind")
        /// A reserved flag bit was set.
        public static let reservedBits = Code("reservedBits")
        /// The input ended inside a frame or a field.
        public static let truncated = Code("truncated")
        /// Bytes were left over after a complete body.
        public static let trailingBytes = Code("trailingBytes")
        /// An unknown tag or enum value inside a body.
        public static let unknownTag = Code("unknownTag")
        /// A length or count above its limit.
        public static let limitExceeded = Code("limitExceeded")
        /// A varint that is longer than needed or overflows 64 bits.
        public static let badVarint = Code("badVarint")
        /// Decoded fields that contradict each other, an invariant, or an embedded FaunaKV
        /// payload that did not decode.
        public static let invalidValue = Code("invalidValue")
        /// A partial frame would take a server past its budget of buffered bytes
        /// (`RPCServerConfiguration.bufferedBytesMax`); not a broken frame, but the connection
        /// is closed all the same.
        public static let bufferBudgetExceeded = Code("bufferBudgetExceeded")

        public var description: String { name }
    }

    public var description: String { "\(code): \(reason)" }
}
