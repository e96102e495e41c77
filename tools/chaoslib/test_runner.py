"""Pruning old run directories: only run directories go, oldest first, never the spared ones.

Run: tools/chaos --self-test.
"""

import os
import tempfile
import unittest

from chaoslib import runner


class PruneRuns(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = self.tmp.name
        self.runs = ["20261126-183753-seed1", "20261126-190000-seed7", "20261127-010203-seed42",
                     "20261127-043306-seed161676802"]
        for name in self.runs + ["notes", "20261127-bad-seed"]:
            os.makedirs(os.path.join(self.out, name, "data"))
        open(os.path.join(self.out, "20261101-000000-seed9"), "w").close()  # a file, not a run

    def tearDown(self):
        self.tmp.cleanup()

    def left(self):
        return sorted(os.listdir(self.out))

    def test_keeps_the_newest_and_everything_else(self):
        deleted = runner.prune_runs(self.out, 2)
        self.assertEqual([os.path.basename(p) for p in deleted], self.runs[:2])
        self.assertEqual(self.left(), sorted(self.runs[2:] + ["notes", "20261127-bad-seed", "20261101-000000-seed9"]))

    def test_spares_failed_runs(self):
        spare = [os.path.join(self.out, self.runs[0])]
        deleted = runner.prune_runs(self.out, 1, spare=spare)
        self.assertEqual([os.path.basename(p) for p in deleted], self.runs[1:3])
        self.assertIn(self.runs[0], self.left())
        self.assertIn(self.runs[3], self.left())

    def test_zero_or_enough_keeps_all(self):
        self.assertEqual(runner.prune_runs(self.out, 0), [])
        self.assertEqual(runner.prune_runs(self.out, 10), [])
        self.assertEqual(runner.prune_runs(os.path.join(self.out, "missing"), 1), [])
        self.assertEqual(len([n for n in self.left() if n in self.runs]), 4)


class AckedBeforePowerLoss(unittest.TestCase):
    def test_counts_acknowledged_appends_before_the_loss_and_those_missing(self):
        ops = [{"f": "append", "key": "s/1", "outcome": "ok", "complete": 10},
               {"f": "append", "key": "s/2", "outcome": "ok", "complete": 20},
               {"f": "append", "key": "s/3", "outcome": "unknown", "complete": None},
               {"f": "append", "key": "s/4", "outcome": "ok", "complete": 40},
               {"f": "final-read", "outcome": "ok", "complete": 50, "result": ["s/1", "s/4"]}]
        self.assertEqual(runner.acked_before_power_loss(ops, 30), {"appendsAckedBefore": 2, "appendsLost": 1})
        self.assertEqual(runner.acked_before_power_loss(ops[:4], 30)["appendsLost"], None)


if __name__ == "__main__":
    unittest.main()
