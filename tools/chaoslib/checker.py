"""Checkers for chaos histories: linearizability of registers, and the set/range workloads.

Linearizability (per key; registers are independent, so a history is linearizable iff each
key's sub-history is): a depth-first search for a linearization in the manner of Wing & Gong
with Lowe's memoization. Operations sit in a doubly linked list of call and return events in
real-time order. The search walks the list: at a call it tries to apply that operation to the
model state now; if the model accepts and (set of operations linearized, state) was not seen
before, the operation is linearized and taken out of the list. At a return event of an
operation not yet linearized it backtracks: that operation had to take effect before its
return and nothing left of the search can place it. The history is linearizable once no
return event is left in the list.

Outcomes: `ok` operations have both events; `fail` operations are dropped (they had no
effect); `unknown` writes and compare-and-swaps have a call event and no return event, so they
may take effect at any point after their call, or never. A resolver may later mark an unknown
write `resolved: {"committed": true, "revision": R}` (it then gets a return event at the end
of time: it must take effect) or `{"committed": false}` (dropped): see resolve_unknowns().
"""

import bisect
from collections import defaultdict

INF = float("inf")


# --- the register model ----------------------------------------------------------------------

def register_step(state, op):
    """(accepted, new state) for op applied to register value `state` (None = no key)."""
    f = op["f"]
    if f == "read":
        return (state == op["result"]), state
    if f == "write":
        return True, op["value"]
    if f == "cas":
        expected, new = op["value"]
        res = op.get("result")
        if res is None and (op.get("resolved") or {}).get("committed"):
            # Unknown, but the journal shows it committed: it was applied, and took whichever
            # branch the value at that point chose. A failed comparison has no effect, but the
            # operation must still be placed (its forced return at INF): accept it then too.
            return True, (new if state == expected else state)
        if res is None or res.get("succeeded"):  # unknown: only the effective case matters
            return (state == expected), new
        if state == expected:
            return False, state
        if "current" in res and res["current"] != state:
            return False, state
        return True, state
    raise ValueError(f"register model: unknown operation {f!r}")


def effective(op):
    """Whether op goes into the register search, and its return time (INF: none)."""
    outcome = op["outcome"]
    resolved = op.get("resolved")
    if outcome == "ok":
        return True, op["complete"]
    if outcome == "unknown" and op["f"] in ("write", "cas"):
        if resolved is not None:
            return (True, INF) if resolved.get("committed") else (False, None)
        return True, None
    return False, None


def check_linearizable(ops, step=register_step, init=None, max_states=2_000_000):
    """Searches ops (one key) for a linearization. Returns a dict:
    {"ok": bool, "linearized": n, "op": the operation the deepest partial linearization could
     not place (on failure), "state": the model state there, "exhausted": search cut off}."""
    items = []
    for op in ops:
        use, ret = effective(op)
        if use:
            items.append((op, ret))
    n = len(items)
    # Events: (time, order, kind, index); calls before returns at equal times (permissive);
    # a forced return (resolved committed) at INF sorts last.
    events = []
    for i, (op, ret) in enumerate(items):
        events.append((op["invoke"], 0, i))
        if ret is not None:
            events.append((ret, 1, i))
    events.sort(key=lambda e: (e[0], e[1]))
    m = len(events)
    # Linked list over event slots 1..m; slot 0 is the head sentinel, m+1 the tail.
    nxt = list(range(1, m + 2)) + [None]
    prv = [None] + list(range(0, m + 1))
    call_slot = [0] * n
    ret_slot = [None] * n
    is_call = [False] * (m + 2)
    op_of = [0] * (m + 2)
    for s, (t, kind, i) in enumerate(events, start=1):
        op_of[s] = i
        if kind == 0:
            call_slot[i] = s
            is_call[s] = True
        else:
            ret_slot[i] = s
    tail = m + 1
    returns_left = sum(1 for r in ret_slot if r is not None)

    def unlink(s):
        nxt[prv[s]] = nxt[s]
        prv[nxt[s]] = prv[s]

    def relink(s):
        nxt[prv[s]] = s
        prv[nxt[s]] = s

    state = init
    linearized = 0
    seen = {(0, init)}
    stack = []
    best = (-1, None, None)
    s = nxt[0]
    while returns_left > 0:
        if s == tail:  # only calls of unknown operations are left: done
            break
        i = op_of[s]
        if is_call[s]:
            accepted, new_state = step(state, items[i][0])
            if accepted:
                key = (linearized | (1 << i), new_state)
                if key not in seen:
                    if len(seen) >= max_states:
                        return {"ok": None, "exhausted": True, "linearized": len(stack), "op": None, "state": state}
                    seen.add(key)
                    stack.append((i, state))
                    state = new_state
                    linearized |= 1 << i
                    unlink(call_slot[i])
                    if ret_slot[i] is not None:
                        unlink(ret_slot[i])
                        returns_left -= 1
                    s = nxt[0]
                    continue
            s = nxt[s]
        else:
            if len(stack) > best[0]:
                best = (len(stack), items[i][0], state)
            if not stack:
                return {"ok": False, "linearized": best[0], "op": best[1], "state": best[2]}
            j, state = stack.pop()
            linearized &= ~(1 << j)
            if ret_slot[j] is not None:
                relink(ret_slot[j])
                returns_left += 1
            relink(call_slot[j])
            s = nxt[call_slot[j]]
    return {"ok": True, "linearized": len(stack)}


