// swift-tools-version:6.0
import PackageDescription

// Module boundaries and import rules: shared/DESIGN.md and docs/adr/0001-modules.md.
// tools/check-imports enforces that FaunaRaft imports only the standard library.
let package = Package(
    name: "Fauna",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "FaunaRaft", targets: ["FaunaRaft"]),
        .library(name: "FaunaKV", targets: ["FaunaKV"]),
    ],
    dependencies: [],
    targets: [
        // Consensus core: pure, deterministic, no IO, no clocks, no threads.
        .target(name: "FaunaRaft"),
        // Deterministic cluster simulator (test support; not part of any product).
        .target(name: "RaftSimulator", dependencies: ["FaunaRaft"]),
        .executableTarget(name: "raft-sim", dependencies: ["RaftSimulator"]),
        .executableTarget(name: "raft-bench", dependencies: ["FaunaRaft", "RaftSimulator"]),
        .testTarget(name: "FaunaRaftTests", dependencies: ["FaunaRaft", "RaftSimulator"]),
        // KV state machine: pure logic over a small storage interface (docs/adr/0003).
        // Standard library only (tools/check-imports).
        .target(name: "FaunaKV", exclude: ["README.md"]),
        .testTarget(name: "FaunaKVTests", dependencies: ["FaunaKV"]),
    ],
    swiftLanguageModes: [.v6]
)
