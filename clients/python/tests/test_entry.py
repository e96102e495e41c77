"""Entries and effects (fauna.entry) and the audit codecs (fauna.audit): leaf v1/v2, effect
leaves, what an entry wrote or proposed, proposals (fauna.wire.decode_proposal, which
fauna.entry uses) and membership changes decoded, and answers from nodes decoded strictly
(only ProtocolError escapes, for any bytes)."""
from __future__ import annotations

import random
import re

import pytest

from audit_doc import AUDIT_MD, REPO, put_payload, v2_entry, worked_example
from fauna import audit, entry, merkle, wire
from fauna.codec import ProtocolError, varint, vbytes
from fauna.entry import EffectProof, EntryMismatch, JournalEntry, check_writes

EXAMPLE = worked_example()


def effect_proof(leaves: list[bytes], key: bytes, value: bytes) -> EffectProof:
    i = leaves.index(entry.put_effect_leaf_hash(key, value))
    return EffectProof(i, tuple(merkle.inclusion_path(leaves, i)))


# --- effects ---------------------------------------------------------------------------------

def test_worked_example_effect_leaf() -> None:
    leaf = EXAMPLE.leaves[2]
    [(key, value)] = leaf.puts
    md = AUDIT_MD.read_text()
    data = bytes.fromhex(re.search(r"effectLeafData = ([0-9a-f]+)", md)[1])
    assert entry.effect_leaf_data(key, entry.value_hash(value)) == data
    assert entry.effects_root([(key, value)]) == (1, leaf.effects.root)
    e = JournalEntry(leaf.index, leaf.term, leaf.type, leaf.payload, leaf.effects)
    assert check_writes(e, EffectProof(0, ()), key, value) == "put"
    with pytest.raises(EntryMismatch, match="did not write this value under this key"):
        check_writes(e, EffectProof(0, ()), key, value + b"!")
    with pytest.raises(EntryMismatch, match="did not write this value under this key"):
        check_writes(e, EffectProof(0, ()), b"greetinG", value)


def test_effects_are_in_key_order_shorter_first() -> None:
    effects = [(b"b", b"2"), (b"a\x00", None), (b"a", b"1"), (b"\xff", b"x")]
    count, root = entry.effects_root(effects)
    ordered = [(b"a", b"1"), (b"a\x00", None), (b"b", b"2"), (b"\xff", b"x")]
    leaves = [merkle.leaf_hash(entry.effect_leaf_data(k, None if v is None else entry.value_hash(v))) for k, v in ordered]
    assert (count, root) == (4, merkle.root(leaves))
    assert entry.effect_leaf_data(b"a\x00", None) == b"\x02\x00\x00\x00\x02a\x00"  # a delete: no value hash


def test_v2_check_writes_outcomes_branches_and_paths() -> None:
    effects = [(b"k%d" % i, b"v%d" % i) for i in range(7)] + [(b"gone", None)]
    e, leaves = v2_entry(9, 3, b"payload", effects)
    for i in range(7):
        assert check_writes(e, effect_proof(leaves, b"k%d" % i, b"v%d" % i), b"k%d" % i, b"v%d" % i) == "put"
    good = effect_proof(leaves, b"k3", b"v3")
    # another value, another key, another index, a shortened or flipped path
    for key, value, proof in [(b"k3", b"v4", good), (b"k4", b"v3", good), (b"k3", b"v3", EffectProof(good.index + 1, good.path)),
                              (b"k3", b"v3", EffectProof(good.index, good.path[:-1])),
                              (b"k3", b"v3", EffectProof(good.index, (bytes(32),) + good.path[1:]))]:
        with pytest.raises(EntryMismatch, match="did not write"):
            check_writes(e, proof, key, value)
    # a delete is not a put of anything
    delete_index = sorted(k for k, _ in effects).index(b"gone")
    with pytest.raises(EntryMismatch):
        check_writes(e, EffectProof(delete_index, tuple(merkle.inclusion_path(leaves, delete_index))), b"gone", b"")
    with pytest.raises(EntryMismatch, match=r"did not write this key \(no such effect among its 8\)"):
        check_writes(e, None, b"k3", b"v3")
    for branch, how in ((1, "txn (then branch)"), (2, "txn (else branch)")):
        t, tl = v2_entry(9, 3, b"", [(b"k", b"v")], branch=branch)
        assert check_writes(t, effect_proof(tl, b"k", b"v"), b"k", b"v") == how
    for outcome, name in ((1, "alreadyExists"), (5, "sessionExpired"), (6, "replay"), (7, "noCommand"), (200, "unknown(200)")):
        # even with a genuine-looking effect tree, an outcome other than success wrote nothing
        w, wl = v2_entry(9, 3, b"", [(b"k", b"v")], outcome=outcome)
        with pytest.raises(EntryMismatch, match=re.escape(f"wrote nothing: its committed outcome is {name}")):
            check_writes(w, effect_proof(wl, b"k", b"v"), b"k", b"v")


