"""The pure checks of a verified read (fauna.verify) and the trusted state (fauna.trust): who
signed what, which exception each failure raises, how the trusted head advances, and
trusted.json read and written as fctl does, atomically and merged under a lock."""
from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from audit_doc import public, signing_key, v2_entry
from fauna import ConnectionFailed, DeadlineExceeded, Endpoint, audit, merkle, trust, verify
from fauna.entry import EffectProof, JournalEntry
from fauna.verify import ForgedHeadError, ForkError, LyingNodeError, TrustError

CLUSTER = bytes(range(16))
KEYS = [signing_key(n) for n in (1, 2, 3)]
TRUST = trust.TrustedCluster("t", CLUSTER, tuple(trust.MemberKey(i + 1, public(k)) for i, k in enumerate(KEYS)))
LEAVES = [merkle.sha256(b"%d" % i) for i in range(20)]
E = {n: Endpoint(f"10.0.0.{n}", 7100 + n) for n in (1, 2, 3)}
E1, E2, E3 = E[1], E[2], E[3]


def head(n: int, size: int, root: bytes, key_index: int | None = None, cluster: bytes = CLUSTER) -> audit.SignedTreeHead1:
    k = KEYS[n - 1] if key_index is None else signing_key(key_index)
    sig = k.sign(verify.tree_head_bytes(cluster, size, root))
    return audit.SignedTreeHead1(n, size, cluster, size, root, public(k), sig)


def test_check_quorum() -> None:
    root = merkle.root(LEAVES[:5])
    message = verify.tree_head_bytes(CLUSTER, 5, root)
    sigs = [(public(k), k.sign(message)) for k in KEYS]
    assert [m.name for m in verify.check_quorum(CLUSTER, 5, root, sigs[:2], TRUST)] == ["n1", "n2"]
    for bad in (sigs[:1], [sigs[0], sigs[0]], [sigs[0], (sigs[1][0], sigs[0][1])],
                [sigs[0], (public(signing_key(7)), signing_key(7).sign(message))]):
        with pytest.raises(ForgedHeadError, match="no quorum"):
            verify.check_quorum(CLUSTER, 5, root, bad, TRUST)
    with pytest.raises(ForgedHeadError):
        verify.check_quorum(CLUSTER, 6, root, sigs, TRUST)  # signed for another size
    with pytest.raises(TrustError):
        verify.check_quorum(b"\xff" * 16, 5, root, sigs, TRUST)


def test_quorum_for_names_the_liar() -> None:
    real = merkle.root(LEAVES[:9])
    lie = merkle.sha256(b"forged")
    honest = [(E[n], head(n, 9, real)) for n in (1, 2, 3)]
    q = verify.quorum_for(9, real, honest, TRUST, E2)
    assert q.signers == ("n1", "n2", "n3") and len(q.signatures) == 3
    # one node down: still a quorum
    assert verify.quorum_for(9, real, honest[:2] + [(E3, ConnectionFailed("down"))], TRUST, E2).signers == ("n1", "n2")
    # lie-proof: what e2 sent leads to a root nobody signed, a quorum signed the real one
    with pytest.raises(LyingNodeError, match="record, entry or inclusion proof is false") as e:
        verify.quorum_for(9, lie, honest, TRUST, E2)
    assert e.value.node == E2 and str(e.value.node) == "10.0.0.2:7102" and e.value.check == "inclusion"
    # lie-forge: the liar signed its forged root, the majority the real one
    forged = [honest[0], (E2, head(2, 9, lie)), honest[2]]
    with pytest.raises(ForgedHeadError, match="only n2 signed the root it leads to"):
        verify.quorum_for(9, lie, forged, TRUST, E2)
    # no quorum anywhere (two nodes down)
    with pytest.raises(ForgedHeadError, match="no quorum") as e2:
        verify.quorum_for(9, real, [honest[0], (E2, ConnectionFailed("x")), (E3, DeadlineExceeded("y"))], TRUST, E1)
    assert "signed by 1 of 3 trusted members" in str(e2.value)
    # a node presenting an unpinned key, or signing for another cluster or size, does not count
    odd = [honest[0], (E2, head(2, 9, real, key_index=9)), (E3, head(3, 9, real, cluster=b"\x01" * 16))]
    with pytest.raises(ForgedHeadError, match="untrusted key"):
        verify.quorum_for(9, real, odd, TRUST, E1)
    # a bad signature does not count
    bad = audit.SignedTreeHead1(3, 9, CLUSTER, 9, real, public(KEYS[2]), b"\x00" * 64)
    with pytest.raises(ForgedHeadError):
        verify.quorum_for(9, real, [honest[0], (E3, bad)], TRUST, E1)


