import Glibc

/// Per-port view of one collection: every TCP listening port with its accept queue and the
/// states of its inbound connections, outbound connections by state for chosen remote
/// ports, and the busiest use of the ephemeral port range. `PortTally` fills it in the same
/// single pass as the plain counts.
public struct PortBreakdown: Equatable, Sendable {
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

    public var counts: SocketCounts
    /// Listening ports, lowest first.
    public var listeners: [Listener]
    /// Remote ports whose outbound connections are counted by state.
    public var remotePorts: [UInt16]
    /// Outbound connections by state, one entry per `remotePorts` entry.
    public var outbound: [TCPStateCounts]
    /// The kernel's ip_local_port_range: ports connect() picks from.
    public var ephemeralRange: ClosedRange<UInt16>
    /// The remote endpoint holding the most ephemeral ports; nil when no outbound connection exists.
    /// Ties go to the lowest remote port, then IPv4, then the lowest address.
    public var busiestEphemeral: EphemeralUse?

    /// Ports connect() can pick from.
    public var ephemeralRangeSize: Int { Int(ephemeralRange.upperBound) - Int(ephemeralRange.lowerBound) + 1 }
}

/// Fills a `PortBreakdown` socket by socket. Noncopyable, with its per-socket tables in memory
/// it owns: each socket then costs a few loads and increments, where writing to Swift arrays
/// adds a copy-on-write check (a call into the runtime) per socket.
/// Memory grows with distinct ports and remote endpoints, not sockets.
public struct PortTally: ~Copyable, SocketVisitor {
    public let remotePorts: [UInt16]
    public let ephemeralRange: ClosedRange<UInt16>

    private var counts = SocketCounts()
    /// Listening ports in the order the kernel listed them (touched only by LISTEN sockets).
    private var listenerList: [PortBreakdown.Listener] = []
    /// Port -> 1 + index in `listenerList`. A direct table (128 KiB) so that each socket costs
    /// one load, not a hash. Not zeroed: an entry is read only for a port `listening` holds,
    /// and written when that port is added, so zeroing it would only cost writing 128 KiB.
    private let listenerSlot: UnsafeMutablePointer<UInt16>
    /// The same ports as a bitmap (8 KiB, which stays in the L1 cache): ephemeral ports are
    /// spread over the whole range, and looking each up in the 128 KiB table cost a cache miss.
    private let listening: UnsafeMutablePointer<UInt64>
    /// Inbound connections by state, per entry of `listenerList`; `inboundCapacity` entries.
    private var inbound: UnsafeMutablePointer<TCPStateCounts>
    private var inboundCapacity = 64
    /// Port -> 1 + index in `remotePorts`, 0 when not watched.
    private let remoteSlot: UnsafeMutablePointer<UInt8>
    /// Per entry of `remotePorts`.
    private let outbound: UnsafeMutablePointer<TCPStateCounts>
    private var ephemeralUse = EndpointTally()

    public static var wantsListenersFirst: Bool { true }

    public init(remotePorts: [UInt16], ephemeralRange: ClosedRange<UInt16>) {
        // A slot is a UInt8: at most 255 watched ports, each once.
        var unique: [UInt16] = []
        for port in remotePorts where !unique.contains(port) && unique.count < 255 { unique.append(port) }
        self.remotePorts = unique
        self.ephemeralRange = ephemeralRange
        listenerSlot = .allocate(capacity: 65536)
        listening = allocateZeroedTable(of: UInt64.self, count: 1024)
        inbound = .allocate(capacity: inboundCapacity)
        inbound.initialize(repeating: TCPStateCounts(), count: inboundCapacity)
        remoteSlot = allocateZeroedTable(of: UInt8.self, count: 65536)
        for (index, port) in unique.enumerated() { remoteSlot[Int(port)] = UInt8(index + 1) }
        outbound = .allocate(capacity: max(unique.count, 1))
        outbound.initialize(repeating: TCPStateCounts(), count: max(unique.count, 1))
    }

