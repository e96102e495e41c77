"""Pipelined connections to nodes' client ports, pooled per endpoint (blocking, thread-safe).

A `Connection` is one TCP connection on which many requests are in flight at once (at most
`in_flight_max`): callers send frames under a send lock and wait on their own event; one
reader thread per connection reads every answer, checks the frame (magic, version, length
bound, answer kind, reserved flags, body CRC32C: `codec.FrameDecoder`) and hands it to the
caller whose request ID it carries (`Demux`). An answer that arrives after its caller gave up is
dropped; an answer to a request ID never sent, or a broken frame, is a protocol violation:
the connection is closed and every caller waiting on it fails with `ConnectionLost`.

A `Pool` keeps at most `connections_per_endpoint` connections per node, hands a request to the
least busy one and opens another only while every open one is busy; closed connections are
replaced on the next request. Nothing here retries: that is the client's job (fauna._core).

With TLS (`tls=`: a `fauna.TLSConfig` or an `ssl.SSLContext`; fauna.tls) each connection does
its handshake when opened and then carries the same frames inside TLS (`tls.TLSStream`). A TLS
failure (`fauna.TLSError`) fails the connection's callers with that error, which the client
does not retry.
"""
from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any, Generic, Optional, Protocol, TypeVar, Union

from .codec import Frame, FrameDecoder, frame, vbytes
from .config import ClientConfig
from .errors import (
    AuthFailed, ConnectionFailed, ConnectionLost, InvalidArgument, ProtocolError, RequestTimeout, TLSError, TooManyInFlight,
)
from .tls import ClientTLS, TLSLike, TLSStream, after_handshake_error
from .wire import ANSWER_KINDS, Endpoint, Kind, decode_error

__all__ = ["Connection", "Pool", "PoolBase", "Demux", "Demuxed", "ENDPOINTS_MAX", "decoder_for"]

W = TypeVar("W")
ENDPOINTS_MAX = 64  # distinct nodes a pool connects to (configured ones plus leader hints)
_READ_BYTES = 1 << 16


class Demux(Generic[W]):
    """Request IDs of one connection and the callers waiting on them (shared by the blocking
    and the asyncio connection). IDs count up from 1 and are never reused."""

    def __init__(self, in_flight_max: int, name: str):
        self._lock = threading.Lock()
        self._pending: dict[int, W] = {}
        self._next = 1
        self._max = in_flight_max
        self._name = name
        self.closed_reason: Optional[str] = None

    def add(self, waiter: W) -> int:
        """A fresh request ID for `waiter`; raises (nothing was sent) if closed or full."""
        with self._lock:
            if self.closed_reason is not None:
                raise ConnectionFailed(f"{self._name}: connection closed ({self.closed_reason})")
            if len(self._pending) >= self._max:
                raise TooManyInFlight(f"{self._name}: {len(self._pending)} requests in flight, at most {self._max}")
            rid = self._next
            self._next += 1
            self._pending[rid] = waiter
            return rid

    def drop(self, rid: int) -> Optional[W]:
        with self._lock:
            return self._pending.pop(rid, None)

    def route(self, f: Frame) -> Optional[W]:
        """The waiter of an answer frame, or None for a late answer (its caller gave up).
        ProtocolError for an ID never sent or a streamed answer (no call here streams)."""
        with self._lock:
            if f.request_id == 0 or f.request_id >= self._next:
                raise ProtocolError(f"{self._name}: answer kind {f.kind:#04x} to request {f.request_id}, "
                                    "which was never sent")
            if f.more:
                raise ProtocolError(f"{self._name}: streamed answer (kind {f.kind:#04x}) to request "
                                    f"{f.request_id}, want one answer")
            return self._pending.pop(f.request_id, None)

    def close(self, reason: str) -> list[W]:
        """Marks the connection closed; returns the callers still waiting."""
        with self._lock:
            if self.closed_reason is None:
                self.closed_reason = reason
            waiters = list(self._pending.values())
            self._pending.clear()
            return waiters

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def is_closed(self) -> bool:
        return self.closed_reason is not None


