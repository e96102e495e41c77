"""Verified reads and tree-head checks (docs/AUDIT.md §5, §6, §9, §10), as `fctl get --verify`
and `fctl verify` do them (Sources/FaunaClient/FaunaClient+Verify.swift).

The checks are pure functions over decoded answers and bytes (`check_quorum`, `quorum_for`,
`check_record`, `advance`, `check_consistency`); `verified_get` and `verify_head` are thin glue
that fetch the answers with `client.request(kind, body, *, timeout, endpoint)` and
`client.endpoints`, and keep the trusted state in trusted.json (shared with fctl).

Failures raise subclasses of `VerificationError`, each with `check` (which check failed) and
`node` (the node whose answer failed it, if one):

- `LyingNodeError`: what the serving node sent (value, entry, effect, inclusion path,
  consistency path) does not match what a quorum of members signed;
- `ForgedHeadError`: a tree head without a strict majority of valid signatures by pinned keys
  (bad signatures, unknown keys, a minority signing another root than the majority);
- `RollbackError`: the cluster's history is shorter than the trusted head;
- `ForkError`: a head that does not extend the trusted one (consistency proof fails, or the
  same size with another root);
- `TrustError`: keys cannot be pinned, or the cluster is another one than the trusted;
- `InvalidProof`: a proof file that is malformed or does not prove its record.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import audit, merkle
from .codec import ProtocolError
from .entry import (CONF_REMOVE, ENTRY_CONF_CHANGE, EffectProof, EntryMismatch, JournalEntry, check_writes,
                    decode_conf_change)
from .trust import MemberKey, TrustedCluster, TrustStore, default_path

try:
    from .errors import FaunaError, VerificationError
except ImportError:  # until the client package's errors.py is merged
    from ._standin import FaunaError, VerificationError

TREE_HEAD_PREFIX = b"fauna tree head\x01"
BEHIND_WAIT_S = 3.0  # how long a node behind is given to catch up (as fctl)


class _Failure(VerificationError):
    def __init__(self, message: str, *, check: str = "", node: str | None = None):
        super().__init__(message)
        self.check = check
        self.node = node


class LyingNodeError(_Failure):
    """The serving node's record, entry, effect or proof does not match what a quorum signed."""


class ForgedHeadError(_Failure):
    """A tree head that a strict majority of the pinned member keys did not validly sign."""


class RollbackError(_Failure):
    """The cluster's history is shorter than the head the client trusts."""


class ForkError(_Failure):
    """A head that does not extend the trusted head."""


class TrustError(_Failure):
    """Member keys cannot be pinned, or the cluster is not the trusted one."""


class InvalidProof(_Failure):
    """A proof file that is malformed or does not prove what it claims."""


class NodeError(FaunaError):
    """A node answered a request with an error frame (docs/PROTOCOL.md ErrorResponse)."""

    def __init__(self, code: int, message: str, node: str):
        super().__init__(f"{node}: error {code}: {message}")
        self.code = code
        self.node = node


# --- pure checks ---------------------------------------------------------------------------------

def tree_head_bytes(cluster_id: bytes, tree_size: int, root_hash: bytes) -> bytes:
    """The 72 canonical bytes a member signs (docs/AUDIT.md §5)."""
    if len(cluster_id) != 16 or len(root_hash) != 32 or not 0 <= tree_size <= merkle.U64_MAX:
        raise ValueError("tree head: want a 16-byte cluster ID, a u64 size and a 32-byte root")
    return TREE_HEAD_PREFIX + cluster_id + tree_size.to_bytes(8, "big") + root_hash


def signature_valid(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Pure Ed25519 (RFC 8032); False for a malformed key or signature."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def count_signers(cluster_id: bytes, tree_size: int, root_hash: bytes,
                  signatures: Iterable[tuple[bytes, bytes]], members: Iterable[bytes]) -> list[bytes]:
    """The member keys with a valid signature over the head, in order. Only the first signature
    carrying a member's key is checked; unknown keys and later copies do not count."""
    keys = set(members)
    message = tree_head_bytes(cluster_id, tree_size, root_hash)
    tried: set[bytes] = set()
    signers = []
    for key, sig in signatures:
        if key not in keys or key in tried:
            continue
        tried.add(key)
        if signature_valid(key, sig, message):
            signers.append(key)
    return signers


