"""Pooled, pipelined connections against a scripted fake node: answers matched by request ID
in any order, late answers dropped, broken frames and unknown IDs close the connection, the
bounds hold, and a broken connection is replaced."""
from __future__ import annotations

import socket
import threading
import time
from typing import Callable, Iterator, Optional

import pytest

import fauna
from fauna import codec
from fauna.codec import Frame, FrameDecoder, frame
from fauna.pool import Pool
from fauna.wire import Endpoint, Kind

Handler = Callable[["FakeConn", Frame], None]


class FakeConn:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass

    def answer(self, f: Frame, body: Optional[bytes] = None, kind: int = Kind.STATUS_RESPONSE,
               rid: Optional[int] = None) -> None:
        self.send(frame(kind, f.request_id if rid is None else rid, f.body if body is None else body))


class FakeNode:
    """A listening socket; every request frame goes to `handler` (on the connection's thread)."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.endpoint = Endpoint("127.0.0.1", self.listener.getsockname()[1])
        self.accepted = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                s, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            t = threading.Thread(target=self._serve, args=(FakeConn(s),), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn: FakeConn) -> None:
        dec = FrameDecoder()
        conn.sock.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                data = conn.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            for f in dec.feed(data):
                self.handler(conn, f)
        conn.sock.close()

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        for t in self.threads:
            t.join(2)


def node(handler: Handler) -> Iterator[FakeNode]:
    n = FakeNode(handler)
    try:
        yield n
    finally:
        n.close()


def config(**kw: object) -> fauna.ClientConfig:
    return fauna.ClientConfig(**{"request_timeout": 2.0, "connect_timeout": 1.0, **kw})  # type: ignore[arg-type]


def test_pipelined_answers_in_reverse_order() -> None:
    held: list[tuple[FakeConn, Frame]] = []
    lock = threading.Lock()

    def handler(conn: FakeConn, f: Frame) -> None:
        with lock:
            held.append((conn, f))
            if len(held) == 3:  # answer the three in reverse order
                for c, g in reversed(held):
                    c.answer(g, b"echo:" + g.body)
    for n in node(handler):
        pool = Pool(config(connections_per_endpoint=1))
        results: dict[int, tuple[int, bytes]] = {}

        def call(i: int) -> None:
            results[i] = pool.request(n.endpoint, Kind.STATUS, b"%d" % i, timeout=5)
        threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert results == {i: (Kind.STATUS_RESPONSE, b"echo:%d" % i) for i in range(3)}
        assert n.accepted == 1 and len({f.request_id for _, f in held}) == 3
        pool.close()


def test_a_late_answer_is_dropped_and_the_connection_kept() -> None:
    def handler(conn: FakeConn, f: Frame) -> None:
        if f.body == b"slow":
            threading.Timer(0.3, conn.answer, args=(f, b"late")).start()
        else:
            conn.answer(f)
    for n in node(handler):
        pool = Pool(config(connections_per_endpoint=1))
        with pytest.raises(fauna.RequestTimeout):
            pool.request(n.endpoint, Kind.STATUS, b"slow", timeout=0.1)
        time.sleep(0.4)  # the late answer arrives and is dropped
        assert pool.request(n.endpoint, Kind.STATUS, b"fast", timeout=2) == (Kind.STATUS_RESPONSE, b"fast")
        assert n.accepted == 1
        pool.close()


@pytest.mark.parametrize("misbehave", ["unknown-id", "bad-crc", "request-kind", "streamed", "close"])
def test_a_misbehaving_node_loses_the_connection(misbehave: str) -> None:
    def handler(conn: FakeConn, f: Frame) -> None:
        if f.body != b"bad":
            return conn.answer(f)
        if misbehave == "unknown-id":
            conn.answer(f, rid=f.request_id + 100)
        elif misbehave == "bad-crc":
            good = frame(Kind.STATUS_RESPONSE, f.request_id, b"abc")
            conn.send(good[:-1] + b"x")
        elif misbehave == "request-kind":
            conn.answer(f, kind=Kind.WRITE)
        elif misbehave == "streamed":
            conn.send(frame(Kind.STATUS_RESPONSE, f.request_id, b"", flags=codec.FLAG_MORE))
        else:
            conn.sock.shutdown(socket.SHUT_RDWR)
    for n in node(handler):
        pool = Pool(config(connections_per_endpoint=1))
        first = pool.connection(n.endpoint)
        with pytest.raises(fauna.ConnectionLost):
            pool.request(n.endpoint, Kind.STATUS, b"bad", timeout=2)
        assert first.is_closed
        # The next request gets a new connection.
        assert pool.request(n.endpoint, Kind.STATUS, b"ok", timeout=2) == (Kind.STATUS_RESPONSE, b"ok")
        assert n.accepted == 2
        pool.close()


def test_in_flight_bound_per_connection() -> None:
    release = threading.Event()

    def handler(conn: FakeConn, f: Frame) -> None:
        threading.Thread(target=lambda: (release.wait(5), conn.answer(f))).start()
    for n in node(handler):
        pool = Pool(config(connections_per_endpoint=1, in_flight_per_connection=2))
        ts = [threading.Thread(target=pool.request, args=(n.endpoint, Kind.STATUS, b"x"), kwargs={"timeout": 5})
              for _ in range(2)]
        for t in ts:
            t.start()
        deadline = time.monotonic() + 2
        while sum(pool.stats().get(n.endpoint, [])) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(fauna.TooManyInFlight):
            pool.request(n.endpoint, Kind.STATUS, b"third", timeout=1)
        release.set()
        for t in ts:
            t.join(5)
        pool.close()


def test_pool_grows_to_its_bound_under_load_and_reuses_connections() -> None:
    def handler(conn: FakeConn, f: Frame) -> None:
        threading.Timer(0.05, conn.answer, args=(f,)).start()
    for n in node(handler):
        pool = Pool(config(connections_per_endpoint=3))
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            for j in range(10):
                body = b"%d-%d" % (i, j)
                try:
                    assert pool.request(n.endpoint, Kind.STATUS, body, timeout=5) == (Kind.STATUS_RESPONSE, body)
                except BaseException as e:  # collected: asserts in threads do not fail tests
                    errors.append(e)
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert not errors
        assert 1 < n.accepted <= 3 and len(pool.stats()[n.endpoint]) == n.accepted
        pool.close()


def test_connect_failures_are_connection_failed() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    pool = Pool(config())
    with pytest.raises(fauna.ConnectionFailed):
        pool.request(Endpoint("127.0.0.1", port), Kind.STATUS, b"", timeout=1)
    pool.close()
    with pytest.raises(fauna.ConnectionFailed, match="closed"):
        pool.request(Endpoint("127.0.0.1", port), Kind.STATUS, b"", timeout=1)


def test_client_over_a_fake_node_follows_the_protocol() -> None:
    """A whole Client call against the fake: a write whose first answer is lost is retried with
    the same session and the replay is returned."""
    from fauna import wire
    seen: list[wire.Proposal] = []

    def handler(conn: FakeConn, f: Frame) -> None:
        p = wire.decode_proposal(f.body)
        seen.append(p)
        if len(seen) == 1:
            return  # lost: the client times out and retries
        res = wire.ApplyResult(5, True, 0, True, [wire.PutOpResult()])
        conn.answer(f, res.encode(), kind=Kind.WRITE_RESPONSE)
    for n in node(handler):
        with fauna.Client([n.endpoint], config=config(request_timeout=0.2, timeout=5)) as c:
            res = c.put(b"k", b"v")
        assert res.is_replay and res.revision == 5
        assert len(seen) == 2 and seen[0] == seen[1] and seen[0].sequence == 1
