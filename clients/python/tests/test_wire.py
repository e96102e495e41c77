"""The codecs against docs/PROTOCOL.md: every example of its "Examples" section (read from the
markdown, so the test follows the document), field encodings, frame checks, and decoders that
fail only with ProtocolError."""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Callable

import pytest

from fauna import codec, errors, wire
from fauna.codec import FrameDecoder, Reader, frame
from fauna.wire import Kind

DOC = Path(__file__).resolve().parents[3] / "docs" / "PROTOCOL.md"


def doc_examples() -> dict[int, tuple[str, bytes]]:
    """{number: (title, frame bytes)} of every "### N. title" example with a code block."""
    text = DOC.read_text()
    section = text[text.index("## Examples"):]
    out: dict[int, tuple[str, bytes]] = {}
    for m in re.finditer(r"^### (\d+)\. (.+?)\n+```\n(.*?)```", section, re.S | re.M):
        data = bytearray()
        for line in m.group(3).splitlines():
            line = re.sub(r"^(header|body)\b", "", line).strip()
            hexpart = re.split(r"\s{2,}", line, maxsplit=1)[0]
            tokens = hexpart.split()
            assert tokens and all(re.fullmatch(r"[0-9a-f]{2}", t) for t in tokens), f"example {m.group(1)}: {line!r}"
            data += bytes(int(t, 16) for t in tokens)
        out[int(m.group(1))] = (m.group(2), bytes(data))
    return out


EXAMPLES = doc_examples()


def test_the_doc_has_the_examples() -> None:
    assert sorted(EXAMPLES) == list(range(1, len(EXAMPLES) + 1)) and len(EXAMPLES) >= 5


def _one_frame(data: bytes, accept: Callable[[int], bool] | None = None) -> codec.Frame:
    frames = FrameDecoder(accept).feed(data)
    assert len(frames) == 1
    return frames[0]


def _check_write(f: codec.Frame) -> None:  # 1. put k1 = v1, session (77, 1)
    p = wire.decode_proposal(f.body)
    assert p == wire.Proposal(wire.Put(b"k1", b"v1"), 77, 1)
    assert p.encode() == f.body


def _check_write_response(f: codec.Frame) -> None:  # 2. success at revision 12, one put result
    r = wire.decode_apply_result(f.body)
    assert (r.revision, r.is_replay, r.outcome, r.succeeded) == (12, False, wire.Outcome.SUCCESS, True)
    assert r.results == [wire.PutOpResult(None)]
    assert r.encode() == f.body


def _check_read(f: codec.Frame) -> None:  # 3. get k1, linearizable
    r = wire.decode_read_request(f.body)
    assert r == wire.ReadRequest(wire.RangeRequest(wire.KeyRange.single(b"k1")), serializable=False)
    assert r.encode() == f.body


def _check_error(f: codec.Frame) -> None:  # 4. notLeader, leader n2 at 127.0.0.1:7102
    e = wire.decode_error(f.body)
    assert isinstance(e, errors.NotLeader)
    assert (e.code, e.code_name, e.message, e.leader, e.leader_address) == \
        (1, "notLeader", "not the leader", 2, ("127.0.0.1", 7102))
    assert wire.encode_error(e) == f.body


def _check_raft_messages(f: codec.Frame) -> None:  # 5. a peer message: header checks only
    # Not a client message (peer port); its header and CRC are checked above, and a client
    # refuses the kind on its own port.
    assert f.request_id == 0 and f.body[0] == 1 and f.body[1] == 7
    with pytest.raises(errors.ProtocolError, match="kind 0x02"):
        FrameDecoder(wire.ANSWER_KINDS.__contains__).feed(frame(f.kind, f.request_id, f.body))


CHECKS = {Kind.WRITE: _check_write, Kind.WRITE_RESPONSE: _check_write_response, Kind.READ: _check_read,
          Kind.ERROR: _check_error, Kind.RAFT_MESSAGES: _check_raft_messages}


@pytest.mark.parametrize("number", sorted(EXAMPLES))
def test_doc_example(number: int) -> None:
    title, data = EXAMPLES[number]
    f = _one_frame(data)  # magic, version, length, flags and the CRC32C of the body
    assert len(data) == codec.HEADER_BYTES + len(f.body)
    m = re.search(r"request ID (\d+)", title)
    assert f.request_id == (int(m.group(1)) if m else 0)
    assert Kind(f.kind).name.lower().replace("_", "") == title.split(":")[0].lower(), title
    check = CHECKS.get(Kind(f.kind))
    assert check is not None, f"example {number} ({title}): no check for kind {f.kind:#04x}"
    check(f)
    assert frame(f.kind, f.request_id, f.body) == data  # our encoder writes the same bytes


