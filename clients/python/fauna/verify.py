"""Verified reads and tree-head checks (docs/AUDIT.md §5, §6, §9, §10), as `fctl get --verify`
and `fctl verify` do them (Sources/FaunaClient/FaunaClient+Verify.swift).

    record = client.get(b"k", verify=True)          # = verified_get(client, b"k")

The checks are pure functions over decoded answers and bytes (`check_quorum`, `quorum_for`,
`check_record`, `advance`, `check_consistency`); `verified_get` and `verify_head` are the glue
that fetches the answers through a `fauna.Client` (its `request`, `request_all`, `get`,
`status_all`, `members`, with its retries) and keeps the trusted state in trusted.json (shared
with fctl). `verified_get_async` is `verified_get` for a `fauna.aio.AsyncClient`.

Failures raise the subclasses of `fauna.VerificationError` (defined in `fauna.errors`), each
with `check` (which check failed) and `node` (the `Endpoint` whose answer failed it, if one):

- `LyingNodeError`: what the serving node sent (value, entry, effect, inclusion path,
  consistency path) does not match what a quorum of members signed;
- `ForgedHeadError`: a tree head without a strict majority of valid signatures by pinned keys
  (bad signatures, unknown keys, a minority signing another root than the majority);
- `RollbackError`: the cluster's history is shorter than the trusted head;
- `ForkError`: a head that does not extend the trusted one (consistency proof fails, or the
  same size with another root);
- `TrustError`: keys cannot be pinned, or the cluster is another one than the trusted;
- `InvalidProof`: a proof file that is malformed or does not prove its record (fauna.proof).

A node that cannot answer in time raises what the client raises (`DeadlineExceeded`,
`ConnectionFailed`, a `ServerError`): that is not a verification failure.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar, Union

from . import audit, merkle
from .entry import (CONF_REMOVE, ENTRY_CONF_CHANGE, EffectProof, EntryMismatch, JournalEntry, check_writes,
                    decode_conf_change)
from .errors import (
    Behind, DeadlineExceeded, FaunaError, ForgedHeadError, ForkError, InvalidArgument, InvalidProof, LyingNodeError,
    ProtocolError, RollbackError, TrustError, Unavailable, VerificationError,
)
from .trust import MemberKey, TrustedCluster, TrustStore, default_path
from .wire import Endpoint, Kind, NodeStatus, Record

if TYPE_CHECKING:
    from .aio import AsyncClient
    from .client import Client
    from .proof import ProofFile

__all__ = [
    "verified_get", "verified_get_async", "verify_head", "VerifiedRecord", "VerifiedHead", "HeadQuorum",
    "tree_head_bytes", "signature_valid", "count_signers", "check_quorum", "quorum_for", "check_record",
    "check_consistency", "advance",
    "VerificationError", "LyingNodeError", "ForgedHeadError", "RollbackError", "ForkError", "TrustError",
    "InvalidProof",
]

EndpointLike = Union[Endpoint, tuple[str, int], str]
T = TypeVar("T")

TREE_HEAD_PREFIX = b"fauna tree head\x01"
BEHIND_WAIT_S = 3.0  # how long a node behind is given to catch up (as fctl)


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
    from cryptography.exceptions import InvalidSignature  # imported on use: `import fauna` needs no cryptography
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
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


def quorum_for(tree_size: int, root_hash: bytes,
               answers: Sequence[tuple[Endpoint, audit.SignedTreeHead1 | BaseException]],
               trust: TrustedCluster, served_by: Endpoint | None) -> HeadQuorum:
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
                 served_by: Endpoint | None) -> str:
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
                      node: Endpoint | None = None) -> None:
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
            node: Endpoint | None = None) -> TrustedCluster:
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

class _Call:
    """One verified read or head check: the client, and the deadline all its requests share
    (`timeout`, by default the client's `config.timeout`, as for every call of the client)."""

    def __init__(self, client: Client, timeout: float | None):
        t = client.config.timeout if timeout is None else timeout
        if not t > 0:
            raise InvalidArgument(f"timeout: got {t!r}, want > 0 seconds")
        self.client = client
        self.deadline = time.monotonic() + t

    def left(self, cap: float | None = None) -> float:
        """The seconds left, at most `cap`; DeadlineExceeded if none are."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("verified read: the deadline passed")
        return left if cap is None else min(left, cap)

    def ask(self, endpoint: Endpoint, kind: Kind, body: bytes, want: Kind, cap: float | None = None) -> bytes:
        """One request to `endpoint`, retried there by the client (a node `behind` is waited for)
        until the deadline or `cap`; an error answer raises its ServerError."""
        answer_kind, answer = self.client.request(kind, body, timeout=self.left(cap), endpoint=endpoint)
        _expect(endpoint, answer_kind, want)
        return answer

    def ask_all(self, kind: Kind, body: bytes, want: Kind, decode: Callable[[bytes], T],
                cap: float | None = None) -> list[tuple[Endpoint, T | FaunaError]]:
        """The same request to every configured node at once: one attempt each (a node down
        fails at once), then the nodes that asked to retry (`behind`, `unavailable`, ...) again,
        until the deadline or `cap`. Answers (decoded) or errors, in endpoint order."""
        answers: dict[Endpoint, tuple[int, bytes] | FaunaError] = dict(
            self.client.request_all(kind, body, timeout=self.left(cap)))
        again = [e for e, a in answers.items()
                 if isinstance(a, DeadlineExceeded) and isinstance(a.last_error, (Behind, Unavailable))]
        if again:
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(again)) as pool:
                futures = {e: pool.submit(self.client.request, kind, body, timeout=self.left(cap), endpoint=e)
                           for e in again}
                for e, f in futures.items():
                    try:
                        answers[e] = f.result()
                    except FaunaError as err:
                        answers[e] = err
        out: list[tuple[Endpoint, T | FaunaError]] = []
        for e in self.client.endpoints:
            a = answers[e]
            if isinstance(a, FaunaError):
                out.append((e, a))
                continue
            try:
                _expect(e, a[0], want)
                out.append((e, decode(a[1])))
            except ProtocolError as err:
                out.append((e, err))
        return out


def _expect(endpoint: Endpoint, got: int, want: Kind) -> None:
    if got != want:
        raise ProtocolError(f"{endpoint} answered kind {got:#04x}, want {want.name.lower()} ({int(want):#04x})")


def _signed_head(call: _Call, endpoint: Endpoint, tree_size: int | None, cap: float | None = None) -> audit.SignedTreeHead1:
    return audit.decode_signed_tree_head(call.ask(endpoint, Kind.SIGNED_TREE_HEAD, audit.encode_tree_head_request(tree_size),
                                                  Kind.SIGNED_TREE_HEAD_RESPONSE, cap))


def _signed_heads(call: _Call, tree_size: int | None, cap: float | None = None
                  ) -> list[tuple[Endpoint, audit.SignedTreeHead1 | FaunaError]]:
    return call.ask_all(Kind.SIGNED_TREE_HEAD, audit.encode_tree_head_request(tree_size), Kind.SIGNED_TREE_HEAD_RESPONSE,
                        audit.decode_signed_tree_head, cap)


def _entry_proof(call: _Call, endpoint: Endpoint, index: int, key: bytes) -> audit.EntryProofResult:
    return audit.decode_entry_proof(call.ask(endpoint, Kind.ENTRY_PROOF, audit.encode_entry_proof_request(index, key),
                                             Kind.ENTRY_PROOF_RESPONSE))


def _inclusion(call: _Call, endpoint: Endpoint, leaf_index: int, tree_size: int) -> tuple[bytes, ...]:
    proof = audit.decode_proof(call.ask(endpoint, Kind.INCLUSION_PROOF,
                                        audit.encode_inclusion_proof_request(leaf_index, tree_size),
                                        Kind.INCLUSION_PROOF_RESPONSE), "inclusionProofResponse")
    if (proof.first, proof.second) != (leaf_index, tree_size):
        raise LyingNodeError(f"{endpoint} sent an inclusion proof of leaf {proof.first} in size {proof.second}, "
                             f"want leaf {leaf_index} in size {tree_size}", check="inclusion", node=endpoint)
    return proof.path


def _pin_members(call: _Call, cluster_name: str, require_all: bool = True) -> TrustedCluster:
    """Trust on first use (docs/AUDIT.md §9), as `fctl` pins: every configured node signs its
    head with the key it sends; all name one cluster; no two share a key or an ID; with
    `require_all`, every node answers and every member the cluster lists is among them."""
    members: list[MemberKey] = []
    cluster_id: bytes | None = None
    for e, head in _signed_heads(call, None):
        if isinstance(head, FaunaError):
            if not require_all:
                continue
            raise TrustError(f"cannot pin the key of {e}: {head}. Pin when every member is up, or pin keys from a file",
                             check="pin", node=e)
        if len(head.public_key) != 32:
            raise ForgedHeadError(f"{e} (n{head.node_id}) sent a public key of {len(head.public_key)} bytes, want 32",
                                  check="pin", node=e)
        if not signature_valid(head.public_key, head.signature, tree_head_bytes(head.cluster_id, head.tree_size, head.root_hash)):
            raise ForgedHeadError(f"{e} (n{head.node_id}) signed its tree head with a key other than the one it sent",
                                  check="pin", node=e)
        if cluster_id is not None and cluster_id != head.cluster_id:
            raise TrustError(f"nodes disagree on the cluster ID: {cluster_id.hex()} and {head.cluster_id.hex()} "
                             f"(n{head.node_id} at {e})", check="pin", node=e)
        cluster_id = head.cluster_id
        if any(m.node_id == head.node_id for m in members):
            raise TrustError(f"two endpoints answered as n{head.node_id}; check the configuration", check="pin")
        if any(m.public_key == head.public_key for m in members):
            raise TrustError(f"n{head.node_id} at {e} presents the key of another member (a copied node.key?)",
                             check="pin", node=e)
        members.append(MemberKey(head.node_id, head.public_key))
    if cluster_id is None:
        raise TrustError("cannot pin: no node answered", check="pin")
    if require_all:
        try:
            listed = call.client.members(timeout=call.left())
        except FaunaError as err:
            raise TrustError(f"cannot pin on first use: no node lists the members ({err})", check="pin") from err
        missing = [m.name for m in listed if not any(k.node_id == m.node_id for k in members)]
        if missing:
            raise TrustError(
                f"cannot pin on first use: the cluster lists {len(listed)} members but only {len(members)} are configured "
                f"here (missing {', '.join(missing)}); a quorum of a partial set proves nothing. Configure every member, "
                "or pin keys from a file", check="pin")
    return TrustedCluster(cluster_name, cluster_id, tuple(sorted(members, key=lambda m: m.node_id)))


def _load_or_pin(call: _Call, trusted_path: str | None, cluster_name: str | None
                 ) -> tuple[TrustStore, TrustedCluster, bool]:
    """The trusted state from trusted.json (`trusted_path`, default that of the cluster's name
    as fctl's), or pinned now (not yet saved) if the file does not exist. (store, trust, pinned)."""
    name = cluster_name or call.client.cluster_name or "default"
    store = TrustStore(trusted_path or default_path(name))
    trust = store.load()
    if trust is not None:
        return store, trust, False
    return store, _pin_members(call, name), True


def _prove_head(call: _Call, node: Endpoint, current: audit.SignedTreeHead1, covering: int, trust: TrustedCluster,
                root_for_size: Callable[[int], tuple[bytes, tuple[bytes, ...]]]
                ) -> tuple[int, bytes, tuple[bytes, ...], HeadQuorum, TrustedCluster]:
    """docs/AUDIT.md §10 steps 3-5 (fctl's proveHead): the size (the node's applied size, at
    least `covering` and the trusted size), the root `root_for_size` computes for it, a quorum
    of signatures over exactly that head, and consistency with the trusted head. Returns
    (size, root, path, quorum, trusted state after)."""
    if current.cluster_id != trust.cluster_id:
        raise TrustError(f"{node} is in cluster {current.cluster_id.hex()}, want the trusted {trust.cluster_id.hex()} "
                         "(a cluster created anew is another cluster: trust it anew)", check="cluster", node=node)
    size = max(current.tree_size, covering)
    if size < trust.tree_size:
        # The node is behind what we trust, or the cluster lost history: give it a moment.
        size = trust.tree_size
        try:
            _signed_head(call, node, size, BEHIND_WAIT_S)
        except FaunaError as err:
            statuses = call.client.status_all(timeout=call.left())
            largest = max((s.tree_size for s in statuses.values() if isinstance(s, NodeStatus)), default=current.tree_size)
            if largest < size:
                raise RollbackError(
                    f"rollback: the trusted tree has {trust.tree_size} entries but no node has more than {largest}: "
                    "the cluster's history was rolled back (restored from an older backup?)", check="rollback",
                    node=node) from None
            raise Behind(11, f"{node} is behind the trusted tree size {size}: ask another node", endpoint=node) from err
    root, path = root_for_size(size)
    quorum = quorum_for(size, root, _signed_heads(call, size, BEHIND_WAIT_S), trust, node)
    older = trust.tree_size
    consistency: tuple[bytes, ...] = ()
    if older != 0 and older != size:
        proof = audit.decode_proof(call.ask(node, Kind.CONSISTENCY_PROOF, audit.encode_consistency_proof_request(older, size),
                                            Kind.CONSISTENCY_PROOF_RESPONSE), "consistencyProofResponse")
        if (proof.first, proof.second) != (older, size):
            raise LyingNodeError(f"{node} sent a consistency proof from {proof.first} to {proof.second}, want {older} to {size}",
                                 check="consistency", node=node)
        consistency = proof.path
    after = advance(trust, size, root, consistency, node)
    return size, root, path, quorum, after


def _drop_removed_members(call: _Call, node: Endpoint, trust: TrustedCluster) -> tuple[TrustedCluster, list[str]]:
    """docs/AUDIT.md §9 "Removals are leaves": drops the pinned key of every member whose removal
    is committed up to the trusted head, each entry proven by its inclusion in that head."""
    size = trust.tree_size
    if size <= trust.membership_checked_size:
        return trust, []
    indexes = audit.decode_membership_changes(call.ask(node, Kind.MEMBERSHIP_CHANGES,
                                                       audit.encode_membership_changes_request(trust.membership_checked_size),
                                                       Kind.MEMBERSHIP_CHANGES_RESPONSE))
    members = list(trust.members)
    removed: list[str] = []
    for index in indexes:
        if not trust.membership_checked_size < index <= size:
            continue
        entry = _entry_proof(call, node, index, b"").entry
        path = _inclusion(call, node, index - 1, size)
        try:
            if entry.index != index or entry.type != ENTRY_CONF_CHANGE:
                raise ProtocolError("not a configuration change")
            change = decode_conf_change(entry.payload)
        except ProtocolError:
            raise LyingNodeError(f"{node} named entry {index} as a membership change; it is not one",
                                 check="membership", node=node) from None
        try:
            merkle.verify_inclusion(index - 1, size, entry.leaf_hash(), path, trust.root_hash)
        except merkle.MerkleProofError as e:
            raise LyingNodeError(f"membership change {index} from {node} is not in the trusted tree of size {size}: {e}",
                                 check="membership", node=node) from None
        if change.kind == CONF_REMOVE and any(m.node_id == change.node_id for m in members):
            members = [m for m in members if m.node_id != change.node_id]
            removed.append(f"n{change.node_id}")
    return replace(trust, members=tuple(members), membership_checked_size=size), removed


# --- verified reads and heads --------------------------------------------------------------------

@dataclass(frozen=True)
class VerifiedRecord(Record):
    """A `Record` (key, value, create_revision, mod_revision, version) and everything that
    proves it: what `fctl get --verify` prints, and a proof file (`proof_file()`)."""

    entry: JournalEntry
    effect: EffectProof | None
    written_by: str  # "put", "txn (then branch)", …; v1: "…; effect not proven (leaf v1)"
    tree_size: int
    root_hash: bytes
    inclusion_path: tuple[bytes, ...]
    signatures: tuple[tuple[bytes, bytes], ...]
    signers: tuple[str, ...]
    served_by: Endpoint
    trust: TrustedCluster  # after this read (saved)
    trusted_size_before: int
    removed_members: tuple[str, ...]
    pinned: bool  # keys pinned on first use by this read
    trusted_path: str

    @property
    def leaf_index(self) -> int:
        return self.entry.index - 1

    def proof_file(self) -> ProofFile:
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


def verified_get(client: Client, key: bytes, *, revision: int | None = None, endpoint: EndpointLike | None = None,
                 trusted_path: str | None = None, cluster_name: str | None = None,
                 timeout: float | None = None) -> VerifiedRecord | None:
    """A verified read (docs/AUDIT.md §10; `fctl get KEY --verify`; what `client.get(key,
    verify=True, ...)` calls): reads `key` (as of `revision`, or now) on `endpoint` (the leader
    if None) and proves it. Returns None if the key does not exist — absence is not proven.

    The trusted state is trusted.json at `trusted_path`, by default fctl's for the cluster's
    name (`cluster_name`, else the client's from its cluster.toml, else "default"):
    ~/.config/fauna/<name>/trusted.json. If it does not exist the members' keys are pinned on
    first use; the advanced state is saved. `timeout` bounds the whole read (default: the
    client's `config.timeout`). Raises LyingNodeError, ForgedHeadError, RollbackError, ForkError
    or TrustError if a check fails, and the client's errors if the cluster cannot answer."""
    call = _Call(client, timeout)
    store, trust, pinned = _load_or_pin(call, trusted_path, cluster_name)
    node = client.find_leader(timeout=call.left()) if endpoint is None else Endpoint.of(endpoint)
    record = client.get(key, revision=revision, endpoint=node, timeout=call.left())
    if record is None:
        return None
    key = record.key
    if revision and record.mod_revision > revision:
        raise LyingNodeError(f"{node} answered a read as of revision {revision} with a record written at {record.mod_revision}",
                             check="revision", node=node)
    m = record.mod_revision
    proof = _entry_proof(call, node, m, key)
    current = _signed_head(call, node, None)
    written_by = check_record(proof.entry, proof.effect, key, record.value, m, node)

    def root_for_size(size: int) -> tuple[bytes, tuple[bytes, ...]]:
        path = _inclusion(call, node, m - 1, size)
        try:
            return merkle.root_from_inclusion(m - 1, size, proof.entry.leaf_hash(), path), path
        except merkle.MerkleProofError as e:
            raise LyingNodeError(f"inclusion proof of entry {m} in tree size {size} from {node}: {e}",
                                 check="inclusion", node=node) from None

    size, root, path, quorum, after = _prove_head(call, node, current, m, trust, root_for_size)
    after, removed = _drop_removed_members(call, node, after)
    saved = store.save(after)
    return VerifiedRecord(key, record.value, record.create_revision, m, record.version, proof.entry, proof.effect,
                          written_by, size, root, path, quorum.signatures, quorum.signers, node, saved, trust.tree_size,
                          tuple(removed), pinned, store.path)


async def verified_get_async(client: AsyncClient, key: bytes, *, revision: int | None = None,
                             endpoint: EndpointLike | None = None, trusted_path: str | None = None,
                             cluster_name: str | None = None, timeout: float | None = None) -> VerifiedRecord | None:
    """`verified_get` for an AsyncClient (what `await client.get(key, verify=True)` calls).

    The checks are blocking (a dozen requests, Ed25519, an flock on trusted.json), so they run
    in a worker thread (`asyncio.to_thread`) on the blocking twin of `client`: a `fauna.Client`
    of the same endpoints, config and cluster name, opened on first use and closed with
    `client`. Cancelling the await does not stop the worker; it ends by `timeout`."""
    twin = client.blocking_twin()
    return await asyncio.to_thread(verified_get, twin, key, revision=revision, endpoint=endpoint,
                                   trusted_path=trusted_path, cluster_name=cluster_name, timeout=timeout)


@dataclass(frozen=True)
class VerifiedHead:
    tree_size: int
    root_hash: bytes
    signers: tuple[str, ...]
    served_by: Endpoint
    trust: TrustedCluster
    trusted_size_before: int
    removed_members: tuple[str, ...]
    pinned: bool


def verify_head(client: Client, *, endpoint: EndpointLike | None = None, trusted_path: str | None = None,
                cluster_name: str | None = None, timeout: float | None = None) -> VerifiedHead:
    """`fctl verify`: advances the trusted state to `endpoint`'s current head (the leader's if
    None) — signed by a quorum of pinned keys and consistent with the trusted head — and saves
    it. The cheap check to run now and then: a fork or rollback shows here. Arguments as
    `verified_get`'s."""
    call = _Call(client, timeout)
    store, trust, pinned = _load_or_pin(call, trusted_path, cluster_name)
    node = client.find_leader(timeout=call.left()) if endpoint is None else Endpoint.of(endpoint)
    current = _signed_head(call, node, None)

    def root_for_size(size: int) -> tuple[bytes, tuple[bytes, ...]]:
        return _signed_head(call, node, size, BEHIND_WAIT_S).root_hash, ()

    size, root, _, quorum, after = _prove_head(call, node, current, 0, trust, root_for_size)
    after, removed = _drop_removed_members(call, node, after)
    saved = store.save(after)
    return VerifiedHead(size, root, quorum.signers, node, saved, trust.tree_size, tuple(removed), pinned)
