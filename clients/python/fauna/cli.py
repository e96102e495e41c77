"""The `fauna` command (console script of the package; `python -m fauna.cli`).

    fauna verify-proof [--member HEX ...] [--members FILE] [--cluster HEX] [--trusted FILE]
                       [--v1-proposal] FILE...
    fauna status | get KEY [--serializable] | put KEY VALUE
                 [--config PATH | --endpoints H:P,...] [--ca PATH] [--cert PATH --key PATH] [--timeout S]

`verify-proof` is tools/verify-proof (a wrapper around `verify_proof_main`): same checks, output
and exit codes. `VERIFY_PROOF_HELP` below is its `--help`. `status`, `get` and `put` talk to a
cluster as fctl's commands of the same name do, with fctl's connection options (TLS from
`[tls]` of --config, or --ca/--cert/--key) and exit codes (`EXIT_CODES_HELP`; 7: TLS).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional

USAGE = "{prog} --member HEX... [--members FILE] [--cluster HEX] [--trusted FILE] [--v1-proposal] FILE..."

MAIN_HELP = """usage: fauna COMMAND [ARG...]

The command-line tool of Fauna's Python client.

commands:
  verify-proof FILE...   check proof files ("fauna-proof-v1"/"-v2", from `fctl proof` or
                         VerifiedRecord.proof_file()) offline, against member keys you trust
  status                 every node's role, term, leader and applied index
  get KEY                the value of KEY (exit 1 if there is none)
  put KEY VALUE          writes KEY (exactly once)

status, get and put take fctl's connection options: --config PATH (default ./cluster.toml,
its [tls] included), --endpoints H:P,..., --ca PATH, --cert PATH --key PATH, --timeout S.

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


# --- commands that talk to a cluster ----------------------------------------------------------

EXIT_CODES_HELP = """exit codes (fctl's, docs/CLI.md):
  0  ok
  1  not found (get)
  2  usage error: bad arguments or options, an unreadable --config
  3  cluster unavailable: no node reachable, no leader, or no answer before --timeout (a put
     may still have committed: check with get)
  4  request rejected by the server (invalid, compacted or future revision, unsupported)
  5  internal error: a bug, an unexpected answer, a write whose result is unknown
  7  security: TLS failed (the node's certificate is not from the CA given, a plaintext port,
     a client certificate the node refused), the node answered tlsRequired (TLS is off here
     and on at the node), or a file of --ca/--cert/--key cannot be used. Not retried
"""

_DESCRIPTIONS = {
    "status": "Every node's status, one line each: ENDPOINT, role, term, leader, applied index (or why it did not answer).",
    "get": "Prints the value of KEY and a newline (printable UTF-8 as text, else 0x and hex); exit 1 if there is none.",
    "put": "Sets KEY to VALUE, exactly once (a retried write is not applied twice); prints `put KEY → revision R`.",
}


