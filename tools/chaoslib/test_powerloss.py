"""The power-loss filesystem: its cache alone, then through a real FUSE mount.

Run: tools/chaos --self-test. The mount tests need root, /dev/fuse and Debian's
python3-pyfuse3 (tools/setup); without them they are skipped, and --self-test prints why.
"""

import os
import random
import shutil
import tempfile
import unittest

from chaoslib import powerloss
from chaoslib.powerloss_cache import CacheSet, FileCache


class Backing:
    """A temporary backing file for the cache tests."""

    def __init__(self, content=b""):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "f")
        with open(self.path, "wb") as f:
            f.write(content)
        self.fd = os.open(self.path, os.O_RDWR)

    def on_disk(self):
        with open(self.path, "rb") as f:
            return f.read()

    def close(self):
        os.close(self.fd)
        self.dir.cleanup()


class Cache(unittest.TestCase):
    def setUp(self):
        self.b = Backing(b"0123456789")
        self.fc = FileCache(self.b.fd)

    def tearDown(self):
        self.b.close()

    def test_reads_see_unsynced_writes_the_disk_does_not(self):
        self.fc.write(2, b"ab")
        self.fc.write(10, b"XYZ")  # an append
        self.assertEqual(self.fc.read(0, 100), b"01ab456789XYZ")
        self.assertEqual(self.fc.size(), 13)
        self.assertEqual(self.b.on_disk(), b"0123456789")

    def test_appends_grow_one_extent_and_overlaps_merge(self):
        for i in range(100):
            self.fc.write(10 + i, b"a")
        self.assertEqual(len(self.fc.extents()), 1)
        self.fc.write(0, b"x")
        self.fc.write(5, b"yy")
        self.assertEqual(len(self.fc.extents()), 3)
        self.fc.write(1, b"-----")  # touches both: one extent 0..7
        self.assertEqual(self.fc.extents()[0], (0, b"x-----y"))
        self.assertEqual(self.fc.dirty_bytes, 7 + 100)
        self.assertEqual(self.fc.read(0, 12), b"x-----y789aa")

    def test_a_write_past_the_end_leaves_zeros_between(self):
        self.fc.write(14, b"Q")
        self.assertEqual(self.fc.read(8, 100), b"89\0\0\0\0Q")

    def test_truncate_clips_the_cache(self):
        self.fc.write(8, b"abcdef")
        self.fc.truncate(11)
        os.ftruncate(self.b.fd, 11)
        self.assertEqual(self.fc.read(0, 100), b"01234567abc")
        self.assertEqual(self.fc.last_write, (8, b"abc"))
        self.fc.truncate(5)
        self.assertEqual(self.fc.dirty_bytes, 0)
        self.assertIsNone(self.fc.last_write)

    def test_write_back_and_forget(self):
        self.fc.write(10, b"tail")
        self.assertEqual(self.fc.write_back(), 4)
        self.assertEqual(self.b.on_disk(), b"0123456789tail")
        self.fc.write(0, b"lost")
        self.assertEqual(self.fc.forget(), 4)
        self.assertEqual(self.fc.read(0, 100), b"0123456789tail")

    def test_tear_keeps_a_seeded_prefix_of_the_last_write_only(self):
        self.fc.write(10, b"first-")
        self.fc.write(16, b"second-write")
        off, kept, n = self.fc.tear(random.Random(7))
        self.assertEqual((off, n), (16, 12))
        self.assertEqual(kept, random.Random(7).randrange(12))
        self.assertLess(kept, n)
        expect = b"0123456789" + (b"\0" * 6 + b"second-write"[:kept] if kept else b"")
        self.assertEqual(self.b.on_disk(), expect)
        self.assertEqual(self.fc.dirty_bytes, 0)


