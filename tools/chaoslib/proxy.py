"""A frame-aware TCP proxy between Fauna nodes' peer ports (run as its own process).

Every node is given its own cluster.toml in which the other nodes' `peer` addresses are this
proxy's ports, one listening port per destination node. The proxy reads the first frame of a
connection (`peerHello`: cluster name, from, to) to learn which directed link it carries, then
forwards whole frames in both directions under the current rules:

- `blocked`: directed links (a, b) whose frames are dropped (a partition; asymmetric if only
  one direction is listed). Frames sent by a to b are dropped whichever connection they use:
  a's Raft messages and snapshot chunks, and a's answers (welcome, snapshot acks) to b.
- `delay_ms` [lo, hi]: each frame waits a uniform random time in the range. Only Raft message
  frames (kind 0x02, one-way, self-contained) may overtake each other (`reorder`) or be sent
  twice (`dup`, a probability); every other frame keeps its order on its connection.

Rules come as one JSON object per line on stdin; each line replaces the previous rules. The
process exits when stdin closes (so it dies with the harness).

    python3 -m chaoslib.proxy '{"listen": {"1": [7621, 7601], ...}, "seed": 7}'

A secured cluster (`"tls": {"dir": "RUN/tls"}`, chaoslib.tls) has mutual TLS on its peer ports,
and the proxy terminates it on both sides, with the run's test CA. On its port for node nD it
presents nD's certificate (the dialling node checks that it names the node it dialled) and
requires a certificate of the CA; the peerHello inside must come `from` a node that
certificate names (as the node itself would check). It then dials nD with TLS as that source
node nS, presenting nS's certificate, and checks that nD's names nD. Frames are unchanged
inside. Handshakes are bounded by `TLS_HANDSHAKE_S`; refusals are counted (`tlsRefused`, the
last few reasons in `tlsReasons`) in the stats.
"""

import asyncio
import json
import os
import random
import ssl
import struct
import sys

from . import tls as tlslib

HEADER_BYTES = 22
KIND_RAFT_MESSAGES = 0x02


class Rules:
    def __init__(self):
        self.blocked = set()
        self.delay_ms = (0, 0)
        self.dup = 0.0
        self.reorder = False
        self.epoch = 0  # bumps on every change; connections opened under a partition notice it

    def update(self, d):
        self.blocked = {(int(a), int(b)) for a, b in d.get("blocked", [])}
        lo, hi = d.get("delay_ms", [0, 0])
        self.delay_ms = (float(lo), float(hi))
        self.dup = float(d.get("dup", 0.0))
        self.reorder = bool(d.get("reorder", False))
        self.epoch += 1


RULES = Rules()
RNG = random.Random(0)
STATS = {"frames": 0, "dropped": 0, "duplicated": 0, "connections": 0}
TLS_HANDSHAKE_S = 5.0
CLOSED = (ssl.SSLEOFError, ssl.SSLZeroReturnError)  # the other side went away (a killed node)


class TLS:
    """The contexts of a secured run: one server context per destination, one client context
    per source node (made when first needed: a node may join later)."""

    def __init__(self, directory, dst_ids):
        self.files = tlslib.Files(directory)
        self._servers = {d: tlslib.proxy_server_context(self.files, f"n{d}") for d in dst_ids}
        self._clients = {}

    def server(self, dst_id):
        return self._servers[dst_id]

    def client(self, src_id):
        ctx = self._clients.get(src_id)
        if ctx is None:
            cert, key = self.files.node_cert(f"n{src_id}")
            if not (os.path.isfile(cert) and os.path.isfile(key)):
                raise ValueError(f"no certificate for n{src_id} in {self.files.dir}")
            ctx = self._clients[src_id] = tlslib.proxy_client_context(self.files, f"n{src_id}")
        return ctx


TLS_STATE = None


def tls_refused(reason):
    STATS["tlsRefused"] = STATS.get("tlsRefused", 0) + 1
    reasons = STATS.setdefault("tlsReasons", [])
    if reason not in reasons:
        reasons.append(reason)
        del reasons[:-5]


async def read_frame(reader):
    header = await reader.readexactly(HEADER_BYTES)
    if header[:3] != b"FNA":
        raise ValueError("not a Fauna frame")
    (length,) = struct.unpack(">I", header[4:8])
    if length > 16 << 20:
        raise ValueError("frame too long")
    body = await reader.readexactly(length)
    return header, body


