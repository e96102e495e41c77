"""The power-loss filesystem's own page cache: file data written but not yet fsynced.

Pure Python, no FUSE: `powerloss_fs.py` keeps one `FileCache` per inode and one `CacheSet`
for the whole mount; the unit tests exercise both directly as well as through a mount.

A file's content, as every reader of the mount sees it, is its backing file (what "reached the
disk") overlaid with its dirty extents (what is only in this cache), and its size is the larger
of the backing file's size and the end of the last dirty extent. An fsync writes the extents to
the backing file and fsyncs it. A power loss forgets them; in "tear" mode a seeded random
prefix of the file's last unsynced write reaches the backing file (the disk was writing it when
the power went). When the cache holds more than its bound, the files that have been dirty the
longest are written back to their backing files *without* fsync: unsynced data may survive a
power loss, so that is legal, and it keeps memory bounded.
"""

import bisect
import os


class FileCache:
    """Dirty extents of one file: sorted, disjoint and never adjacent, as [start, bytearray].

    `fd` is a descriptor of the backing file open for reading and writing; the owner opens and
    closes it. `last_write` is (offset, bytes) of the newest write not yet in the backing file
    (the one a power loss may tear), or None."""

    def __init__(self, fd):
        self.fd = fd
        self.starts = []  # extent start offsets, sorted (for bisect)
        self.datas = []  # the extents' bytes, parallel to starts
        self.dirty_bytes = 0
        self.last_write = None
        self.dirty_since = None  # CacheSet's counter value when this file became dirty

    # --- shape -----------------------------------------------------------------------------

    def extents(self):
        return [(s, bytes(d)) for s, d in zip(self.starts, self.datas)]

    def end(self):
        """The end of the last dirty extent (0 if none)."""
        return self.starts[-1] + len(self.datas[-1]) if self.starts else 0

    def backing_size(self):
        return os.fstat(self.fd).st_size

    def size(self, backing_size=None):
        """The file's size as readers of the mount see it."""
        b = self.backing_size() if backing_size is None else backing_size
        return max(b, self.end())

    # --- data ------------------------------------------------------------------------------

    def write(self, offset, data):
        """Caches `data` at `offset`; returns the number of bytes newly dirty (>= 0)."""
        data = bytes(data)
        n = len(data)
        if n == 0:
            return 0
        end = offset + n
        before = self.dirty_bytes
        # Extents that overlap or touch [offset, end) merge with it into one extent.
        i = bisect.bisect_left(self.starts, offset)
        if i > 0 and self.starts[i - 1] + len(self.datas[i - 1]) >= offset:
            i -= 1
        j = i
        while j < len(self.starts) and self.starts[j] <= end:
            j += 1
        if j == i:  # nothing to merge with
            self.starts.insert(i, offset)
            self.datas.insert(i, bytearray(data))
            self.dirty_bytes += n
        elif j == i + 1 and self.starts[i] + len(self.datas[i]) == offset:
            self.datas[i] += data  # the common case: an append to the extent before
            self.dirty_bytes += n
        else:
            start = min(offset, self.starts[i])
            last_end = self.starts[j - 1] + len(self.datas[j - 1])
            merged = bytearray(max(end, last_end) - start)
            for s, d in zip(self.starts[i:j], self.datas[i:j]):
                merged[s - start:s - start + len(d)] = d
                self.dirty_bytes -= len(d)
            merged[offset - start:end - start] = data
            self.starts[i:j] = [start]
            self.datas[i:j] = [merged]
            self.dirty_bytes += len(merged)
        self.last_write = (offset, data)
        return self.dirty_bytes - before

    def read(self, offset, size):
        """`size` bytes at `offset` (fewer at the end of the file)."""
        backing = self.backing_size()
        stop = min(offset + size, self.size(backing))
        if stop <= offset:
            return b""
        buf = bytearray(os.pread(self.fd, stop - offset, offset))
        if len(buf) < stop - offset:  # past the backing file's end: zeros, then the extents
            buf += bytes(stop - offset - len(buf))
        i = max(0, bisect.bisect_right(self.starts, offset) - 1)
        while i < len(self.starts) and self.starts[i] < stop:
            s, d = self.starts[i], self.datas[i]
            lo, hi = max(s, offset), min(s + len(d), stop)
            if lo < hi:
                buf[lo - offset:hi - offset] = d[lo - s:hi - s]
            i += 1
        return bytes(buf)

    def truncate(self, size):
        """Clips the extents (and the last write) to `size`; the owner truncates the backing
        file itself. Returns the number of dirty bytes released."""
        before = self.dirty_bytes
        keep_s, keep_d = [], []
        for s, d in zip(self.starts, self.datas):
            if s >= size:
                self.dirty_bytes -= len(d)
                continue
            if s + len(d) > size:
                self.dirty_bytes -= s + len(d) - size
                del d[size - s:]
            keep_s.append(s)
            keep_d.append(d)
        self.starts, self.datas = keep_s, keep_d
        if self.last_write is not None:
            off, data = self.last_write
            self.last_write = (off, data[:max(0, size - off)]) if off < size else None
        return before - self.dirty_bytes

    def write_back(self):
        """Writes every extent to the backing file (no fsync); returns the bytes written."""
        n = 0
        for s, d in zip(self.starts, self.datas):
            view = memoryview(d)
            done = 0
            while done < len(d):
                done += os.pwrite(self.fd, view[done:], s + done)
            n += len(d)
        self.forget()
        return n

    def forget(self):
        """Drops every extent and the last write; returns the bytes dropped."""
        n = self.dirty_bytes
        self.starts, self.datas = [], []
        self.dirty_bytes = 0
        self.last_write = None
        self.dirty_since = None
        return n

    def tear(self, rng):
        """Power loss in "tear" mode: writes a random prefix (0 .. len-1 bytes, from `rng`) of
        the last unsynced write to the backing file and drops the rest of the cache. Returns
        (offset, bytes kept, bytes of the write) or None if there was no unsynced write."""
        lw = self.last_write
        self.forget()
        if lw is None or not lw[1]:
            return None
        off, data = lw
        kept = rng.randrange(len(data))
        if kept:
            os.pwrite(self.fd, data[:kept], off)
        return off, kept, len(data)


