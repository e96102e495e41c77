"""The checkers must flag known-bad histories and accept known-good ones.

Run: tools/chaos --self-test (or `python3 -m unittest discover -s tools/chaoslib -t tools`).
"""

import random
import unittest

from chaoslib import checker

_ids = iter(range(1_000_000))


def op(f, inv, comp, outcome="ok", key="x", value=None, result=None, **extra):
    o = {"id": next(_ids), "f": f, "key": key, "invoke": inv, "complete": comp if outcome != "unknown" else None,
         "outcome": outcome}
    if value is not None:
        o["value"] = value
    if f in ("read", "cas", "final-read", "range") and outcome == "ok":
        o["result"] = result
    o.update(extra)
    return o


def w(inv, comp, v, **kw):
    return op("write", inv, comp, value=v, **kw)


def r(inv, comp, v, **kw):
    return op("read", inv, comp, result=v, **kw)


def cas(inv, comp, e, n, ok=True, **kw):
    return op("cas", inv, comp, value=[e, n], result={"succeeded": ok}, **kw)


def lin(ops):
    return checker.check_linearizable(ops)["ok"]


class RegisterGood(unittest.TestCase):
    def test_sequential(self):
        self.assertTrue(lin([w(0, 1, "a"), r(2, 3, "a"), cas(4, 5, "a", "b"), r(6, 7, "b")]))

    def test_read_of_missing_key(self):
        self.assertTrue(lin([r(0, 1, None), w(2, 3, "a"), r(4, 5, "a")]))

    def test_concurrent_read_sees_old_or_new(self):
        for seen in ("a", "b"):
            self.assertTrue(lin([w(0, 1, "a"), w(2, 10, "b"), r(3, 4, seen)]))

    def test_concurrent_reads_may_disagree_only_in_order(self):
        # r1 sees b, then r2 (begun after r1 ended) sees b too: fine; a reversal is tested below.
        self.assertTrue(lin([w(0, 1, "a"), w(2, 10, "b"), r(3, 4, "b"), r(5, 6, "b")]))

    def test_unknown_write_may_take_effect_late(self):
        self.assertTrue(lin([w(0, 1, "a"), w(2, None, "b", outcome="unknown"), r(5, 6, "a"), r(7, 8, "b")]))

    def test_unknown_write_may_never_take_effect(self):
        self.assertTrue(lin([w(0, 1, "a"), w(2, None, "b", outcome="unknown"), r(5, 6, "a"), r(70, 80, "a")]))

    def test_failed_write_is_ignored(self):
        self.assertTrue(lin([w(0, 1, "a"), w(2, 3, "b", outcome="fail"), r(5, 6, "a")]))

    def test_failed_cas_with_current_value(self):
        self.assertTrue(lin([w(0, 1, "a"), op("cas", 2, 3, value=["z", "q"], result={"succeeded": False, "current": "a"})]))

    def test_unknown_cas_explains_a_read(self):
        self.assertTrue(lin([w(0, 1, "a"), op("cas", 2, None, "unknown", value=["a", "b"]), r(5, 6, "b")]))

    def test_many_concurrent_ops(self):
        # A correct register simulated with random overlapping operations.
        rng = random.Random(3)
        ops, value, t = [], None, 0
        for i in range(200):
            t += rng.randint(1, 5)
            kind = rng.choice(["read", "write", "cas"])
            inv = t - rng.randint(0, 20)
            comp = t + rng.randint(0, 20)
            if kind == "read":
                ops.append(r(inv, comp, value))
            elif kind == "write":
                value = f"v{i}"
                ops.append(w(inv, comp, value) if rng.random() < 0.85 else w(inv, None, value, outcome="unknown"))
            else:
                e = value if rng.random() < 0.7 else "nope"
                if e == value:
                    value = f"v{i}"
                    ops.append(cas(inv, comp, e, value))
                else:
                    ops.append(cas(inv, comp, e, f"v{i}", ok=False))
        self.assertTrue(lin(ops))


