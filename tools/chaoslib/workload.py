"""Client workers that drive load and record a history (one JSON object per operation).

History lines (JSON lines, docs/CHAOS.md "History format"): a header, then one line per
operation written when it completes:

    {"type": "op", "id": 17, "proc": 3, "f": "cas", "key": "r/0/5", "value": ["3-10", "3-11"],
     "invoke": 1200345, "complete": 1204511, "outcome": "ok", "result": {"succeeded": true},
     "session": [client ID, sequence], "revision": 88, "node": "n2", "notes": [...]}

`invoke`/`complete` are nanoseconds since the run started (monotonic); `complete` is null
for an unknown outcome (it may take effect at any time after `invoke`, or never).
Workloads:
- register: per-key registers; read, write of a unique value, compare-and-swap (a txn
  `if value(k) = e then put(k, n) else get(k)`). Keys retire after `ops_per_key` operations
  so that unknown outcomes do not pile up on one key (the checker's search is per key).
- set: appends (a put of a unique key under a prefix); a final read of the whole prefix.
- range: appends plus range reads of the prefix during the run (each must hold every append
  acknowledged before it began, and every element an earlier completed range read saw).
"""

import json
import random
import threading
import time

from . import wire
from .client import Client

SET_PREFIX = "s/"


class History:
    """Thread-safe JSON-lines writer; keeps the operations in memory for the checker too."""

    def __init__(self, path, header):
        self.path = path
        self.lock = threading.Lock()
        self.next_id = 0
        self.t0 = time.monotonic_ns()
        self.f = open(path, "w")
        self.ops = []
        self.write_line(dict(header, type="header"))

    def now(self):
        return time.monotonic_ns() - self.t0

    def write_line(self, obj):
        with self.lock:
            self.f.write(json.dumps(obj, separators=(",", ":")) + "\n")
            self.f.flush()

    def record(self, op):
        with self.lock:
            op["id"] = self.next_id
            self.next_id += 1
            op["type"] = "op"
            self.ops.append(op)
            self.f.write(json.dumps(op, separators=(",", ":")) + "\n")
            self.f.flush()

    def event(self, kind, **fields):
        self.write_line(dict(fields, type=kind, time=self.now()))

    def close(self):
        with self.lock:
            self.f.close()


class KeyPool:
    """Active register keys; a key retires after ops_per_key operations, replaced by a new one."""

    def __init__(self, rng, active=6, ops_per_key=120):
        self.rng = rng
        self.lock = threading.Lock()
        self.ops_per_key = ops_per_key
        self.generation = 0
        self.active = {}
        for _ in range(active):
            self._add()

    def _add(self):
        k = f"r/{self.generation}"
        self.generation += 1
        self.active[k] = 0

    def pick(self):
        with self.lock:
            k = self.rng.choice(sorted(self.active))
            self.active[k] += 1
            if self.active[k] >= self.ops_per_key:
                del self.active[k]
                self._add()
            return k


def _s(b):
    return None if b is None else b.decode("utf-8", "replace")


