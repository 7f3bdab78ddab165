import ArgumentParser
import SocketStats

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Count sockets per state and print them (JSON for Zabbix, or a table).",
        discussion: """
        TCP counts equal `ss -tan` per state, UDP counts `ss -uan`, in the chosen network namespace.
        For a Zabbix agent: UserParameter=sockets.stats,/usr/local/bin/zabbix-sockets stats
        """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case json
        case text
    }

    @Option(help: "Output format: json (one line, for Zabbix) or text (a table for people).")
    var format: Format = .json

    @Option(help: ArgumentHelp(
        "Network namespace to count in: a name from `ip netns` or a path such as /proc/PID/ns/net.",
        valueName: "name|path"
    ))
    var netns: String?

    @Option(help: "Where counts come from: netlink, proc (/proc/net tables), or auto (netlink; /proc if netlink is refused).")
    var source: SourcePreference = .auto

    @Option(help: ArgumentHelp(
        "Read DIR/net/tcp, tcp6, udp, udp6 instead of the live tables (implies --source proc).",
        valueName: "dir"
    ))
    var procRoot: String?

    @Option(
        name: .customLong("sections"), parsing: .singleValue,
        help: ArgumentHelp("What to report, comma-separated: counts (per state), ports (per listening port, outbound service ports, ephemeral ports), kernel (counters and limits).", valueName: "list")
    )
    var sectionList: [String] = []

    @Option(name: .customLong("remote-ports"), help: ArgumentHelp("Service ports whose outbound connections are counted by state.", valueName: "list"))
    var remotePortList: String = CollectionOptions.defaultRemotePorts.map(String.init).joined(separator: ",")

    func validate() throws {
        if procRoot != nil && source == .netlink {
            throw ValidationError("--proc-root reads /proc tables and cannot be combined with --source netlink")
        }
        _ = try options()
    }

    /// The flags as collection options; reports the first unknown section or bad port.
    func options() throws -> CollectionOptions {
        var options = CollectionOptions(source: source, procRoot: procRoot, netns: netns)
        if !sectionList.isEmpty {
            options.sections = []
            for name in sectionList.flatMap({ $0.split(separator: ",") }) {
                guard let section = CollectionOptions.Section(rawValue: String(name)) else {
                    throw ValidationError("unknown section \"\(name)\"; sections are \(CollectionOptions.Section.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                options.sections.insert(section)
            }
        }
        options.remotePorts = try remotePortList.split(separator: ",").map { text in
            guard let port = UInt16(text), port > 0 else { throw ValidationError("--remote-ports: \"\(text)\" is not a port number (1-65535)") }
            return port
        }
        return options
    }

    func run() throws {
        let snapshot: Snapshot
        do {
            snapshot = try options().collect()
        } catch let error as CollectorError {
            throw fail(error.description)
        }
        switch format {
        case .json: print(StatsDocument.json(snapshot))
        case .text: print(StatsDocument.text(snapshot), terminator: "")
        }
    }
}

extension SourcePreference: ExpressibleByArgument {}
