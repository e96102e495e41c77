"""The harness's side of the power-loss filesystem (`powerloss_fs.py`): requirements, and one
mount per node, started, crashed and unmounted from here.

The filesystem runs under Debian's /usr/bin/python3 (python3-pyfuse3 serves only that
interpreter), whatever Python runs the harness. It is controlled through its stdin and stdout
(JSON lines); if the harness dies, the end of its stdin makes it sync and unmount by itself.
"""

import json
import os
import select
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FS_SCRIPT = os.path.join(HERE, "powerloss_fs.py")
PYTHON = "/usr/bin/python3"  # Debian's: the interpreter python3-pyfuse3 is built for
INSTALL_HINT = "apt-get install fuse3 python3-pyfuse3 (tools/setup installs them)"


def unavailable():
    """None if the power-loss filesystem can run here; otherwise a list of what is missing,
    each with what to do about it."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root: mounting the FUSE filesystem needs root (run tools/chaos as root)")
    if not os.path.exists("/dev/fuse"):
        problems.append("/dev/fuse is missing: load the module (modprobe fuse); in a container, pass the "
                        "device through (--device /dev/fuse) with CAP_SYS_ADMIN")
    if not os.access(PYTHON, os.X_OK):
        problems.append(f"{PYTHON} is missing: the filesystem runs on Debian's python3 ({INSTALL_HINT})")
    else:
        p = subprocess.run([PYTHON, "-c", "import pyfuse3, trio"], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["?"])[-1]
            problems.append(f"{PYTHON} cannot import pyfuse3 ({last}): {INSTALL_HINT}")
    return problems or None


def is_mounted(path):
    """Whether something is mounted on `path` (per /proc/self/mountinfo). Never touches the
    mount itself (a stopped or hung filesystem would block the caller): only its parent."""
    path = os.path.abspath(path)
    target = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4 and fields[4].replace("\\040", " ") == target:
                    return True
    except OSError:
        pass
    return False


def lazy_umount(path):
    # --no-canonicalize: umount would otherwise stat the mount point, which blocks while a
    # filesystem process is alive but not answering.
    subprocess.run(["umount", "--lazy", "--no-canonicalize", os.path.abspath(path)], capture_output=True, timeout=10)


class Mount:
    """One filesystem process: `backing` (the disk) mounted on `mountpoint`."""

    def __init__(self, backing, mountpoint, log_path, cache_max_bytes=None):
        self.backing = backing
        self.mountpoint = mountpoint
        self.log_path = log_path
        self.cache_max_bytes = cache_max_bytes
        self.proc = None
        self.buf = b""
        self.mounts = 0

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s=20.0):
        """Mounts; returns once the filesystem says it is ready (RuntimeError if it does not)."""
        if self.alive:
            return
        os.makedirs(self.backing, exist_ok=True)
        if is_mounted(self.mountpoint):  # a previous process that died without unmounting
            lazy_umount(self.mountpoint)
        os.makedirs(self.mountpoint, exist_ok=True)
        argv = [PYTHON, FS_SCRIPT, "--backing", self.backing, "--mount", self.mountpoint]
        if self.cache_max_bytes:
            argv += ["--cache-max-bytes", str(self.cache_max_bytes)]
        with open(self.log_path, "a") as log:
            log.write(f"--- tools/chaos: mount {self.mountpoint} at {time.time():.3f}\n")
            log.flush()
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         start_new_session=True)
        self.buf = b""
        self.mounts += 1
        said = self._line(timeout_s)
        if not said or not said.get("ready"):
            self.kill()
            raise RuntimeError(f"the power-loss filesystem did not mount {self.mountpoint}: "
                               f"{said or 'no answer'}; its log: {self.log_path}")

    def _line(self, timeout_s):
        """The next JSON line from the filesystem, or None (timeout, or it exited)."""
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            return {"error": line.decode("utf-8", "replace")}

    def request(self, obj, timeout_s=30.0):
        if not self.alive:
            raise RuntimeError(f"the power-loss filesystem on {self.mountpoint} is not running")
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()
        return self._line(timeout_s)

    def stats(self):
        return self.request({"op": "stats"})

    def power_loss(self, tear=False, seed=0, timeout_s=20.0):
        """Drops every unsynced write (every process using the mount must be dead), unmounts
        and waits for the process to end. Returns what the filesystem says it dropped.

        A filesystem that does not answer within `timeout_s` has its stacks written to its log
        (Python's by SIGUSR1, the kernel's from /proc) and is SIGKILLed: its cache dies with
        the process, which is a power loss too (without a tear). The answer then says
        {"hung": True, "droppedBytes": None, ...} with what was found."""
        said = self.request({"op": "power-loss", "tear": bool(tear), "seed": int(seed)}, timeout_s)
        if said and said.get("unmounted"):
            self._finish(timeout_s)
            return said
        diagnosis = self.diagnose()
        self.kill()
        self._finish(0)
        return {"hung": True, "said": said, "droppedBytes": None, "droppedFiles": None, "torn": [], "tear": False,
                "diagnosis": diagnosis}

    def diagnose(self):
        """What a filesystem process that does not answer is doing: its kernel state (wchan,
        kernel stack) returned and logged, and its Python stacks dumped into its log."""
        pid = self.proc.pid if self.proc else None
        if pid is None or self.proc.poll() is not None:
            return f"the filesystem process exited with {self.proc.returncode if self.proc else None}"
        found = []
        for name in ("wchan", "stack"):
            try:
                with open(f"/proc/{pid}/{name}") as f:
                    found.append(f"{name}: {f.read().strip()}")
            except OSError as e:
                found.append(f"{name}: {e}")
        try:
            with open(f"/proc/{pid}/status") as f:
                found += [ln.strip() for ln in f if ln.startswith("State:")]
        except OSError:
            pass
        text = "; ".join(found)
        with open(self.log_path, "a") as log:
            log.write(f"--- tools/chaos: no answer from the filesystem at {time.time():.3f}: {text}\n")
        try:
            os.kill(pid, signal.SIGUSR1)  # faulthandler: every thread's Python stack to the log
            time.sleep(1.0)
        except ProcessLookupError:
            pass
        return text

    def unmount(self, timeout_s=60.0):
        """A clean unmount: the filesystem syncs everything, unmounts and exits."""
        if not self.alive:
            self._finish(0)
            return None
        try:
            said = self.request({"op": "unmount"}, timeout_s)
        except (OSError, ValueError):
            said = None
        self._finish(timeout_s)
        return said

    def _finish(self, timeout_s):
        """Waits for the process to exit (SIGKILL after timeout_s) and makes sure nothing is
        left mounted."""
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
            self._close_pipes()
        if is_mounted(self.mountpoint):
            lazy_umount(self.mountpoint)

    def _close_pipes(self):
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except (OSError, ValueError):
                pass

    def kill(self):
        """From an emergency path: SIGKILL the process (no syncing), detach the mount."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None and self.proc.poll() is not None:
            self._close_pipes()
        if is_mounted(self.mountpoint):
            lazy_umount(self.mountpoint)
