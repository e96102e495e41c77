import FaunaConfig
import FaunaRaft
import Testing

@Suite struct ClusterConfigTests {
    static let valid = """
        [cluster]
        name = "local"
        data_dir = "data"

        [[node]]
        id = "n1"
        peer = "127.0.0.1:7001"
        client = "127.0.0.1:7101"

        [[node]]
        id = "n2"
        peer = "127.0.0.1:7002"
        client = "127.0.0.1:7102"
        """

    @Test func parsesAValidFile() throws {
        let config = try ClusterConfig(parsing: Self.valid)
        #expect(config.name == "local" && config.dataDirectory == "data")
        #expect(config.nodes.map(\.nodeID) == [NodeID(1), NodeID(2)])
        #expect(try config.node(named: "n2").client == ClusterConfig.Endpoint(parsing: "127.0.0.1:7102"))
        #expect(config.electionTicks > config.heartbeatTicks)
    }

    @Test func metricsAddressIsOptional() throws {
        let text = Self.valid.replacingOccurrences(
            of: "client = \"127.0.0.1:7101\"", with: "client = \"127.0.0.1:7101\"\nmetrics = \"127.0.0.1:7201\"")
        let config = try ClusterConfig(parsing: text)
        #expect(try config.node(named: "n1").metrics == ClusterConfig.Endpoint(parsing: "127.0.0.1:7201"))
        #expect(try config.node(named: "n2").metrics == nil)
    }

    static let tls = "\n[tls]\nca = \"tls/ca.crt\"\ncert = \"tls/{id}.crt\"\nkey = \"tls/{id}.key\"\n"

    @Test func tlsSectionWithTheNodeTemplateAndClientAuth() throws {
        var config = try ClusterConfig(parsing: Self.valid + Self.tls)
        let tls = try #require(config.tls)
        #expect(tls.nodeFiles("n2") == ("tls/ca.crt", "tls/n2.crt", "tls/n2.key"))
        #expect(tls.clientCertificate == nil && !tls.requireClientCertificate)
        config = try ClusterConfig(
            parsing: Self.valid + Self.tls + "client_cert = \"tls/client.crt\"\nclient_key = \"tls/client.key\"\nclient_auth = \"require\"\n")
        #expect(config.tls?.clientCertificate == "tls/client.crt" && config.tls?.requireClientCertificate == true)
        #expect(try ClusterConfig(parsing: Self.valid).tls == nil)
    }

    @Test func encryptionSectionWithTheNodeTemplate() throws {
        let config = try ClusterConfig(parsing: Self.valid + "\n[encryption]\nmaster_key = \"keys/{id}.key\"\nprevious_master_key = \"old.key\"\n")
        let e = try #require(config.encryption)
        #expect(e.nodeFiles("n2") == ("keys/n2.key", "old.key"))
        #expect(try ClusterConfig(parsing: Self.valid).encryption == nil)
    }

    @Test func theRepositoryClusterFileIsValid() throws {
        let text = try String(contentsOfFile: #filePath.replacingOccurrences(of: "Tests/FaunaConfigTests/ClusterConfigTests.swift", with: "cluster.toml"), encoding: .utf8)
        let config = try ClusterConfig(parsing: text)
        #expect(config.nodes.count == 3)
        #expect(config.tls != nil && config.encryption?.masterKey == "keys/master.key")
    }

    @Test(arguments: [
        ("unknown key", Self.valid.replacingOccurrences(of: "data_dir = \"data\"", with: "data_dir = \"data\"\ncolour = 1"), "unknown key cluster.colour"),
        ("duplicate id", Self.valid.replacingOccurrences(of: "id = \"n2\"", with: "id = \"n1\""), "duplicate node id"),
        ("duplicate port", Self.valid.replacingOccurrences(of: "127.0.0.1:7102", with: "127.0.0.1:7001"), "also n1.peer"),
        ("missing node id", Self.valid.replacingOccurrences(of: "id = \"n2\"\n", with: ""), "id"),
        ("bad id", Self.valid.replacingOccurrences(of: "\"n2\"", with: "\"node-two\""), "want n<number>"),
        ("bad port", Self.valid.replacingOccurrences(of: "127.0.0.1:7102", with: "127.0.0.1:99999"), "want 1...65535"),
        ("no nodes", "node = []\n[cluster]\nname = \"x\"\ndata_dir = \"d\"\n", "no [[node]]"),
        ("no node table", "[cluster]\nname = \"x\"\ndata_dir = \"d\"\n", "no [[node]]"),
        ("syntax", "[cluster\nname = 1", "line"),
        ("bad name", Self.valid.replacingOccurrences(of: "name = \"local\"", with: "name = \"a b\""), "cluster.name"),
        ("metrics port taken", Self.valid.replacingOccurrences(
            of: "client = \"127.0.0.1:7102\"", with: "client = \"127.0.0.1:7102\"\nmetrics = \"127.0.0.1:7101\""), "also n1.client"),
        ("bad metrics address", Self.valid.replacingOccurrences(
            of: "client = \"127.0.0.1:7102\"", with: "client = \"127.0.0.1:7102\"\nmetrics = \"7202\""), "want host:port"),
        ("empty tls.ca", Self.valid + Self.tls.replacingOccurrences(of: "\"tls/ca.crt\"", with: "\"\""), "tls.ca is empty"),
        ("client cert without key", Self.valid + Self.tls + "client_cert = \"c.crt\"\n", "give both or neither"),
        ("bad client_auth", Self.valid + Self.tls + "client_auth = \"yes\"\n", "want \"optional\" or \"require\""),
        ("tls without key", Self.valid + Self.tls.replacingOccurrences(of: "key = \"tls/{id}.key\"\n", with: ""), "key"),
        ("empty master key", Self.valid + "\n[encryption]\nmaster_key = \"\"\n", "encryption.master_key is empty"),
        ("same previous key", Self.valid + "\n[encryption]\nmaster_key = \"k\"\nprevious_master_key = \"k\"\n", "previous_master_key is master_key"),
        ("unknown encryption key", Self.valid + "\n[encryption]\nmaster_key = \"k\"\ncipher = \"x\"\n", "unknown key encryption.cipher"),
    ])
    func invalidFilesGiveOneLineErrors(what: String, text: String, mentions: String) {
        #expect {
            try ClusterConfig(parsing: text)
        } throws: { error in
            let message = (error as? ConfigError)?.message ?? ""
            return message.contains(mentions) && !message.contains("\n")
        }
    }

    @Test func unknownNodeNameIsAClearError() throws {
        let config = try ClusterConfig(parsing: Self.valid)
        #expect(throws: ConfigError("no node \"n9\" in the configuration (nodes: n1, n2)")) { try config.node(named: "n9") }
    }
}
