"""A 3-node Fauna cluster on loopback for the benchmark tools (bench-put-ab, bench-ab, bench-python,
bench-audit-chain): started from a temporary cluster.toml, waited for until it has a leader,
stopped on every exit path; and the CPU time and I/O counters of a process from /proc. Every wait
is bounded."""

import json
import os
import shutil
import subprocess
import time


# `fctl bench` flags for the keys and values of tools/bench-vs-etcd's workload (the shape of
# etcd's benchmark): 100,000 8-byte keys in etcd's varint encoding, 256-byte values.
ETCD_SHAPE = ["--key-size", "8", "--val-size", "256", "--key-space", "100000", "--key-format", "varint"]


class ClusterError(Exception):
    """The cluster did not start (the message names the log files)."""


class LocalCluster:
    def __init__(self, bindir, tmp, name, first_port, extra_args=(), tls=False, encryption=False):
        """Nodes n1..n3 with peer ports first_port, +2, +4 and client ports one above each.
        tls: a local CA and certificates in tmp/tls (tools/tls-certs) and a [tls] section.
        encryption: a random master key in tmp/keys/master.key (mode 0600) and an [encryption]
        section: values sealed at rest."""
        self.bindir = bindir
        self.tmp = tmp
        self.name = name
        self.peer_ports = [first_port + 2 * i for i in range(3)]
        self.client_ports = [p + 1 for p in self.peer_ports]
        self.extra_args = list(extra_args)
        self.config = os.path.join(tmp, "cluster.toml")
        self.procs = []
        self.tls = tls
        self.encryption = encryption

    def start(self, timeout=60):
        """Starts the three nodes on an empty data directory; returns the leader's client
        endpoint "host:port" once a node reports itself leader."""
        shutil.rmtree(os.path.join(self.tmp, "data"), ignore_errors=True)
        with open(self.config, "w") as f:
            f.write(f'[cluster]\nname = "{self.name}"\ndata_dir = "data"\n')
            for i in range(3):
                f.write(f'\n[[node]]\nid = "n{i+1}"\npeer = "127.0.0.1:{self.peer_ports[i]}"\n'
                        f'client = "127.0.0.1:{self.client_ports[i]}"\n')
            if self.tls:
                f.write('\n[tls]\nca = "tls/ca.crt"\ncert = "tls/{id}.crt"\nkey = "tls/{id}.key"\n'
                        'client_cert = "tls/client.crt"\nclient_key = "tls/client.key"\n')
            if self.encryption:
                f.write('\n[encryption]\nmaster_key = "keys/master.key"\n')
        if self.encryption:
            os.makedirs(os.path.join(self.tmp, "keys"), exist_ok=True)
            key = os.path.join(self.tmp, "keys", "master.key")
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as kf:
                kf.write(os.urandom(32).hex() + "\n")
        if self.tls:
            certs = subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "tls-certs"),
                                    os.path.join(self.tmp, "tls"), "n1", "n2", "n3"],
                                   capture_output=True, text=True, timeout=60)
            if certs.returncode != 0:
                raise ClusterError(f"tools/tls-certs failed: {certs.stderr[-500:]}")
        for i in range(3):
            d = os.path.join(self.tmp, "data", f"n{i+1}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "faunad.log"), "ab") as log:
                self.procs.append(subprocess.Popen(
                    [os.path.join(self.bindir, "faunad"), "--config", self.config, "--id", f"n{i+1}",
                     "--exit-with-parent", str(os.getpid())] + self.extra_args,
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise ClusterError(f"a faunad exited at start; see {self.tmp}/data/*/faunad.log")
            p = subprocess.run([os.path.join(self.bindir, "fctl"), "status", "--config", self.config, "--json",
                                "--timeout", "5"], capture_output=True, text=True, timeout=30)
            try:
                for n in json.loads(p.stdout):
                    if n.get("reachable") and n.get("role") == "leader":
                        return n["endpoint"]
            except ValueError:
                pass
            time.sleep(0.5)
        raise ClusterError(f"no leader after {timeout} s; see {self.tmp}/data/*/faunad.log")

    def stop(self):
        """SIGTERM, then SIGKILL after 15 s; safe to call twice."""
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self.procs = []

    @property
    def pids(self):
        return [p.pid for p in self.procs]


def cpu_ticks(pid):
    """utime + stime of process `pid`, all threads, in clock ticks (os.sysconf("SC_CLK_TCK"))."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def proc_io(pid):
    """/proc/<pid>/io of process `pid` as a dict of ints (rchar, wchar, syscr, syscw, read_bytes,
    write_bytes, cancelled_write_bytes), or None when the file is missing or unreadable: a
    process this one may not ptrace-read (another user's, unless root; here even root is denied
    pid 1), a kernel without task I/O accounting, a process that has ended and been reaped. The counters cover all threads of the
    process, ended ones included (so RocksDB's background flushes and compactions are counted),
    and child processes only once it has reaped them.

    write_bytes: bytes the process caused to be sent to the storage layer, counted when it
    dirties a page of the page cache (whole pages or folios: writing into a page that is
    already dirty adds nothing, writing into one already written back and clean adds the whole
    page again) or submits direct I/O. The kernel's later writeback of those pages is not
    counted again; writes issued by kernel writeback on behalf of other processes, and the file
    system's own journal and metadata writes (ext4's jbd2 thread), are not in it. wchar: bytes
    passed to write-like system calls, to files, pipes and sockets alike (for reference)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            text = f.read()
    except OSError:
        return None
    io = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        try:
            io[key.strip()] = int(value)
        except ValueError:
            pass
    return io if "write_bytes" in io and "wchar" in io else None


def io_deltas(before, after, key):
    """after[i][key] - before[i][key] per process, from two lists of proc_io samples taken in
    the same order; None for a process whose either sample is None."""
    return [None if b is None or a is None else a[key] - b[key] for b, a in zip(before, after)]


def io_sum(before, after, key):
    """The sum of io_deltas, or None when any process's sample is missing."""
    d = io_deltas(before, after, key)
    return None if any(x is None for x in d) else sum(d)
