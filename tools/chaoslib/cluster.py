"""Real faunad processes for the chaos harness: configuration, start, kill, pause, status.

Ports (PORT_BASE, 7600 unless the environment sets CHAOS_PORT_BASE, so that two harnesses can
run at once: CHAOS_PORT_BASE=7800 uses 7800-7899): node nK listens for peers on PORT_BASE+K and
for clients on PORT_BASE+30+K; the proxy's port for traffic *to* nK is PORT_BASE+60+K. Every node
gets its own cluster.toml: its own peer address is its real listen address, the other nodes'
are proxy ports (when the proxy is on), so all Raft traffic crosses the proxy.

A secured cluster (`tls=True`, `tools/chaos --tls`) gets its certificates from tools/tls-certs in
RUN/tls and a `[tls]` section in every config file, client.toml (fctl's) included; both ports of
every node then speak TLS only (chaoslib.tls).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from . import powerloss as plfs, tls as tlslib, wire

def _port_base():
    raw = os.environ.get("CHAOS_PORT_BASE", "7600")
    try:
        base = int(raw)
    except ValueError:
        raise SystemExit(f"tools/chaos: CHAOS_PORT_BASE={raw!r}: want a port number")
    if not 1024 <= base <= 65535 - 99:
        raise SystemExit(f"tools/chaos: CHAOS_PORT_BASE={base}: want 1024..{65535 - 99}")
    return base


PORT_BASE = _port_base()
PORT_MAX = PORT_BASE + 99
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
MASTER_KEY = "master.key"  # secured runs: RUN/master.key, named by every config's [encryption]
FIU_RUN = "/usr/bin/fiu-run"  # fiu-utils: LD_PRELOADs libfiu's POSIX wrappers, then execs the program


def peer_port(k):
    return PORT_BASE + k


def client_port(k):
    return PORT_BASE + 30 + k


def proxy_port(k):
    return PORT_BASE + 60 + k


def node_number(name):
    return int(name[1:])


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Node:
    def __init__(self, name, run_dir):
        self.name = name
        self.k = node_number(name)
        self.config_path = os.path.join(run_dir, f"{name}.toml")
        self.data_dir = os.path.join(run_dir, "data", name)
        self.log_path = os.path.join(run_dir, f"{name}.log")
        self.proc = None
        self.paused = False
        self.env_extra = {}  # per-start environment (clock skew, test faults)
        self.wrapper = []  # per-start argv prefix (fiu-run ... for disk faults); it must exec faunad
        self.mounted = False  # a tmpfs of ours is mounted on data_dir
        self.fs = None  # powerloss.Mount: data_dir on the power-loss filesystem (power-loss nemesis)
        self.starts = 0


class Cluster:
    """A cluster of faunad processes, all children of this process (--exit-with-parent)."""

    def __init__(self, bin_dir, run_dir, names, use_proxy=True, tick_ms=10, election_ticks=50,
                 heartbeat_ticks=5, snapshot_entries=400, seed=0, log=print, broken=None, powerloss=False,
                 tls=False):
        self.bin_dir = bin_dir
        self.run_dir = run_dir
        self.names = list(names)
        self.use_proxy = use_proxy
        self.tick_ms = tick_ms
        self.election_ticks = election_ticks
        self.heartbeat_ticks = heartbeat_ticks
        self.snapshot_entries = snapshot_entries
        self.seed = seed
        self.log = log
        self.broken = broken or {}  # name -> FAUNA_TEST_FAULT value
        self.nodes = {n: Node(n, run_dir) for n in self.names}
        if powerloss:  # every node's data directory on its own mount, its disk under RUN/disk
            for n, node in self.nodes.items():
                node.fs = plfs.Mount(os.path.join(run_dir, "disk", n), node.data_dir,
                                          os.path.join(run_dir, f"{n}.fs.log"))
        self.proxy = None
        self.crashes = []  # (node, exit code) of exits this harness did not cause
        os.makedirs(os.path.join(run_dir, "data"), exist_ok=True)
        self.client_config = os.path.join(run_dir, "client.toml")
        self.tls = tls
        self.tls_files = None  # chaoslib.tls.Files, once write_configs made them
        self.last_status_error = None  # why the last status() got no answer (a TLS failure, say)

    # --- configuration ---------------------------------------------------------------------

    @property
    def election_timeout_s(self):
        return self.tick_ms * self.election_ticks / 1000.0

    def _toml(self, own, members):
        lines = ["# written by tools/chaos", "[cluster]", 'name = "chaos"',
                 f'data_dir = "{os.path.join(self.run_dir, "data")}"',
                 f"tick_ms = {self.tick_ms}", f"election_ticks = {self.election_ticks}",
                 f"heartbeat_ticks = {self.heartbeat_ticks}", f"snapshot_entries = {self.snapshot_entries}", ""]
        if self.tls:
            lines += tlslib.TOML + ["", "[encryption]", f'master_key = "{MASTER_KEY}"', ""]
        for n in members:
            k = node_number(n)
            peer = peer_port(k) if (n == own or not self.use_proxy or own is None) else proxy_port(k)
            lines += ["[[node]]", f'id = "{n}"', f'peer = "127.0.0.1:{peer}"', f'client = "127.0.0.1:{client_port(k)}"', ""]
        return "\n".join(lines)

    def write_configs(self):
        """The config files; for a secured cluster first its certificates (RUN/tls)."""
        if self.tls and self.tls_files is None:
            self.tls_files = tlslib.make_certs(os.path.join(self.run_dir, tlslib.SUBDIR), self.names)
        key = os.path.join(self.run_dir, MASTER_KEY)
        if self.tls and not os.path.exists(key):  # values sealed at rest, with a key of the run
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
        for n in self.names:
            with open(self.nodes[n].config_path, "w") as f:
                f.write(self._toml(n, self.names))
        with open(self.client_config, "w") as f:
            f.write(self._toml(None, self.names))

    def advertised_peer(self, name):
        """The peer address the other nodes should use for `name`."""
        k = node_number(name)
        return f"127.0.0.1:{proxy_port(k) if self.use_proxy else peer_port(k)}"

    # --- processes -------------------------------------------------------------------------

    def check_ports(self):
        busy = []
        for n in self.names:
            k = node_number(n)
            for p in (peer_port(k), client_port(k)) + ((proxy_port(k),) if self.use_proxy else ()):
                if not port_free(p):
                    busy.append(p)
        if busy:
            raise RuntimeError(f"ports {busy} are in use (the harness owns {PORT_BASE}-{PORT_MAX}): "
                               "is another tools/chaos running, or a faunad left over?")

    def start_proxy(self):
        if not self.use_proxy:
            return
        spec = {"listen": {str(node_number(n)): [proxy_port(node_number(n)), peer_port(node_number(n))]
                           for n in self.names}, "seed": self.seed}
        if self.tls:  # the proxy terminates TLS on both sides with the run's certificates
            spec["tls"] = {"dir": self.tls_files.dir}
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proxy = subprocess.Popen([sys.executable, "-m", "chaoslib.proxy", json.dumps(spec)], cwd=here,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      start_new_session=True)
        line = self.proxy.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"proxy did not start (said {line!r}; its error, if any, is above)")

    def set_network(self, blocked=(), delay_ms=(0, 0), dup=0.0, reorder=False):
        if not self.proxy:
            raise RuntimeError("network faults need the proxy (do not pass --no-proxy)")
        d = {"blocked": [[node_number(a), node_number(b)] for a, b in blocked], "delay_ms": list(delay_ms),
             "dup": dup, "reorder": reorder}
        self.proxy.stdin.write(json.dumps(d) + "\n")
        self.proxy.stdin.flush()
        if self.proxy.stdout.readline().strip() != "ok":
            raise RuntimeError("proxy did not accept the rules")

    def proxy_stats(self):
        if not self.proxy:
            return {}
        self.proxy.stdin.write('{"stats": true}\n')
        self.proxy.stdin.flush()
        return json.loads(self.proxy.stdout.readline())

    def start(self, name, join=False):
        node = self.nodes[name]
        if node.proc and node.proc.poll() is None:
            return
        self.note_exit(name)
        os.makedirs(node.data_dir, exist_ok=True)
        if node.fs is not None and not node.fs.alive:  # first start, or back from a power loss
            node.fs.start()
        args = [os.path.join(self.bin_dir, "faunad"), "--config", node.config_path, "--id", name,
                "--data-dir", node.data_dir, "--exit-with-parent", str(os.getpid())]
        if join:
            args.append("--join")
        argv = list(node.wrapper) + args
        env = dict(os.environ)
        env.update(node.env_extra)
        # Under libfaketime a Swift program sees no argv: faunad then reads FAUNAD_ARGS.
        env["FAUNAD_ARGS"] = "\n".join(args[1:])
        if name in self.broken:
            env["FAUNA_TEST_FAULT"] = self.broken[name]
        logf = open(node.log_path, "a")
        logf.write(f"--- tools/chaos: start {name} at {time.time():.3f} env {node.env_extra} join={join}"
                   + (f" wrapper {node.wrapper}" if node.wrapper else "") + "\n")
        logf.flush()
        node.start_offset = logf.tell()  # where this start's output begins in the log
        node.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        logf.close()
        node.paused = False
        node.starts += 1

    def note_exit(self, name, expected=(0, -signal.SIGKILL)):
        """Records an exit the harness did not cause (SIGKILL is ours; 0 is a graceful stop or
        a removed member stopping by itself)."""
        node = self.nodes[name]
        if node.proc is not None and node.proc.poll() is not None and not getattr(node.proc, "noted", False):
            node.proc.noted = True
            if node.proc.returncode not in expected:
                self.crashes.append((name, node.proc.returncode))
                self.log(f"  {name} exited with status {node.proc.returncode} (see {node.log_path})")

    def is_running(self, name):
        p = self.nodes[name].proc
        return p is not None and p.poll() is None

    def exit_code(self, name):
        p = self.nodes[name].proc
        return None if p is None else p.poll()

    def signal(self, name, sig):
        p = self.nodes[name].proc
        if p is None or p.poll() is not None:
            return False
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def kill(self, name):
        node = self.nodes[name]
        if self.signal(name, signal.SIGKILL):
            node.proc.wait(10)
            node.proc.noted = True
        node.paused = False

    def pause(self, name):
        if self.signal(name, signal.SIGSTOP):
            self.nodes[name].paused = True

    def resume(self, name):
        if self.signal(name, signal.SIGCONT):
            self.nodes[name].paused = False

    def stop(self, name, grace_s=8.0):
        """SIGTERM (graceful), SIGKILL after grace_s."""
        node = self.nodes[name]
        p = node.proc
        if p is None or p.poll() is not None:
            self.note_exit(name)
            return
        self.signal(name, signal.SIGCONT)
        self.signal(name, signal.SIGTERM)
        try:
            p.wait(grace_s)
            # Our SIGTERM may land before faunad has installed its handler (a node started a
            # moment ago): then it dies of the signal instead of exiting 0. Both are ours.
            self.note_exit(name, expected=(0, -signal.SIGKILL, -signal.SIGTERM))
        except subprocess.TimeoutExpired:
            self.log(f"{name} did not stop within {grace_s} s of SIGTERM: SIGKILL")
            self.kill(name)

    def wipe(self, name):
        node = self.nodes[name]
        if node.fs is not None and not node.fs.alive and not node.mounted:
            shutil.rmtree(node.fs.backing, ignore_errors=True)  # unmounted: wipe the disk itself
            return
        if node.mounted or node.fs is not None:  # keep the mount point, empty it
            for e in os.listdir(node.data_dir):
                p = os.path.join(node.data_dir, e)
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    os.unlink(p)
        else:
            shutil.rmtree(node.data_dir, ignore_errors=True)

    def log_since_start(self, name, limit=200_000):
        """The node's log output since its last start (at most `limit` characters, the tail)."""
        node = self.nodes[name]
        try:
            with open(node.log_path, "rb") as f:
                f.seek(getattr(node, "start_offset", 0))
                data = f.read()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def mount_tmpfs(self, name, size_bytes):
        """Mounts a tmpfs of `size_bytes` on the (stopped) node's empty data directory (root only)."""
        node = self.nodes[name]
        os.makedirs(node.data_dir, exist_ok=True)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "chaos-" + name, node.data_dir],
                           capture_output=True, text=True, timeout=10)
        if p.returncode != 0:
            raise RuntimeError(f"mount -t tmpfs on {node.data_dir}: {p.stderr.strip()}")
        node.mounted = True

    def umount(self, name):
        node = self.nodes[name]
        if not node.mounted:
            return
        p = subprocess.run(["umount", node.data_dir], capture_output=True, text=True, timeout=10)
        if p.returncode != 0:
            self.log(f"umount {node.data_dir}: {p.stderr.strip()}; lazy unmount")
            subprocess.run(["umount", "-l", node.data_dir], capture_output=True, timeout=10)
        node.mounted = False

    def umount_all(self):
        for n in self.names:
            try:
                self.umount(n)
            except Exception as e:
                self.log(f"umount {n}: {e}")
        for n in self.names:  # the power-loss filesystems (under any tmpfs): a clean unmount
            fs = self.nodes[n].fs
            if fs is not None:
                try:
                    fs.unmount()
                except Exception as e:
                    self.log(f"unmounting the power-loss filesystem of {n}: {e}")
                    fs.kill()

    def power_loss(self, name, tear=False, seed=0):
        """The machine of `name` loses power: SIGKILL the node, then its filesystem drops every
        write not fsynced (tearing the last one of each file if `tear`) and unmounts. The next
        start() mounts it again. Returns what the filesystem dropped."""
        node = self.nodes[name]
        if node.fs is None:
            raise RuntimeError(f"{name} is not on the power-loss filesystem")
        self.kill(name)
        if not node.fs.alive:  # never started, or already without power
            return {"droppedBytes": 0, "droppedFiles": 0, "torn": [], "tear": tear}
        return node.fs.power_loss(tear=tear, seed=seed)

    def shutdown(self):
        """Stops every process this cluster started; safe to call more than once."""
        for n in self.names:
            try:
                self.stop(n, grace_s=5.0)
            except Exception as e:  # never leave a node behind because another failed
                self.log(f"stopping {n}: {e}")
                self.kill(n)
        self.umount_all()
        if self.proxy and self.proxy.poll() is None:
            try:
                self.proxy.stdin.close()
                self.proxy.wait(3)
            except Exception:
                try:
                    os.killpg(self.proxy.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proxy.wait(3)

    def emergency_kill(self):
        """From a signal handler or atexit: SIGKILL everything, no waiting."""
        for n in self.names:
            p = self.nodes[n].proc
            if p is not None and p.poll() is None:
                for sig in (signal.SIGKILL,):
                    try:
                        os.killpg(p.pid, sig)
                    except ProcessLookupError:
                        pass
        if self.proxy is not None and self.proxy.poll() is None:
            try:
                os.killpg(self.proxy.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for n in self.names:  # the processes may not be gone yet: lazy unmount detaches at once
            if self.nodes[n].mounted:
                subprocess.run(["umount", "-l", self.nodes[n].data_dir], capture_output=True, timeout=10)
                self.nodes[n].mounted = False
        for n in self.names:
            if self.nodes[n].fs is not None:
                self.nodes[n].fs.kill()

    # --- queries ---------------------------------------------------------------------------

    def status(self, name, timeout=1.0):
        k = node_number(name)
        try:
            c = wire.Connection("127.0.0.1", client_port(k), connect_timeout=timeout)
        except OSError as e:
            self.last_status_error = f"{name}: connect: {type(e).__name__}: {e}"
            return None
        try:
            kind, body = c.request(wire.KIND_STATUS, b"", timeout)
            if kind != wire.KIND_STATUS_RESPONSE:
                self.last_status_error = f"{name}: answer kind {kind:#04x}" + (
                    f" ({wire.parse_error(body)})" if kind == wire.KIND_ERROR else "")
                return None
            return wire.parse_status(body)
        except (OSError, wire.ProtocolError) as e:
            self.last_status_error = f"{name}: status: {type(e).__name__}: {e}"
            return None
        finally:
            c.close()

    def statuses(self, names=None):
        return {n: self.status(n) for n in (names or self.names) if self.is_running(n) and not self.nodes[n].paused}

    def leader(self, names=None):
        """The name of the node that says it leads, with the highest term; None if none."""
        best = None
        for n, st in self.statuses(names).items():
            if st and st["role"] == "leader" and (best is None or st["term"] > best[1]):
                best = (n, st["term"])
        return best[0] if best else None

    def enable_users(self):
        """Turns users on (secured runs): the user root, certificate only, with the root role.
        The harness's certificate names root, so every connection of the run is root's.
        None, or what failed."""
        for args in (("user", "add", "root", "--no-password"), ("user", "grant-role", "root", "root"),
                     ("auth", "enable")):
            code, out, err = self.fctl(*args, "--timeout", "20", timeout_s=30)
            if code != 0:
                return f"fctl {' '.join(args)} exited {code}: {(err or out).strip()[-300:]}"
        return None

    def wait_for_leader(self, timeout_s, names=None):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            n = self.leader(names)
            if n:
                return n
            time.sleep(0.1)
        return None

    def fctl(self, *args, timeout_s=15.0):
        """Runs fctl against this cluster; (exit code, stdout, stderr)."""
        cmd = [os.path.join(self.bin_dir, "fctl"), *args, "--config", self.client_config]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, start_new_session=True)
            return p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            return -1, "", f"fctl {' '.join(args)}: no answer within {timeout_s} s"

    def hashkv(self, timeout_s=10.0):
        code, out, err = self.fctl("hashkv", "--json", "--timeout", str(int(timeout_s)), timeout_s=timeout_s + 5)
        try:
            return code, json.loads(out.strip().splitlines()[-1]) if out.strip() else None, err
        except json.JSONDecodeError:
            return code, None, err + out
