import ArgumentParser
import SocketStats
import StatsOutput

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

    @OptionGroup var collection: CollectionFlags

    func run() throws {
        let snapshot = try collection.collect()
        switch format {
        case .json: print(StatsDocument.json(snapshot))
        case .text: print(StatsDocument.text(snapshot), terminator: "")
        }
    }
}
