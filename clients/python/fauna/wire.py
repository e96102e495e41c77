"""Message codecs of the client port (docs/PROTOCOL.md "Kinds", "Client messages", "Admin
messages") and the KV payloads they carry (docs/KV-COMMANDS.md "Proposal", "Apply result").

Pure functions and frozen dataclasses, no I/O. Every decoder consumes its body exactly and
raises `ProtocolError` (never IndexError, struct.error or UnicodeError) on bytes that break the
documents; every encoder checks the documented limits first and raises `InvalidArgument`.

The audit messages (0x30-0x36, 0xB0-0xB6) are coded in `fauna.audit`; their kind numbers are
in `Kind` here so that one table names every frame kind, and the limits they share with the
client messages are here too.
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Union

from .codec import Reader, kvbytes, u8, u16, u32, u64, varint, vbytes, vstring
from .errors import (
    ERROR_NAMES, Compacted, FutureRevision, InvalidArgument, InvalidRequest, ProtocolError, ServerError, server_error,
)

__all__ = [
    "Kind", "ANSWER_KINDS", "REQUEST_KINDS", "ERROR_NAMES", "KEY_BYTES_MAX", "RANGE_END_BYTES_MAX",
    "VALUE_BYTES_MAX", "TXN_COMPARES_MAX", "TXN_OPERATIONS_MAX", "PROPOSAL_BYTES_MAX", "Endpoint", "KeyRange",
    "prefix_end", "Record", "RangeResult", "PutOpResult", "DeleteOpResult", "OpResult", "Outcome", "ApplyResult",
    "Put", "DeleteRange", "RangeRequest", "Compare", "Target", "CompareOp", "Txn", "Compact", "InitCluster",
    "UpgradeLeaves", "UpgradeState", "Auth", "Command", "TxnOp", "Proposal", "ReadRequest", "NodeStatus", "Member", "MemberChange",
    "HashKVResult", "ROLE_NAMES", "value", "version", "create_revision", "mod_revision",
    "decode_proposal", "decode_apply_result", "decode_range_result", "decode_read_request", "decode_error",
    "encode_error", "decode_status", "decode_members", "encode_members", "decode_member_change",
    "decode_hashkv", "apply_result_error", "check_key", "as_bytes", "read_node_id", "CHECKSUM_BYTES_MAX",
    "MESSAGE_BYTES_MAX", "PUBLIC_KEY_BYTES_MAX", "HOST_BYTES_MAX", "MEMBERS_MAX",
]


class Kind(enum.IntEnum):
    """Frame kinds (docs/PROTOCOL.md "Kinds"); bit 7 is set on answers."""
    PEER_HELLO = 0x01
    RAFT_MESSAGES = 0x02
    SNAPSHOT_OFFER = 0x03
    SNAPSHOT_CHUNK = 0x04
    PEER_WELCOME = 0x81
    SNAPSHOT_ACK = 0x83
    WRITE = 0x10
    READ = 0x11
    WRITE_RESPONSE = 0x90
    READ_RESPONSE = 0x91
    WATCH = 0x12
    WATCH_CANCEL = 0x13
    LEASE_KEEP_ALIVE = 0x14
    LEASE_TIME_TO_LIVE = 0x15
    LEASE_LIST = 0x16
    AUTHENTICATE = 0x17
    WATCH_RESPONSE = 0x92
    WATCH_CANCEL_RESPONSE = 0x93
    LEASE_KEEP_ALIVE_RESPONSE = 0x94
    LEASE_TIME_TO_LIVE_RESPONSE = 0x95
    LEASE_LIST_RESPONSE = 0x96
    AUTHENTICATE_RESPONSE = 0x97
    STATUS = 0x20
    MEMBERS = 0x21
    MEMBER_CHANGE = 0x22
    LEADER_TRANSFER = 0x23
    SNAPSHOT_SAVE = 0x24
    HASH_KV = 0x25
    STATUS_RESPONSE = 0xA0
    MEMBERS_RESPONSE = 0xA1
    LEADER_TRANSFER_RESPONSE = 0xA3
    SNAPSHOT_SAVE_CHUNK = 0xA4
    HASH_KV_RESPONSE = 0xA5
    SIGNED_TREE_HEAD = 0x30
    INCLUSION_PROOF = 0x31
    CONSISTENCY_PROOF = 0x32
    JOURNAL_ENTRY = 0x33
    STATE_DIGEST = 0x34
    ENTRY_PROOF = 0x35
    MEMBERSHIP_CHANGES = 0x36
    SIGNED_TREE_HEAD_RESPONSE = 0xB0
    INCLUSION_PROOF_RESPONSE = 0xB1
    CONSISTENCY_PROOF_RESPONSE = 0xB2
    JOURNAL_ENTRY_RESPONSE = 0xB3
    STATE_DIGEST_RESPONSE = 0xB4
    ENTRY_PROOF_RESPONSE = 0xB5
    MEMBERSHIP_CHANGES_RESPONSE = 0xB6
    ERROR = 0xFF


_KINDS = frozenset(int(k) for k in Kind)
#: Answer kinds a client may receive on the client port.
ANSWER_KINDS = frozenset(k for k in _KINDS if k & 0x80 and k not in (Kind.PEER_WELCOME, Kind.SNAPSHOT_ACK))
#: Request kinds a client may send on the client port.
REQUEST_KINDS = frozenset(k for k in _KINDS if not k & 0x80 and k > Kind.SNAPSHOT_CHUNK)

# docs/KV-COMMANDS.md "Limits".
KEY_BYTES_MAX = 4096
RANGE_END_BYTES_MAX = 4097
VALUE_BYTES_MAX = 1 << 20
TXN_COMPARES_MAX = 128
TXN_OPERATIONS_MAX = 128
PROPOSAL_BYTES_MAX = 2 << 20
RESULT_BYTES_MAX = 4 << 20
# docs/PROTOCOL.md "Limits".
HOST_BYTES_MAX = 255
MEMBERS_MAX = 1024
PUBLIC_KEY_BYTES_MAX = 256
CHECKSUM_BYTES_MAX = 64
MESSAGE_BYTES_MAX = 4096

ROLE_NAMES = {0: "follower", 1: "preCandidate", 2: "candidate", 3: "leader"}

BytesLike = Union[bytes, bytearray, memoryview]


def as_bytes(b: object, what: str) -> bytes:
    """`b` as bytes; TypeError for anything but bytes, bytearray or memoryview (a str key is
    refused rather than guessed at: encode it yourself)."""
    if isinstance(b, bytes):
        return b
    if isinstance(b, (bytearray, memoryview)):
        return bytes(b)
    raise TypeError(f"{what}: got {type(b).__name__}, want bytes, bytearray or memoryview")


def check_key(key: object, what: str = "key") -> bytes:
    """A key of 1...4096 bytes (KV-COMMANDS.md keyBytesMax)."""
    k = as_bytes(key, what)
    if not 1 <= len(k) <= KEY_BYTES_MAX:
        raise InvalidArgument(f"{what}: got {len(k)} bytes, want 1...{KEY_BYTES_MAX}")
    return k


def _check_u64(n: int, what: str, minimum: int = 0) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or not minimum <= n < 1 << 64:
        raise InvalidArgument(f"{what}: got {n!r}, want an integer {minimum}...2^64-1")
    return n


# --- addresses -------------------------------------------------------------------------------

class Endpoint(NamedTuple):
    """A node's `host:port` (PROTOCOL.md `Endpoint := string host | u16 port`)."""
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> "Endpoint":
        """`host:port` or `[v6]:port`."""
        host, sep, port = text.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise InvalidArgument(f"address {text!r}: want host:port with port 1...65535")
        return cls(host, int(port))

    @classmethod
    def of(cls, value: "Endpoint | tuple[str, int] | str") -> "Endpoint":
        if isinstance(value, str):
            return cls.parse(value)
        host, port = value
        return cls(str(host), int(port))

    def encode(self) -> bytes:
        h = self.host.encode()
        if not 1 <= len(h) <= HOST_BYTES_MAX or not 0 <= self.port <= 0xFFFF:
            raise InvalidArgument(f"endpoint {self}: host 1...{HOST_BYTES_MAX} bytes, port 0...65535")
        return vbytes(h) + u16(self.port)

    @classmethod
    def read(cls, rd: Reader) -> "Endpoint":
        host = rd.vstring(HOST_BYTES_MAX, "host")
        if not host:
            raise ProtocolError("endpoint host: got 0 bytes, want >= 1")
        return cls(host, rd.u16())


