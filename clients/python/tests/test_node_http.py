"""The node's HTTP port on a real cluster: /metrics parsed with the Prometheus text parser
(prometheus_client), counters that move with load, and /livez and /readyz verdicts that turn
with a partition (docs/METRICS.md). The disk check of /readyz is in test_node_http_disk.py."""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any, Callable

import pytest

import fauna

parser = pytest.importorskip("prometheus_client.parser", reason="python3-prometheus-client (tools/setup)")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(cluster: Any, node: str, path: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of GET http://<node's metrics address><path>."""
    url = f"http://{cluster.metrics_addr[node]}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(cluster: Any, node: str) -> Samples:
    """Every sample of the node's /metrics, by (name, sorted labels), through the Prometheus parser."""
    status, text = get(cluster, node, "/metrics")
    assert status == 200, text
    out: Samples = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no sample {name}{labels}; have {sorted(k[0] for k in samples)[:40]}..."
    return samples[key]


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def test_metrics_parse_and_counters_move_with_load(cluster: Any) -> None:
    leader = cluster.wait_ready()
    before = {n: scrape(cluster, n) for n in cluster.names}
    for n, s in before.items():
        # What an operator looks for first, present on every node.
        for name in ("fauna_raft_term", "fauna_raft_commit_index", "fauna_raft_applied_index", "fauna_audit_tree_size",
                     "fauna_raft_is_leader", "process_resident_memory_bytes", "process_cpu_seconds_total",
                     "process_open_fds"):
            value(s, name)
        assert value(s, "fauna_raft_has_leader") == 1, n
        assert value(s, "fauna_queue_capacity", queue="events") > 0
    assert value(before[leader], "fauna_raft_is_leader") == 1
    assert sum(value(s, "fauna_raft_is_leader") for s in before.values()) == 1

    puts = 60
    with cluster.client() as c:
        for i in range(puts):
            c.put(b"metrics/%d" % i, b"v%d" % i)
        for i in range(10):
            c.get(b"metrics/%d" % i)
    cluster.wait_caught_up()
    # The owner refreshes its gauges every round and the store figures every second.
    time.sleep(1.5)
    after = {n: scrape(cluster, n) for n in cluster.names}

    lead_before, lead_after = before[leader], after[leader]
    assert value(lead_after, "fauna_raft_proposals_total") - value(lead_before, "fauna_raft_proposals_total") >= puts
    assert (value(lead_after, "fauna_raft_propose_to_commit_seconds_count")
            - value(lead_before, "fauna_raft_propose_to_commit_seconds_count")) >= 1
    writes = sum(total(after[n], "fauna_client_requests_total", kind="write")
                 - total(before[n], "fauna_client_requests_total", kind="write") for n in cluster.names)
    assert writes >= puts
    latency = sum(total(after[n], "fauna_client_request_duration_seconds_count", kind="write")
                  - total(before[n], "fauna_client_request_duration_seconds_count", kind="write") for n in cluster.names)
    assert latency >= puts
    for n in cluster.names:
        b, a = before[n], after[n]
        assert value(a, "fauna_raft_commit_index") >= value(b, "fauna_raft_commit_index") + puts, n
        assert value(a, "fauna_apply_entries_total") - value(b, "fauna_apply_entries_total") >= puts, n
        assert value(a, "fauna_raft_log_persist_seconds_count") > value(b, "fauna_raft_log_persist_seconds_count"), n
        assert value(a, "fauna_audit_tree_size") == value(a, "fauna_raft_applied_index"), n
        assert total(a, "fauna_rocksdb_memtable_bytes") > 0, n
        assert value(a, "fauna_disk_free_bytes") > 0, n


def test_request_errors_are_counted_by_kind_and_code(cluster: Any) -> None:
    cluster.wait_ready()
    node = "n1"
    before = scrape(cluster, node)
    # A read at a revision far in the future is answered futureRevision by the node asked.
    with cluster.client(timeout=2.0) as c:
        with pytest.raises(fauna.FutureRevision):
            c.get(b"metrics/0", revision=1 << 50, serializable=True, endpoint=cluster.client_addr[node])
    after = scrape(cluster, node)
    grew = (total(after, "fauna_client_request_errors_total", kind="read", code="futureRevision")
            - total(before, "fauna_client_request_errors_total", kind="read", code="futureRevision"))
    assert grew == 1, "the futureRevision answer was not counted once"


def test_livez_readyz_and_not_found(cluster: Any) -> None:
    cluster.wait_ready()
    for n in cluster.names:
        status, body = get(cluster, n, "/livez")
        assert status == 200 and body.endswith("ok\n"), body
        wait_until(f"{n} ready", lambda: get(cluster, n, "/readyz")[0] == 200)
        status, body = get(cluster, n, "/readyz")
        assert "[+]leader ok" in body and "[+]disk ok" in body, body
    status, body = get(cluster, "n1", "/nope")
    assert status == 404 and "/metrics" in body


def test_readyz_turns_unready_when_cut_off_and_back(cluster: Any) -> None:
    leader = cluster.wait_ready()
    alone = next(n for n in cluster.names if n != leader)
    others = [n for n in cluster.names if n != alone]
    try:
        for n in others:
            cluster.pause(n)
        # It stops hearing the leader: after an election timeout it campaigns, knows no leader.
        wait_until(f"{alone} unready", lambda: get(cluster, alone, "/readyz")[0] == 503)
        status, body = get(cluster, alone, "/readyz")
        assert "[-]leader: no leader known" in body, body
        status, body = get(cluster, alone, "/livez")
        assert status == 200, "cut off is not dead: " + body
    finally:
        for n in others:
            cluster.resume(n)
    wait_until(f"{alone} ready again", lambda: get(cluster, alone, "/readyz")[0] == 200, timeout_s=30.0)