class RegisterBad(unittest.TestCase):
    def test_stale_read(self):
        ops = [w(0, 1, "a"), w(2, 3, "b"), r(4, 5, "a")]
        self.assertFalse(lin(ops))
        culprit, _ = checker.first_violation(ops)
        self.assertEqual(culprit["id"], ops[2]["id"])

    def test_read_of_never_written_value(self):
        self.assertFalse(lin([w(0, 1, "a"), r(2, 3, "zzz")]))

    def test_lost_write(self):
        # An acknowledged write that no later read sees.
        self.assertFalse(lin([w(0, 1, "a"), w(2, 3, "b"), r(10, 11, "a"), r(12, 13, "a")]))

    def test_reads_go_back_in_time(self):
        self.assertFalse(lin([w(0, 1, "a"), w(2, 20, "b"), r(3, 4, "b"), r(5, 6, "a")]))

    def test_impossible_cas(self):
        # cas(a -> c) succeeded, but the value was b since before it began.
        self.assertFalse(lin([w(0, 1, "a"), w(2, 3, "b"), cas(4, 5, "a", "c")]))

    def test_cas_failed_although_it_should_have_succeeded(self):
        self.assertFalse(lin([w(0, 1, "a"), cas(2, 3, "a", "c", ok=False)]))

    def test_failed_cas_reports_a_stale_current_value(self):
        self.assertFalse(lin([w(0, 1, "a"), w(2, 3, "b"),
                              op("cas", 4, 5, value=["z", "q"], result={"succeeded": False, "current": "a"})]))

    def test_failed_write_visible(self):
        self.assertFalse(lin([w(0, 1, "a"), w(2, 3, "b", outcome="fail"), r(5, 6, "b")]))

    def test_unknown_write_resolved_not_committed_but_read(self):
        u = w(2, None, "b", outcome="unknown", resolved={"committed": False})
        self.assertFalse(lin([w(0, 1, "a"), u, r(5, 6, "b")]))

    def test_unknown_write_resolved_committed_must_show(self):
        u = w(2, None, "b", outcome="unknown", resolved={"committed": True, "revision": 9})
        # b committed, so a later write c and a read of c are fine ...
        self.assertTrue(lin([w(0, 1, "a"), u, w(4, 5, "c"), r(6, 7, "c")]))
        # ... but b must have taken effect somewhere: never overwritten, yet never visible is fine
        # only if it could land after the last read; a read of a after a resolved-committed b with
        # nothing after is still linearizable (b may land later). A read of b after a resolved
        # *uncommitted* b is not (above).

    def test_unknown_cas_resolved_committed_may_have_failed(self):
        # Seen in a disk-eio run (seed 900): the CAS's node stopped before it answered, the
        # journal shows it committed, but its comparison failed (the value was a), so it had no
        # effect; it must still be placeable.
        u = op("cas", 2, None, outcome="unknown", value=["z", "q"], resolved={"committed": True, "revision": 9})
        self.assertTrue(lin([w(0, 1, "a"), u, r(5, 6, "a"), r(7, 8, "a")]))
        # ... but its new value cannot appear when the comparison could never have held
        self.assertFalse(lin([w(0, 1, "a"), u, r(5, 6, "q")]))
        # and when it held, the committed CAS is a write
        ok = op("cas", 2, None, outcome="unknown", value=["a", "q"], resolved={"committed": True, "revision": 9})
        self.assertTrue(lin([w(0, 1, "a"), ok, r(5, 6, "q")]))

    def test_first_violation_in_a_long_history(self):
        ops = [w(0, 1, "a")]
        for i in range(50):
            ops.append(r(10 + 4 * i, 12 + 4 * i, "a"))
        ops.append(w(300, 301, "b"))
        ops.append(r(310, 311, "b"))
        ops.append(r(320, 321, "a"))  # stale
        ops.append(r(330, 331, "b"))
        culprit, _ = checker.first_violation(ops)
        self.assertEqual(culprit["id"], ops[-2]["id"])


class SetChecks(unittest.TestCase):
    def appends(self, *spec):
        return [op("append", i * 2, i * 2 + 1, outcome=o, key=k, value="1") for i, (k, o) in enumerate(spec)]

    def test_good(self):
        ops = self.appends(("s/1", "ok"), ("s/2", "unknown"), ("s/3", "fail"))
        ops.append(op("final-read", 100, 101, key="s/", result=["s/1", "s/2"]))
        self.assertEqual(checker.check_sets(ops)[1], [])

    def test_lost_append(self):
        ops = self.appends(("s/1", "ok"), ("s/2", "ok"))
        ops.append(op("final-read", 100, 101, key="s/", result=["s/1"]))
        f = checker.check_sets(ops)[1]
        self.assertIn("missing", f[0]["message"])
        self.assertEqual(f[0]["keys"], ["s/2"])

    def test_never_appended(self):
        ops = self.appends(("s/1", "ok"))
        ops.append(op("final-read", 100, 101, key="s/", result=["s/1", "s/9"]))
        self.assertIn("never appended", checker.check_sets(ops)[1][0]["message"])

    def test_failed_append_present(self):
        ops = self.appends(("s/1", "ok"), ("s/2", "fail"))
        ops.append(op("final-read", 100, 101, key="s/", result=["s/1", "s/2"]))
        self.assertIn("failed", checker.check_sets(ops)[1][0]["message"])

    def test_range_read_misses_acknowledged_append(self):
        ops = self.appends(("s/1", "ok"), ("s/2", "ok"))
        ops.append(op("range", 10, 11, key="s/", result=["s/2"]))
        ops.append(op("final-read", 100, 101, key="s/", result=["s/1", "s/2"]))
        self.assertIn("misses", checker.check_sets(ops)[1][0]["message"])

    def test_range_reads_go_back_in_time(self):
        ops = self.appends(("s/1", "ok"))
        ops.append(op("append", 5, None, outcome="unknown", key="s/2", value="1"))
        ops.append(op("range", 10, 11, key="s/", result=["s/1", "s/2"]))
        ops.append(op("range", 12, 13, key="s/", result=["s/1"]))
        ops.append(op("final-read", 100, 101, key="s/", result=["s/1", "s/2"]))
        self.assertIn("lacks", checker.check_sets(ops)[1][0]["message"])

    def test_range_reads_concurrent_may_differ(self):
        ops = self.appends(("s/1", "ok"))
        ops.append(op("append", 5, 30, key="s/2", value="1"))
        ops.append(op("range", 10, 20, key="s/", result=["s/1", "s/2"]))
        ops.append(op("range", 12, 25, key="s/", result=["s/1"]))
        ops.append(op("final-read", 100, 101, key="s/", result=["s/1", "s/2"]))
        self.assertEqual(checker.check_sets(ops)[1], [])


