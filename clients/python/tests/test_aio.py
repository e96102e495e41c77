"""The asyncio client against the real cluster: the same basics as the blocking one, and many
concurrent calls pipelined."""
from __future__ import annotations

import asyncio

import pytest

import fauna
from fauna import Put, txn_get, value
from fauna.aio import AsyncClient


def arun(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_crud_range_delete_txn(cluster, prefix: bytes) -> None:
    async def main() -> None:
        async with AsyncClient(cluster.endpoints) as c:
            r = await c.put(prefix + b"a", b"1")
            rec = await c.get(prefix + b"a")
            assert rec == fauna.Record(prefix + b"a", b"1", r.revision, r.revision, 1)
            assert await c.get(prefix + b"none") is None
            await c.put(prefix + b"b", b"2")
            rng = await c.range(prefix=prefix)
            assert [x.key for x in rng.records] == [prefix + b"a", prefix + b"b"] and rng.count == 2
            t = await c.txn([value(prefix + b"a") == b"1"], [Put(prefix + b"a", b"3")], [txn_get(prefix + b"a")])
            assert t.succeeded
            t2 = await c.txn([value(prefix + b"a") == b"1"], [Put(prefix + b"a", b"4")], [txn_get(prefix + b"a")])
            assert not t2.succeeded and isinstance(t2.results[0], fauna.RangeResult)
            assert t2.results[0].records[0].value == b"3"
            d = await c.delete(prefix=prefix)
            assert d.deleted == 2
            with pytest.raises(TypeError):
                await c.put("str", b"v")  # type: ignore[arg-type]
    arun(main())


def test_many_concurrent_writes_are_pipelined(cluster, prefix: bytes) -> None:
    async def main() -> None:
        cfg = fauna.ClientConfig(connections_per_endpoint=2, timeout=30)
        async with AsyncClient(cluster.endpoints, config=cfg) as c:
            results = await asyncio.gather(*(c.put(prefix + b"%03d" % i, b"v%d" % i) for i in range(100)))
            assert len({r.revision for r in results}) == 100
            assert all(n <= 2 for n in map(len, c.pool.stats().values()))
            got = await c.range(prefix=prefix)
            assert [r.value for r in got.records] == [b"v%d" % i for i in range(100)]
    arun(main())


def test_admin_and_compact(cluster, prefix: bytes) -> None:
    async def main() -> None:
        async with AsyncClient.from_config(cluster.config_path) as c:
            sts = await c.status_all()
            assert sorted(s.node_id for s in sts.values() if isinstance(s, fauna.NodeStatus)) == [1, 2, 3]
            assert (await c.status(await c.find_leader())).is_leader
            assert len(await c.members()) == 3
            h = await c.hash_kv(cluster.endpoints[0])
            assert h.node_id == 1 and len(h.digest) == 32
            r1 = await c.put(prefix + b"c", b"1")
            await c.put(prefix + b"c", b"2")
            await c.compact(r1.revision + 1)
            with pytest.raises(fauna.Compacted):
                await c.get(prefix + b"c", revision=r1.revision)
    arun(main())


def test_unreachable_fails_within_deadline() -> None:
    from conftest import free_ports

    async def main() -> None:
        port = free_ports(1)[0]
        async with AsyncClient([("127.0.0.1", port)], config=fauna.ClientConfig(timeout=0.5)) as c:
            with pytest.raises(fauna.ConnectionFailed):
                await c.get(b"k")
    arun(main())


def test_async_pipelining_and_broken_frames_against_a_fake_node() -> None:
    """Answers in reverse order reach their callers; a bad CRC closes the connection, fails
    the callers waiting on it, and the next request opens a new one."""
    import threading

    from fauna import codec
    from fauna.aio import AsyncPool
    from fauna.wire import Kind
    from test_pool import FakeConn, FakeNode

    held: list = []
    lock = threading.Lock()

    def handler(conn: FakeConn, f: codec.Frame) -> None:
        if f.body == b"bad":
            good = codec.frame(Kind.STATUS_RESPONSE, f.request_id, b"abc")
            return conn.send(good[:-1] + b"x")
        with lock:
            held.append((conn, f))
            if len(held) == 5:
                for c, g in reversed(held):
                    c.answer(g, b"re:" + g.body)
                held.clear()

    n = FakeNode(handler)
    try:
        async def main() -> None:
            pool = AsyncPool(fauna.ClientConfig(connections_per_endpoint=1, request_timeout=2.0))
            got = await asyncio.gather(*(pool.request(n.endpoint, Kind.STATUS, b"%d" % i, timeout=5)
                                         for i in range(5)))
            assert got == [(Kind.STATUS_RESPONSE, b"re:%d" % i) for i in range(5)]
            with pytest.raises(fauna.ConnectionLost):
                await pool.request(n.endpoint, Kind.STATUS, b"bad", timeout=5)
            late = [pool.request(n.endpoint, Kind.STATUS, b"%d" % i, timeout=5) for i in range(5)]
            assert len(await asyncio.gather(*late)) == 5
            assert n.accepted == 2
            pool.close()
        arun(main())
    finally:
        n.close()