def check_quorum(cluster_id: bytes, tree_size: int, root_hash: bytes, signatures: Iterable[tuple[bytes, bytes]],
                 trust: TrustedCluster) -> list[MemberKey]:
    """The pinned members whose signatures count; ForgedHeadError without a strict majority,
    TrustError for a head of another cluster."""
    if cluster_id != trust.cluster_id:
        raise TrustError(f"got tree head of cluster {cluster_id.hex()}, want {trust.cluster_id.hex()}", check="cluster")
    sigs = list(signatures)
    signers = count_signers(cluster_id, tree_size, root_hash, sigs, trust.keys)
    if len(signers) < trust.quorum:
        raise ForgedHeadError(
            f"no quorum: the tree head of size {tree_size} with root {root_hash.hex()} has {len(signers)} valid signatures "
            f"of {len(trust.members)} pinned members, want {trust.quorum} ({len(sigs)} signatures given)", check="quorum")
    return [m for k in signers for m in trust.members if m.public_key == k]


@dataclass(frozen=True)
class HeadQuorum:
    """The signatures over exactly (cluster, size, root) that counted, and who made them."""

    signatures: tuple[tuple[bytes, bytes], ...]
    signers: tuple[str, ...]


def quorum_for(tree_size: int, root_hash: bytes, answers: Sequence[tuple[str, audit.SignedTreeHead1 | BaseException]],
               trust: TrustedCluster, served_by: str) -> HeadQuorum:
    """docs/AUDIT.md §10 step 4: of every node's own signed head at `tree_size`, keeps the valid
    signatures by pinned keys over exactly (trusted cluster, size, root_hash), one per member.
    Without a majority: LyingNodeError if a majority signed another root for this size and none
    signed ours (what `served_by` sent is false), ForgedHeadError otherwise (no quorum, or only
    a minority — the liar — signed the root its answer leads to)."""
    message = tree_head_bytes(trust.cluster_id, tree_size, root_hash)
    sigs: list[tuple[bytes, bytes]] = []
    signers: list[str] = []
    other_roots: dict[bytes, set[str]] = {}
    dissent: list[str] = []
    for endpoint, answer in answers:
        if isinstance(answer, BaseException):
            dissent.append(f"{endpoint}: {answer}")
            continue
        member = trust.member_with_key(answer.public_key)
        canonical_ok = answer.cluster_id == trust.cluster_id and answer.tree_size == tree_size
        if member is None or not canonical_ok or not signature_valid(
                answer.public_key, answer.signature, tree_head_bytes(answer.cluster_id, answer.tree_size, answer.root_hash)):
            dissent.append(f"n{answer.node_id} at {endpoint}: head of another cluster or size, or signed by an untrusted key")
            continue
        if answer.root_hash == root_hash:
            if member.name not in signers and signature_valid(answer.public_key, answer.signature, message):
                sigs.append((answer.public_key, answer.signature))
                signers.append(member.name)
        else:
            other_roots.setdefault(answer.root_hash, set()).add(member.name)
    if len(signers) >= trust.quorum:
        return HeadQuorum(tuple(sigs), tuple(sorted(signers)))

    def names(ids: Iterable[str]) -> str:
        return ", ".join(sorted(ids, key=lambda n: int(n[1:])))

    for other, quorum in other_roots.items():
        if len(quorum) >= trust.quorum:
            prefix = (f"what {served_by} sent leads to root {root_hash.hex()} for tree size {tree_size}, but a quorum "
                      f"({names(quorum)}) signed root {other.hex()} for that size")
            if signers:
                raise ForgedHeadError(f"{prefix}; only {names(signers)} signed the root it leads to: a forged head",
                                      check="quorum", node=served_by)
            raise LyingNodeError(f"{prefix}: {served_by}'s record, entry or inclusion proof is false",
                                 check="inclusion", node=served_by)
    detail = "".join(f"; {names(v)} signed root {k.hex()}" for k, v in sorted(other_roots.items()))
    detail += "".join(f"; {d}" for d in sorted(dissent))
    raise ForgedHeadError(
        f"no quorum: the tree head of size {tree_size} with root {root_hash.hex()} that {served_by}'s answer leads to is "
        f"signed by {len(signers)} of {len(trust.members)} trusted members ({names(signers)}), want {trust.quorum}{detail}",
        check="quorum", node=served_by)


