import ArgumentParser
import SocketStats

/// The flags that say what to collect and where; shared by `stats` and `send`.
struct CollectionFlags: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Network namespace to count in: a name from `ip netns` or a path such as /proc/PID/ns/net.",
        valueName: "name|path"
    ))
    var netns: String?

    @Flag(name: .customLong("all-netns"), help: ArgumentHelp(
        "Also count in every other network namespace on the host (containers, `ip netns`), each under `netns` in the JSON. Needs CAP_SYS_ADMIN (and CAP_SYS_PTRACE for other users' processes); without, reports what it could not enter."
    ))
    var allNetworkNamespaces = false

    @Option(help: "Where counts come from: netlink, proc (/proc/net tables), or auto (netlink; /proc if netlink is refused).")
    var source: SourcePreference = .auto

    @Option(
        name: .customLong("sections"),
        help: ArgumentHelp(
            "What to report, comma-separated: counts (per state), ports (per listening port, outbound service ports, ephemeral ports), cgroups (per service, container and pod; needs netlink and cgroup v2), kernel (counters and limits), unix (UNIX sockets per type and state, per listening path).",
            valueName: "list"
        )
    )
    var sectionList: String = CollectionOptions.Section.allCases.map(\.rawValue).joined(separator: ",")

    @Option(name: .customLong("remote-ports"), help: ArgumentHelp("Service ports whose outbound connections are counted by state; at most \(CollectionOptions.maximumRemotePorts).", valueName: "list"))
    var remotePortList: String = CollectionOptions.defaultRemotePorts.map(String.init).joined(separator: ",")

    @Option(help: ArgumentHelp(
        "Read DIR/net/tcp, tcp6, udp, udp6, unix and DIR/sys/net/... instead of the live files (implies --source proc).",
        valueName: "dir"
    ))
    var procRoot: String?

    func validate() throws {
        if procRoot != nil && source == .netlink {
            throw ValidationError("--proc-root reads /proc tables and cannot be combined with --source netlink")
        }
        if allNetworkNamespaces && netns != nil {
            throw ValidationError("--all-netns counts every namespace; it cannot be combined with --netns")
        }
        if allNetworkNamespaces && procRoot != nil {
            throw ValidationError("--all-netns enters live namespaces and cannot be combined with --proc-root")
        }
        _ = try options()
    }

    /// The flags as collection options; reports the first unknown section or bad port.
    func options() throws -> CollectionOptions {
        var options = CollectionOptions(source: source, procRoot: procRoot, netns: netns)
        options.allNetworkNamespaces = allNetworkNamespaces
        options.sections = []
        for name in sectionList.split(separator: ",") {
            guard let section = CollectionOptions.Section(rawValue: String(name)) else {
                throw ValidationError("unknown section \"\(name)\"; sections are \(CollectionOptions.Section.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            options.sections.insert(section)
        }
        options.remotePorts = try remotePortList.split(separator: ",").map { text in
            guard let port = UInt16(text), port > 0 else { throw ValidationError("--remote-ports: \"\(text)\" is not a port number (1-65535)") }
            return port
        }
        let distinct = Set(options.remotePorts).count
        guard distinct <= CollectionOptions.maximumRemotePorts else {
            throw ValidationError("--remote-ports: \(distinct) ports given, at most \(CollectionOptions.maximumRemotePorts)")
        }
        return options
    }

    /// Collects, turning a collection failure into `zabbix-sockets: error: ...` and exit 1;
    /// namespaces --all-netns could not count are warnings on stderr (the JSON says so too).
    func collect() throws -> Snapshot {
        do {
            let snapshot = try options().collect()
            for problem in snapshot.namespaces?.problems ?? [] { writeLine("zabbix-sockets: warning: \(problem)", to: 2) }
            return snapshot
        } catch let error as CollectorError {
            throw fail(error.description)
        }
    }
}

extension SourcePreference: ExpressibleByArgument {}
