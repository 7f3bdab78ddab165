import Glibc
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import ZabbixProtocol

/// Why an exchange with a Zabbix server or proxy failed.
public enum ZabbixSendError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum ConnectFailure: Equatable, Sendable {
        case refused
        case timedOut(seconds: Double)
        case other(String)
    }

    /// No connection was made; the next node of a cluster is tried.
    case cannotConnect(ZabbixAddress, ConnectFailure)
    /// Connected, but no complete reply before the deadline.
    case timedOut(ZabbixAddress, seconds: Double)
    case closedWithoutReply(ZabbixAddress)
    case badFrame(ZabbixAddress, ZBXDError)
    /// The reply was a frame but not a trapper response.
    case badResponse(ZabbixAddress, SenderProtocolError)
    case connectionFailed(ZabbixAddress, reason: String)
    /// Connected, but the TLS handshake failed or the server closed during it. With a PSK that is
    /// nearly always a key or identity the server does not have for this host. Nothing was sent,
    /// and, as in Zabbix, where `zbx_tcp_connect` includes the handshake, the next node of a
    /// cluster is tried.
    case tlsHandshakeFailed(ZabbixAddress, reason: String)
    /// TLS cannot be set up on this side; nothing was sent anywhere.
    case tlsUnavailable(reason: String)
    /// The task was cancelled (a shutdown deadline, a reload) before the reply came; the
    /// connection was closed at once.
    case cancelled(ZabbixAddress)

    public var isConnectFailure: Bool {
        switch self {
        case .cannotConnect, .tlsHandshakeFailed: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .cannotConnect(let node, .refused): return "cannot connect to \(node): connection refused"
        case .cannotConnect(let node, .timedOut(let seconds)):
            return "cannot connect to \(node): timed out after \(formatSeconds(seconds))"
        case .cannotConnect(let node, .other(let reason)): return "cannot connect to \(node): \(reason)"
        case .timedOut(let node, let seconds): return "no reply from \(node): timed out after \(formatSeconds(seconds))"
        case .closedWithoutReply(let node): return "\(node) closed the connection without a reply"
        case .badFrame(let node, let error): return "bad reply from \(node): \(error)"
        case .badResponse(let node, let error): return "bad reply from \(node): \(error)"
        case .connectionFailed(let node, let reason): return "connection to \(node) failed: \(reason)"
        case .tlsHandshakeFailed(let node, let reason):
            return "TLS handshake with \(node) failed: \(reason) (wrong PSK or identity?)"
        case .tlsUnavailable(let reason): return "cannot use TLS: \(reason)"
        case .cancelled(let node): return "sending to \(node) was cancelled"
        }
    }
}

/// The outcome of sending to one `ServerActive` entry.
public struct ClusterDelivery: Sendable {
    /// The node that took the connection; nil when no node of the cluster could be reached.
    public var node: ZabbixAddress?
    public var result: Result<TrapperResponse, ZabbixSendError>
    /// The nodes that could not be reached before `node`, in the order tried.
    public var connectFailures: [ZabbixSendError]
    /// The cluster with unreachable nodes moved to the end; pass it to the next send.
    public var cluster: ServerCluster
}

/// Sends ZBXD frames to Zabbix servers or proxies over TCP, one request per connection,
/// and reads one reply frame; over TLS with a pre-shared key when `psk` is set.
public struct ZabbixSenderClient: Sendable {
    public var group: any EventLoopGroup
    /// Covers connect, TLS handshake, write and read together. zabbix_sender's default is 60 s.
    public var timeout: TimeAmount
    public var maximumReplySize: UInt64
    /// TLS with this pre-shared key on every connection (zabbix_sender's `--tls-connect psk`);
    /// nil sends unencrypted.
    public var psk: PreSharedKey? {
        didSet { tls = psk.map(PSKClientTLS.init) }
    }
    private var tls: PSKClientTLS?

    /// The TLS 1.2 PSK suites offered, in order of preference: those that BoringSSL has and that
    /// Debian's GnuTLS-built Zabbix 6.0 accepts (it takes no AES-256, CHACHA20 or TLS 1.3).
    public static let pskCipherSuites = "ECDHE-PSK-AES128-CBC-SHA:PSK-AES128-CBC-SHA"
    /// BoringSSL's `PSK_MAX_IDENTITY_LEN`, below Zabbix's 512 bytes.
    public static let maximumPSKIdentityBytes = 128

