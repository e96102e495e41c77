import ArgumentParser
import FaunaClient
import FaunaKV
import FaunaRPC
import FctlCore
import Foundation

// Users, roles and authentication (docs/SECURITY.md "Users and roles", docs/CLI.md). Every
// change is an entry: its revision is printed, and `fctl auth log` lists them.

/// Runs one auth change and prints its revision.
private func change(_ global: GlobalOptions, _ action: String, _ what: String, _ command: KVAuthCommand) async throws {
    try await change(global, action, what) { client throws(FaunaClientError) in try await client.changeAuth(command) }
}

private func change(
    _ global: GlobalOptions, _ action: String, _ what: String, _ body: (FaunaClient) async throws(FaunaClientError) -> Revision
) async throws {
    let revision = try await withClient(global, doing: action, body)
    if global.json { global.printJSON(["revision": revision.rawValue, "change": what]) } else { print("\(what) → revision \(revision)") }
}

/// A new password: the first line of stdin (`--password-stdin`), or nil (`--no-password`).
/// The client library hashes it (scrypt, a fresh salt); only the hash is sent.
private func newPassword(stdin: Bool, none: Bool) throws(FctlError) -> [UInt8]? {
    guard stdin != none else { throw FctlError(.usage, "give exactly one of --password-stdin and --no-password") }
    guard stdin else { return nil }
    let data = FileHandle.standardInput.readData(ofLength: AuthenticateRequest.passwordBytesMax + 2)
    let line = String(decoding: data, as: UTF8.self).split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    let bytes = Array(line.utf8)
    guard !bytes.isEmpty else { throw FctlError(.usage, "--password-stdin: got an empty first line, want the password") }
    guard bytes.count <= AuthenticateRequest.passwordBytesMax else {
        throw FctlError(.usage, "--password-stdin: got more than \(AuthenticateRequest.passwordBytesMax) bytes, want fewer")
    }
    return bytes
}

private func name(_ text: String, _ what: String) throws(FctlError) -> [UInt8] {
    let bytes = Array(text.utf8)
    do {
        try KVAuthLimits.validateName(bytes, what)
    } catch {
        throw FctlError(.usage, error.reason)
    }
    return bytes
}

/// KEY, KEY END, or KEY --prefix as a range.
private func keyRange(_ global: GlobalOptions, _ key: String, _ end: String?, prefix: Bool) throws(FctlError) -> KeyRange {
    let start = try global.bytes(key, "key")
    if prefix {
        guard end == nil else { throw FctlError(.usage, "give END or --prefix, not both") }
        return .prefix(start)
    }
    if let end { return KeyRange(start: start, end: try global.bytes(end, "end")) }
    return .single(start)
}

