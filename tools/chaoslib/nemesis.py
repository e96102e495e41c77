"""Faults on a schedule drawn from a seed, and their healing.

A schedule is a list of steps `{"at": seconds from the start, "fault": name, "duration": s,
"pick": a number in [0, 1) that chooses among candidate nodes}`; which node a step hits is
decided when it runs (the leader moves) and written to the history as a `nemesis` event.

Faults (groups in parentheses, as `--nemesis` takes them):
  kill-leader, kill-follower, kill-all (kill)   SIGKILL, restart after `duration`
  pause-leader, pause-follower (pause)          SIGSTOP for `duration` (> election timeout), SIGCONT
  partition-half, partition-leader, partition-asym (partition)
                                                proxy drops frames: a random minority | majority
                                                split; the leader alone; one node's outgoing
                                                frames only (it still hears everybody)
  net (net)                                     every link: delay 0-60 ms, reordering, 10% of Raft
                                                frames duplicated
  skew (skew)                                   restart a node under libfaketime: clock offset
                                                -300..+300 s and rate x0.5..x2; restart it
                                                normally afterwards
  transfer (transfer)                           `fctl leader transfer` to a random follower
  member (member)                               `fctl member remove` a follower, wipe it, restart
                                                it with --join, `add-learner`, `promote`
  disk-eio (disk)                               stop a node, restart it under libfiu (`fiu-run -x`):
                                                EIO injected at random into its file I/O; it must
                                                stop by itself (exit 1, "stopping: ... failed");
                                                restart it without injection: it catches up
  disk-full (disk)                              remove a follower, re-add it empty on a small tmpfs
                                                (root: mount); it must stop by itself (exit 1,
                                                diskFull) at open or while catching up; unmount,
                                                wipe, re-add it on the normal disk
  power-loss-leader, power-loss-follower, power-loss-all (power-loss)
                                                every data directory lives on the power-loss
                                                filesystem (powerloss_fs.py); SIGKILL the
                                                node(s), drop every write they had not fsynced
                                                (half the steps, from the seed, also tear each
                                                file's last unsynced write), remount, restart
                                                after `duration`; each must come back and catch up
"""

import json
import os
import random
import re
import signal
import threading
import time

from . import cluster as cl

GROUPS = {
    "kill": ["kill-leader", "kill-follower", "kill-all"],
    "pause": ["pause-leader", "pause-follower"],
    "partition": ["partition-half", "partition-leader", "partition-asym"],
    "net": ["net"],
    "skew": ["skew"],
    "transfer": ["transfer"],
    "member": ["member"],
    "disk": ["disk-eio", "disk-full"],
    "power-loss": ["power-loss-leader", "power-loss-follower", "power-loss-all"],
}
ALL = [f for g in GROUPS.values() for f in g]
NETWORK = {"partition-half", "partition-leader", "partition-asym", "net"}
POWER_LOSS = set(GROUPS["power-loss"])

DURATION_S = {  # (min, max) of a fault's duration
    "kill-leader": (0.5, 3.0), "kill-follower": (0.5, 4.0), "kill-all": (0.5, 2.0),
    "pause-leader": (1.0, 3.0), "pause-follower": (1.0, 3.0),
    "partition-half": (2.0, 5.0), "partition-leader": (2.0, 5.0), "partition-asym": (2.0, 5.0),
    "net": (3.0, 6.0), "skew": (4.0, 8.0), "transfer": (0.0, 0.0), "member": (0.0, 0.0),
    "disk-eio": (2.0, 4.0), "disk-full": (2.0, 4.0),  # plus up to DISK_WINDOW_S until the node stops
    "power-loss-leader": (0.5, 3.0), "power-loss-follower": (0.5, 3.0), "power-loss-all": (0.5, 2.0),
}
# Extra quiet time after a step (on top of its duration): the node's restart and catch-up.
EXTRA_GAP_S = {"member": 6.0, "disk-eio": 8.0, "disk-full": 12.0,
               "power-loss-leader": 2.0, "power-loss-follower": 2.0, "power-loss-all": 3.0}
