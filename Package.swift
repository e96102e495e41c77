// swift-tools-version:6.0
import PackageDescription

// Module boundaries and import rules: shared/DESIGN.md and docs/adr/0001-modules.md.
// tools/check-imports enforces that FaunaRaft imports only the standard library.
let package = Package(
    name: "Fauna",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "FaunaRaft", targets: ["FaunaRaft"]),
    ],
    dependencies: [],
    targets: [
        // Consensus core: pure, deterministic, no IO, no clocks, no threads.
        .target(name: "FaunaRaft"),
        // Deterministic cluster simulator (test support; not part of any product).
        .target(name: "RaftSimulator", dependencies: ["FaunaRaft"]),
        .executableTarget(name: "raft-sim", dependencies: ["RaftSimulator"]),
        // Heap allocation counter for benchmarks (interposes malloc; never in a product).
        .target(name: "CAllocationCounter"),
        .executableTarget(name: "raft-bench", dependencies: ["FaunaRaft", "CAllocationCounter"]),
        .testTarget(name: "FaunaRaftTests", dependencies: ["FaunaRaft", "RaftSimulator"]),
    ],
    swiftLanguageModes: [.v6]
)
