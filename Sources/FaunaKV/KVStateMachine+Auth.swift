/// What a principal may do, as of the applied state it was loaded from (`KVStateMachine.access`).
/// The node checks reads and admin requests with it; the state machine checks every write with
/// one loaded at the entry's own index.
public struct KVAccess: Hashable, Sendable {
    public enum Level: Hashable, Sendable {
        /// Auth is disabled, the principal is root, or the node itself proposed the entry.
        case everything
        /// A user with these permissions (of all its roles).
        case limited(user: [UInt8], permissions: [KVPermission])
        /// Auth is enabled and the connection is bound to no user.
        case anonymous
        /// Auth is enabled and the named user does not exist (deleted since the connection was bound).
        case unknownUser([UInt8])
    }
    public var level: Level
    /// Whether authentication is enabled in the state it was loaded from.
    public var authEnabled: Bool

    public init(level: Level, authEnabled: Bool) {
        self.level = level
        self.authEnabled = authEnabled
    }

    /// nil if `access` to every key of `range` is allowed, else why not. Keys of the system space
    /// need root.
    public func check(_ access: KVPermission.Access, _ range: KeyRange) -> KVCommandError? {
        switch level {
        case .everything: return nil
        case .anonymous: return Self.authRequired
        case .unknownUser(let name): return Self.unknown(name)
        case .limited(let user, let permissions):
            if range.isEmpty { return nil }
            // Whatever a role grants, the system key space (users, roles, password hashes, the
            // enabled flag) is root's alone.
            if KVSystemKeys.contains(range.start) || (range.end.map { bytesPrecede(KVSystemKeys.prefix, $0) } ?? true) {
                return KVCommandError(
                    .permissionDenied, "user \(String(decoding: user, as: UTF8.self)) may not \(access.name) the system key space (root only)")
            }
            if Self.covers(permissions.filter { $0.access.includes(access) }.map(\.range), range) { return nil }
            return KVCommandError(
                .permissionDenied, "user \(String(decoding: user, as: UTF8.self)) may not \(access.name) \(range.printable)")
        }
    }

    /// nil if the principal is root (or auth is disabled), else why not.
    public func checkRoot(_ what: String) -> KVCommandError? {
        switch level {
        case .everything: return nil
        case .anonymous: return Self.authRequired
        case .unknownUser(let name): return Self.unknown(name)
        case .limited(let user, _):
            return KVCommandError(.permissionDenied, "\(what) needs the root role; user \(String(decoding: user, as: UTF8.self)) does not have it")
        }
    }

    /// nil unless auth is enabled and the principal is bound to no user.
    public func checkBound() -> KVCommandError? {
        switch level {
        case .anonymous: return Self.authRequired
        case .unknownUser(let name): return Self.unknown(name)
        case .everything, .limited: return nil
        }
    }

    static func unknown(_ name: [UInt8]) -> KVCommandError {
        KVCommandError(
            .permissionDenied,
            "no user \(String(decoding: name, as: UTF8.self)) (the user this connection authenticated as, or its certificate's common name)")
    }

    static let authRequired = KVCommandError(.authRequired, "authentication is enabled: authenticate (fctl --user) or connect with a client certificate naming a user")

    /// Whether the union of `ranges` holds every key of `range` (which is not empty).
    static func covers(_ ranges: [KeyRange], _ range: KeyRange) -> Bool {
        // Walk from the range's start: at each point, some granted range must hold it; jump to
        // the furthest end among them, until past the range's end.
        var at = range.start
        let sorted = ranges.filter { !$0.isEmpty }.sorted { bytesPrecede($0.start, $1.start) }
        while true {
            var furthest: [UInt8]?? = .none  // .some(nil): unbounded
            for r in sorted where !bytesPrecede(at, r.start) && r.contains(at) {
                guard let end = r.end else {
                    furthest = .some(nil)
                    break
                }
                if case .some(.some(let f)) = furthest, !bytesPrecede(f, end) { continue }
                furthest = .some(end)
            }
            guard case .some(let reach) = furthest else { return false }
            guard let reach else { return true }
            if let end = range.end, !bytesPrecede(reach, end) { return true }
            at = reach
        }
    }
}

