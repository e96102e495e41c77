"""Users (docs/SECURITY.md "Users and roles") from the Python client, against a real TLS cluster
with users on: a client made with `user=`/`password=` authenticates every connection, writes
where its role lets it, and gets a typed error at once (never retried) for a key outside it or
for a wrong password. The cluster is set up with fctl as root (its certificate names root)."""
from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Iterator

import pytest

import fauna
from conftest import FaunaCluster, require_faunad, running_cluster
from fauna import ClientConfig, errors
from test_tls import require_openssl

PASSWORD = b"s3cret-horse"


def fctl(c: FaunaCluster, *args: str, stdin: str = "") -> None:
    done = subprocess.run([str(require_faunad().parent / "fctl"), *args, "--config", str(c.config_path)],
                          input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"fctl {args}: {done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def users_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaunaCluster]:
    require_openssl()
    for c in running_cluster(tmp_path_factory.mktemp("fauna-users"), tls=True):
        fctl(c, "user", "add", "root", "--no-password")
        fctl(c, "user", "grant-role", "root", "root")
        fctl(c, "user", "add", "alice", "--password-stdin", stdin=PASSWORD.decode() + "\n")
        fctl(c, "role", "add", "app-rw")
        fctl(c, "role", "grant", "app-rw", "readwrite", "app/", "--prefix")
        fctl(c, "user", "grant-role", "alice", "app-rw")
        fctl(c, "auth", "enable")
        yield c


def config() -> ClientConfig:
    # A password check is scrypt: 0.65 s on a debug node, more when loaded.
    return ClientConfig(timeout=30.0)


def test_a_user_writes_where_its_role_lets_it_and_nowhere_else(users_cluster: FaunaCluster) -> None:
    with fauna.Client.from_config(users_cluster.config_path, config=config(), user=b"alice", password=PASSWORD) as db:
        db.put(b"app/x", b"1")
        assert db.get(b"app/x").value == b"1"
        started = time.monotonic()
        with pytest.raises(errors.PermissionDenied, match="alice may not write"):
            db.put(b"other/y", b"2")
        with pytest.raises(errors.PermissionDenied):
            db.get(b"other/y")
        assert time.monotonic() - started < 10, "a refusal must not be retried until the deadline"
    with fauna.Client.from_config(users_cluster.config_path, config=config()) as root:  # by certificate
        assert root.get(b"other/y") is None


def test_a_wrong_password_is_refused_at_once(users_cluster: FaunaCluster) -> None:
    started = time.monotonic()
    with fauna.Client.from_config(users_cluster.config_path, config=config(), user=b"alice", password=b"wrong") as db:
        with pytest.raises(errors.AuthFailed, match="authentication failed"):
            db.get(b"app/x")
    assert time.monotonic() - started < 20, "AuthFailed must not be retried until the deadline"
    with pytest.raises(errors.InvalidArgument):
        fauna.Client.from_config(users_cluster.config_path, user=b"alice")


def test_the_asyncio_client_authenticates_too(users_cluster: FaunaCluster) -> None:
    async def main() -> None:
        async with fauna.AsyncClient.from_config(users_cluster.config_path, config=config(), user=b"alice",
                                                 password=PASSWORD) as db:
            await db.put(b"app/async", b"1")
            with pytest.raises(errors.PermissionDenied):
                await db.put(b"other/async", b"2")
    asyncio.run(main())
