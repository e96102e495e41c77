"""A real three-node cluster of `faunad` processes for the integration tests.

`cluster` (function scope) hands out the one session-wide `FaunaCluster`, healed first: every
node running with its default environment, a leader elected and known to every node. A test
may kill, stop and restart nodes, also with an environment (`cluster.restart("n2",
env={"FAUNA_TEST_FAULT": "lie-value"})`, which returns once every running node knows the
leader); the next test gets them back. `cluster.fctl(...)` runs fctl against the cluster's
cluster.toml. Binaries (faunad, fctl) come from $FAUNA_BIN (a directory, default
<repo>/.build/debug) and are copied once, so a rebuild during the run does not matter.
`FaunaCluster(..., tls=True)` makes a CA and certificates with tools/tls-certs (in
<run dir>/tls) and adds `[tls]` to its cluster.toml: TLS on every port (tests/test_tls.py).
Without binaries the integration tests are skipped, unless FAUNA_REQUIRE_CLUSTER is set
(tools/test): then they fail. Every wait here is bounded.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the package under test, without installing it

import fauna  # noqa: E402
from fauna import ClientConfig, Endpoint, TLSConfig  # noqa: E402

REPO = HERE.parents[2]
TLS_CERTS = REPO / "tools" / "tls-certs"
NAMES = ("n1", "n2", "n3")
LEADER_WAIT_S = 30.0


def free_ports(n: int) -> list[int]:
    """`n` distinct ports the kernel says are free now (bound, then released together)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class FaunaCluster:
    """faunad processes n1..n3 on free loopback ports, each with its own data directory."""

    def __init__(self, bin_dir: Path, run_dir: Path, names: tuple[str, ...] = NAMES,
                 cluster_extra: tuple[str, ...] = (), tls: bool = False):
        self.run_dir = run_dir
        self.names = list(names)
        self.faunad = run_dir / "faunad"
        shutil.copy2(bin_dir / "faunad", self.faunad)
        self.fctl_path: Optional[Path] = None
        if os.access(bin_dir / "fctl", os.X_OK):
            self.fctl_path = run_dir / "fctl"
            shutil.copy2(bin_dir / "fctl", self.fctl_path)
        ports = free_ports(3 * len(names))
        self.peer = {n: Endpoint("127.0.0.1", ports[3 * i]) for i, n in enumerate(names)}
        self.client_addr = {n: Endpoint("127.0.0.1", ports[3 * i + 1]) for i, n in enumerate(names)}
        # Each node's HTTP port: /metrics, /livez, /readyz (docs/METRICS.md).
        self.metrics_addr = {n: Endpoint("127.0.0.1", ports[3 * i + 2]) for i, n in enumerate(names)}
        self.config_path = run_dir / "cluster.toml"
        lines = ["[cluster]", 'name = "pytest"', 'data_dir = "data"', "tick_ms = 10", "election_ticks = 50",
                 "heartbeat_ticks = 5", *cluster_extra, ""]
        for n in names:
            lines += ["[[node]]", f'id = "{n}"', f'peer = "{self.peer[n]}"', f'client = "{self.client_addr[n]}"',
                      f'metrics = "{self.metrics_addr[n]}"', ""]
        #: With tls=True: the directory of the CA and certificates, and what the admin client uses.
        self.tls_dir: Optional[Path] = None
        self.tls: Optional[TLSConfig] = None
        if tls:
            self.tls_dir = run_dir / "tls"
            made = subprocess.run([str(TLS_CERTS), str(self.tls_dir), *names], capture_output=True, text=True,
                                  timeout=60)
            if made.returncode != 0:
                raise AssertionError(f"tools/tls-certs: exit {made.returncode}\n{made.stdout}{made.stderr}")
            lines += ["[tls]", 'ca = "tls/ca.crt"', 'cert = "tls/{id}.crt"', 'key = "tls/{id}.key"',
                      'client_cert = "tls/client.crt"', 'client_key = "tls/client.key"', ""]
            self.tls = TLSConfig(str(self.tls_dir / "ca.crt"), str(self.tls_dir / "client.crt"),
                                 str(self.tls_dir / "client.key"))
        self.config_path.write_text("\n".join(lines))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.envs: dict[str, dict[str, str]] = {}
        self.admin = fauna.Client(self.endpoints, config=ClientConfig(timeout=2.0, request_timeout=1.0,
                                                                      connect_timeout=0.5), tls=self.tls)

    @property
    def endpoints(self) -> list[Endpoint]:
        return [self.client_addr[n] for n in self.names]

    def name_of(self, endpoint: Endpoint) -> str:
        return next(n for n, e in self.client_addr.items() if e == endpoint)

    def log_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    # --- processes -----------------------------------------------------------------------

    def is_running(self, name: str) -> bool:
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def start(self, name: str, env: Optional[dict[str, str]] = None) -> None:
        """Starts `name` (no-op if running) with `env` added to this process's environment."""
        if self.is_running(name):
            return
        data = self.run_dir / "data" / name
        data.mkdir(parents=True, exist_ok=True)
        full = dict(os.environ)
        full.pop("FAUNA_TEST_FAULT", None)
        full.update(env or {})
        self.envs[name] = dict(env or {})
        with open(self.log_path(name), "ab") as log:
            log.write(f"--- pytest: start {name} env {env or {}} at {time.time():.3f}\n".encode())
            log.flush()
            self.procs[name] = subprocess.Popen(
                [str(self.faunad), "--config", str(self.config_path), "--id", name, "--data-dir", str(data),
                 "--exit-with-parent", str(os.getpid())],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full, start_new_session=True)

    def kill(self, name: str) -> None:
        """SIGKILL: a crash."""
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(10)

    def stop(self, name: str, grace_s: float = 8.0) -> None:
        """SIGTERM (graceful), SIGKILL after `grace_s`."""
        p = self.procs.get(name)
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.kill(name)

    def pause(self, name: str) -> None:
        """SIGSTOP: the node neither sends nor answers, as if cut off; `resume` undoes it."""
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGCONT)

    def restart(self, name: str, env: Optional[dict[str, str]] = None, *, kill: bool = False) -> None:
        """Stops (or kills) `name`, starts it with `env`, and returns once every running node
        knows the leader."""
        (self.kill if kill else self.stop)(name)
        self.start(name, env)
        self.wait_ready()

    def shutdown(self) -> None:
        self.admin.close()
        for n in self.names:
            try:
                self.stop(n, grace_s=5.0)
            except Exception:
                self.kill(n)

    # --- queries -------------------------------------------------------------------------

    def status(self, name: str) -> Optional[fauna.NodeStatus]:
        try:
            return self.admin.status(self.client_addr[name], timeout=1.0)
        except fauna.FaunaError:
            return None

    def leader(self) -> Optional[str]:
        """The running node that says it leads, in the highest term; None if none."""
        best: Optional[tuple[int, str]] = None
        for n in self.names:
            if not self.is_running(n):
                continue
            st = self.status(n)
            if st is not None and st.is_leader and (best is None or st.term > best[0]):
                best = (st.term, n)
        return best[1] if best else None

    def wait_for_leader(self, timeout_s: float = LEADER_WAIT_S, avoid: Optional[str] = None) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            n = self.leader()
            if n is not None and n != avoid:
                return n
            time.sleep(0.1)
        raise AssertionError(f"no leader{' other than ' + avoid if avoid else ''} within {timeout_s} s; logs in {self.run_dir}")

    def wait_caught_up(self, timeout_s: float = 20.0) -> None:
        """Until every running node has applied as far as the leader had committed."""
        leader = self.wait_for_leader()
        target = self.status(leader)
        deadline = time.monotonic() + timeout_s
        while target is not None and time.monotonic() < deadline:
            sts = [self.status(n) for n in self.names if self.is_running(n)]
            if all(s is not None and s.applied_index >= target.commit_index for s in sts):
                return
            time.sleep(0.1)
        raise AssertionError(f"nodes did not catch up within {timeout_s} s")

    def wait_ready(self, timeout_s: float = LEADER_WAIT_S) -> str:
        """Until there is a leader and every running node answers its status naming it."""
        deadline = time.monotonic() + timeout_s
        while True:
            leader = self.wait_for_leader(max(0.1, deadline - time.monotonic()))
            want = self.client_addr[leader]
            sts = [self.status(n) for n in self.names if self.is_running(n)]
            if all(st is not None and st.leader is not None and self.client_addr.get(f"n{st.leader}") == want for st in sts):
                return leader
            if time.monotonic() >= deadline:
                raise AssertionError(f"not every node knows leader {leader} within {timeout_s} s; logs in {self.run_dir}")
            time.sleep(0.05)

    def heal(self) -> None:
        """Every node running with its default environment, and a leader every node knows."""
        for n in self.names:
            self.resume(n)
            if self.envs.get(n):
                self.stop(n)
            self.start(n)
        self.wait_ready()

    def fctl(self, *args: str, check: bool = True, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """`fctl ARGS... --config cluster.toml`; with `check`, a non-zero exit fails the test."""
        if self.fctl_path is None:
            pytest.skip("no fctl next to faunad (set FAUNA_BIN)")
        run = subprocess.run([str(self.fctl_path), *args, "--config", str(self.config_path)], capture_output=True,
                             text=True, timeout=timeout_s)
        if check and run.returncode != 0:
            raise AssertionError(f"fctl {' '.join(args)}: exit {run.returncode}\n{run.stdout}{run.stderr}")
        return run

    def client(self, **config: object) -> fauna.Client:
        return fauna.Client(self.endpoints, config=ClientConfig(**config), tls=self.tls)  # type: ignore[arg-type]


def _bin_dir() -> Path:
    return Path(os.environ.get("FAUNA_BIN") or REPO / ".build" / "debug")


def _wait_for_binary(path: Path, timeout_s: float = 90.0) -> bool:
    """The binary may be rebuilt at this moment: wait (bounded) for it to reappear."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.access(path, os.X_OK):
            return True
        time.sleep(2.0)
    return False


def require_faunad() -> Path:
    """$FAUNA_BIN/faunad; skips the test without it (fails if FAUNA_REQUIRE_CLUSTER is set)."""
    faunad = _bin_dir() / "faunad"
    if not os.access(faunad, os.X_OK):
        if os.environ.get("FAUNA_REQUIRE_CLUSTER"):
            if not _wait_for_binary(faunad):
                pytest.fail(f"FAUNA_REQUIRE_CLUSTER is set but there is no executable {faunad} (set FAUNA_BIN)")
        else:
            pytest.skip(f"no faunad at {faunad}: build it (swift build) or set FAUNA_BIN; "
                        "set FAUNA_REQUIRE_CLUSTER=1 to fail instead of skipping")
    return faunad


def running_cluster(run_dir: Path, **options: Any) -> Iterator[FaunaCluster]:
    """A started FaunaCluster(**options) in `run_dir`, for a fixture to yield from: stopped
    afterwards, its directory removed unless a test failed in it (kept to look at)."""
    c = FaunaCluster(require_faunad().parent, run_dir, **options)
    ok = False
    try:
        for n in c.names:
            c.start(n)
        c.wait_ready()
        yield c
        ok = True
    finally:
        c.shutdown()
        if ok:
            shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaunaCluster]:
    yield from running_cluster(tmp_path_factory.mktemp("fauna-cluster"))


@pytest.fixture
def cluster(cluster_session: FaunaCluster) -> FaunaCluster:
    cluster_session.heal()
    return cluster_session


@pytest.fixture
def client(cluster: FaunaCluster) -> Iterator[fauna.Client]:
    c = cluster.client(timeout=20.0)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> bytes:
    """Keys of this test start with it, so tests sharing the cluster do not meet."""
    return f"t/{request.node.name}/{time.monotonic_ns()}/".encode()
