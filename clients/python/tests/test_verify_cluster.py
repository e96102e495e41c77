"""Verified reads against a real three-node cluster of debug faunad processes.

Uses a session fixture named `cluster` (tests/conftest.py) with:

- `cluster.endpoints`: the nodes' client addresses, "127.0.0.1:port", in node order
  (endpoints[0] is n1, endpoints[1] is n2, endpoints[2] is n3);
- `cluster.restart(name, env={...})`: stop node `name` ("n2"), start it again with `env`
  added to the environment (e.g. FAUNA_TEST_FAULT), and return once the cluster has a leader
  and every node answers again;
- `cluster.config_path`: the cluster.toml the nodes run from (for fctl);
- `cluster.client()`: a fauna.Client over all endpoints.

Until that conftest exists: `pytest -p fauna._standin tests/test_verify_cluster.py` (the
stand-in fixture). fctl is taken from $FAUNA_BIN, else <repo>/.build/debug. The lying nodes
(FAUNA_TEST_FAULT) exist in debug builds of faunad only.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from audit_doc import REPO, TOOLS_VERIFY_PROOF
from fauna import merkle, proof, trust, verify
from fauna.verify import ForgedHeadError, ForkError, LyingNodeError, RollbackError

BIN = Path(os.environ.get("FAUNA_BIN") or REPO / ".build" / "debug")
PACKAGE = str(Path(__file__).resolve().parents[1])

pytestmark = pytest.mark.skipif(not (BIN / "fctl").exists(), reason=f"no fctl in {BIN} (set FAUNA_BIN)")


def fctl(cluster: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "fctl"), *args, "--config", str(cluster.config_path)], capture_output=True, text=True, timeout=120)


def put(cluster: Any, key: str, value: str, *flags: str) -> subprocess.CompletedProcess[str]:
    run = fctl(cluster, "put", key, value, *flags)
    assert run.returncode == 0 or "--if-absent" in flags, run
    return run


def vget(cluster: Any, key: bytes, trusted: Path, node: int = 0, **kw: Any) -> verify.VerifiedRecord | None:
    client = cluster.client()
    try:
        return verify.verified_get(client, key, trusted_path=str(trusted), node=cluster.endpoints[node], **kw)
    finally:
        getattr(client, "close", lambda: None)()


def test_honest_cluster_verified_reads(cluster: Any, tmp_path: Path) -> None:
    trusted = tmp_path / "trusted.json"
    put(cluster, "greeting", "hello")
    first = vget(cluster, b"greeting", trusted)
    assert first is not None and first.value == b"hello" and first.pinned
    assert first.written_by == "put" and first.entry.is_v2 and len(first.signers) >= 2
    assert first.trusted_size_before == 0 and first.trust.tree_size == first.tree_size >= first.mod_revision
    saved = trust.TrustStore(str(trusted)).load()
    assert saved == first.trust and [m.name for m in saved.members] == ["n1", "n2", "n3"]
    put(cluster, "greeting", "hello again")
    for node in (1, 2):  # any node can serve it; the trusted head moves on, never back
        again = vget(cluster, b"greeting", trusted, node=node)
        assert again is not None and again.value == b"hello again" and not again.pinned
        assert again.trusted_size_before >= first.tree_size and again.trust.tree_size >= again.trusted_size_before
    # fctl shares the file: it reads what we wrote, and we read what it writes
    run = fctl(cluster, "get", "greeting", "--verify", "--trust", str(trusted))
    assert run.returncode == 0 and run.stdout.startswith("hello again\n") and "pinned" not in run.stdout, run
    assert trust.TrustStore(str(trusted)).load().tree_size >= again.trust.tree_size
    head = verify.verify_head(cluster.client(), trusted_path=str(trusted))
    assert head.tree_size >= again.tree_size and len(head.signers) >= 2
    # a read as of an earlier revision is proven at that revision
    old = vget(cluster, b"greeting", trusted, revision=first.mod_revision)
    assert old is not None and old.value == b"hello"
    # absence is not proven
    assert vget(cluster, b"no such key", trusted) is None


def test_proof_files_from_the_cluster(cluster: Any, tmp_path: Path) -> None:
    trusted, exported, ours = tmp_path / "trusted.json", tmp_path / "fctl.proof.json", tmp_path / "ours.proof.json"
    put(cluster, "doc", "signed")
    run = fctl(cluster, "proof", "doc", "--out", str(exported), "--trust", str(trusted))
    assert run.returncode == 0, run
    record = vget(cluster, b"doc", trusted)
    ours.write_bytes(proof.dumps(record.proof_file()))
    keys = [a for m in record.trust.members for a in ("--member", m.public_key.hex())]
    fauna = [sys.executable, "-m", "fauna.cli", "verify-proof"]
    tools = [sys.executable, str(TOOLS_VERIFY_PROOF)]
    env = dict(os.environ, PYTHONPATH=PACKAGE)
    for path in (exported, ours):
        for cmd in (fauna + keys, tools + keys, fauna + ["--trusted", str(trusted)]):
            r = subprocess.run(cmd + [str(path)], capture_output=True, text=True, env=env)
            assert r.returncode == 0 and "proven by its committed effects" in r.stdout, (cmd, r)
        assert fctl(cluster, "verify-proof", str(path), "--trust", str(trusted)).returncode == 0
        # the record's value swapped for another: refused by all three verifiers
        doc = json.loads(path.read_text())
        doc["record"]["value"] = b"forged".hex()
        bad = tmp_path / f"bad-{path.name}"
        bad.write_text(json.dumps(doc))
        for cmd in (fauna + keys, tools + keys):
            r = subprocess.run(cmd + [str(bad)], capture_output=True, text=True, env=env)
            assert r.returncode == 1 and r.stdout.startswith("FAIL: effectProof"), (cmd, r)
        assert fctl(cluster, "verify-proof", str(bad), "--trust", str(trusted)).returncode == 6


LIES = [
    ("lie-value", LyingNodeError, "is not what its journal entry"),
    ("lie-proof", LyingNodeError, "record, entry or inclusion proof is false"),
    ("lie-forge", ForgedHeadError, "only n2 signed the root it leads to"),
    ("lie-unwritten", LyingNodeError, "wrote nothing: its committed outcome is alreadyExists"),
]


def test_lying_nodes_are_refused(cluster: Any, tmp_path: Path) -> None:
    trusted = tmp_path / "trusted.json"
    put(cluster, "k", "truth")
    put(cluster, "k", "never-written", "--if-absent")  # committed, wrote nothing (for lie-unwritten)
    assert vget(cluster, b"k", trusted, node=1).value == b"truth"  # honest n2 first (pins the keys)
    try:
        for fault, error, message in LIES:
            cluster.restart("n2", env={"FAUNA_TEST_FAULT": fault})
            with pytest.raises(error, match=message) as caught:
                vget(cluster, b"k", trusted, node=1)
            assert caught.value.node == cluster.endpoints[1], fault
            assert vget(cluster, b"k", trusted, node=0).value == b"truth", f"{fault}: the honest nodes still prove it"
    finally:
        cluster.restart("n2", env={})
    assert vget(cluster, b"k", trusted, node=1).value == b"truth"


def edit_trust(trusted: Path, **changes: Any) -> None:
    store = trust.TrustStore(str(trusted))
    t = store.load()
    store.save(trust.TrustedCluster(**{**t.__dict__, **changes}), replacing=True)


def test_forged_head_rollback_and_fork(cluster: Any, tmp_path: Path) -> None:
    trusted = tmp_path / "trusted.json"
    put(cluster, "h", "1")
    base = vget(cluster, b"h", trusted)
    pinned = trust.TrustStore(str(trusted)).load()
    # Keys the nodes do not hold: their signatures do not count.
    from audit_doc import public, signing_key
    edit_trust(trusted, members=tuple(trust.MemberKey(m.node_id, public(signing_key(40 + m.node_id))) for m in pinned.members))
    with pytest.raises(ForgedHeadError, match="no quorum"):
        vget(cluster, b"h", trusted)
    # The trusted tree is longer than any node's: the cluster's history was rolled back.
    edit_trust(trusted, members=pinned.members, tree_size=base.tree_size + 1000)
    with pytest.raises(RollbackError, match="rollback: the trusted tree has"):
        vget(cluster, b"h", trusted)
    # The trusted root at an earlier size is not the cluster's: the history forked.
    edit_trust(trusted, tree_size=base.tree_size - 1, root_hash=merkle.sha256(b"another history"))
    put(cluster, "h", "2")
    with pytest.raises(ForkError, match="fork or rollback"):
        vget(cluster, b"h", trusted)
    with pytest.raises(ForkError):
        verify.verify_head(cluster.client(), trusted_path=str(trusted))
    # The genuine trusted state still verifies.
    trust.TrustStore(str(trusted)).save(pinned, replacing=True)
    assert vget(cluster, b"h", trusted).value == b"2"
