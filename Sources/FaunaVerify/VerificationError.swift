/// Why a proof, a tree head or a trusted-state update was rejected.
///
/// A struct with a code (not an enum) so that codes can be added without breaking callers;
/// `reason` says what was found and what was expected ("got X, want Y").
public struct VerificationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of check failed.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let description: String
        init(_ name: String) { self.description = name }

        /// An inclusion proof names a leaf index ≥ its tree size (including any index in size 0).
        public static let leafIndexOutOfRange = Code("leafIndexOutOfRange")
        /// A proof path has more or fewer hashes than its sizes require.
        public static let pathLengthMismatch = Code("pathLengthMismatch")
        /// The root recomputed from a proof differs from the expected (new) root.
        public static let rootMismatch = Code("rootMismatch")
        /// A consistency proof does not reproduce the old root.
        public static let oldRootMismatch = Code("oldRootMismatch")
        /// A consistency proof goes from a larger tree to a smaller one.
        public static let sizeOrder = Code("sizeOrder")
        /// A proof is for other tree sizes than the heads it is presented with.
        public static let proofSizesMismatch = Code("proofSizesMismatch")
        /// A tree head is for another cluster.
        public static let clusterMismatch = Code("clusterMismatch")
        /// Fewer than a strict majority of the members validly signed the tree head.
        public static let noQuorum = Code("noQuorum")
        /// Two quorum-signed heads of the same size have different roots: history forked.
        public static let forkedHistory = Code("forkedHistory")
        /// A quorum-signed head could not be proven consistent with the trusted state: the
        /// history shown was rewritten, rolled back, or the proof is bad. `cause` says which check failed.
        public static let inconsistentHistory = Code("inconsistentHistory")
        /// A v2 leaf's effects do not include the write claimed (the entry wrote nothing, or
        /// not this key and value), or the effect proof does not lead to the summary's root.
        public static let effectNotProven = Code("effectNotProven")
        /// Bytes that do not decode (wrong length, prefix or version).
        public static let malformed = Code("malformed")
    }

    /// What kind of check failed.
    public let code: Code
    /// What was found and what was expected.
    public let reason: String
    /// For `inconsistentHistory`: the code of the consistency check that failed.
    public let cause: Code?

    public init(_ code: Code, _ reason: String, cause: Code? = nil) {
        self.code = code
        self.reason = reason
        self.cause = cause
    }

    public var description: String { "\(code): \(reason)" }
}
