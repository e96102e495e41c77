"""RFC 9162 Merkle trees with SHA-256 (docs/AUDIT.md §2-§4), written from the RFC and the doc.

Hashes are 32-byte `bytes`. Verification functions raise `MerkleProofError` (a ValueError)
whose `code` names the failed check, with Fauna's codes (Sources/FaunaVerify):
`leafIndexOutOfRange`, `pathLengthMismatch`, `rootMismatch`, `oldRootMismatch`, `sizeOrder`.

`root`, `inclusion_path` and `consistency_path` build proofs from leaf hashes by the recursive
definitions of RFC 9162 §2.1.1-§2.1.4; they are the reference the verifiers are tested against
and what a test uses to make proofs.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = H()
U64_MAX = (1 << 64) - 1


class MerkleProofError(ValueError):
    """A proof that does not verify; `code` says which check failed."""

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(leaf_data: bytes) -> bytes:
    """H(0x00 ‖ leafData): RFC 9162's leaf hash (a v1 leaf, and an effect leaf)."""
    return hashlib.sha256(b"\x00" + leaf_data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """H(0x01 ‖ left ‖ right): an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of 2 below n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of the leaves whose hashes are given (RFC 9162 §2.1.1)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root(leaf_hashes[:k]), root(leaf_hashes[k:]))


def inclusion_path(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 9162 §2.1.3.1."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ValueError(f"leaf {index} is not in a tree of {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return inclusion_path(leaf_hashes[:k], index) + [root(leaf_hashes[k:])]
    return inclusion_path(leaf_hashes[k:], index - k) + [root(leaf_hashes[:k])]


def consistency_path(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1; empty for m = 0 and m = n (docs/AUDIT.md §4)."""
    n = len(leaf_hashes)
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} is not in 0...{n}")
    if old_size in (0, n):
        return []

    def subproof(m: int, d: Sequence[bytes], whole: bool) -> list[bytes]:
        if m == len(d):
            return [] if whole else [root(d)]
        k = _split(len(d))
        if m <= k:
            return subproof(m, d[:k], whole) + [root(d[k:])]
        return subproof(m - k, d[k:], False) + [root(d[:k])]

    return subproof(old_size, leaf_hashes, True)


def _check_hash(h: object, what: str) -> None:
    if not isinstance(h, (bytes, bytearray)) or len(h) != HASH_BYTES:
        raise MerkleProofError("pathLengthMismatch" if what.startswith("path") else "malformed",
                               f"{what}: want {HASH_BYTES} bytes")


def inclusion_path_length(leaf_index: int, tree_size: int) -> int:
    """The number of hashes in PATH(leaf_index, D[tree_size]) (docs/AUDIT.md §3 step 2)."""
    if not 0 <= leaf_index < tree_size:
        raise MerkleProofError("leafIndexOutOfRange", f"got leaf index {leaf_index}, want < tree size {tree_size}")
    inner = (leaf_index ^ (tree_size - 1)).bit_length()
    return inner + bin(leaf_index >> inner).count("1")