def truncate(ops, t):
    """The history as it stood at time t: later calls removed; operations still running at t
    lose their results (reads are dropped, writes become unknown)."""
    out = []
    for op in ops:
        if op["invoke"] > t:
            continue
        if op["outcome"] == "ok" and op["complete"] > t:
            if op["f"] == "read":
                continue
            op = dict(op, outcome="unknown", complete=None)
            op.pop("result", None)
        out.append(op)
    return out


def first_violation(ops, step=register_step):
    """The operation whose completion first makes ops non-linearizable (binary search over
    completion times), with the check result at that point."""
    times = sorted(op["complete"] for op in ops if op["outcome"] == "ok")
    lo, hi = 0, len(times) - 1
    found = None
    while lo <= hi:
        mid = (lo + hi) // 2
        r = check_linearizable(truncate(ops, times[mid]), step)
        if r["ok"] is False:
            found = (times[mid], r)
            hi = mid - 1
        else:
            lo = mid + 1
    if found is None:
        return None, None
    t, r = found
    culprit = next(op for op in ops if op["outcome"] == "ok" and op["complete"] == t)
    return culprit, r


def context(ops, culprit, before=6):
    """The operations on the culprit's key that ended last before it began, and those that
    overlap it: what a reader needs to see why it cannot be placed."""
    ended = [o for o in ops if o["outcome"] == "ok" and o["complete"] < culprit["invoke"]]
    ended.sort(key=lambda o: o["complete"])
    overlapping = [o for o in ops if o is not culprit and o["invoke"] <= (culprit["complete"] or INF)
                   and (o["complete"] is None or o["complete"] >= culprit["invoke"]) and o["outcome"] != "fail"]
    return ended[-before:] + overlapping[:10]


def check_registers(ops):
    """Every register key's history; returns (summary, failures)."""
    by_key = defaultdict(list)
    for op in ops:
        if op.get("f") in ("read", "write", "cas"):
            by_key[op["key"]].append(op)
    failures = []
    summary = {"keys": len(by_key), "ops": 0, "unknown": 0, "exhausted": 0}
    for key in sorted(by_key, key=lambda k: min(o["invoke"] for o in by_key[k])):
        kops = sorted(by_key[key], key=lambda o: o["invoke"])
        summary["ops"] += sum(1 for o in kops if o["outcome"] != "fail")
        summary["unknown"] += sum(1 for o in kops if o["outcome"] == "unknown" and not o.get("resolved"))
        r = check_linearizable(kops)
        if r["ok"] is None:
            summary["exhausted"] += 1
            continue
        if not r["ok"]:
            culprit, at = first_violation(kops)
            culprit = culprit or r["op"]
            failures.append({"check": "linearizable", "key": key, "op": culprit,
                             "state": (at or r)["state"], "deepest": r["op"], "context": context(kops, culprit),
                             "message": f"key {key}: no linearization; the first operation that breaks it is below"})
    return summary, failures


# --- the set and range workloads -------------------------------------------------------------