class WatchChecks(unittest.TestCase):
    """check_watches: every committed append exactly once, in order, and nothing else."""

    def history(self, events, through=9, outcome="ok"):
        ops = [op("append", 0, 1, key="s/1", value="1", revision=4), op("append", 2, 3, key="s/2", value="1", revision=6),
               op("append", 4, None, outcome="unknown", key="s/3", value="1"),
               op("append", 6, 7, outcome="fail", key="s/4", value="1")]
        watch = op("watch", 0, 20, outcome=outcome, key="s/")
        watch["result"] = {"events": events, "through": through, "target": 9, "resumes": 1}
        return ops + [watch]

    def test_good(self):
        good = [[4, "s/1", "put"], [6, "s/2", "put"], [8, "s/3", "put"]]
        self.assertEqual(checker.check_watches(self.history(good))[1], [])
        # An unknown append may have committed or not.
        self.assertEqual(checker.check_watches(self.history(good[:2]))[1], [])

    def test_missing_committed_append(self):
        f = checker.check_watches(self.history([[4, "s/1", "put"]]))[1]
        self.assertIn("never reached the watcher", f[0]["message"])

    def test_repeated_or_out_of_order(self):
        f = checker.check_watches(self.history([[4, "s/1", "put"], [6, "s/2", "put"], [6, "s/2", "put"]]))[1]
        self.assertIn("out of order or repeated", f[0]["message"])
        f = checker.check_watches(self.history([[6, "s/2", "put"], [4, "s/1", "put"]]))[1]
        self.assertIn("out of order", f[0]["message"])

    def test_invented_failed_or_moved_events(self):
        for events, want in (([[4, "s/1", "put"], [6, "s/2", "put"], [7, "s/9", "put"]], "matches no append"),
                             ([[4, "s/1", "put"], [6, "s/2", "put"], [7, "s/4", "put"]], "did not take effect"),
                             ([[5, "s/1", "put"], [6, "s/2", "put"]], "committed at 4")):
            f = checker.check_watches(self.history(events))[1]
            self.assertTrue(f and want in f[0]["message"], (events, f))

    def test_a_watcher_that_did_not_catch_up_fails(self):
        f = checker.check_watches(self.history([[4, "s/1", "put"]], through=4, outcome="fail"))[1]
        self.assertIn("did not reach", f[0]["message"])


if __name__ == "__main__":
    unittest.main()


S = 1_000_000_000  # ns per second


def grant(inv, comp, lease, ttl, role="kept"):
    return dict(op("lease-grant", inv * S, comp * S, key="l/", value=ttl, role=role), result=lease)


def lput(inv, comp, key, lease, role="kept", outcome="ok", **kw):
    return op("lease-put", inv * S, comp * S, outcome=outcome, key=key, value="1", lease=lease, role=role, **kw)


def renew(inv, comp, lease, result="renewed"):
    return dict(op("lease-keepalive", inv * S, comp * S, key=None, lease=lease), result=result)


def lread(inv, comp, keys, final=False):
    return dict(op("lease-final-read" if final else "lease-read", inv * S, comp * S, key="l/"), result=sorted(keys))