extension KVAccess {
    /// What `principal` may do given whether auth is `enabled` and how to find users and roles.
    static func of(
        _ principal: [UInt8]?, enabled: Bool, user: ([UInt8]) throws -> KVUser?, role: ([UInt8]) throws -> KVRole?
    ) rethrows -> KVAccess {
        guard enabled else { return KVAccess(level: .everything, authEnabled: false) }
        guard let principal else { return KVAccess(level: .everything, authEnabled: true) }
        guard !principal.isEmpty else { return KVAccess(level: .anonymous, authEnabled: true) }
        guard let found = try user(principal) else { return KVAccess(level: .unknownUser(principal), authEnabled: true) }
        if found.isRoot { return KVAccess(level: .everything, authEnabled: true) }
        var permissions: [KVPermission] = []
        for name in found.roles {
            if let r = try role(name) { permissions += r.permissions }
        }
        return KVAccess(level: .limited(user: principal, permissions: permissions), authEnabled: true)
    }

    /// nil if the principal may read the journal entry with `payload` (a normal entry's data;
    /// empty for a no-op) and whatever proves it, else why not: every key its command reads
    /// or writes, in both branches of a transaction, must be readable. Other commands (auth
    /// changes hold password hashes; lease revokes delete keys the payload does not name)
    /// and payloads that do not decode need root. Membership changes and no-ops are open to
    /// any bound user.
    public func checkEntry(isNormal: Bool, payload: [UInt8]) -> KVCommandError? {
        if case .everything = level { return nil }
        if let e = checkBound() { return e }
        guard isNormal, !payload.isEmpty else { return nil }
        guard let proposal = try? KVProposal(decoding: payload) else { return checkRoot("reading an entry that does not decode") }
        var ranges: [KeyRange] = []
        switch proposal.command.clippedToUserSpace {
        case .put(let put): ranges = [.single(put.key)]
        case .deleteRange(let delete): ranges = [delete.range]
        case .txn(let txn):
            ranges = txn.compares.map(\.range)
            for op in txn.success + txn.failure {
                switch op {
                case .put(let put): ranges.append(.single(put.key))
                case .deleteRange(let delete): ranges.append(delete.range)
                case .range(let request): ranges.append(request.range)
                }
            }
        default: return checkRoot("reading this entry")
        }
        for range in ranges {
            if let e = check(.read, range) { return e }
        }
        return nil
    }
}

/// The auth state held in memory by a node, refreshed whenever an applied entry changes it.
public struct KVAuthSnapshot: Hashable, Sendable {
    public var enabled: Bool
    public var users: [HashedBytes: KVUser] = [:]
    public var roles: [HashedBytes: KVRole] = [:]

    public init(enabled: Bool) { self.enabled = enabled }

    /// What `principal` may do (nil: the node itself).
    public func access(of principal: [UInt8]?) -> KVAccess {
        KVAccess.of(principal, enabled: enabled, user: { users[HashedBytes($0)] }, role: { roles[HashedBytes($0)] })
    }
}

extension KVStateMachine {
    /// What `principal` may do in the committed state of `backend` (nil principal: the node itself).
    public func access(of principal: [UInt8]?, on backend: some KVBackend) throws -> KVAccess {
        try Self.access(of: principal, KVReadView(backend: backend, base: KVWriteBatch()))
    }

    static func access(of principal: [UInt8]?, _ view: KVReadView) throws -> KVAccess {
        try KVAccess.of(
            principal, enabled: try view.record(forKey: KVSystemKeys.authEnabled) != nil,
            user: { try loadUser($0, view) }, role: { try loadRole($0, view) })
    }

    /// The whole auth state of `backend`'s committed state, for checks in memory.
    public func authSnapshot(on backend: some KVBackend) throws -> KVAuthSnapshot {
        let enabled = try backend.record(forKey: KVSystemKeys.authEnabled) != nil
        var snapshot = KVAuthSnapshot(enabled: enabled)
        for user in try users(on: backend) { snapshot.users[HashedBytes(user.name)] = user }
        for role in try roles(on: backend) { snapshot.roles[HashedBytes(role.name)] = role }
        return snapshot
    }

    /// The user `name` in the committed state of `backend`, or nil.
    public func user(_ name: [UInt8], on backend: some KVBackend) throws -> KVUser? {
        try Self.loadUser(name, KVReadView(backend: backend, base: KVWriteBatch()))
    }

