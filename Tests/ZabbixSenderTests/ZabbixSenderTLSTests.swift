import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import XCTest
import ZabbixProtocol

@testable import ZabbixSender

/// A trapper on 127.0.0.1 that speaks TLS 1.2 with one PSK, as a Zabbix host set to accept only
/// PSK: it answers every request frame with "processed: 1" and records what it decoded and which
/// identities clients offered.
private final class PSKTrapper: Sendable {
    let channel: any Channel
    let address: ZabbixAddress
    let requests = NIOLockedValueBox<[SenderDataRequest]>([])
    let offeredIdentities = NIOLockedValueBox<[String]>([])

    init(group: any EventLoopGroup, identity: String, key: [UInt8], reply: TrapperResponse) async throws {
        var configuration = TLSConfiguration.makePreSharedKeyConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.maximumTLSVersion = .tlsv12
        // What Debian's GnuTLS-built Zabbix takes, less what BoringSSL lacks (see zabbix-on-debian.md).
        configuration.cipherSuites = "ECDHE-PSK-AES128-CBC-SHA:PSK-AES128-CBC-SHA"
        let offered = offeredIdentities
        let secret = NIOSSLSecureBytes(key)
        configuration.pskServerProvider = { context in
            offered.withLockedValue { $0.append(context.clientIdentity) }
            // An unknown identity: no key, the handshake fails as on a Zabbix server.
            guard context.clientIdentity == identity else { throw PSKTestError.unknownIdentity }
            return PSKServerIdentityResponse(key: secret)
        }
        let sslContext = try NIOSSLContext(configuration: configuration)
        let requests = requests
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandlers(
                        NIOSSLServerHandler(context: sslContext),
                        ByteToMessageHandler(ZBXDFrameDecoderHandler()),
                        ServerHandler(behaviour: .reply(reply), requests: requests))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        address = ZabbixAddress(host: "127.0.0.1", port: UInt16(try XCTUnwrap(channel.localAddress?.port)))
    }

    func close() async throws {
        try await channel.close()
    }
}

private enum PSKTestError: Error {
    case unknownIdentity
}

/// A plain TCP peer that reads what the client sends and either closes at once, as GnuTLS-built
/// Zabbix does when it takes no suite of the ClientHello (no alert), or never answers.
private final class RawPeer: Sendable {
    enum Behaviour: Sendable {
        case closeOnFirstBytes
        case silent
    }

    let channel: any Channel
    let address: ZabbixAddress
    let firstBytes = NIOLockedValueBox<[UInt8]>([])

    init(group: any EventLoopGroup, behaviour: Behaviour) async throws {
        let firstBytes = firstBytes
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(RawHandler(behaviour: behaviour, firstBytes: firstBytes))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        address = ZabbixAddress(host: "127.0.0.1", port: UInt16(try XCTUnwrap(channel.localAddress?.port)))
    }

    func close() async throws {
        try await channel.close()
    }

    private final class RawHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer

        let behaviour: Behaviour
        let firstBytes: NIOLockedValueBox<[UInt8]>

        init(behaviour: Behaviour, firstBytes: NIOLockedValueBox<[UInt8]>) {
            self.behaviour = behaviour
            self.firstBytes = firstBytes
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
            firstBytes.withLockedValue { if $0.isEmpty { $0 = bytes } }
            if case .closeOnFirstBytes = behaviour { context.close(promise: nil) }
        }
    }
}

final class ZabbixSenderTLSTests: XCTestCase {
    private static let identity = "zabbix-sockets test PSK"
    /// 256 bits; generated once for these tests, not a real key anywhere.
    private static let key: [UInt8] = hex("1f87b5b0c9a6e3d2487f0b6e5a9c1d3e8f2a7b4c6d0e9f1a2b3c4d5e6f708192")
    private static let otherKey: [UInt8] = hex("00112233445566778899aabbccddeeff")
    private static let request = SenderDataRequest(values: [SenderValue(host: "web01", key: "sockets.stats", value: "{}")])
    private static let processed = TrapperResponse(
        status: .success, tally: ProcessingTally(processed: 1, failed: 0, total: 1, secondsSpent: 0.0001))

    private var group: MultiThreadedEventLoopGroup!

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() async throws {
        try await group.shutdownGracefully()
        group = nil
    }

    private func trapper() async throws -> PSKTrapper {
        try await PSKTrapper(group: group, identity: Self.identity, key: Self.key, reply: Self.processed)
    }

    private func client(identity: String = identity, key: [UInt8] = key, timeout: TimeAmount = .seconds(5)) throws
        -> ZabbixSenderClient
    {
        ZabbixSenderClient(group: group, timeout: timeout, psk: try PreSharedKey(identity: identity, key: key))
    }

    /// Sends the request to `node` alone; the delivery and how long it took.
    private func deliver(with client: ZabbixSenderClient, to node: ZabbixAddress) async throws
        -> (ClusterDelivery, TimeAmount)
    {
        let started = NIODeadline.now()
        let deliveries = try await client.send(Self.request, toEach: [ServerCluster(nodes: [node])])
        return (deliveries[0], NIODeadline.now() - started)
    }

