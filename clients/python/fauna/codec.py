"""Field encodings and frames of Fauna's wire protocol (docs/PROTOCOL.md "Frame", "Field
encodings"), written from the documents: no code is shared with the Swift side, so a misreading
of the spec shows up as an error against a real node.

Two length-prefixed byte encodings exist: PROTOCOL.md's `bytes` (varint length) on the wire, and
KV-COMMANDS.md's `bytes` (big-endian u32 length) inside proposals, results and records.
"""
from __future__ import annotations

import struct

MAGIC = b"FNA\x01"
HEADER = struct.Struct(">4sIBBQI")  # magic+version, body length, kind, flags, request ID, CRC32C
HEADER_BYTES = HEADER.size  # 22
BODY_BYTES_MAX = 16 << 20
FLAG_ONE_WAY = 0x01


class ProtocolError(Exception):
    """Bytes that do not follow docs/PROTOCOL.md (from the server, a file or the caller)."""


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`; 0 for empty input, as the frame header wants."""
    if not data:
        return 0
    c = 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(n: int) -> bytes:
    """Unsigned LEB128, shortest form."""
    if n < 0 or n >= 1 << 64:
        raise ValueError(f"varint out of range: {n}")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def vbytes(b: bytes) -> bytes:
    """PROTOCOL.md `bytes`: varint length, then the bytes."""
    return varint(len(b)) + bytes(b)


def vstring(s: str) -> bytes:
    """PROTOCOL.md `string`: UTF-8 as `bytes`."""
    return vbytes(s.encode())


def kvbytes(b: bytes) -> bytes:
    """KV-COMMANDS.md `bytes`: big-endian u32 length, then the bytes."""
    return struct.pack(">I", len(b)) + bytes(b)


def u8(n: int) -> bytes:
    return struct.pack(">B", n)


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def u64(n: int) -> bytes:
    return struct.pack(">Q", n)


class Reader:
    """Consumes a body; every read checks the bytes remaining and raises ProtocolError."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError(f"truncated: want {n} bytes at offset {self.pos}, have {len(self.data) - self.pos}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self.take(8))[0]

    def flag(self) -> bool:
        b = self.u8()
        if b > 1:
            raise ProtocolError(f"flag byte {b} at offset {self.pos - 1}, want 0 or 1")
        return b == 1

    def varint(self) -> int:
        n = 0
        for i in range(10):
            b = self.u8()
            if i == 9 and b > 1:
                raise ProtocolError("varint over 64 bits")
            n |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if i > 0 and b == 0:
                    raise ProtocolError("varint not in shortest form")
                return n
        raise ProtocolError("varint longer than 10 bytes")

    def vbytes(self, max_len: int | None = None, what: str = "bytes") -> bytes:
        n = self.varint()
        if max_len is not None and n > max_len:
            raise ProtocolError(f"{what}: {n} bytes, at most {max_len}")
        return self.take(n)

    def vstring(self, max_len: int | None = None, what: str = "string") -> str:
        try:
            return self.vbytes(max_len, what).decode()
        except UnicodeDecodeError as e:
            raise ProtocolError(f"{what}: not UTF-8") from e

    def kvbytes(self, max_len: int | None = None, what: str = "bytes") -> bytes:
        n = self.u32()
        if max_len is not None and n > max_len:
            raise ProtocolError(f"{what}: {n} bytes, at most {max_len}")
        return self.take(n)

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(f"{len(self.data) - self.pos} trailing bytes")


def frame(kind: int, request_id: int, body: bytes, flags: int = 0) -> bytes:
    """One frame: the 22-byte header, then the body."""
    if len(body) > BODY_BYTES_MAX:
        raise ValueError(f"body of {len(body)} bytes is over the frame limit of {BODY_BYTES_MAX}")
    return HEADER.pack(MAGIC, len(body), kind, flags, request_id, crc32c(body)) + bytes(body)


def parse_header(h: bytes) -> tuple[int, int, int, int, int]:
    """(body length, kind, flags, request ID, CRC32C) of a 22-byte header; ProtocolError if broken."""
    magic, length, kind, flags, rid, crc = HEADER.unpack(h)
    if magic != MAGIC:
        raise ProtocolError(f"magic/version {magic.hex()}, want {MAGIC.hex()}")
    if length > BODY_BYTES_MAX:
        raise ProtocolError(f"body length {length} over {BODY_BYTES_MAX}")
    return length, kind, flags, rid, crc
