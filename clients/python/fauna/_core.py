"""What the blocking `Client` and the asyncio `AsyncClient` share: routing, retries, sessions,
and every operation, written once as generators that never do I/O themselves (sans-IO).

An operation is a generator that yields actions and gets their results sent back:

- `Send(endpoint, kind, body, timeout, connect_timeout)`: one attempt; the driver sends back
  the answer `(kind, body)`, or the exception the attempt ended with (`ConnectionFailed`,
  `ConnectionLost`, `RequestTimeout`, `TooManyInFlight`, `ProtocolError`, `TLSError`).
- `Sleep(seconds)`: a backoff pause; the driver sends back None.

The operation's return value (StopIteration.value) is the call's result; an exception it raises
is the call's. The drivers are `Client._run` (sockets, time.sleep) and `AsyncClient._run`
(asyncio streams, asyncio.sleep).
"""
from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Generator, Iterable, Mapping, Optional, TypeVar, Union

from .config import ClientConfig, load_cluster_file
from .errors import (
    AuthFailed, Behind, ConnectionFailed, ConnectionLost, DeadlineExceeded, FaunaError, InvalidArgument, NotLeader, Overloaded,
    ProtocolError, RequestTimeout, ServerError, SessionExpired, Timeout, TLSError, TooManyInFlight, Unavailable,
)
from .wire import (
    INVALID_CODES, ApplyResult, Command, Compact, DeleteOpResult, DeleteRange, Endpoint, HashKVResult, KeyRange, Kind, Member,
    MemberChange, NodeStatus, Outcome, Proposal, Put, PutOpResult, RangeRequest, RangeResult, ReadRequest, Record,
    Txn, TxnOp, Compare, apply_result_error, as_bytes, check_key, decode_apply_result, decode_error, decode_hashkv,
    decode_members, decode_range_result, decode_status, LeaseGrant, LeaseOpResult, LeaseRevoke,
    decode_lease_keep_alive_response, encode_lease_keep_alive,
)
from .codec import varint
from .tls import ClientTLS, TLSLike

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    endpoint: Endpoint
    kind: int
    body: bytes
    timeout: float
    connect_timeout: float


@dataclass(frozen=True)
class Sleep:
    seconds: float


Action = Union[Send, Sleep]
Op = Generator[Action, object, T]

# Where a request goes.
LEADER = "leader"  # the known leader, else the endpoints in turn; follows notLeader hints
ANY = "any"        # the endpoints in turn (serializable reads)
Route = Union[str, Endpoint]

# Kinds only a leader answers with success: a success names the leader.
_LEADER_ONLY = frozenset({Kind.WRITE, Kind.MEMBER_CHANGE})
# Attempt failures after which nothing was sent (the request certainly did not run).
_NOT_SENT = (ConnectionFailed, TooManyInFlight)
# `unavailable` answers given before a write is proposed (FaunaPipeline NodeCore+Requests).
_UNAVAILABLE_BEFORE_PROPOSAL = ("leadership is being transferred",)


# --- results ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PutResult:
    """A put: the write's `revision`; `previous` record if `prev=True` (None on a replay);
    `already_exists` if `if_absent=True` found the key (nothing written)."""
    revision: int
    previous: Optional[Record] = None
    is_replay: bool = False
    already_exists: bool = False


@dataclass(frozen=True)
class DeleteResult:
    """A delete: how many keys it deleted, their records if `prev=True` (not on a replay)."""
    revision: int
    deleted: int
    previous: list[Record] = field(default_factory=list)
    is_replay: bool = False


@dataclass(frozen=True)
class TxnResult:
    """A transaction: which branch ran and one result per operation of it (PutOpResult,
    DeleteOpResult, RangeResult). A replay's results carry counts but no records. If a
    put-if-absent of the branch found its key, nothing ran: `already_exists` is that key and
    `succeeded` False."""
    revision: int
    succeeded: bool
    results: list[Union[PutOpResult, DeleteOpResult, RangeResult]] = field(default_factory=list)
    is_replay: bool = False
    already_exists: Optional[bytes] = None  # a put-if-absent in the branch found this key: nothing ran


@dataclass(frozen=True)
class CompactResult:
    """History below `compacted_to` is gone; `revision` is the compaction's own entry."""
    revision: int
    compacted_to: int
    is_replay: bool = False


# --- shared state ----------------------------------------------------------------------------

