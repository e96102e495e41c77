"""The blocking client against a real cluster: CRUD, ranges, deletes, transactions, compaction,
admin calls, errors."""
from __future__ import annotations

import pytest

import fauna
from fauna import Put, txn_delete, txn_get, txn_range, value, version


def test_put_get_overwrite(client: fauna.Client, prefix: bytes) -> None:
    k = prefix + b"k1"
    r1 = client.put(k, b"v1")
    assert r1.revision > 0 and not r1.is_replay and not r1.already_exists
    rec = client.get(k)
    assert rec == fauna.Record(k, b"v1", r1.revision, r1.revision, 1)
    r2 = client.put(k, b"v2", prev=True)
    assert r2.revision > r1.revision
    assert r2.previous == fauna.Record(k, b"v1", r1.revision, r1.revision, 1)
    rec = client.get(k)
    assert rec is not None and (rec.value, rec.version, rec.create_revision, rec.mod_revision) == \
        (b"v2", 2, r1.revision, r2.revision)
    # The old value at the old revision; serializable reads see it too once applied.
    old = client.get(k, revision=r1.revision)
    assert old is not None and old.value == b"v1"
    assert client.get(prefix + b"missing") is None


def test_put_if_absent(client: fauna.Client, prefix: bytes) -> None:
    k = prefix + b"once"
    first = client.put(k, b"a", if_absent=True)
    assert not first.already_exists
    second = client.put(k, b"b", if_absent=True)
    assert second.already_exists and second.revision > first.revision
    rec = client.get(k)
    assert rec is not None and rec.value == b"a" and rec.version == 1


