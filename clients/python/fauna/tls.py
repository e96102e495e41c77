"""TLS to a cluster's client ports (docs/SECURITY.md): what the client trusts and presents, the
handshake, and how a TLS failure is told apart from a passing network fault.

A node's client port takes TLS 1.3 only. The client verifies the node's certificate against the
cluster's CA, and nothing else: not the host name (nodes are often reached by address, and the
CA is the cluster's own). A client certificate is optional; when presented, the node verifies
it against the same CA.

```python
import fauna
tls = fauna.TLSConfig(ca="tls/ca.crt")                       # or cert=..., key=... as well
with fauna.Client(["127.0.0.1:7101"], tls=tls) as c: ...
with fauna.Client.from_config("cluster.toml") as c: ...      # [tls] of the file, if any
```

A TLS failure is configuration, not a passing fault: the client raises it at once
(`fauna.TLSError`), never retries it:

- `TLSHandshakeError`: the node's certificate is not from the CA given, the port is plaintext
  (the node answers a TLS hello with a protocol_version alert), or the node refused this client's
  certificate (with TLS 1.3 that refusal arrives just after the handshake, on the first read).
- `TLSRequired` (error code 13): a plaintext client reached a TLS port.
- `TLSError` itself: the CA, certificate or key file cannot be used.

A handshake that gets no answer in time, or a connection closed during it without an alert, is
not one of them: a paused, overloaded or stopping node looks the same, so it is a
`ConnectionFailed`, retried at the next node.

The blocking pool runs TLS on memory BIOs (`TLSStream`): one reader thread and many sender
threads share a connection, and an `ssl.SSLSocket` must not be read and written by two threads
at once. The asyncio pool uses asyncio's own TLS (`StreamWriter.start_tls`).
"""
from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Optional, Union

from .errors import ConnectionFailed, InvalidArgument, TLSError, TLSHandshakeError

__all__ = ["TLSConfig", "ClientTLS", "TLSStream", "TLSLike", "handshake_error", "after_handshake_error"]

_READ_BYTES = 1 << 16


