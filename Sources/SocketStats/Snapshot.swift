/// Everything one poll reports, collected in one pass over the sockets.
public struct Snapshot: Sendable {
    public var source: Source
    public var counts: SocketCounts
    /// Present when the ports section was asked for.
    public var ports: PortBreakdown?
    /// /proc/net/snmp, netstat, sockstat(6) and the limits; present when the kernel section was asked for.
    public var kernel: KernelCounters?
    /// UNIX sockets per type and state, and per listening path; present when the unix section was asked for.
    public var unix: UnixBreakdown?

    public init(source: Source, counts: SocketCounts, ports: PortBreakdown? = nil, kernel: KernelCounters? = nil, unix: UnixBreakdown? = nil) {
        self.source = source
        self.counts = counts
        self.ports = ports
        self.kernel = kernel
        self.unix = unix
    }
}

/// What to collect and where; `collect()` is this target's one entry point for a whole poll.
public struct CollectionOptions: Sendable {
    public enum Section: String, CaseIterable, Sendable {
        case counts
        case ports
        case kernel
        case unix
    }

    public var source: SourcePreference
    /// A directory holding net/tcp..., net/unix and sys/net/... instead of /proc (fixtures).
    public var procRoot: String?
    /// A network namespace name (/run/netns/NAME) or path (/proc/PID/ns/net); nil: the caller's.
    public var netns: String?
    public var sections: Set<Section>
    public var remotePorts: [UInt16]

    /// PostgreSQL, MySQL, Redis, HTTPS, HTTP: the dependencies whose connections pile up most often.
    public static let defaultRemotePorts: [UInt16] = [5432, 3306, 6379, 443, 80]
    /// PortBreakdown numbers the watched ports with one byte.
    public static let maximumRemotePorts = 255

    public init(
        source: SourcePreference = .auto, procRoot: String? = nil, netns: String? = nil,
        sections: Set<Section> = Set(Section.allCases), remotePorts: [UInt16] = CollectionOptions.defaultRemotePorts
    ) {
        self.source = source
        self.procRoot = procRoot
        self.netns = netns
        self.sections = sections
        self.remotePorts = remotePorts
    }

    /// Reads the kernel limits, enters the namespace if one is set, reads the kernel's counter
    /// tables and then the sockets, and comes back to the caller's namespace.
    public func collect() throws(CollectorError) -> Snapshot {
        let root = procRoot ?? "/proc"
        let netDirectory = procRoot.map { $0 + "/net" } ?? ProcNetCollector.liveDirectory
        let wantsPorts = sections.contains(.ports)
        let wantsKernel = sections.contains(.kernel)
        // Kernel-wide limits are visible only from the host's namespace: read them before entering.
        let kernelWide = wantsKernel ? try SocketLimits.read(SocketLimits.kernelWide, procRoot: root) : KernelCounters()

        func collectHere() throws(CollectorError) -> Snapshot {
            let limits = wantsPorts || wantsKernel
                ? try SocketLimits.read(SocketLimits.perNamespace, procRoot: root) : KernelCounters()
            // The kernel's tables before the sockets: the netlink socket the count opens is in
            // sockstat's "sockets: used" until the kernel frees it, an RCU grace period after close.
            let kernel = wantsKernel
                ? try KernelTables.read(netDirectory: netDirectory).merging(limits).merging(kernelWide) : nil
            let unix = sections.contains(.unix)
                ? try UnixCollector.collect(from: effectiveSource, procDirectory: netDirectory) : nil
            if wantsPorts {
                var tally = PortTally(remotePorts: remotePorts, ephemeralRange: SocketLimits.ephemeralRange(from: limits))
                let source = try SocketCollector.collect(into: &tally, from: effectiveSource, procDirectory: netDirectory)
                let breakdown = tally.breakdown
                return Snapshot(source: source, counts: breakdown.counts, ports: breakdown, kernel: kernel, unix: unix)
            }
            var counts = SocketCounts()
            let source = try SocketCollector.collect(into: &counts, from: effectiveSource, procDirectory: netDirectory)
            return Snapshot(source: source, counts: counts, kernel: kernel, unix: unix)
        }
        guard let netns else { return try collectHere() }
        return try NetworkNamespace(netns).run(collectHere)
    }

    /// --proc-root reads fixture files, so it implies the /proc source.
    private var effectiveSource: SourcePreference { procRoot == nil ? source : .proc }
}
