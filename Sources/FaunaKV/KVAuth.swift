// Users, roles and permissions as replicated state (docs/SECURITY.md "Users and roles",
// ADR 0012). They are records in the system key space, so every change is a write of the
// entry that made it: a leaf with its effects, provable like any record, kept in history,
// covered by state digests, checkpoints and snapshots with no format of their own.

/// The system key space: every key that begins with `FF FF`, which is exactly the keys at or
/// above `[0xFF, 0xFF]`. Clients cannot write there, their ranges and deletes stop below it,
/// and only root reads it while auth is enabled.
public enum KVSystemKeys {
    /// The first system key; every system key begins with it.
    public static let prefix: [UInt8] = [0xFF, 0xFF]
    public static let auth = prefix + Array("auth/".utf8)
    /// Present (value `01`) while authentication is enabled.
    public static let authEnabled = auth + Array("enabled".utf8)
    public static let userPrefix = auth + Array("user/".utf8)
    public static let rolePrefix = auth + Array("role/".utf8)
    /// `auth/log/<u64 revision BE>`: one record per auth change, `KVAuthLogRecord`.
    public static let authLogPrefix = auth + Array("log/".utf8)

    public static func user(_ name: [UInt8]) -> [UInt8] { userPrefix + name }
    public static func role(_ name: [UInt8]) -> [UInt8] { rolePrefix + name }
    public static func authLog(_ revision: Revision) -> [UInt8] { authLogPrefix + encodeUInt64(revision.rawValue) }

    /// Whether `key` is in the system key space.
    public static func contains(_ key: [UInt8]) -> Bool { key.count >= 2 && key[0] == 0xFF && key[1] == 0xFF }

    /// `range` without the system key space when it starts below it: what a client range,
    /// delete or compare covers. A range that starts inside the system space is left alone (an
    /// explicit read of it, which only root may make while auth is enabled).
    public static func clipped(_ range: KeyRange) -> KeyRange {
        guard !contains(range.start) else { return range }
        if let end = range.end, !bytesPrecede(prefix, end) { return range }
        return KeyRange(start: range.start, end: prefix)
    }
}

/// The reserved names and the limits of the auth state.
public enum KVAuthLimits {
    /// The user and the role that may do everything.
    public static let root: [UInt8] = Array("root".utf8)
    public static let nameBytesMax = 64
    public static let usersMax = 10_000
    public static let rolesMax = 1_000
    public static let rolesPerUserMax = 64
    public static let permissionsPerRoleMax = 256
    /// The weakest scrypt cost accepted for a stored password: N = 2^14.
    public static let scryptLogNMin: UInt8 = 14
    public static let scryptLogNMax: UInt8 = 17
    public static let saltBytes = 8...64
    public static let hashBytes = 16...64

    /// Names of users and roles: 1...64 bytes of `A-Z a-z 0-9 . _ @ -` (they appear in
    /// certificates' common names, logs and the auth log).
    public static func validateName(_ name: [UInt8], _ field: String) throws(KVCommandError) {
        guard (1...nameBytesMax).contains(name.count) else {
            throw KVCommandError(.invalidField, "\(field): got \(name.count) bytes, want 1...\(nameBytesMax)")
        }
        for b in name {
            let ok = (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || b == 0x2E || b == 0x5F || b == 0x40
                || b == 0x2D
            guard ok else {
                throw KVCommandError(.invalidField, "\(field): got byte 0x\(String(b, radix: 16)), want A-Z a-z 0-9 . _ @ -")
            }
        }
    }
}

/// What a role may do with the keys of a range.
public struct KVPermission: Hashable, Sendable {
    public enum Access: UInt8, Hashable, Sendable, CaseIterable {
        case read = 1, write = 2, readwrite = 3
        public var name: String {
            switch self {
            case .read: "read"
            case .write: "write"
            case .readwrite: "readwrite"
            }
        }
        /// Whether this access includes `other`.
        public func includes(_ other: Access) -> Bool { rawValue & other.rawValue == other.rawValue }
    }
    public var access: Access
    public var range: KeyRange

    public init(_ access: Access, _ range: KeyRange) {
        self.access = access
        self.range = range
    }
}

/// A password as stored: scrypt(password, salt, N = 2^logN, r, p), never the password. The
/// client computes it with a fresh salt (the password does not enter the log or reach the
/// node); a node computes it again to check an `authenticate` request.
public struct KVPasswordHash: Hashable, Sendable {
    public var logN: UInt8
    public var r: UInt32
    public var p: UInt32
    public var salt: [UInt8]
    public var hash: [UInt8]