# --- key ranges ------------------------------------------------------------------------------

def prefix_end(p: bytes) -> Optional[bytes]:
    """KV-COMMANDS.md prefixEnd: the last byte below 0xFF incremented, what follows cut; None
    (to the last key) if every byte is 0xFF or `p` is empty."""
    b = bytearray(p)
    while b and b[-1] == 0xFF:
        b.pop()
    if not b:
        return None
    b[-1] += 1
    return bytes(b)


@dataclass(frozen=True)
class KeyRange:
    """[start, end); `end` None means to the last key (KV-COMMANDS.md keyRange)."""
    start: bytes
    end: Optional[bytes] = None

    @classmethod
    def single(cls, key: BytesLike) -> "KeyRange":
        k = as_bytes(key, "key")
        return cls(k, k + b"\x00")

    @classmethod
    def prefix(cls, p: BytesLike) -> "KeyRange":
        b = as_bytes(p, "prefix")
        return cls(b, prefix_end(b))

    @classmethod
    def between(cls, start: BytesLike, end: Optional[BytesLike]) -> "KeyRange":
        return cls(as_bytes(start, "range start"), None if end is None else as_bytes(end, "range end"))

    def validate(self, what: str) -> None:
        if len(self.start) > KEY_BYTES_MAX:
            raise InvalidArgument(f"{what} start: got {len(self.start)} bytes, want <= {KEY_BYTES_MAX}")
        if self.end is not None and len(self.end) > RANGE_END_BYTES_MAX:
            raise InvalidArgument(f"{what} end: got {len(self.end)} bytes, want <= {RANGE_END_BYTES_MAX}")

    def encode(self) -> bytes:
        if self.end is None:
            return kvbytes(self.start) + b"\x00"
        return kvbytes(self.start) + b"\x01" + kvbytes(self.end)

    @classmethod
    def read(cls, rd: Reader) -> "KeyRange":
        start = rd.kvbytes(KEY_BYTES_MAX, "range start")
        end = rd.kvbytes(RANGE_END_BYTES_MAX, "range end") if rd.flag() else None
        return cls(start, end)


def _reserved(flags: int, allowed: int, what: str) -> int:
    if flags & ~allowed:
        raise ProtocolError(f"{what}: reserved bits set in {flags:#04x}")
    return flags


# --- records and results ---------------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    """A key's record (KV-COMMANDS.md `record`): empty value for keys-only reads and replays."""
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    #: The lease the key is attached to (0: none); record version 2 carries it.
    lease: int = field(default=0, kw_only=True)

    @classmethod
    def read(cls, rd: Reader, key: bytes) -> "Record":
        v = rd.u8()
        if v not in (1, 2):
            raise ProtocolError(f"record version {v}, want 1 or 2")
        create, mod, version = rd.u64(), rd.u64(), rd.u64()
        lease = rd.u64() if v == 2 else 0
        if v == 2 and lease == 0:
            raise ProtocolError(f"record of {key!r}: version 2 with lease 0, want a lease >= 1")
        value = rd.kvbytes(VALUE_BYTES_MAX, "value")
        if version < 1 or not 1 <= create <= mod:
            raise ProtocolError(f"record of {key!r}: version {version}, create {create}, mod {mod}: "
                                "want version >= 1 and 1 <= create <= mod")
        return cls(key, value, create, mod, version, lease=lease)

    def encode_record(self) -> bytes:
        head = u8(2 if self.lease else 1) + u64(self.create_revision) + u64(self.mod_revision) + u64(self.version)
        return head + (u64(self.lease) if self.lease else b"") + kvbytes(self.value)


def _read_records(rd: Reader) -> list[Record]:
    n = rd.u32()
    if n * 33 > rd.remaining:  # a key length and a record take at least 4 + 29 bytes
        raise ProtocolError(f"{n} records announced, only {rd.remaining} bytes left")
    return [Record.read(rd, rd.kvbytes(KEY_BYTES_MAX, "key")) for _ in range(n)]


def _encode_records(records: list[Record]) -> bytes:
    return struct.pack(">I", len(records)) + b"".join(kvbytes(r.key) + r.encode_record() for r in records)


@dataclass(frozen=True)
class RangeResult:
    """A read's answer (PROTOCOL.md `RangeResult`) or a range operation's result in a txn:
    `count` keys in range, `records` (at most the limit), `more` if the limit cut them, and
    the store's current `revision`."""
    records: list[Record]
    count: int
    more: bool
    revision: int

    def encode(self) -> bytes:
        return u64(self.count) + u8(int(self.more)) + u64(self.revision) + _encode_records(self.records)

    @classmethod
    def read(cls, rd: Reader) -> "RangeResult":
        count = rd.u64()
        more = rd.flag()
        revision = rd.u64()
        return cls(_read_records(rd), count, more, revision)


