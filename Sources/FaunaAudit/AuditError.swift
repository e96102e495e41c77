/// Why the tree could not answer: a request outside the tree, or a store that lacks a node it
/// must have (a corrupt or truncated store: the caller must stop, not guess).
public struct AuditError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let description: String
        init(_ name: String) { self.description = name }

        /// A size above the size of the stored tree.
        public static let sizeOutOfRange = Code("sizeOutOfRange")
        /// A leaf index ≥ the tree size it is asked for.
        public static let leafIndexOutOfRange = Code("leafIndexOutOfRange")
        /// A consistency proof from a larger size to a smaller one.
        public static let sizeOrder = Code("sizeOrder")
        /// The store has no hash at an address that a tree of its size must have.
        public static let missingNode = Code("missingNode")
        /// The store returned a different number of hashes than addresses asked for.
        public static let storeContract = Code("storeContract")
        /// A storage key that does not decode.
        public static let malformedKey = Code("malformedKey")
    }

    /// What kind of failure.
    public let code: Code
    /// What was found and what was expected.
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code): \(reason)" }
}