    public init(logN: UInt8, r: UInt32, p: UInt32, salt: [UInt8], hash: [UInt8]) {
        self.logN = logN
        self.r = r
        self.p = p
        self.salt = salt
        self.hash = hash
    }

    func validate() throws(KVCommandError) {
        // Bounded so that checking a password costs a node at most 64 MiB and a fraction of a
        // second: 128 · N · r bytes of memory, p times over.
        guard (KVAuthLimits.scryptLogNMin...KVAuthLimits.scryptLogNMax).contains(logN), (1...16).contains(r), (1...4).contains(p),
            (128 << Int(logN)) * Int(r) <= 64 << 20
        else {
            throw KVCommandError(.invalidField, "scrypt parameters: got N=2^\(logN) r=\(r) p=\(p), want N=2^14...2^17, r 1...16, p 1...4, 128·N·r <= 64 MiB")
        }
        guard KVAuthLimits.saltBytes.contains(salt.count), KVAuthLimits.hashBytes.contains(hash.count) else {
            throw KVCommandError(.invalidField, "password hash: got a \(salt.count)-byte salt and a \(hash.count)-byte hash, want 8...64 and 16...64")
        }
    }

    func encode(into w: inout ByteWriter) {
        w.u8(logN)
        w.u32(r)
        w.u32(p)
        w.lengthPrefixed(salt)
        w.lengthPrefixed(hash)
    }

    init(from r: inout ByteReader) throws(KVDecodingError) {
        let logN = try r.u8("scrypt log N")
        let blockSize = try r.u32("scrypt r")
        let parallelism = try r.u32("scrypt p")
        let salt = try r.lengthPrefixed("salt", max: KVAuthLimits.saltBytes.upperBound)
        let hash = try r.lengthPrefixed("hash", max: KVAuthLimits.hashBytes.upperBound)
        self.init(logN: logN, r: blockSize, p: parallelism, salt: salt, hash: hash)
    }
}

/// A user as the state holds it.
public struct KVUser: Hashable, Sendable {
    public var name: [UInt8]
    /// nil: no password; the user can only be bound by a client certificate naming it.
    public var password: KVPasswordHash?
    /// Sorted, one each.
    public var roles: [[UInt8]]

    public init(name: [UInt8], password: KVPasswordHash?, roles: [[UInt8]] = []) {
        self.name = name
        self.password = password
        self.roles = roles
    }

    public var isRoot: Bool { roles.contains(KVAuthLimits.root) }

    /// `u8 version=1 | flag hasPassword | [password] | u16 roleCount | lp role…`.
    var encoded: [UInt8] {
        var w = ByteWriter()
        w.u8(1)
        w.flag(password != nil)
        password?.encode(into: &w)
        w.u16(UInt16(clamping: roles.count))
        for role in roles { w.lengthPrefixed(role) }
        return w.bytes
    }

    public init(name: [UInt8], decoding bytes: [UInt8]) throws(KVDecodingError) {
        var r = ByteReader(bytes, context: "user record")
        let version = try r.u8("format version")
        guard version == 1 else { throw KVDecodingError(.unsupportedVersion, "user record version: got \(version), want 1") }
        let password = try r.flag("has password") ? try KVPasswordHash(from: &r) : nil
        let n = Int(try r.u16("role count"))
        guard n <= KVAuthLimits.rolesPerUserMax else {
            throw KVDecodingError(.limitExceeded, "user roles: got \(n), want <= \(KVAuthLimits.rolesPerUserMax)")
        }
        var roles: [[UInt8]] = []
        for _ in 0..<n { roles.append(try r.lengthPrefixed("role", max: KVAuthLimits.nameBytesMax)) }
        try r.finish()
        self.init(name: name, password: password, roles: roles)
    }
}

/// A role as the state holds it.
public struct KVRole: Hashable, Sendable {
    public var name: [UInt8]
    /// In the order granted; one per range.
    public var permissions: [KVPermission]

    public init(name: [UInt8], permissions: [KVPermission] = []) {
        self.name = name
        self.permissions = permissions
    }

    /// `u8 version=1 | u16 count | (u8 access | range)…`.
    var encoded: [UInt8] {
        var w = ByteWriter()
        w.u8(1)
        w.u16(UInt16(clamping: permissions.count))
        for p in permissions {
            w.u8(p.access.rawValue)
            p.range.encode(into: &w)
        }
        return w.bytes
    }

