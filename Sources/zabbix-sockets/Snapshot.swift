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

    func collect() throws(CollectorError) -> Snapshot {
        let root = procRoot ?? "/proc"
        let netDirectory = procRoot.map { $0 + "/net" } ?? ProcNetCollector.liveDirectory
        let wantsPorts = sections.contains(.ports)
        let wantsKernel = sections.contains(.kernel)

        // Kernel-wide limits are visible only from the host's namespace: read them before entering.
        let kernelWide = wantsKernel ? try kernelTable { () throws(KernelTableError) in try SocketLimits.read(SocketLimits.kernelWide, procRoot: root) } : nil

        func collectHere() throws(CollectorError) -> Snapshot {
            let limits = wantsPorts || wantsKernel
                ? try kernelTable { () throws(KernelTableError) in try SocketLimits.read(SocketLimits.perNamespace, procRoot: root) }
                : KernelCounters()
            // The kernel's tables before the sockets: the netlink socket the count opens is in
            // sockstat's "sockets: used" until the kernel frees it, an RCU grace period after close.
            var kernel: KernelCounters?
            if wantsKernel {
                var tables = KernelCounters()
                for (file, parse) in [("snmp", SNMPCounters.parseWatched), ("netstat", SNMPCounters.parseWatched),
                                      ("sockstat", Sockstat.parse), ("sockstat6", Sockstat.parse)] {
                    let path = netDirectory + "/" + file
                    if let table = try kernelTable({ () throws(KernelTableError) in try readKernelTable(path, missingIsNil: file == "sockstat6", parse) }) {
                        tables.values += table.values
                    }
                }
                tables.values += limits.values
                for wide in kernelWide?.values ?? [] where tables[wide.name] == nil { tables.values.append(wide) }
                kernel = tables
            }
            var snapshot: Snapshot
            if wantsPorts {
                var breakdown = PortBreakdown(remotePorts: remotePorts, ephemeralRange: SocketLimits.ephemeralRange(from: limits))
                let source = try SocketCollector.collect(into: &breakdown, from: effectiveSource, procDirectory: netDirectory)
                snapshot = Snapshot(source: source, counts: breakdown.counts, ports: breakdown)
            } else {
                var counts = SocketCounts()
                let source = try SocketCollector.collect(into: &counts, from: effectiveSource, procDirectory: netDirectory)
                snapshot = Snapshot(source: source, counts: counts)
            }
            snapshot.kernel = kernel
            return snapshot
        }
        guard let netns else { return try collectHere() }
        return try NetworkNamespace(netns).run(collectHere)
    }

    /// --proc-root reads fixture files, so it implies the /proc source.
    private var effectiveSource: SourcePreference { procRoot == nil ? source : .proc }

    private func kernelTable<T>(_ read: () throws(KernelTableError) -> T) throws(CollectorError) -> T {
        do {
            return try read()
        } catch {
            throw .kernelTable(error)
        }
    }
}

extension SNMPCounters {
    static func parseWatched(_ text: String) throws(KernelTableError) -> KernelCounters { try parse(text) }
}
