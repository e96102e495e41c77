"""The examples docs/AUDIT.md gives outside its generated worked-example block: the consistency
proofs of §12 traced through §4's steps (old sizes 4 and 2, powers of two, and 3) and the
membership-change entries of §1. Read from the markdown, so the document stays checked."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from fauna import merkle
from fauna.entry import EffectsSummary, JournalEntry

AUDIT_MD = Path(__file__).resolve().parents[3] / "docs" / "AUDIT.md"
TEXT = AUDIT_MD.read_text()
HEX64 = r"([0-9a-f]{64})"


def worked_leaf_hashes() -> list[bytes]:
    """The leaf hashes of the generated worked example, in leaf order."""
    block = TEXT.split("<!-- worked-example:begin -->")[1].split("<!-- worked-example:end -->")[0]
    hashes: list[bytes] = []
    for leaf in re.split(r"\nleaf \d+: ", block)[1:]:
        found = re.findall(r"\n  leafHash = SHA256\(0[02] ‖ leafData\) = " + HEX64, leaf)
        assert len(found) == 1, leaf
        hashes.append(bytes.fromhex(found[0]))
    return hashes


def consistency_blocks() -> dict[int, tuple[int, list[bytes], dict[str, bytes]]]:
    """old size -> (new size, path, named hashes) of each 'consistency proof, tree size A to B'."""
    section = TEXT.split("### Consistency proofs through §4's steps")[1].split("How these numbers")[0]
    out = {}
    for chunk in re.split(r"\nconsistency proof, tree size ", section)[1:]:
        m = re.match(r"(\d+) to (\d+)", chunk)
        assert m, chunk[:80]
        path = [bytes.fromhex(h) for h in re.findall(r"path\[\d+\] = " + HEX64, chunk)]
        roots = {f"root at size {n}": bytes.fromhex(h)
                 for h, n in re.findall(HEX64 + r" \(root at size (\d+)\)", chunk)}
        roots.update({f"root at size {n}": bytes.fromhex(h)
                      for n, h in re.findall(r"root at size (\d+) = " + HEX64, chunk)})
        out[int(m.group(1))] = (int(m.group(2)), path, roots)
    return out


def test_the_consistency_examples_cover_powers_of_two_and_not() -> None:
    assert set(consistency_blocks()) == {4, 2, 3}


@pytest.mark.parametrize("old", [4, 2, 3])
def test_consistency_example_is_the_proof_and_verifies(old: int) -> None:
    leaves = worked_leaf_hashes()
    assert len(leaves) == 5
    new, doc_path, named = consistency_blocks()[old]
    assert new == 5
    want = merkle.consistency_path(leaves, old)
    if old & (old - 1):
        # Not a power of two: this trace names only the seed, path[0] (the whole path is in
        # the generated block above it).
        assert doc_path and doc_path == want[:len(doc_path)], f"{old} -> 5: the seed"
    else:
        assert doc_path == want, f"{old} -> 5: the doc's path is not RFC 9162's"
    old_root, new_root = merkle.root(leaves[:old]), merkle.root(leaves)
    for name, value in named.items():
        size = int(name.rsplit(" ", 1)[1])
        assert value == merkle.root(leaves[:size]), f"{old} -> 5: {name}"
    merkle.verify_consistency(old, new, old_root, new_root, want)
    # The path proves nothing about another old root (for a power-of-two old size the seed is
    # the old root itself, so a wrong one shows as a new-root mismatch).
    with pytest.raises(merkle.MerkleProofError):
        merkle.verify_consistency(old, new, bytes(32), new_root, want)
    with pytest.raises(merkle.MerkleProofError):
        merkle.verify_consistency(old, new, old_root, new_root, want[:-1])


def membership_examples() -> list[tuple[int, int, bool, bytes, bytes]]:
    """(index, term, is v2, payload, leaf hash) of each entry in §1's membership example."""
    section = TEXT.split("### Membership-change entries (type 1)")[1].split("## 2. Tree hash")[0]
    block = section.split("```text")[1].split("```")[0]
    out = []
    for chunk in re.split(r"\n(?=\S)", block.strip()):
        m = re.search(r"entry (\d+), term (\d+), leaf (v[12])", chunk)
        assert m, chunk
        payload_lines = chunk.split("payload  = ")[1].split("\n  leafData")[0]
        payload_hex = "".join(re.findall(r"^\s*([0-9a-f ]+?)\s*(?:\(|$)", payload_lines, re.M)).replace(" ", "")
        leaf = re.findall(r"leafHash = SHA256\(0[02] ‖ leafData\) = " + HEX64, chunk)
        assert len(leaf) == 1, chunk
        out.append((int(m.group(1)), int(m.group(2)), m.group(3) == "v2", bytes.fromhex(payload_hex),
                    bytes.fromhex(leaf[0])))
    return out


def test_membership_change_examples_hash_as_documented() -> None:
    examples = membership_examples()
    assert [e[0] for e in examples] == [1, 7, 9]
    empty = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    for index, term, v2, payload, want in examples:
        # A membership change carries no KV command: v2 leaves record outcome 7 (noCommand).
        effects = EffectsSummary(outcome=7, branch=0, count=0, root=empty) if v2 else None
        entry = JournalEntry(index=index, term=term, type=1, payload=payload, effects=effects)
        assert entry.leaf_hash() == want, f"entry {index}"
        # The payload is u8 kind ‖ u64BE nodeID ‖ context.
        assert payload[0] in (0, 1, 2) and len(payload) >= 9
    add_learner = examples[1][3]
    assert add_learner[1:9] == (4).to_bytes(8, "big")
    assert add_learner[9:] == b"peer=127.0.0.1:7004,client=127.0.0.1:7104"
