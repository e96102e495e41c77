import NIOCore

/// Sits between the frame codec and the socket (or the TLS handler) of every connection: the
/// frames written between two flushes leave as one buffer, and a flush waits for the end of the
/// event loop's current round of tasks, so the answers or calls that other threads queue on
/// the connection meanwhile share it: one `write` syscall (and with TLS one record and one
/// BoringSSL write) for all of them. With 64 callers on one connection, each call and each
/// answer had been its own flush and syscall, and the other end read them one at a time
/// (docs/PERFORMANCE.md "Writes gathered per flush on plaintext connections too"). A buffer
/// of 16 KiB or more (a TLS record's most) passes alone.
final class WriteCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let bytesMax = 16 * 1024

    private var pending: ByteBuffer?
    private var promise: EventLoopPromise<Void>?
    private var flushScheduled = false
    private var removed = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var buffer = unwrapOutboundIn(data)
        if var gathered = pending {
            if gathered.readableBytes + buffer.readableBytes <= Self.bytesMax {
                pending = nil  // one reference: the append does not copy what is gathered
                gathered.writeBuffer(&buffer)
                pending = gathered
                join(promise, on: context.eventLoop)
                return
            }
            forward(context)
        }
        if buffer.readableBytes >= Self.bytesMax {
            context.write(data, promise: promise)
        } else {
            pending = buffer
            self.promise = promise
        }
    }

    func flush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = bound.value
            handler.flushScheduled = false
            guard !handler.removed else { return }
            handler.forward(context)
            context.flush()
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // What was written before a close goes out first (an answer, then the close).
        if pending != nil {
            forward(context)
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        removed = true
        pending = nil
        promise?.fail(ChannelError.ioOnClosedChannel)
        promise = nil
    }

    private func join(_ other: EventLoopPromise<Void>?, on loop: any EventLoop) {
        guard let other else { return }
        guard let mine = promise else {
            promise = other
            return
        }
        let both = loop.makePromise(of: Void.self)
        both.futureResult.cascade(to: mine)
        both.futureResult.cascade(to: other)
        promise = both
    }

    private func forward(_ context: ChannelHandlerContext) {
        guard let gathered = pending else { return }
        pending = nil
        let promise = promise
        self.promise = nil
        context.write(wrapOutboundOut(gathered), promise: promise)
    }
}
