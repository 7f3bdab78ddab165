/// The sockets of one network namespace per cgroup: which service, container or pod holds them.
public struct CgroupBreakdown: Sendable {
    public struct Entry: Sendable {
        /// Relative to the cgroup v2 root: "/system.slice/nginx.service".
        public var path: String
        public var name: String
        public var kind: CgroupKind
        public var counts: CgroupCounts

        public init(path: String, name: String, kind: CgroupKind, counts: CgroupCounts) {
            self.path = path
            self.name = name
            self.kind = kind
            self.counts = counts
        }
    }

    /// nil when the section could be collected; otherwise why not (no cgroup v2 mounted, a
    /// kernel that sends no cgroup ids, the /proc source).
    public var unavailableReason: String?
    /// The cgroup v2 mount the paths were resolved under; "" when unavailable.
    public var mountPoint: String
    /// Cgroups holding sockets, by path; one entry per path as printed.
    public var entries: [Entry]
    /// TIME_WAIT and SYN_RECV entries: not full sockets, the kernel names no owner for them.
    public var unattributed: CgroupCounts
    /// Sockets whose cgroup id names no live cgroup (removed since the socket was made).
    public var unresolved: CgroupCounts

    public init(unavailableReason: String? = nil, mountPoint: String = "", entries: [Entry] = [],
                unattributed: CgroupCounts = CgroupCounts(), unresolved: CgroupCounts = CgroupCounts()) {
        self.unavailableReason = unavailableReason
        self.mountPoint = mountPoint
        self.entries = entries
        self.unattributed = unattributed
        self.unresolved = unresolved
    }

    /// Names the ids a tally counted; `mount` is the hierarchy found, or why none was.
    public static func resolve(
        _ tally: borrowing CgroupTally, source: Source, mount: Result<CgroupHierarchy, CgroupUnavailable>,
        cache: CgroupPathCache = .shared, namer: CgroupNamer = CgroupNamer()
    ) -> CgroupBreakdown {
        if source == .proc { return CgroupBreakdown(unavailableReason: "the /proc source carries no cgroup ids (use netlink)") }
        if !tally.sawCgroupIDs && tally.fullSocketsWithoutID > 0 {
            return CgroupBreakdown(unavailableReason: "this kernel sends no cgroup id with its sockets (INET_DIAG_CGROUP_ID needs Linux 5.8 and CONFIG_SOCK_CGROUP_DATA)")
        }
        let hierarchy: CgroupHierarchy
        switch mount {
        case .success(let found): hierarchy = found
        case .failure(let error): return CgroupBreakdown(unavailableReason: error.reason)
        }
        let counted = tally.byID
        let paths: [UInt64: String]
        do {
            paths = try cache.resolve(counted.map(\.id), in: hierarchy)
        } catch {
            return CgroupBreakdown(unavailableReason: error.reason)
        }
        var namer = namer
        var breakdown = CgroupBreakdown(mountPoint: hierarchy.mountPoint, unattributed: tally.unattributed)
        for (id, counts) in counted {
            guard let path = paths[id] else {
                breakdown.unresolved = breakdown.unresolved + counts
                continue
            }
            let (name, kind) = namer.name(of: path)
            breakdown.entries.append(Entry(path: path, name: name, kind: kind, counts: counts))
        }
        breakdown.entries = mergedByPath(breakdown.entries, path: \.path, merge: { $0.counts = $0.counts + $1.counts })
        return breakdown
    }
}