def check_record(entry: JournalEntry, effect: EffectProof | None, key: bytes, value: bytes, revision: int,
                 served_by: str) -> str:
    """docs/AUDIT.md §10 step 2: the entry at the record's mod revision wrote exactly this key
    and value (v2), or proposes it (v1: "…; effect not proven (leaf v1)"). LyingNodeError if not."""
    if entry.index != revision:
        raise LyingNodeError(f"{served_by} sent journal entry {entry.index} when asked for {revision}",
                             check="entry", node=served_by)
    try:
        return check_writes(entry, effect, key, value)
    except EntryMismatch as e:
        raise LyingNodeError(f"the record {served_by} served is not what its journal entry {revision} wrote: {e}",
                             check="effect" if entry.effects is not None else "entry", node=served_by) from None


def check_consistency(old_size: int, old_root: bytes, new_size: int, new_root: bytes, path: Sequence[bytes],
                      node: str | None = None) -> None:
    """The tree (new_size, new_root) extends (old_size, old_root); ForkError if not."""
    if old_size == new_size and old_root != new_root:
        raise ForkError(f"fork: root {new_root.hex()} at size {new_size}, want the trusted root {old_root.hex()}",
                        check="consistency", node=node)
    try:
        merkle.verify_consistency(old_size, new_size, old_root, new_root, path)
    except merkle.MerkleProofError as e:
        raise ForkError(f"fork or rollback: the head of size {new_size} does not extend the trusted head of size "
                        f"{old_size}" + (f" ({node})" if node else "") + f": {e}", check="consistency", node=node) from None


def advance(trust: TrustedCluster, tree_size: int, root_hash: bytes, path: Sequence[bytes],
            node: str | None = None) -> TrustedCluster:
    """docs/AUDIT.md §6: the trusted state after a quorum-verified head (tree_size, root_hash)
    and `path`, a consistency proof from the smaller of the two sizes to the larger. A larger head
    is trusted; the same or a smaller one leaves the state unchanged if consistent. ForkError if
    it is not."""
    if tree_size >= trust.tree_size:
        check_consistency(trust.tree_size, trust.root_hash, tree_size, root_hash, path, node)
        return replace(trust, tree_size=tree_size, root_hash=root_hash)
    try:
        merkle.verify_consistency(tree_size, trust.tree_size, root_hash, trust.root_hash, path)
    except merkle.MerkleProofError as e:
        raise ForkError(f"fork or rollback: the older head of size {tree_size} is not a prefix of the trusted head of size "
                        f"{trust.tree_size}: {e}", check="consistency", node=node) from None
    return trust


# --- talking to nodes ----------------------------------------------------------------------------

def _ask(client: Any, endpoint: Any, kind: int, body: bytes, want: int, timeout: float, behind_wait: float = 0.0) -> bytes:
    """One request to `endpoint`; an error answer raises NodeError (a `behind` one is retried
    for `behind_wait` seconds)."""
    deadline = time.monotonic() + behind_wait
    while True:
        try:
            answer_kind, answer = client.request(kind, body, timeout=timeout, endpoint=endpoint)
        except Exception as e:  # the client's own errors; `behind` may surface as one with a code
            if getattr(e, "code", None) == audit.ERROR_BEHIND and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise
        if answer_kind == audit.ERROR:
            err = audit.decode_error(answer)
            if err.code == audit.ERROR_BEHIND and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise NodeError(err.code, err.message, str(endpoint))
        if answer_kind != want:
            raise ProtocolError(f"{endpoint} answered kind {answer_kind:#04x}, want {want:#04x}")
        return bytes(answer)


def _try(f: Callable[[], Any]) -> Any:
    try:
        return f()
    except Exception as e:  # kept per node: one node down must not stop the others' answers
        return e