@dataclass(frozen=True)
class PutOpResult:
    """A put's result: the previous record if `prev` was asked (never on a replay)."""
    previous: Optional[Record] = None


@dataclass(frozen=True)
class DeleteOpResult:
    """A delete range's result: keys deleted, and their records if `prev` was asked."""
    deleted: int
    previous: list[Record] = field(default_factory=list)


@dataclass(frozen=True)
class LeaseOpResult:
    """A lease grant's result: its ID and TTL in seconds."""
    id: int
    ttl: int


OpResult = Union[PutOpResult, DeleteOpResult, RangeResult, LeaseOpResult]


class Outcome(enum.IntEnum):
    """KV-COMMANDS.md "Apply result" outcomes."""
    SUCCESS = 0
    ALREADY_EXISTS = 1
    COMPACTED = 2
    FUTURE_REVISION = 3
    INVALID = 4
    SESSION_EXPIRED = 5


@dataclass(frozen=True)
class ApplyResult:
    """What applying a write produced (KV-COMMANDS.md `result`). `succeeded` and `results` are
    meaningful for `Outcome.SUCCESS`; the outcome's own fields are set for the others."""
    revision: int
    is_replay: bool
    outcome: int
    succeeded: bool = False
    results: list[OpResult] = field(default_factory=list)
    existing_key: Optional[bytes] = None          # ALREADY_EXISTS
    requested: Optional[int] = None               # COMPACTED, FUTURE_REVISION
    limit_revision: Optional[int] = None          # COMPACTED: compacted; FUTURE_REVISION: current
    invalid_code: Optional[int] = None            # INVALID
    reason: Optional[str] = None                  # INVALID
    sequence: Optional[int] = None                # SESSION_EXPIRED
    last_applied: Optional[int] = None            # SESSION_EXPIRED (None: no session known)

    def encode(self) -> bytes:
        out = bytearray(u8(1) + u64(self.revision) + u8(int(self.is_replay)) + u8(self.outcome))
        if self.outcome == Outcome.SUCCESS:
            out += u8(int(self.succeeded)) + u16(len(self.results))
            for r in self.results:
                out += _encode_op_result(r)
        elif self.outcome == Outcome.ALREADY_EXISTS:
            out += kvbytes(self.existing_key or b"")
        elif self.outcome in (Outcome.COMPACTED, Outcome.FUTURE_REVISION):
            out += u64(self.requested or 0) + u64(self.limit_revision or 0)
        elif self.outcome == Outcome.INVALID:
            out += u8(self.invalid_code or 0) + kvbytes((self.reason or "").encode())
        elif self.outcome == Outcome.SESSION_EXPIRED:
            out += u64(self.sequence or 0)
            out += u8(0) if self.last_applied is None else u8(1) + u64(self.last_applied)
        return bytes(out)


def _encode_op_result(r: OpResult) -> bytes:
    if isinstance(r, PutOpResult):
        return b"\x01" + (b"\x00" if r.previous is None else b"\x01" + r.previous.encode_record())
    if isinstance(r, DeleteOpResult):
        return b"\x02" + u64(r.deleted) + _encode_records(r.previous)
    if isinstance(r, LeaseOpResult):
        return b"\x04" + u64(r.id) + u64(r.ttl)
    return b"\x03" + r.encode()


def decode_apply_result(body: bytes) -> ApplyResult:
    """A `writeResponse` body (KV-COMMANDS.md `result`)."""
    if len(body) > RESULT_BYTES_MAX:
        raise ProtocolError(f"apply result of {len(body)} bytes, at most {RESULT_BYTES_MAX}")
    rd = Reader(body)
    version = rd.u8()
    if version != 1:
        raise ProtocolError(f"apply result version {version}, want 1")
    revision = rd.u64()
    flags = _reserved(rd.u8(), 0x01, "apply result flags")
    outcome = rd.u8()
    replay = bool(flags & 1)
    if outcome == Outcome.SUCCESS:
        succeeded = rd.flag()
        results: list[OpResult] = []
        for _ in range(rd.u16()):
            tag = rd.u8()
            if tag == 1:
                results.append(PutOpResult(Record.read(rd, b"") if rd.flag() else None))
            elif tag == 2:
                deleted = rd.u64()
                results.append(DeleteOpResult(deleted, _read_records(rd)))
            elif tag == 3:
                results.append(RangeResult.read(rd))
            elif tag == 4:
                results.append(LeaseOpResult(rd.u64(), rd.u64()))
            else:
                raise ProtocolError(f"operation result tag {tag}, want 1...4")
        res = ApplyResult(revision, replay, outcome, succeeded=succeeded, results=results)
    elif outcome == Outcome.ALREADY_EXISTS:
        res = ApplyResult(revision, replay, outcome, existing_key=rd.kvbytes(KEY_BYTES_MAX, "key"))
    elif outcome in (Outcome.COMPACTED, Outcome.FUTURE_REVISION):
        res = ApplyResult(revision, replay, outcome, requested=rd.u64(), limit_revision=rd.u64())
    elif outcome == Outcome.INVALID:
        code = rd.u8()
        reason = rd.kvbytes(MESSAGE_BYTES_MAX * 16, "reason").decode("utf-8", "replace")
        res = ApplyResult(revision, replay, outcome, invalid_code=code, reason=reason)
    elif outcome == Outcome.SESSION_EXPIRED:
        seq = rd.u64()
        last = rd.u64() if rd.flag() else None
        res = ApplyResult(revision, replay, outcome, sequence=seq, last_applied=last)
    else:
        raise ProtocolError(f"apply outcome {outcome}, want 0...5")
    rd.done()
    return res


INVALID_CODES = {0: "keyLength", 1: "valueLength", 2: "txnSize", 3: "duplicateKeyInTxn", 4: "invalidField",
                 5: "malformed", 6: "leaseNotFound", 7: "leaseExists", 8: "leasesFull", 9: "authRequired",
                 10: "permissionDenied", 11: "authState", 12: "reservedKey"}