    /// Every user (at most `KVAuthLimits.usersMax`), by name.
    public func users(on backend: some KVBackend) throws -> [KVUser] {
        var users: [KVUser] = []
        try backend.scanRecords(in: .prefix(KVSystemKeys.userPrefix), reverse: false) { key, record in
            users.append(try KVUser(name: Array(key.dropFirst(KVSystemKeys.userPrefix.count)), decoding: record.value))
            return users.count < KVAuthLimits.usersMax
        }
        return users
    }

    /// Every role (at most `KVAuthLimits.rolesMax`), by name; `root` is not stored.
    public func roles(on backend: some KVBackend) throws -> [KVRole] {
        var roles: [KVRole] = []
        try backend.scanRecords(in: .prefix(KVSystemKeys.rolePrefix), reverse: false) { key, record in
            roles.append(try KVRole(name: Array(key.dropFirst(KVSystemKeys.rolePrefix.count)), decoding: record.value))
            return roles.count < KVAuthLimits.rolesMax
        }
        return roles
    }

    static func loadUser(_ name: [UInt8], _ view: KVReadView) throws -> KVUser? {
        guard let record = try view.record(forKey: KVSystemKeys.user(name)) else { return nil }
        return try KVUser(name: name, decoding: record.value)
    }

    static func loadRole(_ name: [UInt8], _ view: KVReadView) throws -> KVRole? {
        guard let record = try view.record(forKey: KVSystemKeys.role(name)) else { return nil }
        return try KVRole(name: name, decoding: record.value)
    }

    /// Why the entry's principal may not run `command`, or nil. A proposal without a principal
    /// was made by a node (or by a client of a version before auth) and is not checked.
    func authorize(_ command: KVCommand, principal: [UInt8]?, _ view: KVReadView) throws -> KVCommandError? {
        guard let principal else { return nil }
        if let reserved = Self.touchesSystemSpace(command) { return reserved }
        let access = try Self.access(of: principal, view)
        switch command {
        case .put(let put): return Self.check(put, access)
        case .deleteRange(let delete): return Self.check(delete, access)
        case .txn(let txn):
            if let e = access.checkBound() { return e }
            for compare in txn.compares {
                if let e = access.check(.read, KVSystemKeys.clipped(compare.range)) { return e }
            }
            for op in txn.success + txn.failure {
                let e: KVCommandError?
                switch op {
                case .put(let put): e = Self.check(put, access)
                case .deleteRange(let delete): e = Self.check(delete, access)
                case .range(let request): e = access.check(.read, KVSystemKeys.clipped(request.range))
                }
                if let e { return e }
            }
            return nil
        case .compact: return access.checkRoot("compact")
        case .auth: return access.checkRoot("changing users and roles")
        case .leaseGrant: return access.checkBound()
        case .leaseRevoke(let id):
            // Revoking deletes every key attached to the lease: write permission on each.
            if let e = access.checkBound() { return e }
            guard case .limited = access.level else { return nil }
            var denied: KVCommandError?
            try view.scanMeta(in: .prefix(LeaseKey.attached(id))) { key, _ in
                denied = access.check(.write, .single(Array(key.dropFirst(LeaseKey.attached(id).count))))
                return denied == nil
            }
            return denied
        case .initCluster, .upgradeLeaves, .upgradeState, .leaseCheckpoint: return access.checkRoot("a command the leader proposes itself")
        }
    }

    /// Write permission on the key; read too if the put returns the previous record.
    static func check(_ put: KVPut, _ access: KVAccess) -> KVCommandError? {
        if let e = access.check(.write, .single(put.key)) { return e }
        return put.returnsPrevious ? access.check(.read, .single(put.key)) : nil
    }

    /// Write permission on the range; read too if the delete returns what it deleted.
    static func check(_ delete: KVDeleteRange, _ access: KVAccess) -> KVCommandError? {
        let range = KVSystemKeys.clipped(delete.range)
        if let e = access.check(.write, range) { return e }
        return delete.returnsPrevious ? access.check(.read, range) : nil
    }

