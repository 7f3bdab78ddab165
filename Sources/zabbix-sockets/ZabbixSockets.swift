import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@main
struct ZabbixSockets: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zabbix-sockets",
        abstract: "TCP and UDP socket-state statistics from the Linux kernel, for Zabbix.",
        discussion: """
        Counts every socket of every TCP state (and UDP) in one netlink dump per address family,
        the way `ss` does, and hands the counts to Zabbix as one JSON document for a master item.
        """,
        subcommands: [StatsCommand.self],
        defaultSubcommand: nil
    )
}

/// Prints `zabbix-sockets: error: <message>` on stderr and exits 1: the first words an admin
/// sees in the agent's or Zabbix's error column name the tool.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    var line = "zabbix-sockets: error: \(message)\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    return ExitCode(code)
}
