import CRocksDB

/// An error reported by RocksDB (or by the wrapper around it), with the operation and column
/// family it happened in.
///
/// Every error other than `.notFound`-style absence (which the wrapper reports as `nil`) is
/// treated by the node as fail-stop when `isFailStop` is true: the disk may hold state that
/// disagrees with memory (docs/RELIABILITY.md "Failures and what happens").
public struct RocksDBError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure. A struct with static members so new codes can be added without
    /// breaking exhaustive switches (public errors that may grow are structs).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public static let alreadyInUse = Code(name: "alreadyInUse")
        public static let corruption = Code(name: "corruption")
        public static let noSpace = Code(name: "noSpace")
        public static let ioError = Code(name: "ioError")
        public static let invalidArgument = Code(name: "invalidArgument")
        public static let notSupported = Code(name: "notSupported")
        public static let busy = Code(name: "busy")
        public static let other = Code(name: "other")
        public var description: String { name }
    }

    public let code: Code
    /// The wrapper operation, e.g. "open", "write", "get".
    public let operation: String
    /// The column family the operation addressed, if any.
    public let columnFamily: String?
    /// RocksDB's own status message (it names the file for IO and corruption errors).
    public let message: String

    public init(code: Code, operation: String, columnFamily: String? = nil, message: String) {
        self.code = code
        self.operation = operation
        self.columnFamily = columnFamily
        self.message = message
    }

    /// True for errors after which the node must stop: the disk may disagree with memory.
    /// Only `.alreadyInUse` (nothing was opened) and `.invalidArgument` (a caller bug caught
    /// before any write) are not.
    public var isFailStop: Bool { code != .alreadyInUse && code != .invalidArgument }

    public var description: String {
        let cf = columnFamily.map { " (column family \($0))" } ?? ""
        switch code {
        case .alreadyInUse:
            return "RocksDB \(operation)\(cf): data directory already in use by another process: \(message)"
        default:
            return "RocksDB \(operation)\(cf) failed [\(code)]: \(message)"
        }
    }

    /// Classifies a RocksDB status string ("IO error: ...", "Corruption: ...").
    static func classify(_ message: String) -> Code {
        // The LOCK file is taken with fcntl(F_SETLK). Another process gets
        // "IO error: While lock file: <dir>/LOCK: Resource temporarily unavailable"; the same
        // process gets "IO error: lock hold by current process, acquire time ...: <dir>/LOCK".
        if message.hasPrefix("IO error"),
            message.contains("While lock file") || message.contains("lock hold by current process")
        {
            return .alreadyInUse
        }
        if message.contains("No space left on device") || message.contains("ENOSPC") { return .noSpace }
        if message.hasPrefix("Corruption") { return .corruption }
        if message.hasPrefix("IO error") { return .ioError }
        if message.hasPrefix("Invalid argument") { return .invalidArgument }
        if message.hasPrefix("Not implemented") { return .notSupported }
        if message.hasPrefix("Resource busy") || message.hasPrefix("Operation aborted") { return .busy }
        return .other
    }
}

/// Runs `body` with a fresh `errptr` (RocksDB does not clear it on success, so one variable
/// per call) and converts a set error into `RocksDBError`, freeing the C string.
@inline(__always)
func withRocksDBError<T>(
    _ operation: String, columnFamily: String? = nil,
    _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> T
) throws(RocksDBError) -> T {
    var err: UnsafeMutablePointer<CChar>? = nil
    let result = body(&err)
    if let err {
        let message = String(cString: err)
        rocksdb_free(err)
        throw RocksDBError(
            code: RocksDBError.classify(message), operation: operation, columnFamily: columnFamily,
            message: message)
    }
    return result
}