def test_v1_check_writes_reads_the_proposal() -> None:
    put = JournalEntry(4, 1, 0, put_payload(b"k", b"v", session=(77, 1)))
    assert check_writes(put, None, b"k", b"v") == "put; effect not proven (leaf v1)"
    with pytest.raises(EntryMismatch, match=r"puts another value \(1 bytes\) under this key"):
        check_writes(put, None, b"k", b"vv")
    with pytest.raises(EntryMismatch, match="puts another key"):
        check_writes(put, None, b"j", b"v")
    with pytest.raises(EntryMismatch, match="is a configuration change"):
        check_writes(JournalEntry(4, 1, 1, put.payload), None, b"k", b"v")
    with pytest.raises(EntryMismatch, match="does not decode"):
        check_writes(JournalEntry(4, 1, 0, b"hello"), None, b"k", b"v")
    txn = JournalEntry(5, 1, 0, TXN_PAYLOAD)
    assert check_writes(txn, None, b"b", b"2") == "txn (branch taken not proven); effect not proven (leaf v1)"
    with pytest.raises(EntryMismatch, match="a txn that puts no such value"):
        check_writes(txn, None, b"a", b"2")
    with pytest.raises(EntryMismatch, match="is a delete"):
        check_writes(JournalEntry(6, 1, 0, DELETE_PAYLOAD), None, b"k", b"v")
    with pytest.raises(EntryMismatch, match="records the cluster ID"):
        check_writes(JournalEntry(6, 1, 0, b"\x01\x00\x05" + bytes(16)), None, b"k", b"v")
    with pytest.raises(EntryMismatch, match="starts leaf v2"):
        check_writes(JournalEntry(6, 1, 0, b"\x01\x00\x06"), None, b"k", b"v")


# --- proposals -----------------------------------------------------------------------------------

