"""The asyncio client: `AsyncClient` has the API of `fauna.Client` with `async` methods.

```python
import asyncio, fauna.aio
async def main():
    async with fauna.aio.AsyncClient.from_config("cluster.toml") as c:
        await c.put(b"k1", b"v1")
        print(await c.get(b"k1"))
asyncio.run(main())
```

Routing, retries, sessions and every encoding are the blocking client's (fauna._core runs
them as generators); this module only drives them with asyncio streams: one reader task per
connection demultiplexes answers by request ID (pipelining), pooled as in `fauna.pool`.
A client belongs to the event loop it is first used on. With `tls=` (or `[tls]` of the
cluster.toml, `from_config`) each connection upgrades to TLS once connected
(`StreamWriter.start_tls`); TLS failures are `fauna.TLSError`, never retried (`fauna.tls`).
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import Any, Awaitable, Callable, Iterable, Optional, Union

from . import _core
from ._core import CompactResult, DeleteResult, Op, PutResult, Send, T, TxnResult, credentials_of
from .codec import frame
from .config import ClientConfig
from .client import Client
from .errors import (
    ClientClosed, ConnectionFailed, ConnectionLost, FaunaError, InvalidArgument, ProtocolError, RequestTimeout,
    TLSError,
)
from .pool import AUTHENTICATE_TIMEOUT_S, OPEN, PICK_POLL_S, Demux, Demuxed, PoolBase, authenticate_body, decoder_for, login_result
from .tls import ClientTLS, TLSLike, after_handshake_error, handshake_error
from .verify import verified_get_async
from .wire import (
    ApplyResult, Command, Compare, Endpoint, HashKVResult, Member, MemberChange, NodeStatus, RangeRequest,
    Kind, LeaseOpResult, RangeResult, Record, TxnOp,
)

__all__ = ["AsyncClient", "AsyncConnection", "AsyncPool"]

EndpointLike = Union[Endpoint, tuple[str, int], str]
_READ_BYTES = 1 << 16


class AsyncConnection(Demuxed):
    """One pipelined connection on asyncio streams (the asyncio twin of pool.Connection)."""

    def __init__(self, endpoint: Endpoint, config: ClientConfig, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, tls: Optional[ClientTLS] = None):
        self.endpoint = endpoint
        self._tls = tls
        self._writer = writer
        self._reader = reader
        self._demux: Demux[asyncio.Future[tuple[int, bytes]]] = Demux(config.in_flight_per_connection, str(endpoint))
        self._decoder = decoder_for(config)
        self._send_timeout = config.request_timeout
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def open(cls, endpoint: Endpoint, config: ClientConfig, connect_timeout: Optional[float] = None,
                   tls: Optional[ClientTLS] = None) -> "AsyncConnection":
        """Connects (and with `tls` does the handshake), each within `connect_timeout`."""
        wait = connect_timeout or config.connect_timeout
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(endpoint.host, endpoint.port), wait)
        except (OSError, asyncio.TimeoutError) as e:
            raise ConnectionFailed(f"cannot connect to {endpoint}: {e or type(e).__name__}") from e
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            try:
                await asyncio.wait_for(writer.start_tls(tls.context, server_hostname=endpoint.host,
                                                        ssl_handshake_timeout=wait), wait)
            except (OSError, EOFError, asyncio.TimeoutError) as e:
                writer.close()
                raise handshake_error(TimeoutError() if isinstance(e, asyncio.TimeoutError) else e,
                                      endpoint, tls) from e
        return cls(endpoint, config, reader, writer, tls)

    @property
    def tls_version(self) -> Optional[str]:
        """The TLS version in use ("TLSv1.3"), or None for a plaintext connection."""
        obj = self._writer.get_extra_info("ssl_object")
        return obj.version() if obj is not None else None

    def _tls_error(self, e: BaseException) -> Optional[TLSError]:
        if self._tls is None or not isinstance(e, ssl.SSLError):
            return None
        return after_handshake_error(e, self.endpoint, self._tls)

    async def call(self, kind: int, body: bytes, timeout: float) -> tuple[int, bytes]:
        """As pool.Connection.call."""
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        rid = self._demux.add(fut)
        try:
            try:
                self._writer.write(frame(kind, rid, body))
                await asyncio.wait_for(self._writer.drain(), self._send_timeout)
            except (OSError, asyncio.TimeoutError) as e:
                tls_error = self._tls_error(e)
                if tls_error is None and fut.done() and isinstance(fut.exception(), TLSError):
                    tls_error = fut.exception()  # the reader saw the node's refusal first
                self._fail(f"send failed: {e or type(e).__name__}", tls_error)
                if tls_error is not None:
                    raise tls_error from e
                raise ConnectionLost(f"{self.endpoint}: send failed: {e or type(e).__name__}") from e
            try:
                return await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                raise RequestTimeout(f"{self.endpoint}: no answer to request {rid} within {timeout:.3f} s") from None
        finally:
            self._demux.drop(rid)
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: the call raised its own error

    def close(self) -> None:
        self._fail("closed by the client")

    def _fail(self, reason: str, error: Optional[BaseException] = None) -> None:
        for fut in self._demux.close(reason):
            if not fut.done():
                fut.set_exception(error or ConnectionLost(f"{self.endpoint}: {reason}"))
        self._writer.close()
        if not self._task.done() and self._task is not asyncio.current_task():
            self._task.cancel()

    async def _read_loop(self) -> None:
        try:
            while not self._demux.is_closed:
                data = await self._reader.read(_READ_BYTES)
                if not data:
                    return self._fail("connection closed by the node")
                for f in self._decoder.feed(data):
                    fut = self._demux.route(f)
                    if fut is not None and not fut.done():
                        fut.set_result((f.kind, f.body))
        except ProtocolError as e:
            self._fail(f"protocol violation: {e}")
        except OSError as e:
            tls_error = self._tls_error(e)
            self._fail(f"read failed: {e}" if tls_error is None else f"TLS: {e}", tls_error)


class AsyncPool(PoolBase[AsyncConnection]):
    """asyncio connections per endpoint; `request` is one attempt (as pool.Pool); `tls=` as
    pool.Pool's."""

    async def request(self, endpoint: Endpoint, kind: int, body: bytes, *, timeout: float,
                      connect_timeout: Optional[float] = None) -> tuple[int, bytes]:
        wait = connect_timeout or self.config.connect_timeout
        deadline = time.monotonic() + wait
        while True:
            picked = self._pick(endpoint)
            if not isinstance(picked, str):
                return await picked.call(kind, body, timeout)
            if picked == OPEN:
                break
            if time.monotonic() >= deadline:
                raise ConnectionFailed(f"{endpoint}: no connection opened within {wait:.3f} s")
            await asyncio.sleep(PICK_POLL_S)
        conn: Optional[AsyncConnection] = None
        try:
            conn = await AsyncConnection.open(endpoint, self.config, connect_timeout, self.tls)
            if self.credentials is not None:
                try:
                    answer = await conn.call(Kind.AUTHENTICATE, authenticate_body(self.credentials), AUTHENTICATE_TIMEOUT_S)
                    login_result(endpoint, *answer)
                except BaseException:
                    conn.close()
                    conn = None
                    raise
        finally:
            self._opened(endpoint, conn)
        return await conn.call(kind, body, timeout)

    def close(self) -> None:
        for c in self._take():
            c.close()