struct AuthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auth",
        abstract: "Turn authentication on or off, show it, list every auth change.",
        discussion: """
            `enable` needs a user root with the root role (fctl user add root ...; fctl user \
            grant-role root root). From then on every request runs as its connection's user.
            """,
        subcommands: [Enable.self, Disable.self, Status.self, Log.self])

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Turn authentication on.")
        @OptionGroup var global: GlobalOptions
        func run() async throws { try await change(global, "auth enable", "auth enabled", .enable) }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Turn authentication off (root only).")
        @OptionGroup var global: GlobalOptions
        func run() async throws { try await change(global, "auth disable", "auth disabled", .disable) }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print whether authentication is enabled.")
        @OptionGroup var global: GlobalOptions
        func run() async throws {
            let enabled = try await withClient(global, doing: "auth status") { client throws(FaunaClientError) in try await client.isAuthEnabled() }
            if global.json { global.printJSON(["enabled": enabled]) } else { print(enabled ? "auth enabled" : "auth disabled") }
        }
    }

    struct Log: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List every change of users, roles and auth (root only).",
            discussion: """
                One line per change: REVISION<TAB>USER<TAB>CHANGE<TAB>KEY. USER is who made it: the \
                user its connection was bound to, or its certificate's common name ("-": neither). Each line is a record written by the change's own entry: \
                `fctl get --hex --verify KEY` proves it like any record.
                """)
        @OptionGroup var global: GlobalOptions
        func run() async throws {
            let lines = try await withClient(global, doing: "auth log") { client throws(FaunaClientError) in try await client.authLog() }
            for line in lines {
                let who = line.record.principal.isEmpty ? "-" : String(decoding: line.record.principal, as: UTF8.self)
                let key = line.key.map { String(format: "%02x", $0) }.joined()
                if global.json {
                    global.printJSON(["revision": line.revision.rawValue, "user": who, "change": line.record.change, "key": key])
                } else {
                    print("\(line.revision)\t\(who)\t\(line.record.change)\t\(key)")
                }
            }
        }
    }
}

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Add, delete and list users; set passwords; grant and revoke roles.",
        discussion: """
            Names: 1-64 of A-Z a-z 0-9 . _ @ -. A user without a password is bound by a client \
            certificate whose common name is the user's name. Passwords are read from stdin \
            (--password-stdin) and only their salted scrypt hash leaves fctl.
            """,
        subcommands: [Add.self, Delete.self, Passwd.self, List.self, Get.self, GrantRole.self, RevokeRole.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add user NAME.")
        @OptionGroup var global: GlobalOptions
        @Argument var user: String
        @Flag(name: .customLong("password-stdin"), help: "Read the password from the first line of stdin.") var passwordStdin = false
        @Flag(name: .customLong("no-password"), help: "No password: the user is bound by a client certificate only.") var noPassword = false
        func run() async throws {
            let n = try name(user, "user name")
            let password = try newPassword(stdin: passwordStdin, none: noPassword)
            try await change(global, "user add", "user \(user) added") { client throws(FaunaClientError) in
                try await client.addUser(n, password: password)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete user NAME.")
        @OptionGroup var global: GlobalOptions
        @Argument var user: String
        func run() async throws {
            let n = try name(user, "user name")
            try await change(global, "user delete", "user \(user) deleted", .userDelete(name: n))
        }
    }

    struct Passwd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set (or with --no-password remove) the password of NAME.")
        @OptionGroup var global: GlobalOptions
        @Argument var user: String
        @Flag(name: .customLong("password-stdin"), help: "Read the password from the first line of stdin.") var passwordStdin = false
        @Flag(name: .customLong("no-password"), help: "Remove the password.") var noPassword = false
        func run() async throws {
            let n = try name(user, "user name")
            let password = try newPassword(stdin: passwordStdin, none: noPassword)
            try await change(global, "user passwd", "password of \(user) \(password == nil ? "removed" : "set")") { client throws(FaunaClientError) in
                try await client.setPassword(n, password: password)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users and their roles (root only).")
        @OptionGroup var global: GlobalOptions
        func run() async throws {
            let users = try await withClient(global, doing: "user list") { client throws(FaunaClientError) in try await client.users() }
            for user in users { printUser(user, global) }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show user NAME (root only). Exit 1 if there is none.")
        @OptionGroup var global: GlobalOptions
        @Argument var user: String
        func run() async throws {
            let n = try name(user, "user name")
            let users = try await withClient(global, doing: "user get") { client throws(FaunaClientError) in try await client.users() }
            guard let found = users.first(where: { $0.name == n }) else { throw FctlError(.notFound, "user get: no user \(user)") }
            printUser(found, global)
        }
    }

    struct GrantRole: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "grant-role", abstract: "Give user NAME role ROLE.")
        @OptionGroup var global: GlobalOptions
        @Argument var user: String
        @Argument var role: String
        func run() async throws {
            let (u, r) = (try name(user, "user name"), try name(role, "role name"))
            try await change(global, "user grant-role", "user \(user) has role \(role)", .userGrantRole(user: u, role: r))
        }
    }

    struct RevokeRole: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "revoke-role", abstract: "Take role ROLE from user NAME.")
        @OptionGroup var global: GlobalOptions
        @Argument var user: String
        @Argument var role: String
        func run() async throws {
            let (u, r) = (try name(user, "user name"), try name(role, "role name"))
            try await change(global, "user revoke-role", "user \(user) no longer has role \(role)", .userRevokeRole(user: u, role: r))
        }
    }
}

