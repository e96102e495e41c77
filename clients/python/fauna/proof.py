"""Proof files "fauna-proof-v2" and "fauna-proof-v1" (docs/AUDIT.md §7): parsed strictly,
checked completely (record, entry, leaf v1/v2, effects, inclusion path, quorum of signatures),
and written as `fctl proof` writes them.

The member keys are the trust anchor and come from the caller, never from the file. The
messages are those of tools/verify-proof (which is now a wrapper around `fauna.cli`), so its
output does not change.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import merkle
from .entry import WRITTEN_BY, EffectProof, EffectsSummary, EntryMismatch, JournalEntry, check_proposes, put_effect_leaf_hash
from .errors import InvalidProof
from .verify import count_signers

FORMAT_V1 = "fauna-proof-v1"
FORMAT_V2 = "fauna-proof-v2"
FORMATS = (FORMAT_V1, FORMAT_V2)
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_COMMON = ["format", "clusterID", "record", "entry", "leafIndex", "treeSize", "inclusionPath", "rootHash", "signatures"]


@dataclass(frozen=True)
class ProofFile:
    """A parsed proof file; `entry.effects` and `effect` are set for a v2 leaf (`effect` may be
    None in a file that lacks `effectProof`, which `verify` then refuses)."""

    format: str
    cluster_id: bytes
    key: bytes
    value: bytes
    revision: int
    entry: JournalEntry
    effect: EffectProof | None
    leaf_index: int
    tree_size: int
    inclusion_path: tuple[bytes, ...]
    root_hash: bytes
    signatures: tuple[tuple[bytes, bytes], ...]  # (public key, signature) as found


@dataclass(frozen=True)
class ProofVerdict:
    """A proof file that verified."""

    proof: ProofFile
    signers: tuple[bytes, ...]
    members: int
    written_by: str | None  # "put", "txn (then branch)", ...; v1: what the payload proposes, or None if not checked

    @property
    def line(self) -> str:
        """tools/verify-proof's OK line."""
        p = self.proof
        if p.entry.effects is not None:
            proven = f"a {self.written_by} of the record's key and value, proven by its committed effects"
        elif self.written_by is None:
            proven = "effect not proven (leaf v1): payload not checked against the record"
        else:
            proven = f"effect not proven (leaf v1): the payload proposes it ({self.written_by})"
        return (f"OK entry {p.entry.index} (term {p.entry.term}) is leaf {p.leaf_index} of tree size {p.tree_size} "
                f"root {p.root_hash.hex()}; signed by {len(self.signers)} of {self.members} members; {proven}")


# --- strict field readers (messages as tools/verify-proof's) -----------------------------------

def _field(obj: Any, name: str, kind: type, where: str) -> Any:
    if not isinstance(obj, dict) or name not in obj:
        raise InvalidProof(f"{where}: missing field {name!r}")
    value = obj[name]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidProof(f"{where}.{name}: got {value!r}, want a JSON integer")
    if kind is not int and not isinstance(value, kind):
        raise InvalidProof(f"{where}.{name}: got {type(value).__name__}, want {kind.__name__}")
    return value


def _only(obj: dict[str, Any], names: list[str], where: str) -> None:
    extra = sorted(set(obj) - set(names))
    if extra:
        raise InvalidProof(f"{where}: got unknown field(s) {extra}, want only {sorted(names)}")


def _hex(obj: Any, name: str, where: str, size: int | None = None) -> bytes:
    text = _field(obj, name, str, where)
    if not _HEX.fullmatch(text):
        raise InvalidProof(f"{where}.{name}: got {text[:20]!r}, want lowercase hex of whole bytes")
    data = bytes.fromhex(text)
    if size is not None and len(data) != size:
        raise InvalidProof(f"{where}.{name}: got {len(data)} bytes, want {size}")
    return data


def _u64(obj: Any, name: str, where: str) -> int:
    text = _field(obj, name, str, where)
    if not _DECIMAL.fullmatch(text) or int(text) > merkle.U64_MAX:
        raise InvalidProof(f"{where}.{name}: got {text[:24]!r}, want a decimal u64 string without leading zeros")
    return int(text)


def _hashes(items: list[Any], where: str) -> tuple[bytes, ...]:
    return tuple(_hex({"h": h}, "h", f"{where}[{i}]", 32) for i, h in enumerate(items))


