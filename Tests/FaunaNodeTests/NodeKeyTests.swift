import FaunaStore
import Foundation
import Testing

@testable import FaunaNode

/// `<data>/node.key`: in clear without encryption at rest, sealed by the master key with it
/// (docs/SECURITY.md "Encryption at rest"), and moved between the two forms and master keys on
/// start.
@Suite struct NodeKeyTests {
    static let master = MasterKey(bytes: [UInt8](repeating: 0x4D, count: 32))
    static let other = MasterKey(bytes: [UInt8](repeating: 0x6F, count: 32))

    func withDirectory(_ body: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nodekey-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(dir)
    }

    func file(_ dir: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: "\(dir)/node.key") ?? Data()) }

    func publicKey(_ dir: String, master: MasterKey? = nil, previous: MasterKey? = nil, notices: inout [String]) throws -> [UInt8] {
        var heard: [String] = []
        let signer = try NodeKey.loadOrCreate(dataDirectory: dir, master: master, previous: previous) { heard.append($0) }
        notices += heard
        return Array(signer.publicKey.rawRepresentation)
    }

    @Test func inClearWithoutAMasterKey() throws {
        try withDirectory { dir in
            var notices: [String] = []
            let key = try publicKey(dir, notices: &notices)
            #expect(file(dir).count == 32)
            #expect(try publicKey(dir, notices: &notices) == key)
            #expect(notices.isEmpty)
        }
    }

    @Test func sealedByTheMasterKeyAndRefusedWithoutIt() throws {
        try withDirectory { dir in
            var notices: [String] = []
            let key = try publicKey(dir, master: Self.master, notices: &notices)
            let sealed = file(dir)
            #expect(sealed.starts(with: Array("FNS1".utf8)) && sealed.count == 4 + 8 + 12 + 32 + 16)
            #expect(try publicKey(dir, master: Self.master, notices: &notices) == key)
            #expect(file(dir) == sealed, "an opened key is not rewritten")
            #expect(notices.isEmpty)
            #expect { _ = try publicKey(dir, notices: &notices) } throws: { error in
                "\(error)".contains("sealed by master key \(Self.master.fingerprintHex)") && "\(error)".contains("configure [encryption]")
            }
            #expect { _ = try publicKey(dir, master: Self.other, notices: &notices) } throws: { error in
                "\(error)".contains(Self.master.fingerprintHex) && "\(error)".contains(Self.other.fingerprintHex)
            }
            // One changed byte of the ciphertext: refused, not a key of another node.
            var changed = sealed
            changed[30] ^= 1
            try Data(changed).write(to: URL(fileURLWithPath: "\(dir)/node.key"))
            #expect { _ = try publicKey(dir, master: Self.master, notices: &notices) } throws: { "\($0)".contains("does not open") }
        }
    }

    @Test func aKeyInClearIsSealedWhenEncryptionIsTurnedOn() throws {
        try withDirectory { dir in
            var notices: [String] = []
            let key = try publicKey(dir, notices: &notices)
            let seed = file(dir)
            #expect(try publicKey(dir, master: Self.master, notices: &notices) == key)
            #expect(notices == ["signing key sealed by the master key (it was in clear)"])
            let sealed = file(dir)
            #expect(MasterKey.sealedFileFingerprint(sealed) == Self.master.fingerprintHex)
            #expect(!sealed.indices.dropLast(31).contains { Array(sealed[$0..<$0 + 32]) == seed }, "the seed is not in the file")
            let mode = try FileManager.default.attributesOfItem(atPath: "\(dir)/node.key")[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
    }

    @Test func aNewMasterKeySealsItAgain() throws {
        try withDirectory { dir in
            var notices: [String] = []
            let key = try publicKey(dir, master: Self.other, notices: &notices)
            #expect(try publicKey(dir, master: Self.master, previous: Self.other, notices: &notices) == key)
            #expect(notices == ["signing key sealed again by the new master key"])
            #expect(MasterKey.sealedFileFingerprint(file(dir)) == Self.master.fingerprintHex)
            #expect(try publicKey(dir, master: Self.master, notices: &notices) == key)
        }
    }
}