@dataclass(frozen=True)
class TLSConfig:
    """The PEM files of a TLS client: `ca`, the cluster's CA (the only issuer trusted), and
    optionally `cert` and `key` (both or neither), the certificate this client presents."""
    ca: str
    cert: Optional[str] = None
    key: Optional[str] = None

    def __post_init__(self) -> None:
        for name in ("ca", "cert", "key"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (str, os.PathLike)) or not os.fspath(v)):
                raise InvalidArgument(f"TLSConfig.{name}: got {v!r}, want a non-empty path")
        if self.ca is None:
            raise InvalidArgument("TLSConfig.ca: want the cluster's CA certificate (PEM)")
        if (self.cert is None) != (self.key is None):
            raise InvalidArgument("TLSConfig.cert and TLSConfig.key: give both or neither")

    def context(self) -> ssl.SSLContext:
        """A client context: TLS 1.3 only, the node's certificate verified against `ca` (no host
        name check), `cert`/`key` presented. Raises `TLSError` if a file cannot be used."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        ca = os.fspath(self.ca)
        try:
            ctx.load_verify_locations(cafile=ca)
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            raise TLSError(f"TLS CA file {ca}: {_why(e)}: want the cluster's CA certificate (PEM), "
                           "e.g. tls/ca.crt of tools/tls-certs") from e
        if not ctx.get_ca_certs():
            raise TLSError(f"TLS CA file {ca}: no certificate in it: want the cluster's CA certificate (PEM)")
        if self.cert is not None and self.key is not None:
            cert, key = os.fspath(self.cert), os.fspath(self.key)
            try:
                ctx.load_cert_chain(cert, key)
            except (OSError, ValueError) as e:
                raise TLSError(f"TLS client certificate {cert} with key {key}: {_why(e)}: want a PEM "
                               "certificate of the cluster's CA and its matching PEM key") from e
        return ctx


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and not isinstance(e, ssl.SSLError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


TLSLike = Union[TLSConfig, ssl.SSLContext, "ClientTLS", None]


class ClientTLS:
    """What a pool needs: the context (built once), and what to name in error messages."""

    def __init__(self, context: ssl.SSLContext, ca: str, cert: Optional[str]):
        self.context = context
        self.ca = ca      # how error messages name the CA trusted
        self.cert = cert  # the client certificate presented (None: none, or unknown)

    @classmethod
    def of(cls, tls: TLSLike) -> Optional["ClientTLS"]:
        """None (plaintext), a `TLSConfig` (its files are read now), an `ssl.SSLContext` of your
        own (used as it is), or a ClientTLS."""
        if tls is None or isinstance(tls, ClientTLS):
            return tls
        if isinstance(tls, TLSConfig):
            return cls(tls.context(), f"the CA in {os.fspath(tls.ca)}", None if tls.cert is None else os.fspath(tls.cert))
        if isinstance(tls, ssl.SSLContext):
            return cls(tls, "the CA of the ssl.SSLContext given", "the certificate of the ssl.SSLContext given")
        raise InvalidArgument(f"tls: got {type(tls).__name__}, want a fauna.TLSConfig, an ssl.SSLContext or None")

    def __repr__(self) -> str:
        return f"ClientTLS(ca={self.ca!r}, cert={self.cert!r})"


# --- telling TLS failures apart ---------------------------------------------------------------

def handshake_error(e: BaseException, endpoint: object, tls: ClientTLS) -> Exception:
    """The error for a failed handshake: `TLSHandshakeError` when TLS is set up wrong (not
    retried), `ConnectionFailed` for a handshake the node did not answer in time (retried)."""
    if isinstance(e, (socket.timeout, TimeoutError)) and not isinstance(e, ssl.SSLError):
        return ConnectionFailed(f"TLS handshake with {endpoint}: no answer in time (the node is slow or stopped)")
    if isinstance(e, ssl.SSLCertVerificationError):
        return TLSHandshakeError(
            f"TLS handshake with {endpoint} failed: the node's certificate does not verify against {tls.ca} "
            f"({e.verify_message or e}): is that the cluster's CA, and the node's certificate not expired?",
            endpoint=_ep(endpoint))
    if isinstance(e, (ssl.SSLZeroReturnError, ssl.SSLEOFError, EOFError, ConnectionResetError, BrokenPipeError)):
        # A plaintext node answers a TLS hello with an alert (an SSLError below): a bare close
        # is a node that went away, as a stopping one does. Retried elsewhere.
        return ConnectionFailed(f"TLS handshake with {endpoint}: the node closed the connection ({_why(e)})")
    if isinstance(e, ssl.SSLError):
        return TLSHandshakeError(
            f"TLS handshake with {endpoint} failed: {_why(e)} (is the node's port plaintext, or its certificate "
            f"not from {tls.ca}, or expired?)", endpoint=_ep(endpoint))
    return ConnectionFailed(f"TLS handshake with {endpoint}: {_why(e)}")


def after_handshake_error(e: ssl.SSLError, endpoint: object, tls: ClientTLS) -> Optional[TLSHandshakeError]:
    """A TLS error on an established connection: None for a close (the node went away without
    close_notify, as a killed node does: a lost connection), else `TLSHandshakeError`. With
    TLS 1.3 the node checks a client certificate after the client finished its handshake: its
    refusal (an alert: unknown CA, bad or expired certificate) arrives on the first read."""
    if isinstance(e, (ssl.SSLZeroReturnError, ssl.SSLEOFError)):
        return None
    whose = f"this client's certificate ({tls.cert})" if tls.cert else "this client (it presented no certificate)"
    return TLSHandshakeError(
        f"TLS with {endpoint}: {_why(e)}: the node refused {whose}: is it issued by the cluster's CA and "
        "still valid?", endpoint=_ep(endpoint))


def _ep(endpoint: object) -> Optional[tuple[str, int]]:
    return endpoint if isinstance(endpoint, tuple) else None  # type: ignore[return-value]


# --- the blocking side: TLS on memory BIOs ----------------------------------------------------

class TLSStream:
    """A TLS client session over a connected socket, on memory BIOs, shared by one reader
    thread (`decrypt`) and any number of sender threads (`send`). The TLS object is only ever
    touched under a lock, and never blocks on the socket; records go out in the order they were
    made (every drain of the outgoing BIO and its sending happen under the send lock).

    `TLSStream.connect` does the handshake and returns the stream; it raises what
    `handshake_error` says, having closed nothing (the caller owns the socket)."""

    def __init__(self, sock: socket.socket, obj: ssl.SSLObject, incoming: ssl.MemoryBIO,
                 outgoing: ssl.MemoryBIO, endpoint: object, tls: ClientTLS):
        self._sock = sock
        self._obj = obj
        self._in = incoming
        self._out = outgoing
        self._lock = threading.Lock()       # the TLS object and its BIOs
        self._send_lock = threading.Lock()  # the order of records on the socket
        self.endpoint = endpoint
        self.tls = tls

    @classmethod
    def connect(cls, sock: socket.socket, tls: ClientTLS, endpoint: object, host: str, timeout: float) -> "TLSStream":
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = tls.context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=host)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pass
                if outgoing.pending:
                    sock.sendall(outgoing.read())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("handshake")
                sock.settimeout(left)
                data = sock.recv(_READ_BYTES)
                if not data:
                    raise EOFError("EOF during the handshake")
                incoming.write(data)
            if outgoing.pending:  # the client's Finished (TLS 1.3)
                sock.sendall(outgoing.read())
        except ssl.SSLError as e:
            # Tell the node why (an alert such as unknown CA), as far as it goes.
            try:
                if outgoing.pending:
                    sock.settimeout(0.1)
                    sock.sendall(outgoing.read())
            except OSError:
                pass
            raise handshake_error(e, endpoint, tls) from e
        except (OSError, EOFError) as e:
            raise handshake_error(e, endpoint, tls) from e
        return cls(sock, obj, incoming, outgoing, endpoint, tls)

    @property
    def version(self) -> Optional[str]:
        return self._obj.version()

    def goodbye(self) -> None:
        """Sends close_notify (best effort, without waiting for the node's): a node logs a TLS
        session ended without it as a dropped connection."""
        try:
            with self._send_lock:
                with self._lock:
                    try:
                        self._obj.unwrap()
                    except (ssl.SSLWantReadError, ssl.SSLError, ValueError):
                        pass  # sent; the node's own close_notify is not awaited
                    out = self._out.read()
                if out:
                    self._sock.settimeout(0.1)
                    self._sock.sendall(out)
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        """Encrypts and sends all of `data` (socket errors propagate as OSError)."""
        view = memoryview(data)
        with self._send_lock:
            with self._lock:
                while view:
                    n = self._obj.write(view)
                    view = view[n:]
                out = self._out.read()
            self._sock.sendall(out)

    def decrypt(self, raw: bytes) -> bytes:
        """The application bytes that `raw` (read from the socket) completes; may be empty (a
        partial record, a session ticket). Raises ssl.SSLZeroReturnError when the node closed
        the session, ssl.SSLError for a TLS failure (see `after_handshake_error`)."""
        chunks = []
        with self._lock:
            self._in.write(raw)
            while True:
                try:
                    chunk = self._obj.read(_READ_BYTES)
                except ssl.SSLWantReadError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            reply = self._out.pending > 0
        if reply:  # e.g. a key update answered: sent in order with the senders' records
            with self._send_lock:
                with self._lock:
                    out = self._out.read()
                if out:
                    self._sock.sendall(out)
        return b"".join(chunks)
