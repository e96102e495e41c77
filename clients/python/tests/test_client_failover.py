"""The leader is killed (SIGKILL) under a write workload: the client retries, every acknowledged
write is there, and none is applied twice."""
from __future__ import annotations

import threading
import time

import fauna


def test_leader_killed_mid_workload_writes_apply_exactly_once(cluster, prefix: bytes) -> None:
    writers, duration_s = 3, 3.0
    c = cluster.client(timeout=20.0, request_timeout=1.0)
    acked: dict[bytes, fauna.PutResult] = {}
    counts = [0] * writers
    failures: list[BaseException] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        i = 0
        try:
            while not stop.is_set():
                key = prefix + b"w%d/%05d" % (w, i)
                res = c.put(key, b"%d" % i)
                with lock:
                    acked[key] = res
                # A put is not idempotent: every application bumps the version by one.
                c.put(prefix + b"counter/%d" % w, b"%d" % i)
                counts[w] += 1
                i += 1
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    time.sleep(0.7)
    old = cluster.wait_for_leader()
    before = len(acked)
    cluster.kill(old)
    new = cluster.wait_for_leader(avoid=old)
    time.sleep(duration_s - 0.7)
    stop.set()
    for t in threads:
        t.join(30)
    assert not failures, failures
    print(f"acked {len(acked)} (before kill {before}), replays {sum(r.is_replay for r in acked.values())}")
    assert before > 0 and len(acked) > before, "writes before and after the kill"
    assert new != old

    for key, res in acked.items():
        rec = c.get(key)
        assert rec is not None, f"acknowledged put of {key!r} lost"
        assert rec.version == 1 and rec.create_revision == rec.mod_revision == res.revision, \
            f"{key!r}: applied more than once or at another revision: {rec} vs {res}"
    for w in range(writers):
        rec = c.get(prefix + b"counter/%d" % w)
        assert rec is not None and rec.version == counts[w], f"counter {w}: version {rec}, puts acked {counts[w]}"

    # The killed node comes back and catches up to the same state.
    cluster.start(old)
    cluster.wait_caught_up()
    leader_st = c.status(c.find_leader())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        digests = c.hash_kv_all()
        applied = {h.applied_index for h in digests.values() if isinstance(h, fauna.HashKVResult)}
        if len(digests) == 3 and len(applied) == 1 and min(applied) >= leader_st.commit_index:
            break
        time.sleep(0.2)
    results = [h for h in digests.values() if isinstance(h, fauna.HashKVResult)]
    assert len(results) == 3 and len({h.digest for h in results}) == 1 and len({h.tree_root for h in results}) == 1
    c.close()


def test_writes_keep_working_with_one_node_down(cluster, prefix: bytes) -> None:
    leader = cluster.wait_for_leader()
    follower = next(n for n in cluster.names if n != leader)
    cluster.kill(follower)
    with cluster.client(timeout=15.0, request_timeout=1.0) as c:
        for i in range(20):
            c.put(prefix + b"%d" % i, b"x")
        # Serializable reads spread over the nodes: the dead one is skipped.
        assert c.range(prefix=prefix, serializable=True).count <= 20
        assert c.range(prefix=prefix).count == 20
        sts = c.status_all(timeout=1.0)
        assert isinstance(sts[cluster.client_addr[follower]], fauna.FaunaError)


def test_restart_with_environment(cluster, prefix: bytes) -> None:
    """The fixture can restart a node with an environment (used by verified-read tests)."""
    name = cluster.names[2]
    cluster.restart(name, env={"FAUNA_TEST_FAULT": "lie-value"})
    ep = cluster.client_addr[name]
    with cluster.client(timeout=15.0) as c:
        c.put(prefix + b"k", b"honest")
        cluster.wait_caught_up()
        rec = c.get(prefix + b"k", serializable=True, endpoint=ep)
        assert rec is not None and rec.value == b"honesu"  # the lying node flips the last byte's low bit
    assert cluster.envs[name] == {"FAUNA_TEST_FAULT": "lie-value"}