def decoder_for(config: ClientConfig) -> FrameDecoder:
    """The frame checks a client applies to what a node sends."""
    return FrameDecoder(accept_kind=ANSWER_KINDS.__contains__, body_bytes_max=config.body_bytes_max)


class _Waiter:
    __slots__ = ("event", "answer", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.answer: Optional[tuple[int, bytes]] = None
        self.error: Optional[BaseException] = None


class Demuxed:
    """A connection's pool-facing state, from its Demux."""

    _demux: "Demux[Any]"

    @property
    def is_closed(self) -> bool:
        return self._demux.is_closed

    @property
    def in_flight(self) -> int:
        return self._demux.in_flight


class Connection(Demuxed):
    """One pipelined, thread-safe connection to a node's client port; with `tls`, TLS on it
    (the TCP connect and the handshake are bounded by `connect_timeout` each)."""

    def __init__(self, endpoint: Endpoint, config: ClientConfig, connect_timeout: Optional[float] = None,
                 tls: Optional[ClientTLS] = None):
        self.endpoint = endpoint
        self._config = config
        wait = connect_timeout or config.connect_timeout
        try:
            sock = socket.create_connection(endpoint, timeout=wait)
        except OSError as e:
            raise ConnectionFailed(f"cannot connect to {endpoint}: {e}") from e
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._tls: Optional[TLSStream] = None
        if tls is not None:
            try:
                self._tls = TLSStream.connect(sock, tls, endpoint, endpoint.host, wait)
            except BaseException:
                sock.close()
                raise
        # Bounds a send to a node that stopped reading; the reader loops over its timeouts.
        sock.settimeout(config.request_timeout)
        self._sock = sock
        self._send_lock = threading.Lock()
        self._demux: Demux[_Waiter] = Demux(config.in_flight_per_connection, str(endpoint))
        self._decoder = decoder_for(config)
        self._reader = threading.Thread(target=self._read_loop, name=f"fauna-reader-{endpoint}", daemon=True)
        self._reader.start()

    def call(self, kind: int, body: bytes, timeout: float) -> tuple[int, bytes]:
        """Sends one request and waits at most `timeout` s for its answer (kind, body).

        Raises ConnectionFailed / TooManyInFlight (nothing sent), ConnectionLost (the
        connection broke after sending, or broke the protocol) or RequestTimeout."""
        waiter = _Waiter()
        rid = self._demux.add(waiter)
        data = frame(kind, rid, body)
        try:
            with self._send_lock:
                if self._tls is not None:
                    self._tls.send(data)
                else:
                    self._sock.sendall(data)
        except OSError as e:  # possibly a partial frame: the stream is unusable
            tls_error = self._tls_error(e)
            if tls_error is None and self._tls is not None and threading.current_thread() is not self._reader:
                # A node refusing the client's certificate sends an alert and closes: a send may
                # fail first. Give the reader a moment to read the alert (it fails this waiter).
                self._reader.join(0.25)
                if isinstance(waiter.error, TLSError):
                    tls_error = waiter.error
            self._fail(f"send failed: {e}", tls_error)
            if tls_error is not None:
                raise tls_error from e
            raise ConnectionLost(f"{self.endpoint}: send failed: {e}") from e
        if not waiter.event.wait(timeout):
            if self._demux.drop(rid) is not None:
                raise RequestTimeout(f"{self.endpoint}: no answer to request {rid} within {timeout:.3f} s")
            # Answered (or failed) just now: the reader popped it and is about to set the event.
            if not waiter.event.wait(1.0):
                raise RequestTimeout(f"{self.endpoint}: request {rid} answered but not handed over")
        if waiter.error is not None:
            raise waiter.error
        assert waiter.answer is not None
        return waiter.answer

    def close(self) -> None:
        if self._tls is not None and not self._demux.is_closed:
            self._tls.goodbye()
        self._fail("closed by the client")
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=2.0)

    @property
    def tls_version(self) -> Optional[str]:
        """The TLS version in use ("TLSv1.3"), or None for a plaintext connection."""
        return self._tls.version if self._tls is not None else None

    def _tls_error(self, e: OSError) -> Optional[TLSError]:
        if self._tls is None or not isinstance(e, ssl.SSLError):
            return None
        return after_handshake_error(e, self.endpoint, self._tls.tls)

    def _fail(self, reason: str, error: Optional[BaseException] = None) -> None:
        waiters = self._demux.close(reason)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
        for w in waiters:
            w.error = error or ConnectionLost(f"{self.endpoint}: {reason}")
            w.event.set()

    def _read_loop(self) -> None:
        while not self._demux.is_closed:
            try:
                data = self._sock.recv(_READ_BYTES)
            except socket.timeout:
                continue
            except OSError as e:
                self._fail(f"read failed: {e}")
                return
            if not data:
                self._fail("connection closed by the node")
                return
            if self._tls is not None:
                try:
                    data = self._tls.decrypt(data)
                except ssl.SSLError as e:
                    tls_error = self._tls_error(e)
                    self._fail("connection closed by the node" if tls_error is None else f"TLS: {e}", tls_error)
                    return
            try:
                for f in self._decoder.feed(data):
                    w = self._demux.route(f)
                    if w is not None:
                        w.answer = (f.kind, f.body)
                        w.event.set()
            except ProtocolError as e:
                self._fail(f"protocol violation: {e}", ConnectionLost(f"{self.endpoint}: protocol violation: {e}"))
                return