def check_sets(ops):
    """Appends against the final read and the range reads; returns (summary, failures)."""
    appends = [o for o in ops if o.get("f") == "append"]
    if not appends:
        return {}, []
    by_key = {o["key"]: o for o in appends}
    acked = {o["key"] for o in appends if o["outcome"] == "ok" or (o.get("resolved") or {}).get("committed")}
    failed = {o["key"] for o in appends if o["outcome"] == "fail" or (o.get("resolved") or {}).get("committed") is False}
    failures = []
    finals = [o for o in ops if o.get("f") == "final-read" and o["outcome"] == "ok"]
    summary = {"appends": len(appends), "acked": len(acked),
               "unknown": sum(1 for o in appends if o["outcome"] == "unknown" and not o.get("resolved")),
               "resolved": sum(1 for o in appends if o["outcome"] == "unknown" and o.get("resolved")), "final": None}
    if not finals:
        failures.append({"check": "set", "message": "no final read of the set succeeded: cannot check it"})
    for fin in finals:
        present = set(fin["result"])
        summary["final"] = len(present)
        summary["unknownPresent"] = sum(1 for k in present if by_key.get(k, {}).get("outcome") == "unknown")
        lost = sorted(acked - present, key=lambda k: by_key[k]["complete"] or 0)
        never = sorted(present - set(by_key))
        phantom = sorted(present & failed)
        if lost:
            failures.append({"check": "set", "message": f"{len(lost)} acknowledged appends missing from the final read",
                             "op": by_key[lost[0]], "keys": lost[:20]})
        if never:
            failures.append({"check": "set", "message": f"{len(never)} elements in the final read were never appended",
                             "op": fin, "keys": never[:20]})
        if phantom:
            failures.append({"check": "set", "message": f"{len(phantom)} appends that failed (not applied) are present",
                             "op": by_key[phantom[0]], "keys": phantom[:20]})
    failures += check_ranges(ops, by_key, failed)
    return summary, failures


def check_ranges(ops, by_key, failed):
    """Range reads during the run: each holds every append acknowledged before it began and
    every element a range read that completed before it began saw; nothing never appended."""
    reads = sorted((o for o in ops if o.get("f") in ("range", "final-read") and o["outcome"] == "ok"),
                   key=lambda o: o["invoke"])
    if not reads:
        return []
    failures = []
    acks = sorted((o["complete"], o["key"]) for o in by_key.values() if o["outcome"] == "ok")
    ack_times = [a[0] for a in acks]
    seen_by = sorted(((o["complete"], o) for o in reads), key=lambda x: x[0])
    for r in reads:
        present = set(r["result"])
        must = {k for _, k in acks[:bisect.bisect_left(ack_times, r["invoke"])]}
        missing = must - present
        if missing:
            k = min(missing, key=lambda k: by_key[k]["complete"])
            failures.append({"check": "range", "op": r, "keys": sorted(missing)[:20],
                             "message": f"range read {r['id']} misses {len(missing)} appends acknowledged before it began (first: {k})"})
            break
        for c, earlier in seen_by:
            if c >= r["invoke"]:
                break
            gone = set(earlier["result"]) - present
            if gone:
                failures.append({"check": "range", "op": r, "keys": sorted(gone)[:20],
                                 "message": f"range read {r['id']} lacks {len(gone)} elements that range read {earlier['id']} (completed before it began) saw"})
                break
        if failures:
            break
        never = present - set(by_key)
        bad = present & failed
        if never or bad:
            failures.append({"check": "range", "op": r, "keys": sorted(never | bad)[:20],
                             "message": f"range read {r['id']} holds elements never appended or whose append failed"})
            break
    return failures


# --- unknown outcomes ------------------------------------------------------------------------

def resolve_unknowns(ops, journal=None):
    """Resolves unknown writes against the committed journal (the audit chain says exactly
    which entries committed). `journal` is {(client ID, sequence): revision} for every
    committed entry with a session, read from a converged node after the run (the run is over:
    nothing can still commit). An unknown write whose session is there committed at that
    revision; one whose session is not never took effect. Without a journal, nothing is
    resolved (unknown writes stay unknown, which the checkers handle: weaker, still sound).
    """
    if journal is None:
        return {}
    out = {}
    for op in ops:
        if op.get("outcome") != "unknown" or not op.get("session"):
            continue
        revision = journal.get(tuple(op["session"]))
        out[op["id"]] = {"committed": True, "revision": revision} if revision else {"committed": False}
    return out


