"""RFC 9162 tree hash, inclusion and consistency proofs (fauna.merkle), against the worked
example of docs/AUDIT.md §12, the recursive definitions, and every edge the doc names."""
from __future__ import annotations

import hashlib
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit_doc import public, worked_example
from fauna import merkle
from fauna.entry import JournalEntry
from fauna.merkle import MerkleProofError
from fauna.verify import tree_head_bytes

EXAMPLE = worked_example()
RNG = random.Random(9162)


def leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(b"leaf %d" % i).digest() for i in range(n)]


def flip(h: bytes, bit: int = 0) -> bytes:
    return h[:bit // 8] + bytes([h[bit // 8] ^ (1 << (bit % 8))]) + h[bit // 8 + 1:]


# --- the worked example, values parsed from docs/AUDIT.md -----------------------------------------

def test_worked_example_leaves_hash_as_documented() -> None:
    assert [leaf.version for leaf in EXAMPLE.leaves] == ["v1", "v1", "v2", "v2", "v2"]
    for leaf in EXAMPLE.leaves:
        entry = JournalEntry(leaf.index, leaf.term, leaf.type, leaf.payload, leaf.effects)
        assert entry.leaf_data() == leaf.leaf_data, leaf.index
        assert entry.leaf_hash() == leaf.leaf_hash, leaf.index


def test_worked_example_roots_at_every_size() -> None:
    hashes = [leaf.leaf_hash for leaf in EXAMPLE.leaves]
    assert sorted(EXAMPLE.roots) == [1, 2, 3, 4, 5]
    for size, want in EXAMPLE.roots.items():
        assert merkle.root(hashes[:size]) == want, size
    assert merkle.root([]) == merkle.EMPTY_ROOT == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def test_worked_example_inclusion_proof() -> None:
    leaf_index, size, path = EXAMPLE.inclusion
    hashes = [leaf.leaf_hash for leaf in EXAMPLE.leaves]
    assert merkle.inclusion_path(hashes[:size], leaf_index) == path
    merkle.verify_inclusion(leaf_index, size, hashes[leaf_index], path, EXAMPLE.roots[size])
    with pytest.raises(MerkleProofError) as e:
        merkle.verify_inclusion(leaf_index, size, hashes[leaf_index], path, EXAMPLE.roots[size - 1])
    assert e.value.code == "rootMismatch"


def test_worked_example_consistency_proof() -> None:
    old, new, path = EXAMPLE.consistency
    hashes = [leaf.leaf_hash for leaf in EXAMPLE.leaves]
    assert merkle.consistency_path(hashes[:new], old) == path
    merkle.verify_consistency(old, new, EXAMPLE.roots[old], EXAMPLE.roots[new], path)
    with pytest.raises(MerkleProofError) as e:
        merkle.verify_consistency(old, new, EXAMPLE.roots[old], EXAMPLE.roots[new], [path[0], path[1], path[3], path[2]])
    assert e.value.code in ("oldRootMismatch", "rootMismatch")


def test_worked_example_tree_head_and_signature() -> None:
    size = max(EXAMPLE.roots)
    message = tree_head_bytes(EXAMPLE.cluster_id, size, EXAMPLE.roots[size])
    assert message == EXAMPLE.canonical and len(message) == 72
    key = Ed25519PrivateKey.from_private_bytes(EXAMPLE.seed)
    assert public(key) == EXAMPLE.public_key
    assert key.sign(message) == EXAMPLE.signature  # RFC 8032 signatures are deterministic
    Ed25519PublicKey.from_public_bytes(EXAMPLE.public_key).verify(EXAMPLE.signature, message)


# --- RFC 9162 vectors (the certificate-transparency test leaves) -----------------------------------

CT_LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43", bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
CT_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


def test_ct_reference_roots() -> None:
    hashes = [merkle.leaf_hash(d) for d in CT_LEAVES]
    for size, want in CT_ROOTS.items():
        assert merkle.root(hashes[:size]).hex() == want, size


# --- inclusion: every leaf of every size up to 40, and the edges ------------------------------------

@pytest.mark.parametrize("size", range(1, 41))
def test_inclusion_every_leaf(size: int) -> None:
    hs = leaves(size)
    r = merkle.root(hs)
    for i in range(size):
        path = merkle.inclusion_path(hs, i)
        assert len(path) == merkle.inclusion_path_length(i, size)
        assert merkle.root_from_inclusion(i, size, hs[i], path) == r
        # another leaf, another index, a flipped hash: never the root
        if size > 1:
            assert merkle.root_from_inclusion(i, size, hs[(i + 1) % size], path) != r
        for j in range(len(path)):
            bad = list(path)
            bad[j] = flip(bad[j], RNG.randrange(256))
            with pytest.raises(MerkleProofError) as e:
                merkle.verify_inclusion(i, size, hs[i], bad, r)
            assert e.value.code == "rootMismatch"
        with pytest.raises(MerkleProofError) as e:
            merkle.root_from_inclusion(i, size, hs[i], path + [r])
        assert e.value.code == "pathLengthMismatch" and "too long" in e.value.reason
        if path:
            with pytest.raises(MerkleProofError) as e:
                merkle.root_from_inclusion(i, size, hs[i], path[:-1])
            assert e.value.code == "pathLengthMismatch" and "too short" in e.value.reason


def test_inclusion_edges() -> None:
    h = leaves(1)[0]
    # size 0: no leaf is in the empty tree
    with pytest.raises(MerkleProofError) as e:
        merkle.root_from_inclusion(0, 0, h, [])
    assert e.value.code == "leafIndexOutOfRange"
    # size 1: the leaf is the root, the path is empty
    assert merkle.root_from_inclusion(0, 1, h, []) == h
    # index = size, index > size
    for i, n in ((5, 5), (9, 5), (2**64 - 1, 2**64 - 1)):
        with pytest.raises(MerkleProofError) as e:
            merkle.root_from_inclusion(i, n, h, [])
        assert e.value.code == "leafIndexOutOfRange"
    # a path hash of the wrong length is refused, not hashed
    with pytest.raises(MerkleProofError):
        merkle.root_from_inclusion(0, 2, h, [b"\x00" * 31])
    # the last leaf of a huge tree: the path length follows the formula
    assert merkle.inclusion_path_length(2**64 - 2, 2**64 - 1) == 63
    assert merkle.inclusion_path_length(0, 2**63 + 1) == 64


def test_inclusion_path_fits_only_its_size() -> None:
    """docs/AUDIT.md §3 step 4: a path can fit more than one size; the root fixes it."""
    hs = leaves(8)
    path = merkle.inclusion_path(hs[:6], 4)
    assert merkle.root_from_inclusion(4, 6, hs[4], path) == merkle.root(hs[:6])
    with pytest.raises(MerkleProofError):
        merkle.verify_inclusion(4, 7, hs[4], path, merkle.root(hs[:7]))


# --- consistency: every pair of sizes up to 40, and the edges ---------------------------------------

@pytest.mark.parametrize("new", range(0, 41))
def test_consistency_every_old_size(new: int) -> None:
    hs = leaves(new)
    new_root = merkle.root(hs)
    for old in range(0, new + 1):
        old_root = merkle.root(hs[:old])
        path = merkle.consistency_path(hs, old)
        assert len(path) == merkle.consistency_path_length(old, new), (old, new)
        merkle.verify_consistency(old, new, old_root, new_root, path)
        for j in range(len(path)):
            bad = list(path)
            bad[j] = flip(bad[j], RNG.randrange(256))
            with pytest.raises(MerkleProofError) as e:
                merkle.verify_consistency(old, new, old_root, new_root, bad)
            assert e.value.code in ("oldRootMismatch", "rootMismatch")
        if 0 < old < new:
            with pytest.raises(MerkleProofError) as e:
                merkle.verify_consistency(old, new, flip(old_root), new_root, path)
            assert e.value.code in ("oldRootMismatch", "rootMismatch")
            with pytest.raises(MerkleProofError) as e:
                merkle.verify_consistency(old, new, old_root, flip(new_root), path)
            assert e.value.code == "rootMismatch"
            with pytest.raises(MerkleProofError) as e:
                merkle.verify_consistency(old, new, old_root, new_root, path[:-1])
            assert e.value.code == "pathLengthMismatch"


def test_consistency_old_size_power_of_two() -> None:
    """The old tree is itself the first node: its root is not in the path (RFC 9162 step 2)."""
    hs = leaves(13)
    for old in (1, 2, 4, 8):
        path = merkle.consistency_path(hs, old)
        assert merkle.root(hs[:old]) not in path
        merkle.verify_consistency(old, 13, merkle.root(hs[:old]), merkle.root(hs), path)
        # a wrong old root of a power-of-2 tree seeds the new root's computation: caught there
        with pytest.raises(MerkleProofError) as e:
            merkle.verify_consistency(old, 13, flip(merkle.root(hs[:old])), merkle.root(hs), path)
        assert e.value.code == "rootMismatch"
    assert merkle.consistency_path_length(4, 8) == 1 and merkle.consistency_path_length(3, 8) == 4


def test_consistency_edges() -> None:
    hs = leaves(6)
    r6 = merkle.root(hs)
    # old > new: a tree never shrinks
    with pytest.raises(MerkleProofError) as e:
        merkle.verify_consistency(6, 5, r6, merkle.root(hs[:5]), [])
    assert e.value.code == "sizeOrder"
    # equal sizes: empty path and the same root
    merkle.verify_consistency(6, 6, r6, r6, [])
    with pytest.raises(MerkleProofError) as e:
        merkle.verify_consistency(6, 6, r6, flip(r6), [])
    assert e.value.code == "rootMismatch"
    with pytest.raises(MerkleProofError) as e:
        merkle.verify_consistency(6, 6, r6, r6, [r6])
    assert e.value.code == "pathLengthMismatch"
    # old size 0: every tree extends the empty tree, whose root must be H()
    merkle.verify_consistency(0, 6, merkle.EMPTY_ROOT, r6, [])
    merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    with pytest.raises(MerkleProofError) as e:
        merkle.verify_consistency(0, 6, r6, r6, [])
    assert e.value.code == "oldRootMismatch"
    with pytest.raises(MerkleProofError) as e:
        merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, r6, [])
    assert e.value.code == "rootMismatch"
    with pytest.raises(MerkleProofError) as e:
        merkle.verify_consistency(0, 6, merkle.EMPTY_ROOT, r6, [r6])
    assert e.value.code == "pathLengthMismatch"
    # size 1 to 2: the path is the second leaf
    merkle.verify_consistency(1, 2, hs[0], merkle.root(hs[:2]), [hs[1]])


def test_consistency_path_length_formula_large_sizes() -> None:
    """The doc's closed form agrees with the recursive proof at sizes around powers of two."""
    for new in (2**10 - 1, 2**10, 2**10 + 1, 1500):
        hs = leaves(new)
        for old in (1, 2, 3, 511, 512, 513, 1000, new - 1):
            if old < new:
                assert merkle.consistency_path_length(old, new) == len(merkle.consistency_path(hs, old)), (old, new)
