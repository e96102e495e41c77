"""Codecs of the audit RPCs (docs/PROTOCOL.md "Audit messages"), written from the documents.

Requests are encoded to bodies; answers are decoded from bodies into frozen dataclasses, with
every length and count checked against PROTOCOL.md's limits and the bytes remaining, and the
body consumed exactly. Anything else raises `ProtocolError`.

Their frame kinds are in `fauna.wire.Kind` (SIGNED_TREE_HEAD ... MEMBERSHIP_CHANGES_RESPONSE),
with every other kind; the messages a verified read also needs (a read, node status, the member
list, error answers) are coded in `fauna.wire` and sent by `fauna.Client`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

from .codec import Reader, u8, varint, vbytes
from .entry import BRANCH_ELSE, EffectProof, EffectsSummary, JournalEntry
from .errors import InvalidArgument, ProtocolError
from .wire import (CHECKSUM_BYTES_MAX, KEY_BYTES_MAX, MESSAGE_BYTES_MAX, PROPOSAL_BYTES_MAX, PUBLIC_KEY_BYTES_MAX,
                   read_node_id)

__all__ = [
    "PROOF_HASHES_MAX", "SIGNATURE_BYTES_MAX", "MEMBERSHIP_CHANGES_MAX", "CLUSTER_ID_BYTES", "HASH_BYTES",
    "encode_tree_head_request", "SignedTreeHead1", "decode_signed_tree_head", "encode_inclusion_proof_request",
    "encode_consistency_proof_request", "Proof", "decode_proof", "encode_journal_entry_request",
    "decode_journal_entry", "encode_entry_proof_request", "EntryProofResult", "decode_entry_proof",
    "encode_membership_changes_request", "decode_membership_changes", "encode_state_digest_request",
    "StateDigestResult", "decode_state_digest",
]

# docs/PROTOCOL.md "Limits (RPCLimits)" of the audit messages only (the others are in fauna.wire).
PROOF_HASHES_MAX = 192
SIGNATURE_BYTES_MAX = 256
MEMBERSHIP_CHANGES_MAX = 64
CLUSTER_ID_BYTES = 16
HASH_BYTES = 32

T = TypeVar("T")


def _hashes(r: Reader, what: str) -> tuple[bytes, ...]:
    n = r.varint()
    if n > PROOF_HASHES_MAX:
        raise ProtocolError(f"{what}: {n} hashes, at most {PROOF_HASHES_MAX}")
    if n * HASH_BYTES > r.remaining:
        raise ProtocolError(f"{what}: {n} hashes, only {r.remaining} bytes left")
    return tuple(r.take(HASH_BYTES) for _ in range(n))


def _decode(body: bytes, what: str, decode: Callable[[Reader], T]) -> T:
    r = Reader(body)
    try:
        out = decode(r)
        r.done()
    except ProtocolError as e:
        raise ProtocolError(f"{what}: {e}") from None
    return out


# --- signedTreeHead ------------------------------------------------------------------------------

def encode_tree_head_request(tree_size: int | None = None) -> bytes:
    """TreeHeadRequest: no size asks for the node's applied size."""
    return b"\x00" if tree_size is None else b"\x01" + varint(tree_size)


@dataclass(frozen=True)
class SignedTreeHead1:
    """One node's signature over its tree head (SignedTreeHead1)."""

    node_id: int
    applied_index: int
    cluster_id: bytes
    tree_size: int
    root_hash: bytes
    public_key: bytes
    signature: bytes


def decode_signed_tree_head(body: bytes) -> SignedTreeHead1:
    def d(r: Reader) -> SignedTreeHead1:
        return SignedTreeHead1(
            node_id=read_node_id(r, "node ID"), applied_index=r.varint(), cluster_id=r.take(CLUSTER_ID_BYTES),
            tree_size=r.varint(), root_hash=r.take(HASH_BYTES),
            public_key=r.vbytes(PUBLIC_KEY_BYTES_MAX, "public key"), signature=r.vbytes(SIGNATURE_BYTES_MAX, "signature"))
    return _decode(body, "signedTreeHeadResponse", d)


# --- inclusion and consistency proofs ----------------------------------------------------------

def encode_inclusion_proof_request(leaf_index: int, tree_size: int) -> bytes:
    return varint(leaf_index) + varint(tree_size)


