import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
import ZabbixProtocol

@testable import ZabbixSender

/// What the loopback test servers (plain here, PSK in ZabbixSenderTLSTests) do with a connection.
enum ServerBehaviour: Sendable {
    /// Reads one request frame, answers with this response (flags of the request), closes.
    case reply(TrapperResponse)
    /// Reads one request frame, writes these bytes, closes.
    case replyBytes([UInt8])
    /// Reads one request frame and closes without answering.
    case closeAfterRequest
    /// Reads and never answers.
    case silent
}

/// A NIO server on 127.0.0.1 with a kernel-chosen port, recording the requests it decoded.
private final class LoopbackServer: Sendable {
    let channel: any Channel
    let requests: NIOLockedValueBox<[SenderDataRequest]>
    /// Kept from the bind: a closed channel no longer knows its address.
    let address: ZabbixAddress

    init(group: any EventLoopGroup, behaviour: ServerBehaviour) async throws {
        let requests = NIOLockedValueBox<[SenderDataRequest]>([])
        self.requests = requests
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(ZBXDFrameDecoderHandler()),
                        ServerHandler(behaviour: behaviour, requests: requests))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        address = ZabbixAddress(host: "127.0.0.1", port: UInt16(try XCTUnwrap(channel.localAddress?.port)))
    }

    func close() async throws {
        try await channel.close()
    }
}

/// Records each decoded request and acts out a `ServerBehaviour`.
final class ServerHandler: ChannelInboundHandler {
    typealias InboundIn = ZBXDFrame
    /// Bytes, not frames, so a test can also answer with something that is not a frame.
    typealias OutboundOut = ByteBuffer

    let behaviour: ServerBehaviour
    let requests: NIOLockedValueBox<[SenderDataRequest]>

    init(behaviour: ServerBehaviour, requests: NIOLockedValueBox<[SenderDataRequest]>) {
        self.behaviour = behaviour
        self.requests = requests
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if let request = try? SenderDataRequest(json: frame.payload[...]) {
            requests.withLockedValue { $0.append(request) }
        }
        let channel = context.channel
        func answer(_ bytes: [UInt8]) {
            context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(bytes: bytes)))
                .whenComplete { _ in channel.close(promise: nil) }
        }
        switch behaviour {
        case .reply(let response):
            answer((try? ZBXDFrame(payload: response.encodedJSON(), flags: frame.flags).encoded()) ?? [])
        case .replyBytes(let bytes):
            answer(bytes)
        case .closeAfterRequest:
            context.close(promise: nil)
        case .silent:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A failed TLS handshake or an undecodable request: close, as a Zabbix server does.
        context.close(promise: nil)
    }
}

final class ZabbixSenderClientTests: XCTestCase {
    private static let request = SenderDataRequest(values: [SenderValue(host: "web01", key: "sockets.tcp.established", value: "42")])
    private static let allProcessed = TrapperResponse(
        status: .success, tally: ProcessingTally(processed: 1, failed: 0, total: 1, secondsSpent: 0.0001))

    private var group: MultiThreadedEventLoopGroup!

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() async throws {
        try await group.shutdownGracefully()
        group = nil
    }

    private func server(_ behaviour: ServerBehaviour) async throws -> LoopbackServer {
        try await LoopbackServer(group: group, behaviour: behaviour)
    }

    private func client(timeout: TimeAmount = .seconds(5)) -> ZabbixSenderClient {
        ZabbixSenderClient(group: group, timeout: timeout)
    }

    /// An address where nothing listens: a port the kernel just handed out and took back.
    private func refusingAddress() async throws -> ZabbixAddress {
        let probe = try await server(.silent)
        let address = probe.address
        try await probe.close()
        return address
    }

    private func sendOne(_ behaviour: ServerBehaviour, timeout: TimeAmount = .seconds(5)) async throws
        -> (ClusterDelivery, LoopbackServer)
    {
        let server = try await server(behaviour)
        let deliveries = try await client(timeout: timeout).send(Self.request, toEach: [ServerCluster(nodes: [server.address])])
        try await server.close()
        return (deliveries[0], server)
    }

    func testSuccessfulExchange() async throws {
        let (delivery, server) = try await sendOne(.reply(Self.allProcessed))
        XCTAssertEqual(try delivery.result.get(), Self.allProcessed)
        XCTAssertEqual(delivery.node, server.address)
        XCTAssertEqual(server.requests.withLockedValue { $0 }, [Self.request])
    }

    func testFailedReplyIsAResponseNotAnError() async throws {
        let failed = TrapperResponse(status: .failed, info: "cannot find pair with name \"data\"")
        let (delivery, _) = try await sendOne(.reply(failed))
        XCTAssertEqual(try delivery.result.get(), failed)
    }

    func testServerClosingWithoutReply() async throws {
        let (delivery, server) = try await sendOne(.closeAfterRequest)
        XCTAssertEqual(delivery.result.failure, .closedWithoutReply(server.address))
        XCTAssertEqual(delivery.result.failure?.description, "\(server.address) closed the connection without a reply")
    }

    func testServerClosingInsideTheReplyFrame() async throws {
        let whole = try ZBXDFrame(payload: Self.allProcessed.encodedJSON()).encoded()
        let (delivery, server) = try await sendOne(.replyBytes(Array(whole.prefix(20))))
        XCTAssertEqual(delivery.result.failure, .badFrame(server.address, .shorterThanExpected(expected: UInt64(whole.count - 13), received: 7)))
    }

