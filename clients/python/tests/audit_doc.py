"""Test helpers: the worked example of docs/AUDIT.md §12 read from the markdown (so the tests
follow the document), and proof files built and signed here from our own trees."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fauna import merkle, proof
from fauna.entry import EffectProof, EffectsSummary, JournalEntry, effect_leaf_data, value_hash
from fauna.verify import tree_head_bytes

REPO = Path(__file__).resolve().parents[3]
AUDIT_MD = REPO / "docs" / "AUDIT.md"
EXAMPLES = REPO / "docs" / "examples"
TOOLS_VERIFY_PROOF = REPO / "tools" / "verify-proof"


@dataclass
class Leaf:
    index: int
    term: int
    type: int
    payload: bytes
    version: str
    leaf_data: bytes
    leaf_hash: bytes
    effects: EffectsSummary | None = None
    puts: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass
class WorkedExample:
    cluster_id: bytes
    seed: bytes
    public_key: bytes
    leaves: list[Leaf]
    roots: dict[int, bytes]
    inclusion: tuple[int, int, list[bytes]]  # leaf index, tree size, path
    consistency: tuple[int, int, list[bytes]]  # old size, new size, path
    canonical: bytes
    signature: bytes
    proof_json: dict


def _hex(s: str) -> bytes:
    return bytes.fromhex(s)


def _path_after(text: str, heading: re.Pattern[str]) -> tuple[re.Match[str], list[bytes]]:
    m = heading.search(text)
    assert m, heading.pattern
    rest = text[m.end():]
    block = rest[:rest.index("check:")]
    return m, [_hex(h) for h in re.findall(r"path\[\d+\] = ([0-9a-f]{64})", block)]


def worked_example() -> WorkedExample:
    md = AUDIT_MD.read_text()
    text = md[md.index("<!-- worked-example:begin -->"):md.index("<!-- worked-example:end -->")]
    leaves = []
    blocks = re.split(r"\n(?=leaf \d+: )", text)
    for b in blocks[1:]:
        head = re.match(r'leaf (\d+): entry index (\d+), term (\d+), type (\d+), payload "([0-9a-f]*)", leaf (v1|v2)', b)
        assert head, b[:80]
        b = b.split("\n\nnode (")[0]
        leaf = Leaf(int(head[2]), int(head[3]), int(head[4]), _hex(head[5]), head[6],
                    _hex(re.search(r"\n  leafData = ([0-9a-f]+)", b)[1]),
                    _hex(re.search(r"\n  leafHash = SHA256\(0[02] ‖ leafData\) = ([0-9a-f]{64})", b)[1]))
        assert int(head[1]) == leaf.index - 1
        for key_hex, value in re.findall(r'put key "[^"]*" \(([0-9a-f]+)\), value "([^"]*)"', b):
            leaf.puts.append((_hex(key_hex), value.encode()))
        e = re.search(r"effects: outcome (\d+) \(\w+\), branch (\d+), count (\d+), root = (?:effectLeafHash|SHA256\(\) = ([0-9a-f]{64}))", b)
        if e:
            root = _hex(e[4]) if e[4] else _hex(re.search(r"effectLeafHash = SHA256\(00 ‖ effectLeafData\) = ([0-9a-f]{64})", b)[1])
            leaf.effects = EffectsSummary(int(e[1]), int(e[2]), int(e[3]), root)
        leaves.append(leaf)
    roots = {int(n): _hex(h) for n, h in re.findall(r"root at size (\d+) = ([0-9a-f]{64})", text)}
    m, ipath = _path_after(text, re.compile(r"inclusion proof, leaf (\d+) \(entry \d+\) in tree size (\d+):"))
    inclusion = (int(m[1]), int(m[2]), ipath)
    m, cpath = _path_after(text, re.compile(r"consistency proof, tree size (\d+) to (\d+):"))
    consistency = (int(m[1]), int(m[2]), cpath)
    canonical = b"".join(_hex(re.search(rf"\n  {f}\s+([0-9a-f]+)", text)[1]) for f in ("prefix", "clusterID", "treeSize", "rootHash"))
    proof_json = json.loads(md[md.index("```json", md.index("<!-- worked-example:begin -->")) + 7:md.index("```\n<!-- worked-example:end")])
    return WorkedExample(
        cluster_id=_hex(re.search(r"clusterID\s+([0-9a-f]{32})", text)[1]),
        seed=_hex(re.search(r"signing seed\s+([0-9a-f]{64})", text)[1]),
        public_key=_hex(re.search(r"public key\s+([0-9a-f]{64})", text)[1]),
        leaves=leaves, roots=roots, inclusion=inclusion, consistency=consistency, canonical=canonical,
        signature=_hex(re.search(r"Ed25519 signature = ([0-9a-f]{128})", text)[1]), proof_json=proof_json)


# --- signed trees of our own ---------------------------------------------------------------------

def signing_key(n: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32)


def public(k: Ed25519PrivateKey) -> bytes:
    return k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def put_payload(key: bytes, value: bytes, *, if_absent: bool = False, session: tuple[int, int] | None = None) -> bytes:
    """docs/KV-COMMANDS.md proposal of a put, written out by hand."""
    head = b"\x01" + (b"\x01" + session[0].to_bytes(8, "big") + session[1].to_bytes(8, "big") if session else b"\x00")
    return head + b"\x01" + bytes([1 if if_absent else 0]) + len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value


def v2_entry(index: int, term: int, payload: bytes, effects: list[tuple[bytes, bytes | None]], outcome: int = 0,
             branch: int = 0) -> tuple[JournalEntry, list[bytes]]:
    """A v2 entry whose effects are `effects` (key, value or None for a delete); returns the
    entry and the effect leaf hashes in key order."""
    ordered = sorted(effects, key=lambda e: e[0])
    leaves = [merkle.leaf_hash(effect_leaf_data(k, None if v is None else value_hash(v))) for k, v in ordered]
    summary = EffectsSummary(outcome, branch, len(leaves), merkle.root(leaves))
    return JournalEntry(index, term, 0, payload, summary), leaves


def make_proof(entries: list[JournalEntry], index: int, key: bytes, value: bytes, signers: list[Ed25519PrivateKey],
               cluster_id: bytes = bytes(range(16)), tree_size: int | None = None, fmt: str = proof.FORMAT_V2) -> proof.ProofFile:
    """A proof file of entry `index` of `entries` (in order, index 1 first), signed by `signers`;
    add a v2 entry's effect proof with `with_effect`."""
    size = tree_size or len(entries)
    leaves = [e.leaf_hash() for e in entries[:size]]
    root = merkle.root(leaves)
    entry = entries[index - 1]
    message = tree_head_bytes(cluster_id, size, root)
    sigs = tuple((public(k), k.sign(message)) for k in signers)
    return proof.ProofFile(fmt, cluster_id, key, value, index, entry, None, index - 1, size,
                           tuple(merkle.inclusion_path(leaves, index - 1)), root, sigs)


def with_effect(p: proof.ProofFile, effect_leaves: list[bytes], key: bytes, value: bytes) -> proof.ProofFile:
    """`p` with the effect proof of the put of (key, value) among `effect_leaves`."""
    target = merkle.leaf_hash(effect_leaf_data(key, value_hash(value)))
    i = effect_leaves.index(target)
    return proof.ProofFile(p.format, p.cluster_id, p.key, p.value, p.revision, p.entry,
                           EffectProof(i, tuple(merkle.inclusion_path(effect_leaves, i))), p.leaf_index, p.tree_size,
                           p.inclusion_path, p.root_hash, p.signatures)


def write(tmp: os.PathLike[str], name: str, obj: dict | proof.ProofFile) -> str:
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(proof.dumps(obj) if isinstance(obj, proof.ProofFile) else json.dumps(obj, indent=2).encode())
    return path