class LeaseChecks(unittest.TestCase):
    def good(self):
        return [grant(0, 0.1, 5, 4), lput(0.2, 0.3, "l/a", 5), grant(0.4, 0.5, 9, 2, "dropped"),
                lput(0.6, 0.7, "l/d", 9, "dropped"), renew(1.0, 1.1, 5), lread(1.2, 1.3, ["l/a", "l/d"]),
                renew(1.5, 1.6, 5), renew(5.0, 5.1, 5), lread(8.0, 8.1, ["l/a"], final=True), renew(8.2, 8.3, 5)]

    def test_good_history_passes(self):
        summary, failures = checker.check_leases(self.good())
        self.assertEqual(failures, [])
        self.assertEqual((summary["granted"], summary["dropped"]), (2, 1))
        self.assertGreater(summary["liveChecks"], 0)

    def test_lost_key_of_a_renewed_lease_fails(self):
        h = self.good()
        h[5]["result"] = ["l/d"]  # l/a missing, though lease 5 was renewed after the read
        _, failures = checker.check_leases(h)
        self.assertTrue(any("lacks" in f["message"] for f in failures), failures)

    def test_key_of_a_dropped_lease_left_fails(self):
        h = self.good()
        h[8]["result"] = ["l/a", "l/d"]
        _, failures = checker.check_leases(h)
        self.assertTrue(any("never renewed" in f["message"] for f in failures), failures)

    def test_key_of_a_gone_lease_in_a_later_read_fails(self):
        h = [grant(0, 0.1, 5, 4), lput(0.2, 0.3, "l/a", 5), renew(5.0, 5.1, 5, result="gone"),
             lread(5.5, 5.6, ["l/a"]), lread(9, 9.1, [], final=True)]
        _, failures = checker.check_leases(h)
        self.assertTrue(any("said was gone" in f["message"] for f in failures), failures)
        # An unknown put that never committed (the journal says so) is not a key of the lease.
        h[1] = lput(0.2, 0.3, "l/a", 5, outcome="unknown", resolved={"committed": False})
        h[3]["result"] = []
        self.assertEqual(checker.check_leases(h)[1], [])

    def test_lease_gone_before_its_renewal_ran_out_fails_unless_clocks_were_faulted(self):
        h = [grant(0, 0.1, 5, 4), renew(2.0, 2.1, 5), renew(3.0, 3.1, 5, result="gone"), lread(9, 9.1, [], final=True)]
        _, failures = checker.check_leases(h)
        self.assertTrue(any("promised it until" in f["message"] for f in failures), failures)
        self.assertEqual(checker.check_leases(h, timing=False)[1], [])
        # Gone after the renewal's TTL (less the margin): fine.
        h[2] = renew(5.5, 5.6, 5, result="gone")
        self.assertEqual(checker.check_leases(h)[1], [])

    def test_no_final_read_fails(self):
        _, failures = checker.check_leases(self.good()[:8])
        self.assertTrue(any("final read" in f["message"] for f in failures), failures)


class JournalResolution(unittest.TestCase):
    """resolve_unknowns: the committed journal decides unknown writes."""

    def test_session_in_journal_commits_absent_drops(self):
        committed = w(2, None, "b", outcome="unknown", session=[7, 1])
        dropped = w(3, None, "c", outcome="unknown", session=[7, 2])
        ops = [w(0, 1, "a", session=[6, 1]), committed, dropped]
        verdicts = checker.resolve_unknowns(ops, {(6, 1): 4, (7, 1): 5})
        self.assertEqual(verdicts, {committed["id"]: {"committed": True, "revision": 5}, dropped["id"]: {"committed": False}})
        self.assertEqual(checker.apply_resolutions(ops, verdicts), 2)

    def test_resolution_gives_the_checker_teeth(self):
        # Unresolved, "b" may have taken effect, so a later read of "b" is fine; once the journal
        # shows its session never committed, that read saw a value nobody wrote.
        def history():
            return [w(0, 1, "a"), w(2, None, "b", outcome="unknown", session=[9, 1]), r(50, 60, "b")]
        self.assertTrue(lin(history()))
        ops = history()
        checker.apply_resolutions(ops, checker.resolve_unknowns(ops, {(8, 1): 3}))
        self.assertFalse(lin(ops))

    def test_committed_cas_may_have_failed(self):
        # Committed, but its compare may have failed: it ran without writing (long run, seed 5101).
        ops = [w(0, 1, "a"), cas(2, None, "x", "b", outcome="unknown", session=[5, 1]), r(50, 60, "a")]
        checker.apply_resolutions(ops, checker.resolve_unknowns(ops, {(5, 1): 3}))
        self.assertTrue(lin(ops))

    def test_no_journal_resolves_nothing(self):
        self.assertEqual(checker.resolve_unknowns([w(2, None, "b", outcome="unknown", session=[1, 1])]), {})
