import ArgumentParser
import Logging

import Glibc

@main
struct ZabbixSockets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zabbix-sockets",
        abstract: "TCP and UDP socket-state statistics from the Linux kernel, for Zabbix.",
        discussion: """
        Counts every socket of every TCP state (and UDP) in one netlink dump per address family, \
        the way `ss` does, and hands the counts to Zabbix as one JSON document for a master item.
        """,
        version: zabbixSocketsVersion,
        subcommands: [StatsCommand.self, SendCommand.self, RunCommand.self, ServeCommand.self, OwnersCommand.self],
        defaultSubcommand: nil
    )

    /// ArgumentParser's entry point, after ignoring SIGPIPE as zabbix_agentd does: a server that
    /// closes early or a closed stderr pipe (`run ... 2>&1 | head -1`) is an error to report, not
    /// a reason to die.
    static func main() async {
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// Log lines to stderr at `level` and above, for the long-running commands.
func startLogging(level: Logger.Level) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    return Logger(label: "zabbix-sockets")
}

/// Prints `zabbix-sockets: error: <message>` on stderr and exits 1: the first words an admin
/// sees in the agent's or Zabbix's error column name the tool.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    writeLine("zabbix-sockets: error: \(message)", to: 2)
    return ExitCode(code)
}
