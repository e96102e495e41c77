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
    }

    /// Whether authentication is enabled in the applied state (false until loaded).
    public var isEnabled: Bool { snapshot.withLockedValue { $0?.enabled ?? false } }

    /// What the request's connection may do; nil until the state is loaded.
    func access(_ context: RPCRequestContext) -> KVAccess? {
        let principal = context.principal
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

    private static let loading = RPCMessage.error(RPCErrorResponse(.unavailable, "the node is loading its auth state; retry"))

    /// nil if the request may go on, else the answer refusing it. With auth disabled this is
    /// one lock and a flag: it runs on the event loop for every request, floods included (an
    /// `overloaded` answer must stay cheap; a string built per request here cost a loaded
    /// 2-core node its leadership under a hashKV flood).
    func check(_ context: RPCRequestContext, _ rule: (KVAccess) -> KVCommandError?) -> RPCMessage? {
        let state = snapshot.withLockedValue { $0 }
        guard let state else { return Self.loading }
        guard state.enabled else { return nil }
        let access = state.access(of: context.principal)
        if case .everything = access.level { return nil }
        return rule(access).map(Self.refusal)
    }

    func checkRoot(_ context: RPCRequestContext, _ what: @autoclosure () -> String) -> RPCMessage? {
        check(context) { $0.checkRoot(what()) }
    }
    func checkBound(_ context: RPCRequestContext) -> RPCMessage? { check(context) { $0.checkBound() } }
    func checkRead(_ context: RPCRequestContext, _ range: KeyRange) -> RPCMessage? {
        check(context) { $0.check(.read, KVSystemKeys.clipped(range)) }
    }

    /// Checks `request`'s user name and password off the calling thread and answers it: on a
    /// match the connection is bound to the user (`authenticateResponse`), otherwise
    /// `authFailed`, after a delay that grows with the user's recent failures.
    func authenticate(_ request: AuthenticateRequest, _ context: RPCRequestContext) {
        guard let identity = context.identity else {
            return context.respond(.error(RPCErrorResponse(.invalidRequest, "authenticate: this connection cannot be bound to a user")))
        }
        guard snapshot.withLockedValue({ $0 != nil }) else { return context.respond(Self.loading) }
        let name = HashedBytes(request.user)
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
            guard admitted else {
                return context.respond(.error(RPCErrorResponse(.overloaded, "\(Self.hashingMax) logins are being checked; retry shortly")))
            }
            defer { hashing.withLockedValue { $0 -= 1 } }
            let stored = snapshot.withLockedValue { $0?.users[name]?.password }
            // An unknown user or one without a password costs the same hash, so that the
            // answer's timing does not tell which names exist.
            let target = stored ?? Self.decoy
            let matches = (try? PasswordHashing.matches(request.password, target)) ?? false
            if matches, stored != nil {
                failures.withLockedValue { _ = $0.removeValue(forKey: name) }
                identity.bind(request.user)
                context.respond(.authenticateResponse(user: request.user))
            } else {
                failures.withLockedValue { map in
                    if map[name] == nil, map.count >= Self.failuresTracked, let some = map.keys.first { map.removeValue(forKey: some) }
                    map[name, default: 0] += 1
                }
                context.respond(.error(RPCErrorResponse(.authFailed, "authentication failed: unknown user or wrong password")))
            }
        }
    }

    /// A stored hash no password matches in practice, checked for unknown users.
    private static let decoy = KVPasswordHash(
        logN: 15, r: 8, p: 1, salt: [UInt8](repeating: 0x5A, count: 16), hash: [UInt8](repeating: 0, count: 32))
}
