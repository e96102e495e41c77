import Crypto
import FaunaKV
import FaunaRPC
import FaunaRaft
import FaunaStore
import Foundation
import NIOConcurrencyHelpers

/// The node's copy of the applied auth state (users, roles, whether auth is enabled), and the
/// checks made with it on requests that do not go through the log (docs/SECURITY.md "Users and
/// roles"). Writes are checked again by the state machine at their own index, which is what
/// decides; reads are checked here once their ReadIndex wait is over, against the state applied
/// by then. The apply stage loads it before serving anything and refreshes it after every
/// applied batch that wrote a system key and after a snapshot install. Safe from any thread.
public final class AuthGate: Sendable {
    /// nil until loaded: requests that need a check are answered `unavailable` until then.
    private let snapshot = NIOLockedValueBox<KVAuthSnapshot?>(nil)
    /// Failed logins per user name (a bounded map): each answer waits 100 ms · 2^(failures-1),
    /// at most 5 s, before it is given.
    private let failures = NIOLockedValueBox<[HashedBytes: Int]>([:])
    private let hashing = NIOLockedValueBox(0)
    /// The applied membership (voters and learners): a connection whose certificate names one
    /// of them reads and audits as the node (`principal`).
    private let members = NIOLockedValueBox<Set<NodeID>>([])
    /// HTTP Basic credentials that matched (SHA-256 of user, 0, password → the stored hash they
    /// matched), so that a status page polling every 2 s does not cost a scrypt hash per poll.
    /// An entry counts only while the user's stored hash is the one it matched: a new password
    /// or a deleted user ends it. Bounded; the password itself is never kept.
    private let verified = NIOLockedValueBox<[[UInt8]: KVPasswordHash]>([:])

    static let verifiedMax = 256