    /// A client command that writes a key of the system space: a put of a system key, or a
    /// delete range that starts there (one that starts below it is clipped). Refused for every
    /// user, root included: auth records change only through auth commands, which keep the
    /// log and root's protections.
    static func touchesSystemSpace(_ command: KVCommand) -> KVCommandError? {
        func reserved(_ key: [UInt8], _ what: String) -> KVCommandError? {
            KVSystemKeys.contains(key) ? KVCommandError(.reservedKey, "\(what): keys beginning with FF FF are the system's") : nil
        }
        switch command {
        case .put(let put): return reserved(put.key, "put key")
        case .deleteRange(let delete): return reserved(delete.range.start, "delete range start")
        case .txn(let txn):
            for op in txn.success + txn.failure {
                switch op {
                case .put(let put): if let e = reserved(put.key, "put key") { return e }
                case .deleteRange(let delete): if let e = reserved(delete.range.start, "delete range start") { return e }
                case .range: break
                }
            }
            return nil
        default: return nil
        }
    }

    /// Applies an auth change, writing the records it changes and one auth log record.
    func executeAuth(
        _ command: KVAuthCommand, principal: [UInt8]?, at revision: Revision, _ view: inout KVReadView
    ) throws -> KVOutcome {
        func refuse(_ reason: String) -> KVOutcome { .invalid(KVCommandError(.authState, reason)) }
        func s(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }
        let enabled = try view.record(forKey: KVSystemKeys.authEnabled) != nil
        switch command {
        case .enable:
            guard let root = try Self.loadUser(KVAuthLimits.root, view), root.isRoot else {
                return refuse("auth enable needs a user root with the root role (fctl user add root; fctl user grant-role root root)")
            }
            if !enabled { try systemWrite([1], KVSystemKeys.authEnabled, revision, &view) }
        case .disable:
            if enabled { try systemWrite(nil, KVSystemKeys.authEnabled, revision, &view) }
        case .userAdd(let name, let password):
            if try Self.loadUser(name, view) != nil { return refuse("user \(s(name)) exists") }
            let count = try countRecords(KVSystemKeys.userPrefix, view)
            guard count < KVAuthLimits.usersMax else { return refuse("users: \(count) exist, want < \(KVAuthLimits.usersMax)") }
            try systemWrite(KVUser(name: name, password: password).encoded, KVSystemKeys.user(name), revision, &view)
        case .userDelete(let name):
            guard try Self.loadUser(name, view) != nil else { return refuse("user \(s(name)) does not exist") }
            if enabled, name == KVAuthLimits.root { return refuse("user root cannot be deleted while auth is enabled") }
            try systemWrite(nil, KVSystemKeys.user(name), revision, &view)
        case .userPassword(let name, let password):
            guard var user = try Self.loadUser(name, view) else { return refuse("user \(s(name)) does not exist") }
            user.password = password
            try systemWrite(user.encoded, KVSystemKeys.user(name), revision, &view)
        case .userGrantRole(let name, let role):
            guard var user = try Self.loadUser(name, view) else { return refuse("user \(s(name)) does not exist") }
            let roleExists = try role == KVAuthLimits.root || Self.loadRole(role, view) != nil
            guard roleExists else { return refuse("role \(s(role)) does not exist") }
            guard !user.roles.contains(role) else { return refuse("user \(s(name)) has role \(s(role)) already") }
            guard user.roles.count < KVAuthLimits.rolesPerUserMax else {
                return refuse("user \(s(name)): \(user.roles.count) roles, want < \(KVAuthLimits.rolesPerUserMax)")
            }
            user.roles = (user.roles + [role]).sorted(by: bytesPrecede)
            try systemWrite(user.encoded, KVSystemKeys.user(name), revision, &view)
        case .userRevokeRole(let name, let role):
            guard var user = try Self.loadUser(name, view) else { return refuse("user \(s(name)) does not exist") }
            guard user.roles.contains(role) else { return refuse("user \(s(name)) does not have role \(s(role))") }
            if enabled, name == KVAuthLimits.root, role == KVAuthLimits.root {
                return refuse("user root keeps the root role while auth is enabled")
            }
            user.roles.removeAll { $0 == role }
            try systemWrite(user.encoded, KVSystemKeys.user(name), revision, &view)
        case .roleAdd(let name):
            guard name != KVAuthLimits.root else { return refuse("role root is built in") }
            if try Self.loadRole(name, view) != nil { return refuse("role \(s(name)) exists") }
            let count = try countRecords(KVSystemKeys.rolePrefix, view)
            guard count < KVAuthLimits.rolesMax else { return refuse("roles: \(count) exist, want < \(KVAuthLimits.rolesMax)") }
            try systemWrite(KVRole(name: name).encoded, KVSystemKeys.role(name), revision, &view)
        case .roleDelete(let name):
            guard name != KVAuthLimits.root else { return refuse("role root is built in") }
            guard try Self.loadRole(name, view) != nil else { return refuse("role \(s(name)) does not exist") }
            try systemWrite(nil, KVSystemKeys.role(name), revision, &view)
            var holders: [KVUser] = []
            try view.scanRecords(in: .prefix(KVSystemKeys.userPrefix), reverse: false) { key, record in
                let user = try KVUser(name: Array(key.dropFirst(KVSystemKeys.userPrefix.count)), decoding: record.value)
                if user.roles.contains(name) { holders.append(user) }
                return true
            }
            for var user in holders {
                user.roles.removeAll { $0 == name }
                try systemWrite(user.encoded, KVSystemKeys.user(user.name), revision, &view)
            }
        case .roleGrant(let name, let permission):
            guard name != KVAuthLimits.root else { return refuse("role root has every permission already") }
            guard var role = try Self.loadRole(name, view) else { return refuse("role \(s(name)) does not exist") }
            if let i = role.permissions.firstIndex(where: { $0.range == permission.range }) {
                role.permissions[i].access = permission.access
            } else {
                guard role.permissions.count < KVAuthLimits.permissionsPerRoleMax else {
                    return refuse("role \(s(name)): \(role.permissions.count) permissions, want < \(KVAuthLimits.permissionsPerRoleMax)")
                }
                role.permissions.append(permission)
            }
            try systemWrite(role.encoded, KVSystemKeys.role(name), revision, &view)
        case .roleRevoke(let name, let range):
            guard var role = try Self.loadRole(name, view) else { return refuse("role \(s(name)) does not exist") }
            guard let i = role.permissions.firstIndex(where: { $0.range == range }) else {
                return refuse("role \(s(name)) has no permission on \(range.printable)")
            }
            role.permissions.remove(at: i)
            try systemWrite(role.encoded, KVSystemKeys.role(name), revision, &view)
        }
        let line = KVAuthLogRecord(principal: principal ?? [], change: command.summary)
        try systemWrite(line.encoded, KVSystemKeys.authLog(revision), revision, &view)
        return .success(succeeded: true, results: [])
    }

