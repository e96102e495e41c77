import Crypto
import FaunaVerify
import Testing

/// Decodes lowercase or uppercase hex; traps on bad input (test constants only).
func hexBytes(_ hex: String) -> [UInt8] {
    let chars = Array(hex.utf8)
    precondition(chars.count % 2 == 0, "odd hex length in test constant \(hex)")
    func nibble(_ c: UInt8) -> UInt8 {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: preconditionFailure("bad hex digit in test constant \(hex)")
        }
    }
    return stride(from: 0, to: chars.count, by: 2).map { nibble(chars[$0]) << 4 | nibble(chars[$0 + 1]) }
}

/// A hash from 64 hex digits (test constants only).
func h(_ hex: String) -> MerkleHash {
    guard let hash = MerkleHash(bytes: hexBytes(hex)) else { preconditionFailure("not 32 bytes: \(hex)") }
    return hash
}

/// The hash with bit `bit` (0 = most significant bit of byte 0) flipped.
func flipped(_ hash: MerkleHash, bit: Int) -> MerkleHash {
    var bytes = hash.bytes
    bytes[bit / 8] ^= 0x80 >> UInt8(bit % 8)
    return MerkleHash(bytes: bytes)!
}

/// The eight leaf inputs of Certificate Transparency's reference tree (CT merkle_test.cc,
/// transparency-dev/merkle testonly/constants.go).
let ctLeafInputs: [[UInt8]] = [
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
].map(hexBytes)

/// Their leaf hashes (level 0 of testonly.NodeHashes).
let ctLeafHashes: [MerkleHash] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
].map(h)

/// Roots of the reference tree for sizes 0...8 (testonly.RootHashes).
let ctRoots: [MerkleHash] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
].map(h)

/// An inclusion vector of the reference tree (transparency-dev/merkle testdata/inclusion/N/happy-path.json).
struct InclusionVector: Sendable, CustomStringConvertible {
    var leafIndex: UInt64
    var treeSize: UInt64
    var path: [MerkleHash]
    var proof: InclusionProof { InclusionProof(leafIndex: LeafIndex(leafIndex), treeSize: treeSize, path: path) }
    var leafHash: MerkleHash { ctLeafHashes[Int(leafIndex)] }
    var root: MerkleHash { ctRoots[Int(treeSize)] }
    var description: String { "leaf \(leafIndex) of \(treeSize)" }
}

let ctInclusionVectors: [InclusionVector] = [
    InclusionVector(leafIndex: 0, treeSize: 1, path: []),
    InclusionVector(leafIndex: 0, treeSize: 8, path: [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ].map(h)),
    InclusionVector(leafIndex: 5, treeSize: 8, path: [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ].map(h)),
    InclusionVector(leafIndex: 2, treeSize: 3, path: [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    ].map(h)),
    InclusionVector(leafIndex: 1, treeSize: 5, path: [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ].map(h)),
]

/// A consistency vector of the reference tree (testdata/consistency/N/happy-path.json).
struct ConsistencyVector: Sendable, CustomStringConvertible {
    var oldSize: UInt64
    var newSize: UInt64
    var path: [MerkleHash]
    var proof: ConsistencyProof { ConsistencyProof(oldSize: oldSize, newSize: newSize, path: path) }
    var oldRoot: MerkleHash { ctRoots[Int(oldSize)] }
    var newRoot: MerkleHash { ctRoots[Int(newSize)] }
    var description: String { "\(oldSize) to \(newSize)" }
}

let ctConsistencyVectors: [ConsistencyVector] = [
    ConsistencyVector(oldSize: 1, newSize: 1, path: []),
    ConsistencyVector(oldSize: 1, newSize: 8, path: [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ].map(h)),
    ConsistencyVector(oldSize: 6, newSize: 8, path: [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ].map(h)),
    ConsistencyVector(oldSize: 2, newSize: 5, path: [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ].map(h)),
    ConsistencyVector(oldSize: 6, newSize: 7, path: [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ].map(h)),
]

/// Runs `body` and returns the `VerificationError` it throws; nil if it does not throw.
/// Any other error is recorded as a test failure.
func verificationError(_ body: () throws -> Void) -> VerificationError? {
    do {
        try body()
        return nil
    } catch let error as VerificationError {
        return error
    } catch {
        Issue.record("got \(error), want a VerificationError")
        return nil
    }
}

/// A deterministic test key: the Ed25519 private key whose 32-byte seed is `seed` repeated.
func testKey(_ seed: UInt8) -> Curve25519.Signing.PrivateKey {
    try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: seed, count: 32))
}
