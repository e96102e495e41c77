import NIOConcurrencyHelpers
import NIOCore

/// Bytes of partial frames that all connections of one server may buffer together, counted as
/// the decoders' buffer allocations (which grow by doubling). Each connection's `FrameDecoder`
/// asks for every byte it has allocated beyond `freeBytesPerConnection`; a connection refused
/// is closed (see `InboundFrameMeter`). Without it, every one of a client
/// port's 1,024 connections could declare a 16 MiB body and send it slowly: 16 GiB of buffers.
///
/// Shared by the event loops of a server, so its counter sits behind a lock (one lock round per
/// change of a connection's charge; frames within the free allowance never take it).
public final class FrameBufferBudget: Sendable {
    /// Bytes every connection may buffer without asking: small requests — nearly all of them —
    /// never depend on the budget, so connections that fill it cannot refuse them.
    public static let freeBytesPerConnection = 64 * 1024

    /// The most bytes charged at once, over all connections.
    public let bytesMax: Int
    /// Bytes charged now; invariant 0...bytesMax.
    private let charged = NIOLockedValueBox(0)

    /// A budget of `bytesMax` bytes (at least 0).
    public init(bytesMax: Int) {
        precondition(bytesMax >= 0, "budget bytesMax \(bytesMax): want >= 0")
        self.bytesMax = bytesMax
    }

    /// Bytes charged now, over all connections.
    public var chargedBytes: Int { charged.withLockedValue { $0 } }

    /// Charges `bytes` more (true), or nothing if that would exceed `bytesMax` (false).
    func claim(_ bytes: Int) -> Bool {
        precondition(bytes >= 0, "claiming \(bytes) bytes")
        return charged.withLockedValue { charged in
            guard bytes <= bytesMax - charged else { return false }
            charged += bytes
            return true
        }
    }

    /// Gives back `bytes` charged earlier.
    func release(_ bytes: Int) {
        charged.withLockedValue { charged in
            precondition(bytes >= 0 && bytes <= charged, "releasing \(bytes) bytes of \(charged) charged")
            charged -= bytes
        }
    }
}

/// What one server connection's decoder buffers: the bytes of its partial frame, charged to the
/// server's `FrameBufferBudget` beyond the free allowance, and when that partial frame last grew
/// (the progress timeout of `ServerConnectionHandler` reads it).
///
/// Not `Sendable`: used only on its connection's event loop (by the decoder, the connection
/// handler and the close callback, all there).
final class InboundFrameMeter {
    let budget: FrameBufferBudget
    /// Bytes the decoder holds, all of an incomplete frame (it consumes whole frames at once).
    private(set) var bufferedBytes = 0
    /// When `bufferedBytes` last grew or a frame completed.
    private(set) var lastProgress: NIODeadline
    /// Bytes charged to `budget`: the decoder's allocation less the free allowance, at least 0.
    private var chargedBytes = 0
    private var isClosed = false

    init(budget: FrameBufferBudget, now: NIODeadline) {
        self.budget = budget
        self.lastProgress = now
    }

    /// Records that the decoder now holds `buffered` bytes in a buffer of `allocated` bytes
    /// (after `frameCompleted` frames were taken out, if any). Throws, charging nothing more,
    /// when the budget cannot cover the growth: the connection is then closed, which gives back
    /// what it held.
    func update(
        bufferedBytes buffered: Int, allocatedBytes allocated: Int, frameCompleted: Bool, now: NIODeadline
    ) throws(RPCDecodingError) {
        guard !isClosed else { return }
        if buffered > bufferedBytes || frameCompleted { lastProgress = now }
        let want = max(0, allocated - FrameBufferBudget.freeBytesPerConnection)
        if want > chargedBytes {
            guard budget.claim(want - chargedBytes) else {
                throw RPCDecodingError(
                    .bufferBudgetExceeded,
                    "partial frame of \(buffered) bytes in a \(allocated)-byte buffer: the server's frame buffer "
                        + "budget of \(budget.bytesMax) bytes (\(budget.chargedBytes) in use by all connections) "
                        + "cannot hold it, want less buffered")
            }
        } else if want < chargedBytes {
            budget.release(chargedBytes - want)
        }
        chargedBytes = want
        bufferedBytes = buffered
    }

    /// The connection closed: gives back its charge; later updates do nothing.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        budget.release(chargedBytes)
        chargedBytes = 0
        bufferedBytes = 0
    }
}
