import SocketStats

/// Everything one poll reports, collected in one pass over the sockets.
struct Snapshot {
    var source: Source
    var counts: SocketCounts
    /// Present when the ports section was asked for.
    var ports: PortBreakdown?
    /// /proc/net/snmp, netstat, sockstat(6) and the limits; present when the kernel section was asked for.
    var kernel: KernelCounters?
}

/// What to collect and where: shared by `stats`, `send` and `run`.
struct CollectionOptions {
    enum Section: String, CaseIterable {
        case counts
        case ports
        case kernel
    }

    var source: SourcePreference = .auto
    /// A directory holding net/tcp... and sys/net/... instead of /proc (fixtures).
    var procRoot: String?
    var netns: String?
    var sections: Set<Section> = Set(Section.allCases)
    var remotePorts: [UInt16] = CollectionOptions.defaultRemotePorts

    /// PostgreSQL, MySQL, Redis, HTTPS, HTTP: the dependencies whose connections pile up most often.
    static let defaultRemotePorts: [UInt16] = [5432, 3306, 6379, 443, 80]
    /// PortBreakdown numbers the watched ports with one byte.
    static let maximumRemotePorts = 255

    func collect() throws(CollectorError) -> Snapshot {
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
            if wantsPorts {
                var breakdown = PortBreakdown(remotePorts: remotePorts, ephemeralRange: SocketLimits.ephemeralRange(from: limits))
                let source = try SocketCollector.collect(into: &breakdown, from: effectiveSource, procDirectory: netDirectory)
                return Snapshot(source: source, counts: breakdown.counts, ports: breakdown, kernel: kernel)
            }
            var counts = SocketCounts()
            let source = try SocketCollector.collect(into: &counts, from: effectiveSource, procDirectory: netDirectory)
            return Snapshot(source: source, counts: counts, kernel: kernel)
        }
        guard let netns else { return try collectHere() }
        return try NetworkNamespace(netns).run(collectHere)
    }

    /// --proc-root reads fixture files, so it implies the /proc source.
    private var effectiveSource: SourcePreference { procRoot == nil ? source : .proc }
}