    public init(name: [UInt8], decoding bytes: [UInt8]) throws(KVDecodingError) {
        var r = ByteReader(bytes, context: "role record")
        let version = try r.u8("format version")
        guard version == 1 else { throw KVDecodingError(.unsupportedVersion, "role record version: got \(version), want 1") }
        let n = Int(try r.u16("permission count"))
        guard n <= KVAuthLimits.permissionsPerRoleMax else {
            throw KVDecodingError(.limitExceeded, "role permissions: got \(n), want <= \(KVAuthLimits.permissionsPerRoleMax)")
        }
        var permissions: [KVPermission] = []
        for _ in 0..<n {
            let raw = try r.u8("access")
            guard let access = KVPermission.Access(rawValue: raw) else {
                throw KVDecodingError(.unknownTag, "permission access: got \(raw), want 1...3")
            }
            permissions.append(KVPermission(access, try KeyRange(from: &r)))
        }
        try r.finish()
        self.init(name: name, permissions: permissions)
    }
}

/// A change of users, roles or the enabled flag: root only while auth is enabled.
public enum KVAuthCommand: Hashable, Sendable {
    /// Turns checks on; needs a `root` user with the `root` role.
    case enable
    case disable
    case userAdd(name: [UInt8], password: KVPasswordHash?)
    case userDelete(name: [UInt8])
    /// Sets (or with nil removes) a user's password.
    case userPassword(name: [UInt8], password: KVPasswordHash?)
    case userGrantRole(user: [UInt8], role: [UInt8])
    case userRevokeRole(user: [UInt8], role: [UInt8])
    case roleAdd(name: [UInt8])
    /// Deletes a role and takes it from every user that has it.
    case roleDelete(name: [UInt8])
    /// Grants `permission` (replacing the access of a permission on the same range).
    case roleGrant(role: [UInt8], permission: KVPermission)
    /// Takes back the permission on exactly `range`.
    case roleRevoke(role: [UInt8], range: KeyRange)

    enum Tag: UInt8 {
        case enable = 1, disable, userAdd, userDelete, userPassword, userGrantRole, userRevokeRole, roleAdd, roleDelete
        case roleGrant, roleRevoke
    }

    func encode(into w: inout ByteWriter) {
        switch self {
        case .enable: w.u8(Tag.enable.rawValue)
        case .disable: w.u8(Tag.disable.rawValue)
        case .userAdd(let name, let password), .userPassword(let name, let password):
            if case .userAdd = self { w.u8(Tag.userAdd.rawValue) } else { w.u8(Tag.userPassword.rawValue) }
            w.lengthPrefixed(name)
            w.flag(password != nil)
            password?.encode(into: &w)
        case .userDelete(let name):
            w.u8(Tag.userDelete.rawValue)
            w.lengthPrefixed(name)
        case .userGrantRole(let user, let role), .userRevokeRole(let user, let role):
            if case .userGrantRole = self { w.u8(Tag.userGrantRole.rawValue) } else { w.u8(Tag.userRevokeRole.rawValue) }
            w.lengthPrefixed(user)
            w.lengthPrefixed(role)
        case .roleAdd(let name), .roleDelete(let name):
            if case .roleAdd = self { w.u8(Tag.roleAdd.rawValue) } else { w.u8(Tag.roleDelete.rawValue) }
            w.lengthPrefixed(name)
        case .roleGrant(let role, let permission):
            w.u8(Tag.roleGrant.rawValue)
            w.lengthPrefixed(role)
            w.u8(permission.access.rawValue)
            permission.range.encode(into: &w)
        case .roleRevoke(let role, let range):
            w.u8(Tag.roleRevoke.rawValue)
            w.lengthPrefixed(role)
            range.encode(into: &w)
        }
    }

    init(from r: inout ByteReader) throws(KVDecodingError) {
        let raw = try r.u8("auth command tag")
        let max = KVAuthLimits.nameBytesMax
        switch Tag(rawValue: raw) {
        case .enable: self = .enable
        case .disable: self = .disable
        case .userAdd, .userPassword:
            let name = try r.lengthPrefixed("user", max: max)
            let password = try r.flag("has password") ? try KVPasswordHash(from: &r) : nil
            self = raw == Tag.userAdd.rawValue ? .userAdd(name: name, password: password) : .userPassword(name: name, password: password)
        case .userDelete: self = .userDelete(name: try r.lengthPrefixed("user", max: max))
        case .userGrantRole, .userRevokeRole:
            let user = try r.lengthPrefixed("user", max: max)
            let role = try r.lengthPrefixed("role", max: max)
            self = raw == Tag.userGrantRole.rawValue ? .userGrantRole(user: user, role: role) : .userRevokeRole(user: user, role: role)
        case .roleAdd: self = .roleAdd(name: try r.lengthPrefixed("role", max: max))
        case .roleDelete: self = .roleDelete(name: try r.lengthPrefixed("role", max: max))
        case .roleGrant:
            let role = try r.lengthPrefixed("role", max: max)
            let rawAccess = try r.u8("access")
            guard let access = KVPermission.Access(rawValue: rawAccess) else {
                throw KVDecodingError(.unknownTag, "permission access: got \(rawAccess), want 1...3")
            }
            self = .roleGrant(role: role, permission: KVPermission(access, try KeyRange(from: &r)))
        case .roleRevoke:
            let role = try r.lengthPrefixed("role", max: max)
            self = .roleRevoke(role: role, range: try KeyRange(from: &r))
        case nil: throw KVDecodingError(.unknownTag, "auth command tag: got \(raw), want 1...11")
        }
    }