class _Pooled(Protocol):
    @property
    def is_closed(self) -> bool: ...

    @property
    def in_flight(self) -> int: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=_Pooled)


class PoolBase(Generic[C]):
    """Which connection a request takes (shared by the blocking and the asyncio pool): the
    least busy open one, or a new one while all are busy and fewer than
    `connections_per_endpoint` are open or being opened. Thread-safe; never does I/O."""

    def __init__(self, config: Optional[ClientConfig] = None, *, tls: TLSLike = None,
                 credentials: Optional[tuple[bytes, bytes]] = None):
        self.config = config or ClientConfig()
        #: TLS of every connection (fauna.tls.ClientTLS), or None: plaintext.
        self.tls = ClientTLS.of(tls)
        #: (user, password): every new connection authenticates with them first
        #: (docs/SECURITY.md "Users and roles"); None: it runs as its certificate's user.
        self.credentials = check_credentials(credentials)
        self._lock = threading.Lock()
        self._conns: dict[Endpoint, list[C]] = {}
        self._opening: dict[Endpoint, int] = {}
        self._closed = False

    def _pick(self, endpoint: Endpoint) -> Union[C, str]:
        """A connection to use; or OPEN: the caller opens one and reports it to `_opened`; or
        WAIT: connections are being opened up to the bound: ask again shortly."""
        limit = self.config.connections_per_endpoint
        with self._lock:
            if self._closed:
                raise ConnectionFailed("the pool is closed")
            if endpoint not in self._conns and len(self._conns) >= ENDPOINTS_MAX:
                for e in [e for e, cs in self._conns.items() if all(c.is_closed for c in cs) and not self._opening.get(e)]:
                    del self._conns[e]
                if len(self._conns) >= ENDPOINTS_MAX:
                    raise TooManyInFlight(f"the pool holds connections to {ENDPOINTS_MAX} nodes already")
            conns = [c for c in self._conns.get(endpoint, []) if not c.is_closed]
            self._conns[endpoint] = conns
            best = min(conns, key=lambda c: c.in_flight, default=None)
            opening = self._opening.get(endpoint, 0)
            if best is not None and (best.in_flight == 0 or len(conns) + opening >= limit):
                return best
            if best is None and opening >= limit:
                return WAIT
            self._opening[endpoint] = opening + 1
            return OPEN

    def _opened(self, endpoint: Endpoint, conn: Optional[C]) -> None:
        """Ends an open that `_pick` asked for (`conn` None: it failed)."""
        with self._lock:
            self._opening[endpoint] -= 1
            if conn is not None and not self._closed:
                self._conns.setdefault(endpoint, []).append(conn)
                return
        if conn is not None:
            conn.close()
            raise ConnectionFailed("the pool is closed")

    def stats(self) -> dict[Endpoint, list[int]]:
        """In-flight requests of every open connection, per endpoint (tests, debugging)."""
        with self._lock:
            return {e: [c.in_flight for c in cs if not c.is_closed] for e, cs in self._conns.items()}

    def _take(self, endpoint: Optional[Endpoint] = None) -> list[C]:
        """Removes and returns the connections to `endpoint` (all, and closes the pool, if None)."""
        with self._lock:
            if endpoint is not None:
                return self._conns.pop(endpoint, [])
            self._closed = True
            conns = [c for cs in self._conns.values() for c in cs]
            self._conns.clear()
            return conns


