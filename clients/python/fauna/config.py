"""Client settings, and the nodes of a cluster.toml (the format of the repository's cluster.toml
and docs/CLI.md `--config`)."""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field

from typing import Optional

from .errors import InvalidArgument
from .tls import TLSConfig
from .wire import Endpoint

__all__ = ["ClientConfig", "NodeConfig", "ClusterFile", "TLSFiles", "load_cluster_file", "node_number"]


@dataclass(frozen=True)
class ClientConfig:
    """Every wait and every retry of a client is bounded by these (seconds).

    - `timeout`: one call with all its retries (the default of every call's `timeout=`).
    - `request_timeout`: one attempt waits at most this for its answer (cut to what is left).
    - `connect_timeout`: one TCP connect.
    - `backoff_initial` / `backoff_max`: the pause between attempts doubles from the first to
      the second, each drawn from its upper half (jitter).
    - `attempts_max`: attempts per call at most, whatever the deadline.
    - `connections_per_endpoint`: pooled connections per node at most.
    - `in_flight_per_connection`: requests awaiting answers on one connection at most.
    - `idle_sessions_max`: write sessions kept for reuse (one per concurrent write).
    - `body_bytes_max`: the largest frame body accepted from a node.
    """
    timeout: float = 10.0
    request_timeout: float = 3.0
    connect_timeout: float = 1.0
    backoff_initial: float = 0.025
    backoff_max: float = 1.0
    attempts_max: int = 100
    connections_per_endpoint: int = 4
    in_flight_per_connection: int = 256
    idle_sessions_max: int = 64
    body_bytes_max: int = 16 << 20

    def __post_init__(self) -> None:
        for name in ("timeout", "request_timeout", "connect_timeout", "backoff_initial", "backoff_max"):
            if not getattr(self, name) > 0:
                raise InvalidArgument(f"{name}: got {getattr(self, name)!r}, want > 0 seconds")
        for name in ("attempts_max", "connections_per_endpoint", "in_flight_per_connection"):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"{name}: got {getattr(self, name)!r}, want >= 1")
        if self.idle_sessions_max < 0:
            raise InvalidArgument("idle_sessions_max: want >= 0")


def node_number(name: str) -> int:
    """`n<number>` → the number (the Raft node ID)."""
    digits = name[1:]
    if not name.startswith("n") or not digits.isdigit() or digits.startswith("0"):
        raise InvalidArgument(f"node id {name!r}: want n<number>, e.g. n1")
    return int(digits)


@dataclass(frozen=True)
class NodeConfig:
    name: str
    node_id: int
    peer: Endpoint
    client: Endpoint


@dataclass(frozen=True)
class TLSFiles:
    """The `[tls]` section of a cluster.toml (docs/SECURITY.md), every path absolute (a relative
    one is relative to the file's directory). `cert` and `key` are the nodes' (`{id}` stands for
    a node's id: `node_files`); `client_cert`/`client_key` (both or neither) what clients present.

    ```toml
    [tls]
    ca = "tls/ca.crt"              # the cluster's CA, the only issuer trusted
    cert = "tls/{id}.crt"
    key = "tls/{id}.key"
    client_cert = "tls/client.crt" # optional
    client_key = "tls/client.key"
    ```"""
    ca: str
    cert: str
    key: str
    client_cert: Optional[str] = None
    client_key: Optional[str] = None

    def node_files(self, name: str) -> tuple[str, str, str]:
        """(ca, cert, key) of node `name` (`{id}` replaced)."""
        return self.ca, self.cert.replace("{id}", name), self.key.replace("{id}", name)

    def client(self) -> TLSConfig:
        """What a client uses: the CA, and the client certificate and key if given."""
        return TLSConfig(self.ca, self.client_cert, self.client_key)


@dataclass(frozen=True)
class ClusterFile:
    name: str
    data_dir: str
    nodes: list[NodeConfig] = field(default_factory=list)
    #: `[tls]`, or None: the cluster is plaintext.
    tls: Optional[TLSFiles] = None

    @property
    def endpoints(self) -> list[Endpoint]:
        return [n.client for n in self.nodes]


def _tls_files(path: object, raw: object, base: str) -> TLSFiles:
    """Checks `[tls]` as faunad does (ca, cert, key non-empty strings; client_cert and client_key
    both or neither) and makes its paths absolute."""
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{path}: tls: want a [tls] table")
    got: dict[str, Optional[str]] = {}
    for k in ("ca", "cert", "key", "client_cert", "client_key"):
        v = raw.get(k)
        if v is None and k.startswith("client_"):
            got[k] = None
            continue
        if not isinstance(v, str):
            raise InvalidArgument(f"{path}: tls.{k}: {'missing' if v is None else f'got {v!r}'}, want a path (a string)")
        if not v:
            raise InvalidArgument(f"{path}: tls.{k} is empty")
        got[k] = v if os.path.isabs(v) else os.path.normpath(os.path.join(base, v))
    if (got["client_cert"] is None) != (got["client_key"] is None):
        raise InvalidArgument(f"{path}: tls.client_cert and tls.client_key: give both or neither")
    return TLSFiles(got["ca"], got["cert"], got["key"], got["client_cert"], got["client_key"])  # type: ignore[arg-type]


def load_cluster_file(path: str | os.PathLike[str]) -> ClusterFile:
    """Reads the cluster's name, data directory (absolute), nodes and `[tls]` from a cluster.toml."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise InvalidArgument(f"{path}: {e}") from e
    cluster = raw.get("cluster")
    nodes = raw.get("node")
    if not isinstance(cluster, dict) or not isinstance(nodes, list) or not nodes:
        raise InvalidArgument(f"{path}: want a [cluster] table and at least one [[node]]")
    base = os.path.dirname(os.path.abspath(path))
    data_dir = str(cluster.get("data_dir", "data"))
    if not os.path.isabs(data_dir):
        data_dir = os.path.normpath(os.path.join(base, data_dir))
    tls = _tls_files(path, raw["tls"], base) if "tls" in raw else None
    out = []
    for n in nodes:
        if not isinstance(n, dict) or not all(isinstance(n.get(k), str) for k in ("id", "peer", "client")):
            raise InvalidArgument(f"{path}: every [[node]] needs id, peer and client strings")
        out.append(NodeConfig(n["id"], node_number(n["id"]), Endpoint.parse(n["peer"]), Endpoint.parse(n["client"])))
    return ClusterFile(str(cluster.get("name", "")), data_dir, out, tls)