class CacheSet:
    """Every file's cache in one mount, under one bound on the dirty bytes."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.files = {}  # key (inode) -> FileCache with dirty data
        self.dirty_bytes = 0
        self.clock = 0  # orders files by when they became dirty
        self.stats = {"writes": 0, "writeBytes": 0, "fsyncs": 0, "syncedBytes": 0,
                      "writebacks": 0, "writebackBytes": 0, "peakDirtyBytes": 0}

    def write(self, key, fc, offset, data):
        """Caches a write to file `key`; then writes back the oldest dirty files while the
        cache is over its bound (never the file just written, unless it alone is over)."""
        grown = fc.write(offset, data)
        self.dirty_bytes += grown
        if fc.dirty_since is None and fc.dirty_bytes:
            self.clock += 1
            fc.dirty_since = self.clock
        self.files[key] = fc
        self.stats["writes"] += 1
        self.stats["writeBytes"] += len(data)
        self.stats["peakDirtyBytes"] = max(self.stats["peakDirtyBytes"], self.dirty_bytes)
        self.enforce_bound(spare=key)

    def enforce_bound(self, spare=None):
        while self.dirty_bytes > self.max_bytes and self.files:
            oldest = sorted(self.files, key=lambda k: (k == spare, self.files[k].dirty_since))
            key = oldest[0]
            n = self.files.pop(key).write_back()
            self.dirty_bytes -= n
            self.stats["writebacks"] += 1
            self.stats["writebackBytes"] += n

    def truncate(self, key, fc, size):
        self.dirty_bytes -= fc.truncate(size)
        if not fc.dirty_bytes:
            self.files.pop(key, None)
            fc.dirty_since = None

    def fsync(self, key, fc, datasync=False):
        """Writes the file's extents to its backing file and fsyncs (or fdatasyncs) it."""
        n = fc.write_back()
        self.files.pop(key, None)
        self.dirty_bytes -= n
        (os.fdatasync if datasync else os.fsync)(fc.fd)
        self.stats["fsyncs"] += 1
        self.stats["syncedBytes"] += n

    def drop(self, key):
        """Forgets a file's dirty data (the file is gone: unlinked and closed)."""
        fc = self.files.pop(key, None)
        if fc is not None:
            self.dirty_bytes -= fc.forget()

    def sync_all(self):
        """What a clean unmount does: every file written back and fsynced."""
        for key in list(self.files):
            self.fsync(key, self.files[key])

    def power_loss(self, rng=None):
        """Drops every unsynced write; with `rng` ("tear" mode) a random prefix of each file's
        last unsynced write survives. Returns {"droppedBytes", "droppedFiles", "torn": [...]}
        with torn entries (key, offset, bytes kept, bytes of the write)."""
        out = {"droppedBytes": self.dirty_bytes, "droppedFiles": len(self.files), "torn": []}
        for key in sorted(self.files):
            fc = self.files[key]
            if rng is None:
                fc.forget()
            else:
                t = fc.tear(rng)
                if t is not None:
                    out["torn"].append((key,) + t)
        self.files.clear()
        self.dirty_bytes = 0
        return out