def apply_result_error(res: ApplyResult, endpoint: Optional[tuple[str, int]] = None) -> Optional[ServerError]:
    """The exception for an outcome that is a failure of the request itself (compacted,
    futureRevision, invalid), or None for success and alreadyExists (returned as results)."""
    if res.outcome == Outcome.COMPACTED:
        err = Compacted(5, f"revision {res.requested} is compacted (compacted revision {res.limit_revision})",
                        endpoint=endpoint)
        err.requested, err.compacted_revision = res.requested, res.limit_revision
        return err
    if res.outcome == Outcome.FUTURE_REVISION:
        fut = FutureRevision(6, f"revision {res.requested} is above the current revision {res.limit_revision}",
                             endpoint=endpoint)
        fut.requested, fut.current_revision = res.requested, res.limit_revision
        return fut
    if res.outcome == Outcome.INVALID:
        name = INVALID_CODES.get(res.invalid_code or 0, f"code{res.invalid_code}")
        # A write refused for its user at apply is the same error as a refused request.
        if res.invalid_code in (9, 10):
            refused = server_error(14 if res.invalid_code == 9 else 16, res.reason, endpoint=endpoint)
            return refused
        inv = InvalidRequest(7, f"write applied as invalid ({name}): {res.reason}", endpoint=endpoint)
        inv.invalid_code = res.invalid_code
        return inv
    return None


def decode_range_result(body: bytes) -> RangeResult:
    """A `readResponse` body (PROTOCOL.md `RangeResult`)."""
    rd = Reader(body)
    res = RangeResult.read(rd)
    rd.done()
    return res


# --- commands --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Put:
    """put (command tag 1, txn op tag 1): `if_absent` writes only a missing key; `prev` asks for
    the previous record."""
    key: bytes
    value: bytes
    if_absent: bool = False
    prev: bool = False
    #: Attach the key to this lease (0: none).
    lease: int = 0

    def validate(self) -> None:
        check_key(self.key, "put key")
        as_bytes(self.value, "value")
        if len(self.value) > VALUE_BYTES_MAX:
            raise InvalidArgument(f"put value: got {len(self.value)} bytes, want <= {VALUE_BYTES_MAX}")
        _check_u64(self.lease, "put lease")

    def encode_body(self) -> bytes:
        flags = int(self.if_absent) | int(self.prev) << 1 | (4 if self.lease else 0)
        return u8(flags) + kvbytes(self.key) + kvbytes(self.value) + (u64(self.lease) if self.lease else b"")

    @classmethod
    def read(cls, rd: Reader) -> "Put":
        flags = _reserved(rd.u8(), 0x07, "put flags")
        key = rd.kvbytes(KEY_BYTES_MAX, "put key")
        value = rd.kvbytes(VALUE_BYTES_MAX, "put value")
        lease = 0
        if flags & 4:
            lease = rd.u64()
            if lease == 0:
                raise ProtocolError("put lease: 0 with the lease flag set, want >= 1")
        return cls(key, value, bool(flags & 1), bool(flags & 2), lease)


@dataclass(frozen=True)
class DeleteRange:
    """deleteRange (command tag 2, txn op tag 2) of `range`; `prev` asks for the records."""
    range: KeyRange
    prev: bool = False

    def validate(self) -> None:
        self.range.validate("delete range")

    def encode_body(self) -> bytes:
        return u8(int(self.prev)) + self.range.encode()

    @classmethod
    def read(cls, rd: Reader) -> "DeleteRange":
        flags = _reserved(rd.u8(), 0x01, "delete flags")
        return cls(KeyRange.read(rd), bool(flags & 1))


@dataclass(frozen=True)
class RangeRequest:
    """KV-COMMANDS.md `rangeReq` (a read, or txn op tag 3). `revision` None or 0 is current."""
    range: KeyRange
    limit: Optional[int] = None
    revision: Optional[int] = None
    reverse: bool = False
    keys_only: bool = False
    count_only: bool = False

    def validate(self) -> None:
        self.range.validate("range")
        if self.limit is not None:
            _check_u64(self.limit, "range limit", 1)
        if self.revision is not None:
            _check_u64(self.revision, "range revision")

    def encode_body(self) -> bytes:
        flags = (int(self.reverse) | int(self.keys_only) << 1 | int(self.count_only) << 2
                 | int(self.limit is not None) << 3 | int(bool(self.revision)) << 4)
        out = u8(flags) + self.range.encode()
        if self.limit is not None:
            out += u64(self.limit)
        if self.revision:
            out += u64(self.revision)
        return out

    @classmethod
    def read(cls, rd: Reader) -> "RangeRequest":
        flags = _reserved(rd.u8(), 0x1F, "range flags")
        r = KeyRange.read(rd)
        limit = rd.u64() if flags & 8 else None
        revision = rd.u64() if flags & 16 else None
        if limit == 0:
            raise ProtocolError("range limit 0, want >= 1")
        return cls(r, limit, revision, bool(flags & 1), bool(flags & 2), bool(flags & 4))


class Target(enum.IntEnum):
    VALUE = 0
    VERSION = 1
    CREATE = 2
    MOD = 3


class CompareOp(enum.IntEnum):
    EQUAL = 0
    NOT_EQUAL = 1
    LESS = 2
    GREATER = 3


_OP_SYMBOLS = {"=": CompareOp.EQUAL, "==": CompareOp.EQUAL, "!=": CompareOp.NOT_EQUAL, "<": CompareOp.LESS,
               ">": CompareOp.GREATER}


@dataclass(frozen=True)
class Compare:
    """A txn compare (KV-COMMANDS.md `compare`): `target` of every key in `range` `op` `operand`
    (bytes for VALUE, an integer for the others)."""
    range: KeyRange
    target: Target
    op: CompareOp
    operand: Union[bytes, int]

    @classmethod
    def of(cls, target: Target, key: BytesLike, op: Union[str, CompareOp], operand: Union[BytesLike, int]) -> "Compare":
        """`Compare.of(Target.VALUE, b"k", "=", b"v")`; op one of = == != < >."""
        o = _OP_SYMBOLS.get(op) if isinstance(op, str) else CompareOp(op)
        if o is None:
            raise InvalidArgument(f"compare operator {op!r}, want one of = == != < >")
        t = Target(target)
        if t == Target.VALUE:
            operand = as_bytes(operand, "compare value")
        elif not isinstance(operand, int) or isinstance(operand, bool):
            raise TypeError(f"compare {t.name.lower()} operand: got {type(operand).__name__}, want int")
        return cls(KeyRange.single(key), t, o, operand)

    def validate(self) -> None:
        self.range.validate("compare")
        if self.target == Target.VALUE:
            if not isinstance(self.operand, bytes):
                raise TypeError("compare value operand: want bytes")
            if len(self.operand) > VALUE_BYTES_MAX:
                raise InvalidArgument(f"compare value: got {len(self.operand)} bytes, want <= {VALUE_BYTES_MAX}")
        else:
            _check_u64(self.operand, "compare operand")  # type: ignore[arg-type]

    def encode(self) -> bytes:
        out = self.range.encode() + u8(self.target) + u8(self.op)
        if self.target == Target.VALUE:
            return out + kvbytes(self.operand)  # type: ignore[arg-type]
        return out + u64(self.operand)  # type: ignore[arg-type]

    @classmethod
    def read(cls, rd: Reader) -> "Compare":
        r = KeyRange.read(rd)
        t, o = rd.u8(), rd.u8()
        if t > 3 or o > 3:
            raise ProtocolError(f"compare target {t} / operator {o}, want 0...3")
        operand: Union[bytes, int] = rd.kvbytes(VALUE_BYTES_MAX, "compare value") if t == 0 else rd.u64()
        return cls(r, Target(t), CompareOp(o), operand)