private func printUser(_ user: KVUser, _ global: GlobalOptions) {
    let name = String(decoding: user.name, as: UTF8.self)
    let roles = user.roles.map { String(decoding: $0, as: UTF8.self) }
    if global.json {
        global.printJSON(["user": name, "roles": roles, "password": user.password != nil])
    } else {
        print("\(name)\troles: \(roles.isEmpty ? "-" : roles.joined(separator: ","))\t\(user.password != nil ? "password" : "certificate only")")
    }
}

struct RoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "role",
        abstract: "Add, delete and list roles; grant and revoke their permissions on keys.",
        discussion: """
            A permission is read, write or readwrite on one KEY, the keys in [KEY, END), or every \
            key with prefix KEY (--prefix). The role root is built in and may do everything.
            """,
        subcommands: [Add.self, Delete.self, List.self, Get.self, Grant.self, Revoke.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add role NAME (no permissions yet).")
        @OptionGroup var global: GlobalOptions
        @Argument var role: String
        func run() async throws {
            let n = try name(role, "role name")
            try await change(global, "role add", "role \(role) added", .roleAdd(name: n))
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete role NAME and take it from every user.")
        @OptionGroup var global: GlobalOptions
        @Argument var role: String
        func run() async throws {
            let n = try name(role, "role name")
            try await change(global, "role delete", "role \(role) deleted", .roleDelete(name: n))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List roles and their permissions (root only).")
        @OptionGroup var global: GlobalOptions
        func run() async throws {
            let roles = try await withClient(global, doing: "role list") { client throws(FaunaClientError) in try await client.roles() }
            for role in roles { printRole(role, global) }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show role NAME (root only). Exit 1 if there is none.")
        @OptionGroup var global: GlobalOptions
        @Argument var role: String
        func run() async throws {
            let n = try name(role, "role name")
            let roles = try await withClient(global, doing: "role get") { client throws(FaunaClientError) in try await client.roles() }
            guard let found = roles.first(where: { $0.name == n }) else { throw FctlError(.notFound, "role get: no role \(role)") }
            printRole(found, global)
        }
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let role NAME read, write or readwrite KEY [END] (or --prefix KEY).")
        @OptionGroup var global: GlobalOptions
        @Argument var role: String
        @Argument(help: "read, write or readwrite") var access: String
        @Argument var key: String
        @Argument var end: String?
        @Flag(help: "Every key that begins with KEY.") var prefix = false
        func run() async throws {
            let n = try name(role, "role name")
            guard let level = KVPermission.Access.allCases.first(where: { $0.name == access }) else {
                throw FctlError(.usage, "access \"\(access)\": want read, write or readwrite")
            }
            let range = try keyRange(global, key, end, prefix: prefix)
            try await change(global, "role grant", "role \(role) may \(level.name) \(range.printable)", .roleGrant(role: n, permission: KVPermission(level, range)))
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take back the permission of role NAME on exactly KEY [END] (or --prefix KEY).")
        @OptionGroup var global: GlobalOptions
        @Argument var role: String
        @Argument var key: String
        @Argument var end: String?
        @Flag(help: "Every key that begins with KEY.") var prefix = false
        func run() async throws {
            let n = try name(role, "role name")
            let range = try keyRange(global, key, end, prefix: prefix)
            try await change(global, "role revoke", "role \(role) no longer has \(range.printable)", .roleRevoke(role: n, range: range))
        }
    }
}

private func printRole(_ role: KVRole, _ global: GlobalOptions) {
    let name = String(decoding: role.name, as: UTF8.self)
    let permissions = role.permissions.map { "\($0.access.name) \($0.range.printable)" }
    if global.json {
        global.printJSON(["role": name, "permissions": permissions])
    } else {
        print("\(name)\t\(permissions.isEmpty ? "-" : permissions.joined(separator: "; "))")
    }
}
