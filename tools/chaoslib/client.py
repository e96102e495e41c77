"""A chaos-harness client: leader discovery, exactly-once write retries, outcome classification.

Each operation ends as one of:

- `ok`: an answer arrived (for a write: a `writeResponse`, possibly a replay of an earlier
  attempt: sessions make retries exactly-once);
- `fail`: it certainly had no effect: every attempt was refused before anything was proposed
  (connection refused, `notLeader`, `overloaded`, `invalidRequest`, `unavailable` for a
  leadership transfer), or it is a read (reads have no effect, so a read without an answer is
  simply not a read);
- `unknown`: some attempt may have been proposed (timeout, connection lost after sending,
  `timeout`, `unavailable` for a node stopping or installing a snapshot, `internalError`) and
  no later attempt got an answer. The write may or may not have committed.
"""

import random
import socket
import time

from . import cluster as cl
from . import wire

# `unavailable` answers that come before the write is proposed (NodeCore+Requests.swift).
DEFINITE_UNAVAILABLE = ("leadership is being transferred",)


class Client:
    def __init__(self, names, rng: random.Random, attempt_timeout_s=1.0):
        self.names = list(names)
        self.by_port = {cl.client_port(cl.node_number(n)): n for n in self.names}
        self.rng = rng
        self.client_id = rng.getrandbits(64) or 1
        self.sequence = 0
        self.leader = None
        self.conns = {}
        self.attempt_timeout_s = attempt_timeout_s

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns = {}

    def _conn(self, name):
        c = self.conns.get(name)
        if c is None:
            c = wire.Connection("127.0.0.1", cl.client_port(cl.node_number(name)), connect_timeout=0.5)
            self.conns[name] = c
        return c

    def _target(self):
        if self.leader in self.names:
            return self.leader
        return self.rng.choice(self.names)

    def _backoff(self, attempt, deadline):
        pause = min(0.5, 0.02 * (2 ** min(attempt, 5))) * self.rng.uniform(0.5, 1.0)
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))

    def _attempt(self, name, kind, body, deadline, notes):
        """One request to node `name`: its answer (kind, body), or None when the connection
        failed (noted; the connection is dropped and the leader forgotten)."""
        try:
            conn = self._conn(name)
            return conn.request(kind, body, min(self.attempt_timeout_s, max(0.05, deadline - time.monotonic())))
        except (OSError, wire.ProtocolError) as e:
            self.conns.pop(name, None)
            notes.append(f"{name}:{type(e).__name__}")
            self.leader = None
            return None

    def _follow_hint(self, err):
        if err.leader_address and err.leader_address[1] in self.by_port:
            self.leader = self.by_port[err.leader_address[1]]
        else:
            self.leader = None

    def write(self, command: bytes, timeout_s: float):
        """One write with a fresh session sequence, retried until timeout_s.
        Returns (outcome, apply result or None, notes)."""
        self.sequence += 1
        body = wire.proposal(command, self.client_id, self.sequence)
        deadline = time.monotonic() + timeout_s
        ambiguous = False
        notes = []
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            name = self._target()
            try:
                conn = self._conn(name)
            except OSError:
                self.leader = None
                self._backoff(attempt, deadline)
                continue
            try:
                kind, answer = conn.request(wire.KIND_WRITE, body, min(self.attempt_timeout_s, max(0.05, deadline - time.monotonic())))
            except (OSError, wire.ProtocolError) as e:
                self.conns.pop(name, None)
                ambiguous = True
                notes.append(f"{name}:{type(e).__name__}")
                self.leader = None
                self._backoff(attempt, deadline)
                continue
            if kind == wire.KIND_WRITE_RESPONSE:
                res = wire.parse_apply_result(answer)
                res["node"] = name
                if res["outcome"] == "sessionExpired":
                    notes.append("sessionExpired")  # cannot happen with one session per client
                    return "unknown", res, notes
                if res["outcome"] != "success":
                    return "fail", res, notes  # a domain outcome: nothing written
                return "ok", res, notes
            if kind != wire.KIND_ERROR:
                notes.append(f"{name}:kind{kind:#x}")
                ambiguous = True
                self.conns.pop(name, None)
                conn.close()
                continue
            err = wire.parse_error(answer)
            notes.append(f"{name}:{err.code_name}")
            if err.code == wire.ERR_NOT_LEADER:
                self._follow_hint(err)
                if self.leader == name:
                    self.leader = None
                if self.leader is None:
                    self._backoff(attempt, deadline)
            elif err.code in (wire.ERR_OVERLOADED, wire.ERR_INVALID_REQUEST) or (
                    err.code == wire.ERR_UNAVAILABLE and any(s in err.message for s in DEFINITE_UNAVAILABLE)):
                self._backoff(attempt, deadline)
            else:
                ambiguous = True
                self.leader = None
                self._backoff(attempt, deadline)
        return ("unknown" if ambiguous else "fail"), None, notes

    def read(self, key_range, timeout_s: float, limit=None):
        """A linearizable read, retried until timeout_s; (outcome ok/fail, RangeResult or None, notes)."""
        body = wire.read_request(key_range, linearizable=True, limit=limit)
        deadline = time.monotonic() + timeout_s
        notes = []
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            # Any node serves linearizable reads (ReadIndex, forwarded by followers): spread
            # them, so a node that answers from stale local state is asked too.
            name = self.rng.choice(self.names)
            answered = self._attempt(name, wire.KIND_READ, body, deadline, notes)
            if answered is None:
                self._backoff(attempt, deadline)
                continue
            kind, answer = answered
            if kind == wire.KIND_READ_RESPONSE:
                res = wire.parse_range_result(answer)
                res["node"] = name
                return "ok", res, notes
            if kind == wire.KIND_ERROR:
                err = wire.parse_error(answer)
                notes.append(f"{name}:{err.code_name}")
            else:
                self.conns.pop(name, None)
                conn.close()
            self._backoff(attempt, deadline)
        return "fail", None, notes

    def keep_alive(self, lease_id: int, timeout_s: float):
        """One lease keep-alive at the leader, retried until timeout_s. Returns (outcome, TTL or
        None, notes): `ok` renewed (the leader confirmed its leadership after receiving it),
        `gone` the leader says the lease does not exist (revoked or expired), `fail` no answer
        that says either (a renewal may still have happened: that only lengthens the lease)."""
        body = wire.encode_lease_keep_alive(lease_id)
        deadline = time.monotonic() + timeout_s
        notes = []
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            name = self._target()
            answered = self._attempt(name, wire.KIND_LEASE_KEEP_ALIVE, body, deadline, notes)
            if answered is None:
                self._backoff(attempt, deadline)
                continue
            kind, answer = answered
            if kind == wire.KIND_LEASE_KEEP_ALIVE_RESPONSE:
                self.leader = name
                _, ttl = wire.decode_lease_keep_alive_response(answer)
                return "ok", ttl, notes
            if kind != wire.KIND_ERROR:
                notes.append(f"{name}:kind{kind:#x}")
                self.conns.pop(name, None)
                conn.close()
                continue
            err = wire.parse_error(answer)
            notes.append(f"{name}:{err.code_name}")
            if err.code == wire.ERR_LEASE_NOT_FOUND:
                return "gone", None, notes
            if err.code == wire.ERR_NOT_LEADER:
                self._follow_hint(err)
                if self.leader == name:
                    self.leader = None
            else:
                self.leader = None
            self._backoff(attempt, deadline)
        return "fail", None, notes