    /// TLS as Zabbix speaks it with a pre-shared key, for either side: TLS 1.2 only, the PSK
    /// suites both BoringSSL and Debian's GnuTLS-built Zabbix have, no certificates, no
    /// renegotiation. The caller adds its side's PSK provider.
    public static func pskTLSConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makePreSharedKeyConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.maximumTLSVersion = .tlsv12
        configuration.cipherSuites = pskCipherSuites
        configuration.certificateVerification = .none
        configuration.renegotiationSupport = .none
        return configuration
    }

    /// Why this build cannot use `psk` although Zabbix takes it, or nil.
    public static func pskProblem(_ psk: PreSharedKey) -> String? {
        let identityBytes = psk.identity.utf8.count
        guard identityBytes > maximumPSKIdentityBytes else { return nil }
        return """
            PSK identity of \(identityBytes) bytes: Zabbix takes up to \(PreSharedKey.maximumIdentityBytes), \
            but this build's TLS library (BoringSSL) sends at most \(maximumPSKIdentityBytes); use a shorter identity on the host and here
            """
    }

    public init(
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, timeout: TimeAmount = .seconds(60),
        maximumReplySize: UInt64 = ZBXDDecoder.defaultMaximumSize, psk: PreSharedKey? = nil
    ) {
        self.group = group
        self.timeout = timeout
        self.maximumReplySize = maximumReplySize
        self.psk = psk
        self.tls = psk.map(PSKClientTLS.init)
    }

    /// Connects to `node`, writes `frame`, returns the reply frame and closes.
    public func exchange(_ frame: ZBXDFrame, with node: ZabbixAddress) async throws(ZabbixSendError) -> ZBXDFrame {
        let sslContext: NIOSSLContext?
        switch tls?.context {
        case nil: sslContext = nil
        case .success(let context): sslContext = context
        case .failure(let error): throw error
        }
        let eventLoop = group.next()
        let deadline = NIODeadline.now() + timeout
        let seconds = Double(timeout.nanoseconds) / 1e9
        let reply = eventLoop.makePromise(of: ZBXDFrame.self)
        let maximumReplySize = maximumReplySize
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    // TLS first, so that the ZBXD framing runs inside it; the handshake starts on
                    // connect and the frame written below waits in the handler until it is done.
                    if let sslContext {
                        try pipeline.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: nil))
                    }
                    try pipeline.addHandlers(
                        ByteToMessageHandler(ZBXDFrameDecoderHandler(maximumSize: maximumReplySize)),
                        MessageToByteHandler(ZBXDFrameEncoderHandler()),
                        ReplyHandler(node: node, reply: reply, handshaking: sslContext != nil))
                }
            }
        bootstrap.connect(host: node.host, port: Int(node.port)).whenComplete { result in
            switch result {
            case .failure(let error):
                reply.fail(ZabbixSendError.cannotConnect(node, connectFailure(error, seconds: seconds)))
            case .success(let channel):
                // The connect timeout used up part of the budget; the read gets what is left.
                let timer = channel.eventLoop.scheduleTask(deadline: deadline) {
                    reply.fail(ZabbixSendError.timedOut(node, seconds: seconds))
                }
                reply.futureResult.whenComplete { _ in
                    timer.cancel()
                    channel.close(promise: nil)
                }
                channel.writeAndFlush(frame).whenFailure { error in
                    reply.fail(sendError(error, node: node, duringHandshake: false))
                }
            }
        }
        do {
            // Cancellation fails the exchange at once; the completion above then closes the
            // channel, or the connect's completion does when it comes.
            return try await withTaskCancellationHandler {
                try await reply.futureResult.get()
            } onCancel: {
                reply.fail(ZabbixSendError.cancelled(node))
            }
        } catch let error as ZabbixSendError {
            throw error
        } catch {
            throw .connectionFailed(node, reason: "\(error)")
        }
    }

    /// Sends `frame` to the first reachable node of `cluster`, as `zbx_tcp_connect_failover` does:
    /// only a failed connect (with TLS: or a failed handshake) moves on to the next node; a failure
    /// after that is final.
    public func send(_ frame: ZBXDFrame, to cluster: ServerCluster) async -> ClusterDelivery {
        precondition(!cluster.nodes.isEmpty, "a ServerActive entry has at least one node")
        var reordered = cluster
        var connectFailures: [ZabbixSendError] = []
        for node in cluster.nodes {
            let result: Result<TrapperResponse, ZabbixSendError>
            do {
                let replyFrame = try await exchange(frame, with: node)
                do {
                    result = .success(try TrapperResponse(json: replyFrame.payload[...]))
                } catch {
                    result = .failure(.badResponse(node, error))
                }
            } catch where error.isConnectFailure {
                connectFailures.append(error)
                reordered.demote(node)
                continue
            } catch {
                result = .failure(error)
            }
            return ClusterDelivery(node: node, result: result, connectFailures: connectFailures, cluster: reordered)
        }
        return ClusterDelivery(
            node: nil, result: .failure(connectFailures.last!), connectFailures: connectFailures, cluster: reordered)
    }

    /// Sends `request` to every `ServerActive` entry in parallel, as zabbix_sender does with one
    /// thread per entry. Deliveries come back in the order of `clusters`.
    public func send(_ request: SenderDataRequest, toEach clusters: [ServerCluster]) async throws(SenderProtocolError)
        -> [ClusterDelivery]
    {
        let frame = try request.frame()
        return await withTaskGroup(of: (Int, ClusterDelivery).self) { group in
            for (index, cluster) in clusters.enumerated() {
                group.addTask { (index, await send(frame, to: cluster)) }
            }
            var deliveries = [ClusterDelivery?](repeating: nil, count: clusters.count)
            for await (index, delivery) in group {
                deliveries[index] = delivery
            }
            return deliveries.map { $0! }
        }
    }
}

