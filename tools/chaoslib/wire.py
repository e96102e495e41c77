"""Fauna's client protocol in plain Python (docs/PROTOCOL.md, docs/KV-COMMANDS.md).

Enough of it for the chaos harness: frames, put / txn (compare-and-swap) / read / range,
status and hashKV. Written from the documents, sharing no code with the Swift side, so a
misreading of the spec shows up as a protocol error against a real node.
"""

import socket
import struct

MAGIC = b"FNA\x01"
HEADER = struct.Struct(">4sIBBQI")  # magic+version, body length, kind, flags, request ID, CRC32C
HEADER_BYTES = HEADER.size  # 22
BODY_BYTES_MAX = 16 << 20

KIND_PEER_HELLO = 0x01
KIND_RAFT_MESSAGES = 0x02
KIND_WRITE = 0x10
KIND_READ = 0x11
KIND_STATUS = 0x20
KIND_LEADER_TRANSFER = 0x23
KIND_HASHKV = 0x25
KIND_JOURNAL_ENTRY = 0x33
KIND_WRITE_RESPONSE = 0x90
KIND_READ_RESPONSE = 0x91
KIND_STATUS_RESPONSE = 0xA0
KIND_HASHKV_RESPONSE = 0xA5
KIND_JOURNAL_ENTRY_RESPONSE = 0xB3
KIND_ERROR = 0xFF

# ErrorResponse codes (PROTOCOL.md "Client messages").
ERR_NOT_LEADER = 1
ERR_UNAVAILABLE = 2
ERR_OVERLOADED = 3
ERR_TIMEOUT = 4
ERR_COMPACTED = 5
ERR_FUTURE_REVISION = 6
ERR_INVALID_REQUEST = 7
ERR_INTERNAL = 8
ERROR_NAMES = {1: "notLeader", 2: "unavailable", 3: "overloaded", 4: "timeout", 5: "compacted",
               6: "futureRevision", 7: "invalidRequest", 8: "internalError", 9: "peerRejected",
               10: "unsupported"}

ROLE_NAMES = {0: "follower", 1: "preCandidate", 2: "candidate", 3: "leader"}


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli); 0 for empty input, as the frame header wants."""
    if not data:
        return 0
    c = 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


class ProtocolError(Exception):
    """The peer sent bytes that do not follow PROTOCOL.md."""


class ServerError(Exception):
    """An `error` frame (kind 0xFF): code, message and the leader hint if any."""

    def __init__(self, code, message, leader=None, leader_address=None):
        super().__init__(f"{ERROR_NAMES.get(code, code)}: {message}")
        self.code = code
        self.message = message
        self.leader = leader
        self.leader_address = leader_address

    @property
    def name(self):
        return ERROR_NAMES.get(self.code, f"code{self.code}")


# --- field encodings -------------------------------------------------------------------------

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class Reader:
    """Consumes a body; every read checks the bytes remaining."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError(f"truncated: want {n} bytes at {self.pos}, have {len(self.data) - self.pos}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def varint(self):
        shift = 0
        n = 0
        for i in range(10):
            b = self.u8()
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
        raise ProtocolError("varint longer than 10 bytes")

    def vbytes(self):  # PROTOCOL.md `bytes`: varint length
        return self.take(self.varint())

    def kvbytes(self):  # KV-COMMANDS.md `bytes`: u32 length
        return self.take(self.u32())

    def done(self):
        if self.pos != len(self.data):
            raise ProtocolError(f"{len(self.data) - self.pos} trailing bytes")


