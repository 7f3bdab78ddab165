import ArgumentParser
import Logging
import ServiceLifecycle
import SocketStats
import StatsOutput
import ZabbixAgentServer
import ZabbixConfig
import ZabbixProtocol

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Answer Zabbix passive checks (port 10050) for sockets.stats and agent.*, like zabbix_agentd.",
        discussion: """
        For hosts the Zabbix server or proxy polls: link "Linux sockets by Zabbix agent" to a host whose \
        agent interface is this endpoint. Only the peers of Server= (or --server) get an answer; anyone \
        else is disconnected at once and logged. TLSAccept=psk (or --tls-accept psk) takes TLS 1.2 with a \
        pre-shared key, as zabbix_agentd does, on the same port; both can be accepted together.

        Keys: sockets.stats[<sections>,<remote ports>] (both optional, e.g. \
        sockets.stats["counts,ports","5432,443"]; the defaults are --sections and --remote-ports), the \
        same JSON that `stats` prints; agent.ping (1), agent.version, agent.hostname (Hostname, -s). Any \
        other key is not supported. --netns, --source and --proc-root apply to every poll and cannot be \
        changed by a key.

        SIGTERM/SIGINT close every connection and exit at once; SIGHUP re-reads --config for Server and \
        Hostname (a burst of SIGHUPs is one reload); ListenIP, ListenPort, Timeout and TLS need a \
        restart. Logs go to stderr, one line per event; refused connections at most one line per 10 s \
        per reason.
        """
    )

    @Option(name: [.customShort("c"), .long], help: ArgumentHelp(
        "Zabbix agent config file: Server, ListenIP, ListenPort, Hostname, Timeout, TLSAccept, TLSPSKIdentity, TLSPSKFile.",
        valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp(
        "Who may poll, in Server='s syntax: IPv4, IPv6, CIDR networks, DNS names, comma-separated (replaces the config's Server).",
        valueName: "list"))
    var server: String?

    @Option(name: .customLong("listen-ip"), help: ArgumentHelp(
        "Addresses to listen on, comma-separated (default: the config's ListenIP, else every address).", valueName: "list"))
    var listenIP: String?

    @Option(name: [.customShort("p"), .customLong("listen-port")], help: ArgumentHelp(
        "Port to listen on (default: the config's ListenPort, else 10050).", valueName: "port"))
    var listenPort: Int?

    @Option(name: [.customShort("s"), .long], help: ArgumentHelp(
        "What agent.hostname answers (default: the config's Hostname, else this machine's host name).", valueName: "host"))
    var host: String?

    @Option(name: [.customShort("t"), .long], help: ArgumentHelp(
        "Seconds to read a request, and to answer it, 1-30 (default: the config's Timeout, else 3).", valueName: "seconds"))
    var timeout: Int?

    @Option(name: .customLong("tls-accept"), help: ArgumentHelp(
        "Connections to accept: unencrypted, psk or unencrypted,psk (default: the config's TLSAccept, else unencrypted).",
        valueName: "list"))
    var tlsAccept: String?

    @Option(name: .customLong("tls-psk-identity"), help: ArgumentHelp(
        "PSK identity, as on the host's Encryption tab (default: the config's TLSPSKIdentity).", valueName: "identity"))
    var tlsPSKIdentity: String?

    @Option(name: .customLong("tls-psk-file"), help: ArgumentHelp(
        "File whose first line is the PSK in hex, 32-512 digits (default: the config's TLSPSKFile).", valueName: "file"))
    var tlsPSKFile: String?

    @Option(help: ArgumentHelp(
        "Connections open at once, \(Self.connectionRange.lowerBound)-\(Self.connectionRange.upperBound); more are closed as they come.",
        valueName: "count"))
    var maxConnections: Int = 512

    @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: String = "info"

    @OptionGroup var collection: CollectionFlags

    /// Each open connection costs a descriptor and a few KiB; the default stays below the usual
    /// soft limit of 1024 descriptors, the maximum inside the unit's LimitNOFILE=8192.
    static let connectionRange = 1...4096

    func validate() throws {
        if let listenPort, !(1...65535).contains(listenPort) { throw ValidationError("--listen-port must be 1-65535, not \(listenPort)") }
        if let timeout, !(1...30).contains(timeout) { throw ValidationError("--timeout must be 1-30 seconds, not \(timeout)") }
        guard Self.connectionRange.contains(maxConnections) else {
            throw ValidationError("--max-connections must be \(Self.connectionRange.lowerBound)-\(Self.connectionRange.upperBound), not \(maxConnections)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \"\(logLevel)\" is not a level") }
    }

    func run() async throws {
        let logger = startLogging(level: Logger.Level(rawValue: logLevel) ?? .info)
        let settings: ServeSettings
        let tls: PSKServerTLS?
        do {
            settings = try resolve()
            tls = try settings.tls.psk.map { try PSKServerTLS(psk: PreSharedKey.load(identity: $0.identity, file: $0.file)) }
        } catch {
            throw fail("\(error)")
        }
        let flags = self
        let server = PassiveServer(
            configuration: PassiveServerConfiguration(
                listenAddresses: settings.listenIPs, port: settings.port, timeoutSeconds: settings.timeoutSeconds,
                maximumConnections: maxConnections, acceptsUnencrypted: settings.tls.acceptsUnencrypted, tls: tls),
            access: settings.access(), logger: logger,
            reload: { try flags.resolve().access() })
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error as PassiveServerError {
            throw fail(error.description)
        }
    }

    /// The flags over the config file, checked.
    private func resolve() throws -> ServeSettings {
        var agentConfig: AgentConfig?
        if let config {
            agentConfig = try AgentConfig.load(path: config)
        }
        let allowList: PeerAllowList
        if let server {
            do {
                allowList = try PeerAllowList(parsing: server)
            } catch {
                throw ServeError("--server: invalid entry \"\(error.entry)\" (IPv4, IPv6, CIDR or DNS names, comma-separated)")
            }
        } else if let configured = try agentConfig?.server() {
            allowList = configured
        } else {
            throw ServeError("no Server: give --server, or --config with a Server line (zabbix_agentd: parameter \"Server\" must be defined)")
        }
        let listenIPs = try listenIP.map { value throws(ListenIPError) in try parseListenIPs(value) } ?? agentConfig?.listenIPs() ?? []
        let hostname = try host ?? agentConfig?.hostnames().first ?? SenderFlags.systemHostname() ?? "localhost"
        if let problem = AgentConfig.hostnameProblem(hostname) {
            throw ServeError("host name \"\(hostname)\" cannot be a Zabbix host: \(problem)")
        }
        let tlsParameters = ListenerTLSParameters(accept: tlsAccept, pskIdentity: tlsPSKIdentity, pskFile: tlsPSKFile)
            .filled(from: agentConfig?.listenerTLSParameters ?? ListenerTLSParameters())
        return ServeSettings(
            allowList: allowList, listenIPs: listenIPs,
            port: listenPort ?? Int(agentConfig?.listenPort ?? AgentConfig.defaultListenPort),
            timeoutSeconds: timeout ?? agentConfig?.timeoutSeconds ?? AgentConfig.defaultTimeoutSeconds,
            hostname: hostname, tls: try tlsParameters.mode(), collection: collection)
    }
}