class ClusterState:
    """The configured endpoints, the leader the client believes in, and a round-robin cursor.
    Thread-safe (the lock is never held across I/O)."""

    def __init__(self, endpoints: list[Endpoint]):
        unique: list[Endpoint] = []
        for e in endpoints:
            if e not in unique:
                unique.append(e)
        if not unique:
            raise InvalidArgument("endpoints: got none, want at least one host:port")
        self.endpoints = unique
        self._leader: Optional[Endpoint] = None
        self._cursor = 0
        self._lock = threading.Lock()

    @property
    def leader(self) -> Optional[Endpoint]:
        with self._lock:
            return self._leader

    def note_leader(self, e: Endpoint) -> None:
        with self._lock:
            self._leader = e

    def forget_leader(self, e: Endpoint) -> None:
        with self._lock:
            if self._leader == e:
                self._leader = None

    def next_cursor(self) -> int:
        with self._lock:
            self._cursor += 1
            return self._cursor - 1

    def pick(self, route: Route, cursor: int, avoiding: Optional[Endpoint] = None) -> Endpoint:
        """The endpoint for an attempt: the route's node, or the known leader (for LEADER) unless
        it just failed, else the endpoints in turn from `cursor`, skipping `avoiding`."""
        if isinstance(route, Endpoint):
            return route
        if route == LEADER:
            leader = self.leader
            if leader is not None and leader != avoiding:
                return leader
        n = len(self.endpoints)
        e = self.endpoints[cursor % n]
        if e == avoiding and n > 1:
            e = self.endpoints[(cursor + 1) % n]
        return e


@dataclass
class Lease:
    """A write session (KV-COMMANDS.md "Sessions") and the sequence its next write uses."""
    client_id: int
    next: int


class SessionPool:
    """Sessions not in use. Each write in flight owns one, so concurrent writes never share a
    sequence (a session's sequences must apply in order) and a retry resends its own.

    A sequence is used up only when its write may have been applied: a write every attempt of
    which was refused before reaching the log (notLeader, connect refused, a client-side check)
    gives its number back, so a new session's first write is always sequence 1."""

    def __init__(self, idle_max: int, rng: random.Random):
        self._rng = rng
        self._idle_max = idle_max
        self._lock = threading.Lock()
        self.primary = self.fresh()  # the client's own ID: its first session
        self._idle: list[Lease] = [self.primary]

    def fresh(self) -> Lease:
        cid = 0
        while cid == 0:
            cid = self._rng.getrandbits(64)
        return Lease(cid, 1)

    def take(self) -> Lease:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self.fresh()

    def give_back(self, lease: Lease, used: bool) -> None:
        back = Lease(lease.client_id, lease.next + 1 if used else lease.next)
        with self._lock:
            if len(self._idle) < self._idle_max:
                self._idle.append(back)

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)


class Budget:
    """What one call may still spend, and what its attempts have seen."""

    def __init__(self, config: ClientConfig, timeout: Optional[float], attempts_max: Optional[int] = None):
        t = config.timeout if timeout is None else timeout
        if not t > 0:
            raise InvalidArgument(f"timeout: got {t!r}, want > 0 seconds")
        self.deadline = time.monotonic() + t
        self.attempts_left = attempts_max or config.attempts_max
        self.failures = 0
        self.ambiguous = False      # some attempt may have run the request
        self.reached_node = False   # some attempt got an answer or sent its request
        self.last_failure: Optional[BaseException] = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class Core:
    """The state one client (blocking or asyncio) keeps: settings, cluster view, sessions."""

    def __init__(self, endpoints: list[Union[Endpoint, tuple[str, int], str]], config: Optional[ClientConfig],
                 rng: Optional[random.Random] = None):
        self.config = config or ClientConfig()
        self.rng = rng or random.Random()
        self.state = ClusterState([Endpoint.of(e) for e in endpoints])
        self.sessions = SessionPool(self.config.idle_sessions_max, self.rng)

    def budget(self, timeout: Optional[float], attempts_max: Optional[int] = None) -> Budget:
        return Budget(self.config, timeout, attempts_max)

    def backoff(self, failures: int) -> float:
        d = min(self.config.backoff_max, self.config.backoff_initial * (2 ** min(failures, 20)))
        return self.rng.uniform(d / 2, d)


