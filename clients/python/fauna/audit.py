"""Codecs of the audit RPCs (docs/PROTOCOL.md "Audit messages") and of the few other messages a
verified read needs (one-key read, node status, error answers), written from the documents.

Requests are encoded to bodies; answers are decoded from bodies into frozen dataclasses, with
every length and count checked against PROTOCOL.md's limits and the bytes remaining, and the
body consumed exactly. Anything else raises `codec.ProtocolError`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .codec import ProtocolError, Reader, kvbytes, u8, u64, varint, vbytes
from .entry import BRANCH_ELSE, EffectProof, EffectsSummary, JournalEntry, KEY_BYTES_MAX, PROPOSAL_BYTES_MAX

# Frame kinds (docs/PROTOCOL.md "Kinds").
READ, READ_RESPONSE = 0x11, 0x91
STATUS, STATUS_RESPONSE = 0x20, 0xA0
SIGNED_TREE_HEAD, SIGNED_TREE_HEAD_RESPONSE = 0x30, 0xB0
INCLUSION_PROOF, INCLUSION_PROOF_RESPONSE = 0x31, 0xB1
CONSISTENCY_PROOF, CONSISTENCY_PROOF_RESPONSE = 0x32, 0xB2
JOURNAL_ENTRY, JOURNAL_ENTRY_RESPONSE = 0x33, 0xB3
STATE_DIGEST, STATE_DIGEST_RESPONSE = 0x34, 0xB4
ENTRY_PROOF, ENTRY_PROOF_RESPONSE = 0x35, 0xB5
MEMBERSHIP_CHANGES, MEMBERSHIP_CHANGES_RESPONSE = 0x36, 0xB6
ERROR = 0xFF

# Error codes (docs/PROTOCOL.md "Client messages").
ERROR_BEHIND = 11

# docs/PROTOCOL.md "Limits (RPCLimits)".
PROOF_HASHES_MAX = 192
PUBLIC_KEY_BYTES_MAX = 256
SIGNATURE_BYTES_MAX = 256
MEMBERSHIP_CHANGES_MAX = 64
DIGEST_BYTES_MAX = 64
MESSAGE_BYTES_MAX = 4096
HOST_BYTES_MAX = 255
CLUSTER_ID_BYTES = 16
HASH_BYTES = 32


def _node_id(r: Reader, what: str) -> int:
    n = r.varint()
    if n == 0:
        raise ProtocolError(f"{what}: node ID 0")
    return n


def _hashes(r: Reader, what: str) -> tuple[bytes, ...]:
    n = r.varint()
    if n > PROOF_HASHES_MAX:
        raise ProtocolError(f"{what}: {n} hashes, at most {PROOF_HASHES_MAX}")
    if n * HASH_BYTES > r.remaining:
        raise ProtocolError(f"{what}: {n} hashes, only {r.remaining} bytes left")
    return tuple(r.take(HASH_BYTES) for _ in range(n))


def _decode(body: bytes, what: str, decode):  # type: ignore[no-untyped-def]
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
            node_id=_node_id(r, "node ID"), applied_index=r.varint(), cluster_id=r.take(CLUSTER_ID_BYTES),
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
        raise ValueError(f"key of {len(key)} bytes, at most {KEY_BYTES_MAX}")
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
        node_id, revision = _node_id(r, "node ID"), r.varint()
        digest, root = r.vbytes(DIGEST_BYTES_MAX, "digest"), r.take(HASH_BYTES)
        checked = r.varint() if r.flag() else None
        return StateDigestResult(node_id, revision, digest, root, checked, r.vstring(MESSAGE_BYTES_MAX, "journal problem"))
    return _decode(body, "stateDigestResponse", d)


# --- what else a verified read uses: a one-key read, node status, error answers ----------------

def encode_get_request(key: bytes, revision: int | None = None) -> bytes:
    """ReadRequest: a linearizable read of [key, key‖00) with limit 1, as of `revision` if given."""
    if not 1 <= len(key) <= KEY_BYTES_MAX:
        raise ValueError(f"key of {len(key)} bytes, want 1...{KEY_BYTES_MAX}")
    flags = 0x08 | (0x10 if revision else 0)
    body = u8(0) + u8(flags) + kvbytes(key) + u8(1) + kvbytes(key + b"\x00") + u64(1)
    return body + (u64(revision) if revision else b"")


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int


@dataclass(frozen=True)
class RangeResult:
    count: int
    has_more: bool
    revision: int
    records: tuple[Record, ...]


def decode_range_result(body: bytes) -> RangeResult:
    def d(r: Reader) -> RangeResult:
        count, has_more, revision, n = r.u64(), r.flag(), r.u64(), r.u32()
        if n * 33 > r.remaining:  # per record at least a key length (4) and a record (29)
            raise ProtocolError(f"{n} records, only {r.remaining} bytes left")
        records = []
        for _ in range(n):
            key = r.kvbytes(KEY_BYTES_MAX, "key")
            version = r.u8()
            if version != 1:
                raise ProtocolError(f"record version {version}, want 1")
            create, mod, ver = r.u64(), r.u64(), r.u64()
            value = r.kvbytes(1 << 20, "value")
            if not (ver >= 1 and 1 <= create <= mod):
                raise ProtocolError(f"record revisions create {create}, mod {mod}, version {ver}: invalid")
            records.append(Record(key, value, create, mod, ver))
        return RangeResult(count, has_more, revision, tuple(records))
    return _decode(body, "readResponse", d)


ROLE_LEADER = 3


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    role: int
    term: int
    leader: int | None
    commit_index: int
    applied_index: int
    tree_size: int


def decode_node_status(body: bytes) -> NodeStatus:
    def d(r: Reader) -> NodeStatus:
        node_id, role, flags, term = _node_id(r, "node ID"), r.u8(), r.u8(), r.varint()
        if role > ROLE_LEADER:
            raise ProtocolError(f"role {role}, want 0...3")
        if flags & ~0x03:
            raise ProtocolError(f"status flags {flags:#04x}: reserved bits set")
        leader = _node_id(r, "leader") if flags & 0x02 else None
        commit, applied, size = r.varint(), r.varint(), r.varint()
        r.varint()  # dbSizeBytes
        return NodeStatus(node_id, role, term, leader, commit, applied, size)
    return _decode(body, "statusResponse", d)


MEMBERS = 0x21
MEMBERS_RESPONSE = 0xA1
MEMBERS_MAX = 1024


@dataclass(frozen=True)
class Member:
    node_id: int
    client_address: str
    is_learner: bool
    public_key: bytes


def _endpoint(r: Reader) -> str:
    host = r.vstring(HOST_BYTES_MAX, "host")
    if not host:
        raise ProtocolError("empty host")
    return f"{host}:{r.u16()}"


def decode_member_list(body: bytes) -> tuple[Member, ...]:
    """MemberList (the answer to `members`)."""
    def d(r: Reader) -> tuple[Member, ...]:
        n = r.varint()
        if n > MEMBERS_MAX or n * 10 > r.remaining:
            raise ProtocolError(f"{n} members: over the limit or the bytes left")
        out = []
        for _ in range(n):
            node_id = _node_id(r, "member ID")
            _endpoint(r)  # peer address
            client = _endpoint(r)
            learner = r.flag()
            out.append(Member(node_id, client, learner, r.vbytes(PUBLIC_KEY_BYTES_MAX, "public key")))
        return tuple(out)
    return _decode(body, "membersResponse", d)


@dataclass(frozen=True)
class ErrorAnswer:
    code: int
    message: str


def decode_error(body: bytes) -> ErrorAnswer:
    """ErrorResponse; the leader hint is read and dropped."""
    def d(r: Reader) -> ErrorAnswer:
        code = r.varint()
        if code > 0xFFFF:
            raise ProtocolError(f"error code {code} over 65535")
        message = r.vstring(MESSAGE_BYTES_MAX, "error message")
        hints = r.u8()
        if hints & ~0x03 or hints == 0x02:
            raise ProtocolError(f"error hint flags {hints:#04x}")
        if hints & 0x01:
            _node_id(r, "leader")
        if hints & 0x02:
            r.vstring(HOST_BYTES_MAX, "host")
            r.u16()
        return ErrorAnswer(code, message)
    return _decode(body, "error", d)
