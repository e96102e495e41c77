"""The watch workload: a watcher of the set workload's prefix from revision 1, through the same
faulty network and nodes as the writers. It keeps one watch open on some node and, when the
watch breaks (a killed or paused node, a partition, a node that stops serving), opens it again
on another node from where it stopped (PROTOCOL.md "Watch": completeThrough + 1, skipping the
keys of a split entry it already has). At the end it drains until it has seen every change up
to a target revision, then records what it saw as one `watch` op for the checker
(`checker.check_watches`): every committed append exactly once, in order, nothing else.
"""

import random
import socket
import threading
import time

from fauna import codec
from fauna import wire as fw
from fauna.errors import ProtocolError

from . import wire
from .cluster import client_port, node_number
from .workload import SET_PREFIX


class Watcher(threading.Thread):
    def __init__(self, proc, names, history, seed, prefix=SET_PREFIX):
        super().__init__(name=f"watcher-{proc}", daemon=True)
        self.proc = proc
        self.names = list(names)
        self.history = history
        self.rng = random.Random(seed)
        self.prefix = prefix.encode()
        self.events = []  # [revision, key, kind]
        self.next_rev = 1
        self.skip_key = None  # keys of revision next_rev up to this one were seen
        self.through = 0
        self.resumes = 0
        self.problems = []
        self.target = None  # set by the runner: drain until through >= target
        self.finish = threading.Event()
        self.done = threading.Event()
        self.error = None

    def stop(self, target):
        self.target = target
        self.finish.set()

    def reached(self):
        return self.target is not None and self.through >= self.target

    def run(self):
        try:
            cursor = self.rng.randrange(len(self.names))
            while not self.reached():
                if self.finish.is_set() and self.finish_deadline_passed():
                    self.problems.append(f"did not reach revision {self.target} in time (through {self.through})")
                    break
                name = self.names[cursor % len(self.names)]
                cursor += 1
                self.watch_on(name)
                if not self.reached():
                    self.resumes += 1
                    time.sleep(self.rng.uniform(0.05, 0.3))
        except Exception:  # recorded; the harness reports it as a harness failure
            import traceback
            self.error = traceback.format_exc()
        finally:
            self.history.record({
                "proc": self.proc, "f": "watch", "key": self.prefix.decode(), "invoke": 0.0,
                "complete": self.history.now(), "outcome": "ok" if self.reached() else "fail",
                "result": {"events": self.events, "through": self.through, "target": self.target,
                           "resumes": self.resumes, "problems": self.problems[-10:]},
            })
            self.done.set()

    def finish_deadline_passed(self):
        if not hasattr(self, "_deadline"):
            self._deadline = time.monotonic() + 30.0
        return time.monotonic() > self._deadline

    def watch_on(self, name):
        """One watch on `name` until it breaks or the target is reached."""
        try:
            # TLS in a secured run (wire.use_tls); a failed handshake is a node not reached.
            sock = wire.open_socket("127.0.0.1", client_port(node_number(name)), timeout=1.0)
        except OSError as e:
            if wire.tls_context() is not None and not isinstance(e, (socket.timeout, ConnectionRefusedError)):
                self.problems.append(f"{name}: connect: {type(e).__name__}: {e}")
            return
        try:
            sock.settimeout(0.5)
            # Progress notifications: the last changes to the prefix may be followed by entries
            # that touch other keys only; progress moves completeThrough past them.
            body = fw.encode_watch_request(fw.KeyRange.prefix(self.prefix), self.next_rev, fw.WATCH_PROGRESS)
            sock.sendall(codec.frame(fw.Kind.WATCH, 1, body))
            decoder = codec.FrameDecoder()
            quiet_since = time.monotonic()
            while not self.reached():
                if self.finish.is_set() and self.finish_deadline_passed():
                    return
                try:
                    data = sock.recv(1 << 16)
                except socket.timeout:
                    # A node cut off (paused, partitioned) sends nothing, not even the progress
                    # notification due every 5 s: move on after 8 s.
                    if time.monotonic() - quiet_since > 8.0:
                        return
                    continue
                if not data:
                    return
                quiet_since = time.monotonic()
                for f in decoder.feed(data):
                    if f.kind == fw.Kind.ERROR or f.kind != fw.Kind.WATCH_RESPONSE:
                        return
                    if not self.take(fw.decode_watch_response(f.body)):
                        return
        except (OSError, ProtocolError) as e:
            self.problems.append(f"{name}: {e}")
        finally:
            wire.close_socket(sock)

    def take(self, response):
        """Applies one frame; False when the stream ended."""
        kind = response[0]
        if kind == "events":
            _, through, events = response
            for e in events:
                if e.revision < self.next_rev:
                    continue
                if e.revision == self.next_rev and self.skip_key is not None and e.key <= self.skip_key:
                    continue
                self.events.append([e.revision, e.key.decode("utf-8", "replace"), e.kind])
            last = events[-1]
            if last.revision > through:
                self.next_rev, self.skip_key = last.revision, last.key
            else:
                self.next_rev, self.skip_key = max(self.next_rev, through + 1), None
            self.through = max(self.through, through)
            return True
        if kind == "progress":
            if response[1] + 1 >= self.next_rev:
                self.next_rev, self.skip_key = response[1] + 1, None
                self.through = max(self.through, response[1])
            return True
        if kind == "created":
            return True
        if kind == "compacted":
            self.problems.append(f"compacted: first revision kept {response[1]}, wanted {self.next_rev}")
        return False