class Bound(unittest.TestCase):
    def test_the_oldest_dirty_files_are_written_back_over_the_bound(self):
        files = [Backing() for _ in range(3)]
        try:
            cs = CacheSet(max_bytes=2500)
            fcs = [FileCache(b.fd) for b in files]
            for i, fc in enumerate(fcs):
                cs.write(i, fc, 0, bytes([65 + i]) * 1000)
            self.assertLessEqual(cs.dirty_bytes, 2500)
            self.assertEqual(cs.stats["writebacks"], 1)
            self.assertEqual(files[0].on_disk(), b"A" * 1000)  # the oldest, written back unsynced
            self.assertEqual(files[1].on_disk(), b"")
            lost = cs.power_loss()
            self.assertEqual((lost["droppedBytes"], lost["droppedFiles"]), (2000, 2))
            self.assertEqual([f.on_disk() for f in files], [b"A" * 1000, b"", b""])
        finally:
            for b in files:
                b.close()

    def test_fsync_makes_durable_and_releases(self):
        b = Backing()
        try:
            cs = CacheSet(max_bytes=1 << 20)
            fc = FileCache(b.fd)
            cs.write("k", fc, 0, b"synced")
            cs.fsync("k", fc, datasync=True)
            cs.write("k", fc, 6, b"+unsynced")
            self.assertEqual((cs.dirty_bytes, cs.stats["fsyncs"]), (9, 1))
            cs.power_loss()
            self.assertEqual(b.on_disk(), b"synced")
            self.assertEqual(cs.dirty_bytes, 0)
        finally:
            b.close()


MISSING = powerloss.unavailable()


