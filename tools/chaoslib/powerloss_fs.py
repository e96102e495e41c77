#!/usr/bin/python3
"""A FUSE filesystem that loses every write not fsynced when the power goes.

    /usr/bin/python3 tools/chaoslib/powerloss_fs.py --backing DIR --mount DIR [--cache-max-bytes N]

A passthrough over the backing directory DIR (docs/CHAOS.md "Power loss"). File data written
through the mount stays in this process's own page cache (`powerloss_cache.py`): reads through
the mount see it, the backing file does not, until an fsync or fdatasync of that file writes it
there and fsyncs the backing file. Everything else — create, mkdir, unlink, rmdir, rename, link,
symlink, truncate, chmod, chown, utimes — goes straight to the backing directory: those are
modelled as durable at once. When the dirty bytes exceed --cache-max-bytes (256 MiB), the files
dirty the longest are written to their backing files without fsync.

Needs Debian's python3-pyfuse3 (hence /usr/bin/python3), /dev/fuse and root (the mount).

Control: JSON lines on stdin, one JSON answer per line on stdout. After mounting it prints
{"ready": true, "pid": N}. Commands:
  {"op": "stats"}                        counters and the bytes dirty now
  {"op": "sync"}                         every file written back and fsynced (as sync(1))
  {"op": "power-loss", "tear": B, "seed": S}
                                         every unsynced write is dropped; with "tear" a random
                                         prefix (seeded by S) of each file's last unsynced write
                                         survives. Then the mount is undone (lazily, so the
                                         kernel's page cache of the mount goes with it) and the
                                         process exits; the answer says what was lost.
  {"op": "unmount"}, end of stdin, SIGTERM or SIGINT
                                         a clean unmount: everything synced first, then exit 0.
A power loss must come after every process using the mount is dead (the harness SIGKILLs the
node first); a new mount on the same backing directory is the machine coming back.
"""

import argparse
import ctypes
import errno
import faulthandler
import json
import os
import random
import signal
import stat
import sys
import time

import pyfuse3
import trio

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from chaoslib.powerloss_cache import CacheSet, FileCache  # noqa: E402

DEFAULT_CACHE_MAX_BYTES = 256 << 20
ATTR_TIMEOUT_S = 1.0  # only this process changes the backing directory while it is mounted
_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100


def fuse_error(e):
    """An OSError as the FUSEError the kernel gets (its errno, EIO if it has none)."""
    return pyfuse3.FUSEError(e.errno or errno.EIO)


class Inode:
    """What the filesystem knows of one backing inode: the paths (relative to the backing
    root) that name it, its open handles, and for regular files a read-write descriptor of
    the backing file and its cache (while open or dirty)."""

    def __init__(self, ino):
        self.ino = ino
        self.paths = set()
        self.handles = 0
        self.cache = None  # FileCache, with the backing descriptor in cache.fd

    def path(self):
        if not self.paths:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return min(self.paths)