def kvbytes(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def frame(kind: int, request_id: int, body: bytes, flags: int = 0) -> bytes:
    return HEADER.pack(MAGIC, len(body), kind, flags, request_id, crc32c(body)) + body


def parse_header(h: bytes):
    """(length, kind, flags, request ID) of a 22-byte header; ProtocolError if broken."""
    magic, length, kind, flags, rid, crc = HEADER.unpack(h)
    if magic != MAGIC:
        raise ProtocolError(f"magic/version {magic.hex()}, want {MAGIC.hex()}")
    if length > BODY_BYTES_MAX:
        raise ProtocolError(f"body length {length} over {BODY_BYTES_MAX}")
    return length, kind, flags, rid, crc


# --- KV encodings ----------------------------------------------------------------------------

def single(key: bytes):
    """The key range of one key: [k, k‖00)."""
    return (key, key + b"\x00")


def prefix_range(p: bytes):
    b = bytearray(p)
    while b and b[-1] == 0xFF:
        b.pop()
    if not b:
        return (p, None)
    b[-1] += 1
    return (p, bytes(b))


def key_range(r) -> bytes:
    start, end = r
    if end is None:
        return kvbytes(start) + b"\x00"
    return kvbytes(start) + b"\x01" + kvbytes(end)


def range_req(r, limit=None, revision=None, keys_only=False, count_only=False) -> bytes:
    flags = (2 if keys_only else 0) | (4 if count_only else 0) | (8 if limit else 0) | (16 if revision else 0)
    out = bytes([flags]) + key_range(r)
    if limit:
        out += struct.pack(">Q", limit)
    if revision:
        out += struct.pack(">Q", revision)
    return out


def put_cmd(key: bytes, value: bytes, if_absent=False) -> bytes:
    return bytes([1, 1 if if_absent else 0]) + kvbytes(key) + kvbytes(value)


def txn_cmd(compares, success, failure) -> bytes:
    """compares: [(key, expected value)] as `value(key) = expected`; ops: encoded op bytes."""
    out = bytearray([3])
    out += struct.pack(">H", len(compares))
    for key, expected in compares:
        out += key_range(single(key)) + bytes([0, 0]) + kvbytes(expected)
    for branch in (success, failure):
        out += struct.pack(">H", len(branch))
        for op in branch:
            out += op
    return bytes(out)


def op_put(key: bytes, value: bytes) -> bytes:
    return b"\x01" + bytes([0]) + kvbytes(key) + kvbytes(value)


def op_get(key: bytes) -> bytes:
    return b"\x03" + range_req(single(key))


def proposal(command: bytes, client_id: int, sequence: int) -> bytes:
    return bytes([1, 1]) + struct.pack(">QQ", client_id, sequence) + command


def read_request(r, linearizable=True, limit=None) -> bytes:
    return bytes([0 if linearizable else 1]) + range_req(r, limit=limit)


def _record(rd: Reader):
    version = rd.u8()
    if version != 1:
        raise ProtocolError(f"record version {version}, want 1")
    create, mod, ver = rd.u64(), rd.u64(), rd.u64()
    return {"create": create, "mod": mod, "version": ver, "value": rd.kvbytes()}


def _records(rd: Reader, key_u32: bool):
    n = rd.u32()
    out = []
    for _ in range(n):
        key = rd.kvbytes()
        rec = _record(rd)
        rec["key"] = key
        out.append(rec)
    return out


def parse_range_result(body: bytes, rd: Reader = None):
    own = rd is None
    rd = rd or Reader(body)
    count = rd.u64()
    has_more = rd.u8()
    revision = rd.u64()
    records = _records(rd, True)
    if own:
        rd.done()
    return {"count": count, "hasMore": bool(has_more), "revision": revision, "records": records}


OUTCOMES = {0: "success", 1: "alreadyExists", 2: "compacted", 3: "futureRevision", 4: "invalid",
            5: "sessionExpired"}


def parse_apply_result(body: bytes):
    rd = Reader(body)
    version = rd.u8()
    if version != 1:
        raise ProtocolError(f"result version {version}, want 1")
    revision = rd.u64()
    flags = rd.u8()
    outcome = rd.u8()
    res = {"revision": revision, "isReplay": bool(flags & 1), "outcome": OUTCOMES.get(outcome, outcome)}
    if outcome != 0:
        return res  # the rest of a non-success body is informational here
    res["succeeded"] = bool(rd.u8())
    ops = []
    for _ in range(rd.u16()):
        tag = rd.u8()
        if tag == 1:
            ops.append({"op": "put", "previous": _record(rd) if rd.u8() else None})
        elif tag == 2:
            deleted = rd.u64()
            ops.append({"op": "del", "deleted": deleted, "records": _records(rd, False)})
        elif tag == 3:
            count = rd.u64()
            has_more = rd.u8()
            rev = rd.u64()
            ops.append({"op": "range", "count": count, "hasMore": bool(has_more), "revision": rev,
                        "records": _records(rd, False)})
        else:
            raise ProtocolError(f"op result tag {tag}")
    rd.done()
    res["results"] = ops
    return res


def parse_error(body: bytes) -> ServerError:
    rd = Reader(body)
    code = rd.varint()
    message = rd.vbytes().decode("utf-8", "replace")
    hint = rd.u8()
    leader = rd.varint() if hint & 1 else None
    address = None
    if hint & 2:
        host = rd.vbytes().decode()
        port = rd.u16()
        address = (host, port)
    return ServerError(code, message, leader, address)


def parse_status(body: bytes):
    rd = Reader(body)
    node = rd.varint()
    role = rd.u8()
    flags = rd.u8()
    term = rd.varint()
    leader = rd.varint() if flags & 2 else None
    st = {"id": node, "role": ROLE_NAMES.get(role, role), "isLearner": bool(flags & 1), "term": term,
          "leader": leader, "commitIndex": rd.varint(), "appliedIndex": rd.varint(),
          "treeSize": rd.varint(), "dbSizeBytes": rd.varint()}
    rd.done()
    return st


# --- a blocking connection -------------------------------------------------------------------

class Connection:
    """One TCP connection to a node's client port; one request at a time.

    After any failure the connection is closed, so a late answer to an abandoned request can
    never be taken for the answer to the next one.
    """

    def __init__(self, host: str, port: int, connect_timeout: float = 1.0):
        self.address = (host, port)
        self.sock = socket.create_connection(self.address, timeout=connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.next_id = 1

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the node")
            buf += chunk
        return bytes(buf)

    def request(self, kind: int, body: bytes, timeout: float):
        """Sends one request; returns (kind, body) of its answer. Raises socket.timeout,
        OSError/ConnectionError (closing the connection) or ProtocolError."""
        rid = self.next_id
        self.next_id += 1
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(frame(kind, rid, body))
            while True:
                length, akind, flags, arid, crc = parse_header(self._recv_exact(HEADER_BYTES))
                abody = self._recv_exact(length)
                if crc32c(abody) != crc:
                    raise ProtocolError("CRC mismatch")
                if arid == rid:
                    return akind, abody
        except BaseException:
            self.close()
            raise


def parse_journal_entry(body: bytes):
    """PROTOCOL.md journalEntryResponse: (index, term, type, payload)."""
    rd = Reader(body)
    index, term, etype = rd.varint(), rd.varint(), rd.u8()
    payload = rd.vbytes()
    rd.done()
    return index, term, etype, payload


def proposal_session(payload: bytes):
    """The (client ID, sequence) of a KV proposal payload (KV-COMMANDS.md), or None for a
    proposal without a session, an empty payload (a leader's no-op) or one that does not parse."""
    if len(payload) < 2 or payload[0] != 1 or not payload[1] & 0x01 or len(payload) < 18:
        return None
    return struct.unpack(">Q", payload[2:10])[0], struct.unpack(">Q", payload[10:18])[0]


def committed_sessions(conn: "Connection", last_index: int, timeout: float = 5.0):
    """Reads journal entries 1..last_index from one node; returns {(client ID, sequence):
    first revision} for every normal entry that carries a session. A session that appears
    twice (a retry proposed again) was applied once, at its first revision."""
    out = {}
    for index in range(1, last_index + 1):
        kind, body = conn.request(KIND_JOURNAL_ENTRY, varint(index), timeout)
        if kind == KIND_ERROR:
            raise parse_error(body)
        if kind != KIND_JOURNAL_ENTRY_RESPONSE:
            raise ProtocolError(f"journal entry {index}: answer kind {kind:#x}")
        got, _term, etype, payload = parse_journal_entry(body)
        if got != index:
            raise ProtocolError(f"asked for journal entry {index}, got {got}")
        session = proposal_session(payload) if etype == 0 else None
        if session is not None and session not in out:
            out[session] = index
    return out