def _signed_head(client: Any, endpoint: Any, tree_size: int | None, timeout: float, behind_wait: float = 0.0) -> audit.SignedTreeHead1:
    return audit.decode_signed_tree_head(_ask(client, endpoint, audit.SIGNED_TREE_HEAD, audit.encode_tree_head_request(tree_size),
                                              audit.SIGNED_TREE_HEAD_RESPONSE, timeout, behind_wait))


def _entry_proof(client: Any, endpoint: Any, index: int, key: bytes, timeout: float) -> audit.EntryProofResult:
    return audit.decode_entry_proof(_ask(client, endpoint, audit.ENTRY_PROOF, audit.encode_entry_proof_request(index, key),
                                         audit.ENTRY_PROOF_RESPONSE, timeout))


def _inclusion(client: Any, endpoint: Any, leaf_index: int, tree_size: int, timeout: float) -> tuple[bytes, ...]:
    proof = audit.decode_proof(_ask(client, endpoint, audit.INCLUSION_PROOF, audit.encode_inclusion_proof_request(leaf_index, tree_size),
                                    audit.INCLUSION_PROOF_RESPONSE, timeout), "inclusionProofResponse")
    if (proof.first, proof.second) != (leaf_index, tree_size):
        raise LyingNodeError(f"{endpoint} sent an inclusion proof of leaf {proof.first} in size {proof.second}, "
                             f"want leaf {leaf_index} in size {tree_size}", check="inclusion", node=str(endpoint))
    return proof.path


def _status(client: Any, endpoint: Any, timeout: float) -> audit.NodeStatus:
    return audit.decode_node_status(_ask(client, endpoint, audit.STATUS, b"", audit.STATUS_RESPONSE, timeout))


def _endpoints(client: Any) -> list[Any]:
    endpoints = list(client.endpoints)
    if not endpoints:
        raise FaunaError("the client has no endpoints")
    return endpoints


def _resolve(client: Any, node: Any) -> Any:
    """`node` as one of the client's endpoints (matched by value or by its text)."""
    for e in _endpoints(client):
        if e == node or str(e) == str(node):
            return e
    return node


def find_leader(client: Any, timeout: float = 5.0) -> Any:
    """The endpoint whose node says it leads (status); FaunaError if none does."""
    for e in _endpoints(client):
        status = _try(lambda: _status(client, e, timeout))
        if isinstance(status, audit.NodeStatus) and status.role == audit.ROLE_LEADER:
            return e
    raise FaunaError("no node of the configuration is the leader now; retry, or name a node")


def pin_members(client: Any, cluster_name: str, timeout: float = 5.0, require_all: bool = True) -> TrustedCluster:
    """Trust on first use (docs/AUDIT.md §9), as `fctl` pins: every configured node signs its
    head with the key it sends; all name one cluster; no two share a key or an ID; with
    `require_all`, every node answers and every member the cluster lists is among them."""
    members: list[MemberKey] = []
    cluster_id: bytes | None = None
    for e in _endpoints(client):
        head = _try(lambda: _signed_head(client, e, None, timeout))
        if isinstance(head, BaseException):
            if not require_all:
                continue
            raise TrustError(f"cannot pin the key of {e}: {head}. Pin when every member is up, or pin keys from a file",
                             check="pin", node=str(e))
        if len(head.public_key) != 32:
            raise ForgedHeadError(f"{e} (n{head.node_id}) sent a public key of {len(head.public_key)} bytes, want 32",
                                  check="pin", node=str(e))
        if not signature_valid(head.public_key, head.signature, tree_head_bytes(head.cluster_id, head.tree_size, head.root_hash)):
            raise ForgedHeadError(f"{e} (n{head.node_id}) signed its tree head with a key other than the one it sent",
                                  check="pin", node=str(e))
        if cluster_id is not None and cluster_id != head.cluster_id:
            raise TrustError(f"nodes disagree on the cluster ID: {cluster_id.hex()} and {head.cluster_id.hex()} "
                             f"(n{head.node_id} at {e})", check="pin", node=str(e))
        cluster_id = head.cluster_id
        if any(m.node_id == head.node_id for m in members):
            raise TrustError(f"two endpoints answered as n{head.node_id}; check the configuration", check="pin")
        if any(m.public_key == head.public_key for m in members):
            raise TrustError(f"n{head.node_id} at {e} presents the key of another member (a copied node.key?)",
                             check="pin", node=str(e))
        members.append(MemberKey(head.node_id, head.public_key))
    if cluster_id is None:
        raise FaunaError("no node answered")
    if require_all:
        listed = None
        for e in _endpoints(client):
            answer = _try(lambda: audit.decode_member_list(_ask(client, e, audit.MEMBERS, b"", audit.MEMBERS_RESPONSE, timeout)))
            if not isinstance(answer, BaseException):
                listed = answer
                break
        if listed is None:
            raise TrustError("cannot pin on first use: no node lists the members", check="pin")
        missing = [f"n{m.node_id}" for m in listed if not any(k.node_id == m.node_id for k in members)]
        if missing:
            raise TrustError(
                f"cannot pin on first use: the cluster lists {len(listed)} members but only {len(members)} are configured "
                f"here (missing {', '.join(missing)}); a quorum of a partial set proves nothing. Configure every member, "
                "or pin keys from a file", check="pin")
    return TrustedCluster(cluster_name, cluster_id, tuple(sorted(members, key=lambda m: m.node_id)))


