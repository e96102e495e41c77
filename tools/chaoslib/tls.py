"""TLS for a secured chaos run (`tools/chaos --tls`, docs/CHAOS.md "Secured runs").

The run's own test CA and certificates come from `tools/tls-certs RUN/tls n1 n2 ...`, issued
with their validity starting a day in the past (the script runs under libfaketime when it is
installed): the `skew` nemesis starts a node with its clock up to 300 s behind, and faunad
refuses a certificate that is not yet valid when it loads it.

Every node's config gets a `[tls]` section; so does the harness's `client.toml`, which fctl
reads. The harness's own connections (wire.Connection, the watcher) use `client_context()`;
the fault proxy terminates TLS on both sides (`proxy_server_context`, `proxy_client_context`).
"""

import os
import ssl
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TLS_CERTS = os.path.join(ROOT, "tools", "tls-certs")
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
BACKDATE = "-1d"  # libfaketime offset under which the certificates are issued
SUBDIR = "tls"     # RUN/tls, named relative to the config files in RUN

# The [tls] section of every config file in the run directory (paths relative to it).
TOML = [
    "[tls]",
    f'ca = "{SUBDIR}/ca.crt"',
    f'cert = "{SUBDIR}/{{id}}.crt"',
    f'key = "{SUBDIR}/{{id}}.key"',
    f'client_cert = "{SUBDIR}/client.crt"',
    f'client_key = "{SUBDIR}/client.key"',
]


class Files:
    """The PEM files of one run: RUN/tls/{ca,client,nK}.{crt,key}."""

    def __init__(self, directory):
        self.dir = directory
        self.ca = os.path.join(directory, "ca.crt")
        self.client_cert = os.path.join(directory, "client.crt")
        self.client_key = os.path.join(directory, "client.key")

    def node_cert(self, name):
        return os.path.join(self.dir, f"{name}.crt"), os.path.join(self.dir, f"{name}.key")


def make_certs(directory, names, timeout_s=60.0):
    """Runs tools/tls-certs DIR NAMES... (backdated by a day when libfaketime is there); returns
    Files. Raises RuntimeError with the script's output if it fails or leaves a file missing."""
    env = dict(os.environ)
    backdated = os.path.exists(FAKETIME_LIB)
    if backdated:
        env.update(LD_PRELOAD=FAKETIME_LIB, FAKETIME=BACKDATE)
    cmd = [TLS_CERTS, directory, *names]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(cmd)}: did not finish within {timeout_s:.0f} s")
    except OSError as e:
        raise RuntimeError(f"{' '.join(cmd)}: {e}")
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout}{p.stderr}".rstrip())
    files = Files(directory)
    want = [files.ca, files.client_cert, files.client_key] + [f for n in names for f in files.node_cert(n)]
    missing = [f for f in want if not os.path.isfile(f) or os.path.getsize(f) == 0]
    if missing:
        raise RuntimeError(f"{' '.join(cmd)} left these files missing or empty: {', '.join(missing)}")
    if backdated:  # the skew nemesis needs it; say so if libfaketime did not take effect
        start = not_before(files.ca)
        if start is not None and start > time.time() - 3600:
            raise RuntimeError(f"{files.ca}: valid from {time.ctime(start)}, not backdated by "
                               f"FAKETIME={BACKDATE} (libfaketime {FAKETIME_LIB} without effect?)")
    return files


def not_before(cert_path):
    """The start of a certificate's validity (seconds since the epoch), or None if openssl
    cannot say."""
    try:
        p = subprocess.run(["openssl", "x509", "-in", cert_path, "-noout", "-startdate"],
                           capture_output=True, text=True, timeout=10)
        return ssl.cert_time_to_seconds(p.stdout.strip().split("=", 1)[1])
    except (OSError, subprocess.TimeoutExpired, IndexError, ValueError):
        return None


def _context(purpose, ca):
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=ca)
    return ctx


def client_context(files):
    """What the harness's clients use on a node's client port: TLS 1.3, the node's certificate
    verified against the run's CA without a host-name check, the client certificate presented."""
    ctx = _context(ssl.PROTOCOL_TLS_CLIENT, files.ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(files.client_cert, files.client_key)
    return ctx


def proxy_server_context(files, dst):
    """The proxy's side towards the dialling node on the port for `dst`: it presents dst's
    certificate (the dialler checks that it names the node it dialled) and requires a
    certificate of the CA."""
    ctx = _context(ssl.PROTOCOL_TLS_SERVER, files.ca)
    ctx.load_cert_chain(*files.node_cert(dst))
    return ctx


def proxy_client_context(files, src):
    """The proxy's side towards the destination node, speaking for `src`: src's certificate
    presented; the destination's verified against the CA, and its name checked by the caller
    (server_hostname = the destination's id, a DNS name in its certificate)."""
    ctx = _context(ssl.PROTOCOL_TLS_CLIENT, files.ca)
    ctx.check_hostname = True
    ctx.load_cert_chain(*files.node_cert(src))
    return ctx


def dns_names(peercert):
    """The DNS subject alternative names of a verified peer certificate (getpeercert())."""
    return {v for k, v in (peercert or {}).get("subjectAltName", ()) if k == "DNS"}