def apply_resolutions(ops, resolutions):
    """Marks unknown operations with the resolver's verdicts; returns how many were resolved."""
    n = 0
    for op in ops:
        r = resolutions.get(op.get("id"))
        if r is not None and op.get("outcome") == "unknown":
            op["resolved"] = r
            n += 1
    return n


def check_watches(ops):
    """Each watcher of the set prefix (workload `watch`) against the appends: the events come
    in (revision, key) order, each once; each is a put of an append that may have committed,
    at that append's revision when it is known; and every append known to have committed at or
    below the revision the watcher completed is among them. Returns (summary, failures)."""
    watches = [o for o in ops if o.get("f") == "watch"]
    if not watches:
        return {}, []
    appends = {o["key"]: o for o in ops if o.get("f") == "append"}

    def committed_revision(o):
        if o["outcome"] == "ok":
            return o.get("revision")
        r = o.get("resolved") or {}
        return r.get("revision") if r.get("committed") else None

    failures = []
    summary = []
    for w in watches:
        res = w.get("result") or {}
        events = [tuple(e) for e in res.get("events", [])]
        through = res.get("through", 0)
        summary.append({"events": len(events), "through": through, "resumes": res.get("resumes"),
                        "target": res.get("target")})
        if w["outcome"] != "ok":
            failures.append({"check": "watch", "op": w, "message": f"the watcher did not reach revision {res.get('target')} "
                             f"(through {through}): {res.get('problems')}"})
        order = [(rev, key) for rev, key, _ in events]
        for a, b in zip(order, order[1:]):
            if not a < b:
                failures.append({"check": "watch", "message": f"events out of order or repeated: {a} then {b}"})
                break
        seen = {}
        for rev, key, kind in events:
            o = appends.get(key)
            if o is None or kind != "put":
                failures.append({"check": "watch", "message": f"event {kind} {key} at {rev} matches no append"})
                break
            if o["outcome"] == "fail" or (o.get("resolved") or {}).get("committed") is False:
                failures.append({"check": "watch", "op": o, "message": f"event {key} at {rev}: that append did not take effect"})
                break
            want = committed_revision(o)
            if want is not None and want != rev:
                failures.append({"check": "watch", "op": o, "message": f"event {key} at {rev}: the append committed at {want}"})
                break
            seen[key] = rev
        missing = sorted((rev, key) for key, o in appends.items()
                         if (rev := committed_revision(o)) is not None and rev <= through and key not in seen)
        if missing:
            failures.append({"check": "watch", "message": f"{len(missing)} committed appends at or below revision {through} "
                             f"never reached the watcher: {missing[:10]}"})
    return {"watchers": summary}, failures


# How much earlier than (a renewal's invocation + TTL) a lease may be revoked: the leader
# checkpoints a renewal within 0.5 s (+ its 100 ms housekeeping round), and a new leader counts
# from the last checkpoint plus one election timeout (docs/KV-COMMANDS.md "Leases").
LEASE_EARLY_MARGIN_S = 1.0


