import ByteCoding
import Glibc
import Posix

/// Which processes hold the sockets of one state or port. Like `ss -p`, it matches socket inodes
/// with the links in /proc/PID/fd; unlike it, it reads only the processes of the cgroups that
/// made those sockets (their cgroup.procs), and the rest of the host only for sockets not found
/// there (a socket-activated service holds connections made in its .socket unit's cgroup).
public struct SocketOwners: Sendable {
    public struct Owner: Sendable, Equatable {
        public var pid: Int32
        public var command: String
        /// The name of the process's cgroup (a unit, container, pod) or its path.
        public var cgroup: String
        public var sockets: Int

        public init(pid: Int32, command: String, cgroup: String, sockets: Int) {
            self.pid = pid
            self.command = command
            self.cgroup = cgroup
            self.sockets = sockets
        }
    }

    /// Heaviest first.
    public var owners: [Owner]
    /// Sockets that matched.
    public var matched: Int
    /// Closed by their process, still in the kernel (FIN_WAIT1, LAST_ACK, CLOSING): no owner.
    public var orphaned: Int
    /// TIME_WAIT and SYN_RECV entries: not sockets of any process.
    public var unowned: Int
    /// Sockets with an inode that no readable process holds (it exited, or we may not look).
    public var notFound: Int
    /// Processes read beyond the sockets' cgroups.
    public var processesScanned: Int
    public var fullScan: Bool
    public var problems: [String]

    public init(owners: [Owner], matched: Int, orphaned: Int, unowned: Int, notFound: Int,
                processesScanned: Int, fullScan: Bool, problems: [String]) {
        self.owners = owners
        self.matched = matched
        self.orphaned = orphaned
        self.unowned = unowned
        self.notFound = notFound
        self.processesScanned = processesScanned
        self.fullScan = fullScan
        self.problems = problems
    }

    /// What to look for: sockets in `state` (any when nil) with `port` as local or remote port.
    public struct Query: Sendable {
        public var state: TCPState?
        public var port: UInt16?

        public init(state: TCPState?, port: UInt16?) {
            self.state = state
            self.port = port
        }
    }

    static let procsFileLimit = 16 * 1024 * 1024
    static let maximumDescriptors = 1_048_576

    /// Dumps TCP sockets in the calling thread's namespace, then finds their processes.
    public static func find(_ query: Query, procRoot: String = "/proc") throws(CollectorError) -> SocketOwners {
        var matches = MatchingSockets(query: query)
        try NetlinkCollector.collect(into: &matches)
        var result = SocketOwners(owners: [], matched: matches.inodes.count + matches.orphaned + matches.unowned,
                                  orphaned: matches.orphaned, unowned: matches.unowned, notFound: 0,
                                  processesScanned: 0, fullScan: false, problems: [])
        let matching = Set(matches.inodes.keys)
        var wanted = matching       // not yet found in any process
        guard !wanted.isEmpty else { return result }

        var namer = CgroupNamer()
        var scanned: Set<Int32> = []
        // A socket inherited across fork is held by each process that has it, and counts for
        // each, as `ss -p` lists them all.
        func scan(_ pid: Int32) {
            guard scanned.insert(pid).inserted else { return }
            let held = socketInodes(pid: pid, procRoot: procRoot, among: matching)
            guard !held.isEmpty else { return }
            wanted.subtract(held)
            // Named at once: a short-lived process may be gone by the end of the scan.
            result.owners.append(Owner(pid: pid, command: command(pid: pid, procRoot: procRoot),
                                       cgroup: cgroupName(pid: pid, procRoot: procRoot, namer: &namer), sockets: held.count))
        }

        // The sockets' own cgroups first.
        switch Result(catching: { () throws(CgroupUnavailable) in try CgroupHierarchy.find() }) {
        case .success(let hierarchy):
            let ids = Set(matches.inodes.values).sorted()
            let paths = (try? CgroupPathCache.shared.resolve(ids, in: hierarchy)) ?? [:]
            for id in ids {
                guard let path = paths[id] else { continue }
                let file = hierarchy.mountPoint + (path == "/" ? "" : path) + "/cgroup.procs"
                guard let bytes = try? readRegularFile(file, limit: procsFileLimit) else {
                    result.problems.append("cannot read \(file)")
                    continue
                }
                for line in splitBytes(bytes[...], at: UInt8(ascii: "\n")) {
                    if let pid = Int32(String(decoding: line, as: UTF8.self)) { scan(pid) }
                }
            }
        case .failure(let error):
            result.problems.append("cgroups unavailable (\(error.reason)): every process is read")
        }
        // Then everyone else, only while some socket is still unaccounted for.
        if !wanted.isEmpty {
            result.fullScan = true
            for name in (try? directoryEntries(procRoot, limit: NamespaceDiscovery.maximumProcEntries)) ?? [] where !wanted.isEmpty {
                if let pid = Int32(name), pid > 0 { scan(pid) }
            }
        }
        result.processesScanned = scanned.count
        result.notFound = wanted.count
        if !wanted.isEmpty && getuid() != 0 {
            result.problems.append("\(wanted.count) sockets not found: other users' processes need root")
        }
        result.owners.sort { ($0.sockets, $1.pid) > ($1.sockets, $0.pid) }
        return result
    }

    /// The inodes among `wanted` that `pid`'s descriptors name ("socket:[INODE]" links, read,
    /// never followed).
    static func socketInodes(pid: Int32, procRoot: String, among wanted: Set<UInt32>) -> [UInt32] {
        let directory = "\(procRoot)/\(pid)/fd"
        guard let entries = try? readDirectory(directory, limit: maximumDescriptors) else { return [] }
        var held: [UInt32] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        for entry in entries {
            let path = directory + "/" + entry.name
            let length = buffer.withUnsafeMutableBufferPointer { bytes in
                bytes.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) { readlink(path, $0, bytes.count) }
            }
            guard length > 9, buffer.starts(with: "socket:[".utf8), buffer[length - 1] == UInt8(ascii: "]"),
                  let inode = UInt32(String(decoding: buffer[8..<(length - 1)], as: UTF8.self)), wanted.contains(inode)
            else { continue }
            held.append(inode)
        }
        return held
    }

    static func command(pid: Int32, procRoot: String) -> String {
        guard let bytes = try? readRegularFile("\(procRoot)/\(pid)/comm", limit: 64, prefixOnly: true) else { return "?" }
        return String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
    }

    static func cgroupName(pid: Int32, procRoot: String, namer: inout CgroupNamer) -> String {
        cgroupPath(ofProcess: Int(pid), procRoot: procRoot).map { namer.name(of: $0).name } ?? "?"
    }
}

/// The TCP sockets a query asks for: inode -> cgroup id, and how many have no owner.
/// Allocates per matching socket: it serves one question on demand, not the polling path.
struct MatchingSockets: SocketVisitor {
    let query: SocketOwners.Query
    var inodes: [UInt32: UInt64] = [:]
    var orphaned = 0
    var unowned = 0

    static var wantsOwnership: Bool { true }

    init(query: SocketOwners.Query) {
        self.query = query
    }

    mutating func startOver() {
        inodes = [:]
        orphaned = 0
        unowned = 0
    }

    mutating func visit(_ socket: SocketRecord) {
        guard socket.transport == .tcp else { return }
        if let state = query.state, socket.state != state.rawValue { return }
        if let port = query.port, socket.localPort != port && socket.remotePort != port { return }
        if socket.inode != 0 {
            inodes[socket.inode] = socket.cgroupID
        } else if socket.cgroupID != 0 {
            orphaned += 1
        } else {
            unowned += 1
        }
    }
}
