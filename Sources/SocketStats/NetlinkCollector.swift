import Glibc
import CSockDiag
import Posix

/// Counts sockets through NETLINK_SOCK_DIAG, as `ss` does: one SOCK_DIAG_BY_FAMILY dump per
/// (AF_INET, AF_INET6) x (TCP, UDP), every state, no extensions, read into one reused buffer.
public enum NetlinkCollector {
    /// Every state up to TCP_CLOSING, as `ss -a` asks; the kernel adds TCP_NEW_SYN_RECV
    /// (pending connection requests, reported as SYN_RECV) whenever SYN_RECV is asked for.
    static let allStates: UInt32 = 0xFFF
    /// The kernel fills at most 32 KiB per dump datagram; twice that never truncates.
    static let receiveBufferSize = 64 * 1024
    /// NLM_F_DUMP_INTR means the hash tables changed mid-dump; re-run it this many times at most.
    static let dumpAttempts = 3
    /// A dump of 10 million sockets needs about 30,000 datagrams; this only stops a runaway loop.
    static let maxDatagramsPerDump = 10_000_000
    static let receiveTimeoutSeconds = 10

    /// TCP_LISTEN alone: the kernel then walks only its listening hash, which is small.
    static let listenOnly: UInt32 = 1 << UInt32(TCPState.listen.rawValue)

    /// Fills `visitor` from the kernel's socket tables.
    public static func collect<Visitor: SocketVisitor & ~Copyable>(into visitor: inout Visitor) throws(CollectorError) {
        let socket = try NetlinkSocket()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: receiveBufferSize, alignment: 8)
        defer { buffer.deallocate() }

        let dumps: [(transport: TransportProtocol, family: Int32, states: UInt32)] =
            if Visitor.wantsListenersFirst {
                [(.tcp, AF_INET, listenOnly), (.tcp, AF_INET6, listenOnly),
                 (.tcp, AF_INET, allStates & ~listenOnly), (.tcp, AF_INET6, allStates & ~listenOnly),
                 (.udp, AF_INET, allStates), (.udp, AF_INET6, allStates)]
            } else {
                [(.tcp, AF_INET, allStates), (.tcp, AF_INET6, allStates),
                 (.udp, AF_INET, allStates), (.udp, AF_INET6, allStates)]
            }
        var sequence: UInt32 = 0
        for attempt in 1...dumpAttempts {
            visitor.startOver()
            var interrupted = false
            for request in dumps {
                sequence &+= 1
                interrupted = try dump(
                    family: request.family, transport: request.transport, states: request.states,
                    sequence: sequence, socket: socket, buffer: buffer, into: &visitor
                ) || interrupted
            }
            // After the last attempt, an interrupted dump is still the best count there is,
            // which is what `ss` reports too.
            if !interrupted || attempt == dumpAttempts { break }
        }
    }

    /// Returns whether the kernel flagged the dump as interrupted.
    static func dump<Visitor: SocketVisitor & ~Copyable>(
        family: Int32, transport: TransportProtocol, states: UInt32, sequence: UInt32,
        socket: borrowing NetlinkSocket, buffer: UnsafeMutableRawBufferPointer, into visitor: inout Visitor
    ) throws(CollectorError) -> Bool {
        var request = csd_dump_request()
        request.request.sdiag_family = UInt8(family)
        request.request.sdiag_protocol = UInt8(transport == .tcp ? IPPROTO_TCP : IPPROTO_UDP)
        request.request.idiag_states = states
        // IPv6 disabled or its diag handler absent: no IPv6 sockets, not an error.
        return try dump(request: &request, sequence: sequence, socket: socket, buffer: buffer, absentMeansEmpty: family == AF_INET6) {
            datagram throws(NetlinkError) in
            try NetlinkDumpParser.parse(datagram, sequence: sequence, transport: transport, into: &visitor)
        }
    }

    /// Sends one dump request (a csd_*_request whose header this fills) and hands every reply
    /// datagram to `parse` until NLMSG_DONE; returns whether the kernel flagged the dump as
    /// interrupted. With `absentMeansEmpty`, ENOENT or EAFNOSUPPORT (no such family or diag
    /// handler here) is an empty dump rather than an error.
    static func dump<Request>(
        request: inout Request, sequence: UInt32, socket: borrowing NetlinkSocket, buffer: UnsafeMutableRawBufferPointer,
        absentMeansEmpty: Bool,
        parse: (UnsafeRawBufferPointer) throws(NetlinkError) -> NetlinkDumpParser.Outcome
    ) throws(CollectorError) -> Bool {
        do {
            try socket.sendDumpRequest(&request, sequence: sequence)
        } catch let error {
            throw .netlinkRefused(reason: "sending the sock_diag request: \(describeErrno(error.code))", errno: error.code)
        }
        var interrupted = false
        for _ in 0..<maxDatagramsPerDump {
            let received: Int
            do {
                received = try socket.receive(into: buffer)
            } catch let error {
                throw .netlinkRefused(reason: "reading the sock_diag reply: \(describeErrno(error.code))", errno: error.code)
            }
            let datagram = UnsafeRawBufferPointer(rebasing: buffer[0..<received])
            do {
                let outcome = try parse(datagram)
                interrupted = interrupted || outcome.interrupted
                if outcome.done { return interrupted }
            } catch .kernel(let errno) where absentMeansEmpty && (errno == ENOENT || errno == EAFNOSUPPORT) {
                return interrupted
            } catch .kernel(let errno) {
                throw .netlinkRefused(reason: NetlinkError.kernel(errno: errno).description, errno: errno)
            } catch let error {
                throw .malformedNetlink(error)
            }
        }
        throw .malformedNetlink(.truncated(offset: 0, reason: "no NLMSG_DONE after \(maxDatagramsPerDump) datagrams"))
    }
}