def root_from_inclusion(leaf_index: int, tree_size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root that `leaf` (a leaf hash) at `leaf_index` and `path` lead to in a tree of
    `tree_size` (RFC 9162 §2.1.3.2). Raises MerkleProofError for an index out of range or a
    path of the wrong length."""
    if not (0 <= leaf_index <= U64_MAX and 0 <= tree_size <= U64_MAX):
        raise MerkleProofError("leafIndexOutOfRange", f"got leaf index {leaf_index} and size {tree_size}, want u64s")
    if leaf_index >= tree_size:
        raise MerkleProofError("leafIndexOutOfRange", f"got leaf index {leaf_index}, want < tree size {tree_size}")
    want = inclusion_path_length(leaf_index, tree_size)
    if len(path) != want:
        too = "long" if len(path) > want else "short"
        raise MerkleProofError(
            "pathLengthMismatch",
            f"got an inclusion path of {len(path)} hashes, too {too} for leaf {leaf_index} of {tree_size}")
    _check_hash(leaf, "leaf hash")
    fn, sn, r = leaf_index, tree_size - 1, bytes(leaf)
    for i, p in enumerate(path):
        _check_hash(p, f"path[{i}]")
        if sn == 0:  # unreachable after the length check (RFC step 5a)
            raise MerkleProofError("pathLengthMismatch", "got hashes past the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # unreachable after the length check (RFC step 6)
        raise MerkleProofError("pathLengthMismatch", "got a path that ends below the root")
    return r


def verify_inclusion(leaf_index: int, tree_size: int, leaf: bytes, path: Sequence[bytes], expected_root: bytes) -> None:
    """Raises MerkleProofError unless `path` leads from `leaf` to `expected_root`. The size and
    the root must come from the same signed tree head (docs/AUDIT.md §3 step 4)."""
    got = root_from_inclusion(leaf_index, tree_size, leaf, path)
    if got != expected_root:
        raise MerkleProofError("rootMismatch", f"got root {got.hex()} from the proof, want {bytes(expected_root).hex()}")


def consistency_path_length(old_size: int, new_size: int) -> int:
    """The number of hashes of PROOF(old_size, D[new_size]) (docs/AUDIT.md §4)."""
    if old_size > new_size:
        raise MerkleProofError("sizeOrder", f"got old size {old_size} > new size {new_size}, want old ≤ new")
    if old_size == 0 or old_size == new_size:
        return 0
    tz = (old_size & -old_size).bit_length() - 1
    inner = ((old_size - 1) ^ (new_size - 1)).bit_length()
    seed = 0 if old_size & (old_size - 1) == 0 else 1
    return seed + inner - tz + bin((old_size - 1) >> inner).count("1")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]) -> None:
    """Raises MerkleProofError unless the tree of `old_size` with `old_root` is a prefix of the
    tree of `new_size` with `new_root` (RFC 9162 §2.1.4.2 with docs/AUDIT.md §4's edges)."""
    if not (0 <= old_size <= U64_MAX and 0 <= new_size <= U64_MAX):
        raise MerkleProofError("sizeOrder", f"got sizes {old_size} and {new_size}, want u64s")
    want = consistency_path_length(old_size, new_size)
    if len(path) != want:
        raise MerkleProofError("pathLengthMismatch", f"got {len(path)} hashes, want {want} from size {old_size} to {new_size}")
    for i, p in enumerate(path):
        _check_hash(p, f"path[{i}]")
    if old_size == 0:
        if old_root != EMPTY_ROOT:
            raise MerkleProofError("oldRootMismatch", f"got old root of the empty tree {bytes(old_root).hex()}, want {EMPTY_ROOT.hex()}")
        if new_size == 0 and new_root != EMPTY_ROOT:
            raise MerkleProofError("rootMismatch", f"got new root of the empty tree {bytes(new_root).hex()}, want {EMPTY_ROOT.hex()}")
        return
    if old_size == new_size:
        if new_root != old_root:
            raise MerkleProofError("rootMismatch", f"got root of the same size {bytes(new_root).hex()}, want {bytes(old_root).hex()}")
        return
    # RFC step 2: when the old size is a power of 2 the old tree is itself the first node.
    nodes = [bytes(old_root), *path] if old_size & (old_size - 1) == 0 else list(path)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:  # unreachable after the length check
            raise MerkleProofError("pathLengthMismatch", "got hashes past the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # unreachable after the length check
        raise MerkleProofError("pathLengthMismatch", "got a path that ends below the root")
    if fr != old_root:
        raise MerkleProofError("oldRootMismatch", f"got old root from the proof {fr.hex()}, want {bytes(old_root).hex()}")
    if sr != new_root:
        raise MerkleProofError("rootMismatch", f"got new root from the proof {sr.hex()}, want {bytes(new_root).hex()}")
