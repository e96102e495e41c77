"""Proof files (fauna.proof): the worked example of docs/AUDIT.md §7/§12 and the files in
docs/examples verify; files of our own signed trees show the quorum rule; every edit of a
genuine file is refused with InvalidProof and nothing else."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from audit_doc import EXAMPLES, make_proof, public, put_payload, signing_key, v2_entry, with_effect, worked_example
from fauna import proof
from fauna.entry import JournalEntry
from fauna.proof import InvalidProof

EXAMPLE = worked_example()
KEYS = [signing_key(n) for n in (1, 2, 3)]
MEMBERS = [public(k) for k in KEYS]


def three_member_proof(signers: list[Any] | None = None) -> proof.ProofFile:
    """Entry 4 of 6 puts (k, v) among other writes, signed by `signers` (n1 and n2 by default)."""
    entries = [JournalEntry(1, 1, 1, b"\x01" + (1).to_bytes(8, "big")), JournalEntry(2, 1, 0, b"")]
    entries.append(v2_entry(3, 1, b"", [], outcome=7)[0])
    e4, leaves = v2_entry(4, 2, put_payload(b"k", b"v"), [(b"k", b"v"), (b"a", b"1"), (b"z", None)], branch=1)
    entries += [e4, v2_entry(5, 2, b"x", [(b"k", b"w")])[0], v2_entry(6, 2, b"", [], outcome=1)[0]]
    return with_effect(make_proof(entries, 4, b"k", b"v", KEYS[:2] if signers is None else signers), leaves, b"k", b"v")


def doc_of(p: proof.ProofFile) -> dict[str, Any]:
    return json.loads(proof.dumps(p))


def test_worked_example_proof_file_verifies() -> None:
    verdict = proof.verify_document(EXAMPLE.proof_json, [EXAMPLE.public_key], EXAMPLE.cluster_id)
    assert verdict.written_by == "put"
    assert verdict.line == ("OK entry 3 (term 1) is leaf 2 of tree size 5 root "
                            "52c28ba5a20cffa0056b213b4a745abec84cd89920bbf88016d1780b506e6d23; signed by 1 of 1 members; "
                            "a put of the record's key and value, proven by its committed effects")
    parsed = proof.parse(EXAMPLE.proof_json)
    assert proof.parse(json.loads(proof.dumps(parsed))) == parsed
    assert doc_of(parsed) == EXAMPLE.proof_json  # written as fctl writes it (field for field)


def test_docs_examples_verify() -> None:
    v2 = proof.verify_bytes((EXAMPLES / "worked-example.proof.json").read_bytes(), [EXAMPLE.public_key])
    assert v2.proof.format == "fauna-proof-v2" and v2.written_by == "put"
    v1 = proof.verify_bytes((EXAMPLES / "worked-example-v1.proof.json").read_bytes(), [EXAMPLE.public_key])
    assert v1.proof.format == "fauna-proof-v1" and v1.written_by is None
    assert v1.line.endswith("effect not proven (leaf v1): payload not checked against the record")
    # its payload ("hello") is no KV command: asked to check the proposal, the file is refused
    with pytest.raises(InvalidProof, match="entry.payload: entry 3 does not decode"):
        proof.verify_bytes((EXAMPLES / "worked-example-v1.proof.json").read_bytes(), [EXAMPLE.public_key], check_v1_payload=True)


def test_quorum_rule() -> None:
    assert proof.verify(three_member_proof(), MEMBERS).written_by == "txn (then branch)"
    assert len(proof.verify(three_member_proof(KEYS), MEMBERS).signers) == 3
    for signers in ([KEYS[0]], [KEYS[0], KEYS[0], KEYS[0]], []):
        with pytest.raises(InvalidProof, match="signatures: got 1 valid of 3 members, want >= 2|got 0 valid"):
            proof.verify(three_member_proof(signers), MEMBERS)
    # a signer that is not a member does not count, nor does a bad signature
    with pytest.raises(InvalidProof, match="got 1 valid of 3 members"):
        proof.verify(three_member_proof([KEYS[0], signing_key(9)]), MEMBERS)
    p = three_member_proof()
    broken = (p.signatures[0], (p.signatures[1][0], p.signatures[0][1]))
    with pytest.raises(InvalidProof, match="got 1 valid of 3 members"):
        proof.verify(proof.ProofFile(**{**p.__dict__, "signatures": broken}), MEMBERS)
    # only the first signature of a member is checked: a bad one first, a good one after, fails
    with pytest.raises(InvalidProof, match="got 1 valid"):
        proof.verify(proof.ProofFile(**{**p.__dict__, "signatures": ((p.signatures[1][0], b"\x00" * 64),) + p.signatures}), MEMBERS)
    # the cluster is checked when known
    with pytest.raises(InvalidProof, match="clusterID: got"):
        proof.verify(p, MEMBERS, cluster=b"\xff" * 16)


def test_v1_leaf_proposal_check() -> None:
    entries = [JournalEntry(1, 1, 0, b""), JournalEntry(2, 1, 0, put_payload(b"k", b"v", session=(5, 1))), JournalEntry(3, 1, 0, b"")]
    v1 = make_proof(entries, 2, b"k", b"v", KEYS[:2], fmt=proof.FORMAT_V1)
    verdict = proof.verify(v1, MEMBERS, check_v1_payload=True)
    assert verdict.written_by == "put" and "effect not proven (leaf v1)" in verdict.line
    lie = make_proof(entries, 2, b"k", b"w", KEYS[:2], fmt=proof.FORMAT_V1)
    assert proof.verify(lie, MEMBERS).written_by is None  # tools/verify-proof's check: the leaf only
    with pytest.raises(InvalidProof, match="puts another value"):
        proof.verify(lie, MEMBERS, check_v1_payload=True)


def test_unwritten_value_is_refused() -> None:
    """A committed put-if-absent that found its key: genuine entry, path and heads; v2 effects
    show it wrote nothing, and as a v1 leaf it does not lead to the signed root."""
    payload = put_payload(b"k", b"never-written", if_absent=True)
    entries = [v2_entry(1, 1, put_payload(b"k", b"real"), [(b"k", b"real")])[0], v2_entry(2, 1, payload, [], outcome=1)[0]]
    p = make_proof(entries, 2, b"k", b"never-written", KEYS[:2])
    with pytest.raises(InvalidProof, match=r"entry.effects.outcome: got 1, want 0 \(success\): the entry wrote nothing"):
        proof.verify(p, MEMBERS)
    as_v1 = doc_of(p)
    as_v1["format"] = "fauna-proof-v1"
    del as_v1["entry"]["effects"]
    with pytest.raises(InvalidProof, match="rootHash: got"):
        proof.verify_document(as_v1, MEMBERS)


def edits(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every edit of a genuine file that must be refused."""
    out: list[tuple[str, dict[str, Any]]] = []

    def edit(name: str, f: Any) -> None:
        d = copy.deepcopy(doc)
        f(d)
        out.append((name, d))

    def setter(*path: Any) -> Any:
        def f(value: Any) -> Any:
            def g(d: dict[str, Any]) -> None:
                for p in path[:-1]:
                    d = d[p]
                d[path[-1]] = value
            return g
        return f

    def flip(h: str) -> str:
        return h[:-1] + ("0" if h[-1] != "0" else "1")

    edit("key swapped", setter("record", "key")(doc["record"]["value"]))
    edit("value swapped", setter("record", "value")(doc["record"]["key"]))
    edit("key and value swapped", lambda d: d["record"].update(key=doc["record"]["value"], value=doc["record"]["key"]))
    edit("value changed", setter("record", "value")(doc["record"]["value"] + "00"))
    edit("key changed", setter("record", "key")(flip(doc["record"]["key"])))
    edit("revision", setter("record", "revision")(str(int(doc["record"]["revision"]) + 1)))
    edit("entry index", setter("entry", "index")(str(int(doc["entry"]["index"]) + 1)))
    edit("entry term", setter("entry", "term")(str(int(doc["entry"]["term"]) + 1)))
    edit("entry type", setter("entry", "type")(1))
    edit("entry payload", setter("entry", "payload")(doc["entry"]["payload"] + "00"))
    edit("leaf index", setter("leafIndex")(str(int(doc["leafIndex"]) + 1)))
    edit("tree size", setter("treeSize")(str(int(doc["treeSize"]) + 1)))
    edit("root", setter("rootHash")(flip(doc["rootHash"])))
    edit("cluster", setter("clusterID")(flip(doc["clusterID"])))
    for i in range(len(doc["inclusionPath"])):
        edit(f"path {i}", lambda d, i=i: d["inclusionPath"].__setitem__(i, flip(d["inclusionPath"][i])))
    edit("path short", lambda d: d["inclusionPath"].pop())
    edit("path long", lambda d: d["inclusionPath"].append(d["rootHash"]))
    edit("outcome", setter("entry", "effects", "outcome")(1))
    edit("branch", setter("entry", "effects", "branch")(2))
    edit("branch 3", setter("entry", "effects", "branch")(3))
    edit("count", setter("entry", "effects", "count")(str(int(doc["entry"]["effects"]["count"]) + 1)))
    edit("effects root", setter("entry", "effects", "root")(flip(doc["entry"]["effects"]["root"])))
    edit("effect index", setter("effectProof", "index")(str(int(doc["effectProof"]["index"]) + 1)))
    if doc["effectProof"]["path"]:
        edit("effect path", lambda d: d["effectProof"]["path"].__setitem__(0, flip(d["effectProof"]["path"][0])))
    edit("effect path long", lambda d: d["effectProof"]["path"].append(d["rootHash"]))
    edit("effect proof missing", lambda d: d.pop("effectProof"))
    edit("effects missing", lambda d: d["entry"].pop("effects"))
    edit("v1 with effects", setter("format")("fauna-proof-v1"))
    edit("unknown format", setter("format")("fauna-proof-v3"))
    edit("unknown field", setter("extra")(1))
    edit("unknown record field", setter("record", "extra")("00"))
    edit("upper-case hex", setter("rootHash")(doc["rootHash"].upper()))
    edit("odd hex", setter("record", "value")(doc["record"]["value"] + "0"))
    edit("leading zero", setter("treeSize")("0" + doc["treeSize"]))
    edit("number for u64", setter("treeSize")(int(doc["treeSize"])))
    edit("u64 overflow", setter("treeSize")(str(2**64)))
    edit("string for type", setter("entry", "type")("0"))
    edit("bool for type", setter("entry", "type")(False))
    edit("short hash", setter("rootHash")(doc["rootHash"][:-2]))
    edit("signature entry not an object", setter("signatures")([1]))
    edit("record not an object", setter("record")([]))
    edit("path not a list", setter("inclusionPath")("00"))
    edit("no signatures", setter("signatures")([]))
    return out


@pytest.mark.parametrize("source", ["three members", "worked example"])
def test_every_edit_is_refused(source: str) -> None:
    if source == "worked example":
        doc, members = EXAMPLE.proof_json, [EXAMPLE.public_key]
    else:
        doc, members = doc_of(three_member_proof()), MEMBERS
    proof.verify_document(doc, members)
    for name, edited in edits(doc):
        with pytest.raises(InvalidProof):
            proof.verify_document(edited, members)
            pytest.fail(f"{name}: accepted")


def test_not_json_and_not_objects() -> None:
    for data in (b"", b"{", b"[]", b"null", b"\xff\xfe", b"[" * 100000):
        with pytest.raises(InvalidProof):
            proof.verify_bytes(data, MEMBERS)
