/// Per-port view of one collection: every TCP listening port with its accept queue and the
/// states of its inbound connections, outbound connections by state for chosen remote
/// ports, and the busiest use of the ephemeral port range. Filled in the same single pass
/// as the plain counts; memory grows with distinct ports and remote endpoints, not sockets.
public struct PortBreakdown: SocketVisitor, Sendable {
    /// One listening port. Dual-stack and SO_REUSEPORT listeners on one port are one entry.
    public struct Listener: Equatable, Sendable {
        public var port: UInt16
        /// Distinct local addresses listened on, in the order first seen.
        public var addresses: [(address: AddressWords, isIPv6: Bool)] = []
        /// LISTEN sockets on this port.
        public var sockets: UInt64 = 0
        /// Connections accepted by the kernel but not yet by the application, over all listeners.
        public var acceptQueue: UInt64 = 0
        /// The accept queues' limit (listen()'s backlog capped by somaxconn), summed. Zero when
        /// the source is /proc, which does not show it.
        public var backlog: UInt64 = 0
        /// Connections whose local port is this port, by state (LISTEN itself not included).
        public var inbound = TCPStateCounts()

        public static func == (a: Listener, b: Listener) -> Bool {
            a.port == b.port && a.sockets == b.sockets && a.acceptQueue == b.acceptQueue
                && a.backlog == b.backlog && a.inbound == b.inbound
                && a.addresses.elementsEqual(b.addresses) { $0.address == $1.address && $0.isIPv6 == $1.isIPv6 }
        }
    }

    /// The remote endpoint that holds the most ephemeral local ports, and how many.
    public struct EphemeralUse: Equatable, Sendable {
        public var remoteAddress: AddressWords
        public var remotePort: UInt16
        public var isIPv6: Bool
        public var sockets: UInt64
    }

    /// Remote ports whose outbound connections are counted by state.
    public let remotePorts: [UInt16]
    /// The kernel's ip_local_port_range: ports connect() picks from.
    public let ephemeralRange: ClosedRange<UInt16>

    public private(set) var counts = SocketCounts()
    /// Listening ports in the order the kernel listed them; `listeners` sorts them.
    private var listenerList: [Listener] = []
    /// Port -> 1 + index in `listenerList`, 0 when the port does not listen. A direct table
    /// (128 KiB) so that each socket costs one load, not a hash.
    private var listenerSlot: [UInt16]
    /// Port -> 1 + index in `remotePorts`, 0 when not watched.
    private var remoteSlot: [UInt8]
    public private(set) var outbound: [TCPStateCounts]
    private var ephemeralUse = EndpointTally()

    public static var wantsListenersFirst: Bool { true }

    public init(remotePorts: [UInt16], ephemeralRange: ClosedRange<UInt16>) {
        // A slot is a UInt8: at most 255 watched ports, each once.
        var unique: [UInt16] = []
        for port in remotePorts where !unique.contains(port) && unique.count < 255 { unique.append(port) }
        self.remotePorts = unique
        self.ephemeralRange = ephemeralRange
        listenerSlot = [UInt16](repeating: 0, count: 65536)
        remoteSlot = [UInt8](repeating: 0, count: 65536)
        for (index, port) in unique.enumerated() { remoteSlot[Int(port)] = UInt8(index + 1) }
        outbound = [TCPStateCounts](repeating: TCPStateCounts(), count: unique.count)
    }

    public mutating func startOver() {
        counts = SocketCounts()
        for listener in listenerList { listenerSlot[Int(listener.port)] = 0 }
        listenerList.removeAll(keepingCapacity: true)
        for index in outbound.indices { outbound[index] = TCPStateCounts() }
        ephemeralUse.removeAll()
    }

    @inline(__always)
    public mutating func visit(_ socket: SocketRecord) {
        counts.visit(socket)
        guard socket.transport == .tcp else { return }
        if socket.state == TCPState.listen.rawValue {
            addListener(socket)
            return
        }
        let slot = Int(listenerSlot[Int(socket.localPort)])
        if slot != 0 {
            listenerList[slot - 1].inbound.add(rawState: socket.state)
            return
        }
        let remote = Int(remoteSlot[Int(socket.remotePort)])
        if remote != 0 { outbound[remote - 1].add(rawState: socket.state) }
        if ephemeralRange.contains(socket.localPort) {
            ephemeralUse.add(socket.remoteAddress, port: socket.remotePort, isIPv6: socket.isIPv6)
        }
    }

    private mutating func addListener(_ socket: SocketRecord) {
        var slot = Int(listenerSlot[Int(socket.localPort)])
        if slot == 0 {
            listenerList.append(Listener(port: socket.localPort))
            slot = listenerList.count
            listenerSlot[Int(socket.localPort)] = UInt16(slot)
        }
        listenerList[slot - 1].sockets += 1
        listenerList[slot - 1].acceptQueue += UInt64(socket.receiveQueue)
        listenerList[slot - 1].backlog += UInt64(socket.sendQueue)
        if !listenerList[slot - 1].addresses.contains(where: { $0.address == socket.localAddress && $0.isIPv6 == socket.isIPv6 }) {
            listenerList[slot - 1].addresses.append((socket.localAddress, socket.isIPv6))
        }
    }

    /// Listening ports, lowest first.
    public var listeners: [Listener] { listenerList.sorted { $0.port < $1.port } }

    /// The remote endpoint holding the most ephemeral ports; nil when no outbound connection exists.
    /// Ties go to the lowest remote port, then IPv4, then the lowest address.
    public var busiestEphemeral: EphemeralUse? {
        guard let top = ephemeralUse.busiest else { return nil }
        return EphemeralUse(remoteAddress: top.address, remotePort: top.port, isIPv6: top.isIPv6, sockets: top.sockets)
    }

    /// Ports connect() can pick from.
    public var ephemeralRangeSize: Int { Int(ephemeralRange.upperBound) - Int(ephemeralRange.lowerBound) + 1 }
}