class _Comparable:
    """`value(b"k") == b"v"` builds a Compare (etcd3-python style); see `value`, `version`."""

    __slots__ = ("_target", "_key")

    def __init__(self, target: Target, key: BytesLike):
        self._target = target
        self._key = as_bytes(key, "compare key")

    def __eq__(self, other: object) -> Compare:  # type: ignore[override]
        return Compare.of(self._target, self._key, CompareOp.EQUAL, other)  # type: ignore[arg-type]

    def __ne__(self, other: object) -> Compare:  # type: ignore[override]
        return Compare.of(self._target, self._key, CompareOp.NOT_EQUAL, other)  # type: ignore[arg-type]

    def __lt__(self, other: object) -> Compare:
        return Compare.of(self._target, self._key, CompareOp.LESS, other)  # type: ignore[arg-type]

    def __gt__(self, other: object) -> Compare:
        return Compare.of(self._target, self._key, CompareOp.GREATER, other)  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]


def value(key: BytesLike) -> _Comparable:
    """Compare on the value of `key`: `value(b"k") == b"v"`."""
    return _Comparable(Target.VALUE, key)


def version(key: BytesLike) -> _Comparable:
    """Compare on the version of `key` (0 if missing): `version(b"k") > 3`."""
    return _Comparable(Target.VERSION, key)


def create_revision(key: BytesLike) -> _Comparable:
    return _Comparable(Target.CREATE, key)


def mod_revision(key: BytesLike) -> _Comparable:
    return _Comparable(Target.MOD, key)


TxnOp = Union[Put, DeleteRange, RangeRequest]
_OP_TAGS: dict[type, int] = {Put: 1, DeleteRange: 2, RangeRequest: 3}


def _read_op(rd: Reader) -> TxnOp:
    tag = rd.u8()
    if tag == 1:
        return Put.read(rd)
    if tag == 2:
        return DeleteRange.read(rd)
    if tag == 3:
        return RangeRequest.read(rd)
    raise ProtocolError(f"txn operation tag {tag}, want 1...3")


@dataclass(frozen=True)
class Txn:
    """txn (command tag 3): if every compare holds, `success` runs, else `failure`."""
    compares: list[Compare] = field(default_factory=list)
    success: list[TxnOp] = field(default_factory=list)
    failure: list[TxnOp] = field(default_factory=list)

    def validate(self) -> None:
        if len(self.compares) > TXN_COMPARES_MAX:
            raise InvalidArgument(f"txn compares: got {len(self.compares)}, want <= {TXN_COMPARES_MAX}")
        for c in self.compares:
            if not isinstance(c, Compare):
                raise TypeError(f"txn compare: got {type(c).__name__}, want Compare")
            c.validate()
        for name, ops in (("success", self.success), ("failure", self.failure)):
            if len(ops) > TXN_OPERATIONS_MAX:
                raise InvalidArgument(f"txn {name} operations: got {len(ops)}, want <= {TXN_OPERATIONS_MAX}")
            for op in ops:
                if type(op) not in _OP_TAGS:
                    raise TypeError(f"txn {name} operation: got {type(op).__name__}, want Put, DeleteRange or RangeRequest")
                op.validate()

    def encode_body(self) -> bytes:
        out = bytearray(u16(len(self.compares)))
        for c in self.compares:
            out += c.encode()
        for ops in (self.success, self.failure):
            out += u16(len(ops))
            for op in ops:
                out += u8(_OP_TAGS[type(op)]) + op.encode_body()
        return bytes(out)

    @classmethod
    def read(cls, rd: Reader) -> "Txn":
        n = rd.u16()
        if n > TXN_COMPARES_MAX:
            raise ProtocolError(f"txn compares: {n}, at most {TXN_COMPARES_MAX}")
        compares = [Compare.read(rd) for _ in range(n)]
        branches = []
        for name in ("success", "failure"):
            m = rd.u16()
            if m > TXN_OPERATIONS_MAX:
                raise ProtocolError(f"txn {name} operations: {m}, at most {TXN_OPERATIONS_MAX}")
            branches.append([_read_op(rd) for _ in range(m)])
        return cls(compares, branches[0], branches[1])


@dataclass(frozen=True)
class Compact:
    """compact (command tag 4): discard history below `revision` (>= 1)."""
    revision: int

    def validate(self) -> None:
        _check_u64(self.revision, "compact revision", 1)

    def encode_body(self) -> bytes:
        return u64(self.revision)

    @classmethod
    def read(cls, rd: Reader) -> "Compact":
        r = rd.u64()
        if r == 0:
            raise ProtocolError("compact revision 0, want >= 1")
        return cls(r)


@dataclass(frozen=True)
class InitCluster:
    """initCluster (tag 5): proposed by leaders only; decoded from journal entries."""
    cluster_id: bytes

    def validate(self) -> None:
        if len(self.cluster_id) != 16:
            raise InvalidArgument("cluster ID: want 16 bytes")

    def encode_body(self) -> bytes:
        return bytes(self.cluster_id)

    @classmethod
    def read(cls, rd: Reader) -> "InitCluster":
        return cls(rd.take(16))


@dataclass(frozen=True)
class UpgradeLeaves:
    """upgradeLeaves (tag 6): proposed by leaders only; decoded from journal entries."""

    def validate(self) -> None:
        pass

    def encode_body(self) -> bytes:
        return b""

    @classmethod
    def read(cls, rd: Reader) -> "UpgradeLeaves":
        return cls()