    /// Writes (or with nil deletes) one system record as a put or delete of the entry would.
    private func systemWrite(_ value: [UInt8]?, _ key: [UInt8], _ revision: Revision, _ view: inout KVReadView) throws {
        if let value {
            _ = try put(KVPut(key: key, value: value), at: revision, &view)
        } else {
            _ = try deleteRange(KVDeleteRange(range: .single(key)), at: revision, &view)
        }
    }

    private func countRecords(_ prefix: [UInt8], _ view: KVReadView) throws -> Int {
        var n = 0
        try view.scanRecords(in: .prefix(prefix), reverse: false) { _, _ in
            n += 1
            return true
        }
        return n
    }
}

extension KVCommand {
    /// The command with every range it reads or deletes stopped below the system key space
    /// (`KVSystemKeys.clipped`): a client's `del --prefix ""` deletes every user key and no
    /// system record.
    var clippedToUserSpace: KVCommand {
        switch self {
        case .deleteRange(var delete):
            delete.range = KVSystemKeys.clipped(delete.range)
            return .deleteRange(delete)
        case .txn(var txn):
            for i in txn.compares.indices { txn.compares[i].range = KVSystemKeys.clipped(txn.compares[i].range) }
            func clip(_ ops: [KVOperation]) -> [KVOperation] {
                ops.map { op in
                    switch op {
                    case .put: return op
                    case .deleteRange(var delete):
                        delete.range = KVSystemKeys.clipped(delete.range)
                        return .deleteRange(delete)
                    case .range(var request):
                        request.range = KVSystemKeys.clipped(request.range)
                        return .range(request)
                    }
                }
            }
            txn.success = clip(txn.success)
            txn.failure = clip(txn.failure)
            return .txn(txn)
        default: return self
        }
    }
}
