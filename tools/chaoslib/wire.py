"""What the chaos harness needs of Fauna's protocol, on top of the Python client package
(clients/python, `fauna`): its codecs and connections, with the harness's dict shapes for
results (the history files and the checker read those).

In a secured run (`tools/chaos --tls`) the runner sets `use_tls(context)` for the run: every
connection the harness opens to a client port (`Connection`, `open_socket`) then speaks TLS
with that context (chaoslib.tls.client_context: the run's CA, the client certificate).
"""

import socket
import ssl

from fauna import audit as fauna_audit, codec, errors
from fauna import wire as fw
from fauna.config import ClientConfig
from fauna.errors import ProtocolError, ServerError  # noqa: F401  (re-exported for the harness)
from fauna.pool import Connection as _PooledConnection
from fauna.tls import ClientTLS
from fauna.wire import Endpoint, KeyRange, Kind

KIND_WRITE = Kind.WRITE
KIND_READ = Kind.READ
KIND_STATUS = Kind.STATUS
KIND_JOURNAL_ENTRY = Kind.JOURNAL_ENTRY
KIND_WRITE_RESPONSE = Kind.WRITE_RESPONSE
KIND_READ_RESPONSE = Kind.READ_RESPONSE
KIND_STATUS_RESPONSE = Kind.STATUS_RESPONSE
KIND_JOURNAL_ENTRY_RESPONSE = Kind.JOURNAL_ENTRY_RESPONSE
KIND_ERROR = Kind.ERROR

ERR_NOT_LEADER = errors.NotLeader.code
ERR_UNAVAILABLE = errors.Unavailable.code
ERR_OVERLOADED = errors.Overloaded.code
ERR_INVALID_REQUEST = errors.InvalidRequest.code

OUTCOMES = {0: "success", 1: "alreadyExists", 2: "compacted", 3: "futureRevision", 4: "invalid",
            5: "sessionExpired"}


# --- commands --------------------------------------------------------------------------------

single = KeyRange.single
prefix_range = KeyRange.prefix


def put_cmd(key: bytes, value: bytes, if_absent=False, lease=0) -> fw.Put:
    return fw.Put(key, value, if_absent, lease=lease)


def lease_grant_cmd(ttl_s: int) -> fw.LeaseGrant:
    return fw.LeaseGrant(ttl_s)


KIND_LEASE_KEEP_ALIVE = Kind.LEASE_KEEP_ALIVE
KIND_LEASE_KEEP_ALIVE_RESPONSE = Kind.LEASE_KEEP_ALIVE_RESPONSE
ERR_LEASE_NOT_FOUND = errors.LeaseNotFound.code
INVALID_LEASE_NOT_FOUND = 6  # KV-COMMANDS.md invalid outcome codes
encode_lease_keep_alive = fw.encode_lease_keep_alive
decode_lease_keep_alive_response = fw.decode_lease_keep_alive_response


def op_put(key: bytes, value: bytes) -> fw.Put:
    return fw.Put(key, value)


def op_get(key: bytes) -> fw.RangeRequest:
    return fw.RangeRequest(KeyRange.single(key))


def txn_cmd(compares, success, failure) -> fw.Txn:
    """compares: [(key, expected value)] as `value(key) = expected`; ops: op_put / op_get."""
    return fw.Txn([fw.value(k) == v for k, v in compares], list(success), list(failure))


def proposal(command, client_id: int, sequence: int) -> bytes:
    return fw.Proposal(command, client_id, sequence).encode()


def read_request(r: KeyRange, linearizable=True, limit=None) -> bytes:
    return fw.ReadRequest(fw.RangeRequest(r, limit), serializable=not linearizable).encode()


# --- answers, as the harness's dicts ---------------------------------------------------------

def _record(r: fw.Record) -> dict:
    return {"key": r.key, "value": r.value, "create": r.create_revision, "mod": r.mod_revision, "version": r.version}


def _range(r: fw.RangeResult) -> dict:
    return {"count": r.count, "hasMore": r.more, "revision": r.revision, "records": [_record(x) for x in r.records]}


def parse_range_result(body: bytes) -> dict:
    return _range(fw.decode_range_result(body))


def parse_apply_result(body: bytes) -> dict:
    res = fw.decode_apply_result(body)
    out = {"revision": res.revision, "isReplay": res.is_replay, "outcome": OUTCOMES[res.outcome]}
    if res.outcome == fw.Outcome.SUCCESS:
        out["succeeded"] = res.succeeded
        ops = []
        for r in res.results:
            if isinstance(r, fw.PutOpResult):
                ops.append({"op": "put", "previous": None if r.previous is None else _record(r.previous)})
            elif isinstance(r, fw.DeleteOpResult):
                ops.append({"op": "del", "deleted": r.deleted, "records": [_record(x) for x in r.previous]})
            elif isinstance(r, fw.LeaseOpResult):
                ops.append({"op": "lease", "id": r.id, "ttl": r.ttl})
            else:
                ops.append({"op": "range", **_range(r)})
        out["results"] = ops
    elif res.outcome == fw.Outcome.INVALID:
        out["invalidCode"] = res.invalid_code
    return out


