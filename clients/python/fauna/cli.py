"""The `fauna` command (console script of the package; `python -m fauna.cli`).

    fauna verify-proof [--member HEX ...] [--members FILE] [--cluster HEX] [--trusted FILE]
                       [--v1-proposal] FILE...

`verify-proof` is tools/verify-proof (a wrapper around `verify_proof_main`): same checks, output
and exit codes. `VERIFY_PROOF_HELP` below is its `--help`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

USAGE = "{prog} --member HEX... [--members FILE] [--cluster HEX] [--trusted FILE] [--v1-proposal] FILE..."

MAIN_HELP = """usage: fauna COMMAND [ARG...]

The command-line tool of Fauna's Python client.

commands:
  verify-proof FILE...   check proof files ("fauna-proof-v1"/"-v2", from `fctl proof` or
                         VerifiedRecord.proof_file()) offline, against member keys you trust

`fauna COMMAND --help` explains a command, its options and its exit codes.
exit codes of `fauna` itself: 0 for --help, 2 for no command or an unknown one (with this
usage on stderr); otherwise the command's own.
"""

VERIFY_PROOF_HELP = """usage: {prog} [--member HEX ...] [--members FILE] [--cluster HEX] [--trusted FILE]
       {pad} [--v1-proposal] FILE...

Checks Fauna proof files offline (docs/AUDIT.md §7): that the record (key, value, revision) is
what a committed journal entry wrote, that the entry is a leaf of a Merkle tree head, and that
a strict majority of the member keys you give signed that head.

The member public keys are the trust anchor and come from you, never from the file:
  --member HEX      a member's Ed25519 public key (64 hex digits); repeat for each member
  --members FILE    one hex key a line
  --trusted FILE    the members of a trusted.json (shared with fctl, e.g.
                    ~/.config/fauna/<cluster>/trusted.json); its cluster ID is then expected
  --cluster HEX     the expected cluster ID (32 hex digits)
  --v1-proposal     for a v1 leaf, also check that the entry proposes the record (fctl's check)

exit codes and output:
  0  every FILE is OK: one line "OK ..." (prefixed "FILE: " when several files are given)
  1  some FILE is not: "FAIL: reason" for it
  2  usage error (bad or missing options, no FILE), or a FILE that cannot be read
     ("ERROR: cannot read: ...")

Checked: the format and every field; record revision == entry index; leaf index == entry
index - 1; the leaf hash computed from the entry (v1, or v2 with the entry's effects summary);
the inclusion path to the root (RFC 9162 2.1.3.2); the tree head signatures (a strict majority
of the given members). For a v2 leaf also that the entry succeeded and that a put of exactly the
record's key and value is among its committed effects (the effect path to the effects root).
A v1 leaf (an entry from before the cluster's leaf v2 boundary) commits to the entry as
proposed, not to what it did: its OK line says "effect not proven".
"""


@dataclass
class _Args:
    members: set[bytes]
    cluster: bytes | None
    files: list[str]
    v1_proposal: bool


class _Help(Exception):
    pass


def _parse(argv: list[str]) -> _Args:
    from .trust import TrustStore

    members: set[bytes] = set()
    cluster = trusted_cluster = None
    files: list[str] = []
    v1_proposal = False
    args = iter(argv)
    for arg in args:
        if arg in ("--member", "--members", "--cluster", "--trusted"):
            value = next(args, None)
            if value is None:
                raise ValueError(f"{arg} needs a value")
            if arg == "--member":
                members.add(bytes.fromhex(value))
            elif arg == "--members":
                with open(value) as f:
                    members.update(bytes.fromhex(line.strip()) for line in f if line.strip())
            elif arg == "--cluster":
                cluster = bytes.fromhex(value)
            else:
                trust = TrustStore(value).load()
                if trust is None:
                    raise ValueError(f"--trusted {value}: no such file")
                members.update(trust.keys)
                trusted_cluster = trust.cluster_id
        elif arg == "--v1-proposal":
            v1_proposal = True
        elif arg in ("-h", "--help"):
            raise _Help()
        else:
            files.append(arg)
    if not members or not files or any(len(m) != 32 for m in members) or (cluster is not None and len(cluster) != 16):
        raise ValueError("want at least one 32-byte --member key, an optional 16-byte --cluster, and FILE...")
    if cluster is not None and trusted_cluster is not None and cluster != trusted_cluster:
        raise ValueError(f"--cluster {cluster.hex()} is not the trusted cluster {trusted_cluster.hex()}")
    return _Args(members, cluster if cluster is not None else trusted_cluster, files, v1_proposal)


def verify_proof_main(argv: list[str], prog: str = "fauna verify-proof") -> int:
    """`verify-proof`: returns the exit status (0 all OK, 1 some FAIL, 2 usage or unreadable)."""
    from .errors import InvalidProof, TrustFileError
    from .proof import verify_bytes

    try:
        args = _parse(argv)
    except _Help:
        print(VERIFY_PROOF_HELP.format(prog=prog, pad=" " * len(prog)), end="")
        return 0
    except (ValueError, OSError, TrustFileError) as e:
        print(f"{prog}: {e}\nusage: {USAGE.format(prog=prog)}", file=sys.stderr)
        return 2
    status = 0
    for name in args.files:
        prefix = f"{name}: " if len(args.files) > 1 else ""
        try:
            with open(name, "rb") as f:
                raw = f.read()
        except OSError as e:
            print(f"{prefix}ERROR: cannot read: {e.strerror}")
            status = max(status, 2)
            continue
        try:
            verdict = verify_bytes(raw, args.members, args.cluster, check_v1_payload=args.v1_proposal)
            print(prefix + verdict.line)
        except InvalidProof as e:
            print(f"{prefix}FAIL: {e}")
            status = max(status, 1)
    return status


def main(argv: list[str] | None = None) -> int:
    """Console script entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "verify-proof":
        return verify_proof_main(argv[1:])
    if argv and argv[0] in ("-h", "--help", "help"):
        print(MAIN_HELP, end="")
        return 0
    problem = f"fauna: unknown command {argv[0]!r}\n" if argv else "fauna: no command given\n"
    print(problem + MAIN_HELP, end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
