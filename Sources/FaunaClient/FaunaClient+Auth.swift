import FaunaKV
import FaunaRPC

/// Users, roles and authentication (docs/SECURITY.md "Users and roles"). Changes are writes
/// (entries, so leaves of the audit chain); lists are reads of the system key space. Both need
/// the root role once authentication is enabled.
extension FaunaClient {
    /// Runs an auth change and returns the revision of its entry. A change that does not fit
    /// the state (a user that exists, enabling without root...) throws `invalidRequest` with
    /// the node's reason; nothing changed.
    @discardableResult
    public func changeAuth(_ command: KVAuthCommand) async throws(FaunaClientError) -> Revision {
        let result = try await write(.auth(command))
        if case .invalid(let e) = result.outcome { throw FaunaClientError(.invalidRequest, e.reason) }
        return result.revision
    }

    /// Adds a user; its password (if any) is hashed here with a fresh salt and only the hash
    /// is sent.
    @discardableResult
    public func addUser(_ name: [UInt8], password: [UInt8]?) async throws(FaunaClientError) -> Revision {
        try await changeAuth(.userAdd(name: name, password: try Self.passwordHash(password)))
    }

    /// Sets (nil: removes) a user's password.
    @discardableResult
    public func setPassword(_ name: [UInt8], password: [UInt8]?) async throws(FaunaClientError) -> Revision {
        try await changeAuth(.userPassword(name: name, password: try Self.passwordHash(password)))
    }

    static func passwordHash(_ password: [UInt8]?) throws(FaunaClientError) -> KVPasswordHash? {
        guard let password else { return nil }
        guard !password.isEmpty else { throw FaunaClientError(.invalidRequest, "password: got an empty one, want at least 1 byte") }
        do {
            return try PasswordHashing.hash(password: password)
        } catch {
            throw FaunaClientError(.internal, "hashing the password: \(error)")
        }
    }

    /// Whether authentication is enabled (readable by anyone while it is not).
    public func isAuthEnabled() async throws(FaunaClientError) -> Bool {
        do {
            return try await get(KVSystemKeys.authEnabled) != nil
        } catch where error.code == .authRequired || error.code == .permissionDenied {
            return true
        }
    }

    /// Every user, by name.
    public func users() async throws(FaunaClientError) -> [KVUser] {
        try await systemRecords(KVSystemKeys.userPrefix) { name, value throws(KVDecodingError) in try KVUser(name: name, decoding: value) }
    }

    /// Every role, by name (`root` is built in and not listed).
    public func roles() async throws(FaunaClientError) -> [KVRole] {
        try await systemRecords(KVSystemKeys.rolePrefix) { name, value throws(KVDecodingError) in try KVRole(name: name, decoding: value) }
    }

    /// Every auth change still in the state, oldest first: the revision of its entry, who made
    /// it and what it changed. Each line is the record under `KVSystemKeys.authLog(revision)`,
    /// written by that entry: `fctl get --verify` of that key proves it.
    public func authLog() async throws(FaunaClientError) -> [(revision: Revision, key: [UInt8], record: KVAuthLogRecord)] {
        try await systemRecords(KVSystemKeys.authLogPrefix) { suffix, value throws(KVDecodingError) in
            guard suffix.count == 8 else { throw KVDecodingError(.invalidValue, "auth log key: got \(suffix.count) bytes after the prefix, want 8") }
            let revision = Revision(suffix.reduce(0) { $0 << 8 | UInt64($1) })
            return (revision, KVSystemKeys.authLogPrefix + suffix, try KVAuthLogRecord(decoding: value))
        }
    }

    private func systemRecords<T>(
        _ prefix: [UInt8], _ decode: ([UInt8], [UInt8]) throws(KVDecodingError) -> T
    ) async throws(FaunaClientError) -> [T] {
        let result = try await range(KVRangeRequest(range: .prefix(prefix)))
        var out: [T] = []
        for kv in result.records {
            do {
                out.append(try decode(Array(kv.key.dropFirst(prefix.count)), kv.record.value))
            } catch {
                throw FaunaClientError(.internal, "system record \(KeyRange.single(kv.key).printable): \(error)")
            }
        }
        return out
    }
}