def parse_hello(body):
    """(from, to) of a peerHello body: string clusterName | varint from | varint to."""
    pos = 0

    def varint():
        nonlocal pos
        n = shift = 0
        while True:
            b = body[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7

    name_len = varint()
    pos += name_len
    return varint(), varint()


async def pump(reader, writer, src, dst):
    """Forwards frames sent by node `src` to node `dst` on one connection, under RULES."""
    loop = asyncio.get_running_loop()
    last_due = 0.0  # frames that must keep their order are never scheduled before this
    while True:
        header, body = await read_frame(reader)
        STATS["frames"] += 1
        if (src, dst) in RULES.blocked:
            STATS["dropped"] += 1
            continue
        data = header + body
        lo, hi = RULES.delay_ms
        if hi <= 0:
            if last_due <= loop.time():
                writer.write(data)
                continue
        delay = RNG.uniform(lo, hi) / 1000.0 if hi > 0 else 0.0
        now = loop.time()
        is_raft = header[8] == KIND_RAFT_MESSAGES
        due = now + delay
        if not (is_raft and RULES.reorder):
            due = max(due, last_due)
            last_due = due
        loop.call_at(due, _write, writer, data)
        if is_raft and RULES.dup > 0 and RNG.random() < RULES.dup:
            STATS["duplicated"] += 1
            loop.call_at(max(due, now + RNG.uniform(lo, hi) / 1000.0), _write, writer, data)
        if writer.transport.get_write_buffer_size() > 64 << 20:
            await writer.drain()


def _write(writer, data):
    if not writer.is_closing():
        writer.write(data)


async def handle(client_reader, client_writer, dst_port, dst_id):
    STATS["connections"] += 1
    server_writer = None
    try:
        if TLS_STATE is not None:  # the dialling node's handshake, this proxy as the destination
            try:
                await client_writer.start_tls(TLS_STATE.server(dst_id), ssl_handshake_timeout=TLS_HANDSHAKE_S)
            except ssl.SSLError as e:
                if not isinstance(e, CLOSED):
                    tls_refused(f"a node dialling n{dst_id}: {e}")
                return
        header, body = await asyncio.wait_for(read_frame(client_reader), 10)
        if header[8] != 0x01:
            return
        src, to = parse_hello(body)
        if to != dst_id:
            return
        if TLS_STATE is None:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", dst_port)
        else:
            names = tlslib.dns_names(client_writer.get_extra_info("peercert"))
            if f"n{src}" not in names:  # the node would refuse it too: do not speak for it
                tls_refused(f"hello from n{src} on a connection whose certificate names {sorted(names)}")
                return
            try:
                ctx = TLS_STATE.client(src)
            except (ValueError, OSError) as e:
                tls_refused(f"n{src}: {e}")
                return
            try:
                server_reader, server_writer = await asyncio.open_connection(
                    "127.0.0.1", dst_port, ssl=ctx, server_hostname=f"n{dst_id}",
                    ssl_handshake_timeout=TLS_HANDSHAKE_S)
            except ssl.SSLError as e:  # a down or paused node is an OSError/timeout, not counted
                if not isinstance(e, CLOSED):
                    tls_refused(f"dialling n{dst_id} as n{src}: {e}")
                return
        if (src, dst_id) not in RULES.blocked:
            server_writer.write(header + body)
        else:
            STATS["dropped"] += 1
        a = asyncio.ensure_future(pump(client_reader, server_writer, src, dst_id))
        b = asyncio.ensure_future(pump(server_reader, client_writer, dst_id, src))
        await asyncio.wait([a, b], return_when=asyncio.FIRST_COMPLETED)
        a.cancel()
        b.cancel()
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError):
        pass  # ssl.SSLError is an OSError
    except asyncio.CancelledError:
        pass  # the proxy is exiting (stdin closed) with this connection open: quietly
    finally:
        for w in (client_writer, server_writer):
            if w is not None:
                w.close()


async def control():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        line = line.strip()
        if not line:
            continue
        d = json.loads(line)
        if d.get("stats"):
            print(json.dumps(STATS), flush=True)
            continue
        RULES.update(d)
        print("ok", flush=True)


async def main(spec):
    global RNG, TLS_STATE
    RNG = random.Random(spec.get("seed", 0))
    if spec.get("tls"):
        TLS_STATE = TLS(spec["tls"]["dir"], [int(d) for d in spec["listen"]])
    servers = []
    for dst, (listen_port, real_port) in spec["listen"].items():
        dst_id = int(dst)
        servers.append(await asyncio.start_server(
            lambda r, w, p=real_port, d=dst_id: handle(r, w, p, d), "127.0.0.1", listen_port))
    print("ready", flush=True)
    await control()
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
