"""Field encodings and frames of Fauna's wire protocol (docs/PROTOCOL.md "Frame", "Field
encodings"), written from the documents: no code is shared with the Swift side, so a misreading
of the spec shows up as an error against a real node.

Two length-prefixed byte encodings exist: PROTOCOL.md's `bytes` (varint length) on the wire, and
KV-COMMANDS.md's `bytes` (big-endian u32 length) inside proposals, results and records.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Optional

from .errors import ProtocolError

__all__ = [
    "MAGIC", "HEADER", "HEADER_BYTES", "BODY_BYTES_MAX", "FLAG_MORE", "FLAG_ONE_WAY", "ProtocolError", "crc32c",
    "varint", "vbytes", "vstring", "kvbytes", "u8", "u16", "u32", "u64", "Reader", "frame", "parse_header",
    "Frame", "FrameDecoder",
]

MAGIC = b"FNA\x01"
HEADER = struct.Struct(">4sIBBQI")  # magic+version, body length, kind, flags, request ID, CRC32C
HEADER_BYTES = HEADER.size  # 22
BODY_BYTES_MAX = 16 << 20
FLAG_MORE = 0x01  # docs/PROTOCOL.md "Frame": bit 0 `more` (a streamed answer continues)
FLAG_ONE_WAY = FLAG_MORE  # the old name of the same bit, kept for existing callers


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


def u16(n: int) -> bytes:
    return struct.pack(">H", n)


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
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "big")

    def flag(self) -> bool:
        b = self.u8()
        if b > 1:
            raise ProtocolError(f"flag byte {b} at offset {self.pos - 1}, want 0 or 1")
        return b == 1

    def varint(self) -> int:
        """PROTOCOL.md `varint`: at most 10 bytes, the 10th 0 or 1, shortest form only."""
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
    """(body length, kind, flags, request ID, CRC32C) of a 22-byte header; ProtocolError if broken
    (magic, version, length over BODY_BYTES_MAX, reserved flags)."""
    if len(h) != HEADER_BYTES:
        raise ProtocolError(f"frame header of {len(h)} bytes, want {HEADER_BYTES}")
    return FrameDecoder().check_header(bytes(h))


@dataclass(frozen=True)
class Frame:
    """One received frame; the header was checked and the body's CRC32C verified."""
    kind: int
    flags: int
    request_id: int
    body: bytes

    @property
    def more(self) -> bool:
        return bool(self.flags & FLAG_MORE)


class FrameDecoder:
    """Splits a byte stream into frames, checking what docs/PROTOCOL.md "Frame" asks a receiver
    to check, in its order: magic and version, length within `body_bytes_max` (before any body
    byte is buffered), kind accepted by `accept_kind`, reserved flag bits zero; then the CRC32C
    of the whole body. Any failure raises ProtocolError, after which the decoder (and the
    connection it reads) must be dropped.

    Holds at most one partial frame: `feed` returns every complete frame so far.
    """

    def __init__(self, accept_kind: Optional[Callable[[int], bool]] = None, body_bytes_max: int = BODY_BYTES_MAX):
        self._buf = bytearray()
        self._header: Optional[tuple[int, int, int, int, int]] = None
        self._accept = accept_kind
        self._max = body_bytes_max

    @property
    def buffered(self) -> int:
        """Bytes held that belong to a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        while True:
            if self._header is None:
                if len(self._buf) < HEADER_BYTES:
                    return out
                self._header = self.check_header(bytes(self._buf[:HEADER_BYTES]))
                del self._buf[:HEADER_BYTES]
            length, kind, flags, rid, crc = self._header
            if len(self._buf) < length:
                return out
            body = bytes(self._buf[:length])
            del self._buf[:length]
            self._header = None
            got = crc32c(body)
            if got != crc:
                raise ProtocolError(f"frame kind {kind:#04x} request {rid}: body CRC32C {got:08x}, header says {crc:08x}")
            out.append(Frame(kind, flags, rid, body))

    def check_header(self, h: bytes) -> tuple[int, int, int, int, int]:
        """(body length, kind, flags, request ID, CRC32C) of a header, checked in the order of
        docs/PROTOCOL.md "Frame"."""
        magic, length, kind, flags, rid, crc = HEADER.unpack(h)
        if magic[:3] != MAGIC[:3]:
            raise ProtocolError(f"magic {magic[:3].hex()}, want {MAGIC[:3].hex()} (\"FNA\")")
        if magic[3] != MAGIC[3]:
            raise ProtocolError(f"protocol version {magic[3]}, want {MAGIC[3]}")
        if length > self._max:
            raise ProtocolError(f"body length {length} over the limit of {self._max} bytes")
        if self._accept is not None and not self._accept(kind):
            raise ProtocolError(f"frame kind {kind:#04x} not accepted here")
        if flags & ~FLAG_MORE:
            raise ProtocolError(f"reserved frame flag bits set: {flags:#04x}")
        return length, kind, flags, rid, crc