POWER_LOSS_RECOVERY_S = 30.0  # a node back from a power loss must have caught up within this

# --- disk faults -------------------------------------------------------------------------------
# libfiu's POSIX preload (fiu-utils) makes the named calls fail with errno `failinfo` (5, EIO)
# with the given probability, in every thread of the process. Only the file-system calls
# RocksDB's WAL, SST and MANIFEST writes go through: its WAL appends use write(2) and fdatasync,
# SSTs pwrite/pread. Sockets also go through read/write; `posix/io/rw/*` would fail those too
# (SwiftNIO then closes the connection, which is harmless but not a disk fault).
EIO_POINTS = ["posix/io/sync/*", "posix/io/rw/*"]
EIO_PROBABILITY = {"posix/io/sync/*": 0.02, "posix/io/rw/*": 0.002}
DISK_WINDOW_S = 20.0  # a node under disk faults must stop within this (under load)
DISK_GUARD_BYTES = 256 << 20  # faunad's Store.Options.diskFreeBytesMin (not configurable)
# What faunad says when it stops on a store error: the critical log line of a running node,
# the last line of the process, or the error that made the open fail.
DISK_STOP_RE = re.compile(r"stopping: .* failed: store error|faunad: \S+ stopped: store error|faunad: \S+: .*store error \[")
CRASH_SIGNALS = {-signal.SIGILL, -signal.SIGSEGV, -signal.SIGTRAP, -signal.SIGBUS, -signal.SIGFPE}


def classify_disk_exit(code, log_text):
    """What the exit of a node under an injected disk fault means: (kind, detail).

    kind: "running" (no exit yet), "stop" (exit 1 and faunad's fail-stop message: expected),
    "abort" (SIGABRT: Debian's librocksdb keeps its assertions, and some injected errors trip
    them; a stop too, reported as a warning), "unclear" (exit 1 without the message, exit 0,
    or SIGKILL/SIGTERM nobody sent: a failure), "crash" (SIGILL, SIGSEGV, SIGTRAP, SIGBUS,
    SIGFPE: a failure). detail is the matching log line or the log's tail."""
    lines = [ln for ln in log_text.splitlines() if ln.strip()]
    tail = "\n".join(lines[-6:])
    if code is None:
        return "running", tail
    if code == 1:
        hits = [ln for ln in lines if DISK_STOP_RE.search(ln)]
        return ("stop", hits[0][-400:]) if hits else ("unclear", tail)
    if code == -signal.SIGABRT:
        return "abort", tail
    if code in CRASH_SIGNALS:
        return "crash", tail
    return "unclear", tail


def eio_spec(rng):
    """(fiu-run enable command, point) for one disk-eio step."""
    point = rng.choice(EIO_POINTS)
    return f"enable_random name={point},probability={EIO_PROBABILITY[point]},failinfo=5", point


WAL_PREALLOC_BYTES = 75 << 20  # RocksDB fallocates ~74.5 MiB for a new WAL (measured on tmpfs)


def tmpfs_size(rng):
    """Size of the disk-full step's tmpfs, one of three variants: below faunad's 256 MiB reserve
    (refused at open); the reserve plus 1-4 MiB (the open passes, then RocksDB's WAL
    preallocation takes ~75 MiB and the first Raft log write is refused); the reserve plus the
    preallocation plus 256 KiB-1 MiB (fills while the node installs its snapshot and catches up:
    writes into the preallocated WAL take no more space, so only SSTs and snapshot files fill it)."""
    v = rng.randrange(3)
    if v == 0:
        return 128 << 20, "below-reserve"
    if v == 1:
        return DISK_GUARD_BYTES + rng.randint(1, 4) * (1 << 20), "reserve-plus"
    return DISK_GUARD_BYTES + WAL_PREALLOC_BYTES + rng.randint(1, 4) * (256 << 10), "reserve-plus-wal"