    func testRightPSKCarriesTheFrameThroughTLS() async throws {
        let server = try await trapper()
        let (delivery, elapsed) = try await deliver(with: try client(), to: server.address)
        try await server.close()
        XCTAssertEqual(try delivery.result.get(), Self.processed)
        XCTAssertEqual(server.requests.withLockedValue { $0 }, [Self.request])
        XCTAssertEqual(server.offeredIdentities.withLockedValue { $0 }, [Self.identity])
        XCTAssertLessThan(elapsed, .seconds(2))
        print("# PSK exchange on loopback (connect, handshake, frame, reply): \(Double(elapsed.nanoseconds) / 1e6) ms")
    }

    func testTheSameClientReusesItsContextForSeveralConnections() async throws {
        let server = try await trapper()
        let client = try client()
        for _ in 0..<3 {
            let (delivery, _) = try await deliver(with: client, to: server.address)
            XCTAssertEqual(try delivery.result.get(), Self.processed)
        }
        try await server.close()
        XCTAssertEqual(server.requests.withLockedValue { $0.count }, 3)
    }

    func testWrongKeyFailsTheHandshakePromptlyAndClearly() async throws {
        let server = try await trapper()
        let (delivery, elapsed) = try await deliver(with: try client(key: Self.otherKey), to: server.address)
        try await server.close()
        guard case .tlsHandshakeFailed(server.address, let reason)? = delivery.result.failure else {
            return XCTFail("\(delivery.result)")
        }
        let message = try XCTUnwrap(delivery.result.failure?.description)
        XCTAssertTrue(message.hasPrefix("TLS handshake with \(server.address) failed: "), message)
        XCTAssertTrue(message.hasSuffix("(wrong PSK or identity?)"), message)
        XCTAssertFalse(reason.isEmpty)
        XCTAssertEqual(server.requests.withLockedValue { $0 }, [], "nothing may arrive")
        XCTAssertLessThan(elapsed, .seconds(2), "a wrong key must fail at once, not at the 5 s timeout")
        print("# wrong key: \(message) after \(Double(elapsed.nanoseconds) / 1e6) ms")
    }

    func testUnknownIdentityFailsTheHandshakePromptlyAndClearly() async throws {
        let server = try await trapper()
        let (delivery, elapsed) = try await deliver(with: try client(identity: "someone else"), to: server.address)
        try await server.close()
        guard case .tlsHandshakeFailed(server.address, _)? = delivery.result.failure else {
            return XCTFail("\(delivery.result)")
        }
        XCTAssertEqual(server.offeredIdentities.withLockedValue { $0 }, ["someone else"])
        XCTAssertEqual(server.requests.withLockedValue { $0 }, [])
        XCTAssertLessThan(elapsed, .seconds(2))
        print("# wrong identity: \(delivery.result.failure!) after \(Double(elapsed.nanoseconds) / 1e6) ms")
    }

    func testServerClosingWithoutAlertDuringTheHandshake() async throws {
        let peer = try await RawPeer(group: group, behaviour: .closeOnFirstBytes)
        let (delivery, elapsed) = try await deliver(with: try client(), to: peer.address)
        try await peer.close()
        XCTAssertEqual(
            delivery.result.failure,
            .tlsHandshakeFailed(peer.address, reason: "the server closed the connection"))
        XCTAssertEqual(
            delivery.result.failure?.description,
            "TLS handshake with \(peer.address) failed: the server closed the connection (wrong PSK or identity?)")
        XCTAssertLessThan(elapsed, .seconds(2))
        let hello = peer.firstBytes.withLockedValue { $0 }
        XCTAssertEqual(hello.first, 0x16, "TLS starts right after connect with a handshake record")
    }

    func testFailedHandshakeFailsOverToTheNextNodeLikeAFailedConnect() async throws {
        // zbx_tcp_connect includes the TLS handshake, so zbx_tcp_connect_failover moves on after it.
        let refusing = try await RawPeer(group: group, behaviour: .closeOnFirstBytes)
        let server = try await trapper()
        let client = try client()
        let frame = try Self.request.frame()
        let delivery = await client.send(frame, to: ServerCluster(nodes: [refusing.address, server.address]))
        try await refusing.close()
        try await server.close()
        XCTAssertEqual(try delivery.result.get(), Self.processed)
        XCTAssertEqual(delivery.node, server.address)
        XCTAssertEqual(
            delivery.connectFailures, [.tlsHandshakeFailed(refusing.address, reason: "the server closed the connection")])
        XCTAssertEqual(delivery.cluster.nodes, [server.address, refusing.address])
        XCTAssertEqual(server.requests.withLockedValue { $0 }, [Self.request], "sent once, to the node that took it")
    }