class PowerLossFS(pyfuse3.Operations):
    def __init__(self, backing, cache_max_bytes):
        super().__init__()
        self.backing = os.path.abspath(backing)
        self.caches = CacheSet(cache_max_bytes)
        self.inodes = {}  # FUSE inode number -> Inode
        self.handles = {}  # file handle -> FUSE inode number
        self.dir_handles = {}  # directory handle -> (FUSE inode number, entries)
        self.next_fh = 1
        self.dead = False  # after a power loss: refuse everything still queued
        st = os.lstat(self.backing)
        self.root_backing_ino = st.st_ino
        root = self.inode_for(st.st_ino)
        root.paths.add("")

    # --- inode numbers and paths ---------------------------------------------------------
    # A FUSE inode number is the backing inode number, except that the backing root is
    # ROOT_INODE (and a backing inode numbered ROOT_INODE, if any, takes the root's number).

    def fuse_ino(self, backing_ino):
        if backing_ino == self.root_backing_ino:
            return pyfuse3.ROOT_INODE
        if backing_ino == pyfuse3.ROOT_INODE:
            return self.root_backing_ino
        return backing_ino

    def inode_for(self, backing_ino):
        ino = self.fuse_ino(backing_ino)
        node = self.inodes.get(ino)
        if node is None:
            node = self.inodes[ino] = Inode(ino)
        return node

    def full(self, rel):
        return os.path.join(self.backing, rel) if rel else self.backing

    def node(self, ino):
        if self.dead:
            raise pyfuse3.FUSEError(errno.EIO)
        node = self.inodes.get(ino)
        if node is None:
            raise pyfuse3.FUSEError(errno.ESTALE)
        return node

    def child(self, parent_ino, name):
        """The relative path of `name` in directory `parent_ino`."""
        name = os.fsdecode(name)
        if "/" in name or name in (".", ".."):
            raise pyfuse3.FUSEError(errno.EINVAL)
        base = self.node(parent_ino).path()
        return os.path.join(base, name) if base else name

    def forget_path(self, rel):
        """`rel` no longer names what it named (unlinked, or replaced by a rename)."""
        for node in list(self.inodes.values()):
            if rel in node.paths:
                node.paths.discard(rel)
                self.maybe_retire(node)

    def maybe_retire(self, node):
        """An inode with no name and no open handle is gone, and so is its cached data."""
        if node.paths or node.handles or node.ino == pyfuse3.ROOT_INODE:
            return
        if node.cache is not None:
            self.caches.drop(node.ino)
            os.close(node.cache.fd)
            node.cache = None
        del self.inodes[node.ino]

    def entry(self, rel, st=None):
        """EntryAttributes of the backing path `rel` (registering the path with its inode),
        with the size readers of the mount see."""
        try:
            st = st or os.lstat(self.full(rel))
        except OSError as e:
            raise fuse_error(e)
        node = self.inode_for(st.st_ino)
        node.paths.add(rel)
        return self.attrs(node, st)

    def attrs(self, node, st):
        a = pyfuse3.EntryAttributes()
        a.st_ino = node.ino
        a.generation = 0
        a.entry_timeout = ATTR_TIMEOUT_S
        a.attr_timeout = ATTR_TIMEOUT_S
        a.st_mode = st.st_mode
        a.st_nlink = st.st_nlink
        a.st_uid = st.st_uid
        a.st_gid = st.st_gid
        a.st_rdev = st.st_rdev
        a.st_size = node.cache.size(st.st_size) if node.cache is not None else st.st_size
        a.st_blksize = st.st_blksize
        a.st_blocks = max(st.st_blocks, (a.st_size + 511) // 512)
        a.st_atime_ns = st.st_atime_ns
        a.st_mtime_ns = st.st_mtime_ns
        a.st_ctime_ns = st.st_ctime_ns
        return a

    def stat_node(self, node):
        if node.cache is not None:
            return os.fstat(node.cache.fd)
        return os.lstat(self.full(node.path()))

    def file_cache(self, node):
        """The inode's cache, opening its backing file read-write on first use."""
        if node.cache is None:
            fd = os.open(self.full(node.path()), os.O_RDWR | os.O_CLOEXEC)
            node.cache = FileCache(fd)
        return node.cache

    def close_if_idle(self, node):
        """Closes the backing descriptor of a file no longer open and with nothing dirty."""
        if node.cache is not None and not node.handles and not node.cache.dirty_bytes:
            os.close(node.cache.fd)
            node.cache = None
        self.maybe_retire(node)

    # --- metadata: straight to the backing directory ---------------------------------------

    async def lookup(self, parent_inode, name, ctx=None):
        return self.entry(self.child(parent_inode, name))

    async def forget(self, inode_list):
        pass  # inodes are kept while a backing path names them (see maybe_retire)

    async def getattr(self, inode, ctx=None):
        node = self.node(inode)
        try:
            return self.attrs(node, self.stat_node(node))
        except OSError as e:
            raise fuse_error(e)

    async def setattr(self, inode, attr, fields, fh, ctx):
        node = self.node(inode)
        try:
            if fields.update_size:
                self.truncate(node, attr.st_size)
            target = node.cache.fd if node.cache is not None else self.full(node.path())
            if fields.update_mode:
                os.chmod(target, stat.S_IMODE(attr.st_mode))
            if fields.update_uid or fields.update_gid:
                os.chown(target, attr.st_uid if fields.update_uid else -1, attr.st_gid if fields.update_gid else -1)
            if fields.update_atime or fields.update_mtime:
                st = self.stat_node(node)
                os.utime(target, ns=(attr.st_atime_ns if fields.update_atime else st.st_atime_ns,
                                     attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns))
            return self.attrs(node, self.stat_node(node))
        except OSError as e:
            raise fuse_error(e)

    def truncate(self, node, size):
        """Truncates (or extends) the file now, on the disk too: truncation is metadata."""
        if node.cache is not None:
            self.caches.truncate(node.ino, node.cache, size)
            os.ftruncate(node.cache.fd, size)
        else:
            os.truncate(self.full(node.path()), size)

    def own(self, rel, ctx):
        """New entries belong to the caller, as on a local filesystem (we run as root)."""
        if ctx is not None and os.geteuid() == 0 and (ctx.uid or ctx.gid):
            os.lchown(self.full(rel), ctx.uid, ctx.gid)

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        rel = self.child(parent_inode, name)
        try:
            os.mknod(self.full(rel), mode & ~ctx.umask, rdev)
            self.own(rel, ctx)
        except OSError as e:
            raise fuse_error(e)
        return self.entry(rel)

    async def mkdir(self, parent_inode, name, mode, ctx):
        rel = self.child(parent_inode, name)
        try:
            os.mkdir(self.full(rel), mode & ~ctx.umask)
            self.own(rel, ctx)
        except OSError as e:
            raise fuse_error(e)
        return self.entry(rel)

    async def symlink(self, parent_inode, name, target, ctx):
        rel = self.child(parent_inode, name)
        try:
            os.symlink(os.fsdecode(target), self.full(rel))
            self.own(rel, ctx)
        except OSError as e:
            raise fuse_error(e)
        return self.entry(rel)

    async def readlink(self, inode, ctx):
        try:
            return os.fsencode(os.readlink(self.full(self.node(inode).path())))
        except OSError as e:
            raise fuse_error(e)

    async def unlink(self, parent_inode, name, ctx):
        rel = self.child(parent_inode, name)
        try:
            os.unlink(self.full(rel))
        except OSError as e:
            raise fuse_error(e)
        self.forget_path(rel)

    async def rmdir(self, parent_inode, name, ctx):
        rel = self.child(parent_inode, name)
        try:
            os.rmdir(self.full(rel))
        except OSError as e:
            raise fuse_error(e)
        self.forget_path(rel)

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        old, new = self.child(parent_inode_old, name_old), self.child(parent_inode_new, name_new)
        try:
            if flags:  # RENAME_NOREPLACE / RENAME_EXCHANGE: renameat2(2)
                if _libc.renameat2(AT_FDCWD, os.fsencode(self.full(old)), AT_FDCWD,
                                   os.fsencode(self.full(new)), ctypes.c_uint(flags)) != 0:
                    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            else:
                os.rename(self.full(old), self.full(new))
        except OSError as e:
            raise fuse_error(e)
        if flags & pyfuse3.RENAME_EXCHANGE:
            self.swap_paths(old, new)
        else:
            self.forget_path(new)
            self.move_paths(old, new)

    def move_paths(self, old, new):
        """After a rename: `old` (and, for a directory, every path below it) is now `new`."""
        prefix = old + "/"
        for node in self.inodes.values():
            moved = set()
            for p in node.paths:
                if p == old:
                    moved.add(new)
                elif p.startswith(prefix):
                    moved.add(new + "/" + p[len(prefix):])
                else:
                    moved.add(p)
            node.paths = moved

    def swap_paths(self, a, b):
        tmp = "\0swap"
        self.move_paths(a, tmp)
        self.move_paths(b, a)
        self.move_paths(tmp, b)

    async def link(self, inode, new_parent_inode, new_name, ctx):
        node = self.node(inode)
        rel = self.child(new_parent_inode, new_name)
        try:
            os.link(self.full(node.path()), self.full(rel), follow_symlinks=False)
        except OSError as e:
            raise fuse_error(e)
        return self.entry(rel)

    async def statfs(self, ctx):
        s = os.statvfs(self.backing)
        out = pyfuse3.StatvfsData()
        for f in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail",
                  "f_namemax"):
            setattr(out, f, getattr(s, f))
        return out

    async def access(self, inode, mode, ctx):
        return True  # the kernel checks permissions (default_permissions)

    # --- directories -----------------------------------------------------------------------

    async def opendir(self, inode, ctx):
        node = self.node(inode)
        fh = self.next_fh
        self.next_fh += 1
        self.dir_handles[fh] = (inode, None)
        node.handles += 1
        return fh

    async def readdir(self, fh, start_id, token):
        ino, entries = self.dir_handles[fh]
        node = self.node(ino)
        if entries is None or start_id == 0:  # one listing per pass, sorted: stable offsets
            try:
                entries = sorted(os.listdir(self.full(node.path())))
            except OSError as e:
                raise fuse_error(e)
            self.dir_handles[fh] = (ino, entries)
        base = node.path()
        for i in range(start_id, len(entries)):
            rel = os.path.join(base, entries[i]) if base else entries[i]
            try:
                attrs = self.entry(rel)
            except pyfuse3.FUSEError:
                continue  # gone since the listing
            if not pyfuse3.readdir_reply(token, os.fsencode(entries[i]), attrs, i + 1):
                break

    async def releasedir(self, fh):
        ino, _ = self.dir_handles.pop(fh)
        node = self.inodes.get(ino)
        if node is not None:
            node.handles -= 1
            self.maybe_retire(node)

    async def fsyncdir(self, fh, datasync):
        # Directory entries are durable at once in this model; the backing directory is
        # fsynced anyway, so the call costs what it costs on a real disk.
        ino, _ = self.dir_handles[fh]
        try:
            fd = os.open(self.full(self.node(ino).path()), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise fuse_error(e)

    # --- files -------------------------------------------------------------------------------

    def new_handle(self, node):
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = node.ino
        node.handles += 1
        fi = pyfuse3.FileInfo(fh=fh)
        fi.keep_cache = False  # the kernel drops its pages of the file at every open
        return fi

    async def open(self, inode, flags, ctx):
        node = self.node(inode)
        try:
            self.file_cache(node)
            if flags & os.O_TRUNC:  # libfuse 3 passes O_TRUNC to open (atomic_o_trunc)
                self.truncate(node, 0)
        except OSError as e:
            raise fuse_error(e)
        return self.new_handle(node)

    async def create(self, parent_inode, name, mode, flags, ctx):
        rel = self.child(parent_inode, name)
        try:
            existed = os.path.lexists(self.full(rel))
            fd = os.open(self.full(rel), os.O_RDWR | os.O_CREAT | (flags & os.O_EXCL) | os.O_CLOEXEC,
                         mode & ~ctx.umask)
            st = os.fstat(fd)
            if not existed:
                self.own(rel, ctx)
        except OSError as e:
            raise fuse_error(e)
        known = self.inodes.get(self.fuse_ino(st.st_ino))
        if known is not None and known.cache is not None:
            if known.paths:  # the file existed (no O_EXCL) and is cached: keep its cache
                os.close(fd)
                fd = None
            else:  # a reused inode number of a file that is gone: start afresh
                self.caches.drop(known.ino)
                os.close(known.cache.fd)
                known.cache = None
        attrs = self.entry(rel, st)
        node = self.inodes[attrs.st_ino]
        if fd is not None:
            node.cache = FileCache(fd)
        if flags & os.O_TRUNC:
            try:
                self.truncate(node, 0)
                attrs = self.attrs(node, os.fstat(node.cache.fd))
            except OSError as e:
                raise fuse_error(e)
        return self.new_handle(node), attrs

    def handle_node(self, fh):
        if self.dead:
            raise pyfuse3.FUSEError(errno.EIO)
        return self.inodes[self.handles[fh]]

    async def read(self, fh, off, size):
        try:
            return self.handle_node(fh).cache.read(off, size)
        except OSError as e:
            raise fuse_error(e)

    async def write(self, fh, off, buf):
        node = self.handle_node(fh)
        try:
            self.caches.write(node.ino, node.cache, off, buf)
        except OSError as e:
            raise fuse_error(e)
        return len(buf)

    async def flush(self, fh):
        pass  # close(2) makes nothing durable

    async def fsync(self, fh, datasync):
        node = self.handle_node(fh)
        try:
            self.caches.fsync(node.ino, node.cache, datasync=bool(datasync))
        except OSError as e:
            raise fuse_error(e)

    async def release(self, fh):
        ino = self.handles.pop(fh)
        node = self.inodes.get(ino)
        if node is not None:
            node.handles -= 1
            self.close_if_idle(node)

    # --- control -----------------------------------------------------------------------------

    def stats(self):
        return dict(self.caches.stats, dirtyBytes=self.caches.dirty_bytes, dirtyFiles=len(self.caches.files),
                    cacheMaxBytes=self.caches.max_bytes)

    def sync_all(self):
        self.caches.sync_all()

    def power_loss(self, tear, seed):
        """Drops every unsynced write (tearing each file's last one in "tear" mode)."""
        self.dead = True
        paths = {n.ino: (n.path() if n.paths else "(unlinked)") for n in self.inodes.values()}
        out = self.caches.power_loss(random.Random(seed) if tear else None)
        out["torn"] = [{"path": paths.get(k, "?"), "offset": off, "kept": kept, "of": n}
                       for k, off, kept, n in out["torn"]]
        out["tear"] = bool(tear)
        return out


def say(msg):
    """A line in the filesystem's log (its stderr) for the record of a run."""
    print(f"{time.time():.3f} powerloss_fs[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def answer(obj):
    try:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the harness is gone; nobody to tell
        pass


async def control(fs, outcome):
    """Reads commands from stdin until a power loss or an unmount; then ends the FUSE loop."""
    stream = trio.lowlevel.FdStream(os.dup(0))
    pending = b""
    try:
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break  # end of stdin (the harness is gone): a clean unmount
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if not line.strip():
                    continue
                try:
                    cmd = json.loads(line)
                except json.JSONDecodeError as e:
                    answer({"error": f"bad command: {e}"})
                    continue
                op = cmd.get("op")
                if op == "stats":
                    answer(fs.stats())
                elif op == "sync":
                    fs.sync_all()
                    answer(dict(fs.stats(), ok=True))
                elif op == "power-loss":
                    before = fs.stats()
                    outcome["powerLoss"] = dict(fs.power_loss(cmd.get("tear", False), cmd.get("seed", 0)),
                                                before=before)
                    say(f"power loss: dropped {outcome['powerLoss']['droppedBytes']} bytes in "
                        f"{outcome['powerLoss']['droppedFiles']} files, tore {len(outcome['powerLoss']['torn'])}; "
                        "unmounting")
                    return
                elif op == "unmount":
                    return
                else:
                    answer({"error": f"unknown op {op!r}"})
    finally:
        await stream.aclose()
        pyfuse3.terminate()


async def signals():
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as it:
        async for _ in it:
            pyfuse3.terminate()
            return


async def serve(fs, outcome):
    async with trio.open_nursery() as nursery:
        nursery.start_soon(control, fs, outcome)
        nursery.start_soon(signals)
        answer({"ready": True, "pid": os.getpid()})
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backing", required=True, help="directory that holds the data (\"the disk\")")
    p.add_argument("--mount", required=True, help="mount point")
    p.add_argument("--cache-max-bytes", type=int, default=DEFAULT_CACHE_MAX_BYTES,
                   help="bound on unsynced bytes held (default 256 MiB); over it the oldest dirty files "
                        "are written back without fsync")
    a = p.parse_args()
    os.umask(0)  # modes arrive with the caller's umask applied
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the harness asks for a stack if we hang
    fs = PowerLossFS(a.backing, a.cache_max_bytes)
    options = set(pyfuse3.default_options)
    options |= {"fsname=powerloss", "subtype=powerloss"}
    try:
        pyfuse3.init(fs, a.mount, options)
    except RuntimeError as e:
        answer({"error": f"mount on {a.mount} failed: {e}"})
        return 1
    outcome = {}
    try:
        trio.run(serve, fs, outcome)
    finally:
        if "powerLoss" not in outcome:
            fs.sync_all()  # a clean unmount writes everything back, as umount(8) does
        pyfuse3.close(unmount=True)  # as root: umount2(MNT_DETACH)
        say("unmounted")
    answer(dict(outcome.get("powerLoss", {}), unmounted=True, stats=fs.stats()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
