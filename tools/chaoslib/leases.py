"""The lease workload (docs/CHAOS.md "Workloads"): one process that keeps a lease alive and
lets others expire, through the same faults as the other workloads.

- A *kept* lease (TTL `KEPT_TTL_S`) is renewed every `RENEW_EVERY_S` at the leader; keys
  `l/<proc>-<n>` are put attached to it. When the cluster says it is gone (a keep-alive answers
  `leaseNotFound`, or a put with it is refused as `leaseNotFound`), a new kept lease is granted.
- Now and then a *dropped* lease (TTL `DROPPED_TTL_S`) is granted, one or two keys are attached
  to it, and it is never renewed.
- Linearizable reads of `l/` during the run, and one final read after waiting long enough for
  every dropped lease to expire; after it, one more keep-alive of the kept lease.

History ops: `lease-grant` (value TTL, role kept/dropped, result the lease ID), `lease-put`
(key, lease, role; result `leaseNotFound` when refused for that), `lease-keepalive` (lease;
result `renewed` or `gone`), `lease-read` and `lease-final-read` (result the sorted keys).
`checker.check_leases` checks them.
"""

import time

from . import wire
from .workload import Worker, read_set

LEASE_PREFIX = "l/"
KEPT_TTL_S = 4
DROPPED_TTL_S = 2
RENEW_EVERY_S = 0.4
# After the last dropped lease, how long beyond TTL + one election timeout the final read
# waits: the leader's 100 ms check, a revoke proposed again after 3 s if it did not apply.
REVOKE_SLACK_S = 3.5


class LeaseWorker(Worker):
    def __init__(self, proc, names, history, stop, seed, election_timeout_s, op_timeout_s=1.5):
        super().__init__(proc, "lease", names, history, stop, seed, op_timeout_s=op_timeout_s)
        self.name = f"leases-{proc}"
        self.election_timeout_s = election_timeout_s
        self.kept = None
        self.next_renewal = 0.0

    def run(self):
        try:
            while not self.stop.is_set():
                self.step()
                time.sleep(0.02)
            self.finish()
        except Exception:  # recorded; the harness reports it as a harness failure
            import traceback
            self.error = traceback.format_exc()
        finally:
            self.client.close()

    def step(self):
        if self.kept is None:
            self.kept = self.grant(KEPT_TTL_S, "kept")
            self.next_renewal = time.monotonic() + RENEW_EVERY_S
        elif time.monotonic() >= self.next_renewal:
            self.renew()
        else:
            r = self.rng.random()
            if r < 0.55:
                self.put(self.kept, "kept")
            elif r < 0.65:
                self.read("lease-read")
            elif r < 0.75:
                dropped = self.grant(DROPPED_TTL_S, "dropped")
                if dropped is not None:
                    for _ in range(self.rng.randint(1, 2)):
                        self.put(dropped, "dropped")

    def renew(self):
        if self.kept is None:
            return
        op = {"proc": self.proc, "f": "lease-keepalive", "lease": self.kept, "invoke": self.history.now()}
        outcome, _, notes = self.client.keep_alive(self.kept, self.op_timeout_s)
        op["complete"] = self.history.now()
        op["outcome"] = "fail" if outcome == "fail" else "ok"
        if outcome != "fail":
            op["result"] = "renewed" if outcome == "ok" else "gone"
        if notes:
            op["notes"] = notes[-6:]
        self.history.record(op)
        if outcome == "gone":
            self.kept = None
        self.next_renewal = time.monotonic() + RENEW_EVERY_S

    def grant(self, ttl, role):
        op = {"proc": self.proc, "f": "lease-grant", "key": LEASE_PREFIX, "value": ttl, "role": role}
        outcome, res = self._write(op, wire.lease_grant_cmd(ttl))
        lease = None
        if outcome == "ok" and res.get("results"):
            lease = res["results"][0]["id"]
            op["result"] = lease
        self.history.record(op)
        return lease

    def put(self, lease, role):
        key = LEASE_PREFIX + self.unique()
        op = {"proc": self.proc, "f": "lease-put", "key": key, "value": "1", "lease": lease, "role": role}
        outcome, res = self._write(op, wire.put_cmd(key.encode(), b"1", lease=lease))
        if outcome == "fail" and res and res.get("invalidCode") == wire.INVALID_LEASE_NOT_FOUND:
            op["result"] = "leaseNotFound"
            if lease == self.kept:
                self.kept = None
        self.history.record(op)

    def read(self, f):
        op = {"proc": self.proc, "f": f, "key": LEASE_PREFIX}
        res = read_set(self.client, op, self.history, 10.0 if f == "lease-final-read" else self.op_timeout_s,
                       prefix=LEASE_PREFIX)
        if res is not None and res["hasMore"]:
            op["outcome"] = "fail"
            op["notes"] = op.get("notes", []) + ["hasMore"]
        self.history.record(op)
        return op

    def finish(self):
        """Keeps the kept lease alive until every dropped lease has had time to expire, reads
        `l/`, then renews the kept lease once more: if that renewal succeeds, the lease was
        alive during the read."""
        until = time.monotonic() + DROPPED_TTL_S + self.election_timeout_s + REVOKE_SLACK_S
        while time.monotonic() < until:
            if self.kept is not None and time.monotonic() >= self.next_renewal:
                self.renew()
            time.sleep(0.05)
        for _ in range(3):
            if self.read("lease-final-read")["outcome"] == "ok":
                break
        self.renew()
