"""Secured runs (tools/chaos --tls): the fault proxy terminating TLS between nodes, and the
harness's own TLS connection to a client port, against fake nodes (no faunad).

Run: tools/chaos --self-test. Needs the openssl command (tools/tls-certs); skipped without it.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from fauna import codec

from chaoslib import tls as tlslib, wire

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tools/
KIND_PEER_HELLO = 0x01
KIND_RAFT_MESSAGES = 0x02


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hello(src, dst):
    return codec.frame(KIND_PEER_HELLO, 0, codec.vstring("chaos") + codec.varint(src) + codec.varint(dst))


def read_frames(sock, want, timeout=5.0):
    """Up to `want` frames from `sock`; fewer if it closes first or `timeout` passes."""
    decoder, frames = codec.FrameDecoder(), []
    deadline = time.monotonic() + timeout
    while len(frames) < want and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(1 << 16)
        except (socket.timeout, ssl.SSLError, ConnectionError):
            break
        if not data:
            break
        frames += decoder.feed(data)
    return frames


class FakeNode(threading.Thread):
    """A TLS port like a node's: presents `cert_name`'s certificate, requires one of the CA.
    Records each connection's client certificate names, frames and how it ended; answers every
    frame but a peer hello with its answer kind (kind | 0x80) and the same request ID, body b"re:" + body."""

    def __init__(self, files, cert_name):
        super().__init__(daemon=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_verify_locations(files.ca)
        self.ctx.load_cert_chain(*files.node_cert(cert_name))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns = []  # {"names", "cn", "frames", "end"}
        self.lock = threading.Lock()

    def run(self):
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(raw,), daemon=True).start()

    def serve(self, raw):
        rec = {"names": None, "cn": None, "frames": [], "end": None}
        with self.lock:
            self.conns.append(rec)
        try:
            raw.settimeout(5)
            s = self.ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
        except (OSError, ValueError) as e:
            rec["end"] = f"handshake: {e}"
            raw.close()
            return
        rec["names"] = tlslib.dns_names(s.getpeercert())
        rec["cn"] = dict(x[0] for x in s.getpeercert().get("subject", ())).get("commonName")
        decoder = codec.FrameDecoder()
        try:
            while True:
                data = s.recv(1 << 16)
                if not data:
                    rec["end"] = "close_notify"
                    return
                for f in decoder.feed(data):
                    rec["frames"].append(f)
                    if f.kind != KIND_PEER_HELLO:
                        s.sendall(codec.frame(f.kind | 0x80, f.request_id, b"re:" + f.body))
        except (OSError, ValueError) as e:
            rec["end"] = f"{type(e).__name__}: {e}"
        finally:
            s.close()

    def wait_conns(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.conns) >= n:
                    return list(self.conns)
            time.sleep(0.02)
        with self.lock:
            return list(self.conns)

    def stop(self):
        self.listener.close()


@unittest.skipUnless(shutil.which("openssl"), "the openssl command is missing (tools/tls-certs needs it)")
class Secured(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.files = tlslib.make_certs(os.path.join(cls.tmp.name, "tls"), ["n1", "n2", "n3"])
        cls.foreign = tlslib.make_certs(os.path.join(cls.tmp.name, "other"), ["n1"])  # another CA

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.node = None
        self.proxy = None

    def tearDown(self):
        if self.proxy is not None:
            self.proxy.stdin.close()
            try:
                self.proxy.wait(5)
            except subprocess.TimeoutExpired:
                self.proxy.kill()
                self.proxy.wait(5)
            self.proxy.stdout.close()
        if self.node is not None:
            self.node.stop()
        wire.use_tls(None)

    # --- helpers ---------------------------------------------------------------------------

    def start(self, node_cert="n2"):
        """A fake n2 (presenting `node_cert`'s certificate) behind the proxy's port for n2."""
        self.node = FakeNode(self.files, node_cert)
        self.node.start()
        self.proxy_port = free_port()
        spec = {"listen": {"2": [self.proxy_port, self.node.port]}, "seed": 1, "tls": {"dir": self.files.dir}}
        self.proxy = subprocess.Popen([sys.executable, "-m", "chaoslib.proxy", json.dumps(spec)], cwd=HERE,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.assertEqual(self.proxy.stdout.readline().strip(), "ready")

    def stats(self):
        self.proxy.stdin.write('{"stats": true}\n')
        self.proxy.stdin.flush()
        return json.loads(self.proxy.stdout.readline())

    def dial(self, files, cert_name):
        """A node dialling the proxy's port for n2, as faunad does: its certificate presented,
        the proxy's verified against `files`' CA."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.load_verify_locations(self.files.ca)
        if cert_name is not None:
            ctx.load_cert_chain(*files.node_cert(cert_name))
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.proxy_port), timeout=5))
        self.addCleanup(s.close)
        return s

    def refused(self, s, src, reason_part):
        s.sendall(hello(src, 2) + codec.frame(KIND_RAFT_MESSAGES, 0, b"vote"))
        self.assertEqual(read_frames(s, 1, timeout=5.0), [], "the proxy must not answer for a refused node")
        st = self.stats()
        self.assertGreaterEqual(st.get("tlsRefused", 0), 1, st)
        self.assertTrue(any(reason_part in r for r in st.get("tlsReasons", [])), st)
        for c in self.node.wait_conns(1, timeout=0.5):
            self.assertNotIn(KIND_RAFT_MESSAGES, [f.kind for f in c["frames"]], "a refused frame reached the node")

    # --- the proxy ---------------------------------------------------------------------------

    def test_forwards_frames_as_the_source_node(self):
        self.start()
        s = self.dial(self.files, "n1")
        self.assertIn("n2", tlslib.dns_names(s.getpeercert()), "the proxy must present the destination's certificate")
        s.sendall(hello(1, 2) + codec.frame(KIND_RAFT_MESSAGES, 0, b"append") + codec.frame(KIND_RAFT_MESSAGES, 0, b"vote"))
        answers = read_frames(s, 2)
        self.assertEqual([f.body for f in answers], [b"re:append", b"re:vote"])
        conns = self.node.wait_conns(1)
        self.assertEqual(len(conns), 1)
        self.assertIn("n1", conns[0]["names"], "the proxy must dial as the source node")
        got = conns[0]["frames"]
        self.assertEqual([f.kind for f in got], [KIND_PEER_HELLO, KIND_RAFT_MESSAGES, KIND_RAFT_MESSAGES])
        self.assertEqual(got[0].body, codec.vstring("chaos") + codec.varint(1) + codec.varint(2))
        self.assertEqual(self.stats().get("tlsRefused", 0), 0)

    def test_partition_rules_apply_inside_tls(self):
        self.start()
        s = self.dial(self.files, "n1")
        s.sendall(hello(1, 2))
        self.assertEqual(len(self.node.wait_conns(1)), 1)
        self.proxy.stdin.write(json.dumps({"blocked": [[1, 2]]}) + "\n")
        self.proxy.stdin.flush()
        self.assertEqual(self.proxy.stdout.readline().strip(), "ok")
        s.sendall(codec.frame(KIND_RAFT_MESSAGES, 0, b"lost"))
        self.assertEqual(read_frames(s, 1, timeout=1.0), [])
        self.assertGreaterEqual(self.stats()["dropped"], 1)

    def test_refuses_a_hello_its_certificate_does_not_name(self):
        self.start()
        self.refused(self.dial(self.files, "n1"), 3, "hello from n3")

    def test_refuses_a_certificate_of_another_ca(self):
        self.start()
        try:
            s = self.dial(self.foreign, "n1")
        except (ssl.SSLError, ConnectionError):
            s = None  # refused within the handshake
        if s is not None:  # TLS 1.3: the refusal comes after the client's side of the handshake
            self.refused(s, 1, "a node dialling n2")
        else:
            self.assertGreaterEqual(self.stats().get("tlsRefused", 0), 1)

    def test_refuses_a_node_without_a_certificate(self):
        self.start()
        try:
            s = self.dial(self.files, None)
        except (ssl.SSLError, ConnectionError):
            s = None
        if s is not None:
            self.refused(s, 1, "a node dialling n2")
        else:
            self.assertGreaterEqual(self.stats().get("tlsRefused", 0), 1)

    def test_dials_only_a_node_whose_certificate_names_it(self):
        self.start(node_cert="n3")  # the port for n2 answered by a node with n3's certificate
        s = self.dial(self.files, "n1")
        s.sendall(hello(1, 2) + codec.frame(KIND_RAFT_MESSAGES, 0, b"vote"))
        self.assertEqual(read_frames(s, 1, timeout=5.0), [])
        st = self.stats()
        self.assertTrue(any("dialling n2 as n1" in r for r in st.get("tlsReasons", [])), st)
        for c in self.node.wait_conns(1, timeout=0.5):
            self.assertEqual(c["frames"], [], "nothing may reach a node that is not the one dialled")

    # --- the harness's client connection ----------------------------------------------------------

    def test_client_connection_speaks_tls_and_closes_cleanly(self):
        self.node = FakeNode(self.files, "n1")
        self.node.start()
        wire.use_tls(tlslib.client_context(self.files))
        c = wire.Connection("127.0.0.1", self.node.port, connect_timeout=5.0)
        self.assertEqual(c.request(0x10, b"status?", 5.0), (0x90, b"re:status?"))
        self.assertEqual(c.request(0x11, b"again", 5.0), (0x91, b"re:again"))
        c.close()
        conns = self.node.wait_conns(1)
        self.assertEqual(conns[0]["cn"], "root", "the harness must present the client certificate")
        deadline = time.monotonic() + 5
        while conns[0]["end"] is None and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(conns[0]["end"], "close_notify", "the harness must end its TLS sessions cleanly")

    def test_plaintext_connection_to_a_tls_port_fails(self):
        self.node = FakeNode(self.files, "n1")
        self.node.start()
        c = wire.Connection("127.0.0.1", self.node.port, connect_timeout=5.0)
        with self.assertRaises((OSError, wire.ProtocolError)):
            c.request(0x10, b"status?", 5.0)


if __name__ == "__main__":
    unittest.main()
