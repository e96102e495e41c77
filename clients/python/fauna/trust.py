"""The client's trusted state, `trusted.json` ("fauna-trust-v1", docs/AUDIT.md §6 and §9), read
and written exactly as `fctl` does (Sources/FaunaClient/TrustStore.swift), so that both can
share one file: written aside, fsynced, renamed over the old file (then the directory fsynced);
every update takes an exclusive flock on `trusted.json.lock`, reads the file again and merges,
so that the trusted head never moves back and a dropped member stays dropped.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
from dataclasses import dataclass, replace

from .errors import ForkError, TrustFileError
from .merkle import EMPTY_ROOT, U64_MAX

FORMAT = "fauna-trust-v1"
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_NODE = re.compile(r"n([1-9][0-9]*)")


@dataclass(frozen=True)
class MemberKey:
    node_id: int
    public_key: bytes  # 32-byte Ed25519 public key

    @property
    def name(self) -> str:
        return f"n{self.node_id}"


@dataclass(frozen=True)
class TrustedCluster:
    """What a client trusts about one cluster: its ID, its members' keys, its last verified head."""

    name: str
    cluster_id: bytes
    members: tuple[MemberKey, ...]
    tree_size: int = 0
    root_hash: bytes = EMPTY_ROOT
    membership_checked_size: int = 0

    @property
    def quorum(self) -> int:
        """Signatures a head needs: more than half of the pinned keys."""
        return len(self.members) // 2 + 1

    @property
    def keys(self) -> list[bytes]:
        return [m.public_key for m in self.members]

    def member_with_key(self, key: bytes) -> MemberKey | None:
        return next((m for m in self.members if m.public_key == key), None)

    def merged(self, other: TrustedCluster) -> TrustedCluster:
        """`self` after another process saved `other`: the larger head, the members both still
        pin. Another cluster in `other` is replaced. Raises ForkError for two roots of one size."""
        if other.cluster_id != self.cluster_id:
            return self
        if other.tree_size == self.tree_size and other.root_hash != self.root_hash:
            raise ForkError(
                f"fork: the trusted state was advanced by another process to root {other.root_hash.hex()} "
                f"for tree size {self.tree_size}, this one verified {self.root_hash.hex()}", check="trusted state")
        out = self
        if other.tree_size > self.tree_size:
            out = replace(out, tree_size=other.tree_size, root_hash=other.root_hash)
        return replace(out, members=tuple(m for m in self.members if m in other.members),
                       membership_checked_size=max(self.membership_checked_size, other.membership_checked_size))


def default_path(cluster_name: str) -> str:
    """~/.config/fauna/<cluster>/trusted.json ($XDG_CONFIG_HOME if set and not empty)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.environ.get("HOME") or os.path.expanduser("~"), ".config")
    return os.path.join(base, "fauna", cluster_name, "trusted.json")


def _hex(value: object, size: int | None, what: str) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value) or (size is not None and len(value) != 2 * size):
        want = f"{2 * size} lowercase hex digits" if size else "lowercase hex"
        raise TrustFileError(f"{what}: want {want}")
    return bytes.fromhex(value)


def _u64(value: object, what: str) -> int:
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value) or int(value) > U64_MAX:
        raise TrustFileError(f"{what}: want a decimal string")
    return int(value)


def parse_members(value: object) -> tuple[MemberKey, ...]:
    """Member keys from `[{"nodeID": "n1", "publicKey": "<64 hex>"}, ...]` (the `members` of
    trusted.json, `fctl members --json`, `fctl trust init --keys FILE`)."""
    if isinstance(value, dict) and "members" in value:
        value = value["members"]
    if not isinstance(value, list) or not value:
        raise TrustFileError("members: want a non-empty array")
    out: list[MemberKey] = []
    for item in value:
        if not isinstance(item, dict):
            raise TrustFileError("members: want objects")
        name = item.get("nodeID")
        m = _NODE.fullmatch(name) if isinstance(name, str) else None
        if m is None or int(m.group(1)) > U64_MAX:
            raise TrustFileError("members: nodeID: want n<number>")
        key = _hex(item.get("publicKey"), 32, f"members: {name}: publicKey")
        node_id = int(m.group(1))
        if any(o.node_id == node_id or o.public_key == key for o in out):
            raise TrustFileError(f"members: {name} or its key appears twice")
        out.append(MemberKey(node_id, key))
    return tuple(out)


def decode(data: bytes) -> TrustedCluster:
    """Parses trusted.json; TrustFileError naming the field if it is not one."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise TrustFileError(f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise TrustFileError("not a JSON object")
    if doc.get("format") != FORMAT:
        raise TrustFileError(f'format: want "{FORMAT}"')
    name = doc.get("cluster", "")
    if not isinstance(name, str):
        name = ""
    checked = doc.get("membershipCheckedSize")
    return TrustedCluster(
        name=name,
        cluster_id=_hex(doc.get("clusterID"), 16, "clusterID"),
        members=parse_members(doc.get("members")),
        tree_size=_u64(doc.get("treeSize"), "treeSize"),
        root_hash=_hex(doc.get("rootHash"), 32, "rootHash"),
        # Absent in files written before removals were tracked: checked from the start.
        membership_checked_size=0 if checked is None else _u64(checked, "membershipCheckedSize"),
    )


def encode(trust: TrustedCluster) -> bytes:
    """The file's bytes, laid out as fctl writes them (sorted keys, two-space indent, " : ")."""
    obj = {
        "format": FORMAT,
        "cluster": trust.name,
        "clusterID": trust.cluster_id.hex(),
        "members": [{"nodeID": m.name, "publicKey": m.public_key.hex()} for m in trust.members],
        "treeSize": str(trust.tree_size),
        "rootHash": trust.root_hash.hex(),
        "membershipCheckedSize": str(trust.membership_checked_size),
    }
    return (json.dumps(obj, indent=2, sort_keys=True, separators=(",", " : "), ensure_ascii=False) + "\n").encode()


@dataclass
class TrustStore:
    """trusted.json at `path`."""

    path: str

    @classmethod
    def for_cluster(cls, cluster_name: str) -> TrustStore:
        return cls(default_path(cluster_name))

    def load(self) -> TrustedCluster | None:
        """The trusted state, or None if the file does not exist."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise TrustFileError(f"cannot read {self.path}: {e.strerror}") from None
        try:
            return decode(data)
        except TrustFileError as e:
            raise TrustFileError(f"{self.path}: {e}") from None

    def save(self, trust: TrustedCluster, replacing: bool = False) -> TrustedCluster:
        """Saves `trust` merged with what another process saved meanwhile (under the lock the
        file is read again and the larger head kept); with `replacing` (`trust init`) as it is.
        Returns what was written."""
        directory = os.path.dirname(self.path) or "."
        try:
            os.makedirs(directory, exist_ok=True)
            lock = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise TrustFileError(f"cannot create {self.path}.lock: {e.strerror}") from None
        try:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    break
                except OSError as e:
                    if e.errno != errno.EINTR:
                        raise TrustFileError(f"flock {self.path}.lock: {e.strerror}") from None
            merged = trust
            if not replacing:
                current = self.load()
                if current is not None:
                    merged = trust.merged(current)
            self._write(encode(merged))
            return merged
        finally:
            os.close(lock)  # releases the lock

    def _write(self, data: bytes) -> None:
        temporary = f"{self.path}.tmp.{os.getpid()}"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temporary, self.path)
            dfd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise TrustFileError(f"cannot write {self.path}: {e.strerror}") from None
