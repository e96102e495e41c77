/// An error from the store. Errors with `isFailStop` mean the disk may disagree with memory:
/// the node must stop and recover from disk (docs/RELIABILITY.md "Corrupt records").
public struct StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        /// RocksDB reported an error; see `rocksDB`.
        public static let rocksDB = Code(name: "rocksDB")
        /// A record read from disk does not decode: corruption or a format we do not know.
        public static let corruptRecord = Code(name: "corruptRecord")
        /// An earlier write failed; the store refuses everything until reopened.
        public static let stopped = Code(name: "stopped")
        /// The caller asked for something invalid (a log gap, an unknown snapshot...).
        public static let invalidRequest = Code(name: "invalidRequest")
        /// A bounded queue is full: back off and retry.
        public static let overloaded = Code(name: "overloaded")
        /// The store is closed.
        public static let closed = Code(name: "closed")
        /// A snapshot file or manifest failed verification.
        public static let snapshotInvalid = Code(name: "snapshotInvalid")
        /// The data directory's filesystem is (nearly) full; nothing was written.
        public static let diskFull = Code(name: "diskFull")
        /// A filesystem call outside RocksDB failed (snapshot files, directories).
        public static let fileSystem = Code(name: "fileSystem")
        /// Encryption at rest: the master key file is missing, readable by others or malformed,
        /// or is not the key the data directory was encrypted with; or the directory is
        /// encrypted and no key was named. Nothing was opened or written.
        public static let encryptionKey = Code(name: "encryptionKey")
        public var description: String { name }
    }

    public let code: Code
    public let message: String
    /// The underlying RocksDB error, when `code == .rocksDB`.
    public let rocksDB: RocksDBError?

    public init(_ code: Code, _ message: String, rocksDB: RocksDBError? = nil) {
        self.code = code
        self.message = message
        self.rocksDB = rocksDB
    }

    init(_ error: RocksDBError) {
        self.init(.rocksDB, error.description, rocksDB: error)
    }

    /// A record of `cf` that does not decode, named by its key as stored (group prefix
    /// included: what `ldb --column_family=... --hex get` takes).
    static func corrupt(_ cf: RocksDBColumnFamily, key: [UInt8], _ reason: String) -> StoreError {
        corrupt(cf.name, key: cf.storedKey(key), reason)
    }

    static func corrupt(_ columnFamily: String, key: [UInt8], _ reason: String) -> StoreError {
        let hex = key.prefix(32).map { String($0, radix: 16).leftPadded(2) }.joined()
        return StoreError(.corruptRecord, "corrupt record in column family \(columnFamily), key \(hex): \(reason)")
    }

    /// `error` as a store error: itself, a RocksDB error wrapped, or — for anything else a
    /// storage read threw (a stored value that did not decode in a layer above, such as
    /// FaunaKV's meta records) — `.corruptRecord` with `what` and the error.
    public init(wrapping error: any Error, _ what: String) {
        if let e = error as? StoreError {
            self = e
        } else if let e = error as? RocksDBError {
            self.init(e)
        } else {
            self.init(.corruptRecord, "\(what): \(error)")
        }
    }

    /// True when the node must stop: the disk state may disagree with memory, or is bad.
    public var isFailStop: Bool {
        switch code {
        case .rocksDB: return rocksDB?.isFailStop ?? true
        case .corruptRecord, .stopped, .fileSystem, .diskFull: return true
        default: return false
        }
    }

    public var description: String { "store error [\(code)]: \(message)" }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

extension RocksDBIterator {
    /// `value`, its error (a sealed value that does not open) as a `StoreError`.
    var storeValue: [UInt8] {
        get throws(StoreError) { try rocks { () throws(RocksDBError) in try value } }
    }
}

/// Runs a RocksDB operation, wrapping its error as a `StoreError`.
@inline(__always)
func rocks<T>(_ body: () throws(RocksDBError) -> T) throws(StoreError) -> T {
    do { return try body() } catch { throw StoreError(error) }
}