def parse(doc: Any) -> ProofFile:
    """Every field of a proof file as docs/AUDIT.md §7 defines it; InvalidProof naming the field."""
    if not isinstance(doc, dict):
        raise InvalidProof("got a JSON value that is not an object, want an object")
    fmt = _field(doc, "format", str, "proof")
    if fmt not in FORMATS:
        raise InvalidProof(f"format: got {fmt!r}, want one of {list(FORMATS)}")
    v2 = fmt == FORMAT_V2
    _only(doc, _COMMON + (["effectProof"] if v2 else []), "proof")
    cluster_id = _hex(doc, "clusterID", "proof", 16)
    record = _field(doc, "record", dict, "proof")
    _only(record, ["key", "value", "revision"], "record")
    key = _hex(record, "key", "record")
    value = _hex(record, "value", "record")
    revision = _u64(record, "revision", "record")
    entry = _field(doc, "entry", dict, "proof")
    _only(entry, ["index", "term", "type", "payload"] + (["effects"] if v2 else []), "entry")
    index = _u64(entry, "index", "entry")
    term = _u64(entry, "term", "entry")
    entry_type = _field(entry, "type", int, "entry")
    if not 0 <= entry_type <= 255:
        raise InvalidProof(f"entry.type: got {entry_type}, want 0...255")
    payload = _hex(entry, "payload", "entry")
    leaf_index = _u64(doc, "leafIndex", "proof")
    tree_size = _u64(doc, "treeSize", "proof")
    path = _hashes(_field(doc, "inclusionPath", list, "proof"), "inclusionPath")
    root = _hex(doc, "rootHash", "proof", 32)
    signatures = []
    for i, s in enumerate(_field(doc, "signatures", list, "proof")):
        if not isinstance(s, dict):
            raise InvalidProof(f"signatures[{i}]: got {type(s).__name__}, want an object")
        _only(s, ["publicKey", "signature"], f"signatures[{i}]")
        signatures.append((_hex(s, "publicKey", f"signatures[{i}]"), _hex(s, "signature", f"signatures[{i}]")))

    summary = effect = None
    if "effects" in entry:
        effects = _field(entry, "effects", dict, "entry")
        _only(effects, ["outcome", "branch", "count", "root"], "entry.effects")
        outcome = _field(effects, "outcome", int, "entry.effects")
        branch = _field(effects, "branch", int, "entry.effects")
        count = _u64(effects, "count", "entry.effects")
        effects_root = _hex(effects, "root", "entry.effects", 32)
        if not 0 <= outcome <= 255:
            raise InvalidProof(f"entry.effects.outcome: got {outcome}, want 0...255")
        if branch not in WRITTEN_BY:
            raise InvalidProof(f"entry.effects.branch: got {branch}, want 0, 1 or 2")
        summary = EffectsSummary(outcome, branch, count, effects_root)
        if "effectProof" in doc:
            p = _field(doc, "effectProof", dict, "proof")
            _only(p, ["index", "path"], "effectProof")
            effect = EffectProof(_u64(p, "index", "effectProof"), _hashes(_field(p, "path", list, "effectProof"), "effectProof.path"))
    elif "effectProof" in doc:
        raise InvalidProof("effectProof: got one for a v1 leaf (no entry.effects), want none")
    return ProofFile(fmt, cluster_id, key, value, revision, JournalEntry(index, term, entry_type, payload, summary),
                     effect, leaf_index, tree_size, path, root, tuple(signatures))


