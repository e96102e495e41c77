"""`fauna verify-proof` and tools/verify-proof (now a wrapper of it): a genuine proof file is
accepted, one with the record's key or value swapped is refused, by both, with
tools/verify-proof's output and exit codes (0 OK, 1 FAIL, 2 usage or unreadable file)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audit_doc import EXAMPLES, TOOLS_VERIFY_PROOF, worked_example, write
from fauna import cli, trust

EXAMPLE = worked_example()
KEY = EXAMPLE.public_key.hex()
PACKAGE = str(Path(__file__).resolve().parents[1])


def fauna_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=PACKAGE)
    return subprocess.run([sys.executable, "-m", "fauna.cli", "verify-proof", *args], capture_output=True, text=True, env=env)


def tools_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOLS_VERIFY_PROOF), *args], capture_output=True, text=True)


VERIFIERS = {"fauna verify-proof": fauna_cli, "tools/verify-proof": tools_cli}


@pytest.fixture(params=sorted(VERIFIERS))
def run(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return VERIFIERS[request.param]


def swapped(tmp_path: Path, what: str) -> str:
    doc = json.loads(json.dumps(EXAMPLE.proof_json))
    r = doc["record"]
    if what == "key":
        r["key"] = (b"greetinh").hex()
    elif what == "value":
        r["value"] = (b"hellO").hex()
    else:
        r["key"], r["value"] = r["value"], r["key"]
    return write(tmp_path, f"swapped-{what}.json", doc)


def test_genuine_file_is_accepted(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "genuine.json", EXAMPLE.proof_json)
    r = run("--member", KEY, "--cluster", EXAMPLE.cluster_id.hex(), path)
    assert r.returncode == 0, r
    assert r.stdout == ("OK entry 3 (term 1) is leaf 2 of tree size 5 root 52c28ba5a20cffa0056b213b4a745abec84cd89920bbf88016d1780b506e6d23; "
                        "signed by 1 of 1 members; a put of the record's key and value, proven by its committed effects\n")


@pytest.mark.parametrize("what", ["key", "value", "both"])
def test_swapped_record_is_refused(run, tmp_path: Path, what: str) -> None:  # type: ignore[no-untyped-def]
    r = run("--member", KEY, swapped(tmp_path, what))
    assert r.returncode == 1, r
    assert r.stdout.startswith("FAIL: effectProof: the record's put leads to effects root ") and r.stdout.count("\n") == 1, r


def test_several_files_one_line_each(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = write(tmp_path, "good.json", EXAMPLE.proof_json)
    bad = swapped(tmp_path, "value")
    missing = str(tmp_path / "missing.json")
    r = run("--member", KEY, good, str(EXAMPLES / "worked-example-v1.proof.json"))
    assert r.returncode == 0 and [line.split(": ", 1)[1][:3] for line in r.stdout.splitlines()] == ["OK ", "OK "], r
    r = run("--member", KEY, good, bad)
    lines = r.stdout.splitlines()
    assert r.returncode == 1 and lines[0].startswith(f"{good}: OK entry 3") and lines[1].startswith(f"{bad}: FAIL: "), r
    r = run("--member", KEY, good, missing, bad)
    assert r.returncode == 2 and r.stdout.splitlines()[1] == f"{missing}: ERROR: cannot read: No such file or directory", r


@pytest.mark.parametrize("args", [[], ["FILE"], ["--member", "00", "FILE"], ["--member", "zz", "FILE"], ["--member"],
                                  ["--member", KEY, "--cluster", "0011", "FILE"], ["--member", KEY, "--members", "/nonexistent", "FILE"]])
def test_usage_errors_exit_2(run, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    r = run(*args)
    assert r.returncode == 2 and "usage:" in r.stderr and r.stdout == "", r


def test_members_file_and_cluster(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "genuine.json", EXAMPLE.proof_json)
    members = tmp_path / "members.txt"
    members.write_text(f"\n{KEY}\n\n")
    assert run("--members", str(members), path).returncode == 0
    r = run("--member", KEY, "--cluster", "ff" * 16, path)
    assert r.returncode == 1 and r.stdout.startswith("FAIL: clusterID: got 000102030405060708090a0b0c0d0e0f, want ffff"), r
    # a quorum of the members given: one of three is not enough
    r = run("--member", KEY, "--member", "11" * 32, "--member", "22" * 32, path)
    assert r.returncode == 1 and "signatures: got 1 valid of 3 members, want >= 2" in r.stdout, r
    r = run("--help")
    assert r.returncode == 0 and "Checked:" in r.stdout


def test_trusted_state_supplies_keys_and_cluster(tmp_path: Path) -> None:
    path = write(tmp_path, "genuine.json", EXAMPLE.proof_json)
    store = trust.TrustStore(str(tmp_path / "trusted.json"))
    store.save(trust.TrustedCluster("local", EXAMPLE.cluster_id, (trust.MemberKey(1, EXAMPLE.public_key),)))
    r = fauna_cli("--trusted", store.path, path)
    assert r.returncode == 0 and r.stdout.startswith("OK entry 3"), r
    store.save(trust.TrustedCluster("local", b"\x01" * 16, (trust.MemberKey(1, EXAMPLE.public_key),)), replacing=True)
    r = fauna_cli("--trusted", store.path, path)
    assert r.returncode == 1 and "FAIL: clusterID: got" in r.stdout, r
    assert fauna_cli("--trusted", str(tmp_path / "none.json"), path).returncode == 2


def test_console_script_dispatch(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "no command given" in capsys.readouterr().err
    assert cli.main(["bogus"]) == 2
    assert "unknown command 'bogus'" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "verify-proof FILE..." in out and "exit codes" in out
    assert cli.main(["verify-proof", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: fauna verify-proof") and "  1  some FILE is not" in out and "  2  usage error" in out
    assert cli.main(["verify-proof", "--member", KEY, str(EXAMPLES / "worked-example.proof.json")]) == 0
    assert capsys.readouterr().out.startswith("OK entry 3")
    installed = shutil.which("fauna")
    if installed:
        r = subprocess.run([installed, "verify-proof", "--member", KEY, str(EXAMPLES / "worked-example.proof.json")], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.startswith("OK entry 3")