def kvb(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


# txn: compare value("a") = "1"; then put b=2, range [a, ∞) limit 5; else delete [a, a\0)
TXN_PAYLOAD = (b"\x01\x00\x03" + b"\x00\x01" + kvb(b"a") + b"\x00" + b"\x00\x00" + kvb(b"1")
               + b"\x00\x02" + b"\x01\x00" + kvb(b"b") + kvb(b"2") + b"\x03\x08" + kvb(b"a") + b"\x00" + (5).to_bytes(8, "big")
               + b"\x00\x01" + b"\x02\x00" + kvb(b"a") + b"\x01" + kvb(b"a\x00"))
DELETE_PAYLOAD = b"\x01\x00\x02\x01" + kvb(b"k") + b"\x01" + kvb(b"k\x00")


def test_protocol_example_write_body_decodes() -> None:
    """docs/PROTOCOL.md example 1: the body of a write is exactly the proposal."""
    md = (REPO / "docs" / "PROTOCOL.md").read_text()
    block = md[md.index("### 1. write"):md.index("### 2.")]
    lines = block[block.index("\nbody") + 1:block.index("```", block.index("\nbody"))].splitlines()
    body = bytes.fromhex("".join(re.match(r"(?:body)?\s+((?:[0-9a-f]{2} ?)+?)(?:\s{2,}|$)", line)[1] for line in lines))
    p = wire.decode_proposal(body)
    assert (p.client_id, p.sequence) == (77, 1)
    assert p.command == wire.Put(b"k1", b"v1")


def test_proposals_decode() -> None:
    txn = wire.decode_proposal(TXN_PAYLOAD).command
    assert isinstance(txn, wire.Txn)
    assert txn.compares == [wire.Compare(wire.KeyRange(b"a", None), wire.Target.VALUE, wire.CompareOp.EQUAL, b"1")]
    assert txn.success[0] == wire.Put(b"b", b"2") and txn.success[1].limit == 5
    assert txn.failure == [wire.DeleteRange(wire.KeyRange(b"a", b"a\x00"))]
    assert wire.decode_proposal(b"\x01\x00\x04" + (9).to_bytes(8, "big")).command == wire.Compact(9)
    assert wire.decode_proposal(b"\x01\x00\x01\x01" + kvb(b"k") + kvb(b"")).command == wire.Put(b"k", b"", if_absent=True)
    # An empty key decodes: refusing it is the state machine's (outcome invalid(keyLength)).
    assert wire.decode_proposal(b"\x01\x00\x01\x00" + kvb(b"") + kvb(b"v")).command == wire.Put(b"", b"v")


@pytest.mark.parametrize("bad", [
    b"", b"\x02\x00\x01\x00" + kvb(b"k") + kvb(b"v"),  # version 2
    b"\x01\x02\x01\x00" + kvb(b"k") + kvb(b"v"),  # reserved proposal flag
    b"\x01\x01" + (1).to_bytes(8, "big") + bytes(8) + b"\x01\x00" + kvb(b"k") + kvb(b"v"),  # sequence 0
    b"\x01\x00\x01\x04" + kvb(b"k") + kvb(b"v"),  # reserved put flag
    b"\x01\x00\x01\x00" + kvb(b"k" * 4097) + kvb(b"v"),  # key too long
    b"\x01\x00\x01\x00" + kvb(b"k") + kvb(b"v") + b"\x00",  # trailing byte
    b"\x01\x00\x04" + bytes(8),  # compact 0
    b"\x01\x00\x07",  # unknown tag
    b"\x01\x00\x05" + bytes(15),  # short cluster ID
    b"\x01\x00\x01\x00" + (1 << 31).to_bytes(4, "big"),  # a length past the end
])
def test_bad_proposals_are_refused(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        wire.decode_proposal(bad)


def only_protocol_errors(decode, sample: bytes, rounds: int, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
    """`decode` of `sample` with one random byte changed, `rounds` times: it decodes or raises
    ProtocolError, never anything else."""
    for _ in range(rounds):
        b = bytearray(sample)
        b[rng.randrange(len(b))] = rng.randrange(256)
        try:
            decode(bytes(b))
        except ProtocolError:
            pass


def test_proposal_decoder_never_raises_anything_else() -> None:
    rng = random.Random(21)
    samples = [TXN_PAYLOAD, DELETE_PAYLOAD, put_payload(b"key", b"value", session=(1, 2))]
    for s in samples:
        for cut in range(len(s)):
            with pytest.raises(ProtocolError):
                wire.decode_proposal(s[:cut])
        only_protocol_errors(wire.decode_proposal, s, 300, rng)


def test_conf_change() -> None:
    c = entry.decode_conf_change(b"\x02" + (3).to_bytes(8, "big") + b"ctx")
    assert (c.kind, c.node_id, c.context) == (entry.CONF_REMOVE, 3, b"ctx")
    for bad in (b"", b"\x02" + bytes(7), b"\x03" + (3).to_bytes(8, "big"), b"\x01" + bytes(8)):
        with pytest.raises(ProtocolError):
            entry.decode_conf_change(bad)


# --- audit codecs --------------------------------------------------------------------------------

def signed_head_body(key: bytes = b"K" * 32, sig: bytes = b"S" * 64) -> bytes:
    return varint(2) + varint(40) + bytes(range(16)) + varint(39) + b"R" * 32 + vbytes(key) + vbytes(sig)


def entry_proof_body(v2: bool = True, with_effect: bool = True, branch: int = 1) -> bytes:
    body = varint(7) + varint(2) + b"\x00" + vbytes(b"payload")
    if v2:
        body += b"\x01" + b"\x00" + bytes([branch]) + varint(3) + b"E" * 32
    else:
        body += b"\x00"
    if with_effect:
        body += b"\x01" + varint(1) + b"\x01" + b"V" * 32 + varint(2) + b"a" * 32 + b"b" * 32
    else:
        body += b"\x00"
    return body


def test_audit_answers_decode() -> None:
    h = audit.decode_signed_tree_head(signed_head_body())
    assert (h.node_id, h.applied_index, h.cluster_id, h.tree_size, h.root_hash) == (2, 40, bytes(range(16)), 39, b"R" * 32)
    assert (h.public_key, h.signature) == (b"K" * 32, b"S" * 64)
    p = audit.decode_proof(varint(5) + varint(9) + varint(2) + b"x" * 64)
    assert (p.first, p.second, p.path) == (5, 9, (b"x" * 32, b"x" * 32))
    r = audit.decode_entry_proof(entry_proof_body())
    assert r.entry.effects == entry.EffectsSummary(0, 1, 3, b"E" * 32) and r.entry.payload == b"payload"
    assert r.effect == EffectProof(1, (b"a" * 32, b"b" * 32), True, b"V" * 32)
    assert audit.decode_entry_proof(entry_proof_body(v2=False, with_effect=False)).entry.effects is None
    assert audit.decode_membership_changes(varint(3) + varint(1) + varint(2) + varint(300)) == (1, 2, 300)
    j = audit.decode_journal_entry(varint(7) + varint(2) + b"\x01" + vbytes(b"\x02" + bytes(8)))
    assert (j.index, j.term, j.type) == (7, 2, 1)
    assert audit.encode_tree_head_request() == b"\x00" and audit.encode_tree_head_request(300) == b"\x01\xac\x02"
    assert audit.encode_entry_proof_request(7, b"k") == b"\x07\x01k"


@pytest.mark.parametrize("decode,body", [
    (audit.decode_signed_tree_head, signed_head_body()),
    (audit.decode_entry_proof, entry_proof_body()),
    (audit.decode_proof, varint(5) + varint(9) + varint(2) + b"x" * 64),
    (audit.decode_membership_changes, varint(2) + varint(1) + varint(2)),
    (audit.decode_state_digest, varint(1) + varint(5) + vbytes(b"d" * 32) + b"r" * 32 + b"\x01" + varint(5) + vbytes(b"")),
    (wire.decode_range_result, bytes(8) + b"\x00" + bytes(8) + (1).to_bytes(4, "big") + kvb(b"k") + b"\x01"
     + (1).to_bytes(8, "big") * 3 + kvb(b"v")),
])
def test_audit_answers_refuse_truncated_and_trailing_bytes(decode, body: bytes) -> None:  # type: ignore[no-untyped-def]
    decode(body)
    for cut in range(len(body)):
        with pytest.raises(ProtocolError):
            decode(body[:cut])
    with pytest.raises(ProtocolError, match="trailing"):
        decode(body + b"\x00")


def test_audit_answer_limits_and_rules() -> None:
    with pytest.raises(ProtocolError, match="at most 192"):
        audit.decode_proof(varint(0) + varint(1) + varint(193) + b"x" * 32 * 193)
    with pytest.raises(ProtocolError, match="only 32 bytes left"):
        audit.decode_proof(varint(0) + varint(1) + varint(2) + b"x" * 32)
    with pytest.raises(ProtocolError, match="at most 64"):
        audit.decode_membership_changes(varint(65) + b"\x01" * 65)
    with pytest.raises(ProtocolError, match="branch 3"):
        audit.decode_entry_proof(entry_proof_body(branch=3))
    with pytest.raises(ProtocolError, match="an effect for a v1 leaf"):
        audit.decode_entry_proof(entry_proof_body(v2=False, with_effect=True))
    with pytest.raises(ProtocolError, match="node ID 0"):
        audit.decode_signed_tree_head(b"\x00" + signed_head_body()[1:])
    with pytest.raises(ProtocolError, match="public key"):
        audit.decode_signed_tree_head(signed_head_body(key=b"K" * 257))
    only_protocol_errors(audit.decode_entry_proof, entry_proof_body(), 2000, random.Random(5))
