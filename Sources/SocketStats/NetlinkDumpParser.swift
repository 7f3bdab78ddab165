import Glibc
import Posix
import CSockDiag

/// Why a netlink reply could not be used.
public enum NetlinkError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The kernel answered NLMSG_ERROR with this errno.
    case kernel(errno: Int32)
    /// A message header or body ends beyond the bytes received.
    case truncated(offset: Int, reason: String)
    /// A message type a sock_diag dump never sends.
    case unexpectedType(UInt16)

    public var description: String {
        switch self {
        case .kernel(let errno): "the kernel refused the sock_diag dump: \(describeErrno(errno))"
        case .truncated(let offset, let reason): "truncated netlink message at byte \(offset): \(reason)"
        case .unexpectedType(let type): "unexpected netlink message type \(type) in a sock_diag dump"
        }
    }
}

/// Parses the datagrams of one SOCK_DIAG_BY_FAMILY dump. Pure: bytes in, visits and an outcome
/// out, so it is tested on hand-made buffers.
public enum NetlinkDumpParser {
    /// What one datagram said about the dump as a whole.
    public struct Outcome: Equatable, Sendable {
        /// NLMSG_DONE was seen: the dump is complete.
        public var done: Bool
        /// A message carried NLM_F_DUMP_INTR: the tables changed under the dump, so it may
        /// have listed a socket twice or missed one.
        public var interrupted: Bool
    }

    /// NLMSG_HDRLEN: struct nlmsghdr, already a multiple of 4. A size the compiler knows, not a
    /// call into C: a call makes this a lazily initialised global, checked once per socket.
    static let headerSize = MemoryLayout<nlmsghdr>.size
    /// struct inet_diag_msg: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode.
    static let inetDiagMsgSize = MemoryLayout<inet_diag_msg>.size

    /// Visits every socket in `datagram`. Messages whose sequence number is not `sequence`
    /// (left over from an earlier request on the same socket) are skipped.
    @inline(__always)
    public static func parse<Visitor: SocketVisitor & ~Copyable>(
        _ datagram: UnsafeRawBufferPointer,
        sequence: UInt32,
        transport: TransportProtocol,
        into visitor: inout Visitor
    ) throws(NetlinkError) -> Outcome {
        // Where the previous message's cgroup attribute began, from the start of its attributes.
        var cgroupOffset = 0
        return try forEachSocketMessage(in: datagram, sequence: sequence, bodyName: "inet_diag_msg", minimumBody: inetDiagMsgSize) {
            (body, bodyLength) throws(NetlinkError) in
            var socket = record(at: body, in: datagram, transport: transport)
            if Visitor.wantsOwnership {
                // idiag_inode, after idiag_uid. (Offsets in a 64 KiB datagram: wrapping cannot happen.)
                socket.inode = datagram.loadUnaligned(fromByteOffset: body &+ 68, as: UInt32.self)
                socket.cgroupID = cgroupID(
                    in: datagram, from: body &+ inetDiagMsgSize, to: body &+ bodyLength, lastOffset: &cgroupOffset)
            }
            visitor.visit(socket)
        }
    }

    /// Walks the netlink messages of one sock_diag dump datagram, whatever the family: calls
    /// `visit` with the offset and length of each socket message's body (at least
    /// `minimumBody` bytes, the family's fixed struct), and reports NLMSG_DONE, NLMSG_ERROR
    /// and NLM_F_DUMP_INTR. Messages of another sequence number are skipped.
    @inline(__always)
    static func forEachSocketMessage(
        in datagram: UnsafeRawBufferPointer, sequence: UInt32, bodyName: StaticString, minimumBody: Int,
        _ visit: (_ body: Int, _ bodyLength: Int) throws(NetlinkError) -> Void
    ) throws(NetlinkError) -> Outcome {
        var outcome = Outcome(done: false, interrupted: false)
        var offset = 0
        let end = datagram.count
        while end - offset >= headerSize {
            let length = Int(datagram.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let type = datagram.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)
            let flags = datagram.loadUnaligned(fromByteOffset: offset + 6, as: UInt16.self)
            let messageSequence = datagram.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
            guard length >= headerSize, length <= end - offset else {
                throw .truncated(offset: offset, reason: "length \(length) with \(end - offset) bytes left")
            }
            // The kernel pads every message to 4 bytes; the last one may end without padding.
            let next = offset + min(Int(csd_nlmsg_align(UInt32(length))), end - offset)
            defer { offset = next }
            guard messageSequence == sequence else { continue }
            if flags & UInt16(NLM_F_DUMP_INTR) != 0 { outcome.interrupted = true }

            switch Int32(type) {
            case Int32(SOCK_DIAG_BY_FAMILY):
                guard length >= headerSize + minimumBody else {
                    throw .truncated(offset: offset, reason: "\(bodyName) needs \(minimumBody) bytes, message has \(length - headerSize)")
                }
                try visit(offset + headerSize, length - headerSize)
            case NLMSG_DONE:
                outcome.done = true
                return outcome
            case NLMSG_ERROR:
                guard length >= headerSize + 4 else {
                    throw .truncated(offset: offset, reason: "NLMSG_ERROR without an error code")
                }
                let error = datagram.loadUnaligned(fromByteOffset: offset + headerSize, as: Int32.self)
                // error 0 is an acknowledgement, which a dump does not ask for; anything else ends it.
                if error != 0 { throw .kernel(errno: -error) }
            case NLMSG_NOOP:
                continue
            default:
                throw .unexpectedType(type)
            }
        }
        if offset != end {
            throw .truncated(offset: offset, reason: "\(end - offset) trailing bytes, less than a message header")
        }
        return outcome
    }