class AsyncClient(_core.ClientBase):
    """An asyncio client of a Fauna cluster: every method of `fauna.Client`, awaitable."""

    def __init__(self, endpoints: Iterable[EndpointLike], *, config: Optional[ClientConfig] = None,
                 cluster_name: Optional[str] = None, tls: TLSLike = None, user: Optional[bytes] = None,
                 password: Optional[bytes] = None):
        super().__init__(endpoints, config, cluster_name, tls, credentials_of(user, password))
        self._pool = AsyncPool(self._core.config, tls=self._tls, credentials=self._credentials)
        self._closed = False
        self._twin: Optional[Client] = None

    @property
    def pool(self) -> AsyncPool:
        return self._pool

    def blocking_twin(self) -> Client:
        """A blocking `fauna.Client` of the same endpoints, config, TLS and cluster name, opened on
        first use and closed with this client: verified reads run on it in a worker thread
        (`fauna.verify.verified_get_async`)."""
        if self._closed:
            raise ClientClosed("the client is closed")
        if self._twin is None:
            user, password = self._credentials or (None, None)
            self._twin = Client(self.endpoints, config=self.config, cluster_name=self.cluster_name, tls=self._tls,
                                user=user, password=password)
        return self._twin

    async def close(self) -> None:
        self._closed = True
        self._pool.close()
        if self._twin is not None:
            self._twin.close()
        await asyncio.sleep(0)  # lets the reader tasks see their cancellation

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, op: Op[T]) -> T:
        """Runs an operation of fauna._core on asyncio (see Client._run)."""
        try:
            action = next(op)
            while True:
                if self._closed:
                    raise ClientClosed("the client is closed")
                result: object = None
                if isinstance(action, Send):
                    try:
                        result = await self._pool.request(action.endpoint, action.kind, action.body,
                                                          timeout=action.timeout, connect_timeout=action.connect_timeout)
                    except FaunaError as e:
                        result = e
                else:
                    await asyncio.sleep(action.seconds)
                action = op.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            op.close()

    async def _each(self, eps: list[Endpoint], fn: Callable[[Endpoint], Awaitable[Any]]) -> dict[Endpoint, Any]:
        results = await asyncio.gather(*(fn(e) for e in eps), return_exceptions=True)
        out: dict[Endpoint, Any] = {}
        for e, r in zip(eps, results):
            if isinstance(r, BaseException) and not isinstance(r, FaunaError):
                raise r
            out[e] = r
        return out

    # Each method below is Client's of the same name (see its docstring), awaited.

    async def request(self, kind: int, body: bytes, *, timeout: Optional[float] = None,
                      endpoint: Optional[EndpointLike] = None) -> tuple[int, bytes]:
        route: _core.Route = _core.LEADER if endpoint is None else Endpoint.of(endpoint)
        return await self._run(_core.request(self._core, kind, bytes(body), route, self._core.budget(timeout)))

    async def request_all(self, kind: int, body: bytes, *, timeout: Optional[float] = None,
                          endpoints: Optional[Iterable[EndpointLike]] = None) -> dict[Endpoint, Union[tuple[int, bytes], FaunaError]]:
        eps = [Endpoint.of(e) for e in (endpoints if endpoints is not None else self.endpoints)]
        return await self._each(eps, lambda e: self._run(
            _core.request(self._core, kind, bytes(body), e, self._core.budget(timeout, 1))))

    async def write(self, command: Command, *, timeout: Optional[float] = None) -> ApplyResult:
        return await self._run(_core.write(self._core, command, self._core.budget(timeout)))

    async def put(self, key: bytes, value: bytes, *, if_absent: bool = False, prev: bool = False, lease: int = 0,
                  timeout: Optional[float] = None) -> PutResult:
        return await self._run(_core.put(self._core, key, value, if_absent=if_absent, prev=prev, timeout=timeout, lease=lease))

    async def grant_lease(self, ttl: int, *, lease_id: int = 0, timeout: Optional[float] = None) -> LeaseOpResult:
        """A lease of `ttl` seconds (1...31,536,000; docs/KV-COMMANDS.md "Leases"); `lease_id` 0
        takes the grant's revision. Its keys (`put(..., lease=ID)`) are deleted when it is revoked
        or when the leader sees no keep-alive for `ttl` seconds."""
        return await self._run(_core.grant_lease(self._core, ttl, lease_id, timeout))

    async def revoke_lease(self, lease_id: int, *, timeout: Optional[float] = None) -> int:
        """Revokes lease `lease_id` now: its keys are deleted; returns how many. An unknown lease
        raises `InvalidRequest` (invalid outcome leaseNotFound)."""
        return await self._run(_core.revoke_lease(self._core, lease_id, timeout))

    async def keep_alive_once(self, lease_id: int, *, timeout: Optional[float] = None) -> int:
        """Renews lease `lease_id` at the leader for its whole TTL (returned, in seconds); send one
        every third of the TTL. A lease that is gone raises `LeaseNotFound`."""
        return await self._run(_core.keep_alive_once(self._core, lease_id, timeout))

    async def get(self, key: bytes, *, revision: Optional[int] = None, serializable: bool = False,
                  verify: bool = False, timeout: Optional[float] = None, endpoint: Optional[EndpointLike] = None,
                  trusted_path: Optional[str] = None, cluster_name: Optional[str] = None) -> Optional[Record]:
        """As `Client.get`; `verify=True` runs `fauna.verify.verified_get_async` (the blocking
        checks in a worker thread, on `blocking_twin()`)."""
        ep = None if endpoint is None else Endpoint.of(endpoint)
        if verify:
            if serializable:
                raise InvalidArgument("verify=True reads linearizably: drop serializable=True")
            return await verified_get_async(self, key, revision=revision, timeout=timeout, endpoint=ep,
                                            trusted_path=trusted_path, cluster_name=cluster_name)
        if trusted_path is not None or cluster_name is not None:
            raise InvalidArgument("trusted_path= and cluster_name= go with verify=True")
        return await self._run(_core.get(self._core, key, revision=revision, serializable=serializable,
                                         timeout=timeout, endpoint=ep))

    async def range(self, start: Optional[bytes] = None, end: Optional[bytes] = None, *,
                    prefix: Optional[bytes] = None, limit: Optional[int] = None, revision: Optional[int] = None,
                    reverse: bool = False, keys_only: bool = False, count_only: bool = False,
                    serializable: bool = False, timeout: Optional[float] = None,
                    endpoint: Optional[EndpointLike] = None) -> RangeResult:
        req = RangeRequest(_core.scan_range(start, end, prefix), limit, revision, reverse, keys_only, count_only)
        ep = None if endpoint is None else Endpoint.of(endpoint)
        return await self._run(_core.read(self._core, req, serializable=serializable, timeout=timeout, endpoint=ep))

    async def delete(self, key: Optional[bytes] = None, end: Optional[bytes] = None, *,
                     prefix: Optional[bytes] = None, prev: bool = False,
                     timeout: Optional[float] = None) -> DeleteResult:
        return await self._run(_core.delete(self._core, _core.key_range(key, prefix=prefix, end=end), prev=prev,
                                            timeout=timeout))

    async def txn(self, compares: Iterable[Compare] = (), success: Iterable[TxnOp] = (),
                  failure: Iterable[TxnOp] = (), *, timeout: Optional[float] = None) -> TxnResult:
        return await self._run(_core.txn(self._core, list(compares), list(success), list(failure), timeout))

    async def compact(self, revision: int, *, timeout: Optional[float] = None) -> CompactResult:
        return await self._run(_core.compact(self._core, revision, timeout))

    async def status(self, endpoint: Optional[EndpointLike] = None, *, timeout: Optional[float] = None) -> NodeStatus:
        route: _core.Route = _core.ANY if endpoint is None else Endpoint.of(endpoint)
        return await self._run(_core.status(self._core, route, timeout))

    async def status_all(self, *, timeout: Optional[float] = None) -> dict[Endpoint, Union[NodeStatus, FaunaError]]:
        return await self._each(self.endpoints, lambda e: self._run(_core.status(self._core, e, timeout, 1)))

    async def find_leader(self, *, timeout: Optional[float] = None) -> Endpoint:
        if self.leader is not None:
            return self.leader
        return _core.pick_leader(self._core, None, await self.status_all(timeout=timeout))

    async def members(self, *, timeout: Optional[float] = None) -> list[Member]:
        return await self._run(_core.members(self._core, timeout))

    async def add_learner(self, node_id: int, peer: EndpointLike, client: EndpointLike, *,
                          timeout: Optional[float] = None) -> list[Member]:
        body = MemberChange.add_learner(node_id, Endpoint.of(peer), Endpoint.of(client))
        return await self._run(_core.member_change(self._core, body, timeout))

    async def promote(self, node_id: int, *, timeout: Optional[float] = None) -> list[Member]:
        return await self._run(_core.member_change(self._core, MemberChange.promote(node_id), timeout))

    async def remove_member(self, node_id: int, *, timeout: Optional[float] = None) -> list[Member]:
        return await self._run(_core.member_change(self._core, MemberChange.remove(node_id), timeout))

    async def transfer_leadership(self, node_id: int, *, timeout: Optional[float] = None) -> None:
        await self._run(_core.transfer_leadership(self._core, node_id, timeout))

    async def hash_kv(self, endpoint: Optional[EndpointLike] = None, *, timeout: Optional[float] = None) -> HashKVResult:
        route: _core.Route = _core.ANY if endpoint is None else Endpoint.of(endpoint)
        return await self._run(_core.hash_kv(self._core, route, timeout))

    async def hash_kv_all(self, *, timeout: Optional[float] = None) -> dict[Endpoint, Union[HashKVResult, FaunaError]]:
        return await self._each(self.endpoints, lambda e: self._run(_core.hash_kv(self._core, e, timeout, 1)))
