/// Everything one poll reports, collected in one pass over the sockets.
public struct Snapshot: Sendable {
    public var source: Source
    public var counts: SocketCounts
    /// Present when the ports section was asked for.
    public var ports: PortBreakdown?
    /// Present when the cgroups section was asked for (saying why it is empty when it is).
    public var cgroups: CgroupBreakdown?
    /// /proc/net/snmp, netstat, sockstat(6) and the limits; present when the kernel section was asked for.
    public var kernel: KernelCounters?
    /// UNIX sockets per type and state, and per listening path; present when the unix section was asked for.
    public var unix: UnixBreakdown?
    /// Every network namespace's own snapshot; present with `allNetworkNamespaces`.
    public var namespaces: NamespaceSurvey?

    public init(source: Source, counts: SocketCounts, ports: PortBreakdown? = nil, cgroups: CgroupBreakdown? = nil,
                kernel: KernelCounters? = nil, unix: UnixBreakdown? = nil) {
        self.source = source
        self.counts = counts
        self.ports = ports
        self.cgroups = cgroups
        self.kernel = kernel
        self.unix = unix
    }
}

/// What to collect and where; `collect()` is this target's one entry point for a whole poll.
public struct CollectionOptions: Sendable {
    public enum Section: String, CaseIterable, Sendable {
        case counts
        case ports
        case cgroups
        case kernel
        case unix
    }

    public var source: SourcePreference
    /// A directory holding net/tcp..., net/unix and sys/net/... instead of /proc (fixtures).
    public var procRoot: String?
    /// A network namespace name (/run/netns/NAME) or path (/proc/PID/ns/net); nil: the caller's.
    public var netns: String?
    /// Also count in every other network namespace on the host (`NamespaceDiscovery`).
    public var allNetworkNamespaces = false
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
        let wantsCgroups = sections.contains(.cgroups)
        // The mount namespace, not the network namespace, decides where cgroup2 is mounted.
        let cgroupMount = wantsCgroups
            ? Result { () throws(CgroupUnavailable) in try CgroupHierarchy.find() } : .failure(CgroupUnavailable(""))
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
            var snapshot = Snapshot(source: .netlink, counts: SocketCounts(), kernel: kernel, unix: unix)
            func fill<Visitor: SocketVisitor & ~Copyable>(_ visitor: inout Visitor) throws(CollectorError) {
                snapshot.source = try SocketCollector.collect(into: &visitor, from: effectiveSource, procDirectory: netDirectory)
            }
            let ports = { PortTally(remotePorts: remotePorts, ephemeralRange: SocketLimits.ephemeralRange(from: limits)) }
            switch (wantsPorts, wantsCgroups) {
            case (true, true):
                var pair = VisitorPair(ports(), CgroupTally())
                try fill(&pair)
                snapshot.ports = pair.first.breakdown
                snapshot.cgroups = CgroupBreakdown.resolve(pair.second, source: snapshot.source, mount: cgroupMount)
            case (true, false):
                var tally = ports()
                try fill(&tally)
                snapshot.ports = tally.breakdown
            case (false, true):
                var pair = VisitorPair(SocketCounts(), CgroupTally())
                try fill(&pair)
                snapshot.counts = pair.first
                snapshot.cgroups = CgroupBreakdown.resolve(pair.second, source: snapshot.source, mount: cgroupMount)
            case (false, false):
                var counts = SocketCounts()
                try fill(&counts)
                snapshot.counts = counts
            }
            if let ports = snapshot.ports { snapshot.counts = ports.counts }
            return snapshot
        }
        if let netns { return try NetworkNamespace(netns).run(collectHere) }
        var snapshot = try collectHere()
        if allNetworkNamespaces { snapshot.namespaces = survey(callers: snapshot, collectHere) }
        return snapshot
    }

    /// Enters each namespace found, collects the same sections there, and comes back. A refusal
    /// to enter (no CAP_SYS_ADMIN) is the same for every namespace: tried once, then reported for all.
    private func survey(callers: Snapshot, _ collectHere: () throws(CollectorError) -> Snapshot) -> NamespaceSurvey {
        var discovery = NamespaceDiscovery()
        if let procRoot { discovery.procRoot = procRoot }
        discovery.discover()
        var survey = NamespaceSurvey(entries: [], problems: discovery.problems)
        var refusal: String?
        for found in discovery.found {
            var entry = NamespaceSurvey.Entry(name: found.name, inode: found.inode)
            if found.isCallers {
                entry.snapshot = callers
            } else if let refusal {
                entry.problem = refusal
            } else {
                do {
                    entry.snapshot = try NetworkNamespace(found.path).run(collectHere)
                } catch .namespaceNeedsPrivilege {
                    refusal = CollectorError.privilegeNeeded
                    entry.problem = refusal
                } catch {
                    entry.problem = error.description
                }
            }
            survey.entries.append(entry)
        }
        let skipped = survey.entries.filter { $0.problem != nil }
        if let refusal {
            survey.problems.append("\(skipped.count) network namespaces not counted: \(refusal)")
        } else {
            for entry in skipped { survey.problems.append("network namespace \"\(entry.name)\" not counted: \(entry.problem!)") }
        }
        return survey
    }

    /// --proc-root reads fixture files, so it implies the /proc source.
    private var effectiveSource: SourcePreference { procRoot == nil ? source : .proc }
}
