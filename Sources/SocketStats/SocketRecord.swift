/// The transport protocols we count.
public enum TransportProtocol: Sendable {
    case tcp
    case udp
}

/// What a collector learns about one socket. Built on the stack for each socket the kernel
/// lists and handed to a `SocketVisitor`, so collecting allocates nothing per socket.
public struct SocketRecord: Sendable {
    public var transport: TransportProtocol
    /// AF_INET or AF_INET6 (as the kernel reports the socket's family).
    public var isIPv6: Bool
    /// The kernel state number (TCPState's raw value; UDP uses 1 connected and 7 unconnected).
    public var state: UInt8

    @inline(__always)
    public init(transport: TransportProtocol, isIPv6: Bool, state: UInt8) {
        self.transport = transport
        self.isIPv6 = isIPv6
        self.state = state
    }
}

/// Receives every socket of one collection. A collector is generic over its visitor so that
/// the compiler specialises the hot loop for each model it fills.
public protocol SocketVisitor {
    /// A visitor starts empty; a dump the kernel interrupted is re-run into a fresh one.
    init()
    mutating func visit(_ socket: SocketRecord)
}

extension SocketCounts: SocketVisitor {
    @inline(__always)
    public mutating func visit(_ socket: SocketRecord) {
        switch (socket.transport, socket.isIPv6) {
        case (.tcp, false): tcp4.add(rawState: socket.state)
        case (.tcp, true): tcp6.add(rawState: socket.state)
        case (.udp, false): udp4.add(rawState: socket.state)
        case (.udp, true): udp6.add(rawState: socket.state)
        }
    }
}
