/// TCP states as the kernel numbers them (include/net/tcp_states.h), named as Zabbix's
/// `net.tcp.socket.count` names them. `/proc/net/tcp`'s `st` column and inet_diag's
/// `idiag_state` both carry these numbers.
public enum TCPState: UInt8, CaseIterable, Sendable {
    case established = 1
    case synSent = 2
    case synRecv = 3
    case finWait1 = 4
    case finWait2 = 5
    case timeWait = 6
    case close = 7
    case closeWait = 8
    case lastAck = 9
    case listen = 10
    case closing = 11

    /// The name Zabbix uses (`net.tcp.socket.count[,,,,<name>]`) and our JSON uses.
    public var zabbixName: String {
        switch self {
        case .established: "established"
        case .synSent: "syn_sent"
        case .synRecv: "syn_recv"
        case .finWait1: "fin_wait1"
        case .finWait2: "fin_wait2"
        case .timeWait: "time_wait"
        case .close: "close"
        case .closeWait: "close_wait"
        case .lastAck: "last_ack"
        case .listen: "listen"
        case .closing: "closing"
        }
    }

    /// The name `ss` prints in its State column.
    public var ssName: String {
        switch self {
        case .established: "ESTAB"
        case .synSent: "SYN-SENT"
        case .synRecv: "SYN-RECV"
        case .finWait1: "FIN-WAIT-1"
        case .finWait2: "FIN-WAIT-2"
        case .timeWait: "TIME-WAIT"
        case .close: "UNCONN"
        case .closeWait: "CLOSE-WAIT"
        case .lastAck: "LAST-ACK"
        case .listen: "LISTEN"
        case .closing: "CLOSING"
        }
    }
}

/// Counts of TCP sockets per kernel state. Indexed by the raw state number so that the hot
/// loop is one bounds-checked increment, whatever the kernel sends.
public struct TCPStateCounts: Equatable, Sendable {
    /// Slot 0 and 12...15 collect states outside TCPState (none today; a future kernel might add one).
    private var slots = InlineArray<16, UInt64>(repeating: 0)

    public init() {}

    @inline(__always)
    public mutating func add(rawState: UInt8) {
        slots[Int(rawState & 0x0F)] &+= 1
    }

    public subscript(state: TCPState) -> UInt64 {
        get { slots[Int(state.rawValue)] }
        set { slots[Int(state.rawValue)] = newValue }
    }

    /// Every socket the source listed, including any in a state TCPState does not name.
    public var total: UInt64 {
        var sum: UInt64 = 0
        for i in slots.indices { sum &+= slots[i] }
        return sum
    }

    public static func + (a: TCPStateCounts, b: TCPStateCounts) -> TCPStateCounts {
        var sum = TCPStateCounts()
        for i in sum.slots.indices { sum.slots[i] = a.slots[i] &+ b.slots[i] }
        return sum
    }

    public static func == (a: TCPStateCounts, b: TCPStateCounts) -> Bool {
        for i in a.slots.indices where a.slots[i] != b.slots[i] { return false }
        return true
    }
}

/// Counts of UDP sockets. The kernel reports a connected UDP socket as TCP_ESTABLISHED (1)
/// and an unconnected one as TCP_CLOSE (7), which `ss` prints as ESTAB and UNCONN.
public struct UDPCounts: Equatable, Sendable {
    public var established: UInt64 = 0
    public var unconn: UInt64 = 0
    /// Every socket the source listed.
    public var total: UInt64 = 0

    public init(established: UInt64 = 0, unconn: UInt64 = 0, total: UInt64 = 0) {
        self.established = established
        self.unconn = unconn
        self.total = total
    }

    @inline(__always)
    public mutating func add(rawState: UInt8) {
        total &+= 1
        if rawState == TCPState.established.rawValue { established &+= 1 }
        else if rawState == TCPState.close.rawValue { unconn &+= 1 }
    }

    public static func + (a: UDPCounts, b: UDPCounts) -> UDPCounts {
        UDPCounts(established: a.established &+ b.established, unconn: a.unconn &+ b.unconn, total: a.total &+ b.total)
    }
}

/// One host's (or one network namespace's) socket counts, split by address family.
/// IPv4-mapped addresses on AF_INET6 sockets count as IPv6, as `ss` lists them.
public struct SocketCounts: Equatable, Sendable {
    public var tcp4 = TCPStateCounts()
    public var tcp6 = TCPStateCounts()
    public var udp4 = UDPCounts()
    public var udp6 = UDPCounts()

    public init() {}

    public var tcp: TCPStateCounts { tcp4 + tcp6 }
    public var udp: UDPCounts { udp4 + udp6 }
}