def expand(names):
    out = []
    for n in names:
        n = n.strip()
        if not n:
            continue
        if n == "all":
            out += ALL
        elif n in GROUPS:
            out += GROUPS[n]
        elif n in ALL:
            out.append(n)
        elif n != "none":
            raise ValueError(f"unknown nemesis {n!r}: want one of {', '.join(list(GROUPS) + ALL)}, all or none")
    return list(dict.fromkeys(out))


def schedule(seed, faults, run_s, quiet_s=(1.0, 3.0), warmup_s=2.0, target=None):
    """Steps from `warmup_s` until 3 s before the end, each followed by a quiet gap."""
    rng = random.Random(seed)
    steps = []
    t = warmup_s
    if not faults:
        return steps
    i = 0
    while True:
        fault = faults[i % len(faults)] if i < len(faults) else rng.choice(faults)
        i += 1
        lo, hi = DURATION_S[fault]
        d = round(rng.uniform(lo, hi), 2)
        if t + d > run_s - 3.0:
            break
        step = {"at": round(t, 2), "fault": fault, "duration": d, "pick": round(rng.random(), 4)}
        if target:
            step["target"] = target
        steps.append(step)
        t += d + rng.uniform(*quiet_s) + EXTRA_GAP_S.get(fault, 0.0)
    return steps