# --- field encodings -------------------------------------------------------------------------

@pytest.mark.parametrize("n,enc", [(0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"),
                                   (16383, "ff7f"), (16384, "808001"),
                                   (2**63, "80808080808080808001"), (2**64 - 1, "ffffffffffffffffff01")])
def test_varint_round_trip(n: int, enc: str) -> None:
    assert codec.varint(n).hex() == enc
    rd = Reader(bytes.fromhex(enc))
    assert rd.varint() == n
    rd.done()


@pytest.mark.parametrize("enc,why", [
    ("8000", "shortest"), ("ff00", "shortest"), ("ffffffffffffffffff02", "64 bits"),
    ("ffffffffffffffffff80", "64 bits"), ("80", "truncated"), ("", "truncated"),
])
def test_varint_rejects(enc: str, why: str) -> None:
    with pytest.raises(errors.ProtocolError, match=why):
        Reader(bytes.fromhex(enc)).varint()


def test_varint_encoder_range() -> None:
    for bad in (-1, 2**64):
        with pytest.raises(ValueError):
            codec.varint(bad)


def test_reader_checks() -> None:
    with pytest.raises(errors.ProtocolError, match="flag"):
        Reader(b"\x02").flag()
    with pytest.raises(errors.ProtocolError, match="UTF-8"):
        Reader(b"\x01\xff").vstring()
    with pytest.raises(errors.ProtocolError, match="at most"):
        Reader(b"\x05hello").vbytes(4)
    with pytest.raises(errors.ProtocolError, match="trailing"):
        rd = Reader(b"\x00\x00")
        rd.u8()
        rd.done()
    with pytest.raises(errors.ProtocolError, match="truncated"):
        Reader(b"\x00\x00\x00\x09abc").kvbytes()


def test_crc32c_known_answers() -> None:
    assert codec.crc32c(b"") == 0
    assert codec.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert codec.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4


# --- frames ----------------------------------------------------------------------------------

GOOD = frame(Kind.STATUS_RESPONSE, 9, b"\x01\x03\x00\x05\x0a\x0a\x0a\x00")


def test_frame_decoder_splits_and_joins() -> None:
    d = FrameDecoder()
    stream = GOOD + frame(Kind.ERROR, 10, b"") + GOOD
    got = []
    for i in range(len(stream)):  # one byte at a time
        got += d.feed(stream[i:i + 1])
    assert [(f.kind, f.request_id) for f in got] == [(0xA0, 9), (0xFF, 10), (0xA0, 9)]
    assert d.buffered == 0
    assert got[1].body == b""
    assert FrameDecoder().feed(GOOD[:-1]) == []  # a truncated frame waits for the rest


@pytest.mark.parametrize("mutate,why", [
    (lambda b: b"FNB" + b[3:], "magic"),
    (lambda b: b[:3] + b"\x02" + b[4:], "version"),
    (lambda b: b[:9] + b"\x02" + b[10:], "reserved"),
    (lambda b: b[:8] + b"\x77" + b[9:], "kind"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "CRC32C"),
    (lambda b: b[:18] + b"\x00\x00\x00\x00" + b[22:], "CRC32C"),
])
def test_frame_decoder_rejects(mutate: Callable[[bytes], bytes], why: str) -> None:
    with pytest.raises(errors.ProtocolError, match=why):
        FrameDecoder(lambda k: k in wire.ANSWER_KINDS).feed(mutate(GOOD))


def test_oversized_frame_is_refused_from_the_header_alone() -> None:
    header = codec.HEADER.pack(codec.MAGIC, 1025, Kind.READ_RESPONSE, 0, 1, 0)
    with pytest.raises(errors.ProtocolError, match="over the limit"):
        FrameDecoder(body_bytes_max=1024).feed(header)  # no body byte needed
    big = codec.HEADER.pack(codec.MAGIC, codec.BODY_BYTES_MAX + 1, Kind.READ_RESPONSE, 0, 1, 0)
    with pytest.raises(errors.ProtocolError):
        codec.parse_header(big)
    with pytest.raises(ValueError):
        frame(Kind.WRITE, 1, bytes(codec.BODY_BYTES_MAX + 1))


def test_client_accepts_answer_kinds_only() -> None:
    assert Kind.WRITE not in wire.ANSWER_KINDS and Kind.PEER_WELCOME not in wire.ANSWER_KINDS
    assert {Kind.WRITE_RESPONSE, Kind.ERROR, Kind.SIGNED_TREE_HEAD_RESPONSE} <= wire.ANSWER_KINDS
    assert Kind.PEER_HELLO not in wire.REQUEST_KINDS and Kind.MEMBERSHIP_CHANGES in wire.REQUEST_KINDS


# --- messages --------------------------------------------------------------------------------

def _records() -> list[wire.Record]:
    return [wire.Record(b"a", b"1", 3, 4, 2), wire.Record(b"b\x00", b"", 5, 5, 1)]


SAMPLES: dict[str, tuple[bytes, Callable[[bytes], object]]] = {
    "apply": (wire.ApplyResult(40, True, 0, True, [
        wire.PutOpResult(wire.Record(b"", b"old", 1, 2, 2)), wire.DeleteOpResult(2, _records()),
        wire.RangeResult(_records(), 7, True, 40)]).encode(), wire.decode_apply_result),
    "range": (wire.RangeResult(_records(), 2, False, 9).encode(), wire.decode_range_result),
    "status": (b"\x02\x03\x03\x07\x02\x0a\x09\x09\x80\x01", wire.decode_status),
    "members": (wire.encode_members([wire.Member(1, wire.Endpoint("h", 1), wire.Endpoint("h", 2), False, b"k" * 32),
                                     wire.Member(4, wire.Endpoint("::1", 3), wire.Endpoint("x", 4), True)]),
                wire.decode_members),
    "hashkv": (b"\x01\x0a\x02\x20" + bytes(32) + b"\x09\x20" + bytes(32), wire.decode_hashkv),
    "proposal": (wire.Proposal(wire.Txn([wire.value(b"k") == b"v", wire.version(b"k") > 2],
                                        [wire.Put(b"k", b"w", prev=True),
                                         wire.DeleteRange(wire.KeyRange.prefix(b"p"))],
                                        [wire.RangeRequest(wire.KeyRange(b"a", None), 5, 3, True, True)]),
                               1, 2).encode(), wire.decode_proposal),
    "error": (wire.encode_error(errors.server_error(11, "behind", leader=3)), wire.decode_error),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_decoders_round_trip(name: str) -> None:
    body, decode = SAMPLES[name]
    value = decode(body)
    again = {"apply": lambda v: v.encode(), "range": lambda v: v.encode(), "members": wire.encode_members,
             "proposal": lambda v: v.encode(), "error": wire.encode_error}.get(name)
    if again is not None:
        assert again(value) == body


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_decoders_fail_only_with_protocol_error(name: str) -> None:
    body, decode = SAMPLES[name]
    for cut in range(len(body)):  # every truncation
        with pytest.raises(errors.ProtocolError):
            decode(body[:cut])
    with pytest.raises(errors.ProtocolError):
        decode(body + b"\x00")  # trailing bytes
    rng = random.Random(name)
    for _ in range(300):  # random corruption: a value or ProtocolError, nothing else
        b = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        try:
            decode(bytes(b))
        except errors.ProtocolError:
            pass


def test_status_fields() -> None:
    st = wire.decode_status(SAMPLES["status"][0])
    assert st == wire.NodeStatus(2, "leader", True, 7, 2, 10, 9, 9, 128)


def test_error_codes_map_to_classes() -> None:
    assert isinstance(wire.decode_error(b"\x05\x00\x00"), errors.Compacted)
    unknown = wire.decode_error(b"\x90\x03\x02hi\x00")  # code 400 from a newer node
    assert isinstance(unknown, errors.InternalError) and unknown.code == 400 and unknown.code_name == "code400"
    with pytest.raises(errors.ProtocolError, match="address without a leader"):
        wire.decode_error(b"\x01\x00\x02\x01a\x00\x01")
    with pytest.raises(errors.ProtocolError, match="65535"):
        wire.decode_error(codec.varint(65536) + b"\x00\x00")


def test_record_invariants_are_checked() -> None:
    bad = wire.RangeResult([wire.Record(b"a", b"", 5, 4, 1)], 1, False, 9).encode()  # create > mod
    with pytest.raises(errors.ProtocolError, match="create"):
        wire.decode_range_result(bad)


def test_encoders_check_limits() -> None:
    with pytest.raises(errors.InvalidArgument):
        wire.Proposal(wire.Put(b"k", b"v" * (wire.VALUE_BYTES_MAX + 1))).encode()
    with pytest.raises(errors.InvalidArgument):
        wire.Proposal(wire.Compact(0)).encode()
    with pytest.raises(errors.InvalidArgument):
        wire.Proposal(wire.Put(b"k", b"v"), 5, 0).encode()  # sequence 0
    with pytest.raises(errors.InvalidArgument):
        wire.Proposal(wire.Txn([wire.value(b"k") == b"v"] * 129)).encode()
    with pytest.raises(errors.InvalidArgument):
        wire.ReadRequest(wire.RangeRequest(wire.KeyRange.single(b"k"), limit=0)).encode()
    with pytest.raises(TypeError):
        wire.KeyRange.single("k")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wire.version(b"k") == b"3"  # noqa: B015  (a version compares with an int)


def test_key_ranges() -> None:
    assert wire.KeyRange.prefix(b"ab") == wire.KeyRange(b"ab", b"ac")
    assert wire.KeyRange.prefix(b"a\xff\xff") == wire.KeyRange(b"a\xff\xff", b"b")
    assert wire.KeyRange.prefix(b"\xff") == wire.KeyRange(b"\xff", None)
    assert wire.KeyRange.single(b"k").encode() == bytes.fromhex("000000016b 01 000000026b00".replace(" ", ""))


def test_endpoint_parse() -> None:
    assert wire.Endpoint.parse("127.0.0.1:7101") == ("127.0.0.1", 7101)
    assert wire.Endpoint.parse("[::1]:80") == ("::1", 80) and str(wire.Endpoint("::1", 80)) == "[::1]:80"
    for bad in ("nohost", ":80", "h:0", "h:70000", "h:x"):
        with pytest.raises(errors.InvalidArgument):
            wire.Endpoint.parse(bad)


# --- leases (docs/KV-COMMANDS.md "Leases") ---------------------------------------------------

def test_a_leased_record_is_version_2_and_round_trips() -> None:
    leased = wire.Record(b"k", b"v", 2, 4, 2, lease=3)
    body = leased.encode_record()
    assert body[0] == 2 and len(body) == 1 + 32 + 4 + 1
    assert wire.Record.read(Reader(body), b"k") == leased
    plain = wire.Record(b"k", b"v", 2, 4, 2)
    assert plain.encode_record()[0] == 1
    zero = bytearray(body)
    zero[25:33] = bytes(8)
    with pytest.raises(errors.ProtocolError):
        wire.Record.read(Reader(bytes(zero)), b"k")


def test_a_put_with_a_lease_and_a_grant_result_round_trip() -> None:
    put = wire.Put(b"k", b"v", lease=7)
    body = put.encode_body()
    assert body[0] == 4
    assert wire.Put.read(Reader(body)) == put
    result = wire.ApplyResult(9, False, wire.Outcome.SUCCESS, succeeded=True, results=[wire.LeaseOpResult(9, 60)])
    assert wire.decode_apply_result(result.encode()).results == [wire.LeaseOpResult(9, 60)]
    assert wire.INVALID_CODES[6] == "leaseNotFound"
    assert errors.ERROR_NAMES[12] == "leaseNotFound"


def test_watch_frames_decode_as_the_swift_side_encodes_them() -> None:
    # Bytes of `WatchResponse.events` for a put of "app/a" = "v" (create 5, version 2, lease 0,
    # previous "u" at 5) at revision 13 and a delete of "app/b" at 14; completeThrough 14.
    body = bytes([2, 14, 2, 1, 13, 5]) + b"app/a" + bytes([5, 2, 0, 1]) + b"v" + bytes([1, 5, 5, 1, 0, 1]) + b"u" \
        + bytes([2, 14, 5]) + b"app/b" + bytes([0])
    kind, through, events = wire.decode_watch_response(body)
    assert (kind, through) == ("events", 14)
    assert [(e.kind, e.key, e.revision) for e in events] == [("put", b"app/a", 13), ("delete", b"app/b", 14)]
    assert events[0].record is not None and events[0].record.value == b"v" and events[0].record.version == 2
    assert events[0].previous is not None and events[0].previous.value == b"u"
    assert wire.decode_watch_response(bytes([5, 9])) == ("compacted", 9)
    assert wire.encode_watch_request(wire.KeyRange.prefix(b"app/"), 12, wire.WATCH_PREV_VALUE) == \
        bytes([1, 4]) + b"app/" + bytes([1, 4]) + b"app0" + bytes([12])
    with pytest.raises(errors.ProtocolError):
        wire.decode_watch_response(bytes([2, 1, 0]))


def test_lease_commands_round_trip_and_checkpoints_are_leader_only() -> None:
    for cmd in (wire.LeaseGrant(30), wire.LeaseGrant(5, 77), wire.LeaseRevoke(9)):
        assert wire.decode_proposal(wire.Proposal(cmd, 1, 2).encode()).command == cmd
    checkpoint = wire.LeaseCheckpoint(((7, 1500), (9, 0)))
    payload = bytes([1, 0, 9]) + checkpoint.encode_body()
    assert wire.decode_proposal(payload).command == checkpoint
    with pytest.raises(wire.InvalidArgument):
        wire.Proposal(checkpoint).encode()
    with pytest.raises(wire.ProtocolError):
        wire.decode_proposal(bytes([1, 0, 7]) + codec.u64(1) + codec.u64(0))  # TTL 0
    assert wire.decode_lease_keep_alive_response(wire.encode_lease_keep_alive(300) + bytes([60])) == (300, 60)
    with pytest.raises(wire.ProtocolError):
        wire.decode_lease_keep_alive_response(bytes([0, 60]))


def test_a_write_refused_for_its_user_is_a_typed_error() -> None:
    from fauna.errors import AuthRequired, PermissionDenied, server_error
    from fauna.wire import ApplyResult, Outcome, apply_result_error
    for code, cls in ((10, PermissionDenied), (9, AuthRequired)):
        res = ApplyResult(12, False, Outcome.INVALID, invalid_code=code, reason="user alice may not write other/y")
        err = apply_result_error(res)
        assert isinstance(err, cls) and "alice" in str(err)
    other = apply_result_error(ApplyResult(12, False, Outcome.INVALID, invalid_code=12, reason="system key"))
    assert other is not None and not isinstance(other, PermissionDenied) and "reservedKey" in str(other)
    assert isinstance(server_error(16, "no"), PermissionDenied)


def test_journal_proposals_with_a_principal_and_auth_commands_decode() -> None:
    from fauna.codec import kvbytes
    # What the leader proposes for alice's `fctl role grant app-rw readwrite app/ --prefix`,
    # with a session: flags 0x03, session, principal, tag 10 roleGrant (KV-COMMANDS.md).
    body = (bytes([1, 0x03]) + (7).to_bytes(8, "big") + (2).to_bytes(8, "big") + kvbytes(b"alice")
            + bytes([10, 10]) + kvbytes(b"app-rw") + bytes([3]) + kvbytes(b"app/") + b"\x01" + kvbytes(b"app0"))
    p = wire.decode_proposal(body)
    assert (p.client_id, p.sequence, p.principal) == (7, 2, b"alice")
    assert isinstance(p.command, wire.Auth) and p.command.op == "roleGrant" and p.command.name == b"app-rw"
    assert p.command.access == 3 and p.command.range == wire.KeyRange(b"app/", b"app0")
    # A put with an empty principal (no user bound), and a user add with a password hash.
    put = bytes([1, 0x02]) + kvbytes(b"") + bytes([1, 0]) + kvbytes(b"k") + kvbytes(b"v")
    assert wire.decode_proposal(put).principal == b"" and isinstance(wire.decode_proposal(put).command, wire.Put)
    add = bytes([1, 0, 10, 3]) + kvbytes(b"bob") + b"\x01" + bytes([15]) + (8).to_bytes(4, "big") + (1).to_bytes(4, "big") \
        + kvbytes(b"s" * 16) + kvbytes(b"h" * 32)
    cmd = wire.decode_proposal(add).command
    assert isinstance(cmd, wire.Auth) and cmd.op == "userAdd" and cmd.has_password
    with pytest.raises(errors.ProtocolError):
        wire.decode_proposal(bytes([1, 0x04]) + put[2:])
    with pytest.raises(errors.InvalidArgument):
        wire.Proposal(wire.Put(b"k", b"v"), principal=b"alice").encode()


def test_the_leaders_state_level_entry_decodes() -> None:
    # What a new leader proposes first: flags 0, tag 11 upgradeState, u32 level 2 (KV-COMMANDS.md).
    p = wire.decode_proposal(bytes([1, 0, 11, 0, 0, 0, 2]))
    assert p.command == wire.UpgradeState(2) and p.client_id is None and p.principal is None
    for level in (0, 3):
        with pytest.raises(errors.ProtocolError):
            wire.decode_proposal(bytes([1, 0, 11]) + level.to_bytes(4, "big"))
    with pytest.raises(errors.ProtocolError):
        wire.decode_proposal(bytes([1, 0, 11, 0, 0, 2]))
    with pytest.raises(errors.ProtocolError):
        wire.decode_proposal(bytes([1, 0, 12]))
