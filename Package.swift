// swift-tools-version:6.0
import PackageDescription

// Module boundaries and import rules: docs/adr/0001-modules.md and docs/ARCHITECTURE.md.
// tools/check-imports checks that every target declares here each module it imports, and that
// every library target imports and depends on only what its allow-list permits.
let package = Package(
    name: "Fauna",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "FaunaRaft", targets: ["FaunaRaft"]),
        .library(name: "FaunaVerify", targets: ["FaunaVerify"]),
        .library(name: "FaunaAudit", targets: ["FaunaAudit"]),
        .library(name: "FaunaKV", targets: ["FaunaKV"]),
        .library(name: "FaunaStore", targets: ["FaunaStore"]),
        .library(name: "FaunaRPC", targets: ["FaunaRPC"]),
        .library(name: "FaunaClient", targets: ["FaunaClient"]),
        .executable(name: "fctl", targets: ["fctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
        // Client certificates' common names (user binding, docs/SECURITY.md); already a
        // dependency of swift-crypto's extras.
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        // Latency histograms for `fctl bench` (FctlCore/Bench*.swift).
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        // Node metrics (docs/METRICS.md): the pipeline records through swift-metrics' API; the
        // node exports a Prometheus registry of its own on its HTTP port.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // TLS on the client and peer ports (docs/SECURITY.md); builds its own BoringSSL.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
    ],
    targets: [
        // Consensus core: pure, deterministic, no IO, no clocks, no threads.
        .target(name: "FaunaRaft", exclude: ["README.md"]),
        // Deterministic cluster simulator (test support; not part of any product).
        .target(name: "RaftSimulator", dependencies: ["FaunaRaft"], exclude: ["README.md"]),
        .executableTarget(name: "raft-sim", dependencies: ["RaftSimulator"]),
        // Heap allocation counter for benchmarks (interposes malloc; never in a product).
        .target(name: "CAllocationCounter"),
        .executableTarget(name: "raft-bench", dependencies: ["FaunaRaft", "CAllocationCounter"]),
        .testTarget(name: "FaunaRaftTests", dependencies: ["FaunaRaft", "RaftSimulator"]),

        // Audit chain verifier: RFC 9162 hashing, proof and tree head checks. swift-crypto only.
        .target(
            name: "FaunaVerify",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            exclude: ["README.md"]
        ),
        // Audit chain tree: complete-subtree storage, roots, proof generation, tree head signing.
        .target(
            name: "FaunaAudit",
            dependencies: ["FaunaVerify", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["README.md"]
        ),
        .executableTarget(
            name: "audit-bench",
            dependencies: ["FaunaAudit", "FaunaVerify", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["README.md"]
        ),
        .testTarget(
            name: "FaunaVerifyTests",
            dependencies: ["FaunaVerify", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(
            name: "FaunaAuditTests",
            dependencies: ["FaunaAudit", "FaunaVerify", "FaunaClient", .product(name: "Crypto", package: "swift-crypto")]
        ),

        // KV state machine: pure logic over a small storage interface (docs/adr/0003).
        // Standard library only (tools/check-imports).
        .target(name: "FaunaKV", exclude: ["README.md"]),
        .testTarget(name: "FaunaKVTests", dependencies: ["FaunaKV"]),

        // cluster.toml: parsed and validated in one place for faunad and fctl.
        // Backups checked offline (and restored): opens an archive's state with FaunaStore.
        .target(
            name: "FaunaBackup",
            dependencies: [
                "FaunaClient", "FaunaStore", "FaunaKV", "FaunaRaft", "FaunaVerify",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(name: "FaunaConfig", dependencies: ["FaunaRaft", .product(name: "TOMLKit", package: "TOMLKit")]),
        .testTarget(name: "FaunaConfigTests", dependencies: ["FaunaConfig", "FaunaRaft"]),

        // RocksDB C API (Debian librocksdb-dev); only FaunaStore's RocksDB*.swift imports it.
        .systemLibrary(name: "CRocksDB", pkgConfig: "rocksdb", providers: [.apt(["librocksdb-dev"])]),
        // The one call the C API lacks: an atomic flush of several column families (C++, one
        // function; only FaunaStore's RocksDB.swift calls it).
        .target(name: "CRocksDBFlush", linkerSettings: [.linkedLibrary("rocksdb"), .linkedLibrary("stdc++")]),
        // Storage: Raft log, KV state machine, audit journal + tree nodes, snapshots (RocksDB).
        .target(
            name: "FaunaStore",
            dependencies: [
                "CRocksDB", "CRocksDBFlush", "CAESGCM", "CSHA256", "FaunaRaft", "FaunaKV", "FaunaAudit", "FaunaVerify",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["README.md"]
        ),
        // Test helper for the crash-kill and EIO tests: applies entries, prints each durable index.
        .executableTarget(name: "store-crash-helper", dependencies: ["FaunaStore", "FaunaRaft", "FaunaKV"]),
        // Storage benchmark (docs/PERFORMANCE.md "Storage"); run in release.
        .executableTarget(
            name: "store-bench",
            dependencies: [
                "FaunaStore", "FaunaRaft", "FaunaKV", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(
            name: "FaunaStoreTests",
            // The helper is a dependency so that `swift build --build-tests` builds it.
            dependencies: [
                "FaunaStore", "FaunaRaft", "FaunaKV", "FaunaAudit", "FaunaVerify", "store-crash-helper",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // Data directories of earlier schemas, read by path (StoreUpgradeTests).
            exclude: ["Fixtures"]
        ),

        // CRC-32C of the frame bodies: the SSE4.2 instruction where the CPU has it, else tables
        // (Sources/FaunaRPC/CRC32C.swift). Only FaunaRPC and its tests depend on it.
        .target(name: "CCRC32C"),
        // AES-256-GCM for encryption at rest over the system libcrypto (Debian libssl-dev):
        // contexts that keep their key schedule (ADR 0013). Only FaunaStore's Encryption.swift.
        .target(name: "CAESGCM", linkerSettings: [.linkedLibrary("crypto")]),
        // SHA-256 over the system libcrypto with the context on the stack, for the audit chain
        // of the apply path (Sources/FaunaStore/SHA256Parts+libcrypto.swift). Only FaunaStore.
        .target(name: "CSHA256", linkerSettings: [.linkedLibrary("crypto")]),
        // Wire protocol: frames, message codecs, SwiftNIO transport (docs/PROTOCOL.md, ADR 0005).
        .target(
            name: "FaunaRPC",
            dependencies: [
                "FaunaRaft", "FaunaKV", "FaunaVerify", "CCRC32C",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                // Users: scrypt password hashes, certificate common names (ADR 0012).
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            exclude: ["README.md"]
        ),
        // libFuzzer target for the frame and message decoders; built by tools/fuzz with
        // -sanitize=fuzzer and -DFUZZING. A plain build writes seeds and replays inputs.
        .target(name: "CFuzzerDriver"),
        .executableTarget(
            name: "rpc-fuzz",
            dependencies: [
                "FaunaRPC", "FaunaKV", "FaunaRaft", "FaunaVerify", "CFuzzerDriver",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FaunaRPCTests",
            dependencies: [
                "FaunaRPC", "FaunaRaft", "FaunaKV", "FaunaVerify", "CCRC32C",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Client library: leader discovery, retries, exactly-once write sessions, admin calls,
        // snapshot archives, verified reads. Must not link RocksDB or FaunaAudit (ADR 0001).
        .target(
            name: "FaunaClient",
            dependencies: [
                "FaunaRPC", "FaunaKV", "FaunaRaft", "FaunaVerify",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"]
        ),
        // fctl's pure parts (txn syntax, key/value encodings, output, exit codes), unit-tested.
        .target(
            name: "FctlCore",
            dependencies: [
                "FaunaClient", "FaunaRPC", "FaunaKV", "FaunaRaft",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            exclude: ["README.md"]
        ),
        .executableTarget(
            name: "fctl",
            dependencies: [
                "FctlCore", "FaunaClient", "FaunaBackup", "FaunaConfig", "FaunaRPC", "FaunaKV", "FaunaRaft", "FaunaVerify",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FaunaClientTests",
            dependencies: [
                "FaunaClient", "FctlCore", "FaunaRPC", "FaunaKV", "FaunaRaft", "FaunaVerify",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The node's pipeline over ports (docs/adr/0007, docs/ARCHITECTURE.md): the owner of the
        // Raft core, the apply stage, the audit answers. No threads of its own, no sockets, no
        // RocksDB: faunad (FaunaNode) and the node simulator (NodeSimulator) wire its ports.
        .target(
            name: "FaunaPipeline",
            dependencies: [
                "FaunaRaft", "FaunaKV", "FaunaStore", "FaunaRPC", "FaunaVerify", "FaunaAudit",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["README.md"]
        ),
        // The node simulator: real pipelines over a simulated disk (power loss), network and
        // time, in one thread from a seed (docs/TESTING.md "Node simulator"). Test support only.
        .target(
            name: "NodeSimulator",
            dependencies: [
                "FaunaPipeline", "RaftSimulator", "FaunaRaft", "FaunaKV", "FaunaStore", "FaunaRPC", "FaunaVerify", "FaunaAudit",
                // The verified reads use the client library's own checks.
                "FaunaClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"]
        ),
        .executableTarget(name: "node-sim", dependencies: ["NodeSimulator"]),
        .testTarget(
            name: "NodeSimulatorTests",
            dependencies: [
                "NodeSimulator", "FaunaPipeline", "FaunaStore", "FaunaKV", "FaunaRaft", "FaunaRPC", "FaunaVerify", "FaunaAudit",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The server: the pipeline wired to RocksDB, SwiftNIO and threads (docs/adr/0007).
        .target(
            name: "FaunaNode",
            dependencies: [
                "FaunaPipeline", "FaunaRaft", "FaunaKV", "FaunaStore", "FaunaRPC", "FaunaConfig", "FaunaVerify", "FaunaAudit",
                // The status page's monitor asks the members as a client does.
                "FaunaClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            exclude: ["README.md"]
        ),
        .executableTarget(
            name: "faunad",
            dependencies: [
                "FaunaNode", "FaunaConfig", "FaunaStore", "FaunaRPC",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // End-to-end: real faunad processes on 127.0.0.1, driven through FaunaClient and fctl
        // (both are dependencies so that `swift build --build-tests` builds them).
        .testTarget(
            name: "FaunaNodeTests",
            dependencies: [
                "faunad", "fctl", "FaunaClient", "FaunaNode", "FaunaPipeline", "FaunaRPC", "FaunaKV", "FaunaRaft", "FaunaStore", "FaunaVerify",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
