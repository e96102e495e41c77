"""The nemesis's pure parts: schedules and the verdict on an exit under a disk fault.

Run: tools/chaos --self-test.
"""

import random
import signal
import unittest

from chaoslib import nemesis as nm

STOP_LOG = """2026-11-26T19:17:45+0000 info faunad: node=n1 [FaunaRPC] peer link connected
2026-11-26T19:17:45+0000 critical faunad: node=n1 role=follower term=2 [FaunaNode] stopping: applying committed entries failed: store error [rocksDB]: RocksDB write to /d/n1/db failed [ioError]: IO error: While appending to file: /d/n1/db/000035.log: Input/output error
2026-11-26T19:17:45+0000 info faunad: node=n1 [FaunaNode] node stopped
faunad: n1 stopped: store error [rocksDB]: RocksDB write to /d/n1/db failed [ioError]: IO error
"""
OPEN_LOG = ("faunad: n1: cannot open the data directory /d/n1: store error [diskFull]: open: disk nearly "
            "full at /d/n1: 134217728 bytes free, need 0 + reserve 268435456\n")


class DiskExitVerdict(unittest.TestCase):
    def test_running(self):
        self.assertEqual(nm.classify_disk_exit(None, "")[0], "running")

    def test_fail_stop_while_running(self):
        kind, detail = nm.classify_disk_exit(1, STOP_LOG)
        self.assertEqual(kind, "stop")
        self.assertIn("stopping: applying committed entries failed", detail)

    def test_fail_stop_at_open(self):
        self.assertEqual(nm.classify_disk_exit(1, OPEN_LOG)[0], "stop")

    def test_exit_1_without_the_message_is_unclear(self):
        self.assertEqual(nm.classify_disk_exit(1, "faunad: n1: port 7801 in use\n")[0], "unclear")

    def test_exit_0_is_unclear(self):
        self.assertEqual(nm.classify_disk_exit(0, STOP_LOG)[0], "unclear")

    def test_sigabrt_is_an_abort(self):
        self.assertEqual(nm.classify_disk_exit(-signal.SIGABRT, "Assertion failed")[0], "abort")

    def test_traps_and_faults_are_crashes(self):
        for sig in (signal.SIGILL, signal.SIGSEGV, signal.SIGTRAP, signal.SIGBUS):
            self.assertEqual(nm.classify_disk_exit(-sig, STOP_LOG)[0], "crash", sig)

    def test_a_kill_nobody_sent_is_unclear(self):
        self.assertEqual(nm.classify_disk_exit(-signal.SIGKILL, "")[0], "unclear")


class DiskSchedule(unittest.TestCase):
    def test_disk_group(self):
        self.assertEqual(nm.expand(["disk"]), ["disk-eio", "disk-full"])
        self.assertIn("disk-eio", nm.expand(["all"]))

    def test_seeded_and_spaced(self):
        a = nm.schedule(900, nm.expand(["disk"]), 60)
        self.assertEqual(a, nm.schedule(900, nm.expand(["disk"]), 60))
        self.assertEqual([s["fault"] for s in a[:2]], ["disk-eio", "disk-full"])
        for s, t in zip(a, a[1:]):  # room for the restart and catch-up after each disk step
            self.assertGreaterEqual(t["at"] - s["at"], s["duration"] + 1.0 + nm.EXTRA_GAP_S[s["fault"]])

    def test_eio_spec_names_libfiu_points_and_eio(self):
        for seed in range(20):
            spec, point = nm.eio_spec(random.Random(seed))
            self.assertIn(point, nm.EIO_POINTS)
            self.assertTrue(spec.startswith(f"enable_random name={point},probability="))
            self.assertTrue(spec.endswith(",failinfo=5"))

    def test_tmpfs_sizes(self):
        seen = set()
        for seed in range(30):
            size, variant = nm.tmpfs_size(random.Random(seed))
            seen.add(variant)
            if variant == "below-reserve":
                self.assertLess(size, nm.DISK_GUARD_BYTES)
            else:
                self.assertGreater(size, nm.DISK_GUARD_BYTES)
        self.assertEqual(seen, {"below-reserve", "reserve-plus", "reserve-plus-wal"})


class PowerLossSchedule(unittest.TestCase):
    def test_power_loss_group(self):
        self.assertEqual(nm.expand(["power-loss"]), ["power-loss-leader", "power-loss-follower", "power-loss-all"])
        self.assertTrue(nm.POWER_LOSS <= set(nm.expand(["all"])))
        steps = nm.schedule(5, nm.expand(["power-loss"]), 60)
        self.assertEqual([s["fault"] for s in steps[:3]], nm.GROUPS["power-loss"])
        self.assertEqual(steps, nm.schedule(5, nm.expand(["power-loss"]), 60))
        for s, t in zip(steps, steps[1:]):  # room to remount, restart and catch up
            self.assertGreaterEqual(t["at"] - s["at"], s["duration"] + 1.0 + nm.EXTRA_GAP_S[s["fault"]])


if __name__ == "__main__":
    unittest.main()