def credentials_of(user: Optional[bytes], password: Optional[bytes]) -> Optional[tuple[bytes, bytes]]:
    """(user, password) for the pool, or None; both or neither."""
    if (user is None) != (password is None):
        raise InvalidArgument("user= and password= go together")
    return None if user is None else (user, password)  # type: ignore[return-value]


class ClientBase:
    """What the blocking and the asyncio client share: their Core and its read-only views."""

    def __init__(self, endpoints: Iterable[Union[Endpoint, tuple[str, int], str]], config: Optional[ClientConfig],
                 cluster_name: Optional[str] = None, tls: TLSLike = None,
                 credentials: Optional[tuple[bytes, bytes]] = None):
        self._core = Core(list(endpoints), config)
        #: (user, password) every connection authenticates with, or None.
        self._credentials = credentials
        #: The cluster's name (from cluster.toml): verified reads keep their trusted state in
        #: fctl's ~/.config/fauna/<name>/trusted.json. None if unknown.
        self.cluster_name = cluster_name or None
        # The CA, certificate and key files are read here: a bad one raises TLSError now.
        self._tls = ClientTLS.of(tls)

    @classmethod
    def from_config(cls: type[CB], path: Union[str, "os.PathLike[str]"] = "cluster.toml", *,
                    config: Optional[ClientConfig] = None, tls: TLSLike = None, user: Optional[bytes] = None,
                    password: Optional[bytes] = None) -> CB:
        """A client of the nodes (client addresses) listed in a cluster.toml, knowing its name.
        TLS as the file's `[tls]` says (its `ca`, and `client_cert`/`client_key` if given),
        unless `tls` is given; plaintext if neither. With `user` and `password`, every
        connection authenticates as that user."""
        cluster = load_cluster_file(path)
        if tls is None and cluster.tls is not None:
            tls = cluster.tls.client()
        return cls(cluster.endpoints, config=config, cluster_name=cluster.name, tls=tls,  # type: ignore[call-arg]
                   user=user, password=password)

    @property
    def tls(self) -> Optional[ClientTLS]:
        """The TLS of the client's connections (context, CA), or None: plaintext."""
        return self._tls

    @property
    def endpoints(self) -> list[Endpoint]:
        return list(self._core.state.endpoints)

    @property
    def config(self) -> ClientConfig:
        return self._core.config

    @property
    def leader(self) -> Optional[Endpoint]:
        """The node the client believes leads (learned from answers and hints), if any."""
        return self._core.state.leader

    @property
    def client_id(self) -> int:
        """The client's own session ID (its first session; concurrent writes open more)."""
        return self._core.sessions.primary.client_id


CB = TypeVar("CB", bound=ClientBase)


# --- the retry loop --------------------------------------------------------------------------

def perform(core: Core, kind: int, body: bytes, route: Route, budget: Budget) -> Op[tuple[Endpoint, int, bytes]]:
    """Sends one request along `route` until an answer that is not a retryable error arrives or
    the budget runs out; returns (endpoint, answer kind, answer body).

    Retried: notLeader (at the hinted leader at once, else the next node), unavailable,
    overloaded, behind, timeout, and every attempt failure (after a backoff, at the next node
    unless the route names one) but a TLS failure (`TLSError`: configuration, which another
    attempt would meet again). Other error answers raise their ServerError subclass (so does
    tlsRequired, a `TLSRequired`)."""
    state = core.state
    cursor = state.next_cursor()
    hint_hops = 0
    endpoint = state.pick(route, cursor)
    while True:
        left = budget.remaining()
        if left <= 0 or budget.attempts_left <= 0:
            raise _exhausted(kind, budget)
        budget.attempts_left -= 1
        result = yield Send(endpoint, kind, body, min(core.config.request_timeout, left),
                            min(core.config.connect_timeout, left))
        failure: BaseException
        if isinstance(result, BaseException):
            if isinstance(result, (TLSError, AuthFailed)):
                # The handshake failed, the node refused the client's certificate before
                # reading any request, or its user name or password: nothing ran, and another
                # attempt would meet the same refusal.
                raise result
            failure = result
            if not isinstance(result, _NOT_SENT):  # sent: the node may have run it
                budget.reached_node = True
                budget.ambiguous = True
            if isinstance(result, (ConnectionFailed, ConnectionLost, ProtocolError)):
                state.forget_leader(endpoint)
        elif not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(f"driver sent {result!r}, want (kind, body) or an exception")
        else:
            budget.reached_node = True
            akind, abody = result
            if akind != Kind.ERROR:
                if route == LEADER and kind in _LEADER_ONLY:
                    state.note_leader(endpoint)
                return endpoint, akind, abody
            err = decode_error(abody, endpoint)
            failure = err
            if isinstance(err, NotLeader):
                state.forget_leader(endpoint)
                hinted = err.leader_address
                if route == LEADER and hinted is not None and hinted != endpoint and hint_hops <= len(state.endpoints):
                    # A hint is followed at once; only chains longer than the cluster (an
                    # election in progress) pay a backoff.
                    hint_hops += 1
                    budget.last_failure = err
                    endpoint = Endpoint.of(hinted)
                    state.note_leader(endpoint)
                    continue
            elif isinstance(err, (Unavailable, Overloaded, Behind)):
                if isinstance(err, Unavailable):
                    state.forget_leader(endpoint)
                    if kind == Kind.WRITE and not err.message.startswith(_UNAVAILABLE_BEFORE_PROPOSAL):
                        budget.ambiguous = True  # pending proposals of a stopping node
            elif isinstance(err, Timeout):
                budget.ambiguous = True
            else:
                raise err
        budget.last_failure = failure
        budget.failures += 1
        pause = min(core.backoff(budget.failures - 1), max(0.0, budget.remaining()))
        if pause > 0:
            yield Sleep(pause)
        cursor += 1
        endpoint = state.pick(route, cursor, avoiding=endpoint)