/// Completes the exchange with the first reply frame, a frame error, or the close that came first.
private final class ReplyHandler: ChannelInboundHandler {
    typealias InboundIn = ZBXDFrame

    private let node: ZabbixAddress
    private let reply: EventLoopPromise<ZBXDFrame>
    /// True from connect until the TLS handshake completes; false without TLS.
    private var handshaking: Bool

    init(node: ZabbixAddress, reply: EventLoopPromise<ZBXDFrame>, handshaking: Bool) {
        self.node = node
        self.reply = reply
        self.handshaking = handshaking
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reply.succeed(unwrapInboundIn(data))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent { handshaking = false }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        reply.fail(sendError(error, node: node, duringHandshake: handshaking))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A no-op when a reply or an error completed the promise already.
        if handshaking {
            reply.fail(ZabbixSendError.tlsHandshakeFailed(node, reason: "the server closed the connection"))
        } else {
            reply.fail(ZabbixSendError.closedWithoutReply(node))
        }
        context.fireChannelInactive()
    }
}

/// The client side of TLS with a pre-shared key: TLS 1.2 only, the PSK suites Debian's Zabbix
/// takes, no certificates. Made once per key, used for every connection.
private struct PSKClientTLS: Sendable {
    let context: Result<NIOSSLContext, ZabbixSendError>

    init(psk: PreSharedKey) {
        if let problem = ZabbixSenderClient.pskProblem(psk) {
            context = .failure(.tlsUnavailable(reason: problem))
            return
        }
        var configuration = ZabbixSenderClient.pskTLSConfiguration()
        let identity = psk.identity
        let key = NIOSSLSecureBytes(psk.key)
        // The server's hint, if any, is ignored: Zabbix sends none and the identity is configured.
        configuration.pskClientProvider = { _ in PSKClientIdentityResponse(key: key, identity: identity) }
        do {
            context = .success(try NIOSSLContext(configuration: configuration))
        } catch {
            context = .failure(.tlsUnavailable(reason: "\(error)"))
        }
    }
}

/// What a pipeline error means for the exchange. During a TLS handshake every failure, a TLS
/// alert or a close or reset by the server, is a handshake failure: GnuTLS-built Zabbix answers a
/// wrong PSK or an unknown identity either way.
private func sendError(_ error: any Error, node: ZabbixAddress, duringHandshake: Bool) -> ZabbixSendError {
    if let sendError = error as? ZabbixSendError { return sendError }
    if let frameError = error as? ZBXDError { return .badFrame(node, frameError) }
    if case .handshakeFailed(let tlsError)? = error as? NIOSSLError {
        return .tlsHandshakeFailed(node, reason: describeHandshakeFailure(tlsError))
    }
    if duringHandshake {
        if let ioError = error as? IOError, ioError.errnoCode == ECONNRESET {
            return .tlsHandshakeFailed(node, reason: "the server reset the connection")
        }
        return .tlsHandshakeFailed(node, reason: "\(error)")
    }
    return .connectionFailed(node, reason: "\(error)")
}

/// BoringSSL's error stack in a few words: `SSLV3_ALERT_BAD_RECORD_MAC` becomes
/// "the server sent TLS alert bad_record_mac".
private func describeHandshakeFailure(_ error: BoringSSLError) -> String {
    guard case .sslError(let stack) = error else { return "\(error)" }
    if stack.isEmpty || stack.contains(.eofDuringHandshake) { return "the server closed the connection" }
    let reasons = stack.map { entry -> String in
        // "Error: 268436500 error:10000414:SSL routines:OPENSSL_internal:SSLV3_ALERT_BAD_RECORD_MAC at file:line"
        let text = "\(entry)"
        let fields = text.split(separator: ":")
        guard let library = fields.firstIndex(of: "OPENSSL_internal"), library + 1 < fields.count else { return text }
        let reason = fields[library + 1].prefix { $0 != " " }
        let words = reason.split(separator: "_")
        if let alert = words.firstIndex(of: "ALERT"), alert + 1 < words.count {
            return "the server sent TLS alert \(words[(alert + 1)...].joined(separator: "_").lowercased())"
        }
        return reason.lowercased()
    }
    return reasons.joined(separator: "; ")
}

private func connectFailure(_ error: any Error, seconds: Double) -> ZabbixSendError.ConnectFailure {
    var causes: [any Error] = [error]
    if let connectionError = error as? NIOConnectionError {
        if let dnsError = connectionError.dnsAError ?? connectionError.dnsAAAAError {
            return .other("cannot resolve host: \(dnsError)")
        }
        causes = connectionError.connectionErrors.map(\.error)
    }
    if causes.contains(where: { ($0 as? IOError)?.errnoCode == ECONNREFUSED }) { return .refused }
    if causes.contains(where: { if case .connectTimeout? = $0 as? ChannelError { true } else { false } }) {
        return .timedOut(seconds: seconds)
    }
    return .other(causes.map { "\($0)" }.joined(separator: "; "))
}

private func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
}