OPEN, WAIT = "open", "wait"
#: scrypt costs a node tens of milliseconds, more on a loaded or debug one: longer than a request.
AUTHENTICATE_TIMEOUT_S = 15.0


def check_credentials(credentials: Optional[tuple[bytes, bytes]]) -> Optional[tuple[bytes, bytes]]:
    """`credentials` as (user, password) bytes, refused with InvalidArgument if unusable."""
    if credentials is None:
        return None
    user, password = credentials
    if isinstance(user, str) or isinstance(password, str):
        raise InvalidArgument("user and password are bytes (encode them, e.g. 'alice'.encode())")
    if not 1 <= len(user) <= 64 or not 1 <= len(password) <= 1024:
        raise InvalidArgument("user: 1...64 bytes, password: 1...1024 bytes")
    return bytes(user), bytes(password)


def authenticate_body(credentials: tuple[bytes, bytes]) -> bytes:
    """An `authenticate` body (PROTOCOL.md): bytes user | bytes password."""
    return vbytes(credentials[0]) + vbytes(credentials[1])


def login_result(endpoint: Endpoint, kind: int, body: bytes) -> None:
    """Raises unless (kind, body) answers an `authenticate` with success: `AuthFailed` (never
    retried) for a wrong user or password, ConnectionFailed for anything else (a node still
    loading, overloaded: another attempt may succeed)."""
    if kind == Kind.AUTHENTICATE_RESPONSE:
        return
    if kind == Kind.ERROR:
        err = decode_error(body, endpoint)
        if isinstance(err, AuthFailed):
            raise err
        raise ConnectionFailed(f"authenticate at {endpoint}: {err}")
    raise ProtocolError(f"{endpoint} answered authenticate with kind {kind:#04x}")
PICK_POLL_S = 0.005  # how often a request waiting for a connection being opened looks again


class Pool(PoolBase[Connection]):
    """Blocking connections per endpoint, shared by threads. `request` is one attempt."""

    def request(self, endpoint: Endpoint, kind: int, body: bytes, *, timeout: float,
                connect_timeout: Optional[float] = None) -> tuple[int, bytes]:
        """One request on a pooled connection to `endpoint`: its answer (kind, body)."""
        return self.connection(endpoint, connect_timeout).call(kind, body, timeout)

    def connection(self, endpoint: Endpoint, connect_timeout: Optional[float] = None) -> Connection:
        wait = connect_timeout or self.config.connect_timeout
        deadline = time.monotonic() + wait
        while True:
            picked = self._pick(endpoint)
            if not isinstance(picked, str):
                return picked
            if picked == OPEN:
                break
            if time.monotonic() >= deadline:
                raise ConnectionFailed(f"{endpoint}: no connection opened within {wait:.3f} s")
            time.sleep(PICK_POLL_S)
        conn: Optional[Connection] = None
        try:
            conn = Connection(endpoint, self.config, connect_timeout, self.tls)
            if self.credentials is not None:
                try:
                    login_result(endpoint, *conn.call(Kind.AUTHENTICATE, authenticate_body(self.credentials), AUTHENTICATE_TIMEOUT_S))
                except BaseException:
                    conn.close()
                    conn = None
                    raise
        finally:
            self._opened(endpoint, conn)
        return conn

    def discard(self, endpoint: Endpoint) -> None:
        """Closes every connection to `endpoint` (they are reopened on demand)."""
        for c in self._take(endpoint):
            c.close()

    def close(self) -> None:
        for c in self._take():
            c.close()