def _store(client: Any, trusted_path: str | None, cluster_name: str | None) -> tuple[TrustStore, str]:
    name = cluster_name or getattr(client, "cluster_name", None) or "default"
    return TrustStore(trusted_path or default_path(name)), name


def load_or_pin(client: Any, trusted_path: str | None = None, cluster_name: str | None = None,
                timeout: float = 5.0) -> tuple[TrustStore, TrustedCluster, bool]:
    """The trusted state from trusted.json, or pinned now (not yet saved) if the file does not
    exist. Returns (store, trust, pinned)."""
    store, name = _store(client, trusted_path, cluster_name)
    trust = store.load()
    if trust is not None:
        return store, trust, False
    return store, pin_members(client, name, timeout), True


def _prove_head(client: Any, node: Any, current: audit.SignedTreeHead1, covering: int, trust: TrustedCluster,
                root_for_size: Callable[[int], tuple[bytes, tuple[bytes, ...]]], timeout: float
                ) -> tuple[int, bytes, tuple[bytes, ...], HeadQuorum, TrustedCluster]:
    """docs/AUDIT.md §10 steps 3-5 (fctl's proveHead): the size (the node's applied size, at
    least `covering` and the trusted size), the root `root_for_size` computes for it, a quorum
    of signatures over exactly that head, and consistency with the trusted head. Returns
    (size, root, path, quorum, trusted state after)."""
    where = str(node)
    if current.cluster_id != trust.cluster_id:
        raise TrustError(f"{where} is in cluster {current.cluster_id.hex()}, want the trusted {trust.cluster_id.hex()} "
                         "(a cluster created anew is another cluster: trust it anew)", check="cluster", node=where)
    size = max(current.tree_size, covering)
    if size < trust.tree_size:
        # The node is behind what we trust, or the cluster lost history: give it a moment.
        size = trust.tree_size
        reached = _try(lambda: _signed_head(client, node, size, timeout, BEHIND_WAIT_S))
        if isinstance(reached, BaseException):
            sizes = [s.tree_size for s in (_try(lambda: _status(client, e, timeout)) for e in _endpoints(client))
                     if isinstance(s, audit.NodeStatus)]
            largest = max(sizes, default=current.tree_size)
            if largest < size:
                raise RollbackError(
                    f"rollback: the trusted tree has {trust.tree_size} entries but no node has more than {largest}: "
                    "the cluster's history was rolled back (restored from an older backup?)", check="rollback", node=where)
            raise FaunaError(f"{where} is behind the trusted tree size {size}; ask another node")
    root, path = root_for_size(size)
    answers = [(str(e), _try(lambda: _signed_head(client, e, size, timeout, BEHIND_WAIT_S))) for e in _endpoints(client)]
    quorum = quorum_for(size, root, answers, trust, where)
    older = trust.tree_size
    consistency: tuple[bytes, ...] = ()
    if older != 0 and older != size:
        proof = audit.decode_proof(_ask(client, node, audit.CONSISTENCY_PROOF, audit.encode_consistency_proof_request(older, size),
                                        audit.CONSISTENCY_PROOF_RESPONSE, timeout), "consistencyProofResponse")
        if (proof.first, proof.second) != (older, size):
            raise LyingNodeError(f"{where} sent a consistency proof from {proof.first} to {proof.second}, want {older} to {size}",
                                 check="consistency", node=where)
        consistency = proof.path
    after = advance(trust, size, root, consistency, where)
    return size, root, path, quorum, after


