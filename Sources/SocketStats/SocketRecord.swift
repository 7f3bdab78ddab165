import ByteCoding

/// The transport protocols we count.
public enum TransportProtocol: Sendable {
    case tcp
    case udp
}

/// An IPv4 or IPv6 address as the kernel stores it: four 32-bit words in network byte order
/// (an IPv4 address is the first word). Comparing and hashing it needs no formatting.
public struct AddressWords: Hashable, Sendable {
    public var w0: UInt32, w1: UInt32, w2: UInt32, w3: UInt32

    @inline(__always)
    public init(_ w0: UInt32, _ w1: UInt32, _ w2: UInt32, _ w3: UInt32) {
        (self.w0, self.w1, self.w2, self.w3) = (w0, w1, w2, w3)
    }

    public static let zero = AddressWords(0, 0, 0, 0)

    /// "127.0.0.1" or "::1"; IPv4-mapped IPv6 addresses print as "::ffff:10.0.0.1". Written
    /// byte by byte into one buffer: built from arrays of Strings and joined, an address cost
    /// 15k instructions, and `stats` prints every listener's.
    public func formatted(isIPv6: Bool) -> String {
        withUnsafeBytes(of: (w0, w1, w2, w3)) { address in
            var text: [UInt8] = []
            text.reserveCapacity(45)  // the longest: "ffff:...:ffff:255.255.255.255"
            func appendDotted(from start: Int) {
                for index in start..<start + 4 {
                    if index > start { text.append(UInt8(ascii: ".")) }
                    let byte = address[index]
                    if byte >= 100 { text.append(UInt8(ascii: "0") + byte / 100) }
                    if byte >= 10 { text.append(UInt8(ascii: "0") + byte / 10 % 10) }
                    text.append(UInt8(ascii: "0") + byte % 10)
                }
            }
            guard isIPv6 else {
                appendDotted(from: 0)
                return String(decoding: text, as: UTF8.self)
            }
            func group(_ index: Int) -> UInt16 { UInt16(address[2 * index]) << 8 | UInt16(address[2 * index + 1]) }
            // The first longest run of two or more zero groups becomes "::" (RFC 5952).
            var best = (start: -1, length: 1)
            var index = 0
            while index < 8 {
                var end = index
                while end < 8 && group(end) == 0 { end += 1 }
                if end - index > best.length { best = (index, end - index) }
                index = end == index ? index + 1 : end
            }
            if best.start == 0 && best.length == 5 && group(5) == 0xFFFF {
                text.append(contentsOf: "::ffff:".utf8)
                appendDotted(from: 12)
                return String(decoding: text, as: UTF8.self)
            }
            index = 0
            while index < 8 {
                if index == best.start {
                    text.append(contentsOf: "::".utf8)
                    index += best.length
                    continue
                }
                if index > 0 && index != best.start + best.length { text.append(UInt8(ascii: ":")) }
                let value = group(index)
                var shift = 12
                while shift > 0 && value >> shift == 0 { shift -= 4 }
                while shift >= 0 {
                    text.append(lowercaseHexDigits[Int(value >> shift & 0xF)])
                    shift -= 4
                }
                index += 1
            }
            return String(decoding: text, as: UTF8.self)
        }
    }
}

/// What a collector learns about one socket. Built on the stack for each socket the kernel
/// lists and handed to a `SocketVisitor`, so collecting allocates nothing per socket.
public struct SocketRecord: Sendable {
    public var transport: TransportProtocol
    /// AF_INET6 (as the kernel reports the socket's family; IPv4-mapped peers included).
    public var isIPv6: Bool
    /// The kernel state number (TCPState's raw value; UDP uses 1 connected and 7 unconnected).
    public var state: UInt8
    public var localPort: UInt16
    public var remotePort: UInt16
    public var localAddress: AddressWords
    public var remoteAddress: AddressWords
    /// LISTEN: connections waiting in the accept queue. Otherwise: bytes not yet read.
    public var receiveQueue: UInt32
    /// LISTEN over netlink: the accept-queue limit (listen()'s backlog, capped by somaxconn).
    /// LISTEN over /proc: not the limit (the kernel prints unsent bytes there). Otherwise: bytes not yet acknowledged.
    public var sendQueue: UInt32
    /// The cgroup v2 id the kernel reports (INET_DIAG_CGROUP_ID): the id of the cgroup that made
    /// the socket (or its listener). 0: none reported (TIME_WAIT, SYN_RECV, /proc, an old kernel)
    /// or not asked for (see `SocketVisitor.wantsOwnership`). No cgroup has id 0.
    public var cgroupID: UInt64
    /// The socket's inode, as /proc/PID/fd/N names it ("socket:[INODE]"); 0 for TIME_WAIT,
    /// SYN_RECV and orphans (closed by their process), or when not asked for.
    public var inode: UInt32

    @inline(__always)
    public init(
        transport: TransportProtocol, isIPv6: Bool, state: UInt8,
        localPort: UInt16 = 0, remotePort: UInt16 = 0,
        localAddress: AddressWords = .zero, remoteAddress: AddressWords = .zero,
        receiveQueue: UInt32 = 0, sendQueue: UInt32 = 0, cgroupID: UInt64 = 0, inode: UInt32 = 0
    ) {
        self.transport = transport
        self.isIPv6 = isIPv6
        self.state = state
        self.localPort = localPort
        self.remotePort = remotePort
        self.localAddress = localAddress
        self.remoteAddress = remoteAddress
        self.receiveQueue = receiveQueue
        self.sendQueue = sendQueue
        self.cgroupID = cgroupID
        self.inode = inode
    }
}

/// Receives every socket of one collection. A collector is generic over its visitor so that
/// the compiler specialises the hot loop for each model it fills. A visitor may be noncopyable
/// (`PortTally`), so that it can own the memory its hot loop writes to.
public protocol SocketVisitor: ~Copyable {
    /// Forget what was visited, keeping any settings: a dump the kernel interrupted is re-run.
    mutating func startOver()
    mutating func visit(_ socket: SocketRecord)
    /// Whether every TCP listener must be visited before any other TCP socket (per-port models
    /// need to know a port listens before they meet its connections). Costs two more netlink
    /// dumps of the listening tables only, or a read of the head of each /proc TCP table.
    static var wantsListenersFirst: Bool { get }
    /// Whether `SocketRecord.cgroupID` and `inode` must be filled: the netlink parser then walks
    /// each message's attributes, which it skips otherwise.
    static var wantsOwnership: Bool { get }
}

extension SocketVisitor where Self: ~Copyable {
    public static var wantsListenersFirst: Bool { false }
    public static var wantsOwnership: Bool { false }
}

extension SocketCounts: SocketVisitor {
    public mutating func startOver() { self = SocketCounts() }

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