#: The state level this version's leaders propose (KV-COMMANDS.md "State levels"): 1 leaf v2,
#: 2 client sessions bound to users.
STATE_LEVEL_CURRENT = 2


@dataclass(frozen=True)
class UpgradeState:
    """upgradeState (tag 11): proposed by leaders only; decoded from journal entries. Records
    each state level up to `level` not recorded yet."""
    level: int

    def validate(self) -> None:
        if not 1 <= self.level <= STATE_LEVEL_CURRENT:
            raise InvalidArgument(f"state level: got {self.level}, want 1...{STATE_LEVEL_CURRENT}")

    def encode_body(self) -> bytes:
        return u32(self.level)

    @classmethod
    def read(cls, rd: Reader) -> "UpgradeState":
        level = rd.u32()
        if not 1 <= level <= STATE_LEVEL_CURRENT:
            raise ProtocolError(f"state level {level}, want 1...{STATE_LEVEL_CURRENT}")
        return cls(level)


LEASE_TTL_MAX = 31_536_000
LEASE_CHECKPOINTS_MAX = 4096


@dataclass(frozen=True)
class LeaseGrant:
    """leaseGrant (command tag 7): a lease of `ttl` seconds (1...31,536,000); `id` 0 takes the
    entry's revision. The result is a `LeaseOpResult`."""
    ttl: int
    id: int = 0

    def validate(self) -> None:
        _check_u64(self.id, "lease ID")
        if not 1 <= self.ttl <= LEASE_TTL_MAX:
            raise InvalidArgument(f"lease TTL {self.ttl} s, want 1...{LEASE_TTL_MAX}")

    def encode_body(self) -> bytes:
        return u64(self.id) + u64(self.ttl)

    @classmethod
    def read(cls, rd: Reader) -> "LeaseGrant":
        lease_id, ttl = rd.u64(), rd.u64()
        if not 1 <= ttl <= LEASE_TTL_MAX:
            raise ProtocolError(f"lease TTL {ttl} s, want 1...{LEASE_TTL_MAX}")
        return cls(ttl, lease_id)


@dataclass(frozen=True)
class LeaseRevoke:
    """leaseRevoke (command tag 8): deletes the keys still attached to lease `id`, then it."""
    id: int

    def validate(self) -> None:
        _check_u64(self.id, "lease ID", 1)

    def encode_body(self) -> bytes:
        return u64(self.id)

    @classmethod
    def read(cls, rd: Reader) -> "LeaseRevoke":
        lease_id = rd.u64()
        if lease_id == 0:
            raise ProtocolError("lease ID 0, want >= 1")
        return cls(lease_id)


@dataclass(frozen=True)
class LeaseCheckpoint:
    """leaseCheckpoint (tag 9): proposed by leaders only (decoded from journal entries): the
    remaining milliseconds of each lease, as `(id, remaining_ms)`."""
    remaining: tuple[tuple[int, int], ...]

    def validate(self) -> None:
        raise InvalidArgument("lease checkpoints are proposed by the leader only")

    def encode_body(self) -> bytes:
        return u32(len(self.remaining)) + b"".join(u64(i) + u64(ms) for i, ms in self.remaining)

    @classmethod
    def read(cls, rd: Reader) -> "LeaseCheckpoint":
        n = rd.u32()
        if n > LEASE_CHECKPOINTS_MAX:
            raise ProtocolError(f"lease checkpoint of {n} leases, at most {LEASE_CHECKPOINTS_MAX}")
        return cls(tuple((rd.u64(), rd.u64()) for _ in range(n)))


def encode_lease_keep_alive(lease_id: int) -> bytes:
    """A `leaseKeepAlive` body (PROTOCOL.md "Leases"): the lease ID."""
    _check_u64(lease_id, "lease ID", 1)
    return varint(lease_id)


def decode_lease_keep_alive_response(body: bytes) -> tuple[int, int]:
    """A `leaseKeepAliveResponse` body: (lease ID, TTL in seconds)."""
    rd = Reader(body)
    lease_id, ttl = rd.varint(), rd.varint()
    rd.done()
    if lease_id == 0:
        raise ProtocolError("lease ID 0, want >= 1")
    return lease_id, ttl


@dataclass(frozen=True)
class Auth:
    """auth (command tag 10, KV-COMMANDS.md "Users and roles"): a change of users, roles or
    whether authentication is on; decoded from journal entries (this client does not send them).
    `op` names it (`userAdd`, `roleGrant`, ...); `name` is the user or role, `role` the role of
    a grant to a user, `access` (1 read, 2 write, 3 readwrite) and `range` those of a role's
    permission, `has_password` whether a password hash came with it."""
    op: str
    name: bytes = b""
    role: bytes = b""
    access: int = 0
    range: Optional["KeyRange"] = None
    has_password: bool = False

    _OPS = {1: "enable", 2: "disable", 3: "userAdd", 4: "userDelete", 5: "userPassword", 6: "userGrantRole",
            7: "userRevokeRole", 8: "roleAdd", 9: "roleDelete", 10: "roleGrant", 11: "roleRevoke"}

    def validate(self) -> None:
        raise InvalidArgument("auth commands are sent by fctl (fctl user, fctl role, fctl auth)")

    @classmethod
    def read(cls, rd: Reader) -> "Auth":
        tag = rd.u8()
        op = cls._OPS.get(tag)
        if op is None:
            raise ProtocolError(f"auth command tag {tag}, want 1...11")
        if tag in (1, 2):
            return cls(op)
        name = rd.kvbytes(NAME_BYTES_MAX, "name")
        if tag in (3, 5):
            has = rd.flag()
            if has:  # log2 N | r | p | salt | hash
                rd.u8(), rd.u32(), rd.u32()
                rd.kvbytes(64, "salt"), rd.kvbytes(64, "hash")
            return cls(op, name, has_password=has)
        if tag in (6, 7):
            return cls(op, name, role=rd.kvbytes(NAME_BYTES_MAX, "role"))
        if tag == 10:
            access = rd.u8()
            if access not in (1, 2, 3):
                raise ProtocolError(f"permission access {access}, want 1...3")
            return cls(op, name, access=access, range=KeyRange.read(rd))
        if tag == 11:
            return cls(op, name, range=KeyRange.read(rd))
        return cls(op, name)


#: User and role names: 1...64 bytes (KV-COMMANDS.md "Users and roles").
NAME_BYTES_MAX = 64

Command = Union[Put, DeleteRange, Txn, Compact, InitCluster, UpgradeLeaves, LeaseGrant, LeaseRevoke, LeaseCheckpoint, Auth,
                UpgradeState]