def drop_removed_members(client: Any, node: Any, trust: TrustedCluster, timeout: float = 5.0
                         ) -> tuple[TrustedCluster, list[str]]:
    """docs/AUDIT.md §9 "Removals are leaves": drops the pinned key of every member whose removal
    is committed up to the trusted head, each entry proven by its inclusion in that head."""
    size = trust.tree_size
    if size <= trust.membership_checked_size:
        return trust, []
    where = str(node)
    indexes = audit.decode_membership_changes(_ask(client, node, audit.MEMBERSHIP_CHANGES,
                                                   audit.encode_membership_changes_request(trust.membership_checked_size),
                                                   audit.MEMBERSHIP_CHANGES_RESPONSE, timeout))
    members = list(trust.members)
    removed: list[str] = []
    for index in indexes:
        if not trust.membership_checked_size < index <= size:
            continue
        entry = _entry_proof(client, node, index, b"", timeout).entry
        path = _inclusion(client, node, index - 1, size, timeout)
        try:
            if entry.index != index or entry.type != ENTRY_CONF_CHANGE:
                raise ProtocolError("not a configuration change")
            change = decode_conf_change(entry.payload)
        except ProtocolError:
            raise LyingNodeError(f"{where} named entry {index} as a membership change; it is not one",
                                 check="membership", node=where) from None
        try:
            merkle.verify_inclusion(index - 1, size, entry.leaf_hash(), path, trust.root_hash)
        except merkle.MerkleProofError as e:
            raise LyingNodeError(f"membership change {index} from {where} is not in the trusted tree of size {size}: {e}",
                                 check="membership", node=where) from None
        if change.kind == CONF_REMOVE and any(m.node_id == change.node_id for m in members):
            members = [m for m in members if m.node_id != change.node_id]
            removed.append(f"n{change.node_id}")
    return replace(trust, members=tuple(members), membership_checked_size=size), removed


@dataclass(frozen=True)
class VerifiedRecord:
    """A record and everything that proves it (what `fctl get --verify` prints, and a proof file)."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    entry: JournalEntry
    effect: EffectProof | None
    written_by: str  # "put", "txn (then branch)", …; v1: "…; effect not proven (leaf v1)"
    tree_size: int
    root_hash: bytes
    inclusion_path: tuple[bytes, ...]
    signatures: tuple[tuple[bytes, bytes], ...]
    signers: tuple[str, ...]
    served_by: str
    trust: TrustedCluster  # after this read (saved)
    trusted_size_before: int
    removed_members: tuple[str, ...]
    pinned: bool  # keys pinned on first use by this read
    trusted_path: str

    @property
    def leaf_index(self) -> int:
        return self.entry.index - 1

    def proof_file(self) -> Any:
        """This record as a "fauna-proof-v2" proof file (`fauna.proof.ProofFile`; `dumps` it)."""
        from .proof import FORMAT_V2, ProofFile
        return ProofFile(FORMAT_V2, self.trust.cluster_id, self.key, self.value, self.mod_revision, self.entry, self.effect,
                         self.leaf_index, self.tree_size, self.inclusion_path, self.root_hash, self.signatures)

    def summary(self) -> str:
        """fctl's lines after the value."""
        return "\n".join([
            f"verified: entry {self.entry.index} (term {self.entry.term}) is a {self.written_by} of this key and value, "
            f"served by {self.served_by}",
            f"verified: it is leaf {self.leaf_index} of tree size {self.tree_size}, root {self.root_hash.hex()}",
            f"verified: that head is signed by {', '.join(self.signers)} ({len(self.signers)} of "
            f"{len(self.trust.members) + len(self.removed_members)} members)",
            f"verified: it extends the trusted head of size {self.trusted_size_before}; trusted size now {self.trust.tree_size}",
        ])


