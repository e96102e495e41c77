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
"""

import json
import os
import random
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
}
ALL = [f for g in GROUPS.values() for f in g]
NETWORK = {"partition-half", "partition-leader", "partition-asym", "net"}

DURATION_S = {  # (min, max) of a fault's duration
    "kill-leader": (0.5, 3.0), "kill-follower": (0.5, 4.0), "kill-all": (0.5, 2.0),
    "pause-leader": (1.0, 3.0), "pause-follower": (1.0, 3.0),
    "partition-half": (2.0, 5.0), "partition-leader": (2.0, 5.0), "partition-asym": (2.0, 5.0),
    "net": (3.0, 6.0), "skew": (4.0, 8.0), "transfer": (0.0, 0.0), "member": (0.0, 0.0),
}


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
        t += d + rng.uniform(*quiet_s) + (6.0 if fault == "member" else 0.0)
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
            self.warnings.append(f"removed member {node} was still running 5 s after its removal (it should stop by itself)")
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
        for n in self.c.names:
            if not self.c.is_running(n):
                code = self.c.exit_code(n)
                if code not in (None, -9):
                    self.note("node-exited", node=n, exit=code)
                self.c.start(n)
        self.note("healed")
        if "member" in {s["fault"] for s in self.steps}:
            m = self.members()
            missing = [n for n in self.c.names if m is not None and m.get(n) is not False]
            for n in missing:
                self.note("member-heal", node=n, state=m.get(n))
                self.rejoin(n)