def test_keys_and_values_must_be_bytes(client: fauna.Client, prefix: bytes) -> None:
    with pytest.raises(TypeError):
        client.put("text key", b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.put(prefix + b"k", "text value")  # type: ignore[arg-type]
    with pytest.raises(fauna.InvalidArgument):
        client.put(b"", b"v")
    with pytest.raises(fauna.InvalidArgument):
        client.put(b"x" * 4097, b"v")
    # bytearray and memoryview are fine.
    client.put(bytearray(prefix + b"ba"), memoryview(b"mv"))
    rec = client.get(prefix + b"ba")
    assert rec is not None and rec.value == b"mv"


def test_range_prefix_limit_reverse_counts(client: fauna.Client, prefix: bytes) -> None:
    keys = [prefix + b"r/%02d" % i for i in range(10)]
    for i, k in enumerate(keys):
        client.put(k, b"%d" % i)
    client.put(prefix + b"s", b"outside")
    all_ = client.range(prefix=prefix + b"r/")
    assert [r.key for r in all_.records] == keys and all_.count == 10 and not all_.more
    lim = client.range(prefix=prefix + b"r/", limit=3)
    assert [r.key for r in lim.records] == keys[:3] and lim.count == 10 and lim.more
    rev = client.range(prefix=prefix + b"r/", limit=2, reverse=True)
    assert [r.key for r in rev.records] == keys[:-3:-1]
    between = client.range(keys[2], keys[5])
    assert [r.key for r in between.records] == keys[2:5]
    ko = client.range(prefix=prefix + b"r/", keys_only=True)
    assert all(r.value == b"" for r in ko.records) and len(ko.records) == 10
    co = client.range(prefix=prefix + b"r/", count_only=True)
    assert co.records == [] and co.count == 10
    ser = client.range(prefix=prefix + b"r/", serializable=True)
    assert ser.count <= 10  # may lag, never invents keys
    assert {r.key for r in ser.records} <= set(keys)
    # From a start key to the end of the key space.
    tail = client.range(keys[8])
    assert [r.key for r in tail.records][:2] == keys[8:10]


def test_range_at_revision(client: fauna.Client, prefix: bytes) -> None:
    k = prefix + b"hist"
    r1 = client.put(k, b"one")
    client.put(k, b"two")
    past = client.range(prefix=prefix, revision=r1.revision)
    assert [(r.key, r.value) for r in past.records] == [(k, b"one")]
    with pytest.raises(fauna.FutureRevision):
        client.range(prefix=prefix, revision=past.revision + 1_000_000)


def test_delete_key_range_prefix(client: fauna.Client, prefix: bytes) -> None:
    for i in range(6):
        client.put(prefix + b"d/%d" % i, b"x")
    one = client.delete(prefix + b"d/0", prev=True)
    assert one.deleted == 1 and [r.key for r in one.previous] == [prefix + b"d/0"]
    none = client.delete(prefix + b"d/0")
    assert none.deleted == 0
    rng = client.delete(prefix + b"d/1", prefix + b"d/3")
    assert rng.deleted == 2
    assert [r.key for r in client.range(prefix=prefix + b"d/").records] == [prefix + b"d/%d" % i for i in (3, 4, 5)]
    pre = client.delete(prefix=prefix + b"d/")
    assert pre.deleted == 3
    assert client.range(prefix=prefix + b"d/").count == 0


def test_txn_both_branches(client: fauna.Client, prefix: bytes) -> None:
    k, other = prefix + b"acct", prefix + b"log"
    client.put(k, b"10")
    client.put(prefix + b"gone", b"x")
    ok = client.txn([value(k) == b"10", version(k) == 1],
                    [Put(k, b"20"), Put(other, b"moved"), txn_delete(prefix + b"gone"), txn_get(k)],
                    [txn_get(k)])
    assert ok.succeeded and len(ok.results) == 4
    assert isinstance(ok.results[2], fauna.DeleteOpResult) and ok.results[2].deleted == 1
    read_back = ok.results[3]
    assert isinstance(read_back, fauna.RangeResult) and read_back.records[0].value == b"20"  # sees earlier ops
    assert client.get(other) is not None
    failed = client.txn([value(k) == b"10"], [Put(k, b"30")], [txn_get(k), txn_range(prefix, prefix=True)])
    assert not failed.succeeded
    cur = failed.results[0]
    assert isinstance(cur, fauna.RangeResult) and cur.records[0].value == b"20"
    assert isinstance(failed.results[1], fauna.RangeResult) and failed.results[1].count == 2
    rec = client.get(k)
    assert rec is not None and rec.value == b"20"
    # Missing keys compare as version 0; revisions compare as numbers.
    fresh = client.txn([version(prefix + b"nope") == 0, fauna.mod_revision(k) > 0], [Put(prefix + b"nope", b"1")])
    assert fresh.succeeded and fresh.results and isinstance(fresh.results[0], fauna.PutOpResult)
    # A put-if-absent inside a transaction that finds its key: nothing of it runs.
    blocked = client.txn([], [Put(prefix + b"new2", b"1"), Put(k, b"x", if_absent=True)])
    assert blocked.already_exists == k and not blocked.succeeded
    assert client.get(prefix + b"new2") is None


def test_txn_duplicate_key_is_invalid(client: fauna.Client, prefix: bytes) -> None:
    k = prefix + b"dup"
    with pytest.raises(fauna.InvalidRequest) as e:
        client.txn([], [Put(k, b"1"), Put(k, b"2")])
    assert e.value.code == 7


def test_compact(client: fauna.Client, prefix: bytes) -> None:
    k = prefix + b"c"
    r1 = client.put(k, b"1")
    r2 = client.put(k, b"2")
    res = client.compact(r2.revision)
    assert res.compacted_to == r2.revision and res.revision > r2.revision
    with pytest.raises(fauna.Compacted) as e:
        client.get(k, revision=r1.revision)
    assert e.value.code == 5
    rec = client.get(k, revision=r2.revision)
    assert rec is not None and rec.value == b"2"
    with pytest.raises(fauna.Compacted):
        client.compact(r1.revision)  # at or below the compacted revision
    with pytest.raises(fauna.FutureRevision) as fe:
        client.compact(res.revision + 1_000_000)
    assert fe.value.requested == res.revision + 1_000_000


def test_leases_grant_attach_keep_alive_revoke(client: fauna.Client, prefix: bytes) -> None:
    lease = client.grant_lease(60)
    assert lease.ttl == 60 and lease.id > 0
    k = prefix + b"leased"
    client.put(k, b"v", lease=lease.id)
    client.put(prefix + b"plain", b"stays")
    rec = client.get(k)
    assert rec is not None and rec.lease == lease.id
    assert client.keep_alive_once(lease.id) == 60
    assert client.revoke_lease(lease.id) == 1
    assert client.get(k) is None and client.get(prefix + b"plain") is not None
    with pytest.raises(fauna.LeaseNotFound):
        client.keep_alive_once(lease.id)
    with pytest.raises(fauna.InvalidRequest):  # the invalid outcome leaseNotFound
        client.put(k, b"v", lease=lease.id)
    with pytest.raises(fauna.InvalidArgument):
        client.grant_lease(0)


def test_status_members_hashkv(cluster, client: fauna.Client) -> None:
    sts = client.status_all()
    assert set(sts) == set(cluster.endpoints)
    leaders = [s for s in sts.values() if isinstance(s, fauna.NodeStatus) and s.is_leader]
    assert len(leaders) == 1
    one = client.status(cluster.endpoints[0])
    assert one.node_id == 1 and one.term >= 1 and one.applied_index <= one.commit_index + 1_000_000
    members = client.members()
    assert sorted(m.node_id for m in members) == [1, 2, 3]
    assert {m.client for m in members} == set(cluster.endpoints)
    assert all(not m.is_learner and len(m.public_key) == 32 for m in members)
    leader_ep = client.find_leader()
    assert client.status(leader_ep).is_leader
    hashes = client.hash_kv_all()
    assert all(isinstance(h, fauna.HashKVResult) and len(h.digest) == 32 for h in hashes.values())


def test_request_hook_and_errors(cluster, client: fauna.Client) -> None:
    from fauna.wire import Kind, decode_status
    kind, body = client.request(Kind.STATUS, b"", endpoint=cluster.endpoints[1])
    assert kind == Kind.STATUS_RESPONSE and decode_status(body).node_id == 2
    # A write body the node cannot decode: invalidRequest with the node's reason.
    with pytest.raises(fauna.InvalidRequest) as e:
        client.request(Kind.WRITE, b"\x07")
    assert e.value.code == 7 and e.value.code_name == "invalidRequest" and "write" in e.value.message
    answers = client.request_all(Kind.STATUS, b"")
    assert sorted(decode_status(b).node_id for k, b in answers.values()) == [1, 2, 3]  # type: ignore[misc]


def test_not_leader_hint_is_followed(cluster, prefix: bytes) -> None:
    leader = cluster.wait_for_leader()
    follower = next(n for n in cluster.names if n != leader)
    # A client that only knows a follower learns the leader from the notLeader hint.
    with fauna.Client([cluster.client_addr[follower]]) as c:
        res = c.put(prefix + b"hint", b"1")
        assert res.revision > 0
        assert c.leader == cluster.client_addr[leader]
    # A raw write to the follower is refused with the hint.
    from fauna.wire import Kind, Proposal, decode_error
    with fauna.Client([cluster.client_addr[follower]], config=fauna.ClientConfig(attempts_max=1)) as c:
        kind, body = c.pool.request(cluster.client_addr[follower], Kind.WRITE,
                                    Proposal(Put(prefix + b"x", b"1")).encode(), timeout=5)
        err = decode_error(body)
        assert kind == Kind.ERROR and isinstance(err, fauna.NotLeader)
        assert err.leader == int(leader[1:]) and err.leader_address == cluster.client_addr[leader]


def test_unreachable_cluster_fails_within_deadline() -> None:
    from conftest import free_ports
    port = free_ports(1)[0]
    import time
    t0 = time.monotonic()
    with fauna.Client([("127.0.0.1", port)], config=fauna.ClientConfig(timeout=1.0)) as c:
        with pytest.raises(fauna.ConnectionFailed):
            c.put(b"k", b"v")
    assert time.monotonic() - t0 < 3.0


def test_session_semantics_of_the_node(client: fauna.Client, prefix: bytes) -> None:
    """docs/KV-COMMANDS.md "Sessions", as the node applies them (raw writes, chosen sessions)."""
    import random

    from fauna.wire import Kind, Outcome, Proposal, decode_apply_result
    cid = random.getrandbits(63) | 1

    def raw(seq: int, v: bytes, client_id: int = cid) -> fauna.ApplyResult:
        kind, body = client.request(Kind.WRITE, Proposal(Put(prefix + b"s", v), client_id, seq).encode())
        assert kind == Kind.WRITE_RESPONSE
        return decode_apply_result(body)

    first = raw(1, b"a")
    assert first.outcome == Outcome.SUCCESS and not first.is_replay
    again = raw(1, b"a")  # a retry: the stored result, nothing written
    assert again.is_replay and again.outcome == Outcome.SUCCESS
    rec = client.get(prefix + b"s")
    assert rec is not None and rec.version == 1 and rec.mod_revision == first.revision
    assert raw(3, b"b").outcome == Outcome.SUCCESS  # gaps are allowed
    old = raw(2, b"c")
    assert old.outcome == Outcome.SESSION_EXPIRED and (old.sequence, old.last_applied) == (2, 3)
    stranger = raw(5, b"d", cid ^ (1 << 62))  # an unknown client must start at 1
    assert stranger.outcome == Outcome.SESSION_EXPIRED and (stranger.sequence, stranger.last_applied) == (5, None)
    rec = client.get(prefix + b"s")
    assert rec is not None and rec.value == b"b" and rec.version == 2