def check_leases(ops, timing=True):
    """The lease workload (`leases.LeaseWorker`): no key of a live lease lost, no key of an
    expired lease left, and no lease revoked while its owner's renewals said it must live.

    - A lease is *gone* from the first answer that says so (a keep-alive `gone`, a put refused
      as `leaseNotFound`). A read invoked after that must not hold any of its keys that may
      have been written.
    - A lease renewed by a keep-alive invoked after a read completed was alive throughout that
      read (revokes are final): the read must hold every put with that lease acknowledged
      before the read was invoked.
    - Dropped leases (never renewed) are gone by the final read, which waits for that: it holds
      none of their keys.
    - With `timing`: a lease is not gone before (the invocation of an acknowledged grant or
      renewal) + TTL - `LEASE_EARLY_MARGIN_S` (skipped with clock faults, which move a
      leader's clock).
    Returns (summary, failures)."""
    grants = {o["result"]: o for o in ops if o.get("f") == "lease-grant" and o["outcome"] == "ok" and o.get("result")}
    if not grants and not any(o.get("f") == "lease-grant" for o in ops):
        return {}, []
    puts = [o for o in ops if o.get("f") == "lease-put"]
    renewals = [o for o in ops if o.get("f") == "lease-keepalive" and o["outcome"] == "ok"]
    reads = [o for o in ops if o.get("f") in ("lease-read", "lease-final-read") and o["outcome"] == "ok"]
    finals = [o for o in reads if o["f"] == "lease-final-read"]
    failures = []
    if not finals:
        failures.append({"check": "lease", "message": "the final read of the lease keys failed"})

    def may_exist(o):  # a put that may have written its key
        if o["outcome"] == "ok":
            return True
        return o["outcome"] == "unknown" and (o.get("resolved") or {}).get("committed") is not False

    gone_at = {}
    for o in renewals:
        if o.get("result") == "gone":
            gone_at[o["lease"]] = min(gone_at.get(o["lease"], o["complete"]), o["complete"])
    for o in puts:
        if o.get("result") == "leaseNotFound":
            gone_at[o["lease"]] = min(gone_at.get(o["lease"], o["complete"]), o["complete"])
    keys_of = {}
    for o in puts:
        if may_exist(o):
            keys_of.setdefault(o["lease"], []).append(o)
    checked_present = checked_absent = 0

    for r in reads:
        present = set(r.get("result") or [])
        for lease, t in gone_at.items():
            left = [o["key"] for o in keys_of.get(lease, []) if o["key"] in present]
            checked_absent += 1
            if r["invoke"] > t and left:
                failures.append({"check": "lease", "op": r, "keys": left,
                                 "message": f"{r['f']} holds {len(left)} key(s) of lease {lease}, which the cluster "
                                            f"said was gone before the read began"})
        for lease in grants:
            if not any(k["lease"] == lease and k.get("result") == "renewed" and k["invoke"] > r["complete"] for k in renewals):
                continue
            lost = [o["key"] for o in keys_of.get(lease, []) if o["outcome"] == "ok" and o["complete"] < r["invoke"]
                    and o["key"] not in present]
            checked_present += 1
            if lost:
                failures.append({"check": "lease", "op": r, "keys": lost,
                                 "message": f"{r['f']} lacks {len(lost)} acknowledged key(s) of lease {lease}, "
                                            f"which was renewed after the read"})
    if finals:
        present = set(finals[-1].get("result") or [])
        for lease, g in grants.items():
            if g.get("role") != "dropped":
                continue
            left = [o["key"] for o in keys_of.get(lease, []) if o["key"] in present]
            checked_absent += 1
            if left:
                failures.append({"check": "lease", "op": finals[-1], "keys": left,
                                 "message": f"the final read holds {len(left)} key(s) of lease {lease} (TTL "
                                            f"{g['value']} s, never renewed, granted at {g['invoke'] / 1e9:.2f} s)"})
    early = 0
    if timing:
        for lease, t in gone_at.items():
            g = grants.get(lease)
            if g is None:
                continue
            ttl_ns = g["value"] * 1e9
            promises = [g] + [k for k in renewals if k["lease"] == lease and k.get("result") == "renewed"]
            promised = max((p["invoke"] + ttl_ns for p in promises if p["complete"] <= t), default=0)
            if t < promised - LEASE_EARLY_MARGIN_S * 1e9:
                early += 1
                failures.append({"check": "lease", "message": f"lease {lease} (TTL {g['value']} s) was gone at "
                                 f"{t / 1e9:.2f} s, though a renewal promised it until {promised / 1e9:.2f} s"})
    summary = {"granted": len(grants), "dropped": sum(1 for g in grants.values() if g.get("role") == "dropped"),
               "goneWhileKept": sum(1 for lease in gone_at if (grants.get(lease) or {}).get("role") == "kept"),
               "puts": sum(1 for o in puts if o["outcome"] == "ok"), "reads": len(reads),
               "liveChecks": checked_present, "goneChecks": checked_absent, "timing": timing}
    return summary, failures


def check_history(ops, faults=()):
    """All checks; returns (summary, failures). `faults`: the run's nemesis faults (clock faults
    turn off the lease timing check)."""
    reg_summary, failures = check_registers(ops)
    set_summary, set_failures = check_sets(ops)
    watch_summary, watch_failures = check_watches(ops)
    lease_summary, lease_failures = check_leases(ops, timing=not any("skew" in f for f in faults))
    return ({"registers": reg_summary, "set": set_summary, "watch": watch_summary, "leases": lease_summary},
            failures + set_failures + watch_failures + lease_failures)
