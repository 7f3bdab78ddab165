import Glibc
import Logging
import NIOCore
import NIOPosix
import Posix
import ServiceLifecycle
import Synchronization
import UnixSignals
import ZabbixProtocol
import ZabbixSender

/// Where and how the endpoint listens; fixed for the life of the process.
public struct PassiveServerConfiguration: Sendable {
    /// Addresses to listen on; empty: every IPv4 and IPv6 address (`::`, dual-stack; `0.0.0.0`
    /// when the host has no IPv6).
    public var listenAddresses: [String]
    public var port: Int
    /// Seconds to read a request, and again to answer it and write the reply (zabbix_agentd's `Timeout`).
    public var timeoutSeconds: Int
    /// Connections open at once; more are closed as they come.
    public var maximumConnections: Int
    public var acceptsUnencrypted: Bool
    /// TLS-PSK, when accepted.
    public var tls: PSKServerTLS?

    /// A request holds one key of at most 2048 characters, or a JSON list of a few: far below this.
    public static let maximumRequestBytes: UInt64 = 16 << 10

    public init(
        listenAddresses: [String], port: Int, timeoutSeconds: Int, maximumConnections: Int,
        acceptsUnencrypted: Bool, tls: PSKServerTLS?
    ) {
        self.listenAddresses = listenAddresses
        self.port = port
        self.timeoutSeconds = timeoutSeconds
        self.maximumConnections = maximumConnections
        self.acceptsUnencrypted = acceptsUnencrypted
        self.tls = tls
    }
}

/// What SIGHUP re-reads: who may ask, and what is answered.
public struct PassiveAccess: Sendable {
    public var allowList: PeerAllowList
    public var items: AgentItems

    public init(allowList: PeerAllowList, items: AgentItems) {
        self.allowList = allowList
        self.items = items
    }
}

/// A passive Zabbix agent endpoint: answers one request per connection from the peers of the
/// allow-list, in plain text or TLS-PSK (told apart by the first byte, as zabbix_agentd does).
/// Runs until graceful shutdown (SIGTERM), which closes every connection at once; SIGHUP
/// re-reads the access settings, at most once a second however many signals come.
public final class PassiveServer: Service, Sendable {
    public typealias Reload = @Sendable () throws -> PassiveAccess

    /// A burst of SIGHUPs within this is one reload.
    static let reloadSpacing = Duration.seconds(1)
    /// Names in the allow-list are resolved at most this often; a flood of strangers costs one lookup.
    static let resolutionLifetime = TimeAmount.seconds(1)

    let configuration: PassiveServerConfiguration
    let access: Mutex<PassiveAccess>
    let reload: Reload
    let logger: Logger
    let limiter = LogLimiter()
    /// Open connections, to count them and to close them at shutdown.
    let connections = Mutex<[ObjectIdentifier: any Channel]>([:])
    let resolution = Mutex<(at: NIODeadline, addresses: [[UInt8]])?>(nil)
    /// Answers (which may read the kernel for a while) run here, one at a time, never on an event loop.
    let answerers = NIOThreadPool(numberOfThreads: 1)
    /// `getaddrinfo` for the allow-list's names blocks too, and must not hold up the answers.
    let resolvers = NIOThreadPool(numberOfThreads: 1)

    public init(
        configuration: PassiveServerConfiguration, access: PassiveAccess, logger: Logger, reload: @escaping Reload
    ) {
        self.configuration = configuration
        self.access = Mutex(access)
        self.logger = logger
        self.reload = reload
    }