class Worker(threading.Thread):
    def __init__(self, proc, kind, names, history, stop, seed, keys=None, op_timeout_s=4.0,
                 rate_limit_s=0.0):
        super().__init__(name=f"worker-{proc}", daemon=True)
        self.proc = proc
        self.kind = kind
        self.rng = random.Random(seed)
        self.client = Client(names, random.Random(seed ^ 0x5EED))
        self.history = history
        self.stop = stop
        self.keys = keys
        self.op_timeout_s = op_timeout_s
        self.rate_limit_s = rate_limit_s
        self.counter = 0
        self.last_seen = {}  # register key -> a value this worker saw there (cas operand)
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                if self.kind == "register":
                    self.register_op()
                elif self.kind == "set":
                    self.append_op()
                elif self.kind == "range":
                    if self.rng.random() < 0.25:
                        self.range_op()
                    else:
                        self.append_op()
                if self.rate_limit_s:
                    time.sleep(self.rate_limit_s)
        except Exception as e:  # recorded; the harness reports it as a harness failure
            import traceback
            self.error = traceback.format_exc()
        finally:
            self.client.close()

    def unique(self):
        self.counter += 1
        return f"{self.proc}-{self.counter}"

    def _write(self, op, command):
        op["invoke"] = self.history.now()
        seq_before = self.client.sequence
        outcome, res, notes = self.client.write(command, self.op_timeout_s)
        op["session"] = [self.client.client_id, seq_before + 1]
        op["complete"] = None if outcome == "unknown" else self.history.now()
        op["outcome"] = outcome
        if notes:
            op["notes"] = notes[-6:]
        if res:
            op["revision"] = res["revision"]
            op["node"] = res.get("node")
            if res.get("isReplay"):
                op["replay"] = True
        return outcome, res

    def register_op(self):
        key = self.keys.pick()
        kb = key.encode()
        r = self.rng.random()
        op = {"proc": self.proc, "key": key}
        if r < 0.5:
            op["f"] = "read"
            op["invoke"] = self.history.now()
            outcome, res, notes = self.client.read(wire.single(kb), self.op_timeout_s)
            op["complete"] = self.history.now()
            op["outcome"] = outcome
            if notes:
                op["notes"] = notes[-6:]
            if res is not None:
                recs = res["records"]
                op["result"] = _s(recs[0]["value"]) if recs else None
                op["node"] = res["node"]
                op["readRevision"] = res["revision"]
                if op["result"] is not None:
                    self.last_seen[key] = op["result"]
        elif r < 0.75:
            v = self.unique()
            op["f"] = "write"
            op["value"] = v
            outcome, _ = self._write(op, wire.put_cmd(kb, v.encode()))
            if outcome == "ok":
                self.last_seen[key] = v
        else:
            expected = self.last_seen.get(key) or self.unique()  # a never-written value: must fail
            new = self.unique()
            op["f"] = "cas"
            op["value"] = [expected, new]
            cmd = wire.txn_cmd([(kb, expected.encode())], [wire.op_put(kb, new.encode())], [wire.op_get(kb)])
            outcome, res = self._write(op, cmd)
            if outcome == "ok":
                result = {"succeeded": res["succeeded"]}
                if not res["succeeded"] and not res.get("isReplay") and res.get("results"):
                    recs = res["results"][0].get("records", [])
                    result["current"] = _s(recs[0]["value"]) if recs else None
                    if result["current"] is not None:
                        self.last_seen[key] = result["current"]
                elif res["succeeded"]:
                    self.last_seen[key] = new
                op["result"] = result
        self.history.record(op)

    def append_op(self):
        element = SET_PREFIX + self.unique()
        op = {"proc": self.proc, "f": "append", "key": element, "value": "1"}
        self._write(op, wire.put_cmd(element.encode(), b"1"))
        self.history.record(op)

    def range_op(self):
        op = {"proc": self.proc, "f": "range", "key": SET_PREFIX}
        read_set(self.client, op, self.history, self.op_timeout_s)
        self.history.record(op)


def read_set(client, op, history, timeout_s, prefix=SET_PREFIX):
    """One linearizable read of `prefix` (the set's by default) into `op` (times, outcome,
    sorted keys); the read's answer, or None."""
    op["invoke"] = history.now()
    outcome, res, notes = client.read(wire.prefix_range(prefix.encode()), timeout_s)
    op["complete"] = history.now()
    op["outcome"] = outcome
    if notes:
        op["notes"] = notes[-6:]
    if res is not None:
        op["result"] = sorted(_s(r["key"]) for r in res["records"])
        op["node"] = res["node"]
        op["readRevision"] = res["revision"]
    return res


def final_read(names, history, seed, timeout_s=20.0):
    """After the faults healed: one linearizable read of the whole set prefix."""
    c = Client(names, random.Random(seed))
    try:
        op = {"proc": -1, "f": "final-read", "key": SET_PREFIX}
        res = read_set(c, op, history, timeout_s)
        if res is not None and res["hasMore"]:
            op["notes"] = op.get("notes", []) + ["hasMore"]
        history.record(op)
        return op
    finally:
        c.close()