def test_advance_and_consistency() -> None:
    t5 = TRUST.__class__(**{**TRUST.__dict__, "tree_size": 5, "root_hash": merkle.root(LEAVES[:5])})
    path = merkle.consistency_path(LEAVES[:12], 5)
    after = verify.advance(t5, 12, merkle.root(LEAVES[:12]), path)
    assert (after.tree_size, after.root_hash) == (12, merkle.root(LEAVES[:12]))
    # from the empty tree: no proof needed
    assert verify.advance(TRUST, 12, merkle.root(LEAVES[:12]), []).tree_size == 12
    # same size, same root: unchanged; another root: a fork
    assert verify.advance(t5, 5, t5.root_hash, []) == t5
    with pytest.raises(ForkError, match="fork"):
        verify.advance(t5, 5, merkle.root(LEAVES[1:6]), [])
    # another history of 12 entries does not extend the trusted 5
    other = LEAVES[:4] + [merkle.sha256(b"x")] + LEAVES[5:12]
    with pytest.raises(ForkError, match="fork or rollback") as e:
        verify.advance(t5, 12, merkle.root(other), merkle.consistency_path(other, 5))
    assert e.value.check == "consistency"
    # an older head that is a prefix leaves the state alone; one that is not is a fork
    t12 = after
    assert verify.advance(t12, 5, merkle.root(LEAVES[:5]), merkle.consistency_path(LEAVES[:12], 5)) == t12
    with pytest.raises(ForkError):
        verify.advance(t12, 5, merkle.root(other[:5]), merkle.consistency_path(LEAVES[:12], 5))
    with pytest.raises(ForkError):
        verify.check_consistency(5, t5.root_hash, 12, merkle.root(LEAVES[:12]), path[:-1])


def test_check_record_raises_lying_node() -> None:
    e, leaves = v2_entry(7, 2, b"", [(b"k", b"v")])
    good = EffectProof(0, ())
    assert verify.check_record(e, good, b"k", b"v", 7, E2) == "put"
    with pytest.raises(LyingNodeError, match="sent journal entry 7 when asked for 8"):
        verify.check_record(e, good, b"k", b"v", 8, E2)
    with pytest.raises(LyingNodeError, match="is not what its journal entry 7 wrote") as err:
        verify.check_record(e, good, b"k", b"w", 7, E2)
    assert err.value.check == "effect" and err.value.node == E2
    unwritten, _ = v2_entry(7, 2, b"", [], outcome=5)
    with pytest.raises(LyingNodeError, match="wrote nothing: its committed outcome is sessionExpired"):
        verify.check_record(unwritten, None, b"k", b"v", 7, E2)
    with pytest.raises(LyingNodeError, match="entry 7 does not decode"):
        verify.check_record(JournalEntry(7, 2, 0, b"junk"), None, b"k", b"v", 7, E2)


# --- trusted.json ----------------------------------------------------------------------------------

FCTL_FILE = """{
  "cluster" : "local",
  "clusterID" : "000102030405060708090a0b0c0d0e0f",
  "members" : [
    {
      "nodeID" : "n1",
      "publicKey" : "%s"
    },
    {
      "nodeID" : "n3",
      "publicKey" : "%s"
    }
  ],
  "rootHash" : "%s",
  "format" : "fauna-trust-v1",
  "treeSize" : "12"
}
""" % (public(KEYS[0]).hex(), public(KEYS[2]).hex(), merkle.root(LEAVES[:12]).hex())


