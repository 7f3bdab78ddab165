import Glibc

/// UNIX-domain socket types as the kernel numbers them (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET).
public enum UnixSocketType: UInt8, CaseIterable, Sendable {
    case stream = 1
    case dgram = 2
    case seqpacket = 5

    /// The name our JSON uses.
    public var name: String {
        switch self {
        case .stream: "stream"
        case .dgram: "dgram"
        case .seqpacket: "seqpacket"
        }
    }
}

/// A socket's address as the kernel holds it (sun_path, at most 108 bytes), kept inline so
/// that looking a name up allocates nothing. An abstract name starts with a NUL byte; a
/// filesystem path ends at its first NUL. The unused tail is always zero, so the whole value
/// hashes and compares.
public struct UnixName: Hashable, Sendable {
    /// sizeof(sockaddr_un.sun_path).
    public static let capacity = 108
    public private(set) var length: Int
    private var bytes = InlineArray<108, UInt8>(repeating: 0)

    /// nil when `raw` is longer than a sun_path can be. Empty: an unnamed socket.
    @inline(__always)
    public init?<Bytes: Collection<UInt8>>(_ raw: Bytes) {
        guard raw.count <= Self.capacity else { return nil }
        var count = 0
        let isAbstract = raw.first == 0
        for byte in raw {
            if byte == 0 && !isAbstract { break }
            bytes[count] = byte
            count += 1
        }
        length = count
    }

    public var isEmpty: Bool { length == 0 }

    /// As `ss` prints it: an abstract name as "@" then its bytes, a NUL among them as "@" too.
    public var displayName: String {
        var text: [UInt8] = []
        text.reserveCapacity(length)
        for index in 0..<length { text.append(bytes[index] == 0 ? UInt8(ascii: "@") : bytes[index]) }
        return String(decoding: text, as: UTF8.self)
    }

    /// Adds `byte` after the name (a /proc/net/unix path split over lines); false when full.
    mutating func append(_ byte: UInt8) -> Bool {
        guard length < Self.capacity else { return false }
        bytes[length] = byte
        length += 1
        return true
    }

    /// Compares memory at once: a byte-by-byte loop over the inline array cost 500
    /// instructions a dictionary look-up, which every named socket pays.
    public static func == (a: UnixName, b: UnixName) -> Bool {
        a.length == b.length && withUnsafeBytes(of: a.bytes) { first in
            withUnsafeBytes(of: b.bytes) { second in memcmp(first.baseAddress!, second.baseAddress!, a.length) == 0 }
        }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: bytes) { hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
    }
}

/// What a collector learns about one UNIX socket; built on the stack per socket.
public struct UnixSocketRecord: Sendable {
    public var type: UInt8
    /// The kernel state number: TCPState's ESTABLISHED, LISTEN, CLOSE (`ss`: UNCONN), SYN_SENT...
    public var state: UInt8
    public var name: UnixName
    /// LISTEN: connections waiting to be accepted (`ss -xl` Recv-Q); 0 when the source cannot tell.
    public var receiveQueue: UInt32
    /// LISTEN: the backlog (`ss -xl` Send-Q); 0 when the source cannot tell.
    public var sendQueue: UInt32

    @inline(__always)
    public init(type: UInt8, state: UInt8, name: UnixName, receiveQueue: UInt32 = 0, sendQueue: UInt32 = 0) {
        self.type = type
        self.state = state
        self.name = name
        self.receiveQueue = receiveQueue
        self.sendQueue = sendQueue
    }
}

/// Counts UNIX sockets per type and state, and per named listening path its listeners, queue,
/// backlog and connections (stream and seqpacket sockets carrying the path that do not listen:
/// the accepted ends, which share their listener's name). Allocates only per distinct name of
/// a connection-oriented socket, which in practice means per listening path.
public struct UnixTally: Sendable {
    public struct PathFigures: Sendable, Equatable {
        public var listeners: UInt64 = 0
        public var acceptQueue: UInt64 = 0
        public var backlog: UInt64 = 0
        public var connections: UInt64 = 0