class Nemesis(threading.Thread):
    """Runs a schedule against a cluster; heal() undoes whatever is still in force."""

    def __init__(self, cluster, steps, history, stop, log):
        super().__init__(name="nemesis", daemon=True)
        self.c = cluster
        self.steps = steps
        self.history = history
        self.stop = stop
        self.log = log
        self.t0 = time.monotonic()
        self.error = None
        self.count = {}
        self.skewed = set()
        self.skew_failures = 0
        self.warnings = []  # not failures of faunad's guarantees, but worth a look
        self.failures = []  # failures of faunad's guarantees seen by the nemesis itself
        self.eio = set()  # nodes currently started under fiu-run
        self.disk = {"injected": 0, "stops": 0, "aborts": 0, "noStop": 0, "recovered": 0, "notRecovered": 0}
        self.power = {"events": 0, "nodes": 0, "torn": 0, "tornWrites": 0, "droppedBytes": 0, "droppedFiles": 0,
                      "recovered": 0, "notRecovered": 0, "fsHung": 0}

    def note(self, fault, **fields):
        self.history.event("nemesis", fault=fault, **fields)
        self.log(f"  nemesis {time.monotonic() - self.t0:6.1f}s {fault} {json.dumps(fields) if fields else ''}")

    def sleep(self, s):
        return not self.stop.wait(max(0.0, s))

    def run(self):
        try:
            for step in self.steps:
                if not self.sleep(self.t0 + step["at"] - time.monotonic()):
                    return
                self.count[step["fault"]] = self.count.get(step["fault"], 0) + 1
                getattr(self, "do_" + step["fault"].replace("-", "_"))(step)
        except Exception:
            import traceback
            self.error = traceback.format_exc()
            self.log("nemesis failed:\n" + self.error)

    # --- choosing nodes --------------------------------------------------------------------

    def running(self):
        return [n for n in self.c.names if self.c.is_running(n)]

    def pick(self, candidates, step):
        candidates = sorted(candidates)
        if step.get("target") in candidates:
            return step["target"]
        return candidates[int(step["pick"] * len(candidates))] if candidates else None

    def leader(self):
        return self.c.leader()

    def follower(self, step):
        lead = self.leader()
        return self.pick([n for n in self.running() if n != lead], step)

    # --- faults ----------------------------------------------------------------------------

    def _kill(self, nodes, step):
        self.note(step["fault"], nodes=nodes, restartAfter=step["duration"])
        for n in nodes:
            self.c.kill(n)
        self.sleep(step["duration"])
        for n in nodes:
            self.c.start(n)
        self.note("restart", nodes=nodes)

    def do_kill_leader(self, step):
        lead = self.leader()
        if lead:
            self._kill([lead], step)

    def do_kill_follower(self, step):
        f = self.follower(step)
        if f:
            self._kill([f], step)

    def do_kill_all(self, step):
        self._kill(self.running(), step)

    def _pause(self, node, step):
        self.note(step["fault"], node=node, seconds=step["duration"])
        self.c.pause(node)
        self.sleep(step["duration"])
        self.c.resume(node)
        self.note("resume", node=node)

    def do_pause_leader(self, step):
        lead = step.get("target") or self.leader()
        if lead:
            self._pause(lead, step)

    def do_pause_follower(self, step):
        f = self.follower(step)
        if f:
            self._pause(f, step)

    def _partition(self, blocked, step, **fields):
        self.note(step["fault"], blocked=sorted(blocked), seconds=step["duration"], **fields)
        self.c.set_network(blocked=blocked)
        self.sleep(step["duration"])
        self.c.set_network()
        self.note("heal-network")

    def do_partition_half(self, step):
        names = sorted(self.c.names)
        rng = random.Random(step["pick"])
        minority = rng.sample(names, (len(names) - 1) // 2)
        if step.get("target") and step["target"] not in minority:
            minority[0] = step["target"]
        majority = [n for n in names if n not in minority]
        blocked = {(a, b) for a in minority for b in majority} | {(b, a) for a in minority for b in majority}
        self._partition(blocked, step, minority=sorted(minority))

    def do_partition_leader(self, step):
        lead = step.get("target") or self.leader() or self.pick(self.c.names, step)
        others = [n for n in self.c.names if n != lead]
        blocked = {(lead, o) for o in others} | {(o, lead) for o in others}
        self._partition(blocked, step, isolated=lead)

    def do_partition_asym(self, step):
        node = self.pick(self.c.names, step)
        blocked = {(node, o) for o in self.c.names if o != node}  # it hears all, nobody hears it
        self._partition(blocked, step, mute=node)

    def do_net(self, step):
        self.note("net", delay_ms=[0, 60], dup=0.1, reorder=True, seconds=step["duration"])
        self.c.set_network(delay_ms=(0, 60), dup=0.1, reorder=True)
        self.sleep(step["duration"])
        self.c.set_network()
        self.note("heal-network")

    def do_skew(self, step):
        if not os.path.exists(cl.FAKETIME_LIB):
            self.note("skew-skipped", reason=f"{cl.FAKETIME_LIB} missing (apt-get install libfaketime)")
            return
        node = self.pick(self.c.names, step)
        rng = random.Random(step["pick"])
        offset = rng.randint(-300, 300)
        rate = rng.choice([0.5, 0.75, 1.5, 2.0])
        spec = f"{offset:+d} x{rate}"
        self.note("skew", node=node, faketime=spec, seconds=step["duration"])
        self.c.stop(node)
        self.c.nodes[node].env_extra = {"LD_PRELOAD": cl.FAKETIME_LIB, "FAKETIME": spec}
        self.skewed.add(node)
        self.c.start(node)
        time.sleep(1.0)
        code = self.c.exit_code(node)
        if code is not None:
            # Under LD_PRELOAD=libfaketime the Swift runtime gets no command-line arguments;
            # faunad then reads them from FAUNAD_ARGS (set by Cluster.start). Any other exit
            # at start is reported here.
            self.c.nodes[node].proc.noted = True
            self.note("skew-failed", node=node, exit=code,
                      reason="faunad exited at start under libfaketime (see its log); restarted without")
            self.skew_failures += 1
            self.warnings.append(f"skew on {node}: faunad exited with status {code} at start under libfaketime")
        else:
            self.sleep(step["duration"])
        self.unskew(node)

    def unskew(self, node):
        self.c.stop(node)
        self.c.nodes[node].env_extra = {}
        self.skewed.discard(node)
        self.c.start(node)
        self.note("unskew", node=node)

    def do_transfer(self, step):
        target = self.follower(step)
        if not target:
            return
        code, out, err = self.c.fctl("leader", "transfer", target, "--timeout", "5", timeout_s=10)
        self.note("transfer", to=target, exit=code, said=(out or err).strip()[-200:])

    def do_member(self, step):
        node = self.follower(step)
        if not node:
            return
        code, out, err = self.c.fctl("member", "remove", node, "--timeout", "10", timeout_s=15)
        self.note("member-remove", node=node, exit=code, said=(out or err).strip()[-200:])
        if code != 0 and node in self.voters():
            return
        deadline = time.monotonic() + 5
        while self.c.is_running(node) and time.monotonic() < deadline:
            time.sleep(0.1)
        code = self.c.exit_code(node)
        self.note("member-removed-node-exit", node=node, exit=code)
        if code is None:
            # Nothing else is faulty during this step (steps run one at a time), so the node
            # hears of its removal: from the leader's last append, or else from the refusal of
            # its next hello by a member that has applied it (docs/RELIABILITY.md "Membership").
            self.failures.append({"check": "member", "message": f"removed member {node} was still running 5 s after "
                                  "its removal (it should stop by itself)"})
        self.c.stop(node)
        self.rejoin(node)

    def voters(self):
        code, out, _ = self.c.fctl("members", "--json", "--timeout", "5", timeout_s=10)
        if code != 0:
            return None
        try:
            return [m["id"] for m in json.loads(out) if not m["isLearner"]]
        except (json.JSONDecodeError, KeyError, TypeError):
            return None

    def members(self):
        code, out, _ = self.c.fctl("members", "--json", "--timeout", "5", timeout_s=10)
        if code != 0:
            return None
        try:
            return {m["id"]: m["isLearner"] for m in json.loads(out)}
        except (json.JSONDecodeError, KeyError, TypeError):
            return None

    def rejoin(self, node, budget_s=30.0):
        """Wipe `node`, start it empty with --join, add it as a learner and promote it."""
        self.c.stop(node)
        self.c.umount(node)
        self.c.wipe(node)
        self.c.start(node, join=True)
        k = cl.node_number(node)
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            code, out, err = self.c.fctl("member", "add-learner", node, "--peer", self.c.advertised_peer(node),
                                         "--client", f"127.0.0.1:{cl.client_port(k)}", "--timeout", "5", timeout_s=10)
            self.note("member-add-learner", node=node, exit=code, said=(out or err).strip()[-200:])
            m = self.members()
            if m is not None and node in m:
                break
            time.sleep(0.5)
        while time.monotonic() < deadline:
            code, out, err = self.c.fctl("member", "promote", node, "--timeout", "5", timeout_s=10)
            m = self.members()
            if m is not None and m.get(node) is False:
                self.note("member-promote", node=node, exit=code)
                return True
            time.sleep(0.5)
        self.note("member-rejoin-failed", node=node)
        return False

    # --- disk faults -------------------------------------------------------------------------

    def judge_disk_exit(self, node, fault):
        """Records what the exit of `node` under a disk fault means; True if it stopped (any way)."""
        code = self.c.exit_code(node)
        kind, detail = classify_disk_exit(code, self.c.log_since_start(node))
        proc = self.c.nodes[node].proc
        if kind != "crash" and proc is not None:
            proc.noted = True  # ours: not an unexpected exit (a crash stays for Cluster.note_exit)
        self.note("disk-exit", node=node, cause=fault, exit=code, how=kind, said=detail[-300:])
        if kind == "stop":
            self.disk["stops"] += 1
        elif kind == "abort":
            self.disk["aborts"] += 1
            self.warnings.append(f"{fault} on {node}: SIGABRT (a RocksDB assertion on an injected error?): {detail[-600:]}")
        elif kind == "crash":
            self.failures.append({"check": "crash", "message": f"{fault} on {node}: crashed by signal {-code}:\n{detail}"})
        elif kind == "unclear":
            self.failures.append({"check": "disk", "message": f"{fault} on {node}: exit {code} without faunad's "
                                  f"fail-stop message:\n{detail}"})
        return kind != "running"

    def wait_exit(self, node, window_s):
        deadline = time.monotonic() + window_s
        while self.c.is_running(node) and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.c.is_running(node)

    def not_stopped(self, node, fault):
        """The node ran `DISK_WINDOW_S` under a disk fault without stopping: a hang if SIGTERM does
        not stop it either; otherwise (it answers) a warning: no injected error reached it."""
        answers = self.c.status(node, timeout=2.0) is not None
        free = _free_bytes(self.c.nodes[node].data_dir) if self.c.nodes[node].mounted else None
        self.disk["noStop"] += 1
        p = self.c.nodes[node].proc
        self.c.signal(node, signal.SIGTERM)
        try:
            p.wait(10)
            p.noted = True
        except Exception:
            self.c.kill(node)
            self.failures.append({"check": "disk", "message": f"{fault} on {node}: still running {DISK_WINDOW_S:.0f} s "
                                  f"into the fault and not stopped by SIGTERM within 10 s (a hang; answers status: {answers})"})
            return
        self.note("disk-no-stop", node=node, cause=fault, answered=answers, freeBytes=free)
        if free is not None and free < DISK_GUARD_BYTES:
            self.failures.append({"check": "disk", "message": f"{fault} on {node}: ran {DISK_WINDOW_S:.0f} s with "
                                  f"{free} bytes free (< the {DISK_GUARD_BYTES}-byte reserve) without stopping"})
        else:
            self.warnings.append(f"{fault} on {node}: did not stop within {DISK_WINDOW_S:.0f} s (answered status: "
                                 f"{answers}" + (f"; {free} bytes free, above the reserve: the disk did not fill)"
                                                 if free is not None else "; no injected error reached it?)"))

    def caught_up(self, node, budget_s=20.0):
        """Waits until `node` answers and has applied what the leader had committed when it
        restarted. True on success (noted)."""
        deadline = time.monotonic() + budget_s
        target = None
        while time.monotonic() < deadline and not self.stop.is_set():
            if target is None:
                lead = self.c.leader()
                st = self.c.status(lead) if lead else None
                target = st["commitIndex"] if st else None
            mine = self.c.status(node)
            if target is not None and mine and mine["appliedIndex"] >= target and self.c.is_running(node):
                self.disk["recovered"] += 1
                self.note("disk-recovered", node=node, applied=mine["appliedIndex"])
                return True
            time.sleep(0.2)
        if self.stop.is_set():
            return False  # the run is over: convergence is checked after healing
        self.disk["notRecovered"] += 1
        self.note("disk-not-recovered", node=node, running=self.c.is_running(node))
        self.failures.append({"check": "disk", "message": f"{node} had not caught up {budget_s:.0f} s after its "
                              f"restart without the disk fault (running: {self.c.is_running(node)})"})
        return False

    def do_disk_eio(self, step):
        if not os.access(cl.FIU_RUN, os.X_OK):
            self.note("disk-eio-skipped", reason=f"{cl.FIU_RUN} missing (apt-get install fiu-utils)")
            return
        node = self.pick(self.running(), step)
        if not node:
            return
        rng = random.Random(step["pick"])
        how = rng.choice(["SIGTERM", "SIGKILL"])
        spec, point = eio_spec(rng)
        self.note("disk-eio", node=node, stop=how, fiu=spec, after=step["duration"])
        if how == "SIGKILL":
            self.c.kill(node)
        else:
            self.c.stop(node)
        self.sleep(step["duration"])
        self.c.nodes[node].wrapper = [cl.FIU_RUN, "-x", "-f", "", "-c", spec]
        self.eio.add(node)
        self.c.start(node)
        self.disk["injected"] += 1
        t = time.monotonic()
        self.wait_exit(node, DISK_WINDOW_S)
        self.c.nodes[node].wrapper = []
        self.eio.discard(node)
        if self.c.is_running(node):
            self.not_stopped(node, "disk-eio")
        else:
            self.judge_disk_exit(node, "disk-eio")
            self.note("disk-eio-stopped-after", node=node, seconds=round(time.monotonic() - t, 2))
        self.c.start(node)
        self.note("disk-eio-restart", node=node)
        self.caught_up(node)

    def do_disk_full(self, step):
        if os.geteuid() != 0:
            self.note("disk-full-skipped", reason="mounting a tmpfs needs root")
            return
        node = self.follower(step)
        if not node:
            return
        rng = random.Random(step["pick"])
        size, kind = tmpfs_size(rng)
        code, out, err = self.c.fctl("member", "remove", node, "--timeout", "10", timeout_s=15)
        self.note("member-remove", node=node, exit=code, said=(out or err).strip()[-200:])
        if code != 0 and node in (self.voters() or [node]):
            return
        self.wait_exit(node, 5.0)
        self.c.stop(node)
        self.c.wipe(node)
        self.c.mount_tmpfs(node, size)
        self.note("disk-full", node=node, tmpfsBytes=size, variant=kind)
        self.c.start(node, join=True)
        self.disk["injected"] += 1
        t = time.monotonic()
        deadline = t + DISK_WINDOW_S
        while time.monotonic() < deadline and self.c.is_running(node):  # add it (it may be gone already)
            code, out, err = self.c.fctl("member", "add-learner", node, "--peer", self.c.advertised_peer(node),
                                         "--client", f"127.0.0.1:{cl.client_port(cl.node_number(node))}",
                                         "--timeout", "5", timeout_s=10)
            self.note("member-add-learner", node=node, exit=code, said=(out or err).strip()[-200:])
            m = self.members()
            if m is not None and node in m:
                break
            time.sleep(0.5)
        self.wait_exit(node, max(0.0, deadline - time.monotonic()))
        if self.c.is_running(node):
            self.not_stopped(node, "disk-full")
        else:
            self.judge_disk_exit(node, "disk-full")
            self.note("disk-full-stopped-after", node=node, seconds=round(time.monotonic() - t, 2),
                      used=self.c.nodes[node].mounted and _used_bytes(self.c.nodes[node].data_dir))
        self.c.umount(node)
        if self.rejoin(node):
            self.caught_up(node)

    # --- power loss ---------------------------------------------------------------------------

    def _power_loss(self, nodes, step):
        """The machines of `nodes` lose power at once: each node is SIGKILLed, then its
        filesystem drops what it had not fsynced and unmounts; after `duration` they are
        mounted again and restarted, and each must come back and catch up."""
        rng = random.Random(step["pick"])
        tear = rng.random() < 0.5
        self.note(step["fault"], nodes=nodes, tear=tear, restartAfter=step["duration"])
        for n in nodes:  # all dead before any disk loses its cache: one instant for all
            self.c.kill(n)
        self.power["lastAt"] = self.history.now()  # history time of the latest power loss
        self.power["events"] += 1
        self.power["torn"] += tear
        for n in nodes:
            lost = self.c.power_loss(n, tear=tear, seed=rng.getrandbits(32))
            if lost.get("hung"):  # killed instead: its cache died with it (a power loss without a tear)
                self.power["fsHung"] += 1
                self.note("power-loss-fs-hung", node=n, diagnosis=lost.get("diagnosis"))
                self.warnings.append(f"the power-loss filesystem of {n} did not answer the power loss and was "
                                     f"killed (its cache with it); see {self.c.nodes[n].fs.log_path}: "
                                     f"{lost.get('diagnosis')}")
                self.power["nodes"] += 1
                continue
            before = lost.get("before") or {}
            self.power["nodes"] += 1
            self.power["droppedBytes"] += lost.get("droppedBytes", 0)
            self.power["droppedFiles"] += lost.get("droppedFiles", 0)
            self.power["tornWrites"] += sum(1 for t in lost.get("torn", []) if t["kept"])
            self.note("power-lost", node=n, droppedBytes=lost.get("droppedBytes", 0),
                      droppedFiles=lost.get("droppedFiles", 0), torn=lost.get("torn", [])[:8],
                      fsyncs=before.get("fsyncs"), writebacks=before.get("writebacks"))
        self.sleep(step["duration"])
        for n in nodes:
            self.c.start(n)  # mounts its filesystem again first
        self.note("restart", nodes=nodes)
        for n in nodes:
            self.recovered_from_power_loss(n)

    def recovered_from_power_loss(self, node, budget_s=POWER_LOSS_RECOVERY_S):
        """A node back from a power loss must run and apply what the leader has committed.
        One that exits has lost or damaged something it had made durable: a failure, with its
        log's tail. One still running but behind after `budget_s`: a warning (convergence after
        the run checks it again)."""
        deadline = time.monotonic() + budget_s
        target = None
        while time.monotonic() < deadline:
            if not self.c.is_running(node):
                code = self.c.exit_code(node)
                tail = "\n".join(self.c.log_since_start(node).splitlines()[-8:])
                self.c.nodes[node].proc.noted = True  # reported here, not again as a crash
                self.power["notRecovered"] += 1
                self.note("power-loss-node-exited", node=node, exit=code, said=tail[-400:])
                self.failures.append({"check": "power-loss", "message": f"{node} exited with status {code} after "
                                      f"restarting from a power loss:\n{tail}"})
                return False
            if target is None:
                lead = self.c.leader()
                st = self.c.status(lead) if lead else None
                target = st["commitIndex"] if st else None
            mine = self.c.status(node)
            if target is not None and mine and mine["appliedIndex"] >= target:
                self.power["recovered"] += 1
                self.note("power-loss-recovered", node=node, applied=mine["appliedIndex"])
                return True
            if self.stop.is_set():
                return False  # the run is over: convergence is checked after healing
            time.sleep(0.2)
        self.power["notRecovered"] += 1
        self.note("power-loss-not-recovered", node=node, target=target)
        self.warnings.append(f"{node} had not caught up {budget_s:.0f} s after restarting from a power loss "
                             f"(leader's commit index {target})")
        return False

    def do_power_loss_leader(self, step):
        lead = self.leader()
        if lead:
            self._power_loss([lead], step)

    def do_power_loss_follower(self, step):
        f = self.follower(step)
        if f:
            self._power_loss([f], step)

    def do_power_loss_all(self, step):
        self._power_loss(self.running(), step)

    # --- healing ---------------------------------------------------------------------------

    def heal(self):
        """Everything back: network, paused and skewed nodes, dead nodes, membership."""
        if self.c.proxy:
            self.c.set_network()
        for n in self.c.names:
            if self.c.nodes[n].paused:
                self.c.resume(n)
        for n in list(self.skewed):
            self.unskew(n)
        for n in list(self.eio):  # only if a disk-eio step was cut off
            self.c.stop(n)
            self.c.nodes[n].wrapper = []
            self.eio.discard(n)
        rejoin = []
        for n in self.c.names:  # likewise a disk-full step
            if self.c.nodes[n].mounted:
                self.c.stop(n)
                self.c.umount(n)
                rejoin.append(n)
        for n in self.c.names:
            if not self.c.is_running(n) and n not in rejoin:
                code = self.c.exit_code(n)
                if code not in (None, -9):
                    self.note("node-exited", node=n, exit=code)
                self.c.start(n)
        for n in rejoin:
            self.rejoin(n)
        self.note("healed")
        if {"member", "disk-full"} & {s["fault"] for s in self.steps}:
            m = self.members()
            missing = [n for n in self.c.names if m is not None and m.get(n) is not False]
            for n in missing:
                self.note("member-heal", node=n, state=m.get(n))
                self.rejoin(n)


def _used_bytes(path):
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
