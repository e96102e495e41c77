"""Every exception the client raises, rooted at `FaunaError`.

- `ServerError` and its per-code subclasses: an `error` frame a node answered (docs/PROTOCOL.md
  "Client messages", the code table), with the node's message and its leader hint.
- `ConnectionFailed`: no connection could be made to any node tried before the deadline.
- `DeadlineExceeded`: the call's deadline passed while it was retrying; `maybe_applied` says
  whether a write may still have committed.
- `SessionExpired`: a retried write's session was forgotten by the cluster after an attempt
  whose result is unknown (docs/KV-COMMANDS.md "Sessions"): re-read and decide.
- `ProtocolError`: bytes that do not follow docs/PROTOCOL.md (a broken frame or body from a
  node, or a malformed file or argument handed to a decoder).
- `InvalidArgument`: the client refused a call before sending it (a key too long, a str key).
- `VerificationError`: what the cluster answered to a verified read, or a proof file, does not
  verify (docs/AUDIT.md): `LyingNodeError`, `ForgedHeadError`, `RollbackError`, `ForkError`,
  `TrustError`, `InvalidProof`, each with `.check` (which check failed) and `.node` (the
  `Endpoint` whose answer failed it, or None).
- `TrustFileError`: trusted.json (or a member-keys file) cannot be read, parsed or written.
- `TLSError`: TLS between the client and a node is set up wrong (docs/SECURITY.md), never
  retried; raised itself when the CA, certificate or key files cannot be used.
  `TLSHandshakeError`: the handshake failed (a node certificate of another CA, a plaintext
  port, a client certificate the node refused). `TLSRequired` (code 13, also a `ServerError`):
  a plaintext client reached a TLS port.
- `AuthRequired`, `AuthFailed`, `PermissionDenied` (codes 14-16, or a write refused at apply):
  users are on (docs/SECURITY.md "Users and roles") and this connection is no user, its user
  name or password is wrong, or its user may not do this. Not retried; nothing was changed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .wire import Endpoint

__all__ = [
    "FaunaError", "ProtocolError", "ServerError", "NotLeader", "Unavailable", "Overloaded", "Timeout",
    "Compacted", "FutureRevision", "InvalidRequest", "InternalError", "PeerRejected", "Unsupported",
    "Behind", "ConnectionFailed", "ConnectionLost", "RequestTimeout", "TooManyInFlight", "DeadlineExceeded", "SessionExpired", "ClientClosed", "InvalidArgument",
    "VerificationError", "LyingNodeError", "ForgedHeadError", "RollbackError", "ForkError", "TrustError",
    "InvalidProof", "TrustFileError", "TLSError", "TLSHandshakeError", "TLSRequired", "AuthRequired", "AuthFailed",
    "PermissionDenied", "ERROR_NAMES", "server_error",
]

#: ErrorResponse codes of docs/PROTOCOL.md and their names there.
ERROR_NAMES: dict[int, str] = {
    1: "notLeader", 2: "unavailable", 3: "overloaded", 4: "timeout", 5: "compacted", 6: "futureRevision",
    7: "invalidRequest", 8: "internalError", 9: "peerRejected", 10: "unsupported", 11: "behind", 12: "leaseNotFound",
    13: "tlsRequired", 14: "authRequired", 15: "authFailed", 16: "permissionDenied",
}


class FaunaError(Exception):
    """Base of every error this package raises on purpose."""


class ProtocolError(FaunaError):
    """Bytes that do not follow docs/PROTOCOL.md (from a node, a file or the caller)."""


class InvalidArgument(FaunaError, ValueError):
    """A call the client refuses before sending: it breaks a documented limit or rule."""


class ClientClosed(FaunaError):
    """The client was closed before or during the call."""


class ConnectionFailed(FaunaError, ConnectionError):
    """No node could be reached (connect refused or timed out) before the deadline."""


class ConnectionLost(FaunaError, ConnectionError):
    """The connection closed (or broke the protocol) after the request was sent: the node may
    have run it. Raised by one attempt (`fauna.pool`); the client retries."""


class RequestTimeout(FaunaError, TimeoutError):
    """One attempt got no answer within its timeout; the node may still run the request.
    Raised by one attempt (`fauna.pool`); the client retries."""


class TooManyInFlight(FaunaError):
    """The connection limits of the pool are reached; nothing was sent."""


class DeadlineExceeded(FaunaError, TimeoutError):
    """The call's deadline (or attempt budget) ran out while retrying.

    `maybe_applied` is True when some attempt of a write may have been proposed (a timeout, a
    connection lost after sending): the write may still commit. `last_error` is the last
    failure seen, also chained as `__cause__`.
    """

    def __init__(self, message: str, *, last_error: Optional[BaseException] = None, maybe_applied: bool = False):
        super().__init__(message)
        self.last_error = last_error
        self.maybe_applied = maybe_applied


class SessionExpired(FaunaError):
    """The cluster forgot the session of a write that was retried after an attempt whose result
    is unknown: whether the write happened is unknown (docs/KV-COMMANDS.md "Sessions")."""

    def __init__(self, message: str, *, client_id: int, sequence: int, last_applied: Optional[int]):
        super().__init__(message)
        self.client_id = client_id
        self.sequence = sequence
        self.last_applied = last_applied


class VerificationError(FaunaError):
    """What the cluster answered, or a proof file, does not verify (docs/AUDIT.md).

    `check` names the check that failed ("effect", "inclusion", "quorum", "consistency",
    "rollback", "pin", "cluster", ...); `node` is the endpoint whose answer failed it, or None
    when no single node is to blame (a proof file, a trusted state that does not match)."""

    def __init__(self, message: str, *, check: str = "", node: Optional["Endpoint"] = None):
        super().__init__(message)
        self.check = check
        self.node = node


class LyingNodeError(VerificationError):
    """The serving node's record, entry, effect or proof does not match what a quorum signed."""


