import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@main
struct ZabbixSockets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zabbix-sockets",
        abstract: "TCP and UDP socket-state statistics from the Linux kernel, for Zabbix.",
        discussion: """
        Counts every socket of every TCP state (and UDP) in one netlink dump per address family,
        the way `ss` does, and hands the counts to Zabbix as one JSON document for a master item.
        """,
        subcommands: [StatsCommand.self, SendCommand.self, RunCommand.self],
        defaultSubcommand: nil
    )
}

/// Prints `zabbix-sockets: error: <message>` on stderr and exits 1: the first words an admin
/// sees in the agent's or Zabbix's error column name the tool.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    writeLine("zabbix-sockets: error: \(message)", to: 2)
    return ExitCode(code)
}