    func testClientHelloOffersOnlyTLS12AndTheCommonPSKSuites() async throws {
        let peer = try await RawPeer(group: group, behaviour: .closeOnFirstBytes)
        _ = try await deliver(with: try client(), to: peer.address)
        try await peer.close()
        let hello = try XCTUnwrap(ClientHello(peer.firstBytes.withLockedValue { $0 }))
        XCTAssertEqual(hello.version, 0x0303)
        // ECDHE-PSK-AES128-CBC-SHA, PSK-AES128-CBC-SHA; BoringSSL may add only signalling values.
        XCTAssertEqual(hello.cipherSuites.filter { $0 != 0x00FF && $0 & 0x0F0F != 0x0A0A }, [0xC035, 0x008C])
        XCTAssertFalse(hello.offersTLS13, "GnuTLS-built Zabbix closes on TLS 1.3")
    }

    func testSilentPeerDuringTheHandshakeTimesOutWithinTheBudget() async throws {
        let peer = try await RawPeer(group: group, behaviour: .silent)
        let (delivery, elapsed) = try await deliver(with: try client(timeout: .milliseconds(500)), to: peer.address)
        try await peer.close()
        XCTAssertEqual(delivery.result.failure, .timedOut(peer.address, seconds: 0.5))
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(450))
        XCTAssertLessThan(elapsed, .seconds(3), "the timeout covers the handshake")
    }

    func testPlaintextServerGetsNoPlaintext() async throws {
        // A TLS client against a server that only speaks plain ZBXD: the server sees a TLS record,
        // never the request in clear.
        let peer = try await RawPeer(group: group, behaviour: .closeOnFirstBytes)
        _ = try await deliver(with: try client(), to: peer.address)
        try await peer.close()
        let bytes = peer.firstBytes.withLockedValue { $0 }
        XCTAssertFalse(bytes.starts(with: Array("ZBXD".utf8)))
        XCTAssertNil(String(decoding: bytes, as: UTF8.self).range(of: "sockets.stats"))
    }

    func testIdentityLongerThanBoringSSLTakesIsRefusedBeforeConnecting() async throws {
        let long = String(repeating: "x", count: ZabbixSenderClient.maximumPSKIdentityBytes + 1)
        let client = try client(identity: long)
        let frame = try Self.request.frame()
        do {
            _ = try await client.exchange(frame, with: ZabbixAddress(host: "127.0.0.1", port: 9))
            XCTFail("sent with an identity BoringSSL cannot send")
        } catch {
            guard case .tlsUnavailable(let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("129 bytes"), reason)
            XCTAssertFalse(error.isConnectFailure)
        }
    }

    func testNoDescriptionShowsTheKey() throws {
        let psk = try PreSharedKey(identity: Self.identity, key: Self.key)
        let keyHex = Self.key.map { ($0 < 0x10 ? "0" : "") + String($0, radix: 16) }.joined()
        // The key's first bytes in decimal, in order, however an array or a dump separates them.
        // (Not a lone "135": a description may hold an address, which differs every run.)
        let keyDecimal = try Regex(Self.key.prefix(3).map { "\\b\($0)\\b" }.joined(separator: "\\D+"))
        var dumped = ""
        dump(psk, to: &dumped)
        let client = try client()
        for text in [String(describing: psk), String(reflecting: psk), dumped, String(describing: client), "\(client)"] {
            XCTAssertFalse(text.lowercased().contains(keyHex), text)
            XCTAssertNil(text.firstMatch(of: keyDecimal), "no key bytes in decimal either (31, 135, 181): \(text)")
        }
        XCTAssertNotNil("[31, 135, 181, 176]".firstMatch(of: keyDecimal), "the pattern finds an array's description")
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

private func hex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        bytes.append(UInt8(text[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

/// The fields of a TLS ClientHello record these tests look at.
private struct ClientHello {
    var version: UInt16
    var cipherSuites: [UInt16]
    var offersTLS13: Bool

    init?(_ record: [UInt8]) {
        var reader = Reader(bytes: record)
        guard reader.byte() == 0x16, reader.skip(4), reader.byte() == 0x01, reader.skip(3),
            let version = reader.uint16(), reader.skip(32), let sessionLength = reader.byte(),
            reader.skip(Int(sessionLength)), let suitesLength = reader.uint16()
        else { return nil }
        self.version = version
        cipherSuites = (0..<Int(suitesLength) / 2).compactMap { _ in reader.uint16() }
        guard let compressionLength = reader.byte(), reader.skip(Int(compressionLength)),
            let extensionsLength = reader.uint16()
        else { return nil }
        offersTLS13 = false
        let end = reader.offset + Int(extensionsLength)
        while reader.offset < end, let type = reader.uint16(), let length = reader.uint16() {
            if type == 43, let listLength = reader.byte() {  // supported_versions
                for _ in 0..<Int(listLength) / 2 where reader.uint16() == 0x0304 { offersTLS13 = true }
            } else {
                guard reader.skip(Int(length)) else { return nil }
            }
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func byte() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func uint16() -> UInt16? {
            guard let high = byte(), let low = byte() else { return nil }
            return UInt16(high) << 8 | UInt16(low)
        }

        mutating func skip(_ count: Int) -> Bool {
            guard offset + count <= bytes.count else { return false }
            offset += count
            return true
        }
    }
}