def _exhausted(kind: int, budget: Budget) -> FaunaError:
    name = Kind(kind).name.lower() if kind in Kind._value2member_map_ else f"kind {kind:#04x}"
    last = budget.last_failure
    if last is None:
        return DeadlineExceeded(f"{name}: the deadline passed before the first attempt")
    if not budget.reached_node and isinstance(last, ConnectionFailed):
        err: FaunaError = ConnectionFailed(f"{name}: no node could be reached; last: {last}")
    else:
        err = DeadlineExceeded(f"{name}: gave up after {budget.failures} failed attempts; last: {last}",
                               last_error=last, maybe_applied=budget.ambiguous)
    err.__cause__ = last
    return err


def request(core: Core, kind: int, body: bytes, route: Route, budget: Budget) -> Op[tuple[int, bytes]]:
    """`perform` without the endpoint: the generic request of Client.request."""
    _, akind, abody = yield from perform(core, kind, body, route, budget)
    return akind, abody


def _expect(endpoint: Endpoint, got: int, want: int) -> None:
    if got != want:
        raise ProtocolError(f"{endpoint} answered kind {got:#04x}, want {Kind(want).name.lower()} ({want:#04x})")


# --- writes ----------------------------------------------------------------------------------

def write(core: Core, command: Command, budget: Budget) -> Op[ApplyResult]:
    """Runs `command` exactly once and returns what applying it produced (any outcome).

    The write takes a session and its next sequence; every retry resends the same pair, so a
    write whose answer was lost applies once (the node then answers with `is_replay`). If the
    cluster forgot the session and no attempt may have run, the write is resent under a new
    session; otherwise the outcome is unknown: SessionExpired."""
    lease = core.sessions.take()
    used = False
    keep = True
    try:
        while True:
            body = Proposal(command, lease.client_id, lease.next).encode()
            endpoint, kind, answer = yield from perform(core, Kind.WRITE, body, LEADER, budget)
            used = True  # an answer: the sequence was applied (or is now known to be stale)
            _expect(endpoint, kind, Kind.WRITE_RESPONSE)
            res = decode_apply_result(answer)
            if res.outcome == Outcome.SESSION_EXPIRED:
                if budget.ambiguous:
                    raise SessionExpired(
                        f"session {lease.client_id:#x} sequence {lease.next} expired on the cluster (last applied "
                        f"{res.last_applied}) after an attempt whose result is unknown: re-read to see whether "
                        "the write happened", client_id=lease.client_id, sequence=lease.next,
                        last_applied=res.last_applied)
                lease = core.sessions.fresh()  # the old one is useless: not given back
                used = False
                continue
            if res.outcome == Outcome.INVALID and INVALID_CODES.get(res.invalid_code or 0) == "permissionDenied":
                # The refusal may be the session's own (another user owns it: KV-COMMANDS.md
                # "Sessions"): the next write takes a fresh session.
                keep = False
            return res
    except BaseException as e:
        if budget.ambiguous or isinstance(e, GeneratorExit):
            used = True  # an attempt may still apply: never reuse its sequence
        raise
    finally:
        if keep:
            core.sessions.give_back(lease, used)