@unittest.skipIf(MISSING, "power-loss filesystem: " + "; ".join(MISSING or []))
class Mounted(unittest.TestCase):
    """Through a real mount: write with ordinary system calls, lose power, mount again, look."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="plfs-test-")
        self.disk = os.path.join(self.tmp, "disk")
        self.mnt = os.path.join(self.tmp, "mnt")
        self.fs = None
        self.mount()

    def tearDown(self):
        if self.fs is not None:
            self.fs.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def mount(self, cache_max_bytes=None):
        self.fs = powerloss.Mount(self.disk, self.mnt, os.path.join(self.tmp, "fs.log"), cache_max_bytes)
        self.fs.start()
        self.assertTrue(powerloss.is_mounted(self.mnt))

    def power_loss(self, tear=False, seed=0):
        said = self.fs.power_loss(tear=tear, seed=seed)
        self.assertFalse(powerloss.is_mounted(self.mnt))
        self.mount()
        return said

    def p(self, name):
        return os.path.join(self.mnt, name)

    def write(self, name, data, sync=False, flags=os.O_CREAT | os.O_WRONLY):
        fd = os.open(self.p(name), flags, 0o644)
        try:
            os.write(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, name):
        with open(self.p(name), "rb") as f:
            return f.read()

    def test_synced_data_survives_and_unsynced_does_not(self):
        fd = os.open(self.p("wal"), os.O_CREAT | os.O_WRONLY, 0o644)
        os.pwrite(fd, b"record-1;", 0)
        os.fdatasync(fd)
        os.pwrite(fd, b"record-2;", 9)  # pwrite, no O_APPEND, as RocksDB writes
        os.close(fd)
        self.write("never-synced", b"gone")
        self.assertEqual(self.read("wal"), b"record-1;record-2;")  # reads see the cache
        self.assertEqual(os.path.getsize(os.path.join(self.disk, "wal")), 9)
        said = self.power_loss()
        self.assertEqual((said["droppedBytes"], said["droppedFiles"]), (13, 2))
        self.assertEqual(self.read("wal"), b"record-1;")
        self.assertEqual(self.read("never-synced"), b"")  # the create was durable, the data not

    def test_a_clean_unmount_keeps_everything(self):
        self.write("f", b"kept")
        self.fs.unmount()
        self.mount()
        self.assertEqual(self.read("f"), b"kept")

    def test_a_torn_write_leaves_a_prefix(self):
        self.write("log", b"A" * 100, sync=True)
        fd = os.open(self.p("log"), os.O_WRONLY)
        os.pwrite(fd, b"B" * 50, 100)
        os.pwrite(fd, b"C" * 80, 150)  # the last unsynced write: torn
        os.close(fd)
        said = self.power_loss(tear=True, seed=42)
        kept = random.Random(42).randrange(80)
        self.assertEqual(said["torn"], [{"path": "log", "offset": 150, "kept": kept, "of": 80}])
        expect = b"A" * 100 + (b"\0" * 50 + b"C" * kept if kept else b"")
        self.assertEqual(self.read("log"), expect)

    def test_rename_is_durable_at_once_its_data_only_when_synced(self):
        self.write("CURRENT", b"MANIFEST-1\n", sync=True)
        self.write("CURRENT.tmp", b"MANIFEST-2\n", sync=True)
        os.rename(self.p("CURRENT.tmp"), self.p("CURRENT"))
        self.write("OTHER.tmp", b"not synced\n")
        os.rename(self.p("OTHER.tmp"), self.p("OTHER"))
        dfd = os.open(self.mnt, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(dfd)  # directory fsync is supported
        os.close(dfd)
        self.power_loss()
        self.assertEqual(sorted(os.listdir(self.mnt)), ["CURRENT", "OTHER"])
        self.assertEqual(self.read("CURRENT"), b"MANIFEST-2\n")
        self.assertEqual(self.read("OTHER"), b"")  # renamed before its data was synced

    def test_hard_links_share_one_cache(self):
        self.write("a", b"one")
        os.link(self.p("a"), self.p("b"))  # as a RocksDB checkpoint links its SSTs
        self.assertEqual(os.stat(self.p("a")).st_nlink, 2)
        self.assertEqual(self.read("b"), b"one")
        self.write("b", b"two", flags=os.O_WRONLY)
        fd = os.open(self.p("a"), os.O_RDONLY)
        os.fsync(fd)  # through the other name
        os.close(fd)
        os.unlink(self.p("a"))
        self.power_loss()
        self.assertEqual(os.listdir(self.mnt), ["b"])
        self.assertEqual(self.read("b"), b"two")
        self.assertEqual(os.stat(self.p("b")).st_nlink, 1)

    def test_directories_rename_and_unlinked_files_take_their_cache(self):
        os.makedirs(self.p("db.incoming/sub"))
        self.write("db.incoming/sub/x", b"x-data")
        self.write("db.incoming/y", b"y-data")
        os.rename(self.p("db.incoming"), self.p("db"))
        fd = os.open(self.p("db/sub/x"), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        os.unlink(self.p("db/y"))
        self.assertEqual(self.fs.stats()["dirtyBytes"], 0)
        self.power_loss()
        self.assertEqual(self.read("db/sub/x"), b"x-data")
        self.assertFalse(os.path.exists(self.p("db/y")))

    def test_truncate_and_fallocate(self):
        self.write("t", b"0123456789", sync=True)
        fd = os.open(self.p("t"), os.O_RDWR)
        os.pwrite(fd, b"abcdef", 10)
        os.ftruncate(fd, 13)  # truncates go straight to the disk
        self.assertEqual(os.pread(fd, 100, 0), b"0123456789abc")
        os.posix_fallocate(fd, 0, 8192)  # glibc writes zeros where fallocate(2) is not supported
        self.assertEqual(os.fstat(fd).st_size, 8192)
        self.assertEqual(os.pread(fd, 100, 0), b"0123456789abc" + bytes(87))
        os.close(fd)
        self.power_loss()
        self.assertEqual(self.read("t")[:13], b"0123456789\0\0\0")
        self.write("u", b"unsynced, then truncated by an open")
        self.write("u", b"x", flags=os.O_CREAT | os.O_TRUNC | os.O_WRONLY)
        self.assertEqual(self.read("u"), b"x")
        self.assertEqual(self.fs.stats()["dirtyBytes"], 1)

    def test_the_cache_is_bounded(self):
        self.fs.unmount()
        self.mount(cache_max_bytes=1 << 20)
        size = 400 << 10
        for name in ("old", "mid", "new"):
            self.write(name, (name.encode() * size)[:size])
        st = self.fs.stats()
        self.assertLessEqual(st["dirtyBytes"], 1 << 20)
        self.assertLessEqual(st["peakDirtyBytes"], 2 << 20)  # over by one FUSE write (<= 1 MiB) at most
        self.assertGreaterEqual(st["writebacks"], 1)
        self.power_loss()
        self.assertEqual(self.read("old"), (b"old" * size)[:size])  # written back unsynced: survived
        self.assertEqual(self.read("new"), b"")  # only in the cache: lost


if __name__ == "__main__":
    unittest.main()
