"""/readyz's disk check on a real node: a one-node cluster whose data directory is on a 1 GiB
tmpfs turns unready when a filler file leaves less free space than the readiness threshold
(twice the 256 MiB at which writes stop), while it still runs, and ready again once the filler
is gone (docs/METRICS.md "Health"). Mounting needs root: skipped otherwise."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from conftest import _bin_dir, free_ports

MiB = 1 << 20
READY_MIN = 512 * MiB  # faunad's default: 2 × Store.Options.diskFreeBytesMin
STOP_MIN = 256 * MiB


def readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5.0) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def wait_status(port: int, want: int, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    status, body = 0, ""
    while time.monotonic() < deadline:
        status, body = readyz(port)
        if status == want:
            return body
        time.sleep(0.2)
    raise AssertionError(f"/readyz: want {want} within {timeout_s} s, last {status}: {body}")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1g", "tmpfs", str(mount)]).returncode != 0:
        pytest.fail("mount -t tmpfs failed although running as root")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)])


def test_readyz_unready_while_disk_nearly_full(tmpfs: Path, tmp_path: Path) -> None:
    faunad = _bin_dir() / "faunad"
    if not os.access(faunad, os.X_OK):
        if os.environ.get("FAUNA_REQUIRE_CLUSTER"):
            pytest.fail(f"no executable {faunad}")
        pytest.skip(f"no faunad at {faunad}")
    binary = tmp_path / "faunad"
    shutil.copy2(faunad, binary)
    peer, client, metrics = free_ports(3)
    config = tmp_path / "cluster.toml"
    config.write_text("\n".join([
        "[cluster]", 'name = "disk"', 'data_dir = "data"', "tick_ms = 10", "election_ticks = 50", "heartbeat_ticks = 5", "",
        "[[node]]", 'id = "n1"', f'peer = "127.0.0.1:{peer}"', f'client = "127.0.0.1:{client}"',
        f'metrics = "127.0.0.1:{metrics}"', ""]))
    log = open(tmp_path / "n1.log", "wb")
    proc = subprocess.Popen(
        [str(binary), "--config", str(config), "--id", "n1", "--data-dir", str(tmpfs / "n1"),
         "--exit-with-parent", str(os.getpid())], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    filler = tmpfs / "filler"
    try:
        wait_status(metrics, 200)
        free = shutil.disk_usage(tmpfs).free
        keep = (READY_MIN + STOP_MIN) // 2  # between the two thresholds: unready, still writing
        with open(filler, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, free - keep)
        body = wait_status(metrics, 503)
        assert "[-]disk: disk nearly full" in body, body
        assert "[+]leader ok" in body, body
        assert proc.poll() is None, "the node stopped: the filler went below the stop threshold"
        filler.unlink()
        wait_status(metrics, 200)
    finally:
        if filler.exists():
            filler.unlink()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