struct ServeError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What `serve` runs with, from flags and config.
struct ServeSettings {
    var allowList: PeerAllowList
    var listenIPs: [String]
    var port: Int
    var timeoutSeconds: Int
    var hostname: String
    var tls: ListenerTLSParameters.Mode
    var collection: CollectionFlags

    /// The allow-list and the keys: agent.* and sockets.stats.
    func access() -> PassiveAccess {
        let collection = self.collection
        let stats: AgentItems.Handler = { parameters in
            statsItem(parameters, flags: collection)
        }
        return PassiveAccess(
            allowList: allowList,
            items: AgentItems(hostname: hostname, version: zabbixSocketsVersion, handlers: [StatsDocument.itemKey: stats]))
    }
}

/// `sockets.stats[<sections>,<remote ports>]`: an empty or missing parameter keeps the flag's value.
private func statsItem(_ parameters: [String]?, flags: CollectionFlags) -> PassiveCheckResult {
    var flags = flags
    let given = parameters ?? []
    guard given.count <= 2 else { return .notSupported("Too many parameters.") }
    if let sections = given.first, !sections.isEmpty { flags.sectionList = sections }
    if given.count == 2, !given[1].isEmpty { flags.remotePortList = given[1] }
    let options: CollectionOptions
    do {
        options = try flags.options()
    } catch let error as ValidationError {
        return .notSupported("Invalid parameter: \(error.message)")
    } catch {
        return .notSupported("Invalid parameter: \(error)")
    }
    do {
        return .value(try statsJSON(options))
    } catch {
        return .notSupported("Cannot collect socket statistics: \(error)")
    }
}

/// The `stats` JSON for `options`: serve's one way to the collector and the document.
func statsJSON(_ options: CollectionOptions) throws -> String {
    StatsDocument.json(try options.collect())
}
