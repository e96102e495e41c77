"""Verified reads against the real three-node cluster of tests/conftest.py, through the public
API (`Client.get(key, verify=True)`, `AsyncClient.get(key, verify=True)`) and
`fauna.verify` directly: honest reads, trusted.json shared with fctl both ways, proof files
checked by three verifiers, and lying nodes (FAUNA_TEST_FAULT, debug builds of faunad only)
refused with the node named.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

import fauna
from audit_doc import TOOLS_VERIFY_PROOF, public, signing_key
from fauna import merkle, proof, trust, verify
from fauna.aio import AsyncClient
from fauna.verify import ForgedHeadError, ForkError, LyingNodeError, RollbackError, VerifiedRecord

PACKAGE = str(Path(__file__).resolve().parents[1])


def vget(cluster: Any, key: bytes, trusted: Path, node: Optional[int] = 0, **kw: Any) -> Optional[VerifiedRecord]:
    """`Client.get(key, verify=True)` at node `node` (index into cluster.endpoints; None: the leader)."""
    with cluster.client() as client:
        endpoint = None if node is None else cluster.endpoints[node]
        rec = client.get(key, verify=True, trusted_path=str(trusted), endpoint=endpoint, **kw)
    assert rec is None or isinstance(rec, VerifiedRecord)
    return rec


def saved_size(trusted: Path) -> int:
    t = trust.TrustStore(str(trusted)).load()
    assert t is not None
    return t.tree_size


def test_honest_cluster_verified_reads(cluster: Any, client: fauna.Client, prefix: bytes, tmp_path: Path) -> None:
    trusted = tmp_path / "trusted.json"
    key = prefix + b"greeting"
    client.put(key, b"hello")
    first = vget(cluster, key, trusted, node=None)
    assert first is not None and first.value == b"hello" and first.pinned and isinstance(first, fauna.Record)
    assert first.written_by == "put" and first.entry.is_v2 and len(first.signers) >= 2
    assert first.served_by in cluster.endpoints
    assert first.trusted_size_before == 0 and first.trust.tree_size == first.tree_size >= first.mod_revision
    saved = trust.TrustStore(str(trusted)).load()
    assert saved == first.trust and saved is not None and [m.name for m in saved.members] == ["n1", "n2", "n3"]
    client.put(key, b"hello again")
    for node in (1, 2):  # any node can serve it; the trusted head moves on, never back
        again = vget(cluster, key, trusted, node=node)
        assert again is not None and again.value == b"hello again" and not again.pinned
        assert again.served_by == cluster.endpoints[node]
        assert again.trusted_size_before >= first.tree_size and again.trust.tree_size >= again.trusted_size_before
    head = verify.verify_head(client, trusted_path=str(trusted))
    assert head.tree_size >= again.tree_size and len(head.signers) >= 2
    # verified_get is what Client.get(verify=True) runs
    direct = verify.verified_get(client, key, trusted_path=str(trusted), endpoint=str(cluster.endpoints[0]))
    assert direct is not None and direct.value == b"hello again" and direct.served_by == cluster.endpoints[0]
    # a read as of an earlier revision is proven at that revision
    old = vget(cluster, key, trusted, revision=first.mod_revision)
    assert old is not None and old.value == b"hello" and old.mod_revision == first.mod_revision
    # absence is not proven
    assert vget(cluster, prefix + b"no such key", trusted) is None
    with pytest.raises(fauna.InvalidArgument, match="verify=True"):
        client.get(key, trusted_path=str(trusted))
    with pytest.raises(fauna.InvalidArgument, match="linearizably"):
        client.get(key, verify=True, serializable=True, trusted_path=str(trusted))


def test_trusted_json_is_shared_with_fctl(cluster: Any, prefix: bytes, tmp_path: Path) -> None:
    """fctl pins and writes trusted.json; the Python client accepts and advances it; fctl then
    accepts the file as the Python client left it (and the cluster name of cluster.toml
    selects the same default file for both)."""
    trusted = tmp_path / "trusted.json"
    key = (prefix + b"shared").decode()
    cluster.fctl("put", key, "v1")
    run = cluster.fctl("get", key, "--verify", "--trust", str(trusted))
    assert run.stdout.startswith("v1\n") and "pinned the keys" in run.stdout, run.stdout
    by_fctl = saved_size(trusted)
    with fauna.Client.from_config(cluster.config_path) as client:
        assert client.cluster_name == "pytest"
        for i in range(3):
            client.put(key.encode(), b"v%d" % (i + 2))
        rec = client.get(key.encode(), verify=True, trusted_path=str(trusted))
    assert rec is not None and rec.value == b"v4" and not rec.pinned
    assert rec.trusted_size_before == by_fctl and rec.trust.tree_size > by_fctl
    by_python = saved_size(trusted)
    assert by_python == rec.trust.tree_size
    run = cluster.fctl("get", key, "--verify", "--trust", str(trusted))
    assert run.stdout.startswith("v4\n") and "pinned" not in run.stdout, run.stdout
    before = re.search(r"extends the trusted head of size (\d+)", run.stdout)
    assert before is not None and int(before[1]) == by_python, run.stdout
    assert saved_size(trusted) >= by_python


def test_proof_files_from_the_cluster(cluster: Any, client: fauna.Client, prefix: bytes, tmp_path: Path) -> None:
    trusted, exported, ours = tmp_path / "trusted.json", tmp_path / "fctl.proof.json", tmp_path / "ours.proof.json"
    key = prefix + b"doc"
    client.put(key, b"signed")
    cluster.fctl("proof", key.decode(), "--out", str(exported), "--trust", str(trusted))
    record = vget(cluster, key, trusted)
    assert record is not None
    ours.write_bytes(proof.dumps(record.proof_file()))
    keys = [a for m in record.trust.members for a in ("--member", m.public_key.hex())]
    cli = [sys.executable, "-m", "fauna.cli", "verify-proof"]
    tools = [sys.executable, str(TOOLS_VERIFY_PROOF)]
    env = dict(os.environ, PYTHONPATH=PACKAGE)
    for path in (exported, ours):
        for cmd in (cli + keys, tools + keys, cli + ["--trusted", str(trusted)]):
            r = subprocess.run(cmd + [str(path)], capture_output=True, text=True, env=env)
            assert r.returncode == 0 and "proven by its committed effects" in r.stdout, (cmd, r)
        cluster.fctl("verify-proof", str(path), "--trust", str(trusted))
        # the record's value swapped for another: refused by all three verifiers
        doc = json.loads(path.read_text())
        doc["record"]["value"] = b"forged".hex()
        bad = tmp_path / f"bad-{path.name}"
        bad.write_text(json.dumps(doc))
        for cmd in (cli + keys, tools + keys):
            r = subprocess.run(cmd + [str(bad)], capture_output=True, text=True, env=env)
            assert r.returncode == 1 and r.stdout.startswith("FAIL: effectProof"), (cmd, r)
        assert cluster.fctl("verify-proof", str(bad), "--trust", str(trusted), check=False).returncode == 6


LIES = [
    ("lie-value", LyingNodeError, "is not what its journal entry"),
    ("lie-proof", LyingNodeError, "record, entry or inclusion proof is false"),
    ("lie-forge", ForgedHeadError, "only n2 signed the root it leads to"),
    ("lie-unwritten", LyingNodeError, "wrote nothing: its committed outcome is alreadyExists"),
]


def test_lying_nodes_are_refused(cluster: Any, client: fauna.Client, prefix: bytes, tmp_path: Path) -> None:
    trusted = tmp_path / "trusted.json"
    key = prefix + b"k"
    client.put(key, b"truth")
    assert client.put(key, b"never-written", if_absent=True).already_exists  # committed, wrote nothing
    honest = vget(cluster, key, trusted, node=1)  # honest n2 first (pins the keys)
    assert honest is not None and honest.value == b"truth"
    for fault, error, message in LIES:
        cluster.restart("n2", env={"FAUNA_TEST_FAULT": fault})
        with pytest.raises(error, match=message) as caught:
            vget(cluster, key, trusted, node=1)
        assert caught.value.node == cluster.endpoints[1], fault
        assert str(cluster.endpoints[1]) in str(caught.value), fault
        rec = vget(cluster, key, trusted, node=0)
        assert rec is not None and rec.value == b"truth", f"{fault}: the honest nodes still prove it"
    cluster.restart("n2", env={})
    rec = vget(cluster, key, trusted, node=1)
    assert rec is not None and rec.value == b"truth"


def test_async_client_verified_reads(cluster: Any, client: fauna.Client, prefix: bytes, tmp_path: Path) -> None:
    """AsyncClient.get(verify=True): the checks on the blocking twin in a worker thread; an
    honest read passes, a lying node is refused, and the twin closes with the client."""
    trusted = tmp_path / "trusted.json"
    key = prefix + b"async"
    client.put(key, b"awaited")
    n2 = cluster.endpoints[1]

    async def read(endpoint: Any) -> Optional[fauna.Record]:
        async with AsyncClient.from_config(cluster.config_path) as c:
            assert c.cluster_name == "pytest"
            rec = await c.get(key, verify=True, endpoint=endpoint, trusted_path=str(trusted))
            twin = c.blocking_twin()
            assert twin.endpoints == c.endpoints and twin.cluster_name == "pytest"
        with pytest.raises(fauna.ClientClosed):
            await c.get(key, verify=True, trusted_path=str(trusted))
        return rec

    rec = asyncio.run(read(None))
    assert isinstance(rec, VerifiedRecord) and rec.value == b"awaited" and rec.pinned and len(rec.signers) >= 2
    cluster.restart("n2", env={"FAUNA_TEST_FAULT": "lie-value"})
    with pytest.raises(LyingNodeError, match="is not what its journal entry") as caught:
        asyncio.run(read(n2))
    assert caught.value.node == n2
    rec = asyncio.run(read(cluster.endpoints[0]))
    assert rec is not None and rec.value == b"awaited" and not rec.pinned


def edit_trust(trusted: Path, **changes: Any) -> None:
    store = trust.TrustStore(str(trusted))
    t = store.load()
    assert t is not None
    store.save(trust.TrustedCluster(**{**t.__dict__, **changes}), replacing=True)


def test_forged_head_rollback_and_fork(cluster: Any, client: fauna.Client, prefix: bytes, tmp_path: Path) -> None:
    trusted = tmp_path / "trusted.json"
    key = prefix + b"h"
    client.put(key, b"1")
    base = vget(cluster, key, trusted)
    assert base is not None
    pinned = trust.TrustStore(str(trusted)).load()
    assert pinned is not None
    # Keys the nodes do not hold: their signatures do not count.
    edit_trust(trusted, members=tuple(trust.MemberKey(m.node_id, public(signing_key(40 + m.node_id))) for m in pinned.members))
    with pytest.raises(ForgedHeadError, match="no quorum"):
        vget(cluster, key, trusted)
    # The trusted tree is longer than any node's: the cluster's history was rolled back.
    edit_trust(trusted, members=pinned.members, tree_size=base.tree_size + 1000)
    with pytest.raises(RollbackError, match="rollback: the trusted tree has"):
        vget(cluster, key, trusted)
    # The trusted root at an earlier size is not the cluster's: the history forked.
    edit_trust(trusted, tree_size=base.tree_size - 1, root_hash=merkle.sha256(b"another history"))
    client.put(key, b"2")
    with pytest.raises(ForkError, match="fork or rollback"):
        vget(cluster, key, trusted)
    with pytest.raises(ForkError):
        verify.verify_head(client, trusted_path=str(trusted))
    # The genuine trusted state still verifies.
    trust.TrustStore(str(trusted)).save(pinned, replacing=True)
    rec = vget(cluster, key, trusted)
    assert rec is not None and rec.value == b"2"