_COMMAND_TAGS: dict[type, int] = {Put: 1, DeleteRange: 2, Txn: 3, Compact: 4, InitCluster: 5, UpgradeLeaves: 6,
                                  LeaseGrant: 7, LeaseRevoke: 8, LeaseCheckpoint: 9, Auth: 10, UpgradeState: 11}
_COMMAND_READERS = {1: Put.read, 2: DeleteRange.read, 3: Txn.read, 4: Compact.read, 5: InitCluster.read,
                    6: UpgradeLeaves.read, 7: LeaseGrant.read, 8: LeaseRevoke.read, 9: LeaseCheckpoint.read, 10: Auth.read,
                    11: UpgradeState.read}


@dataclass(frozen=True)
class Proposal:
    """A write's body (KV-COMMANDS.md `proposal`): a command and, for exactly-once retries, a
    session (client ID, sequence >= 1)."""
    command: Command
    client_id: Optional[int] = None
    sequence: Optional[int] = None
    #: Who asked (flag bit 1): set by the leader from the connection's user, in journal
    #: entries only; empty: no user; None: none recorded (a node's own command, an older entry).
    principal: Optional[bytes] = None

    def encode(self) -> bytes:
        """Checks the command's limits (InvalidArgument, TypeError), then encodes."""
        if self.principal is not None:
            raise InvalidArgument("principal: the node sets it from the connection's user, a client cannot")
        if type(self.command) not in _COMMAND_TAGS:
            raise TypeError(f"command: got {type(self.command).__name__}, want Put, DeleteRange, Txn, Compact, LeaseGrant or LeaseRevoke")
        self.command.validate()
        if (self.client_id is None) != (self.sequence is None):
            raise InvalidArgument("session: client ID and sequence go together")
        out = u8(1)
        if self.client_id is not None:
            _check_u64(self.client_id, "client ID")
            _check_u64(self.sequence, "session sequence", 1)  # type: ignore[arg-type]
            out += u8(1) + u64(self.client_id) + u64(self.sequence)  # type: ignore[arg-type]
        else:
            out += u8(0)
        out += u8(_COMMAND_TAGS[type(self.command)]) + self.command.encode_body()
        if len(out) > PROPOSAL_BYTES_MAX:
            raise InvalidArgument(f"proposal: got {len(out)} encoded bytes, want <= {PROPOSAL_BYTES_MAX}")
        return out


def decode_proposal(body: bytes) -> Proposal:
    """A write body or a journal entry's payload (KV-COMMANDS.md `proposal`)."""
    if len(body) > PROPOSAL_BYTES_MAX:
        raise ProtocolError(f"proposal of {len(body)} bytes, at most {PROPOSAL_BYTES_MAX}")
    rd = Reader(body)
    v = rd.u8()
    if v != 1:
        raise ProtocolError(f"proposal version {v}, want 1")
    flags = _reserved(rd.u8(), 0x03, "proposal flags")
    client_id = sequence = None
    if flags & 1:
        client_id, sequence = rd.u64(), rd.u64()
        if sequence == 0:
            raise ProtocolError("session sequence 0, want >= 1")
    principal = rd.kvbytes(NAME_BYTES_MAX, "principal") if flags & 2 else None
    tag = rd.u8()
    reader = _COMMAND_READERS.get(tag)
    if reader is None:
        raise ProtocolError(f"command tag {tag}, want 1...11")
    cmd = reader(rd)
    rd.done()
    return Proposal(cmd, client_id, sequence, principal)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ReadRequest:
    """A `read` body: `u8 consistency | rangeReq` (0 linearizable, 1 serializable)."""
    request: RangeRequest
    serializable: bool = False

    def encode(self) -> bytes:
        self.request.validate()
        return u8(int(self.serializable)) + self.request.encode_body()


def decode_read_request(body: bytes) -> ReadRequest:
    rd = Reader(body)
    c = rd.u8()
    if c > 1:
        raise ProtocolError(f"read consistency {c}, want 0 or 1")
    req = RangeRequest.read(rd)
    rd.done()
    return ReadRequest(req, c == 1)


# --- errors ----------------------------------------------------------------------------------

def decode_error(body: bytes, endpoint: Optional[tuple[str, int]] = None) -> ServerError:
    """An `error` body (PROTOCOL.md `ErrorResponse`) as the ServerError subclass of its code."""
    rd = Reader(body)
    code = rd.varint()
    if code > 0xFFFF:
        raise ProtocolError(f"error code {code}, at most 65535")
    message = rd.vstring(MESSAGE_BYTES_MAX, "error message")
    hint = _reserved(rd.u8(), 0x03, "leader hint flags")
    if hint == 0x02:
        raise ProtocolError("leader hint: an address without a leader")
    leader = read_node_id(rd, "leader") if hint & 1 else None
    address = Endpoint.read(rd) if hint & 2 else None
    rd.done()
    return server_error(code, message, leader=leader, leader_address=address, endpoint=endpoint)


def encode_error(err: ServerError) -> bytes:
    """The body of an `error` frame (tests, fakes)."""
    hint = (1 if err.leader is not None else 0) | (2 if err.leader_address is not None else 0)
    out = varint(err.code) + vstring(err.message) + u8(hint)
    if err.leader is not None:
        out += varint(err.leader)
    if err.leader_address is not None:
        out += Endpoint.of(err.leader_address).encode()
    return out


def read_node_id(rd: Reader, what: str) -> int:
    """A `nodeID` (varint >= 1)."""
    n = rd.varint()
    if n == 0:
        raise ProtocolError(f"{what}: node ID 0, want >= 1")
    return n


# --- admin -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeStatus:
    """A `statusResponse` (PROTOCOL.md `NodeStatus`)."""
    node_id: int
    role: str
    is_learner: bool
    term: int
    leader: Optional[int]
    commit_index: int
    applied_index: int
    tree_size: int
    db_size_bytes: int

    @property
    def is_leader(self) -> bool:
        return self.role == "leader"


def decode_status(body: bytes) -> NodeStatus:
    rd = Reader(body)
    node = read_node_id(rd, "node")
    role = rd.u8()
    if role not in ROLE_NAMES:
        raise ProtocolError(f"role {role}, want 0...3")
    flags = _reserved(rd.u8(), 0x03, "status flags")
    term = rd.varint()
    leader = read_node_id(rd, "leader") if flags & 2 else None
    st = NodeStatus(node, ROLE_NAMES[role], bool(flags & 1), term, leader, rd.varint(), rd.varint(), rd.varint(),
                    rd.varint())
    rd.done()
    return st