class ForgedHeadError(VerificationError):
    """A tree head that a strict majority of the pinned member keys did not validly sign."""


class RollbackError(VerificationError):
    """The cluster's history is shorter than the head the client trusts."""


class ForkError(VerificationError):
    """A head that does not extend the trusted head."""


class TrustError(VerificationError):
    """Member keys cannot be pinned, or the cluster is not the trusted one."""


class InvalidProof(VerificationError):
    """A proof file that is malformed or does not prove what it claims."""


class TrustFileError(FaunaError):
    """trusted.json (or a member-keys file) cannot be read, parsed or written."""


class TLSError(FaunaError):
    """TLS between this client and a node is set up wrong (docs/SECURITY.md): the client does not
    retry it, another attempt would fail the same way. Raised itself when the CA, certificate or
    key files cannot be used; subclasses `TLSHandshakeError` and `TLSRequired`. `endpoint` is
    the node, when one is involved."""

    endpoint: Optional[tuple[str, int]] = None


class TLSHandshakeError(TLSError):
    """The TLS handshake with a node failed, or the node refused this client's certificate right
    after it (TLS 1.3). The message says what to check: the CA given, whether the node's port is
    plaintext, the client certificate."""

    def __init__(self, message: str, *, endpoint: Optional[tuple[str, int]] = None):
        super().__init__(message)
        self.endpoint = endpoint


class ServerError(FaunaError):
    """An `error` answer of a node: its code, the code's name, its message and leader hint.

    `leader` is the hinted leader's node ID, `leader_address` its client address (host, port),
    `endpoint` the (host, port) of the node that answered, when known.
    """

    code: int = 0

    def __init__(self, code: int, message: str, *, leader: Optional[int] = None,
                 leader_address: Optional[tuple[str, int]] = None, endpoint: Optional[tuple[str, int]] = None):
        self.code = code
        self.message = message
        self.leader = leader
        self.leader_address = leader_address
        self.endpoint = endpoint
        where = f" (from {endpoint[0]}:{endpoint[1]})" if endpoint else ""
        super().__init__(f"{self.code_name}: {message}{where}")

    @property
    def code_name(self) -> str:
        return ERROR_NAMES.get(self.code, f"code{self.code}")