    func testGarbageReplies() async throws {
        var (delivery, server) = try await sendOne(.replyBytes(Array("OK".utf8)))
        XCTAssertEqual(delivery.result.failure, .badFrame(server.address, .missingHeader))
        XCTAssertEqual(delivery.result.failure?.description, "bad reply from \(server.address): message is missing header")

        (delivery, server) = try await sendOne(.replyBytes(try ZBXDFrame(payload: "not json").encoded()))
        guard case .badResponse(server.address, .notJSON)? = delivery.result.failure else {
            return XCTFail("\(delivery.result)")
        }
        (delivery, server) = try await sendOne(.replyBytes(ZBXDHeader(dataLength: 1 << 30, uncompressedLength: nil).encoded))
        XCTAssertEqual(
            delivery.result.failure,
            .badFrame(server.address, .exceedsMaximumSize(size: 1 << 30, maximum: ZBXDDecoder.defaultMaximumSize)))
    }

    func testSilentServerTimesOutWithinTheBudget() async throws {
        let started = NIODeadline.now()
        let (delivery, server) = try await sendOne(.silent, timeout: .milliseconds(500))
        let elapsed = NIODeadline.now() - started
        XCTAssertEqual(delivery.result.failure, .timedOut(server.address, seconds: 0.5))
        XCTAssertEqual(delivery.result.failure?.description, "no reply from \(server.address): timed out after 0.5 s")
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(450))
        XCTAssertLessThan(elapsed, .seconds(3), "the timeout must be honoured")
    }

    func testConnectionRefused() async throws {
        let refusing = try await refusingAddress()
        let frame = try Self.request.frame()
        do {
            _ = try await client().exchange(frame, with: refusing)
            XCTFail("connected to a closed port")
        } catch {
            XCTAssertEqual(error, .cannotConnect(refusing, .refused))
            XCTAssertEqual(error.description, "cannot connect to \(refusing): connection refused")
            XCTAssertTrue(error.isConnectFailure)
        }
    }

    func testClusterFailsOverToTheNextNodeAndDemotesTheDeadOne() async throws {
        let dead = try await refusingAddress()
        let alive = try await server(.reply(Self.allProcessed))
        let cluster = ServerCluster(nodes: [dead, alive.address])
        let delivery = await client().send(try Self.request.frame(), to: cluster)
        try await alive.close()
        XCTAssertEqual(try delivery.result.get(), Self.allProcessed)
        XCTAssertEqual(delivery.node, alive.address)
        XCTAssertEqual(delivery.connectFailures, [.cannotConnect(dead, .refused)])
        XCTAssertEqual(delivery.cluster.nodes, [alive.address, dead], "the working node stays first next time")
    }

    func testClusterDoesNotFailOverAfterAConnection() async throws {
        let closing = try await server(.closeAfterRequest)
        let alive = try await server(.reply(Self.allProcessed))
        let delivery = await client().send(try Self.request.frame(), to: ServerCluster(nodes: [closing.address, alive.address]))
        try await closing.close()
        try await alive.close()
        XCTAssertEqual(delivery.result.failure, .closedWithoutReply(closing.address))
        XCTAssertEqual(alive.requests.withLockedValue { $0 }, [], "zbx_tcp_connect_failover only covers connecting")
    }

    func testWholeClusterUnreachable() async throws {
        let first = try await refusingAddress()
        let second = try await refusingAddress()
        let delivery = await client().send(try Self.request.frame(), to: ServerCluster(nodes: [first, second]))
        XCTAssertNil(delivery.node)
        XCTAssertEqual(delivery.result.failure, .cannotConnect(second, .refused))
        XCTAssertEqual(delivery.connectFailures.count, 2)
    }

    func testEveryEntryGetsTheRequestInParallelWithItsOwnResult() async throws {
        let first = try await server(.reply(Self.allProcessed))
        let partial = TrapperResponse(
            status: .success, tally: ProcessingTally(processed: 0, failed: 1, total: 1, secondsSpent: 0.0002))
        let second = try await server(.reply(partial))
        let silent = try await server(.silent)
        let dead = try await refusingAddress()
        let started = NIODeadline.now()
        let deliveries = try await client(timeout: .seconds(1)).send(
            Self.request,
            toEach: [
                ServerCluster(nodes: [first.address]), ServerCluster(nodes: [dead, second.address]),
                ServerCluster(nodes: [silent.address]),
            ])
        let elapsed = NIODeadline.now() - started
        for server in [first, second, silent] { try await server.close() }
        XCTAssertEqual(deliveries.count, 3)
        XCTAssertEqual(try deliveries[0].result.get(), Self.allProcessed)
        XCTAssertEqual(try deliveries[1].result.get().tally?.failed, 1)
        XCTAssertEqual(deliveries[1].node, second.address)
        XCTAssertEqual(deliveries[2].result.failure, .timedOut(silent.address, seconds: 1))
        XCTAssertLessThan(elapsed, .seconds(3), "entries run in parallel, each within its own timeout")
        XCTAssertEqual(first.requests.withLockedValue { $0 }, [Self.request])
        XCTAssertEqual(second.requests.withLockedValue { $0 }, [Self.request])
    }

    func testInvalidRequestIsRefusedBeforeAnyConnection() async throws {
        let invalid = SenderDataRequest(values: [], session: "too short")
        do {
            _ = try await client().send(invalid, toEach: [ServerCluster(nodes: [ZabbixAddress(host: "127.0.0.1", port: 9)])])
            XCTFail("sent an invalid request")
        } catch {
            XCTAssertEqual(error, .invalidSessionTokenLength(9))
        }
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
