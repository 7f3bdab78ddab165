import Glibc
import Posix

/// Counts sockets from the /proc/net socket tables, for kernels or sandboxes that refuse
/// netlink. Slower than netlink (the kernel formats every socket as text) but the same counts.
public enum ProcNetCollector {
    /// The live tables of the calling thread's network namespace. `/proc/net` follows the
    /// process's first thread; `thread-self` follows the thread that entered a namespace.
    public static let liveDirectory = "/proc/thread-self/net"
    static let readChunkSize = 64 * 1024

    /// Reads `directory`/tcp, tcp6, udp, udp6. A missing tcp6 or udp6 means IPv6 is disabled: zeros.
    public static func collect<Visitor: SocketVisitor & ~Copyable>(into visitor: inout Visitor, directory: String = liveDirectory) throws(CollectorError) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readChunkSize, alignment: 8)
        defer { buffer.deallocate() }
        visitor.startOver()
        typealias Table = (name: String, transport: TransportProtocol, isIPv6: Bool, selection: ProcNetParser.Selection)
        // Listeners of both families first when the visitor asks: an IPv4 table lists its
        // connections before the IPv6 table lists its listeners.
        let tables: [Table] = Visitor.wantsListenersFirst
            ? [("tcp", .tcp, false, .listenersOnly), ("tcp6", .tcp, true, .listenersOnly),
               ("tcp", .tcp, false, .allButListeners), ("tcp6", .tcp, true, .allButListeners),
               ("udp", .udp, false, .all), ("udp6", .udp, true, .all)]
            : [("tcp", .tcp, false, .all), ("tcp6", .tcp, true, .all), ("udp", .udp, false, .all), ("udp6", .udp, true, .all)]
        for table in tables {
            let path = directory + "/" + table.name
            // A regular file only: a FIFO or device planted under --proc-root could block forever.
            let fd: Int32
            do {
                fd = try openRegularFile(path)
            } catch {
                if error.errnoCode == ENOENT && table.isIPv6 { continue }
                throw .procUnreadable(path: path, reason: error.errnoCode.map(describeErrno) ?? "\(error)")
            }
            defer { close(fd) }
            var parser = ProcNetParser(transport: table.transport, isIPv6: table.isIPv6, selection: table.selection)
            try read(fd, path: path, with: &parser, buffer: buffer, into: &visitor)
        }
    }

    private static func read<Visitor: SocketVisitor & ~Copyable>(
        _ fd: Int32, path: String, with parser: inout ProcNetParser,
        buffer: UnsafeMutableRawBufferPointer, into visitor: inout Visitor
    ) throws(CollectorError) {
        while !parser.isFinished {
            let count: Int
            do {
                count = try retryingInterrupts("read", path) { Glibc.read(fd, buffer.baseAddress, buffer.count) }
            } catch {
                throw .procUnreadable(path: path, reason: describeErrno(error.code))
            }
            if count == 0 { break }
            do {
                try parser.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), into: &visitor)
            } catch {
                throw .procMalformed(path: path, error: error)
            }
        }
        do {
            try parser.finish(into: &visitor)
        } catch {
            throw .procMalformed(path: path, error: error)
        }
    }
}