    static let failuresTracked = 10_000
    /// Password checks at once: half the cores, at least one. A check is scrypt (about 32 MiB
    /// and 50 ms in a release build, 0.65 s in a debug one): logins must never take the CPU
    /// that Raft's heartbeats need.
    static let hashingMax = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)

    public init() {}

    /// Reads the auth state of `store` again. Errors are the store's (fail-stop for the caller).
    func refresh(from store: any StateStore) throws(StoreError) {
        let loaded: KVAuthSnapshot
        do {
            loaded = try store.authSnapshot()
        } catch {
            throw StoreError(wrapping: error, "auth state")
        }
        snapshot.withLockedValue { $0 = loaded }
        setMembers(store.appliedConfState)
    }

    /// Takes the applied membership (after a batch that changed it).
    func setMembers(_ confState: ConfState) {
        members.withLockedValue { $0 = Set(confState.voters + confState.learners) }
    }

    /// Who a request runs as: nil (the node itself) when `nodeMay` and the connection's
    /// certificate names a current member and no user is bound, else the connection's
    /// principal. A node's certificate already lets it be a peer, which receives every entry;
    /// on the client port it only reads and audits (its status page compares the members'
    /// roots and digests): a write it sends names its certificate's common name, which is no
    /// user, and is refused when it applies.
    private func principal(_ identity: ConnectionIdentity?, nodeMay: Bool) -> [UInt8]? {
        guard let identity else { return [] }
        if nodeMay, !identity.certificateNodes.isEmpty, !identity.hasBoundUser {
            let member = members.withLockedValue { m in identity.certificateNodes.contains { m.contains($0) } }
            if member { return nil }
        }
        return identity.principal
    }

    /// Whether authentication is enabled in the applied state (false until loaded).
    public var isEnabled: Bool { snapshot.withLockedValue { $0?.enabled ?? false } }

    /// What the request's connection may do when it reads; nil until the state is loaded.
    func access(_ context: RPCRequestContext) -> KVAccess? {
        let principal = principal(context.identity, nodeMay: true)
        return snapshot.withLockedValue { $0?.access(of: principal) }
    }

    /// The error answer for a refused request.
    static func refusal(_ error: KVCommandError) -> RPCMessage {
        let code: RPCErrorCode =
            switch error.code {
            case .authRequired: .authRequired
            case .permissionDenied: .permissionDenied
            default: .invalidRequest
            }
        return .error(RPCErrorResponse(code, error.reason))
    }

    private static let loadingText = "the node is loading its auth state; retry"
    private static let loading = RPCMessage.error(RPCErrorResponse(.unavailable, loadingText))
    private static let failedText = "authentication failed: unknown user or wrong password"
    private static var busyText: String { "\(hashingMax) logins are being checked; retry shortly" }

    /// nil if the request may go on, else the answer refusing it. With auth disabled this is
    /// one lock and a flag: it runs on the event loop for every request, floods included (an
    /// `overloaded` answer must stay cheap; a string built per request here cost a loaded
    /// 2-core node its leadership under a hashKV flood).
    /// `nodeMay`: a member node's certificate passes (reads and audits only; `principal`).
    func check(_ context: RPCRequestContext, nodeMay: Bool, _ rule: (KVAccess) -> KVCommandError?) -> RPCMessage? {
        let state = snapshot.withLockedValue { $0 }
        guard let state else { return Self.loading }
        guard state.enabled else { return nil }
        let access = state.access(of: principal(context.identity, nodeMay: nodeMay))
        if case .everything = access.level { return nil }
        return rule(access).map(Self.refusal)
    }

    func checkRoot(_ context: RPCRequestContext, _ what: @autoclosure () -> String, nodeMay: Bool = false) -> RPCMessage? {
        check(context, nodeMay: nodeMay) { $0.checkRoot(what()) }
    }
    func checkBound(_ context: RPCRequestContext, nodeMay: Bool = false) -> RPCMessage? {
        check(context, nodeMay: nodeMay) { $0.checkBound() }
    }
    func checkRead(_ context: RPCRequestContext, _ range: KeyRange) -> RPCMessage? {
        check(context, nodeMay: true) { $0.check(.read, KVSystemKeys.clipped(range)) }
    }

    /// Checks `request`'s user name and password off the calling thread and answers it: on a
    /// match the connection is bound to the user (`authenticateResponse`), otherwise
    /// `authFailed`, after a delay that grows with the user's recent failures.
    func authenticate(_ request: AuthenticateRequest, _ context: RPCRequestContext) {
        guard let identity = context.identity else {
            return context.respond(.error(RPCErrorResponse(.invalidRequest, "authenticate: this connection cannot be bound to a user")))
        }
        checkPassword(user: request.user, password: request.password) { verdict in
            switch verdict {
            case .matched:
                identity.bind(request.user)
                context.respond(.authenticateResponse(user: request.user))
            case .failed:
                context.respond(.error(RPCErrorResponse(.authFailed, Self.failedText)))
            case .busy:
                context.respond(.error(RPCErrorResponse(.overloaded, Self.busyText)))
            case .loading:
                context.respond(Self.loading)
            }
        }
    }

    enum PasswordVerdict: Sendable { case matched, failed, busy, loading }

    /// Compares `password` with `user`'s stored hash off the calling thread, after a delay that
    /// grows with the user's recent failures, and calls `done` once with the outcome.
    private func checkPassword(user: [UInt8], password: [UInt8], done: @escaping @Sendable (PasswordVerdict) -> Void) {
        guard snapshot.withLockedValue({ $0 != nil }) else { return done(.loading) }
        let name = HashedBytes(user)
        let failed = failures.withLockedValue { $0[name] ?? 0 }
        let delay = failed == 0 ? 0 : min(100 << min(failed - 1, 6), 5_000)
        // The delay comes first and holds nothing: logins failing against one name do not take
        // the hashing slots of everyone else.
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(delay)) { [self] in
            let admitted = hashing.withLockedValue { n -> Bool in
                guard n < Self.hashingMax else { return false }
                n += 1
                return true
            }
            guard admitted else { return done(.busy) }
            defer { hashing.withLockedValue { $0 -= 1 } }
            let stored = snapshot.withLockedValue { $0?.users[name]?.password }
            // An unknown user or one without a password costs the same hash, so that the
            // answer's timing does not tell which names exist.
            let target = stored ?? Self.decoy
            let matches = (try? PasswordHashing.matches(password, target)) ?? false
            if matches, stored != nil {
                failures.withLockedValue { _ = $0.removeValue(forKey: name) }
                done(.matched)
            } else {
                failures.withLockedValue { map in
                    if map[name] == nil, map.count >= Self.failuresTracked, let some = map.keys.first { map.removeValue(forKey: some) }
                    map[name, default: 0] += 1
                }
                done(.failed)
            }
        }
    }

    // MARK: The HTTP port

    /// What a path of the metrics and status port needs when auth is enabled.
    public enum HTTPNeed: Sendable {
        /// Any user (`/metrics`: figures, no keys or values).
        case user
        /// The root role (the status page: members, addresses, roots and state digests, which
        /// the client port gives only to root).
        case root
    }

    /// The outcome of `authorizeHTTP`.
    public enum HTTPVerdict: Sendable, Equatable {
        case allowed
        /// No credentials, or ones that did not match (401).
        case unauthenticated(String)
        /// A known user without the right (403).
        case forbidden(String)
        /// The auth state is loading, or too many logins are being checked (503).
        case unavailable(String)
    }

    /// Decides whether a request of the HTTP port may have what `need` asks, and calls `done`
    /// once (at once, or from another thread after a password check). The connection's
    /// certificate counts as on the client port (its common name names the user; a member
    /// node's certificate passes); `basic` (HTTP Basic credentials), when given, is checked
    /// like an `authenticate` request, failures slowed alike, and takes precedence.
    public func authorizeHTTP(
        identity: ConnectionIdentity, basic: (user: [UInt8], password: [UInt8])?, need: HTTPNeed,
        done: @escaping @Sendable (HTTPVerdict) -> Void
    ) {
        guard let state = snapshot.withLockedValue({ $0 }) else { return done(.unavailable(Self.loadingText)) }
        guard state.enabled else { return done(.allowed) }
        guard let basic else {
            let principal = principal(identity, nodeMay: true)
            if principal?.isEmpty == true {
                return done(.unauthenticated(
                    "authentication is on: log in with HTTP Basic (a user with a password) or a client certificate of the cluster's CA"))
            }
            return done(decide(principal, need))
        }
        let key = Array(SHA256.hash(data: basic.user + [0] + basic.password))
        let remembered = verified.withLockedValue { $0[key] }
        if let remembered, state.users[HashedBytes(basic.user)]?.password == remembered {
            return done(decide(basic.user, need))
        }
        checkPassword(user: basic.user, password: basic.password) { [self] verdict in
            switch verdict {
            case .matched:
                if let hash = snapshot.withLockedValue({ $0?.users[HashedBytes(basic.user)]?.password }) {
                    verified.withLockedValue { map in
                        if map.count >= Self.verifiedMax, let some = map.keys.first { map.removeValue(forKey: some) }
                        map[key] = hash
                    }
                }
                done(decide(basic.user, need))
            case .failed: done(.unauthenticated(Self.failedText))
            case .busy: done(.unavailable(Self.busyText))
            case .loading: done(.unavailable(Self.loadingText))
            }
        }
    }

    private func decide(_ principal: [UInt8]?, _ need: HTTPNeed) -> HTTPVerdict {
        guard let access = snapshot.withLockedValue({ $0?.access(of: principal) }) else { return .unavailable(Self.loadingText) }
        let refusal = need == .root ? access.checkRoot("the status page") : access.checkBound()
        guard let refusal else { return .allowed }
        return refusal.code == .permissionDenied ? .forbidden(refusal.reason) : .unauthenticated(refusal.reason)
    }

    /// A stored hash no password matches in practice, checked for unknown users.
    private static let decoy = KVPasswordHash(
        logN: 15, r: 8, p: 1, salt: [UInt8](repeating: 0x5A, count: 16), hash: [UInt8](repeating: 0, count: 32))
}
