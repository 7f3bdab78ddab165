import ArgumentParser
import SocketStats
import StatsOutput

struct OwnersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "owners",
        abstract: "Show which processes hold TCP sockets in a state or on a port (pid, command, cgroup, count).",
        discussion: """
        For a CLOSE_WAIT alarm: `zabbix-sockets owners --state close_wait` names the processes that never \
        close() their connections. It reads /proc/PID/fd only of the processes in the cgroups that made \
        those sockets (and the rest of the host only for sockets not found there), not of every process \
        as `ss -p` does. Orphaned sockets (closed, still in the kernel) and TIME_WAIT have no owner. \
        Run as root to see other users' processes and to enter other namespaces.
        """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text
        case json
    }

    @Option(help: ArgumentHelp("A TCP state: \(TCPState.allCases.map(\.zabbixName).joined(separator: ", ")).", valueName: "state"))
    var state: String?

    @Option(help: ArgumentHelp("Only sockets with this local or remote port.", valueName: "port"))
    var port: UInt16?

    @Option(help: ArgumentHelp("Network namespace: a name from `ip netns` or a path such as /proc/PID/ns/net.", valueName: "name|path"))
    var netns: String?

    @Flag(name: .customLong("all-netns"), help: "Look in every network namespace on the host.")
    var allNetworkNamespaces = false

    @Option(help: "Output format: text (for people) or json.")
    var format: Format = .text

    func validate() throws {
        if let state, TCPState.allCases.first(where: { $0.zabbixName == state }) == nil {
            throw ValidationError("--state: \"\(state)\" is not a TCP state; states are \(TCPState.allCases.map(\.zabbixName).joined(separator: ", "))")
        }
        if port == 0 { throw ValidationError("--port: 0 is not a port number (1-65535)") }
        if allNetworkNamespaces && netns != nil { throw ValidationError("--all-netns cannot be combined with --netns") }
    }

    func run() throws {
        let query = SocketOwners.Query(state: TCPState.allCases.first { $0.zabbixName == state }, port: port)
        var results: [(netns: String, owners: SocketOwners)] = []
        var problems: [String] = []
        if allNetworkNamespaces {
            var discovery = NamespaceDiscovery()
            discovery.discover()
            problems = discovery.problems
            for found in discovery.found {
                switch Self.find(query, in: found.path) {
                case .success(let owners): results.append((found.name, owners))
                case .failure(let error): problems.append("network namespace \"\(found.name)\" not searched: \(error)")
                }
            }
        } else {
            switch Self.find(query, in: netns) {
            case .success(let owners): results = [(netns ?? "self", owners)]
            case .failure(let error): throw fail(error.description)
            }
        }
        for problem in problems { writeLine("zabbix-sockets: warning: \(problem)", to: 2) }
        switch format {
        case .json: print(OwnersDocument.json(results, problems: problems))
        case .text: print(OwnersDocument.text(results, problems: problems), terminator: "")
        }
    }

    /// The owners in namespace `path` (nil: this one).
    private static func find(_ query: SocketOwners.Query, in path: String?) -> Result<SocketOwners, CollectorError> {
        Result { () throws(CollectorError) -> SocketOwners in
            guard let path else { return try SocketOwners.find(query) }
            return try NetworkNamespace(path).run { () throws(CollectorError) in try SocketOwners.find(query) }
        }
    }
}