def encode_consistency_proof_request(old_size: int, new_size: int) -> bytes:
    return varint(old_size) + varint(new_size)


@dataclass(frozen=True)
class Proof:
    """An inclusion proof (first = leaf index, second = tree size) or a consistency proof
    (first = old size, second = new size)."""

    first: int
    second: int
    path: tuple[bytes, ...]


def decode_proof(body: bytes, what: str = "proof") -> Proof:
    def d(r: Reader) -> Proof:
        return Proof(r.varint(), r.varint(), _hashes(r, "path"))
    return _decode(body, what, d)


# --- journal entries and entry proofs ----------------------------------------------------------

def encode_journal_entry_request(index: int) -> bytes:
    return varint(index)


def _journal_entry(r: Reader) -> JournalEntry:
    index, term, type_ = r.varint(), r.varint(), r.u8()
    return JournalEntry(index, term, type_, r.vbytes(PROPOSAL_BYTES_MAX, "payload"))


def decode_journal_entry(body: bytes) -> JournalEntry:
    """JournalEntry: the entry as proposed (its v2 effects are not in this answer)."""
    return _decode(body, "journalEntryResponse", _journal_entry)


def encode_entry_proof_request(index: int, key: bytes) -> bytes:
    """EntryProofRequest; an empty key asks for the entry and its summary only."""
    if len(key) > KEY_BYTES_MAX:
        raise InvalidArgument(f"key of {len(key)} bytes, at most {KEY_BYTES_MAX}")
    return varint(index) + vbytes(key)


@dataclass(frozen=True)
class EntryProofResult:
    """The entry (with `effects` for a v2 leaf) and, if it wrote or deleted the requested key,
    that effect's position and path (`effect`)."""

    entry: JournalEntry
    effect: EffectProof | None


def decode_entry_proof(body: bytes) -> EntryProofResult:
    def d(r: Reader) -> EntryProofResult:
        entry = _journal_entry(r)
        if r.flag():
            outcome, branch, count, root = r.u8(), r.u8(), r.varint(), r.take(HASH_BYTES)
            if branch > BRANCH_ELSE:
                raise ProtocolError(f"branch {branch}, want 0...2")
            entry = JournalEntry(entry.index, entry.term, entry.type, entry.payload, EffectsSummary(outcome, branch, count, root))
        effect = None
        if r.flag():
            if entry.effects is None:
                raise ProtocolError("an effect for a v1 leaf")
            index = r.varint()
            is_put = r.flag()
            vh = r.take(HASH_BYTES) if is_put else None
            effect = EffectProof(index, _hashes(r, "effect path"), is_put, vh)
        return EntryProofResult(entry, effect)
    return _decode(body, "entryProofResponse", d)


# --- membership changes and state digests ------------------------------------------------------

def encode_membership_changes_request(after_index: int) -> bytes:
    return varint(after_index)


def decode_membership_changes(body: bytes) -> tuple[int, ...]:
    def d(r: Reader) -> tuple[int, ...]:
        n = r.varint()
        if n > MEMBERSHIP_CHANGES_MAX:
            raise ProtocolError(f"{n} indexes, at most {MEMBERSHIP_CHANGES_MAX}")
        return tuple(r.varint() for _ in range(n))
    return _decode(body, "membershipChangesResponse", d)


def encode_state_digest_request(revision: int = 0, check_journal: bool = False) -> bytes:
    return varint(revision) + u8(1 if check_journal else 0)


@dataclass(frozen=True)
class StateDigestResult:
    node_id: int
    revision: int
    digest: bytes
    tree_root: bytes
    journal_entries_checked: int | None
    journal_problem: str


def decode_state_digest(body: bytes) -> StateDigestResult:
    def d(r: Reader) -> StateDigestResult:
        node_id, revision = read_node_id(r, "node ID"), r.varint()
        digest, root = r.vbytes(CHECKSUM_BYTES_MAX, "digest"), r.take(HASH_BYTES)
        checked = r.varint() if r.flag() else None
        return StateDigestResult(node_id, revision, digest, root, checked, r.vstring(MESSAGE_BYTES_MAX, "journal problem"))
    return _decode(body, "stateDigestResponse", d)
