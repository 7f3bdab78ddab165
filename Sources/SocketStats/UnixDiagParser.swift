import CSockDiag

/// Parses the datagrams of one unix_diag dump (SOCK_DIAG_BY_FAMILY for AF_UNIX, asked with
/// UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN). Pure: bytes in, visits and an outcome out. The
/// netlink framing (sequence, NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP_INTR) is NetlinkDumpParser's.
public enum UnixDiagParser {
    /// struct unix_diag_msg: family, type, state, pad, inode, cookie[2].
    static let unixDiagMsgSize = MemoryLayout<unix_diag_msg>.size
    /// struct rtattr: length (header included), type; its payload is padded to 4 bytes.
    static let attributeHeaderSize = 4
    static let nameAttribute = UInt16(UNIX_DIAG_NAME)
    static let queueAttribute = UInt16(UNIX_DIAG_RQLEN)
    static let shutdownAttribute = UInt16(UNIX_DIAG_SHUTDOWN)
    /// UNIX_DIAG_RQLEN (header and two counts) then UNIX_DIAG_SHUTDOWN (header and one byte,
    /// padded): all the attributes of an unnamed socket's message.
    static let unnamedAttributesSize = 12 + 8

    @inline(__always)
    public static func parse(_ datagram: UnsafeRawBufferPointer, sequence: UInt32, into tally: inout UnixTally) throws(NetlinkError) -> NetlinkDumpParser.Outcome {
        try NetlinkDumpParser.forEachSocketMessage(in: datagram, sequence: sequence, bodyName: "unix_diag_msg", minimumBody: unixDiagMsgSize) {
            (body, bodyLength) throws(NetlinkError) in
            let message = try Message(at: body, length: bodyLength, in: datagram)
            // The name is copied into a UnixName (108 bytes) only when the tally keeps it: most
            // sockets are unnamed or datagram sockets, counted by type and state alone.
            guard tally.count(type: message.type, state: message.state), !message.name.isEmpty else { return }
            let name = UnixName(UnsafeRawBufferPointer(rebasing: datagram[message.name]))!
            tally.addToPath(UnixSocketRecord(
                type: message.type, state: message.state, name: name,
                receiveQueue: message.receiveQueue, sendQueue: message.sendQueue))
        }
    }

    /// One unix_diag message as read: its fixed fields, and where its name's bytes are.
    struct Message {
        var type: UInt8
        var state: UInt8
        /// The UNIX_DIAG_NAME payload's bytes in the datagram (at most sun_path's size); empty: unnamed.
        var name: Range<Int> = 0..<0
        var receiveQueue: UInt32 = 0
        var sendQueue: UInt32 = 0

        /// Reads struct unix_diag_msg, then its attributes: UNIX_DIAG_NAME (sun_path bytes, a
        /// leading NUL for an abstract name) and UNIX_DIAG_RQLEN (two 32-bit counts: for a
        /// listener the accept queue and the backlog). Other attributes are skipped. Offsets
        /// within a 64 KiB datagram plus 16-bit lengths cannot overflow, so the walk uses
        /// wrapping arithmetic; every length is still checked.
        @inline(__always)
        init(at base: Int, length: Int, in bytes: UnsafeRawBufferPointer) throws(NetlinkError) {
            type = bytes[base &+ 1]
            state = bytes[base &+ 2]
            var offset = base &+ unixDiagMsgSize
            let end = base &+ length
            // Most sockets are unnamed, and the kernel writes the name first, then the queue,
            // then the shutdown byte. A message holding exactly the queue and the shutdown byte
            // is an unnamed socket's, whose queue nobody reads: two headers compared instead of
            // a walk. Any other message is walked, so correctness does not rest on that order.
            func header(at offset: Int) -> UInt32 { bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
            if end &- offset == unnamedAttributesSize,
               header(at: offset) == NetlinkDumpParser.attributeHeader(length: 12, type: queueAttribute),
               header(at: offset &+ 12) == NetlinkDumpParser.attributeHeader(length: 5, type: shutdownAttribute) {
                return
            }
            while end &- offset >= attributeHeaderSize {
                let attributeLength = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
                let attributeType = bytes.loadUnaligned(fromByteOffset: offset &+ 2, as: UInt16.self)
                guard attributeLength >= attributeHeaderSize, attributeLength <= end &- offset else {
                    throw .truncated(offset: offset, reason: "unix_diag attribute length \(attributeLength) with \(end - offset) bytes left")
                }
                let payloadStart = offset &+ attributeHeaderSize, payloadLength = attributeLength &- attributeHeaderSize
                switch attributeType {
                case nameAttribute:
                    guard payloadLength <= UnixName.capacity else {
                        throw .truncated(offset: offset, reason: "UNIX_DIAG_NAME of \(payloadLength) bytes, longer than sun_path")
                    }
                    name = payloadStart..<(payloadStart &+ payloadLength)
                case queueAttribute:
                    guard payloadLength >= 8 else {
                        throw .truncated(offset: offset, reason: "UNIX_DIAG_RQLEN needs 8 bytes, has \(payloadLength)")
                    }
                    receiveQueue = bytes.loadUnaligned(fromByteOffset: payloadStart, as: UInt32.self)
                    sendQueue = bytes.loadUnaligned(fromByteOffset: payloadStart &+ 4, as: UInt32.self)
                default:
                    break
                }
                offset &+= min((attributeLength &+ 3) & ~3, end &- offset)
            }
        }
    }
}
