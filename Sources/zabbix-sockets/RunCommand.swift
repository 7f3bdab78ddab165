import ArgumentParser
import Logging
import ServiceLifecycle
import SocketStats
import StatsOutput
import Synchronization
import Posix
import ZabbixConfig
import ZabbixProtocol
import ZabbixPush

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Collect every interval and push to Zabbix, keeping what could not be sent in an on-disk buffer.",
        discussion: """
        For hosts without a Zabbix agent. Collects on the wall clock's multiples of --interval, stamps \
        each value with its collection time, and delivers the buffer oldest first to every ServerActive \
        entry (or --zabbix-server), retrying with backoff while a server is away. A kill -9, a reboot or a \
        Zabbix outage leaves no hole: the buffer survives them, and the sender session kept with it lets \
        the server drop values it already has. SIGTERM/SIGINT deliver what they can within \
        --shutdown-seconds and exit 0, however long --timeout is; SIGHUP re-reads --config (a burst of \
        SIGHUPs is one reload). Logs go to stderr, one line per event.

        The buffer directory must belong to the user running the daemon and must not be writable by \
        group or others; its files are never followed through links. On a full or failing disk the \
        daemon keeps collecting and delivering what is buffered, logs once what it could not store, and \
        stores again once space returns.
        """
    )

    @OptionGroup var sender: SenderFlags
    @OptionGroup var collection: CollectionFlags

    @Option(help: ArgumentHelp("Seconds between collections, 0.01-86400 (fractions allowed).", valueName: "seconds"))
    var interval: Double = 60

    @Option(help: ArgumentHelp(
        "Directory of the on-disk buffer (created with mode 0700; must be owned by this user, not writable by group or others).",
        valueName: "dir"))
    var bufferDir: String = "/var/lib/zabbix-sockets"

    @Option(help: ArgumentHelp("Largest buffer in MiB, \(Self.bufferMiBRange.lowerBound)-\(Self.bufferMiBRange.upperBound); when full, the oldest values go first.", valueName: "MiB"))
    var bufferMaxMib: Int = 64

    @Option(help: ArgumentHelp("Oldest value kept in the buffer, in hours, \(Self.bufferHoursRange.lowerBound)-\(Self.bufferHoursRange.upperBound).", valueName: "hours"))
    var bufferMaxAgeHours: Int = 24 * 7

    @Option(name: .customLong("netns-host"), help: ArgumentHelp(
        "Also collect in network namespace NETNS (name or path) and send it as Zabbix host HOST; repeatable.",
        valueName: "netns=host"
    ))
    var namespaceHosts: [String] = []

    @Option(help: ArgumentHelp("How long SIGTERM waits, at most, for pending values to go out, \(Self.shutdownRange.lowerBound)-\(Self.shutdownRange.upperBound).", valueName: "seconds"))
    var shutdownSeconds: Int = 10

    @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: String = "info"

    /// 2 MiB holds a day of minutely values of a busy host; 1 TiB is beyond any sane buffer.
    static let bufferMiBRange = 2...1_048_576
    /// Up to ten years; Zabbix itself refuses values older than its history anyway.
    static let bufferHoursRange = 1...87_600
    /// systemd's unit stops the daemon after 30 s; an hour is the most any stop may wait.
    static let shutdownRange = 0...3600

    func validate() throws {
        guard interval >= 0.01, interval <= 86400 else { throw ValidationError("--interval must be 0.01-86400 seconds, not \(interval)") }
        guard Self.bufferMiBRange.contains(bufferMaxMib) else {
            throw ValidationError("--buffer-max-mib must be \(Self.bufferMiBRange.lowerBound)-\(Self.bufferMiBRange.upperBound), not \(bufferMaxMib)")
        }
        guard Self.bufferHoursRange.contains(bufferMaxAgeHours) else {
            throw ValidationError("--buffer-max-age-hours must be \(Self.bufferHoursRange.lowerBound)-\(Self.bufferHoursRange.upperBound), not \(bufferMaxAgeHours)")
        }
        guard Self.shutdownRange.contains(shutdownSeconds) else {
            throw ValidationError("--shutdown-seconds must be \(Self.shutdownRange.lowerBound)-\(Self.shutdownRange.upperBound), not \(shutdownSeconds)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \"\(logLevel)\" is not a level") }
        let hosts = try extraTargets().map(\.host)
        for host in hosts {
            if let problem = AgentConfig.hostnameProblem(host) {
                throw ValidationError("--netns-host: \"\(host)\" cannot be a Zabbix host: \(problem)")
            }
        }
        if let repeated = hosts.firstDuplicate {
            throw ValidationError("--netns-host: host \"\(repeated)\" is given more than once")
        }
    }

    /// --netns-host entries as (namespace, host).
    private func extraTargets() throws -> [(netns: String, host: String)] {
        try namespaceHosts.map { entry in
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--netns-host \"\(entry)\": expected NETNS=HOST")
            }
            return (parts[0], parts[1])
        }
    }

    func run() async throws {
        let logger = startLogging(level: Logger.Level(rawValue: logLevel) ?? .info)
        let extra = try extraTargets()
        let options = try collection.options()
        let schedule = PushSchedule(intervalNanoseconds: Int64((interval * 1e9).rounded()))

        let sender = self.sender
        let settings: @Sendable () throws -> PushSettings = {
            let resolved = try sender.resolve()
            // The main host's counts and a namespace's under one name would reach Zabbix as one
            // host, every value twice.
            if extra.contains(where: { $0.host == resolved.host }) {
                throw SenderFlags.SettingsError("--netns-host: \"\(resolved.host)\" is also the main host name; give the namespace a host of its own")
            }
            return PushSettings(
                destinations: resolved.destinations, hosts: [resolved.host] + extra.map(\.host), schedule: schedule,
                timeoutSeconds: resolved.timeoutSeconds, psk: resolved.psk)
        }
        let initial: PushSettings
        do {
            initial = try settings()
        } catch let error as SenderFlags.SettingsError {
            throw fail(error.description)
        }

        let namespaces = Dictionary(uniqueKeysWithValues: extra.map { ($0.host, $0.netns) })
        let failures = Mutex(RefusalLog())
        // --all-netns problems (a namespace not entered) are logged when they change, not every poll.
        let namespaceProblems = Mutex<[String]>([])
        let source: PushDaemon.Source = { settings, clock, ns in
            settings.hosts.compactMap { host in
                var hostOptions = options
                if let netns = namespaces[host] {
                    // --netns-host sends one namespace as a host of its own; --all-netns goes with the main host.
                    hostOptions.netns = netns
                    hostOptions.allNetworkNamespaces = false
                }
                do {
                    let snapshot = try hostOptions.collect()
                    if let problems = snapshot.namespaces?.problems,
                       namespaceProblems.withLock({ old in defer { old = problems }; return old != problems }) {
                        for problem in problems { logger.warning("--all-netns: \(problem)") }
                    }
                    if failures.withLock({ $0.accepted(host) }) { logger.info("collecting for \(host) works again") }
                    return SenderValue(host: host, key: StatsDocument.itemKey, value: StatsDocument.json(snapshot), clock: clock, ns: ns)
                } catch {
                    if failures.withLock({ $0.refused(host) }) { logger.error("cannot collect for \(host): \(error)") }
                    return nil
                }
            }
        }
        let daemon: PushDaemon
        do {
            daemon = try PushDaemon(
                settings: initial,
                buffer: BufferSettings(
                    directory: bufferDir, maxBytes: bufferMaxMib << 20, maxAgeSeconds: Int64(bufferMaxAgeHours) * 3600),
                shutdownDeadlineSeconds: shutdownSeconds, logger: logger, source: source, reload: settings)
        } catch {
            throw fail("buffer \(bufferDir): \(error)")
        }
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: daemon)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

extension Sequence where Element: Hashable {
    /// The first element seen twice.
    var firstDuplicate: Element? {
        var seen: Set<Element> = []
        return first { !seen.insert($0).inserted }
    }
}
