import FaunaRPC

/// A member's peer and client addresses; as a membership change's context:
/// `peer=HOST:PORT,client=HOST:PORT` (UTF-8).
public struct MemberAddresses: Hashable, Sendable {
    public var peer: Endpoint
    public var client: Endpoint

    public var encoded: [UInt8] { Array("peer=\(peer),client=\(client)".utf8) }

    public init(peer: Endpoint, client: Endpoint) {
        self.peer = peer
        self.client = client
    }

    public init?(decoding bytes: [UInt8]) {
        guard bytes.count <= 600 else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        var peer: Endpoint?
        var client: Endpoint?
        for field in text.split(separator: ",") {
            if field.hasPrefix("peer=") { peer = Endpoint(parsing: String(field.dropFirst(5))) }
            if field.hasPrefix("client=") { client = Endpoint(parsing: String(field.dropFirst(7))) }
        }
        guard let peer, let client else { return nil }
        self.init(peer: peer, client: client)
    }
}
