"""Journal entries as leaves of the audit tree (docs/AUDIT.md §1) and what their payloads say
(docs/KV-COMMANDS.md "Proposal"): leaf hashes v1 and v2, effect leaves, the proof that an entry
wrote a key and value, membership changes decoded (proposals are decoded by
`fauna.wire.decode_proposal`, the codec the client writes them with).

Everything here is pure: bytes in, values or exceptions out. A payload that does not decode
raises `ProtocolError`; an entry that does not write what is claimed raises `EntryMismatch`.
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from . import merkle
from .codec import kvbytes, u64
from .errors import ProtocolError
from .wire import Auth, Compact, DeleteRange, InitCluster, Put, Txn, UpgradeLeaves, UpgradeState, decode_proposal

ENTRY_NORMAL = 0
ENTRY_CONF_CHANGE = 1

# Outcome codes of a v2 leaf (docs/AUDIT.md §1); only SUCCESS writes anything.
SUCCESS, ALREADY_EXISTS, COMPACTED, FUTURE_REVISION, INVALID, SESSION_EXPIRED, REPLAY, NO_COMMAND = range(8)
OUTCOME_NAMES = ("success", "alreadyExists", "compacted", "futureRevision", "invalid", "sessionExpired", "replay", "noCommand")
# Transaction branch of a v2 leaf, and how a verified read names the write.
BRANCH_NONE, BRANCH_THEN, BRANCH_ELSE = 0, 1, 2
WRITTEN_BY = {BRANCH_NONE: "put", BRANCH_THEN: "txn (then branch)", BRANCH_ELSE: "txn (else branch)"}

EFFECT_PUT = 1
EFFECT_DELETE = 2


def outcome_name(code: int) -> str:
    return OUTCOME_NAMES[code] if 0 <= code < len(OUTCOME_NAMES) else f"unknown({code})"


@dataclass(frozen=True)
class EffectsSummary:
    """What applying an entry did, as its v2 leaf commits to it."""

    outcome: int
    branch: int
    count: int
    root: bytes

    def __post_init__(self) -> None:
        if not (0 <= self.outcome <= 255 and 0 <= self.branch <= 255 and 0 <= self.count <= merkle.U64_MAX):
            raise ValueError(f"effects summary out of range: outcome {self.outcome}, branch {self.branch}, count {self.count}")
        if len(self.root) != merkle.HASH_BYTES:
            raise ValueError(f"effects root of {len(self.root)} bytes, want 32")

    @property
    def outcome_name(self) -> str:
        return outcome_name(self.outcome)

    def encoded(self) -> bytes:
        """outcome ‖ branch ‖ u64BE(count) ‖ root: 42 bytes of the v2 leaf."""
        return bytes([self.outcome, self.branch]) + u64(self.count) + self.root


@dataclass(frozen=True)
class JournalEntry:
    """A committed Raft entry; `effects` is set for a v2 leaf, None for a v1 leaf."""

    index: int
    term: int
    type: int
    payload: bytes
    effects: EffectsSummary | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.index <= merkle.U64_MAX and 0 <= self.term <= merkle.U64_MAX and 0 <= self.type <= 255):
            raise ValueError(f"entry fields out of range: index {self.index}, term {self.term}, type {self.type}")

    @property
    def is_v2(self) -> bool:
        return self.effects is not None

    @property
    def leaf_index(self) -> int:
        """Leaf index = entry index - 1 (ValueError for index 0: entries start at 1)."""
        if self.index < 1:
            raise ValueError("entry index 0: Raft indexes start at 1")
        return self.index - 1

    def leaf_data(self) -> bytes:
        """v1: index ‖ term ‖ type ‖ payload; v2 also outcome ‖ branch ‖ count ‖ effectsRoot before the payload."""
        header = u64(self.index) + u64(self.term) + bytes([self.type])
        if self.effects is None:
            return header + self.payload
        return header + self.effects.encoded() + self.payload

    def leaf_hash(self) -> bytes:
        """H(0x00 ‖ leafData) for v1, H(0x02 ‖ leafData) for v2."""
        prefix = b"\x00" if self.effects is None else b"\x02"
        return hashlib.sha256(prefix + self.leaf_data()).digest()


def value_hash(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def effect_leaf_data(key: bytes, value_hash_or_none: bytes | None) -> bytes:
    """u8(kind) ‖ u32BE(len(key)) ‖ key ‖ H(value): kind 1 put (with the value hash), 2 delete."""
    if value_hash_or_none is None:
        return bytes([EFFECT_DELETE]) + kvbytes(key)
    return bytes([EFFECT_PUT]) + kvbytes(key) + value_hash_or_none


def put_effect_leaf_hash(key: bytes, value: bytes) -> bytes:
    """The effect leaf hash of a put of `value` under `key`."""
    return merkle.leaf_hash(effect_leaf_data(key, value_hash(value)))


def effects_root(effects: Sequence[tuple[bytes, bytes | None]]) -> tuple[int, bytes]:
    """(count, root) of the effects tree of (key, value or None for a delete), one per key,
    sorted by key bytes as the state machine sorts them (for tests and tools)."""
    ordered = sorted(effects, key=lambda e: e[0])
    leaves = [merkle.leaf_hash(effect_leaf_data(k, None if v is None else value_hash(v))) for k, v in ordered]
    return len(leaves), merkle.root(leaves)


@dataclass(frozen=True)
class EffectProof:
    """The position of one effect among an entry's effects (key order) and its path to the
    summary's root. `value_hash` is what the node claimed (None: a delete); a verifier computes
    its own effect leaf from the key and value it was given and never trusts this field."""

    index: int
    path: tuple[bytes, ...]
    is_put: bool = True
    value_hash: bytes | None = None


class EntryMismatch(ValueError):
    """The entry does not write (or, for a v1 leaf, propose) the record claimed."""


def check_writes(entry: JournalEntry, effect: EffectProof | None, key: bytes, value: bytes) -> str:
    """docs/AUDIT.md §10 step 2. For a v2 leaf: the outcome is success and `effect` shows a put
    of exactly (key, value) among the committed effects; returns "put", "txn (then branch)" or
    "txn (else branch)". For a v1 leaf: the entry proposes the put (`check_proposes`), and the
    answer ends "effect not proven (leaf v1)". Raises EntryMismatch otherwise."""
    summary = entry.effects
    if summary is None:
        return check_proposes(entry, key, value) + "; effect not proven (leaf v1)"
    if summary.outcome != SUCCESS:
        raise EntryMismatch(f"entry {entry.index} wrote nothing: its committed outcome is {summary.outcome_name}")
    if effect is None:
        raise EntryMismatch(f"entry {entry.index} did not write this key (no such effect among its {summary.count})")
    try:
        merkle.verify_inclusion(effect.index, summary.count, put_effect_leaf_hash(key, value), effect.path, summary.root)
    except merkle.MerkleProofError as e:
        raise EntryMismatch(f"entry {entry.index} did not write this value under this key: "
                            f"the effect is not in the entry's effects tree: {e}") from None
    if summary.branch not in WRITTEN_BY:
        raise EntryMismatch(f"entry {entry.index} has branch {summary.branch}, want 0, 1 or 2")
    return WRITTEN_BY[summary.branch]


def check_proposes(entry: JournalEntry, key: bytes, value: bytes) -> str:
    """What a v1 leaf can show: the entry proposes a put of exactly (key, value), alone ("put")
    or in either branch of a transaction ("txn (branch taken not proven)"). Raises EntryMismatch
    naming what the entry does instead."""
    if entry.type != ENTRY_NORMAL:
        raise EntryMismatch(f"entry {entry.index} is a configuration change")
    try:
        proposal = decode_proposal(entry.payload)
    except ProtocolError as e:
        raise EntryMismatch(f"entry {entry.index} does not decode: {e}") from None
    command = proposal.command
    if isinstance(command, Put):
        if command.key == key and command.value == value:
            return "put"
        if command.key == key:
            raise EntryMismatch(f"entry {entry.index} puts another value ({len(command.value)} bytes) under this key")
        raise EntryMismatch(f"entry {entry.index} puts another key")
    if isinstance(command, Txn):
        if any(isinstance(op, Put) and op.key == key and op.value == value for op in command.success + command.failure):
            return "txn (branch taken not proven)"
        raise EntryMismatch(f"entry {entry.index} is a txn that puts no such value under this key")
    what = {DeleteRange: "a delete", Compact: "a compaction", InitCluster: "records the cluster ID",
            UpgradeLeaves: "starts leaf v2", UpgradeState: "raises the state level", Auth: "changes users or roles"}.get(type(command), "a lease command")
    raise EntryMismatch(f"entry {entry.index} {'is ' if what.startswith('a ') else ''}{what}")


# --- membership changes ------------------------------------------------------------------------

CONF_ADD_LEARNER, CONF_ADD_VOTER, CONF_REMOVE = 0, 1, 2


@dataclass(frozen=True)
class ConfChange:
    """The payload of a configuration-change entry (type 1): u8 kind ‖ u64BE nodeID ‖ context
    (Sources/FaunaRaft/ConfChange.swift; kind 0 addLearner, 1 addVoter, 2 remove)."""

    kind: int
    node_id: int
    context: bytes


def decode_conf_change(payload: bytes) -> ConfChange:
    if len(payload) < 9:
        raise ProtocolError(f"configuration change of {len(payload)} bytes, want at least 9")
    kind = payload[0]
    if kind > 2:
        raise ProtocolError(f"configuration change kind {kind}, want 0...2")
    node_id = struct.unpack(">Q", payload[1:9])[0]
    if node_id == 0:
        raise ProtocolError("configuration change of node 0")
    return ConfChange(kind, node_id, bytes(payload[9:]))
