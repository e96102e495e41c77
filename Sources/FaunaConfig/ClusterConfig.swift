import FaunaRaft
import Foundation
import TOMLKit

/// The cluster description in `cluster.toml`, validated. Parsed in one place for `faunad` and
/// `fctl` (the repository's `cluster.toml` is the example).
///
/// ```toml
/// [cluster]
/// name = "local"
/// data_dir = "data"          # each node uses data_dir/<id>
///
/// [[node]]
/// id = "n1"
/// peer = "127.0.0.1:7001"    # Raft traffic
/// client = "127.0.0.1:7101"  # client traffic
/// ```
public struct ClusterConfig: Sendable, Equatable {
    /// Letters, digits, `-` and `_`; names the trusted-state directory of clients too.
    public var name: String
    /// Relative paths are relative to the directory holding the configuration file.
    public var dataDirectory: String
    public var tickMs: Int
    public var electionTicks: Int
    public var heartbeatTicks: Int
    /// A node compacts its Raft log (moves the first index Raft serves; nothing is deleted,
    /// docs/STORAGE.md) once it serves more than this many applied entries, keeping half: a
    /// follower up to that far behind catches up by log, from the journal, and one further
    /// behind by a checkpoint.
    public var snapshotEntries: Int
    /// How often each node's status page audits the cluster (state digests at a common
    /// revision: every node reads its whole state), in seconds.
    public var auditIntervalSeconds: Int
    public var nodes: [NodeConfig]
    /// `[tls]`: TLS on the client and peer ports (docs/SECURITY.md); nil: plaintext.
    public var tls: TLS?
    /// `[encryption]`: values sealed at rest (docs/SECURITY.md); nil: stored as they are.
    public var encryption: Encryption?

    /// Encryption at rest. Every node holds the same master key (nodes install each other's
    /// data as snapshots, data keys included). Paths as in `[tls]` (`{id}` allowed).
    ///
    /// ```toml
    /// [encryption]
    /// master_key = "keys/master.key"   # 64 hex digits, mode 600 (openssl rand -hex 32)
    /// previous_master_key = "keys/old.key"  # only while changing the master key
    /// ```
    public struct Encryption: Sendable, Equatable {
        public var masterKey: String
        public var previousMasterKey: String?

        /// The key file paths of node `name` (`{id}` replaced).
        public func nodeFiles(_ name: String) -> (masterKey: String, previousMasterKey: String?) {
            (masterKey.replacingOccurrences(of: "{id}", with: name), previousMasterKey?.replacingOccurrences(of: "{id}", with: name))
        }
    }

    /// The PEM files of a secured cluster. Relative paths are relative to the directory
    /// holding the configuration file; `{id}` in a node's paths stands for its id.
    ///
    /// ```toml
    /// [tls]
    /// ca = "tls/ca.crt"              # the cluster's CA, the only issuer trusted
    /// cert = "tls/{id}.crt"          # each node's certificate (its id among the DNS names)
    /// key = "tls/{id}.key"
    /// client_cert = "tls/client.crt" # what fctl and the client library present
    /// client_key = "tls/client.key"
    /// client_auth = "require"        # or "optional" (the default)
    /// ```
    public struct TLS: Sendable, Equatable {
        public var ca: String
        public var certificate: String
        public var key: String
        public var clientCertificate: String?
        public var clientKey: String?
        /// `client_auth = "require"`: the client port accepts only clients that present a
        /// certificate of the CA; "optional" (default): verified when presented. The metrics
        /// port never requires one.
        public var requireClientCertificate: Bool = false

        /// The certificate and key paths of node `name` (`{id}` replaced).
        public func nodeFiles(_ name: String) -> (ca: String, certificate: String, key: String) {
            (ca, certificate.replacingOccurrences(of: "{id}", with: name), key.replacingOccurrences(of: "{id}", with: name))
        }
    }

    public struct NodeConfig: Sendable, Equatable {
        /// The name in the file, `n<number>`; the number is the Raft node id.
        public var name: String
        public var nodeID: NodeID
        public var peer: Endpoint
        public var client: Endpoint
        /// The HTTP port of `/metrics`, `/livez`, `/readyz` (docs/METRICS.md); nil: not served.
        public var metrics: Endpoint?