class NotLeader(ServerError):
    """Code 1: retry at the leader in the hint (or any other node)."""
    code = 1


class Unavailable(ServerError):
    """Code 2: no leader known, or the node is stopping; retry later."""
    code = 2


class Overloaded(ServerError):
    """Code 3: a queue or in-flight limit is full; back off."""
    code = 3


class Timeout(ServerError):
    """Code 4: not done in time on the node; a write may still commit."""
    code = 4


class Compacted(ServerError):
    """Code 5 (or a write's `compacted` outcome): the revision asked for was compacted.
    `requested` / `compacted_revision` are set when the node said them (apply outcome)."""
    code = 5
    requested: Optional[int] = None
    compacted_revision: Optional[int] = None


class FutureRevision(ServerError):
    """Code 6 (or a write's `futureRevision` outcome): the revision is above the current one."""
    code = 6
    requested: Optional[int] = None
    current_revision: Optional[int] = None


class InvalidRequest(ServerError):
    """Code 7 (or a write's `invalid` outcome, `invalid_code` set): the request breaks a rule."""
    code = 7
    invalid_code: Optional[int] = None


class InternalError(ServerError):
    """Code 8, and any code this client does not know (PROTOCOL.md says: treat as internal)."""
    code = 8


class PeerRejected(ServerError):
    """Code 9: a peer hello named another cluster or node (not expected on the client port)."""
    code = 9


class Unsupported(ServerError):
    """Code 10: the node does not implement this request."""
    code = 10


class Behind(ServerError):
    """Code 11: the node has not applied as far as the request needs; retry or ask another."""
    code = 11


class LeaseNotFound(ServerError):
    """Code 12: no such lease (never granted, revoked or expired)."""
    code = 12


class TLSRequired(ServerError, TLSError):
    """Code 13: this client spoke plaintext to a port that takes TLS only; the node answered this
    and closed the connection. Connect with TLS: the cluster's CA (`fauna.TLSConfig(ca=...)`,
    `[tls]` of cluster.toml with `from_config`, or `fauna --ca`). Not retried."""
    code = 13

    def __init__(self, code: int, message: str, **hints: object):
        super().__init__(code, message, **hints)  # type: ignore[arg-type]
        self.args = (f"{self.args[0]}; this client connected without TLS: give it the cluster's CA "
                     "(fauna.TLSConfig(ca=...), [tls] in cluster.toml with from_config, or fauna --ca)",)


class AuthRequired(ServerError):
    """Code 14 (or a write's `invalid(authRequired)` outcome): users are on and this connection
    runs as no user: give `user=`/`password=`, or a client certificate whose common name is a
    user. Not retried."""
    code = 14


class AuthFailed(ServerError):
    """Code 15: unknown user or wrong password. Not retried."""
    code = 15


class PermissionDenied(ServerError):
    """Code 16 (or a write's `invalid(permissionDenied)` outcome): the connection's user may not
    do this; nothing was changed. Not retried."""
    code = 16


_BY_CODE: dict[int, type[ServerError]] = {
    cls.code: cls for cls in (NotLeader, Unavailable, Overloaded, Timeout, Compacted, FutureRevision,
                              InvalidRequest, InternalError, PeerRejected, Unsupported, Behind, LeaseNotFound,
                              TLSRequired, AuthRequired, AuthFailed, PermissionDenied)
}


def server_error(code: int, message: str, *, leader: Optional[int] = None,
                 leader_address: Optional[tuple[str, int]] = None,
                 endpoint: Optional[tuple[str, int]] = None) -> ServerError:
    """The exception for an error answer: the subclass of `code`, `InternalError` for unknown
    codes (keeping the code the node sent)."""
    cls = _BY_CODE.get(code, InternalError)
    return cls(code, message, leader=leader, leader_address=leader_address, endpoint=endpoint)