class _Exit(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def _parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"fauna {command}", description=_DESCRIPTIONS[command], epilog=EXIT_CODES_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    if command == "get":
        p.add_argument("key_arg", metavar="KEY", help="the key (its UTF-8 bytes)")
        p.add_argument("--serializable", action="store_true", help="read any node's state, maybe stale")
    elif command == "put":
        p.add_argument("key_arg", metavar="KEY", help="the key (its UTF-8 bytes)")
        p.add_argument("value", metavar="VALUE", help="the value (its UTF-8 bytes)")
    g = p.add_argument_group("connection (fctl's global options)")
    g.add_argument("--config", metavar="PATH", default="cluster.toml",
                   help="cluster.toml to take the nodes' client addresses and [tls] from (default ./cluster.toml)")
    g.add_argument("--endpoints", metavar="H:P,...", help="client addresses to use instead of --config")
    g.add_argument("--ca", metavar="PATH",
                   help="TLS: the cluster's CA certificate (PEM). Default: [tls] ca of --config, if it has [tls]")
    g.add_argument("--cert", metavar="PATH", dest="cert_file",
                   help="TLS: this client's certificate (PEM), with --key. Default: [tls] client_cert of --config")
    g.add_argument("--key", metavar="PATH", dest="key_file",
                   help="TLS: the private key of --cert (PEM). Default: [tls] client_key of --config")
    g.add_argument("--timeout", metavar="S", type=float, default=10.0,
                   help="give up after this many seconds, retries included (default 10)")
    return p


def _connect(args: argparse.Namespace) -> Any:
    """A Client from the connection options: nodes from --endpoints or --config; TLS from --ca
    (with --cert/--key), else from [tls] of --config (--cert/--key replacing its client pair),
    else plaintext."""
    from .client import Client
    from .config import ClientConfig, load_cluster_file
    from .errors import InvalidArgument
    from .tls import TLSConfig
    from .wire import Endpoint

    if not 0 < args.timeout <= 86_400:
        raise _Exit(2, f"--timeout {args.timeout}: want 0 < seconds <= 86400")
    if (args.cert_file is None) != (args.key_file is None):
        raise _Exit(2, "--cert and --key: give both or neither")
    cluster = None
    try:
        if args.endpoints is not None:
            endpoints = [Endpoint.parse(part.strip()) for part in args.endpoints.split(",") if part.strip()]
            if not endpoints:
                raise _Exit(2, "--endpoints: want at least one host:port")
        else:
            cluster = load_cluster_file(args.config)
            endpoints = cluster.endpoints
    except OSError as e:
        raise _Exit(2, f"cannot read {args.config}: {e.strerror or e}. Pass --config PATH or --endpoints host:port,...")
    except InvalidArgument as e:
        raise _Exit(2, str(e))
    tls: Optional[TLSConfig] = None
    if args.ca is not None:
        tls = TLSConfig(args.ca, args.cert_file, args.key_file)
    elif cluster is not None and cluster.tls is not None:
        files = cluster.tls
        tls = TLSConfig(files.ca, args.cert_file or files.client_cert, args.key_file or files.client_key)
    elif args.cert_file is not None:
        where = "--endpoints" if cluster is None else f"{args.config} has no [tls]"
        raise _Exit(2, f"--cert and --key need --ca ({where})")
    t = args.timeout
    config = ClientConfig(timeout=t, request_timeout=min(t, 3.0), connect_timeout=min(t, 1.0))
    return Client(endpoints, config=config, tls=tls, cluster_name=cluster.name if cluster else None)


def _exit_for(e: BaseException, action: str) -> _Exit:
    """The exit code and message of a failed call (fctl's FctlError)."""
    from . import errors as E

    if isinstance(e, E.TLSError):
        return _Exit(7, f"{action} failed: {_sentence(str(e))} Check [tls] in the cluster.toml used (or --ca, "
                        "--cert, --key): the CA must be the cluster's, the certificates valid, and TLS on at both ends.")
    if isinstance(e, (E.ConnectionFailed, E.DeadlineExceeded, E.Unavailable, E.NotLeader)):
        maybe = " (the put may still have committed: check with `fauna get`)" if action == "put" else ""
        return _Exit(3, f"{action} failed: cluster unavailable ({e}). Check that the nodes run (`fauna status`) and "
                        f"that --endpoints/--config name their client ports, or raise --timeout{maybe}.")
    if isinstance(e, (E.Compacted, E.FutureRevision, E.InvalidRequest, E.Unsupported, E.LeaseNotFound)):
        return _Exit(4, f"{action} rejected by the server: {e}")
    if isinstance(e, E.InvalidArgument):
        return _Exit(2, f"{action}: {e}")
    return _Exit(5, f"{action} failed: {e}. This is a bug or a broken node; check the node logs.")


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


def _show(b: bytes) -> str:
    """fctl's text output: printable UTF-8 as is, else 0x and lowercase hex."""
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + b.hex()
    if any((ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F for c in text):
        return "0x" + b.hex()
    return text


def _status(client: Any, args: argparse.Namespace) -> int:
    from .errors import FaunaError, TLSError

    answers = client.status_all()
    tls_failed = False
    for ep, st in answers.items():
        if isinstance(st, FaunaError):
            tls_failed = tls_failed or isinstance(st, TLSError)
            print(f"{ep}\tunreachable ({type(st).__name__}: {st})")
        else:
            leader = f"n{st.leader}" if st.leader is not None else "-"
            print(f"{ep}\t{st.role}\tterm {st.term}\tleader {leader}\tapplied {st.applied_index}")
    if tls_failed:
        raise _Exit(7, "status: TLS failed at some node (above). Check [tls] in the cluster.toml used (or --ca, "
                       "--cert, --key): the CA must be the cluster's, the certificates valid, and TLS on at both ends.")
    if not any(not isinstance(st, FaunaError) for st in answers.values()):
        raise _Exit(3, "status: no node answered. Check that the nodes run and that --endpoints/--config name "
                       "their client ports.")
    return 0


def _get(client: Any, args: argparse.Namespace) -> int:
    rec = client.get(os.fsencode(args.key_arg), serializable=args.serializable)
    if rec is None:
        print(f"fauna: get: key {args.key_arg!r} not found", file=sys.stderr)
        return 1
    print(_show(rec.value))
    return 0


def _put(client: Any, args: argparse.Namespace) -> int:
    res = client.put(os.fsencode(args.key_arg), os.fsencode(args.value))
    print(f"put {args.key_arg} → revision {res.revision}")
    return 0


_COMMANDS: dict[str, Callable[[Any, argparse.Namespace], int]] = {"status": _status, "get": _get, "put": _put}


def cluster_command_main(command: str, argv: list[str]) -> int:
    """`status`, `get`, `put`: returns the exit status (EXIT_CODES_HELP); errors on stderr,
    prefixed `fauna:`."""
    from .errors import FaunaError

    try:
        try:
            args = _parser(command).parse_args(argv)
        except SystemExit as e:  # --help (0) or a usage error (2, printed by argparse)
            return e.code if isinstance(e.code, int) else 2
        try:
            client = _connect(args)
        except FaunaError as e:  # TLSError: a file of --ca/--cert/--key; InvalidArgument
            raise _exit_for(e, command) from e
        with client:
            try:
                return _COMMANDS[command](client, args)
            except FaunaError as e:
                raise _exit_for(e, command) from e
            except TypeError as e:  # a key or value the client refuses
                raise _Exit(2, f"{command}: {e}") from e
    except _Exit as e:
        print(f"fauna: {e}", file=sys.stderr)
        return e.code


def main(argv: list[str] | None = None) -> int:
    """Console script entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "verify-proof":
        return verify_proof_main(argv[1:])
    if argv and argv[0] in _COMMANDS:
        return cluster_command_main(argv[0], argv[1:])
    if argv and argv[0] in ("-h", "--help", "help"):
        print(MAIN_HELP, end="")
        return 0
    problem = f"fauna: unknown command {argv[0]!r}\n" if argv else "fauna: no command given\n"
    print(problem + MAIN_HELP, end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
