import ByteCoding

/// Why a /proc/net/{tcp,tcp6,udp,udp6} table could not be read.
public struct ProcNetParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// 1-based line number in the file.
    public var line: Int
    public var reason: String

    public var description: String { "line \(line): \(reason)" }
}

/// Parses /proc/net/tcp, tcp6, udp and udp6 (all four share one layout, see the kernel's
/// tcp4_seq_show), fed in chunks of any size. Pure: bytes in, visits out; a line split across
/// two chunks is kept in a fixed carry buffer, so parsing allocates nothing per line.
///
///     sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
///      0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 ...
public struct ProcNetParser: ~Copyable {
    /// Which of a table's sockets to visit. The kernel prints a TCP table's listeners before
    /// its other sockets, so a pass over the listeners stops at the first other line.
    public enum Selection: Sendable {
        case all
        case listenersOnly
        case allButListeners
    }

    public let transport: TransportProtocol
    public let isIPv6: Bool
    public let selection: Selection
    /// A `listenersOnly` pass has met the first non-listener: the rest of the table is not needed.
    public private(set) var isFinished = false
    /// Hex digits of an address: 8 for IPv4, 32 for IPv6.
    private let addressDigits: Int
    private var lineNumber = 0
    /// A line longer than this is not a socket line (real ones are under 200 bytes).
    static let maxLineLength = 512
    private let carry = UnsafeMutableRawBufferPointer.allocate(byteCount: ProcNetParser.maxLineLength, alignment: 1)
    private var carried = 0

    public init(transport: TransportProtocol, isIPv6: Bool, selection: Selection = .all) {
        self.transport = transport
        self.isIPv6 = isIPv6
        self.selection = selection
        self.addressDigits = isIPv6 ? 32 : 8
    }

    deinit { carry.deallocate() }

    /// Parses every complete line in `chunk`; an incomplete last line waits for the next chunk.
    public mutating func feed<Visitor: SocketVisitor & ~Copyable>(_ chunk: UnsafeRawBufferPointer, into visitor: inout Visitor) throws(ProcNetParseError) {
        if isFinished { return }
        var start = 0
        if carried > 0 {
            // Complete the carried line with the head of this chunk.
            guard let newline = chunk.firstIndex(of: UInt8(ascii: "\n")) else {
                try append(chunk)
                return
            }
            try append(UnsafeRawBufferPointer(rebasing: chunk[0..<newline]))
            let line = UnsafeRawBufferPointer(rebasing: carry[0..<carried])
            carried = 0
            try parseLine(line, into: &visitor)
            start = newline + 1
        }
        while start < chunk.count && !isFinished {
            guard let newline = chunk[start...].firstIndex(of: UInt8(ascii: "\n")) else {
                try append(UnsafeRawBufferPointer(rebasing: chunk[start...]))
                return
            }
            try parseLine(UnsafeRawBufferPointer(rebasing: chunk[start..<newline]), into: &visitor)
            start = newline + 1
        }
    }

    /// Call at end of file: parses a last line without a newline and checks the header was seen.
    public mutating func finish<Visitor: SocketVisitor & ~Copyable>(into visitor: inout Visitor) throws(ProcNetParseError) {
        if carried > 0 && !isFinished {
            let line = UnsafeRawBufferPointer(rebasing: carry[0..<carried])
            carried = 0
            try parseLine(line, into: &visitor)
        }
        if lineNumber == 0 {
            throw ProcNetParseError(line: 0, reason: "empty file: expected the header line \"sl local_address rem_address st ...\"")
        }
    }

    private mutating func append(_ bytes: UnsafeRawBufferPointer) throws(ProcNetParseError) {
        guard carried + bytes.count <= carry.count else {
            throw ProcNetParseError(line: lineNumber + 1, reason: "line longer than \(carry.count) bytes")
        }
        UnsafeMutableRawBufferPointer(rebasing: carry[carried..<(carried + bytes.count)]).copyMemory(from: bytes)
        carried += bytes.count
    }

