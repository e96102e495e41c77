"""One chaos run: start a cluster, drive load, inject faults, heal, converge, check."""

import json
import os
import random
import re
import shutil
import threading
import time

from . import checker
from . import cluster as cl
from . import tls as tlslib
from . import nemesis as nm
from . import leases as ls
from . import watcher as wt
from . import workload as wl
from . import wire
from .cluster import client_port, node_number


RUN_DIR_NAME = re.compile(r"^\d{8}-\d{6}-seed\d+$")


def prune_runs(out_dir, keep, spare=()):
    """Deletes the oldest run directories in `out_dir` beyond the newest `keep`, so the logs
    of many runs do not fill /tmp. Run directories are named `YYYYMMDD-HHMMSS-seedN` (UTC
    time first), so their names sort by age; nothing else in `out_dir` is touched, nor any
    path in `spare` (this invocation's failed runs). Returns the deleted paths."""
    if keep < 1 or not os.path.isdir(out_dir):
        return []
    runs = sorted(n for n in os.listdir(out_dir)
                  if RUN_DIR_NAME.match(n) and os.path.isdir(os.path.join(out_dir, n)))
    spared = {os.path.realpath(p) for p in spare}
    deleted = []
    for name in runs[:max(0, len(runs) - keep)]:
        path = os.path.join(out_dir, name)
        if os.path.realpath(path) in spared:
            continue
        shutil.rmtree(path, ignore_errors=True)
        deleted.append(path)
    return deleted


def audit_hook(cluster, log):
    """`fctl audit --journal` on the converged cluster: state digests and tree roots agree at a
    common revision and every node's journal re-hashes to its stored tree. A failure dict or None."""
    code, out, err = cluster.fctl("audit", "--journal", "--timeout", "60", timeout_s=90)
    if code == 0:
        return None
    return {"check": "audit", "message": f"fctl audit --journal exit {code}:\n{out.strip()}\n{err.strip()}"}


def read_journal(cluster, log):
    """{(client ID, sequence): revision} of every committed entry with a session, from the first
    node that answers; None (and a log line) if none can be read."""
    for n in cluster.names:
        st = cluster.status(n)
        if not st:
            continue
        try:
            conn = wire.Connection("127.0.0.1", client_port(node_number(n)), connect_timeout=2.0)
        except OSError:
            continue
        try:
            return wire.committed_sessions(conn, st["appliedIndex"])
        except (OSError, wire.ProtocolError, wire.ServerError) as e:
            log(f"reading the journal from {n} failed: {e}")
        finally:
            conn.close()
    return None


class RunOptions:
    def __init__(self, **kw):
        self.nodes = 3
        self.time_s = 30.0
        self.seed = 1
        self.faults = []
        self.workloads = ["register", "set", "range"]
        self.bin_dir = None
        self.out_dir = "/tmp/fauna-chaos"
        self.use_proxy = True
        self.broken = {}
        self.target = None
        self.register_workers = 4
        self.election_ticks = 50
        self.snapshot_entries = 400
        self.tls = False  # a secured cluster: TLS on both ports, the harness's connections too
        self.log = print
        self.__dict__.update(kw)


def converge(c, log, timeout_s=40.0):
    """Waits until every node reports the same applied index and hashkv says the state digests
    and tree roots agree. Returns (ok, last hashkv JSON or None, reason)."""
    deadline = time.monotonic() + timeout_s
    last = None
    reason = "no answer"
    while time.monotonic() < deadline:
        st = c.statuses()
        applied = {n: (s or {}).get("appliedIndex") for n, s in st.items()}
        if len(applied) == len(c.names) and None not in applied.values() and len(set(applied.values())) == 1:
            code, hk, err = c.hashkv(timeout_s=10)
            last = hk
            if hk and hk.get("consistent") and len(hk.get("nodes", [])) == len(c.names) and \
                    len({n["appliedIndex"] for n in hk["nodes"]}) == 1 and \
                    len({n["digest"] for n in hk["nodes"]}) == 1 and len({n["treeRoot"] for n in hk["nodes"]}) == 1:
                return True, hk, "converged"
            reason = f"hashkv exit {code}: {json.dumps(hk) if hk else err.strip()[-300:]}"
        else:
            reason = f"applied indexes {applied}"
        time.sleep(0.5)
    return False, last, reason