def parse_error(body: bytes) -> ServerError:
    """The error answer as fauna's ServerError (`.code`, `.code_name`, `.message`,
    `.leader_address` (host, port) or None)."""
    return fw.decode_error(body)


def parse_status(body: bytes) -> dict:
    st = fw.decode_status(body)
    return {"id": st.node_id, "role": st.role, "isLearner": st.is_learner, "term": st.term, "leader": st.leader,
            "commitIndex": st.commit_index, "appliedIndex": st.applied_index, "treeSize": st.tree_size,
            "dbSizeBytes": st.db_size_bytes}


# --- a connection ---------------------------------------------------------------------------

_TLS = None  # the ssl.SSLContext of the current run's client connections; None: plaintext


def use_tls(context):
    """Every connection opened from now on speaks TLS with `context` (None: plaintext)."""
    global _TLS
    _TLS = context


def tls_context():
    return _TLS


def open_socket(host: str, port: int, timeout: float) -> socket.socket:
    """A connected socket to a client port, TLS (handshake done) when `use_tls` set a context.
    The connect and the handshake are bounded by `timeout` each. Raises OSError (ssl.SSLError
    is one): a refused or failed handshake is retried like a refused connection, and reported
    by the node's status check (cluster.Cluster.status) when nothing answers."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if _TLS is None:
            return sock
        tls = _TLS.wrap_socket(sock, server_side=False, do_handshake_on_connect=False)
        sock = tls
        tls.settimeout(timeout)
        tls.do_handshake()
        return tls
    except BaseException:
        sock.close()
        raise


def close_socket(sock):
    """Closes a socket of `open_socket`; a TLS one after sending close_notify, without waiting
    for the node's (a node logs a TLS connection closed without it as a failed session)."""
    if isinstance(sock, ssl.SSLSocket):
        try:
            sock.settimeout(0.0)
            sock.unwrap()
        except (OSError, ValueError):  # SSLWantReadError: close_notify sent, the answer not awaited
            pass
    sock.close()


class Connection:
    """One connection to a node's client port (fauna.pool.Connection, with TLS after
    `use_tls`), closed after any failure.

    Raises OSError subclasses (fauna's ConnectionFailed / ConnectionLost / RequestTimeout are
    ConnectionError / TimeoutError; a refused TLS handshake becomes a ConnectionError) or ProtocolError, as the harness expects.
    """

    def __init__(self, host: str, port: int, connect_timeout: float = 1.0):
        self.address = (host, port)
        self._conn = _PooledConnection(Endpoint(host, port), ClientConfig(connect_timeout=connect_timeout),
                                       connect_timeout, tls=None if _TLS is None else ClientTLS.of(_TLS))

    def close(self):
        self._conn.close()

    def request(self, kind: int, body: bytes, timeout: float):
        """Sends one request; returns (kind, body) of its answer."""
        try:
            return self._conn.call(kind, body, timeout)
        except errors.TLSError as e:
            # A refused handshake is, to the harness, a node not reached (as an ssl.SSLError
            # of a raw socket would be): an OSError.
            self.close()
            raise ConnectionError(str(e)) from e
        except BaseException:
            self.close()
            raise


# --- the journal -----------------------------------------------------------------------------

def proposal_session(payload: bytes):
    """The (client ID, sequence) of a KV proposal payload (KV-COMMANDS.md), or None for a
    proposal without a session, an empty payload (a leader's no-op) or one that does not parse."""
    try:
        p = fw.decode_proposal(payload)
    except ProtocolError:
        return None
    return None if p.client_id is None else (p.client_id, p.sequence)


def parse_journal_entry(body: bytes):
    """PROTOCOL.md journalEntryResponse: (index, term, type, payload)."""
    e = fauna_audit.decode_journal_entry(body)
    return e.index, e.term, e.type, e.payload


def committed_sessions(conn: Connection, last_index: int, timeout: float = 5.0):
    """Reads journal entries 1..last_index from one node; returns {(client ID, sequence):
    first revision} for every normal entry that carries a session. A session that appears
    twice (a retry proposed again) was applied once, at its first revision."""
    out = {}
    for index in range(1, last_index + 1):
        kind, body = conn.request(KIND_JOURNAL_ENTRY, codec.varint(index), timeout)
        if kind == KIND_ERROR:
            raise parse_error(body)
        if kind != KIND_JOURNAL_ENTRY_RESPONSE:
            raise ProtocolError(f"journal entry {index}: answer kind {kind:#x}")
        got, _term, etype, payload = parse_journal_entry(body)
        if got != index:
            raise ProtocolError(f"asked for journal entry {index}, got {got}")
        session = proposal_session(payload) if etype == 0 else None
        if session is not None and session not in out:
            out[session] = index
    return out