    /// INET_DIAG_CGROUP_ID: the kernel adds it to every full socket's message without being asked.
    static let cgroupIDAttribute: UInt16 = 21

    /// An attribute's header (struct rtattr: length, type) as one 32-bit word, so that a
    /// header is compared at once: the kernel writes its two 16-bit fields in host order.
    @inline(__always)
    static func attributeHeader(length: UInt16, type: UInt16) -> UInt32 {
        #if _endian(little)
        UInt32(length) | UInt32(type) << 16
        #else
        UInt32(length) << 16 | UInt32(type)
        #endif
    }

    /// The header of an INET_DIAG_CGROUP_ID attribute: itself and a u64.
    @inline(__always)
    static var cgroupIDHeader: UInt32 { attributeHeader(length: 12, type: cgroupIDAttribute) }

    /// The value of the INET_DIAG_CGROUP_ID attribute among the rtattrs in `start..<end`, or 0.
    /// Each attribute is a 4-byte header (length, type) and its value, padded to 4 bytes; the id
    /// comes after two to four small ones (shutdown, v6only, mark). Every socket with an owner
    /// pays this, so each attribute costs one word compared (the whole header at once) and one
    /// length read; the arithmetic wraps instead of checking for overflow, which offsets in a
    /// 64 KiB datagram and 16-bit lengths cannot reach.
    ///
    /// The kernel writes the same attributes in the same order for every socket of one kind, so
    /// the id is first looked for at `lastOffset` (from `start`), where the previous message had
    /// it, and the walk runs only when that word is not its header; `lastOffset` is then updated.
    /// The attributes before the id hold at most 4 bytes each (8 with their header), so on
    /// x86-64 the id moves between messages by multiples of 8, and a remembered offset lands on
    /// another header or inside this message's own id, never on a value a process chose. (Where
    /// the kernel pads 64-bit values to 8 bytes, it could also land on a socket's mark, which
    /// only CAP_NET_ADMIN can set.)
    @inline(__always)
    static func cgroupID(in bytes: UnsafeRawBufferPointer, from start: Int, to end: Int, lastOffset: inout Int) -> UInt64 {
        let guess = start &+ lastOffset
        if end &- guess >= 12, bytes.loadUnaligned(fromByteOffset: guess, as: UInt32.self) == cgroupIDHeader {
            return bytes.loadUnaligned(fromByteOffset: guess &+ 4, as: UInt64.self)
        }
        var position = start
        while end &- position >= 12 {
            if bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self) == cgroupIDHeader {
                lastOffset = position &- start
                return bytes.loadUnaligned(fromByteOffset: position &+ 4, as: UInt64.self)
            }
            let length = Int(bytes.loadUnaligned(fromByteOffset: position, as: UInt16.self))
            guard length >= 4 else { return 0 }
            position &+= (length &+ 3) & ~3
        }
        return 0
    }

    /// Reads struct inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid
    /// (sport, dport as big-endian 16 bits; src, dst as four 32-bit words), expires, rqueue, wqueue.
    /// `base` is a message body of at least `inetDiagMsgSize` bytes in a 64 KiB datagram, so the
    /// offsets wrap instead of checking for an overflow they cannot reach.
    @inline(__always)
    static func record(at base: Int, in bytes: UnsafeRawBufferPointer, transport: TransportProtocol) -> SocketRecord {
        func word(_ at: Int) -> UInt32 { bytes.loadUnaligned(fromByteOffset: base &+ at, as: UInt32.self) }
        func address(_ at: Int) -> AddressWords { AddressWords(word(at), word(at &+ 4), word(at &+ 8), word(at &+ 12)) }
        return SocketRecord(
            transport: transport,
            isIPv6: Int32(bytes[base]) == AF_INET6,
            state: bytes[base &+ 1],
            localPort: UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: base &+ 4, as: UInt16.self)),
            remotePort: UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: base &+ 6, as: UInt16.self)),
            localAddress: address(8),
            remoteAddress: address(24),
            receiveQueue: word(56),
            sendQueue: word(60)
        )
    }
}