def _applied(core: Core, command: Command, timeout: Optional[float]) -> Op[ApplyResult]:
    """`write`, raising the outcomes that are failures of the request (compacted, futureRevision,
    invalid) as their ServerError."""
    res = yield from write(core, command, core.budget(timeout))
    err = apply_result_error(res)
    if err is not None:
        raise err
    return res


def put(core: Core, key: object, value: object, *, if_absent: bool, prev: bool,
        timeout: Optional[float], lease: int = 0) -> Op[PutResult]:
    k = check_key(key)
    res = yield from _applied(core, Put(k, as_bytes(value, "value"), if_absent, prev, lease), timeout)
    if res.outcome == Outcome.ALREADY_EXISTS:
        return PutResult(res.revision, None, res.is_replay, True)
    previous = _only(res, PutOpResult).previous
    if previous is not None:
        previous = Record(k, previous.value, previous.create_revision, previous.mod_revision, previous.version)
    return PutResult(res.revision, previous, res.is_replay, False)


def grant_lease(core: Core, ttl: int, lease_id: int, timeout: Optional[float]) -> Op[LeaseOpResult]:
    res = yield from _applied(core, LeaseGrant(ttl, lease_id), timeout)
    return _only(res, LeaseOpResult)


def revoke_lease(core: Core, lease_id: int, timeout: Optional[float]) -> Op[int]:
    res = yield from _applied(core, LeaseRevoke(lease_id), timeout)
    return _only(res, DeleteOpResult).deleted


def keep_alive_once(core: Core, lease_id: int, timeout: Optional[float]) -> Op[int]:
    body = encode_lease_keep_alive(lease_id)
    _, ttl = yield from _admin(core, Kind.LEASE_KEEP_ALIVE, body, Kind.LEASE_KEEP_ALIVE_RESPONSE, LEADER,
                               core.budget(timeout), decode_lease_keep_alive_response)
    return ttl


def _only(res: ApplyResult, want: type[T]) -> T:
    if len(res.results) != 1 or not isinstance(res.results[0], want):
        raise ProtocolError(f"apply result: got {res.results!r}, want one {want.__name__}")
    return res.results[0]


def key_range(key: object = None, *, prefix: object = None, end: object = None) -> KeyRange:
    """What a delete names: `key` alone, [key, end), or every key with `prefix` (b"": all)."""
    if (key is None) == (prefix is None):
        raise InvalidArgument("give a key (and maybe end=) or prefix=, not both or neither")
    if prefix is not None:
        if end is not None:
            raise InvalidArgument("end= goes with a start key, not with prefix=")
        return KeyRange.prefix(prefix)  # type: ignore[arg-type]
    if end is None:
        return KeyRange.single(check_key(key))
    return KeyRange.between(key, end)  # type: ignore[arg-type]


def scan_range(start: object, end: object, prefix: object) -> KeyRange:
    """What a range read names: [start, end) (no end: to the last key), every key with
    `prefix`, or every key (neither)."""
    if prefix is not None:
        if start is not None or end is not None:
            raise InvalidArgument("prefix= excludes start and end")
        return KeyRange.prefix(prefix)  # type: ignore[arg-type]
    if start is None:
        if end is not None:
            raise InvalidArgument("end without start: give start=b\"\\x00\" for the first key")
        return KeyRange.prefix(b"")
    return KeyRange.between(start, end)  # type: ignore[arg-type]


def delete(core: Core, rng: KeyRange, *, prev: bool, timeout: Optional[float]) -> Op[DeleteResult]:
    res = yield from _applied(core, DeleteRange(rng, prev), timeout)
    d = _only(res, DeleteOpResult)
    return DeleteResult(res.revision, d.deleted, d.previous, res.is_replay)


def txn(core: Core, compares: list[Compare], success: list[TxnOp], failure: list[TxnOp],
        timeout: Optional[float]) -> Op[TxnResult]:
    res = yield from _applied(core, Txn(list(compares), list(success), list(failure)), timeout)
    if res.outcome == Outcome.ALREADY_EXISTS:  # a put-if-absent inside found its key: nothing ran
        return TxnResult(res.revision, False, [], res.is_replay, already_exists=res.existing_key)
    return TxnResult(res.revision, res.succeeded, res.results, res.is_replay)


