"""TLS (docs/SECURITY.md) against a real three-node cluster whose cluster.toml has `[tls]`
(certificates from tools/tls-certs): the blocking and the asyncio client over TLS 1.3, a client
made from the config file, and every mistake of the SECURITY.md table ending the call at once
with a typed `fauna.TLSError` (never retried until the deadline): a plaintext client
(`TLSRequired`, code 13), a CA the cluster never heard of, a client certificate of another CA,
a TLS client on a plaintext port, unusable files. Then `fauna` (the CLI) with --ca/--cert/--key
and its exit code 7. Also the `[tls]` checks of config.py, and the retry core's refusal to
retry a TLS failure, without a cluster."""
from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import fauna
from conftest import TLS_CERTS, FaunaCluster, running_cluster
from fauna import ClientConfig, TLSConfig, _core, cli, errors, wire
from fauna.wire import Endpoint, Kind

#: A TLS failure ends a call at once; the calls below may retry for 10 s, so taking longer than
#: this means the failure was retried. Half the deadline, not less: on the 2-core CI machine,
#: busy with the rest of the suite, a refused handshake to each endpoint once took 2.44 s.
AT_ONCE_S = 5.0
PACKAGE = str(Path(__file__).resolve().parents[1])


def require_openssl() -> None:
    """tools/tls-certs runs the openssl command."""
    if shutil.which("openssl") is None:
        if os.environ.get("FAUNA_REQUIRE_CLUSTER"):
            pytest.fail("no openssl command for tools/tls-certs (apt-get install openssl)")
        pytest.skip("no openssl command for tools/tls-certs (apt-get install openssl)")


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaunaCluster]:
    require_openssl()
    yield from running_cluster(tmp_path_factory.mktemp("fauna-tls"), tls=True)


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA (tools/tls-certs), with a client certificate of its own."""
    require_openssl()
    d = tmp_path_factory.mktemp("other-ca")
    made = subprocess.run([str(TLS_CERTS), str(d), "n1"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made
    return d


def ca_of(c: FaunaCluster) -> str:
    assert c.tls_dir is not None
    return str(c.tls_dir / "ca.crt")


def config(**kw: Any) -> ClientConfig:
    return ClientConfig(**{"timeout": 10.0, **kw})


def fails_at_once(call: Callable[[], object], want: type[BaseException]) -> BaseException:
    started = time.monotonic()
    with pytest.raises(want) as e:
        call()
    took = time.monotonic() - started
    assert took < AT_ONCE_S, f"{type(e.value).__name__} after {took:.2f} s: retried? {e.value}"
    return e.value


def run_async(coro_fn: Callable[[fauna.AsyncClient], Any], endpoints: list[Endpoint], **kw: Any) -> Any:
    async def main() -> Any:
        async with fauna.AsyncClient(endpoints, config=config(), **kw) as c:
            return await coro_fn(c)
    return asyncio.run(main())


# --- working TLS -----------------------------------------------------------------------------

def test_blocking_client_over_tls(tls_cluster: FaunaCluster, prefix: bytes) -> None:
    # The CA only (no client certificate: optional on the client port), then with one.
    for tls in (TLSConfig(ca_of(tls_cluster)), tls_cluster.tls):
        with fauna.Client(tls_cluster.endpoints, config=config(), tls=tls) as c:
            k = prefix + str(tls.cert is not None).encode()  # type: ignore[union-attr]
            r = c.put(k, b"\x00secret\xff")
            got = c.get(k)
            assert got is not None and got.value == b"\x00secret\xff" and got.mod_revision == r.revision
            conns = [conn for cs in c.pool._conns.values() for conn in cs if not conn.is_closed]
            assert conns and {conn.tls_version for conn in conns} == {"TLSv1.3"}


def test_many_threads_share_tls_connections(tls_cluster: FaunaCluster, prefix: bytes) -> None:
    """Requests pipelined from 16 threads on at most 2 TLS connections per node: one reader and
    many senders on each TLS session (fauna.tls.TLSStream)."""
    cfg = config(connections_per_endpoint=2)
    with fauna.Client(tls_cluster.endpoints, config=cfg, tls=tls_cluster.tls) as c:
        with ThreadPoolExecutor(16) as threads:
            revisions = list(threads.map(lambda i: c.put(prefix + b"%03d" % i, b"v%d" % i).revision, range(300)))
        assert len(set(revisions)) == 300
        res = c.range(prefix=prefix)
        assert [r.value for r in res.records] == [b"v%d" % i for i in range(300)]
        assert all(len(cs) <= 2 for cs in c.pool.stats().values())


def test_asyncio_client_over_tls(tls_cluster: FaunaCluster, prefix: bytes, tmp_path: Path) -> None:
    async def go(c: fauna.AsyncClient) -> None:
        results = await asyncio.gather(*(c.put(prefix + b"%d" % i, b"a%d" % i) for i in range(50)))
        assert len({r.revision for r in results}) == 50
        got = await c.get(prefix + b"7")
        assert got is not None and got.value == b"a7"
        conns = [conn for cs in c.pool._conns.values() for conn in cs if not conn.is_closed]
        assert conns and {conn.tls_version for conn in conns} == {"TLSv1.3"}
        # A verified read runs on the blocking twin, which must speak TLS as well.
        v = await c.get(prefix + b"7", verify=True, trusted_path=str(tmp_path / "trusted.json"))
        assert v is not None and v.value == b"a7" and v.pinned
    run_async(go, tls_cluster.endpoints, tls=tls_cluster.tls)


def test_clients_from_the_config_file_take_its_tls(tls_cluster: FaunaCluster, prefix: bytes) -> None:
    d = tls_cluster.tls_dir
    assert d is not None
    files = fauna.load_cluster_file(tls_cluster.config_path).tls
    assert files == fauna.TLSFiles(str(d / "ca.crt"), str(d / "{id}.crt"), str(d / "{id}.key"),
                                   str(d / "client.crt"), str(d / "client.key"))
    assert files.node_files("n2") == (str(d / "ca.crt"), str(d / "n2.crt"), str(d / "n2.key"))
    with fauna.Client.from_config(tls_cluster.config_path, config=config()) as c:
        assert c.tls is not None and c.tls.cert == str(d / "client.crt")
        c.put(prefix + b"f", b"from the file")
    # fctl reads the same [tls] and sees the write.
    assert tls_cluster.fctl("get", (prefix + b"f").decode()).stdout == "from the file\n"

    async def go(c: fauna.AsyncClient) -> None:
        got = await c.get(prefix + b"f")
        assert got is not None and got.value == b"from the file"

    async def main() -> None:
        async with fauna.AsyncClient.from_config(tls_cluster.config_path, config=config()) as c:
            await go(c)
    asyncio.run(main())


def test_a_killed_or_stopped_node_is_not_a_tls_error(tls_cluster: FaunaCluster, prefix: bytes) -> None:
    """A node that dies drops its TLS connections without close_notify, and one that is stopped
    leaves a handshake unanswered: both are network faults, retried at the other nodes."""
    with tls_cluster.client(timeout=15.0, connect_timeout=0.5) as c:
        c.put(prefix + b"a", b"1")
        leader = tls_cluster.name_of(c.leader)  # type: ignore[arg-type]
        tls_cluster.kill(leader)
        try:
            c.put(prefix + b"b", b"2")
            got = c.get(prefix + b"b")
            assert got is not None and got.value == b"2"
        finally:
            tls_cluster.start(leader)
        tls_cluster.wait_ready()
    paused = tls_cluster.names[0]
    tls_cluster.pause(paused)
    try:
        # A fresh client tries the stopped node first: its handshake times out, then the others.
        with fauna.Client([tls_cluster.client_addr[n] for n in tls_cluster.names], tls=tls_cluster.tls,
                          config=config(connect_timeout=0.5)) as c:
            assert c.put(prefix + b"c", b"3").revision > 0
            with pytest.raises((fauna.ConnectionFailed, fauna.DeadlineExceeded)) as e:
                c.status(tls_cluster.client_addr[paused], timeout=1.2)
            assert not isinstance(e.value, fauna.TLSError) and "TLS handshake" in str(e.value), e.value
    finally:
        tls_cluster.resume(paused)
    tls_cluster.wait_ready()


# --- mistakes: a typed error, at once ---------------------------------------------------------

def test_plaintext_client_gets_tls_required_at_once(tls_cluster: FaunaCluster, prefix: bytes) -> None:
    with fauna.Client(tls_cluster.endpoints, config=config()) as c:
        e = fails_at_once(lambda: c.put(prefix + b"p", b"x"), fauna.TLSRequired)
        assert isinstance(e, fauna.TLSError) and isinstance(e, fauna.ServerError)
        assert e.code == 13 and e.code_name == "tlsRequired" and e.endpoint in tls_cluster.endpoints
        assert "without TLS" in str(e) and "CA" in str(e)
        fails_at_once(lambda: c.get(prefix + b"p"), fauna.TLSRequired)
    e = fails_at_once(lambda: run_async(lambda c: c.get(prefix + b"p"), tls_cluster.endpoints), fauna.TLSRequired)
    assert e.code == 13
    with fauna.Client(tls_cluster.endpoints, config=config(), tls=tls_cluster.tls) as c:
        assert c.get(prefix + b"p") is None  # the refused put was never applied


@pytest.mark.parametrize("flavour", ["blocking", "asyncio"])
def test_node_certificate_of_another_ca_is_refused_at_once(tls_cluster: FaunaCluster, other_ca: Path,
                                                           flavour: str, prefix: bytes) -> None:
    tls = TLSConfig(str(other_ca / "ca.crt"))
    if flavour == "blocking":
        with fauna.Client(tls_cluster.endpoints, config=config(), tls=tls) as c:
            e = fails_at_once(lambda: c.put(prefix, b"x"), fauna.TLSHandshakeError)
    else:
        e = fails_at_once(lambda: run_async(lambda c: c.put(prefix, b"x"), tls_cluster.endpoints, tls=tls),
                          fauna.TLSHandshakeError)
    assert isinstance(e, fauna.TLSError) and not isinstance(e, fauna.ServerError)
    assert "does not verify against" in str(e) and str(other_ca / "ca.crt") in str(e), e
    assert e.endpoint in tls_cluster.endpoints


@pytest.mark.parametrize("flavour", ["blocking", "asyncio"])
def test_client_certificate_of_another_ca_is_refused_at_once(tls_cluster: FaunaCluster, other_ca: Path,
                                                             flavour: str, prefix: bytes) -> None:
    tls = TLSConfig(ca_of(tls_cluster), str(other_ca / "client.crt"), str(other_ca / "client.key"))
    if flavour == "blocking":
        with fauna.Client(tls_cluster.endpoints, config=config(), tls=tls) as c:
            e = fails_at_once(lambda: c.put(prefix, b"x"), fauna.TLSHandshakeError)
            fails_at_once(lambda: c.status(), fauna.TLSHandshakeError)
    else:
        e = fails_at_once(lambda: run_async(lambda c: c.put(prefix, b"x"), tls_cluster.endpoints, tls=tls),
                          fauna.TLSHandshakeError)
    assert "refused this client's certificate" in str(e) and str(other_ca / "client.crt") in str(e), e
    with fauna.Client(tls_cluster.endpoints, config=config(), tls=tls_cluster.tls) as c:
        assert c.get(prefix) is None  # never applied


def test_tls_client_on_a_plaintext_port_is_refused_at_once(cluster_session: FaunaCluster,
                                                           tls_cluster: FaunaCluster) -> None:
    tls = TLSConfig(ca_of(tls_cluster))
    with fauna.Client(cluster_session.endpoints, config=config(), tls=tls) as c:
        e = fails_at_once(lambda: c.get(b"k"), fauna.TLSHandshakeError)
    assert "plaintext" in str(e), e
    e = fails_at_once(lambda: run_async(lambda c: c.get(b"k"), cluster_session.endpoints, tls=tls),
                      fauna.TLSHandshakeError)
    assert "plaintext" in str(e), e


def test_unusable_files_fail_when_the_client_is_made(other_ca: Path, tmp_path: Path) -> None:
    eps = ["127.0.0.1:1"]
    cases = {
        str(tmp_path / "missing.crt"): TLSConfig(str(tmp_path / "missing.crt")),
        "no certificate": TLSConfig(str(other_ca / "ca.key")),  # a key, not a certificate
        "key values mismatch": TLSConfig(str(other_ca / "ca.crt"), str(other_ca / "client.crt"), str(other_ca / "n1.key")),
    }
    for want, tls in cases.items():
        with pytest.raises(fauna.TLSError) as e:
            fauna.Client(eps, tls=tls)
        assert want in str(e.value).lower().replace("_", " ") or want in str(e.value), e.value
        with pytest.raises(fauna.TLSError):
            fauna.AsyncClient(eps, tls=tls)
    with pytest.raises(fauna.InvalidArgument, match="both or neither"):
        TLSConfig(str(other_ca / "ca.crt"), cert=str(other_ca / "client.crt"))
    with pytest.raises(fauna.InvalidArgument, match="TLSConfig"):
        fauna.Client(eps, tls="ca.crt")  # type: ignore[arg-type]


# --- the `fauna` command ----------------------------------------------------------------------

def test_cli_with_tls(tls_cluster: FaunaCluster, other_ca: Path, prefix: bytes,
                      capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ["--config", str(tls_cluster.config_path)]
    eps = ["--endpoints", ",".join(map(str, tls_cluster.endpoints))]
    key = (prefix + b"cli").decode()

    assert cli.main(["put", key, "over tls", *cfg]) == 0  # [tls] of the file
    assert "→ revision" in capsys.readouterr().out
    assert cli.main(["get", key, *eps, "--ca", ca_of(tls_cluster)]) == 0  # --ca, no config file
    assert capsys.readouterr().out == "over tls\n"
    assert cli.main(["status", *cfg]) == 0
    assert capsys.readouterr().out.count("\tterm ") == 3

    def refused(args: list[str], *want: str) -> None:
        started = time.monotonic()
        assert cli.main(args) == 7, args
        err = capsys.readouterr().err
        assert time.monotonic() - started < AT_ONCE_S and err.startswith("fauna: ") and all(w in err for w in want), err

    refused(["get", key, *eps, "--ca", str(other_ca / "ca.crt")], "does not verify against", "Check [tls]")
    refused(["get", key, *cfg, "--ca", str(other_ca / "ca.crt")], "does not verify against")  # --ca overrides
    refused(["get", key, *eps], "tlsRequired")
    refused(["get", key, *cfg, "--cert", str(other_ca / "client.crt"), "--key", str(other_ca / "client.key")],
            "refused this client's certificate")
    refused(["get", key, *eps, "--ca", str(other_ca / "nope.crt")], "nope.crt")
    refused(["status", *eps, "--ca", str(other_ca / "ca.crt")], "TLS failed")
    # Usage errors stay 2.
    assert cli.main(["get", key, *cfg, "--cert", str(other_ca / "client.crt")]) == 2
    assert "both or neither" in capsys.readouterr().err
    assert cli.main(["get", key, *eps, "--cert", "c", "--key", "k"]) == 2
    assert "need --ca" in capsys.readouterr().err

    # The console script's exit status, through a real process.
    run = subprocess.run([sys.executable, "-m", "fauna.cli", "get", key, *eps, "--ca", str(other_ca / "ca.crt")],
                         capture_output=True, text=True, timeout=30, env=dict(os.environ, PYTHONPATH=PACKAGE))
    assert run.returncode == 7 and "does not verify against" in run.stderr and run.stdout == "", run


# --- without a cluster ------------------------------------------------------------------------

def write_toml(tmp_path: Path, tls: str) -> Path:
    p = tmp_path / "cluster.toml"
    top, tables = (tls, "") if not tls.startswith("[") else ("", tls)  # a plain key goes above every table
    p.write_text(top + '[cluster]\nname = "t"\n\n[[node]]\nid = "n1"\npeer = "127.0.0.1:1"\nclient = "127.0.0.1:2"\n\n' + tables)
    return p


def test_tls_section_of_the_cluster_file(tmp_path: Path) -> None:
    assert fauna.load_cluster_file(write_toml(tmp_path, "")).tls is None
    f = fauna.load_cluster_file(write_toml(tmp_path, '[tls]\nca = "/etc/fauna/ca.crt"\ncert = "tls/{id}.crt"\nkey = "../k/{id}.key"\n')).tls
    assert f == fauna.TLSFiles("/etc/fauna/ca.crt", str(tmp_path / "tls/{id}.crt"), str(tmp_path.parent / "k/{id}.key"))
    assert f.client() == TLSConfig("/etc/fauna/ca.crt")
    refused = {
        '[tls]\nca = ""\ncert = "c"\nkey = "k"\n': "tls.ca is empty",
        '[tls]\nca = "a"\ncert = "c"\n': "tls.key: missing",
        '[tls]\nca = "a"\ncert = 3\nkey = "k"\n': "tls.cert: got 3",
        '[tls]\nca = "a"\ncert = "c"\nkey = "k"\nclient_cert = "cc"\n': "give both or neither",
        '[tls]\nca = "a"\ncert = "c"\nkey = "k"\nclient_cert = ""\nclient_key = "ck"\n': "tls.client_cert is empty",
        'tls = "on"\n': "want a [tls] table",
    }
    for text, want in refused.items():
        with pytest.raises(fauna.InvalidArgument, match=want.replace("[", r"\[").replace("]", r"\]")):
            fauna.load_cluster_file(write_toml(tmp_path, text))


def test_a_tls_failure_is_never_retried() -> None:
    """The retry core (fauna._core.perform) ends the call at the first TLS failure, whether an
    attempt failed with one or a node answered tlsRequired; a write's sequence is given back."""
    A, B = Endpoint("a", 1), Endpoint("b", 2)
    core = _core.Core([A, B], ClientConfig(timeout=30.0, backoff_initial=0.001), random.Random(1))
    tls_required = (Kind.ERROR, wire.encode_error(errors.server_error(13, "this port takes TLS only")))
    for answer in (errors.TLSHandshakeError("bad CA", endpoint=A), tls_required):
        sends = []
        op = _core.put(core, b"k", b"v", if_absent=False, prev=False, timeout=None)
        action = next(op)
        with pytest.raises(fauna.TLSError):
            while True:
                assert isinstance(action, _core.Send)
                sends.append(action)
                action = op.send(answer)
        assert len(sends) == 1
    assert core.sessions.take().next == 1  # nothing ran: the sequence was not used up
    assert errors.ERROR_NAMES[13] == "tlsRequired" and isinstance(errors.server_error(13, "x"), fauna.TLSRequired)
