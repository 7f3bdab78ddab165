#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix
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

    public var isConnectFailure: Bool {
        if case .cannotConnect = self { return true }
        return false
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
/// and reads one reply frame.
public struct ZabbixSenderClient: Sendable {
    public var group: any EventLoopGroup
    /// Covers connect, write and read together. zabbix_sender's default is 60 s.
    public var timeout: TimeAmount
    public var maximumReplySize: UInt64

    public init(
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, timeout: TimeAmount = .seconds(60),
        maximumReplySize: UInt64 = ZBXDDecoder.defaultMaximumSize
    ) {
        self.group = group
        self.timeout = timeout
        self.maximumReplySize = maximumReplySize
    }

    /// Connects to `node`, writes `frame`, returns the reply frame and closes.
    public func exchange(_ frame: ZBXDFrame, with node: ZabbixAddress) async throws(ZabbixSendError) -> ZBXDFrame {
        let eventLoop = group.next()
        let deadline = NIODeadline.now() + timeout
        let seconds = Double(timeout.nanoseconds) / 1e9
        let reply = eventLoop.makePromise(of: ZBXDFrame.self)
        let maximumReplySize = maximumReplySize
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                // A TLS handler (NIOSSL with PSK) would go first, so that ZBXD framing runs inside TLS.
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(ZBXDFrameDecoderHandler(maximumSize: maximumReplySize)),
                        MessageToByteHandler(ZBXDFrameEncoderHandler()),
                        ReplyHandler(node: node, reply: reply))
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
                    reply.fail(ZabbixSendError.connectionFailed(node, reason: "\(error)"))
                }
            }
        }
        do {
            return try await reply.futureResult.get()
        } catch let error as ZabbixSendError {
            throw error
        } catch {
            throw .connectionFailed(node, reason: "\(error)")
        }
    }

    /// Sends `frame` to the first reachable node of `cluster`, as `zbx_tcp_connect_failover` does:
    /// only a failed connect moves on to the next node; a failure after connecting is final.
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

    init(node: ZabbixAddress, reply: EventLoopPromise<ZBXDFrame>) {
        self.node = node
        self.reply = reply
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reply.succeed(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let frameError = error as? ZBXDError {
            reply.fail(ZabbixSendError.badFrame(node, frameError))
        } else {
            reply.fail(ZabbixSendError.connectionFailed(node, reason: "\(error)"))
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A no-op when a reply or an error completed the promise already.
        reply.fail(ZabbixSendError.closedWithoutReply(node))
        context.fireChannelInactive()
    }
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