def compact(core: Core, revision: int, timeout: Optional[float]) -> Op[CompactResult]:
    res = yield from _applied(core, Compact(revision), timeout)
    return CompactResult(res.revision, revision, res.is_replay)


# --- reads -----------------------------------------------------------------------------------

def read(core: Core, req: RangeRequest, *, serializable: bool, timeout: Optional[float],
         endpoint: Optional[Endpoint] = None) -> Op[RangeResult]:
    """A range read: linearizable ones at the known leader (any node serves them through
    ReadIndex), serializable ones round-robin; or at `endpoint` only."""
    body = ReadRequest(req, serializable).encode()
    route: Route = endpoint if endpoint is not None else (ANY if serializable else LEADER)
    ep, kind, answer = yield from perform(core, Kind.READ, body, route, core.budget(timeout))
    _expect(ep, kind, Kind.READ_RESPONSE)
    return decode_range_result(answer)


def get(core: Core, key: object, *, revision: Optional[int], serializable: bool, timeout: Optional[float],
        endpoint: Optional[Endpoint] = None) -> Op[Optional[Record]]:
    k = check_key(key)
    res = yield from read(core, RangeRequest(KeyRange.single(k), 1, revision), serializable=serializable,
                          timeout=timeout, endpoint=endpoint)
    for r in res.records:
        if r.key == k:
            return r
    if res.records:
        raise ProtocolError(f"get {k!r}: the node answered other keys {[r.key for r in res.records]!r}")
    return None


# --- admin -----------------------------------------------------------------------------------

def _admin(core: Core, kind: int, body: bytes, want: int, route: Route, budget: Budget,
           decode: Callable[[bytes], T]) -> Op[T]:
    ep, akind, answer = yield from perform(core, kind, body, route, budget)
    _expect(ep, akind, want)
    return decode(answer)


def status(core: Core, endpoint: Route, timeout: Optional[float], attempts_max: Optional[int] = None) -> Op[NodeStatus]:
    return (yield from _admin(core, Kind.STATUS, b"", Kind.STATUS_RESPONSE, endpoint,
                              core.budget(timeout, attempts_max), decode_status))


def members(core: Core, timeout: Optional[float]) -> Op[list[Member]]:
    return (yield from _admin(core, Kind.MEMBERS, b"", Kind.MEMBERS_RESPONSE, LEADER, core.budget(timeout),
                              decode_members))


def member_change(core: Core, body: bytes, timeout: Optional[float]) -> Op[list[Member]]:
    return (yield from _admin(core, Kind.MEMBER_CHANGE, body, Kind.MEMBERS_RESPONSE, LEADER, core.budget(timeout),
                              decode_members))


def transfer_leadership(core: Core, node_id: int, timeout: Optional[float]) -> Op[None]:
    if node_id < 1:
        raise InvalidArgument(f"node ID {node_id}, want >= 1")
    yield from _admin(core, Kind.LEADER_TRANSFER, varint(node_id), Kind.LEADER_TRANSFER_RESPONSE, LEADER,
                      core.budget(timeout), lambda b: _empty(b, "leaderTransferResponse"))
    leader = core.state.leader
    if leader is not None:
        core.state.forget_leader(leader)


def _empty(body: bytes, what: str) -> None:
    if body:
        raise ProtocolError(f"{what}: got {len(body)} body bytes, want none")


def hash_kv(core: Core, endpoint: Route, timeout: Optional[float], attempts_max: Optional[int] = None) -> Op[HashKVResult]:
    return (yield from _admin(core, Kind.HASH_KV, b"", Kind.HASH_KV_RESPONSE, endpoint,
                              core.budget(timeout, attempts_max), decode_hashkv))


def add_learner_body(node_id: int, peer: object, client: object) -> bytes:
    return MemberChange.add_learner(node_id, Endpoint.of(peer), Endpoint.of(client))  # type: ignore[arg-type]


def pick_leader(core: Core, known: Optional[Endpoint], statuses: Mapping[Endpoint, object]) -> Endpoint:
    """The known leader, else the endpoint whose status says it leads in the highest term."""
    if known is not None:
        return known
    leaders = [(st.term, e) for e, st in statuses.items() if isinstance(st, NodeStatus) and st.is_leader]
    if not leaders:
        raise Unavailable(2, "no node of " + ", ".join(map(str, statuses)) + " says it is the leader")
    best = max(leaders)[1]
    core.state.note_leader(best)
    return best