@dataclass(frozen=True)
class Member:
    """One member (PROTOCOL.md `Member`): the node's addresses as the leader knows them
    (`unknown:0` if it does not), learner or voter, and its tree-head public key."""
    node_id: int
    peer: Endpoint
    client: Endpoint
    is_learner: bool
    public_key: bytes = b""

    @property
    def name(self) -> str:
        return f"n{self.node_id}"

    def encode(self) -> bytes:
        if self.node_id < 1:
            raise InvalidArgument(f"member node ID {self.node_id}, want >= 1")
        if len(self.public_key) > PUBLIC_KEY_BYTES_MAX:
            raise InvalidArgument(f"public key of {len(self.public_key)} bytes, at most {PUBLIC_KEY_BYTES_MAX}")
        return (varint(self.node_id) + self.peer.encode() + self.client.encode() + u8(int(self.is_learner))
                + vbytes(self.public_key))

    @classmethod
    def read(cls, rd: Reader) -> "Member":
        node = read_node_id(rd, "member")
        peer = Endpoint.read(rd)
        client = Endpoint.read(rd)
        learner = rd.flag()
        return cls(node, peer, client, learner, rd.vbytes(PUBLIC_KEY_BYTES_MAX, "public key"))


def decode_members(body: bytes) -> list[Member]:
    rd = Reader(body)
    n = rd.varint()
    if n > MEMBERS_MAX:
        raise ProtocolError(f"{n} members, at most {MEMBERS_MAX}")
    out = [Member.read(rd) for _ in range(n)]
    rd.done()
    return out


def encode_members(members: list[Member]) -> bytes:
    return varint(len(members)) + b"".join(m.encode() for m in members)


class MemberChange:
    """`memberChange` bodies (PROTOCOL.md `MemberChange`)."""

    @staticmethod
    def add_learner(node_id: int, peer: Endpoint, client: Endpoint) -> bytes:
        return u8(1) + Member(node_id, peer, client, True).encode()

    @staticmethod
    def promote(node_id: int) -> bytes:
        return u8(2) + varint(_check_u64(node_id, "node ID", 1))

    @staticmethod
    def remove(node_id: int) -> bytes:
        return u8(3) + varint(_check_u64(node_id, "node ID", 1))


def decode_member_change(body: bytes) -> tuple[int, Union[Member, int]]:
    """(op, Member for op 1 / node ID for ops 2 and 3)."""
    rd = Reader(body)
    op = rd.u8()
    arg: Union[Member, int]
    if op == 1:
        arg = Member.read(rd)
        if not arg.is_learner:
            raise ProtocolError("add learner: member flag says voter")
    elif op in (2, 3):
        arg = read_node_id(rd, "member change")
    else:
        raise ProtocolError(f"member change op {op}, want 1...3")
    rd.done()
    return op, arg


@dataclass(frozen=True)
class HashKVResult:
    """A `hashKVResponse`: the node's state digest at its applied index, and its tree root."""
    node_id: int
    applied_index: int
    compact_revision: int
    digest: bytes
    tree_size: int
    tree_root: bytes


def decode_hashkv(body: bytes) -> HashKVResult:
    rd = Reader(body)
    node = read_node_id(rd, "node")
    applied, compact = rd.varint(), rd.varint()
    digest = rd.vbytes(CHECKSUM_BYTES_MAX, "digest")
    res = HashKVResult(node, applied, compact, digest, rd.varint(), rd.vbytes(CHECKSUM_BYTES_MAX, "tree root"))
    rd.done()
    return res


# --- watch (PROTOCOL.md "Watch") ----------------------------------------------------------------

WATCH_PREV_VALUE, WATCH_NO_PUT, WATCH_NO_DELETE, WATCH_PROGRESS = 0x01, 0x02, 0x04, 0x08


def encode_watch_request(r: KeyRange, start_revision: int = 0, options: int = 0) -> bytes:
    """A `watch` body: the range, the first revision wanted (0: from now) and option bits."""
    _reserved(options, 0x0F, "watch options")
    end = r.end
    return (u8(options) + vbytes(r.start) + u8(int(end is not None)) + (vbytes(end) if end is not None else b"")
            + varint(_check_u64(start_revision, "start revision")))


@dataclass(frozen=True)
class WatchEvent:
    """One change: `kind` "put" (with the new `record`) or "delete", at `revision` (the entry's index)."""
    kind: str
    key: bytes
    revision: int
    record: Optional[Record] = None
    previous: Optional[Record] = None


def _watch_record(rd: Reader, key: bytes, create: int, mod: int) -> Record:
    version, lease = rd.varint(), rd.varint()
    value = rd.vbytes(VALUE_BYTES_MAX, "value")
    if version < 1 or not 1 <= create <= mod:
        raise ProtocolError(f"watch record of {key!r}: version {version}, create {create}, mod {mod}")
    return Record(key, value, create, mod, version, lease=lease)


def decode_watch_response(body: bytes) -> tuple:
    """A `watchResponse` body: ("created", start) | ("events", completeThrough, [WatchEvent]) |
    ("progress", revision) | ("canceled", reason) | ("compacted", first revision kept)."""
    rd = Reader(body)
    t = rd.u8()
    if t == 1:
        out: tuple = ("created", rd.varint())
    elif t == 2:
        through = rd.varint()
        n = rd.varint()
        if n < 1 or n > rd.remaining:
            raise ProtocolError(f"watch events: {n} announced, {rd.remaining} bytes left")
        events = []
        for _ in range(n):
            kind = rd.u8()
            if kind not in (1, 2):
                raise ProtocolError(f"watch event kind {kind}, want 1 or 2")
            revision = rd.varint()
            key = rd.vbytes(KEY_BYTES_MAX, "key")
            record = _watch_record(rd, key, rd.varint(), revision) if kind == 1 else None
            previous = None
            if rd.flag():
                create, mod = rd.varint(), rd.varint()
                previous = _watch_record(rd, key, create, mod)
            events.append(WatchEvent("put" if kind == 1 else "delete", key, revision, record, previous))
        out = ("events", through, events)
    elif t == 3:
        out = ("progress", rd.varint())
    elif t == 4:
        out = ("canceled", rd.vstring(MESSAGE_BYTES_MAX, "reason"))
    elif t == 5:
        out = ("compacted", rd.varint())
    else:
        raise ProtocolError(f"watch response type {t}, want 1...5")
    rd.done()
    return out