def run_once(o: RunOptions, index=0):
    """Returns a result dict (also written to <run dir>/result.json)."""
    log = o.log
    names = [f"n{i}" for i in range(1, o.nodes + 1)]
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_dir = os.path.join(o.out_dir, f"{stamp}-seed{o.seed}")
    os.makedirs(run_dir, exist_ok=True)
    steps = nm.schedule(o.seed, o.faults, o.time_s, target=o.target)
    needs_proxy = o.use_proxy or any(f in nm.NETWORK for f in o.faults)
    powerloss = any(f in nm.POWER_LOSS for f in o.faults)
    c = cl.Cluster(o.bin_dir, run_dir, names, use_proxy=needs_proxy, election_ticks=o.election_ticks,
                   snapshot_entries=o.snapshot_entries, seed=o.seed, log=log, broken=o.broken, powerloss=powerloss,
                   tls=o.tls)
    result = {"seed": o.seed, "nodes": o.nodes, "faults": o.faults, "workloads": o.workloads, "schedule": steps,
              "runDir": run_dir, "history": os.path.join(run_dir, "history.jsonl"), "failures": []}
    header = {"seed": o.seed, "nodes": names, "faults": o.faults, "workloads": o.workloads, "schedule": steps,
              "timeSeconds": o.time_s, "binDir": o.bin_dir, "broken": o.broken,
              "electionTimeoutMs": c.tick_ms * c.election_ticks, "proxy": needs_proxy, "powerLossFS": powerloss, "tls": o.tls}
    history = None
    journal = None
    workers = []
    watchers = []
    leasers = []
    stop_workers = threading.Event()
    stop_nemesis = threading.Event()
    nemesis = None
    started = time.monotonic()
    try:
        c.check_ports()
        c.write_configs()
        # Every connection of this run to a client port: TLS with the run's CA and client certificate.
        wire.use_tls(tlslib.client_context(c.tls_files) if o.tls else None)
        c.start_proxy()
        for n in names:
            c.start(n)
        leader = c.wait_for_leader(30)
        if not leader:
            result["failures"].append({"check": "start", "message": "no leader 30 s after starting the cluster"
                                       + (f" (last status check: {c.last_status_error})" if c.last_status_error else "")})
            return result
        if o.tls:  # secured: users on as well (TLS and encryption at rest are in the configs)
            problem = c.enable_users()
            if problem:
                result["failures"].append({"check": "start", "message": f"could not turn users on: {problem}"})
                return result
        log(f"run {index}: seed {o.seed}, {o.nodes} nodes, faults {','.join(o.faults) or 'none'}, "
            f"workloads {','.join(o.workloads)}, {o.time_s:.0f} s; leader {leader} after {time.monotonic() - started:.1f} s; {run_dir}")
        history = wl.History(result["history"], header)
        rng = random.Random(o.seed)
        keys = wl.KeyPool(random.Random(o.seed + 1))
        proc = 0
        for kind in o.workloads:
            if kind == "watch":
                watchers.append(wt.Watcher(proc, names, history, rng.getrandbits(63)))
                proc += 1
                continue
            if kind == "lease":
                leasers.append(ls.LeaseWorker(proc, names, history, stop_workers, rng.getrandbits(63),
                                              c.tick_ms * c.election_ticks / 1000.0))
                proc += 1
                continue
            count = o.register_workers if kind == "register" else 1
            for _ in range(count):
                # Every other worker gives up on an operation after 0.6 s instead of 4 s, so that
                # faults leave operations with unknown outcomes for the journal to resolve.
                workers.append(wl.Worker(proc, kind, names, history, stop_workers, rng.getrandbits(63), keys=keys,
                                         op_timeout_s=4.0 if proc % 2 == 0 else 0.6))
                proc += 1
        for w in workers + watchers + leasers:
            w.start()
        nemesis = nm.Nemesis(c, steps, history, stop_nemesis, log)
        nemesis.start()
        time.sleep(o.time_s)
        stop_nemesis.set()
        nemesis.join(60)
        if nemesis.is_alive():
            result["failures"].append({"check": "harness", "message": "nemesis did not finish within 60 s"})
        healed_at = history.now()
        nemesis.heal()
        # Liveness: with everything healed, the cluster must serve again.
        if not c.wait_for_leader(20):
            result["failures"].append({"check": "liveness", "message": "no leader 20 s after healing"})
        time.sleep(4.0)
        stop_workers.set()
        for w in workers:
            w.join(15)
            if w.error:
                result["failures"].append({"check": "harness", "message": f"worker {w.proc} failed:\n{w.error}"})
        after = [op for op in history.ops if op["outcome"] == "ok" and op["invoke"] >= healed_at]
        if not after:
            result["failures"].append({"check": "liveness", "message": "no operation succeeded in the 4 s after healing"})
        fin = None
        if any(k in o.workloads for k in ("set", "range", "watch")):
            fin = wl.final_read(names, history, o.seed)
            if fin["outcome"] != "ok":
                result["failures"].append({"check": "liveness", "message": "the final read of the set failed"})
        for w in watchers:
            # Drain to the final read's revision: every append acknowledged before it is there.
            w.stop(fin.get("readRevision") if fin and fin["outcome"] == "ok" else 0)
        for w in watchers:
            w.join(45)
            if w.is_alive() or w.error:
                result["failures"].append({"check": "harness", "message": f"watcher {w.proc}: " + (w.error or "did not finish within 45 s")})
        for w in leasers:
            # It waits for its dropped leases to expire, then reads (leases.LeaseWorker.finish).
            w.join(60)
            if w.is_alive() or w.error:
                result["failures"].append({"check": "harness", "message": f"lease worker {w.proc}: " + (w.error or "did not finish within 60 s")})
        ok, hk, why = converge(c, log)
        result["converged"] = ok
        result["hashkv"] = hk
        if not ok:
            result["failures"].append({"check": "convergence", "message": f"nodes did not converge within 40 s: {why}"})
        audit = audit_hook(c, log)
        if audit:
            result["failures"].append(audit)
        if ok:
            journal = read_journal(c, log)
        result["proxy"] = c.proxy_stats() if c.proxy else {}
        result["nemesisCounts"] = nemesis.count
        result["warnings"] = nemesis.warnings
        if any(f.startswith("disk-") for f in o.faults):
            result["disk"] = nemesis.disk
        if powerloss:
            result["powerLoss"] = nemesis.power
        result["failures"] += nemesis.failures
        if nemesis.error:
            result["failures"].append({"check": "harness", "message": "nemesis failed:\n" + nemesis.error})
    finally:
        stop_nemesis.set()
        stop_workers.set()
        for w in watchers:
            if not w.done.is_set():
                w.stop(0)
        c.shutdown()
        wire.use_tls(None)
        for n in names:
            c.note_exit(n)
        if c.crashes:
            result["failures"].append({"check": "crash", "message": "nodes exited unexpectedly: " +
                                       ", ".join(f"{n} status {code}" for n, code in c.crashes)})
        if history:
            history.close()
    result["wallSeconds"] = round(time.monotonic() - started, 1)
    check_into(result, history.ops, log, journal)
    if powerloss and result.get("powerLoss", {}).get("lastAt") is not None:
        result["powerLoss"].update(acked_before_power_loss(history.ops, result["powerLoss"]["lastAt"]))
    with open(os.path.join(run_dir, "result.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    return result


def acked_before_power_loss(ops, t):
    """How many appends were acknowledged before history time `t` (the last power loss), and
    how many of those the final read lacks (the set check fails the run for any; this counts
    the ones a power loss could have taken)."""
    acked = {o["key"] for o in ops if o.get("f") == "append" and o["outcome"] == "ok" and o["complete"] < t}
    finals = [o for o in ops if o.get("f") == "final-read" and o["outcome"] == "ok"]
    present = set(finals[-1]["result"]) if finals else set()
    return {"appendsAckedBefore": len(acked), "appendsLost": len(acked - present) if finals else None}


def check_into(result, ops, log, journal=None):
    """Resolves what it can, runs the checkers, adds their summary and failures to result."""
    resolved = checker.apply_resolutions(ops, checker.resolve_unknowns(ops, journal))
    t = time.monotonic()
    summary, failures = checker.check_history(ops, result.get("faults") or ())
    summary["resolved"] = resolved
    summary["checkSeconds"] = round(time.monotonic() - t, 2)
    counts = {}
    for op in ops:
        counts[op["outcome"]] = counts.get(op["outcome"], 0) + 1
    summary["outcomes"] = counts
    result["summary"] = summary
    result["failures"] += failures


def load_history(path):
    header, ops, events = None, [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            d = json.loads(line)
            t = d.get("type")
            if t == "header":
                header = d
            elif t == "op":
                ops.append(d)
            else:
                events.append(d)
    return header, ops, events