    func validate() throws(KVCommandError) {
        switch self {
        case .enable, .disable: break
        case .userAdd(let name, let password), .userPassword(let name, let password):
            try KVAuthLimits.validateName(name, "user name")
            try password?.validate()
        case .userDelete(let name): try KVAuthLimits.validateName(name, "user name")
        case .userGrantRole(let user, let role), .userRevokeRole(let user, let role):
            try KVAuthLimits.validateName(user, "user name")
            try KVAuthLimits.validateName(role, "role name")
        case .roleAdd(let name), .roleDelete(let name): try KVAuthLimits.validateName(name, "role name")
        case .roleGrant(let role, let permission):
            try KVAuthLimits.validateName(role, "role name")
            try permission.range.validate("permission range")
            try Self.validateUserSpace(permission.range)
        case .roleRevoke(let role, let range):
            try KVAuthLimits.validateName(role, "role name")
            try range.validate("permission range")
        }
    }

    private static func validateUserSpace(_ range: KeyRange) throws(KVCommandError) {
        guard !range.isEmpty else { throw KVCommandError(.invalidField, "permission range: got an empty range, want at least one key") }
        guard !KVSystemKeys.contains(range.start) else {
            throw KVCommandError(.reservedKey, "permission range: starts in the system key space (FF FF…), which only root reaches")
        }
    }

    /// One line for the auth log: what changed, keys printed with `printable`.
    var summary: String {
        func s(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }
        switch self {
        case .enable: return "auth enable"
        case .disable: return "auth disable"
        case .userAdd(let name, let password): return "user add \(s(name))\(password == nil ? " (no password)" : " (password)")"
        case .userDelete(let name): return "user delete \(s(name))"
        case .userPassword(let name, let password): return "user passwd \(s(name))\(password == nil ? " (removed)" : "")"
        case .userGrantRole(let user, let role): return "user grant-role \(s(user)) \(s(role))"
        case .userRevokeRole(let user, let role): return "user revoke-role \(s(user)) \(s(role))"
        case .roleAdd(let name): return "role add \(s(name))"
        case .roleDelete(let name): return "role delete \(s(name))"
        case .roleGrant(let role, let p): return "role grant \(s(role)) \(p.access.name) \(p.range.printable)"
        case .roleRevoke(let role, let range): return "role revoke \(s(role)) \(range.printable)"
        }
    }
}

extension KeyRange {
    /// `[start, end)` with printable ASCII as is and other bytes as `\xHH`; a single key alone.
    public var printable: String {
        func p(_ b: [UInt8]) -> String {
            b.map { (0x21...0x7E).contains($0) && $0 != 0x5C ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16).leftPadded }.joined()
        }
        if isSingleKey { return p(start) }
        return "[\(p(start)), \(end.map(p) ?? "∞"))"
    }
}

extension String {
    fileprivate var leftPadded: String { count < 2 ? "0" + self : self }
}

/// One line of the auth log: the record under `auth/log/<revision>`.
public struct KVAuthLogRecord: Hashable, Sendable {
    /// The user who made the change; empty: made while auth was disabled, by any client.
    public var principal: [UInt8]
    /// What changed (`KVAuthCommand.summary`).
    public var change: String

    /// `u8 version=1 | lp principal | lp change (UTF-8)`.
    var encoded: [UInt8] {
        var w = ByteWriter()
        w.u8(1)
        w.lengthPrefixed(principal)
        w.lengthPrefixed(Array(change.utf8))
        return w.bytes
    }

    public init(principal: [UInt8], change: String) {
        self.principal = principal
        self.change = change
    }

    public init(decoding bytes: [UInt8]) throws(KVDecodingError) {
        var r = ByteReader(bytes, context: "auth log record")
        let version = try r.u8("format version")
        guard version == 1 else { throw KVDecodingError(.unsupportedVersion, "auth log record version: got \(version), want 1") }
        let principal = try r.lengthPrefixed("principal", max: KVAuthLimits.nameBytesMax)
        let change = try r.lengthPrefixed("change", max: 64 * 1024)
        try r.finish()
        self.init(principal: principal, change: String(decoding: change, as: UTF8.self))
    }
}