        public init(name: String, nodeID: NodeID, peer: Endpoint, client: Endpoint, metrics: Endpoint? = nil) {
            self.name = name
            self.nodeID = nodeID
            self.peer = peer
            self.client = client
            self.metrics = metrics
        }
    }

    /// A `host:port` address.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public var description: String { "\(host):\(port)" }

        /// Parses `host:port`; the host must be non-empty, the port 1...65535.
        public init(parsing text: String) throws(ConfigError) {
            guard let colon = text.lastIndex(of: ":") else {
                throw ConfigError("address \"\(text)\": want host:port")
            }
            let host = String(text[..<colon])
            let portText = text[text.index(after: colon)...]
            guard !host.isEmpty else { throw ConfigError("address \"\(text)\": empty host") }
            guard let port = Int(portText), (1...65_535).contains(port) else {
                throw ConfigError("address \"\(text)\": port \"\(portText)\", want 1...65535")
            }
            self.host = host
            self.port = port
        }
    }

    /// The node named `name` (e.g. "n1").
    public func node(named name: String) throws(ConfigError) -> NodeConfig {
        guard let node = nodes.first(where: { $0.name == name }) else {
            let known = nodes.map(\.name).joined(separator: ", ")
            throw ConfigError("no node \"\(name)\" in the configuration (nodes: \(known))")
        }
        return node
    }

    public func node(id: NodeID) -> NodeConfig? { nodes.first { $0.nodeID == id } }

    /// Parses and validates a whole configuration file's text.
    public init(parsing text: String) throws(ConfigError) {
        let raw: RawConfig
        do {
            raw = try TOMLDecoder(strictDecoding: true).decode(RawConfig.self, from: text)
        } catch let error as TOMLParseError {
            throw ConfigError("line \(error.source.begin.line), column \(error.source.begin.column): \(error.description)")
        } catch {
            throw ConfigError(Self.describe(error))
        }
        try self.init(validating: raw)
    }

    init(validating raw: RawConfig) throws(ConfigError) {
        let cluster = raw.cluster
        name = cluster.name
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw ConfigError("cluster.name \"\(name)\": want letters, digits, - or _")
        }
        dataDirectory = cluster.data_dir
        guard !dataDirectory.isEmpty else { throw ConfigError("cluster.data_dir is empty") }
        tickMs = cluster.tick_ms ?? 10
        electionTicks = cluster.election_ticks ?? 100
        heartbeatTicks = cluster.heartbeat_ticks ?? 10
        // Serving entries costs no disk since the journal and the Raft log are one (ADR 0010):
        // a follower half a million entries behind (minutes of writes) still catches up by log.
        snapshotEntries = cluster.snapshot_entries ?? 1_000_000
        guard (1...1_000).contains(tickMs) else { throw ConfigError("cluster.tick_ms \(tickMs): want 1...1000") }
        guard heartbeatTicks >= 1, electionTicks > heartbeatTicks else {
            throw ConfigError("cluster.election_ticks \(electionTicks) must exceed heartbeat_ticks \(heartbeatTicks) (≥ 1)")
        }
        guard snapshotEntries >= 1 else { throw ConfigError("cluster.snapshot_entries \(snapshotEntries): want ≥ 1") }
        auditIntervalSeconds = cluster.audit_interval_s ?? 300
        guard (5...86_400).contains(auditIntervalSeconds) else {
            throw ConfigError("cluster.audit_interval_s \(auditIntervalSeconds): want 5...86400")
        }
        guard !raw.node.isEmpty else { throw ConfigError("no [[node]] entries") }
        if let t = raw.tls {
            for (value, key) in [(t.ca, "ca"), (t.cert, "cert"), (t.key, "key")] where value.isEmpty {
                throw ConfigError("tls.\(key) is empty")
            }
            guard (t.client_cert == nil) == (t.client_key == nil) else {
                throw ConfigError("tls.client_cert and tls.client_key: give both or neither")
            }
            tls = TLS(ca: t.ca, certificate: t.cert, key: t.key, clientCertificate: t.client_cert, clientKey: t.client_key)
            switch t.client_auth ?? "optional" {
            case "optional": break
            case "require": tls?.requireClientCertificate = true
            case let other: throw ConfigError("tls.client_auth \"\(other)\": want \"optional\" or \"require\"")
            }
        }

        if let e = raw.encryption {
            guard !e.master_key.isEmpty else { throw ConfigError("encryption.master_key is empty") }
            guard e.previous_master_key != e.master_key else {
                throw ConfigError("encryption.previous_master_key is master_key: name the old key there, or leave it out")
            }
            encryption = Encryption(masterKey: e.master_key, previousMasterKey: e.previous_master_key)
        }

        var seenIDs: Set<NodeID> = []
        var seenEndpoints: [Endpoint: String] = [:]
        nodes = []
        for rawNode in raw.node {
            let id = try Self.nodeID(parsing: rawNode.id)
            guard seenIDs.insert(id).inserted else { throw ConfigError("duplicate node id \"\(rawNode.id)\"") }
            let peer = try Endpoint(parsing: rawNode.peer)
            let client = try Endpoint(parsing: rawNode.client)
            let metrics = try rawNode.metrics.map { text throws(ConfigError) in try Endpoint(parsing: text) }
            for (endpoint, role) in [(peer, "peer"), (client, "client")] + (metrics.map { [($0, "metrics")] } ?? []) {
                if let other = seenEndpoints[endpoint] {
                    throw ConfigError("address \(endpoint) of \(rawNode.id).\(role) is also \(other)")
                }
                seenEndpoints[endpoint] = "\(rawNode.id).\(role)"
            }
            nodes.append(NodeConfig(name: rawNode.id, nodeID: id, peer: peer, client: client, metrics: metrics))
        }
    }

    /// `n<number>` with number ≥ 1 → that number.
    public static func nodeID(parsing name: String) throws(ConfigError) -> NodeID {
        guard name.first == "n", let number = UInt64(name.dropFirst()), number > 0, "n\(number)" == name else {
            throw ConfigError("node id \"\(name)\": want n<number>, e.g. n1")
        }
        return NodeID(number)
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            let keys = context.codingPath.last?.stringValue == key.stringValue ? context.codingPath : context.codingPath + [key]
            if path(keys) == "node" { return "no [[node]] entries" }
            return "missing key \(path(keys))"
        case DecodingError.typeMismatch(let type, let context):
            return "\(path(context.codingPath)): want \(type)"
        case DecodingError.dataCorrupted(let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        case DecodingError.valueNotFound(_, let context):
            return "\(path(context.codingPath)): missing value"
        case let unexpected as UnexpectedKeysError:
            let names = unexpected.keys.map { key, codingPath in
                path(codingPath.last?.stringValue == key ? codingPath : codingPath + [PlainKey(key)])
            }.sorted()
            return "unknown key\(names.count == 1 ? "" : "s") \(names.joined(separator: ", ")) (see cluster.toml for the keys)"
        default:
            return "\(error)"
        }
    }

    private struct PlainKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}

/// A configuration problem, in one line that says what to fix.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The file's shape; strict decoding rejects any key not named here.
struct RawConfig: Decodable {
    struct Cluster: Decodable {
        var name: String
        var data_dir: String
        var tick_ms: Int?
        var election_ticks: Int?
        var heartbeat_ticks: Int?
        var snapshot_entries: Int?
        var audit_interval_s: Int?
    }

    struct Node: Decodable {
        var id: String
        var peer: String
        var client: String
        var metrics: String?
    }

    struct TLS: Decodable {
        var ca: String
        var cert: String
        var key: String
        var client_cert: String?
        var client_key: String?
        var client_auth: String?
    }

    struct Encryption: Decodable {
        var master_key: String
        var previous_master_key: String?
    }

    var cluster: Cluster
    var node: [Node]
    var tls: TLS?
    var encryption: Encryption?
}