def verified_get(client: Any, key: bytes, *, revision: int | None = None, node: Any = None,
                 trusted_path: str | None = None, cluster_name: str | None = None,
                 timeout: float = 5.0) -> VerifiedRecord | None:
    """A verified read (docs/AUDIT.md §10; `fctl get KEY --verify`): reads `key` on `node` (the
    leader if None) and proves it. Returns None if the key does not exist — absence is not
    proven. Pins the members' keys on first use if trusted.json (`trusted_path`, default
    ~/.config/fauna/<cluster>/trusted.json) does not exist, and saves the advanced trusted state.
    Raises LyingNodeError, ForgedHeadError, RollbackError, ForkError or TrustError."""
    key = bytes(key)
    store, trust, pinned = load_or_pin(client, trusted_path, cluster_name, timeout)
    node = find_leader(client, timeout) if node is None else _resolve(client, node)
    where = str(node)
    answer = audit.decode_range_result(_ask(client, node, audit.READ, audit.encode_get_request(key, revision),
                                            audit.READ_RESPONSE, timeout))
    record = next((r for r in answer.records if r.key == key), None)
    if record is None:
        return None
    if revision and record.mod_revision > revision:
        raise LyingNodeError(f"{where} answered a read as of revision {revision} with a record written at {record.mod_revision}",
                             check="revision", node=where)
    m = record.mod_revision
    proof = _entry_proof(client, node, m, key, timeout)
    current = _signed_head(client, node, None, timeout)
    written_by = check_record(proof.entry, proof.effect, key, record.value, m, where)

    def root_for_size(size: int) -> tuple[bytes, tuple[bytes, ...]]:
        path = _inclusion(client, node, m - 1, size, timeout)
        try:
            return merkle.root_from_inclusion(m - 1, size, proof.entry.leaf_hash(), path), path
        except merkle.MerkleProofError as e:
            raise LyingNodeError(f"inclusion proof of entry {m} in tree size {size} from {where}: {e}",
                                 check="inclusion", node=where) from None

    size, root, path, quorum, after = _prove_head(client, node, current, m, trust, root_for_size, timeout)
    after, removed = drop_removed_members(client, node, after, timeout)
    saved = store.save(after)
    return VerifiedRecord(key, record.value, record.create_revision, m, record.version, proof.entry, proof.effect, written_by,
                          size, root, path, quorum.signatures, quorum.signers, where, saved, trust.tree_size,
                          tuple(removed), pinned, store.path)


@dataclass(frozen=True)
class VerifiedHead:
    tree_size: int
    root_hash: bytes
    signers: tuple[str, ...]
    served_by: str
    trust: TrustedCluster
    trusted_size_before: int
    removed_members: tuple[str, ...]
    pinned: bool


def verify_head(client: Any, *, node: Any = None, trusted_path: str | None = None, cluster_name: str | None = None,
                timeout: float = 5.0) -> VerifiedHead:
    """`fctl verify`: advances the trusted state to `node`'s current head (the leader's if
    None) — signed by a quorum of pinned keys and consistent with the trusted head — and saves
    it. The cheap check to run now and then: a fork or rollback shows here."""
    store, trust, pinned = load_or_pin(client, trusted_path, cluster_name, timeout)
    node = find_leader(client, timeout) if node is None else _resolve(client, node)
    current = _signed_head(client, node, None, timeout)

    def root_for_size(size: int) -> tuple[bytes, tuple[bytes, ...]]:
        return _signed_head(client, node, size, timeout, BEHIND_WAIT_S).root_hash, ()

    size, root, _, quorum, after = _prove_head(client, node, current, 0, trust, root_for_size, timeout)
    after, removed = drop_removed_members(client, node, after, timeout)
    saved = store.save(after)
    return VerifiedHead(size, root, quorum.signers, str(node), saved, trust.tree_size, tuple(removed), pinned)
