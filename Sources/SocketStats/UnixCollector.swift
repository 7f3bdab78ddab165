import Glibc
import CSockDiag
import Posix

/// Fills a UnixTally from the kernel: one unix_diag dump (every state, names and queue
/// lengths), or /proc/net/unix when netlink is refused.
public enum UnixCollector {
    /// /proc/net/unix of a million sockets is about 100 MiB; anything larger is not that table.
    static let procTableLimit = 512 * 1024 * 1024

    /// Collects in the calling thread's network namespace ; the result says which source it came from.
    public static func collect(from preference: SourcePreference, procDirectory: String) throws(CollectorError) -> UnixBreakdown {
        var tally = UnixTally()
        switch preference {
        case .netlink:
            try collectNetlink(into: &tally)
            return tally.breakdown(source: .netlink)
        case .proc:
            try collectProc(into: &tally, path: procDirectory + "/unix")
            return tally.breakdown(source: .proc)
        case .auto:
            do {
                try collectNetlink(into: &tally)
                return tally.breakdown(source: .netlink)
            } catch .netlinkRefused, .malformedNetlink {
                try collectProc(into: &tally, path: procDirectory + "/unix")
                return tally.breakdown(source: .proc)
            }
        }
    }

    static func collectNetlink(into tally: inout UnixTally) throws(CollectorError) {
        let socket = try NetlinkSocket()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: NetlinkCollector.receiveBufferSize, alignment: 8)
        defer { buffer.deallocate() }
        var request = csd_unix_dump_request()
        request.request.sdiag_family = UInt8(AF_UNIX)
        request.request.udiag_states = NetlinkCollector.allStates
        request.request.udiag_show = UInt32(UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN)
        for attempt in 1...NetlinkCollector.dumpAttempts {
            tally.startOver()
            let sequence = UInt32(attempt)
            let interrupted = try NetlinkCollector.dump(
                request: &request, sequence: sequence, socket: socket, buffer: buffer, absentMeansEmpty: false
            ) { datagram throws(NetlinkError) in
                try UnixDiagParser.parse(datagram, sequence: sequence, into: &tally)
            }
            if !interrupted { return }
        }
    }

    static func collectProc(into tally: inout UnixTally, path: String) throws(CollectorError) {
        let table: [UInt8]
        do {
            table = try readRegularFile(path, limit: procTableLimit)
        } catch {
            throw .procUnreadable(path: path, reason: error.errnoCode.map(describeErrno) ?? "\(error)")
        }
        tally.startOver()
        let parsed = table.withUnsafeBytes { bytes in
            Result { () throws(ProcNetParseError) in try UnixProcParser.parse(bytes, into: &tally) }
        }
        if case .failure(let error) = parsed { throw .procMalformed(path: path, error: error) }
    }
}