        public init(listeners: UInt64 = 0, acceptQueue: UInt64 = 0, backlog: UInt64 = 0, connections: UInt64 = 0) {
            (self.listeners, self.acceptQueue, self.backlog, self.connections) = (listeners, acceptQueue, backlog, connections)
        }

        public static func + (a: PathFigures, b: PathFigures) -> PathFigures {
            PathFigures(listeners: a.listeners + b.listeners, acceptQueue: a.acceptQueue + b.acceptQueue,
                        backlog: a.backlog + b.backlog, connections: a.connections + b.connections)
        }

        @inline(__always)
        mutating func add(_ socket: UnixSocketRecord) {
            guard socket.state == TCPState.listen.rawValue else {
                connections += 1
                return
            }
            listeners += 1
            acceptQueue += UInt64(socket.receiveQueue)
            backlog += UInt64(socket.sendQueue)
        }
    }

    private var stream = TCPStateCounts()
    private var dgram = TCPStateCounts()
    private var seqpacket = TCPStateCounts()
    private var paths: [UnixName: PathFigures] = [:]

    public init() {}

    public mutating func startOver() { self = UnixTally() }

    @inline(__always)
    public mutating func visit(_ socket: UnixSocketRecord) {
        guard count(type: socket.type, state: socket.state), !socket.name.isEmpty else { return }
        addToPath(socket)
    }

    /// Counts a socket by type and state; true when it is a stream or seqpacket socket, whose
    /// name (if it has one) then goes to `addToPath`.
    @inline(__always)
    mutating func count(type: UInt8, state: UInt8) -> Bool {
        switch type {
        case UnixSocketType.stream.rawValue: stream.add(rawState: state)
        case UnixSocketType.seqpacket.rawValue: seqpacket.add(rawState: state)
        case UnixSocketType.dgram.rawValue:
            dgram.add(rawState: state)
            return false
        default: return false
        }
        return true
    }

    /// Adds a named stream or seqpacket socket, already counted, to its path's figures.
    mutating func addToPath(_ socket: UnixSocketRecord) {
        paths[socket.name, default: PathFigures()].add(socket)
    }

    /// A connection waiting in the accept queue of the listener at `name`, seen by a source
    /// that lists those instead of the queue's length (/proc/net/unix).
    public mutating func visitWaitingConnection(to name: UnixName) {
        paths[name, default: PathFigures()].acceptQueue += 1
    }

    public func breakdown(source: Source) -> UnixBreakdown {
        let listening = mergedByPath(
            paths.filter { $0.value.listeners > 0 }.map { UnixBreakdown.Listener(path: $0.key.displayName, figures: $0.value) },
            path: \.path, merge: { $0.figures = $0.figures + $1.figures })
        return UnixBreakdown(source: source, stream: stream, dgram: dgram, seqpacket: seqpacket, listeners: listening)
    }
}

/// The `unix` section: state counts per type, and every named listening path.
public struct UnixBreakdown: Sendable, Equatable {
    public struct Listener: Sendable, Equatable {
        /// As `ss` prints it; abstract names start with "@".
        public var path: String
        public var figures: UnixTally.PathFigures
    }

    /// /proc/net/unix has no queue figures: from there every accept_queue and backlog is 0.
    public var source: Source
    public var stream: TCPStateCounts
    public var dgram: TCPStateCounts
    public var seqpacket: TCPStateCounts
    /// Sorted by path, one entry per path as printed; unnamed sockets are never listed.
    public var listeners: [Listener]

    public init(source: Source, stream: TCPStateCounts = .init(), dgram: TCPStateCounts = .init(), seqpacket: TCPStateCounts = .init(), listeners: [Listener] = []) {
        self.source = source
        self.stream = stream
        self.dgram = dgram
        self.seqpacket = seqpacket
        self.listeners = listeners
    }

    public subscript(type: UnixSocketType) -> TCPStateCounts {
        switch type {
        case .stream: stream
        case .dgram: dgram
        case .seqpacket: seqpacket
        }
    }
}
