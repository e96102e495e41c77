import ArgumentParser
import FaunaClient
import FaunaConfig
import FaunaKV
import FaunaRPC
import FaunaRaft
import FctlCore
import Foundation

/// Options every command takes (after the command name).
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "cluster.toml to take node addresses from.")
    var config: String = "cluster.toml"

    @Option(name: .long, help: "Client addresses host:port,... (instead of --config).")
    var endpoints: String?

    @Flag(name: .long, help: "Machine-readable JSON output.")
    var json = false

    @Option(name: .long, help: "TLS: the cluster's CA certificate (PEM). Default: [tls] ca of --config, if it has [tls].")
    var ca: String?

    @Option(name: .long, help: "TLS: this client's certificate (PEM), with --key. Default: [tls] client_cert of --config.")
    var cert: String?

    @Option(name: .long, help: "TLS: the private key of --cert (PEM). Default: [tls] client_key of --config.")
    var key: String?

    @Option(name: .long, help: "Authenticate as this user (password from $FAUNA_PASSWORD or --password-file). Default: the user the client certificate names.")
    var user: String?

    @Option(name: .customLong("password-file"), help: "With --user: a file holding the password (its first line). Default: $FAUNA_PASSWORD.")
    var passwordFile: String?

    @Option(name: .long, help: "Give up after this many seconds (retries included).")
    var timeout: Double = 10

    @Flag(name: .long, help: "KEY/VALUE arguments and output in hex.")
    var hex = false

    @Flag(name: .long, help: "KEY/VALUE arguments and output in base64.")
    var base64 = false

    func validate() throws {
        guard !(hex && base64) else { throw ValidationError("--hex and --base64 exclude each other") }
        guard timeout > 0, timeout <= 86_400 else { throw ValidationError("--timeout \(timeout): want 0 < seconds <= 86400") }
        guard (cert == nil) == (key == nil) else { throw ValidationError("--cert and --key: give both or neither") }
        guard cert == nil || ca != nil || endpoints == nil else { throw ValidationError("--cert with --endpoints needs --ca") }
        guard passwordFile == nil || user != nil else { throw ValidationError("--password-file needs --user") }
    }

    /// --user with its password, or nil.
    func credentials() throws(FctlError) -> FaunaClientConfiguration.Credentials? {
        guard let user else { return nil }
        let password: String
        if let passwordFile {
            do {
                let text = try String(contentsOfFile: passwordFile, encoding: .utf8)
                password = String(text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            } catch {
                throw FctlError(.security, "--password-file \(passwordFile): cannot read it: \(error.localizedDescription)")
            }
        } else if let env = ProcessInfo.processInfo.environment["FAUNA_PASSWORD"] {
            password = env
        } else {
            throw FctlError(.usage, "--user \(user): give the password in $FAUNA_PASSWORD or with --password-file")
        }
        guard !password.isEmpty else { throw FctlError(.usage, "--user \(user): the password is empty") }
        return FaunaClientConfiguration.Credentials(user: Array(user.utf8), password: Array(password.utf8))
    }

    /// TLS for the client: from --ca/--cert/--key, else from [tls] of the config file (paths
    /// relative to its directory); nil: plaintext.
    func tlsContexts() throws(FctlError) -> TLSContexts? {
        var files: TLSFiles?
        if let ca {
            files = TLSFiles(ca: ca, certificate: cert, key: key)
        } else if let tls = try clusterConfig()?.tls {
            let base = URL(fileURLWithPath: config).deletingLastPathComponent().path
            let path = { (p: String) in p.hasPrefix("/") ? p : "\(base)/\(p)" }
            files = TLSFiles(ca: path(tls.ca), certificate: cert ?? tls.clientCertificate.map(path), key: key ?? tls.clientKey.map(path))
        }
        guard let files else {
            if cert != nil { throw FctlError(.usage, "--cert/--key: the cluster has no [tls] in \(config); give --ca too, or leave them out for a plaintext cluster") }
            return nil
        }
        do {
            return try TLSContexts(files: files, role: .client)
        } catch {
            throw FctlError(.security, "TLS: \(error.message)")
        }
    }

    var encoding: ByteEncoding { hex ? .hex : base64 ? .base64 : .text }

    /// The cluster configuration, when nodes come from --config.
    func clusterConfig() throws(FctlError) -> ClusterConfig? {
        guard endpoints == nil else { return nil }
        let text: String
        do {
            text = try String(contentsOfFile: config, encoding: .utf8)
        } catch {
            throw FctlError(.usage, "cannot read \(config): \(error.localizedDescription). Pass --config PATH or --endpoints host:port,...")
        }
        do {
            return try ClusterConfig(parsing: text)
        } catch {
            throw FctlError(.usage, "\(config): \(error.message)")
        }
    }

    /// The client endpoints to use, from --endpoints or the config file.
    func resolveEndpoints() throws(FctlError) -> [Endpoint] {
        if let endpoints {
            var result: [Endpoint] = []
            for part in endpoints.split(separator: ",") {
                guard let endpoint = Endpoint(parsing: part.trimmingCharacters(in: .whitespaces)) else {
                    throw FctlError(.usage, "--endpoints: \"\(part)\" is not host:port")
                }
                result.append(endpoint)
            }
            guard !result.isEmpty else { throw FctlError(.usage, "--endpoints: want at least one host:port") }
            return result
        }
        guard let config = try clusterConfig() else { return [] }
        return config.nodes.map { Endpoint(host: $0.client.host, port: UInt16($0.client.port)) }
    }

    /// A client of the cluster.
    func makeClient() throws(FctlError) -> FaunaClient {
        let deadline = Duration.milliseconds(Int64(timeout * 1000))
        var configuration = FaunaClientConfiguration(deadline: deadline, requestTimeout: min(deadline, .seconds(3)))
        configuration.tls = try tlsContexts()
        configuration.credentials = try credentials()
        return FaunaClient(endpoints: try resolveEndpoints(), configuration: configuration)
    }

    /// Decodes a KEY/VALUE argument.
    func bytes(_ text: String, _ what: String) throws(FctlError) -> [UInt8] {
        try encoding.decode(text, what: what)
    }

    func show(_ bytes: [UInt8]) -> String { encoding.format(bytes) }

    /// `object` as one line of JSON.
    func jsonLine(_ object: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// Prints `object` as one line of JSON.
    func printJSON(_ object: Any) { print(jsonLine(object)) }

    func recordJSON(_ kv: KVKeyValue) -> [String: Any] {
        var object: [String: Any] = [
            "key": show(kv.key), "value": show(kv.record.value), "createRevision": kv.record.createRevision.rawValue,
            "modRevision": kv.record.modRevision.rawValue, "version": kv.record.version,
        ]
        if kv.record.lease != 0 { object["lease"] = kv.record.lease }
        return object
    }
}

/// Writes one line at once, not through stdout's buffer: for the commands that run until
/// interrupted (watch, elect, lease keep-alive), so that a reader of a pipe sees each line as it
/// comes.
func emitLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Runs `body` with a client, closing it afterwards; client errors become fctl errors.
func withClient<T>(_ global: GlobalOptions, doing action: String, _ body: (FaunaClient) async throws(FaunaClientError) -> T) async throws(FctlError) -> T {
    let client = try global.makeClient()
    do {
        let result = try await body(client)
        await client.close()
        return result
    } catch {
        await client.close()
        throw FctlError(error, doing: action)
    }
}

/// Parses `n<number>`.
func parseNodeID(_ text: String) throws(FctlError) -> NodeID {
    do {
        return try ClusterConfig.nodeID(parsing: text)
    } catch {
        throw FctlError(.usage, error.message)
    }
}
