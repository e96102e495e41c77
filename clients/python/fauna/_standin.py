"""TEMPORARY stand-ins for the client package's own modules (fauna/errors.py, fauna/client.py),
so that the verification modules can be written and tested before the two branches merge.
Delete this file at the merge; nothing else imports it once fauna/errors.py exists.
"""
from __future__ import annotations


class FaunaError(Exception):
    """Stand-in for fauna.errors.FaunaError."""


class VerificationError(FaunaError):
    """Stand-in for fauna.errors.VerificationError."""


# --- a minimal client: request(kind, body, *, timeout, endpoint) and endpoints -----------------

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from .codec import HEADER_BYTES, ProtocolError, crc32c, frame, parse_header


class Client:
    """Stand-in for fauna.Client: one connection per endpoint, one request at a time."""

    def __init__(self, endpoints: list[str], cluster_name: str | None = None):
        self.endpoints = list(endpoints)
        self.cluster_name = cluster_name
        self._socks: dict[str, socket.socket] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def close(self) -> None:
        for s in self._socks.values():
            s.close()
        self._socks.clear()

    def _sock(self, endpoint: str, timeout: float) -> socket.socket:
        s = self._socks.get(endpoint)
        if s is None:
            host, port = endpoint.rsplit(":", 1)
            s = socket.create_connection((host, int(port)), timeout=timeout)
            self._socks[endpoint] = s
        s.settimeout(timeout)
        return s

    def request(self, kind: int, body: bytes, *, timeout: float, endpoint: str | None = None) -> tuple[int, bytes]:
        endpoint = endpoint or self.endpoints[0]
        with self._lock:
            try:
                s = self._sock(endpoint, timeout)
                rid = next(self._ids)
                s.sendall(frame(kind, rid, body))
                length, answer_kind, _, got_id, crc = parse_header(self._read(s, HEADER_BYTES))
                answer = self._read(s, length)
                if crc32c(answer) != crc or got_id != rid:
                    raise ProtocolError("bad answer frame")
                return answer_kind, answer
            except (OSError, ProtocolError):
                bad = self._socks.pop(endpoint, None)
                if bad is not None:
                    bad.close()
                raise

    @staticmethod
    def _read(s: socket.socket, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = s.recv(n - len(out))
            if not chunk:
                raise ConnectionError("connection closed")
            out += chunk
        return bytes(out)


# --- a three-node cluster of debug faunad processes, for tests/test_verify_cluster.py ---------

BIN = os.environ.get("FAUNA_BIN", "/work/main/.build/debug")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandinCluster:
    def __init__(self, root: str, names=("n1", "n2", "n3")):
        self.root = root
        self.names = list(names)
        self.ports = {n: (_free_port(), _free_port()) for n in self.names}
        self.config_path = os.path.join(root, "cluster.toml")
        lines = ["[cluster]", 'name = "pytest"', 'data_dir = "data"', "tick_ms = 10", "election_ticks = 50", "heartbeat_ticks = 5", ""]
        for n in self.names:
            peer, client = self.ports[n]
            lines += ["[[node]]", f'id = "{n}"', f'peer = "127.0.0.1:{peer}"', f'client = "127.0.0.1:{client}"', ""]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines))
        self.procs: dict[str, subprocess.Popen] = {}
        self.endpoints = [f"127.0.0.1:{self.ports[n][1]}" for n in self.names]

    def start(self, name: str, env: dict[str, str] | None = None) -> None:
        full = dict(os.environ)
        full.update(env or {})
        log = open(os.path.join(self.root, f"{name}.log"), "a")
        self.procs[name] = subprocess.Popen([os.path.join(BIN, "faunad"), "--config", self.config_path, "--id", name],
                                            stdout=log, stderr=subprocess.STDOUT, env=full, start_new_session=True)
        log.close()

    def stop(self, name: str) -> None:
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def restart(self, name: str, env: dict[str, str] | None = None) -> None:
        self.stop(name)
        self.start(name, env)
        self.wait_ready()

    def client(self) -> Client:
        return Client(self.endpoints, cluster_name="pytest")

    def fctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        run = subprocess.run([os.path.join(BIN, "fctl"), *args, "--config", self.config_path], capture_output=True, text=True, timeout=60)
        if check and run.returncode != 0:
            raise RuntimeError(f"fctl {args}: {run.returncode} {run.stdout} {run.stderr}")
        return run

    def wait_ready(self, timeout: float = 30.0) -> None:
        """A leader, and every node answering a signed head at the leader's applied size."""
        from . import audit
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = self.client()
            try:
                sizes = []
                leader = False
                for e in self.endpoints:
                    k, b = c.request(audit.STATUS, b"", timeout=1.0, endpoint=e)
                    st = audit.decode_node_status(b)
                    leader |= st.role == audit.ROLE_LEADER
                    if st.leader is None:
                        raise ConnectionError("a node knows no leader yet")
                    sizes.append(st.applied_index)
                    k, b = c.request(audit.SIGNED_TREE_HEAD, audit.encode_tree_head_request(), timeout=1.0, endpoint=e)
                    if k != audit.SIGNED_TREE_HEAD_RESPONSE:
                        raise ConnectionError("no head yet")
                if leader and len(set(sizes)) == 1:
                    return
            except (OSError, ProtocolError):
                pass
            finally:
                c.close()
            time.sleep(0.1)
        raise TimeoutError("the cluster did not become ready")

    def shutdown(self) -> None:
        for n in list(self.procs):
            self.stop(n)


def cluster_fixture():  # pragma: no cover - used with `pytest -p fauna._standin`
    import pytest

    @pytest.fixture(scope="session")
    def cluster():
        if not os.path.exists(os.path.join(BIN, "faunad")):
            pytest.skip(f"no faunad in {BIN}")
        root = tempfile.mkdtemp(prefix="fauna-pytest-")
        c = StandinCluster(root)
        try:
            for n in c.names:
                c.start(n)
            c.wait_ready()
            yield c
        finally:
            c.shutdown()
            shutil.rmtree(root, ignore_errors=True)
    return cluster


try:
    cluster = cluster_fixture()
except ImportError:  # no pytest: the fixture is for tests only
    pass
