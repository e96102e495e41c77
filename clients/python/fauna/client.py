"""The blocking client.

```python
import fauna
with fauna.Client.from_config("cluster.toml") as c:
    c.put(b"k1", b"v1")
    rec = c.get(b"k1")            # Record(key, value, create_revision, mod_revision, version) or None
```

Writes go to the leader (found from `notLeader` hints, endpoints tried in turn on failure) and
are exactly-once: each carries a session (client ID, sequence) that every retry repeats
(docs/KV-COMMANDS.md "Sessions"). Every call is bounded by its `timeout` (default
`ClientConfig.timeout`), every attempt by `ClientConfig.request_timeout`, every connect by
`ClientConfig.connect_timeout`. A Client is safe to share between threads: requests are
pipelined on pooled connections (`fauna.pool`).

TLS (docs/SECURITY.md): `Client(endpoints, tls=fauna.TLSConfig(ca="tls/ca.crt"))` (or an
`ssl.SSLContext`); `Client.from_config` takes `[tls]` of the cluster.toml. A TLS failure raises
a `fauna.TLSError` at once, never retried (`fauna.tls`).

Hook for other modules (fauna.verify, fauna.audit, fauna.cli) — the generic request API:

- `client.request(kind, body, *, timeout=None, endpoint=None) -> (kind, body)`: sends one
  request frame (`wire.Kind`, body bytes) and returns the answer's kind and body, with the same
  retries as every call: to `endpoint` only if given (connection failures, `overloaded`,
  `unavailable`, `behind` and `timeout` retried there until the deadline), else to the leader
  (following `notLeader` hints, then the other endpoints). A non-retryable `error` answer
  raises its `ServerError` subclass; running out of time raises `DeadlineExceeded` (or
  `ConnectionFailed` if no node could be reached).
- `client.request_all(kind, body, *, timeout=None, endpoints=None) -> {Endpoint: (kind, body)
  or FaunaError}`: the same request to every endpoint (default: the configured ones) at once,
  one attempt each, within `timeout`.
- `client.endpoints` (configured), `client.members()` (their client addresses as the leader
  knows them, `Member.client`), `client.leader` (believed leader, or None), `client.config`.
- `client.get(key, verify=True, ...)` calls `fauna.verify.verified_get(client, key,
  revision=..., timeout=..., endpoint=..., trusted_path=..., cluster_name=...)`.
- `client.cluster_name`: the cluster's name from cluster.toml (`from_config`), or None.
"""
from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any, Iterable, Optional, Union

from . import _core
from ._core import CompactResult, DeleteResult, Op, PutResult, Send, T, TxnResult, credentials_of
from .config import ClientConfig
from .errors import ClientClosed, FaunaError, InvalidArgument
from .pool import Pool
from .tls import TLSLike
from .verify import verified_get
from .wire import (
    ApplyResult, Command, Compare, Endpoint, HashKVResult, Member, MemberChange, NodeStatus, RangeRequest,
    LeaseOpResult, RangeResult, Record, TxnOp,
)

__all__ = ["Client"]

EndpointLike = Union[Endpoint, tuple[str, int], str]


