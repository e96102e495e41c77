"""Fauna's Python client (docs/PROTOCOL.md, docs/KV-COMMANDS.md, docs/AUDIT.md).

    import fauna
    with fauna.Client.from_config("cluster.toml") as c:
        c.put(b"k", b"v")
        c.get(b"k")                 # a fauna.Record, or None
        c.get(b"k", verify=True)    # a fauna.VerifiedRecord, proven (docs/AUDIT.md §10)

`fauna.AsyncClient` (`fauna.aio`) is the asyncio twin. TLS: `tls=fauna.TLSConfig(ca=...)`, or
`[tls]` of the cluster.toml with `from_config` (`fauna.tls`). Modules: `fauna.wire` (the client
messages), `fauna.audit` (the audit messages), `fauna.verify` (verified reads), `fauna.proof`
(proof files), `fauna.trust` (trusted.json), `fauna.merkle`, `fauna.entry`; `fauna.cli` is the
`fauna` command (`fauna verify-proof`).
"""
from __future__ import annotations

from ._core import CompactResult, DeleteResult, PutResult, TxnResult
from .aio import AsyncClient
from .client import Client
from .config import ClientConfig, ClusterFile, NodeConfig, TLSFiles, load_cluster_file
from .errors import (
    AuthFailed, AuthRequired, PermissionDenied, Behind, ClientClosed, Compacted, ConnectionFailed, ConnectionLost, DeadlineExceeded, FaunaError, ForgedHeadError,
    ForkError, FutureRevision, InternalError, InvalidArgument, InvalidProof, InvalidRequest, LeaseNotFound, LyingNodeError, NotLeader,
    Overloaded, PeerRejected, ProtocolError, RequestTimeout, RollbackError, ServerError, SessionExpired, Timeout,
    TLSError, TLSHandshakeError, TLSRequired, TooManyInFlight, TrustError, TrustFileError, Unavailable, Unsupported,
    VerificationError,
)
from .tls import TLSConfig
from .verify import VerifiedHead, VerifiedRecord, verified_get, verified_get_async, verify_head
from .wire import (
    ApplyResult, Compare, CompareOp, Compact, DeleteOpResult, DeleteRange, Endpoint, HashKVResult, KeyRange, LeaseGrant,
    LeaseOpResult, LeaseRevoke, Member,
    NodeStatus, Put, PutOpResult, RangeRequest, RangeResult, Record, Target, Txn, create_revision, mod_revision,
    value, version,
)

__version__ = "0.1.0"


def txn_get(key: bytes) -> RangeRequest:
    """A txn operation reading one key."""
    return RangeRequest(KeyRange.single(key))


def txn_range(start: bytes, end: bytes | None = None, *, prefix: bool = False, limit: int | None = None) -> RangeRequest:
    """A txn operation reading [start, end) (to the last key without end), or the prefix `start`."""
    return RangeRequest(KeyRange.prefix(start) if prefix else KeyRange.between(start, end), limit)


def txn_delete(key: bytes, *, prefix: bool = False, prev: bool = False) -> DeleteRange:
    """A txn operation deleting one key, or every key with the prefix `key`."""
    return DeleteRange(KeyRange.prefix(key) if prefix else KeyRange.single(key), prev)


__all__ = [
    "Client", "AsyncClient", "ClientConfig", "ClusterFile", "NodeConfig", "load_cluster_file",
    "TLSConfig", "TLSFiles", "TLSError", "TLSHandshakeError", "TLSRequired", "AuthFailed", "AuthRequired", "PermissionDenied",
    "PutResult", "DeleteResult", "TxnResult", "CompactResult", "ApplyResult", "Record", "RangeResult",
    "PutOpResult", "DeleteOpResult", "NodeStatus", "Member", "HashKVResult", "Endpoint", "KeyRange",
    "Put", "DeleteRange", "RangeRequest", "Txn", "Compact", "Compare", "Target", "CompareOp",
    "value", "version", "create_revision", "mod_revision", "txn_get", "txn_range", "txn_delete",
    "FaunaError", "ServerError", "NotLeader", "Unavailable", "Overloaded", "Timeout", "Compacted",
    "FutureRevision", "InvalidRequest", "InternalError", "PeerRejected", "Unsupported", "Behind", "LeaseNotFound",
    "LeaseGrant", "LeaseRevoke", "LeaseOpResult",
    "ConnectionFailed", "ConnectionLost", "RequestTimeout", "TooManyInFlight", "DeadlineExceeded",
    "SessionExpired", "ClientClosed", "InvalidArgument", "ProtocolError", "VerificationError",
    "LyingNodeError", "ForgedHeadError", "RollbackError", "ForkError", "TrustError", "InvalidProof", "TrustFileError",
    "verified_get", "verified_get_async", "verify_head", "VerifiedRecord", "VerifiedHead",
]