    @inline(__always)
    private mutating func parseLine<Visitor: SocketVisitor & ~Copyable>(_ line: UnsafeRawBufferPointer, into visitor: inout Visitor) throws(ProcNetParseError) {
        lineNumber += 1
        guard line.count <= Self.maxLineLength else {
            throw ProcNetParseError(line: lineNumber, reason: "line longer than \(Self.maxLineLength) bytes")
        }
        var cursor = FieldCursor(line)
        if lineNumber == 1 {
            guard cursor.next().elementsEqual("sl".utf8), cursor.next().elementsEqual("local_address".utf8) else {
                throw ProcNetParseError(line: 1, reason: "not a /proc/net socket table: the header must start with \"sl local_address\"")
            }
            return
        }
        let slot = cursor.next()
        if slot.isEmpty, cursor.atEnd { return }  // a blank line carries no socket
        guard slot.count >= 2, slot.last == UInt8(ascii: ":") else {
            throw ProcNetParseError(line: lineNumber, reason: "expected a slot number like \"12:\"")
        }
        let local = try endpoint(cursor.next(), field: "local_address")
        let remote = try endpoint(cursor.next(), field: "rem_address")
        guard let state = Self.hexValue(cursor.next(), maxDigits: 2) else {
            throw ProcNetParseError(line: lineNumber, reason: "expected the state as two hex digits in column st")
        }
        let queues = cursor.next()
        guard queues.count == 17, queues[queues.startIndex + 8] == UInt8(ascii: ":"),
              let sendQueue = Self.hexValue(queues[queues.startIndex..<(queues.startIndex + 8)], maxDigits: 8),
              let receiveQueue = Self.hexValue(queues[(queues.startIndex + 9)...], maxDigits: 8)
        else {
            throw ProcNetParseError(line: lineNumber, reason: "expected tx_queue:rx_queue as 8:8 hex digits (line truncated?)")
        }
        let isListener = state == UInt32(TCPState.listen.rawValue)
        switch selection {
        case .all: break
        case .listenersOnly where !isListener:
            isFinished = true
            return
        case .allButListeners where isListener: return
        case .listenersOnly, .allButListeners: break
        }
        visitor.visit(SocketRecord(
            transport: transport, isIPv6: isIPv6, state: UInt8(state),
            localPort: local.port, remotePort: remote.port,
            localAddress: local.address, remoteAddress: remote.address,
            receiveQueue: receiveQueue,
            // For a listener the kernel prints unsent bytes here, not its backlog: 0 = unknown.
            sendQueue: isListener && transport == .tcp ? 0 : sendQueue
        ))
    }

    /// "0100007F:0CEA": the address as 32-bit words, each printed as the kernel holds it in
    /// memory (so parsing a word gives back the network-order word netlink reports), a colon,
    /// then the port as 4 hex digits.
    @inline(__always)
    private func endpoint(_ field: Slice<UnsafeRawBufferPointer>, field name: String) throws(ProcNetParseError) -> (address: AddressWords, port: UInt16) {
        let colon = field.startIndex + addressDigits
        func word(_ index: Int) -> UInt32? {
            let start = field.startIndex + 8 * index
            return Self.hexValue(field[start..<(start + 8)], maxDigits: 8)
        }
        guard field.count == addressDigits + 5, field[colon] == UInt8(ascii: ":"),
              let port = Self.hexValue(field[(colon + 1)...], maxDigits: 4),
              let w0 = word(0)
        else {
            throw ProcNetParseError(line: lineNumber, reason: "expected \(name) as \(addressDigits) hex digits, ':', 4 hex digits")
        }
        guard isIPv6 else { return (AddressWords(w0, 0, 0, 0), UInt16(port)) }
        guard let w1 = word(1), let w2 = word(2), let w3 = word(3) else {
            throw ProcNetParseError(line: lineNumber, reason: "expected \(name) as \(addressDigits) hex digits, ':', 4 hex digits")
        }
        return (AddressWords(w0, w1, w2, w3), UInt16(port))
    }

    @inline(__always)
    static func hexValue(_ digits: Slice<UnsafeRawBufferPointer>, maxDigits: Int) -> UInt32? {
        guard !digits.isEmpty, digits.count <= maxDigits else { return nil }
        var value: UInt32 = 0
        for byte in digits {
            guard let digit = hexDigitValue(byte) else { return nil }
            value = value << 4 | UInt32(digit)
        }
        return value
    }
}

/// Splits a line into space-separated fields without copying.
struct FieldCursor {
    let line: UnsafeRawBufferPointer
    var position: Int

    init(_ line: UnsafeRawBufferPointer) {
        self.line = line
        self.position = 0
    }

    var atEnd: Bool { position >= line.count }

    /// The next field, empty at the end of the line.
    @inline(__always)
    mutating func next() -> Slice<UnsafeRawBufferPointer> {
        while position < line.count, line[position] == UInt8(ascii: " ") || line[position] == UInt8(ascii: "\t") || line[position] == UInt8(ascii: "\r") {
            position += 1
        }
        let start = position
        while position < line.count, line[position] != UInt8(ascii: " "), line[position] != UInt8(ascii: "\t"), line[position] != UInt8(ascii: "\r") {
            position += 1
        }
        return line[start..<position]
    }
}