class Client(_core.ClientBase):
    """A blocking client of a Fauna cluster; see the module docstring."""

    def __init__(self, endpoints: Iterable[EndpointLike], *, config: Optional[ClientConfig] = None,
                 pool: Optional[Pool] = None, cluster_name: Optional[str] = None, tls: TLSLike = None,
                 user: Optional[bytes] = None, password: Optional[bytes] = None):
        if pool is not None and (tls is not None or user is not None):
            raise InvalidArgument("tls= and user= go to the Pool given (Pool(config, tls=..., credentials=...)), not to the Client")
        credentials = credentials_of(user, password) if pool is None else pool.credentials
        super().__init__(endpoints, config, cluster_name, tls if pool is None else pool.tls, credentials)
        self._pool = pool or Pool(self._core.config, tls=self._tls, credentials=self._credentials)
        self._closed = threading.Event()

    @property
    def pool(self) -> Pool:
        return self._pool

    def close(self) -> None:
        """Closes every connection; calls in flight fail, later calls raise ClientClosed."""
        self._closed.set()
        self._pool.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the driver ----------------------------------------------------------------------

    def _run(self, op: Op[T]) -> T:
        """Runs an operation of fauna._core: its sends on the pool, its pauses as sleeps."""
        try:
            action = next(op)
            while True:
                if self._closed.is_set():
                    raise ClientClosed("the client is closed")
                result: object = None
                if isinstance(action, Send):
                    try:
                        result = self._pool.request(action.endpoint, action.kind, action.body,
                                                    timeout=action.timeout, connect_timeout=action.connect_timeout)
                    except FaunaError as e:
                        result = e
                else:
                    time.sleep(action.seconds)
                action = op.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            op.close()

    # --- generic requests ----------------------------------------------------------------

    def request(self, kind: int, body: bytes, *, timeout: Optional[float] = None,
                endpoint: Optional[EndpointLike] = None) -> tuple[int, bytes]:
        """One request with retries; see the module docstring."""
        route: _core.Route = _core.LEADER if endpoint is None else Endpoint.of(endpoint)
        return self._run(_core.request(self._core, kind, bytes(body), route, self._core.budget(timeout)))

    def request_all(self, kind: int, body: bytes, *, timeout: Optional[float] = None,
                    endpoints: Optional[Iterable[EndpointLike]] = None) -> dict[Endpoint, Union[tuple[int, bytes], FaunaError]]:
        """The same request to every endpoint at once, one attempt each; answers or errors."""
        eps = [Endpoint.of(e) for e in (endpoints if endpoints is not None else self.endpoints)]

        def one(e: Endpoint) -> tuple[int, bytes]:
            return self._run(_core.request(self._core, kind, bytes(body), e, self._core.budget(timeout, 1)))
        return self._each(eps, one)

    def _each(self, eps: list[Endpoint], fn: Any) -> dict[Endpoint, Any]:
        out: dict[Endpoint, Any] = {}
        if not eps:
            return out
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(eps), 16)) as ex:
            futures = {e: ex.submit(fn, e) for e in eps}
            for e, f in futures.items():
                try:
                    out[e] = f.result()
                except FaunaError as err:
                    out[e] = err
        return out

    # --- data ----------------------------------------------------------------------------

    def write(self, command: Command, *, timeout: Optional[float] = None) -> ApplyResult:
        """Runs a command (wire.Put, DeleteRange, Txn, Compact) exactly once and returns the raw
        apply result, whatever its outcome."""
        return self._run(_core.write(self._core, command, self._core.budget(timeout)))

    def put(self, key: bytes, value: bytes, *, if_absent: bool = False, prev: bool = False, lease: int = 0,
            timeout: Optional[float] = None) -> PutResult:
        """Sets `key` to `value`. `if_absent`: only if the key does not exist (else the result
        says `already_exists` and nothing is written); `prev`: return the previous record; `lease`: attach the key to
        that lease (`grant_lease`)."""
        return self._run(_core.put(self._core, key, value, if_absent=if_absent, prev=prev, timeout=timeout, lease=lease))

    def grant_lease(self, ttl: int, *, lease_id: int = 0, timeout: Optional[float] = None) -> LeaseOpResult:
        """A lease of `ttl` seconds (1...31,536,000; docs/KV-COMMANDS.md "Leases"); `lease_id` 0
        takes the grant's revision. Its keys (`put(..., lease=ID)`) are deleted when it is revoked
        or when the leader sees no keep-alive for `ttl` seconds."""
        return self._run(_core.grant_lease(self._core, ttl, lease_id, timeout))

    def revoke_lease(self, lease_id: int, *, timeout: Optional[float] = None) -> int:
        """Revokes lease `lease_id` now: its keys are deleted; returns how many. An unknown lease
        raises `InvalidRequest` (invalid outcome leaseNotFound)."""
        return self._run(_core.revoke_lease(self._core, lease_id, timeout))

    def keep_alive_once(self, lease_id: int, *, timeout: Optional[float] = None) -> int:
        """Renews lease `lease_id` at the leader for its whole TTL (returned, in seconds); send one
        every third of the TTL. A lease that is gone raises `LeaseNotFound`."""
        return self._run(_core.keep_alive_once(self._core, lease_id, timeout))

    def get(self, key: bytes, *, revision: Optional[int] = None, serializable: bool = False, verify: bool = False,
            timeout: Optional[float] = None, endpoint: Optional[EndpointLike] = None,
            trusted_path: Optional[str] = None, cluster_name: Optional[str] = None) -> Optional[Record]:
        """The record of `key` (at `revision`, or now), or None. Linearizable unless
        `serializable` (any node, possibly stale); at `endpoint` only if given.

        `verify=True`: a verified read (`fauna.verify.verified_get`, docs/AUDIT.md §10): the
        record returned is a `VerifiedRecord` proven by a quorum of the pinned member keys in
        trusted.json (`trusted_path`, default fctl's file for `cluster_name` or the client's
        cluster name), read from `endpoint` or the leader; a check that fails raises a
        `VerificationError`. `trusted_path` and `cluster_name` go with `verify=True` only."""
        ep = None if endpoint is None else Endpoint.of(endpoint)
        if verify:
            if serializable:
                raise InvalidArgument("verify=True reads linearizably: drop serializable=True")
            return verified_get(self, key, revision=revision, timeout=timeout, endpoint=ep, trusted_path=trusted_path,
                                cluster_name=cluster_name)
        if trusted_path is not None or cluster_name is not None:
            raise InvalidArgument("trusted_path= and cluster_name= go with verify=True")
        return self._run(_core.get(self._core, key, revision=revision, serializable=serializable, timeout=timeout,
                                   endpoint=ep))

    def range(self, start: Optional[bytes] = None, end: Optional[bytes] = None, *, prefix: Optional[bytes] = None,
              limit: Optional[int] = None, revision: Optional[int] = None, reverse: bool = False,
              keys_only: bool = False, count_only: bool = False, serializable: bool = False,
              timeout: Optional[float] = None, endpoint: Optional[EndpointLike] = None) -> RangeResult:
        """Keys in [start, end) (no end: to the last key), or with `prefix`, or every key (no
        start, no prefix); at most `limit` records, `more` says if cut; `count` counts all."""
        req = RangeRequest(_core.scan_range(start, end, prefix), limit, revision, reverse, keys_only, count_only)
        ep = None if endpoint is None else Endpoint.of(endpoint)
        return self._run(_core.read(self._core, req, serializable=serializable, timeout=timeout, endpoint=ep))

    def delete(self, key: Optional[bytes] = None, end: Optional[bytes] = None, *, prefix: Optional[bytes] = None,
               prev: bool = False, timeout: Optional[float] = None) -> DeleteResult:
        """Deletes `key`, or [key, end), or every key with `prefix`; `deleted` counts them."""
        return self._run(_core.delete(self._core, _core.key_range(key, prefix=prefix, end=end), prev=prev,
                                      timeout=timeout))

    def txn(self, compares: Iterable[Compare] = (), success: Iterable[TxnOp] = (), failure: Iterable[TxnOp] = (),
            *, timeout: Optional[float] = None) -> TxnResult:
        """If every compare holds, runs `success`, else `failure`, atomically at one revision.
        Compares: `fauna.value(b"k") == b"v"`, `fauna.version(b"k") > 2`, ...; operations:
        `fauna.Put`, `fauna.DeleteRange`, `fauna.RangeRequest` (or `fauna.txn_get` ...)."""
        return self._run(_core.txn(self._core, list(compares), list(success), list(failure), timeout))

    def compact(self, revision: int, *, timeout: Optional[float] = None) -> CompactResult:
        """Discards history below `revision` (Compacted / FutureRevision if out of range)."""
        return self._run(_core.compact(self._core, revision, timeout))

    # --- admin ---------------------------------------------------------------------------

    def status(self, endpoint: Optional[EndpointLike] = None, *, timeout: Optional[float] = None) -> NodeStatus:
        """The status of `endpoint`, or of the first configured node that answers."""
        route: _core.Route = _core.ANY if endpoint is None else Endpoint.of(endpoint)
        return self._run(_core.status(self._core, route, timeout))

    def status_all(self, *, timeout: Optional[float] = None) -> dict[Endpoint, Union[NodeStatus, FaunaError]]:
        """Every configured node's status (or why it did not answer), asked at once."""
        return self._each(self.endpoints, lambda e: self._run(_core.status(self._core, e, timeout, 1)))

    def find_leader(self, *, timeout: Optional[float] = None) -> Endpoint:
        """The known leader, else the node whose status says it leads in the highest term."""
        if self.leader is not None:
            return self.leader
        return _core.pick_leader(self._core, None, self.status_all(timeout=timeout))

    def members(self, *, timeout: Optional[float] = None) -> list[Member]:
        """The cluster's members as the leader knows them."""
        return self._run(_core.members(self._core, timeout))

    def add_learner(self, node_id: int, peer: EndpointLike, client: EndpointLike, *,
                    timeout: Optional[float] = None) -> list[Member]:
        """Adds node `node_id` as a learner; returns the new member list. A retry after a lost
        answer may be refused (the change is in already): check `members()`."""
        body = MemberChange.add_learner(node_id, Endpoint.of(peer), Endpoint.of(client))
        return self._run(_core.member_change(self._core, body, timeout))

    def promote(self, node_id: int, *, timeout: Optional[float] = None) -> list[Member]:
        return self._run(_core.member_change(self._core, MemberChange.promote(node_id), timeout))

    def remove_member(self, node_id: int, *, timeout: Optional[float] = None) -> list[Member]:
        return self._run(_core.member_change(self._core, MemberChange.remove(node_id), timeout))

    def transfer_leadership(self, node_id: int, *, timeout: Optional[float] = None) -> None:
        """Asks the leader to hand leadership to `node_id`; returns when it moved."""
        self._run(_core.transfer_leadership(self._core, node_id, timeout))

    def hash_kv(self, endpoint: Optional[EndpointLike] = None, *, timeout: Optional[float] = None) -> HashKVResult:
        """The state digest of `endpoint` (or of the first node that answers)."""
        route: _core.Route = _core.ANY if endpoint is None else Endpoint.of(endpoint)
        return self._run(_core.hash_kv(self._core, route, timeout))

    def hash_kv_all(self, *, timeout: Optional[float] = None) -> dict[Endpoint, Union[HashKVResult, FaunaError]]:
        return self._each(self.endpoints, lambda e: self._run(_core.hash_kv(self._core, e, timeout, 1)))