/// A NETLINK_SOCK_DIAG socket, closed when it goes out of scope.
struct NetlinkSocket: ~Copyable {
    let fd: Int32

    init() throws(CollectorError) {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_SOCK_DIAG)
        guard fd >= 0 else {
            let error = errno
            throw .netlinkRefused(reason: "opening a NETLINK_SOCK_DIAG socket: \(describeErrno(error))", errno: error)
        }
        self.fd = fd
        // A kernel that never answers must not hang a poll forever.
        var timeout = timeval(tv_sec: NetlinkCollector.receiveTimeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Sends a dump request: `request` is a csd_*_request (a netlink header, then a family's
    /// request); this fills the header. Throws the errno of a failed send.
    func sendDumpRequest<Request>(_ request: inout Request, sequence: UInt32) throws(SystemCallError) {
        let size = MemoryLayout<Request>.size
        withUnsafeMutableBytes(of: &request) { bytes in
            let header = bytes.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)
            header.pointee.nlmsg_len = UInt32(size)
            header.pointee.nlmsg_type = UInt16(SOCK_DIAG_BY_FAMILY)
            header.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_DUMP)
            header.pointee.nlmsg_seq = sequence
        }
        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        let sent = withUnsafePointer(to: &request) { requestPointer in
            withUnsafePointer(to: &kernel) { address in
                address.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, requestPointer, size, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                }
            }
        }
        if sent < 0 { throw SystemCallError("sendto", "NETLINK_SOCK_DIAG", code: errno) }
    }

    /// One datagram; throws the errno of a failed receive, EMSGSIZE for one larger than `buffer`.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(SystemCallError) -> Int {
        let received = try retryingInterrupts("recv", "NETLINK_SOCK_DIAG") {
            recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_TRUNC))
        }
        if received > buffer.count { throw SystemCallError("recv", "NETLINK_SOCK_DIAG", code: EMSGSIZE) }
        return received
    }
}
