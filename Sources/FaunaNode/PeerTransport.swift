import FaunaPipeline
import FaunaRPC
import FaunaRaft
import Logging
import NIOCore

/// Outbound Raft traffic: one `PeerLink` per member (FaunaRPC batches per flush, bounds the
/// queue and reconnects with backoff), created at start and when the member joins (or when
/// first needed) from the member directory, and shut down when the member leaves the
/// configuration.
///
/// `@unchecked Sendable`: `links` is used only by the owner thread (`send`, `reconcile`) and,
/// after that thread has finished, by `shutdown`.
final class PeerTransport: PeerSender, @unchecked Sendable {
    private var links: [NodeID: PeerLink] = [:]
    private let identity: PeerIdentity
    private let members: MemberDirectory
    private let group: any EventLoopGroup
    private let tls: TLSContexts?
    private let logger: Logger
    /// Told when a peer refuses our hello because it has applied this node's removal.
    private let onRemoved: @Sendable (NodeID, String) -> Void

    init(
        identity: PeerIdentity, members: MemberDirectory, group: any EventLoopGroup, tls: TLSContexts?, logger: Logger,
        onRemoved: @escaping @Sendable (NodeID, String) -> Void
    ) {
        self.identity = identity
        self.members = members
        self.group = group
        self.tls = tls
        self.logger = logger
        self.onRemoved = onRemoved
    }

    /// Sends each message on its destination's link, keeping the order per destination.
    func send(_ messages: [Message]) {
        guard !messages.isEmpty else { return }
        if messages.count == 1 || messages.allSatisfy({ $0.to == messages[0].to }) {
            link(for: messages[0].to)?.send(messages)
            return
        }
        var byPeer: [NodeID: [Message]] = [:]
        for m in messages { byPeer[m.to, default: []].append(m) }
        for (peer, batch) in byPeer { link(for: peer)?.send(batch) }
    }

    private func link(for peer: NodeID) -> PeerLink? {
        if let link = links[peer] { return link }
        guard peer != identity.nodeID, let addresses = members.addresses(of: peer) else {
            logger.debug("no address for peer \(peer): no link (its messages are dropped)")
            return nil
        }
        var configuration = PeerLinkConfiguration()
        configuration.client.onPeerKey = { [members] node, key in members.recordKey(key, for: node) }
        configuration.client.tls = tls
        configuration.onRemoved = onRemoved
        let link = PeerLink(
            to: peer, at: addresses.peer, identity: identity, group: group, configuration: configuration, logger: logger)
        link.start()
        links[peer] = link
        return link
    }

    /// Opens a link to every member that has none (a full mesh, as etcd keeps: the handshake
    /// tells each node every member's public key, which `members` reports, even between two
    /// followers that exchange no Raft messages) and closes links to nodes that are no longer
    /// members, whose hellos `members` refuses from now on (by the key they last presented).
    func reconcile(with conf: ConfState, me: NodeID) {
        for member in conf.members where member != me {
            members.recordMembership(of: member)
            _ = link(for: member)
        }
        for (peer, link) in links where !conf.isMember(peer) {
            links[peer] = nil
            members.recordRemoval(of: peer)
            logger.info("closing the link to a removed member", metadata: ["peer": "\(peer)"])
            // Not at once: the messages already queued on it (the append or heartbeat that
            // carries the commit of the removal) are what tell the removed node to stop, and
            // shutting a link down drops its queue. Nothing new is queued on it now.
            Task {
                try? await Task.sleep(for: .seconds(2))
                await link.shutdown()
            }
        }
    }

    func shutdown() async {
        let all = links.values
        links = [:]
        for link in all { await link.shutdown() }
    }
}
