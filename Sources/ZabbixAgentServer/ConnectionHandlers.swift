import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ZabbixProtocol

/// What the handlers of one connection share: who the peer is, what to answer, where to log.
struct PassiveExchange: Sendable {
    var peer: String
    var items: AgentItems
    var timeout: TimeAmount
    var answerers: NIOThreadPool
    var logger: Logger
    var limiter: LogLimiter

    /// zabbix_agentd's "failed to accept an incoming connection: from X: reason", rate-limited per kind.
    func refused(_ kind: String, _ reason: String) {
        limiter.log(logger, .warning, kind, "failed to accept an incoming connection: from \(peer): \(reason)")
    }
}

/// Looks at the first byte, as zabbix_agentd does: 0x16 starts a TLS handshake, anything else is
/// a plain request. Puts TLS in front of the framing or not, then steps aside.
final class TransportSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let tlsHandshakeRecord: UInt8 = 0x16

    let tls: PSKServerTLS?
    let acceptsUnencrypted: Bool
    let exchange: PassiveExchange

    init(tls: PSKServerTLS?, acceptsUnencrypted: Bool, exchange: PassiveExchange) {
        self.tls = tls
        self.acceptsUnencrypted = acceptsUnencrypted
        self.exchange = exchange
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = Self.unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        if first == Self.tlsHandshakeRecord {
            guard let tls else {
                exchange.refused("tls not allowed", "TLS connections are not allowed")
                return context.close(promise: nil)
            }
            do {
                try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.context), position: .after(self))
            } catch {
                return context.close(promise: nil)
            }
        } else if !acceptsUnencrypted {
            exchange.refused("unencrypted not allowed", "unencrypted connections are not allowed")
            return context.close(promise: nil)
        }
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// Takes the one request frame, answers it off the event loop, writes the reply with the
/// request's flags (`zbx_send_response_same`) and closes. Each phase, reading and answering,
/// has `timeout`; a peer too slow for it is cut off, without a reply.
final class PassiveRequestHandler: ChannelInboundHandler {
    typealias InboundIn = ZBXDFrame

    let exchange: PassiveExchange
    private var deadline: Scheduled<Void>?
    private var answered = false

    init(exchange: PassiveExchange) {
        self.exchange = exchange
    }

    func handlerAdded(context: ChannelHandlerContext) {
        deadline = closing(context.channel, after: exchange.timeout, phase: "reading the request")
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        answered = true
        let frame = Self.unwrapInboundIn(data)
        let channel = context.channel
        deadline?.cancel()
        let replyFlags = frame.flags.intersection(.compressed)
        let reply: EventLoopFuture<[UInt8]?>
        do {
            let request = try PassiveCheckRequest(payload: frame.payload[...])
            // A 7.0 server says how long it waits for each item; otherwise Timeout holds.
            let asked = request.items.compactMap(\.timeoutSeconds).max().map { TimeAmount.seconds(Int64(min(max($0, 1), 30))) }
            deadline = closing(channel, after: asked ?? exchange.timeout, phase: "answering")
            let items = exchange.items
            reply = exchange.answerers.runIfActive(eventLoop: context.eventLoop) {
                // Cut off while it waited its turn: nobody would read the answer.
                guard channel.isActive else { return nil }
                return PassiveCheckResult.replyPayload(request.items.map { items.answer($0.key) }, form: request.form)
            }
            exchange.logger.debug("request from \(exchange.peer): \(request.items.map(\.key))")
        } catch {
            deadline = closing(channel, after: exchange.timeout, phase: "answering")
            reply = context.eventLoop.makeSucceededFuture(error.replyPayload)
        }
        reply.whenComplete { result in
            guard case .success(let payload?) = result else { return channel.close(promise: nil) }
            channel.writeAndFlush(ZBXDFrame(payload: payload, flags: replyFlags)).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let frameError as ZBXDError:
            // zabbix_agentd: "Message from X is missing header. Message ignored."
            exchange.limiter.log(exchange.logger, .warning, "frame", "message from \(exchange.peer) ignored: \(frameError)")
        case let tlsError as NIOSSLError:
            exchange.refused("tls", "TLS handshake failed: \(describe(tlsError)) (wrong PSK or identity?)")
        case let ioError as IOError where ioError.errnoCode == ECONNRESET || ioError.errnoCode == EPIPE:
            exchange.logger.debug("connection from \(exchange.peer) ended: \(ioError)")
        default:
            exchange.limiter.log(exchange.logger, .notice, "connection error", "connection from \(exchange.peer): \(error)")
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    private func closing(_ channel: any Channel, after timeout: TimeAmount, phase: String) -> Scheduled<Void> {
        let exchange = self.exchange
        return channel.eventLoop.scheduleTask(in: timeout) {
            exchange.logger.debug("connection from \(exchange.peer) closed: timed out \(phase)")
            channel.close(promise: nil)
        }
    }
}

/// BoringSSL's error stack in its reason names: "decryption_failed_or_bad_record_mac".
private func describe(_ error: NIOSSLError) -> String {
    guard case .handshakeFailed(.sslError(let stack)) = error, !stack.isEmpty else { return "\(error)" }
    return stack.map { entry in
        // "Error: 268435595 error:1000008b:SSL routines:OPENSSL_internal:DECRYPTION_FAILED_OR_BAD_RECORD_MAC at file:line"
        let fields = "\(entry)".split(separator: ":")
        guard let library = fields.firstIndex(of: "OPENSSL_internal"), library + 1 < fields.count else { return "\(entry)" }
        return fields[library + 1].prefix { $0 != " " }.lowercased()
    }.joined(separator: "; ")
}