    deinit {
        listenerSlot.deallocate()
        free(listening)
        inbound.deallocate()
        free(remoteSlot)
        outbound.deallocate()
    }

    public mutating func startOver() {
        counts = SocketCounts()
        for (index, listener) in listenerList.enumerated() {
            listening[Int(listener.port >> 6)] = 0
            inbound[index] = TCPStateCounts()
        }
        listenerList.removeAll(keepingCapacity: true)
        for index in remotePorts.indices { outbound[index] = TCPStateCounts() }
        ephemeralUse.removeAll()
    }

    @inline(__always)
    public mutating func visit(_ socket: SocketRecord) {
        // The count after the per-port work, not before: its store could alias the datagram
        // the record is read from, so the compiler then loaded every field (addresses, queues)
        // for every socket, where only LISTEN sockets need most of them.
        if socket.transport == .tcp { tallyPorts(socket) }
        counts.visit(socket)
    }

    @inline(__always)
    private mutating func tallyPorts(_ socket: SocketRecord) {
        if socket.state == TCPState.listen.rawValue {
            // Fields, not the record: passing the record makes the compiler build it in memory
            // for every socket.
            addListener(port: socket.localPort, address: socket.localAddress, isIPv6: socket.isIPv6,
                        acceptQueue: socket.receiveQueue, backlog: socket.sendQueue)
            return
        }
        if listens(socket.localPort) {
            inbound[Int(listenerSlot[Int(socket.localPort)]) - 1].add(rawState: socket.state)
            return
        }
        let remote = Int(remoteSlot[Int(socket.remotePort)])
        if remote != 0 { outbound[remote - 1].add(rawState: socket.state) }
        if ephemeralRange.contains(socket.localPort) {
            ephemeralUse.add(socket.remoteAddress, port: socket.remotePort, isIPv6: socket.isIPv6)
        }
    }

    @inline(__always)
    private func listens(_ port: UInt16) -> Bool {
        listening[Int(port >> 6)] & (1 << (port & 63)) != 0
    }

    @inline(never)
    private mutating func addListener(port: UInt16, address: AddressWords, isIPv6: Bool, acceptQueue: UInt32, backlog: UInt32) {
        let slot: Int
        if listens(port) {
            slot = Int(listenerSlot[Int(port)])
        } else {
            if listenerList.count == inboundCapacity { growInbound() }
            listenerList.append(PortBreakdown.Listener(port: port))
            slot = listenerList.count
            listenerSlot[Int(port)] = UInt16(slot)
            listening[Int(port >> 6)] |= 1 << (port & 63)
        }
        listenerList[slot - 1].sockets += 1
        listenerList[slot - 1].acceptQueue += UInt64(acceptQueue)
        listenerList[slot - 1].backlog += UInt64(backlog)
        if !listenerList[slot - 1].addresses.contains(where: { $0.address == address && $0.isIPv6 == isIPv6 }) {
            listenerList[slot - 1].addresses.append((address, isIPv6))
        }
    }

    private mutating func growInbound() {
        let old = inbound
        inbound = .allocate(capacity: inboundCapacity * 2)
        inbound.moveInitialize(from: old, count: inboundCapacity)
        (inbound + inboundCapacity).initialize(repeating: TCPStateCounts(), count: inboundCapacity)
        inboundCapacity *= 2
        old.deallocate()
    }

    /// What was visited since the last `startOver()`.
    public var breakdown: PortBreakdown {
        var listeners = listenerList
        for index in listeners.indices { listeners[index].inbound = inbound[index] }
        let busiest = ephemeralUse.busiest.map {
            PortBreakdown.EphemeralUse(remoteAddress: $0.address, remotePort: $0.port, isIPv6: $0.isIPv6, sockets: $0.sockets)
        }
        return PortBreakdown(
            counts: counts, listeners: listeners.sorted { $0.port < $1.port }, remotePorts: remotePorts,
            outbound: remotePorts.indices.map { outbound[$0] }, ephemeralRange: ephemeralRange, busiestEphemeral: busiest)
    }
}