def test_trusted_json_as_fctl_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "local" / "trusted.json"
    path.parent.mkdir()
    path.write_text(FCTL_FILE)
    t = trust.TrustStore(str(path)).load()
    assert t is not None and t.name == "local" and t.cluster_id == CLUSTER and t.tree_size == 12
    assert [m.name for m in t.members] == ["n1", "n3"] and t.quorum == 2
    assert t.membership_checked_size == 0  # absent in older files
    # written back: the same fields, sorted, in fctl's layout, and read back equal
    trust.TrustStore(str(path)).save(t, replacing=True)
    text = path.read_text()
    assert text.startswith('{\n  "cluster" : "local",\n  "clusterID" : ') and text.endswith("}\n")
    assert json.loads(text)["membershipCheckedSize"] == "0" and json.loads(text)["treeSize"] == "12"
    assert trust.TrustStore(str(path)).load() == t
    assert sorted(os.listdir(path.parent)) == ["trusted.json", "trusted.json.lock"]  # no temporary left


@pytest.mark.parametrize("edit", [
    lambda d: d.update(format="fauna-trust-v2"), lambda d: d.update(clusterID="00"), lambda d: d.update(treeSize=12),
    lambda d: d.update(treeSize="-1"), lambda d: d.update(rootHash=d["rootHash"].upper()), lambda d: d.update(members=[]),
    lambda d: d["members"].append(d["members"][0]), lambda d: d["members"][0].update(nodeID="x1"),
    lambda d: d["members"][0].update(publicKey="00"), lambda d: d.pop("rootHash"), lambda d: d.update(members="n1"),
])
def test_malformed_trusted_json_is_refused(tmp_path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(FCTL_FILE)
    edit(doc)
    path = tmp_path / "trusted.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(trust.TrustFileError):
        trust.TrustStore(str(path)).load()


def test_merge_keeps_the_larger_head_and_the_dropped_members(tmp_path: Path) -> None:
    store = trust.TrustStore(str(tmp_path / "trusted.json"))
    t12 = trust.TrustedCluster("t", CLUSTER, TRUST.members, 12, merkle.root(LEAVES[:12]))
    store.save(t12)
    older = trust.TrustedCluster("t", CLUSTER, TRUST.members[:2], 5, merkle.root(LEAVES[:5]), membership_checked_size=5)
    saved = store.save(older)
    assert (saved.tree_size, [m.name for m in saved.members], saved.membership_checked_size) == (12, ["n1", "n2"], 5)
    with pytest.raises(ForkError, match="another process"):
        store.save(trust.TrustedCluster("t", CLUSTER, TRUST.members, 12, merkle.root(LEAVES[1:13])))
    assert store.load() == saved
    assert store.save(older, replacing=True) == older  # trust init replaces


def _advance_many(path: str, start: int) -> None:
    store = trust.TrustStore(path)
    for size in range(start, 20, 2):
        store.save(trust.TrustedCluster("t", CLUSTER, TRUST.members, size, merkle.root(LEAVES[:size])))


def test_concurrent_saves_never_move_the_head_back(tmp_path: Path) -> None:
    path = str(tmp_path / "trusted.json")
    procs = [multiprocessing.Process(target=_advance_many, args=(path, s)) for s in (1, 2, 1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    t = trust.TrustStore(path).load()
    assert t is not None and t.tree_size == 19 and t.root_hash == merkle.root(LEAVES[:19])


def test_default_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "/x")
    assert trust.default_path("local") == "/x/fauna/local/trusted.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", "")
    monkeypatch.setenv("HOME", "/home/u")
    assert trust.default_path("local") == "/home/u/.config/fauna/local/trusted.json"
