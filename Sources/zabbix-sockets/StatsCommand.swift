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

    func validate() throws {
        if procRoot != nil && source == .netlink {
            throw ValidationError("--proc-root reads /proc tables and cannot be combined with --source netlink")
        }
    }

    func run() throws {
        let collected: (result: SocketCounts, source: Source)
        do {
            collected = try SocketCollector.collect(
                SocketCounts.self,
                from: procRoot == nil ? source : .proc,
                procDirectory: procRoot.map { $0 + "/net" } ?? ProcNetCollector.liveDirectory,
                in: netns.map(NetworkNamespace.init)
            )
        } catch {
            throw fail(error.description)
        }
        switch format {
        case .json: print(StatsDocument.json(collected.result, source: collected.source))
        case .text: print(StatsDocument.text(collected.result, source: collected.source), terminator: "")
        }
    }
}

extension SourcePreference: ExpressibleByArgument {}