def verify(proof: ProofFile, members: Iterable[bytes], cluster: bytes | None = None, *,
           check_v1_payload: bool = False) -> ProofVerdict:
    """docs/AUDIT.md §7's checks, in tools/verify-proof's order. `members`: the member keys the
    caller trusts; `cluster`: the expected cluster ID, if known. With `check_v1_payload`, a v1
    leaf's payload must also propose the record's key and value (what `fctl verify-proof` and
    a verified read check); tools/verify-proof does not decode payloads. Raises InvalidProof."""
    keys = set(members)
    if any(len(k) != 32 for k in keys):
        raise ValueError("member keys must be 32 bytes")
    e = proof.entry
    if cluster is not None and proof.cluster_id != cluster:
        raise InvalidProof(f"clusterID: got {proof.cluster_id.hex()}, want {cluster.hex()}")
    if e.index == 0:
        raise InvalidProof("entry.index: got 0, want >= 1 (Raft indexes start at 1)")
    if proof.revision != e.index:
        raise InvalidProof(f"record.revision: got {proof.revision}, want the entry index {e.index}")
    if proof.leaf_index != e.index - 1:
        raise InvalidProof(f"leafIndex: got {proof.leaf_index}, want entry index - 1 = {e.index - 1}")

    written_by: str | None = None
    if e.effects is not None:
        if e.effects.outcome != 0:
            raise InvalidProof(f"entry.effects.outcome: got {e.effects.outcome}, want 0 (success): the entry wrote nothing")
        if proof.effect is None:
            raise InvalidProof("proof: missing field 'effectProof'")
        try:
            computed = merkle.root_from_inclusion(proof.effect.index, e.effects.count,
                                                  put_effect_leaf_hash(proof.key, proof.value), proof.effect.path)
        except merkle.MerkleProofError as err:
            raise InvalidProof(err.reason) from None
        if computed != e.effects.root:
            raise InvalidProof(f"effectProof: the record's put leads to effects root {computed.hex()}, want "
                               f"{e.effects.root.hex()}: the entry did not write this key and value")
        written_by = WRITTEN_BY[e.effects.branch]
    try:
        computed = merkle.root_from_inclusion(proof.leaf_index, proof.tree_size, e.leaf_hash(), proof.inclusion_path)
    except merkle.MerkleProofError as err:
        raise InvalidProof(err.reason) from None
    if computed != proof.root_hash:
        raise InvalidProof(f"rootHash: got {computed.hex()} from the inclusion path, want {proof.root_hash.hex()}")

    signers = count_signers(proof.cluster_id, proof.tree_size, proof.root_hash, proof.signatures, keys)
    quorum = len(keys) // 2 + 1
    if len(signers) < quorum:
        raise InvalidProof(f"signatures: got {len(signers)} valid of {len(keys)} members, want >= {quorum}")
    if e.effects is None and check_v1_payload:
        try:
            written_by = check_proposes(e, proof.key, proof.value)
        except EntryMismatch as err:
            raise InvalidProof(f"entry.payload: {err}") from None
    return ProofVerdict(proof, tuple(signers), len(keys), written_by)


def verify_document(doc: Any, members: Iterable[bytes], cluster: bytes | None = None, *,
                    check_v1_payload: bool = False) -> ProofVerdict:
    """`parse` then `verify`."""
    return verify(parse(doc), members, cluster, check_v1_payload=check_v1_payload)


def verify_bytes(data: bytes, members: Iterable[bytes], cluster: bytes | None = None, *,
                 check_v1_payload: bool = False) -> ProofVerdict:
    """A proof file's bytes (UTF-8 JSON) checked; InvalidProof for anything wrong, JSON included."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise InvalidProof(str(e)) from None
    return verify_document(doc, members, cluster, check_v1_payload=check_v1_payload)


def to_object(proof: ProofFile) -> dict[str, Any]:
    """The JSON object of a proof file: "fauna-proof-v2" (as `fctl proof` writes it) unless
    `proof.format` says v1, whose files have no effects."""
    entry: dict[str, Any] = {"index": str(proof.entry.index), "term": str(proof.entry.term), "type": proof.entry.type,
                             "payload": proof.entry.payload.hex()}
    obj: dict[str, Any] = {
        "format": proof.format,
        "clusterID": proof.cluster_id.hex(),
        "record": {"key": proof.key.hex(), "value": proof.value.hex(), "revision": str(proof.revision)},
        "entry": entry,
        "leafIndex": str(proof.leaf_index),
        "treeSize": str(proof.tree_size),
        "inclusionPath": [h.hex() for h in proof.inclusion_path],
        "rootHash": proof.root_hash.hex(),
        "signatures": [{"publicKey": k.hex(), "signature": s.hex()} for k, s in proof.signatures],
    }
    s = proof.entry.effects
    if s is not None and proof.format == FORMAT_V2:
        entry["effects"] = {"outcome": s.outcome, "branch": s.branch, "count": str(s.count), "root": s.root.hex()}
        if proof.effect is not None:
            obj["effectProof"] = {"index": str(proof.effect.index), "path": [h.hex() for h in proof.effect.path]}
    return obj


def dumps(proof: ProofFile) -> bytes:
    """The file's bytes, laid out as fctl writes them."""
    return (json.dumps(to_object(proof), indent=2, sort_keys=True, separators=(",", " : ")) + "\n").encode()