    public func run() async throws {
        answerers.start()
        resolvers.start()
        // Trap SIGHUP before anyone can learn that the port is open.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let channels: [any Channel]
        do {
            channels = try await bind()
        } catch {
            try? await answerers.shutdownGracefully()
            try? await resolvers.shutdownGracefully()
            throw error
        }
        let addresses = channels.compactMap { $0.localAddress.map(describe) }.joined(separator: ", ")
        let tlsModes = [configuration.acceptsUnencrypted ? "unencrypted" : nil, configuration.tls != nil ? "psk" : nil]
        logger.info("listening on \(addresses); allowed hosts: \"\(access.withLock { $0.allowList.text })\"; accepts \(tlsModes.compactMap { $0 }.joined(separator: ","))")
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.reloadOnHangup(hangups) }
            await withGracefulShutdownHandler {
                for channel in channels { try? await channel.closeFuture.get() }
            } onGracefulShutdown: {
                for channel in channels { channel.close(promise: nil) }
                for connection in self.connections.withLock({ Array($0.values) }) { connection.close(promise: nil) }
            }
            group.cancelAll()
        }
        try? await answerers.shutdownGracefully()
        try? await resolvers.shutdownGracefully()
        logger.info("stopped")
    }

    private func bind() async throws -> [any Channel] {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in self.accept(channel) }
        guard configuration.listenAddresses.isEmpty else {
            var channels: [any Channel] = []
            for address in configuration.listenAddresses {
                do {
                    channels.append(try await bootstrap.bind(host: address, port: configuration.port).get())
                } catch {
                    for channel in channels { try? await channel.close() }
                    throw PassiveServerError(reason: "cannot listen on \(address) port \(configuration.port): \(describe(error))")
                }
            }
            return channels
        }
        do {
            return [try await bootstrap.bind(host: "::", port: configuration.port).get()]
        } catch {
            logger.notice("cannot listen on [::]:\(configuration.port) (\(describe(error))); listening on IPv4 only")
        }
        do {
            return [try await bootstrap.bind(host: "0.0.0.0", port: configuration.port).get()]
        } catch {
            throw PassiveServerError(reason: "cannot listen on port \(configuration.port): \(describe(error))")
        }
    }

    // MARK: - Accepting

    struct Refused: Error {}

    /// Runs for each accepted connection, before it is registered (nothing is read until this
    /// succeeds): counts it, checks the peer, then sets up its pipeline. A failure closes it.
    private func accept(_ channel: any Channel) -> EventLoopFuture<Void> {
        guard let peer = Peer(channel.remoteAddress) else { return channel.eventLoop.makeFailedFuture(Refused()) }
        let id = ObjectIdentifier(channel)
        let open = connections.withLock { connections in
            connections[id] = channel
            return connections.count
        }
        channel.closeFuture.whenComplete { _ in _ = self.connections.withLock { $0.removeValue(forKey: id) } }
        guard open <= configuration.maximumConnections else {
            limiter.log(logger, .warning, "limit", "failed to accept an incoming connection from \"\(peer.text)\": \(configuration.maximumConnections) connections are open already (--max-connections)")
            return channel.eventLoop.makeFailedFuture(Refused())
        }
        let access = self.access.withLock { $0 }
        if access.allowList.allows(peer.bytes) {
            return setUp(channel, peer: peer, items: access.items)
        }
        let names = access.allowList.names
        guard !names.isEmpty else { return refuse(channel, peer: peer, access: access) }
        return resolvers.runIfActive(eventLoop: channel.eventLoop) { self.resolvedAddresses(names) }
            .flatMap { resolved in
                access.allowList.allows(peer.bytes, resolved: resolved)
                    ? self.setUp(channel, peer: peer, items: access.items) : self.refuse(channel, peer: peer, access: access)
            }
    }

    private func refuse(_ channel: any Channel, peer: Peer, access: PassiveAccess) -> EventLoopFuture<Void> {
        limiter.log(logger, .warning, "refused", "failed to accept an incoming connection: connection from \"\(peer.text)\" rejected, allowed hosts: \"\(access.allowList.text)\"")
        return channel.eventLoop.makeFailedFuture(Refused())
    }

    private func setUp(_ channel: any Channel, peer: Peer, items: AgentItems) -> EventLoopFuture<Void> {
        let exchange = PassiveExchange(
            peer: peer.text, items: items, timeout: .seconds(Int64(configuration.timeoutSeconds)), answerers: answerers,
            logger: logger, limiter: limiter)
        do {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(
                TransportSniffer(tls: configuration.tls, acceptsUnencrypted: configuration.acceptsUnencrypted, exchange: exchange))
            try pipeline.addHandler(ByteToMessageHandler(ZBXDFrameDecoderHandler(maximumSize: PassiveServerConfiguration.maximumRequestBytes)))
            try pipeline.addHandler(MessageToByteHandler(ZBXDFrameEncoderHandler()))
            try pipeline.addHandler(PassiveRequestHandler(exchange: exchange))
            return channel.eventLoop.makeSucceededVoidFuture()
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
    }

    /// The allow-list's names resolved (cached for `resolutionLifetime`); a name that does not
    /// resolve adds nothing.
    private func resolvedAddresses(_ names: [String]) -> [[UInt8]] {
        let now = NIODeadline.now()
        if let cached = resolution.withLock({ $0 }), now - cached.at < Self.resolutionLifetime { return cached.addresses }
        var addresses: [[UInt8]] = []
        for name in names {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(name, nil, &hints, &list) == 0 else { continue }
            var entry = list
            while let info = entry {
                if let address = info.pointee.ai_addr {
                    if info.pointee.ai_family == AF_INET {
                        address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { addresses.append(withUnsafeBytes(of: $0.pointee.sin_addr) { Array($0) }) }
                    } else if info.pointee.ai_family == AF_INET6 {
                        address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { addresses.append(withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) }) }
                    }
                }
                entry = info.pointee.ai_next
            }
            freeaddrinfo(list)
        }
        resolution.withLock { $0 = (now, addresses) }
        return addresses
    }

    // MARK: - Reloading

    private func reloadOnHangup(_ hangups: UnixSignalsSequence) async {
        let (requests, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in hangups { continuation.yield() }
                continuation.finish()
            }
            group.addTask {
                // While one reload settles, further signals collapse into the one buffered request.
                for await _ in requests {
                    self.reloadAccess()
                    try? await Task.sleep(for: Self.reloadSpacing)
                }
            }
        }
    }

    private func reloadAccess() {
        do {
            let next = try reload()
            access.withLock { $0 = next }
            resolution.withLock { $0 = nil }
            logger.info("configuration reloaded; allowed hosts: \"\(next.allowList.text)\"")
        } catch {
            logger.error("configuration reload failed, keeping the previous settings: \(error)")
        }
    }
}

public struct PassiveServerError: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// A peer's address as bytes (for the allow-list) and as text (for the log), IPv4-mapped IPv6
/// shown as IPv4 the way zabbix_agentd shows it.
struct Peer {
    var bytes: [UInt8]
    var text: String

    init?(_ address: SocketAddress?) {
        switch address {
        case .v4(let v4)?:
            bytes = withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6)?:
            bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        default:
            return nil
        }
        if bytes.count == 16, bytes[..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            text = bytes[12...].map(String.init).joined(separator: ".")
        } else {
            text = address?.ipAddress ?? "?"
        }
    }
}

private func describe(_ address: SocketAddress) -> String {
    guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
    return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
}

/// A socket error by its errno ("Address already in use"), anything else as it describes itself.
private func describe(_ error: any Error) -> String {
    if let ioError = error as? IOError { return describeErrno(ioError.errnoCode) }
    return "\(error)"
}
