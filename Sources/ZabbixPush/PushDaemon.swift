import DurableQueue
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import UnixSignals
import ZabbixProtocol
import ZabbixSender

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the daemon needs to know; `reload` (SIGHUP) produces a new one.
public struct PushSettings: Sendable {
    /// Every entry gets every value; nodes of one entry are a failover cluster.
    public var destinations: [ServerCluster]
    /// The hosts the source produces values for; each is delivered on its own so that a
    /// refused host never holds back the others.
    public var hosts: [String]
    public var schedule: PushSchedule
    public var timeoutSeconds: Int
    public var psk: PreSharedKey?

    public init(destinations: [ServerCluster], hosts: [String], schedule: PushSchedule, timeoutSeconds: Int, psk: PreSharedKey?) {
        self.destinations = destinations
        self.hosts = hosts
        self.schedule = schedule
        self.timeoutSeconds = timeoutSeconds
        self.psk = psk
    }
}

/// Collects on a schedule into an on-disk buffer and delivers the buffer to every destination,
/// oldest first, retrying with backoff while a server is away.
public final class PushDaemon: Service {
    /// One collection: the values for each host, stamped with the collection time. The daemon
    /// knows nothing of what they mean.
    public typealias Source = @Sendable (_ settings: PushSettings, _ clock: Int, _ ns: Int) -> [SenderValue]
    public typealias Reload = @Sendable () throws -> PushSettings

    /// zabbix_sender's VALUES_MAX: values per request.
    static let batchSize = 250
    /// How long SIGTERM/SIGINT wait for pending values to go out before exiting.
    let shutdownDeadlineSeconds: Int

    private let initialSettings: PushSettings
    private let buffer: PushBuffer
    private let source: Source
    private let reload: Reload
    private let logger: Logger
    private let shuttingDown = Mutex<Bool>(false)

    public init(
        settings: PushSettings, bufferDirectory: String, limits: QueueLimits, shutdownDeadlineSeconds: Int = 10,
        logger: Logger, source: @escaping Source, reload: @escaping Reload
    ) throws {
        initialSettings = settings
        self.shutdownDeadlineSeconds = shutdownDeadlineSeconds
        self.logger = logger
        self.source = source
        self.reload = reload
        buffer = try PushBuffer(
            directory: bufferDirectory, limits: limits, consumers: Self.consumers(settings).map(\.name), logger: logger)
    }

    /// Runs until SIGTERM or SIGINT (then flushes within the deadline) or cancellation.
    public func run() async throws {
        var settings = initialSettings
        let session = buffer.session
        logger.info("started: \(settings.hosts.count) host(s), \(settings.destinations.count) destination(s), interval \(Double(settings.schedule.intervalNanoseconds) / 1e9) s, sender session \(session)")
        while true {
            let reloadRequested = await withGracefulShutdownHandler {
                await runUntilReload(settings)
            } onGracefulShutdown: {
                self.shuttingDown.withLock { $0 = true }
            }
            guard reloadRequested, !isShuttingDown else { break }
            do {
                let next = try reload()
                let kept = Set(Self.consumers(next).map(\.name))
                for old in Self.consumers(settings) where !kept.contains(old.name) {
                    try await buffer.forget(consumer: old.name)
                }
                settings = next
                logger.info("configuration reloaded: \(settings.hosts.count) host(s), \(settings.destinations.count) destination(s)")
            } catch {
                logger.error("configuration reload failed, keeping the previous one: \(error)")
            }
        }
        let stats = await buffer.stats()
        // storedRecords also counts delivered values whose segment is not deleted yet.
        let undelivered = stats.pendingByConsumer.values.max() ?? 0
        logger.info("stopped: \(undelivered) values not yet delivered, \(stats.droppedRecords) dropped since the buffer was made")
        await buffer.close()
    }

    private var isShuttingDown: Bool { shuttingDown.withLock { $0 } }

    /// One destination and host: what a delivery loop works on.
    struct Consumer: Sendable {
        var name: String
        var host: String
        var cluster: ServerCluster
    }

    static func consumers(_ settings: PushSettings) -> [Consumer] {
        settings.destinations.flatMap { cluster in
            settings.hosts.map { host in
                Consumer(name: cluster.nodes.map(\.description).joined(separator: ";") + " " + host, host: host, cluster: cluster)
            }
        }
    }

    /// Collects and delivers until SIGHUP (returns true), or shutdown (false).
    private func runUntilReload(_ settings: PushSettings) async -> Bool {
        let client = ZabbixSenderClient(timeout: .seconds(Int64(settings.timeoutSeconds)), psk: settings.psk)
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup) { return true }
                return false
            }
            group.addTask {
                await self.collect(settings)
                return false
            }
            for consumer in Self.consumers(settings) {
                group.addTask {
                    await self.deliver(consumer, settings: settings, client: client)
                    return false
                }
            }
            // The first to finish decides: a SIGHUP (reload), or every loop ended by shutdown.
            var reloadRequested = false
            var finished = 0
            for await result in group {
                finished += 1
                if result {
                    reloadRequested = true
                    group.cancelAll()
                } else if finished == 1 + Self.consumers(settings).count && !reloadRequested {
                    // Collector and deliveries are done (shutdown): stop waiting for SIGHUP.
                    group.cancelAll()
                }
            }
            return reloadRequested
        }
    }

    private func collect(_ settings: PushSettings) async {
        var failures = RefusalLog()
        while !Task.isCancelled && !isShuttingDown {
            let now = WallClock.now()
            let tick = settings.schedule.nextTick(after: now.totalNanoseconds)
            do {
                try await Task.sleep(for: .nanoseconds(tick - now.totalNanoseconds))
            } catch {
                return
            }
            if isShuttingDown { return }
            let collectedAt = WallClock.now()
            let values = source(settings, collectedAt.seconds, collectedAt.nanoseconds)
            do {
                try await buffer.append(values, timestamp: Int64(collectedAt.seconds))
                if failures.accepted("append") { logger.info("buffer: appending works again") }
            } catch {
                if failures.refused("append") { logger.error("buffer: cannot store the values collected at \(collectedAt.seconds): \(error)") }
            }
        }
    }

    private func deliver(_ consumer: Consumer, settings: PushSettings, client: ZabbixSenderClient) async {
        let session = buffer.session
        var cluster = consumer.cluster
        var backoff = RetryBackoff()
        var random = SystemRandomNumberGenerator()
        var problems = RefusalLog()
        var deadline: Int64?
        // Ids at or below this may have reached the server already: sent by an earlier process,
        // or by this one when the reply was lost. The server drops such repeats by id and counts
        // them as failed, which is not a refusal.
        var sentThrough = buffer.resumedThrough
        let idle = min(settings.schedule.intervalNanoseconds, 1_000_000_000)
        let destination = cluster.nodes.map(\.description).joined(separator: ";")

        while !Task.isCancelled {
            if isShuttingDown {
                let now = WallClock.now().totalNanoseconds
                deadline = deadline ?? now + Int64(shutdownDeadlineSeconds) * 1_000_000_000
                if now >= deadline! {
                    let left = await buffer.pending(consumer: consumer.name)
                    if left > 0 { logger.warning("shutdown: deadline reached before \(destination) took everything; \(left) values stay buffered for the next start") }
                    return
                }
            }
            let batch: (values: [SenderValue], through: UInt64?)
            do {
                batch = try await buffer.read(consumer: consumer.name, host: consumer.host, limit: Self.batchSize)
            } catch {
                logger.error("buffer: cannot read for \(destination): \(error)")
                if !(await pause(backoff.nextDelay(using: &random))) { return }
                continue
            }
            guard let through = batch.through, !batch.values.isEmpty else {
                if isShuttingDown { return }  // everything delivered
                if !(await pause(idle)) { return }
                continue
            }

            let request = SenderDataRequest(values: batch.values, session: session)
            let frame: ZBXDFrame
            do {
                frame = try request.frame()
            } catch {
                logger.error("cannot encode values for \(consumer.host): \(error); dropping them")
                try? await buffer.acknowledge(consumer: consumer.name, through: through)
                continue
            }
            let delivery = await client.send(frame, to: cluster)
            cluster = delivery.cluster
            let mayRepeat = (batch.values.first?.id ?? 0) <= sentThrough
            sentThrough = max(sentThrough, batch.values.last?.id ?? 0)
            let failure: String? = switch delivery.result {
            case .failure(let error): error.description
            case .success(let response) where response.status == .failed:
                "\(delivery.node.map(String.init(describing:)) ?? destination) answered failed: \(response.info ?? "no reason given")"
            case .success: nil
            }
            if let failure {
                if isShuttingDown {
                    let left = await buffer.pending(consumer: consumer.name)
                    logger.warning("shutdown: cannot deliver to \(destination) (\(failure)); \(left) values stay buffered for the next start")
                    return
                }
                let wait = backoff.nextDelay(using: &random)
                let waiting = await buffer.pending(consumer: consumer.name)
                if problems.refused("unreachable") {
                    logger.warning("cannot deliver to \(destination): \(failure); retrying with backoff (buffered: \(waiting))")
                } else {
                    logger.debug("still cannot deliver to \(destination): \(failure); next try in \(wait / 1_000_000) ms")
                }
                if !(await pause(wait)) { return }
                continue
            }
            backoff.reset()
            if problems.accepted("unreachable") { logger.info("delivering to \(destination) again") }

            let tally = (try? delivery.result.get())?.tally
            let keys = Set(batch.values.map(\.key)).sorted().joined(separator: ", ")
            let cause = "refused"
            if let tally, tally.failed > 0 {
                if mayRepeat {
                    logger.info("\(destination): \(tally.failed) of \(tally.total) values for \(consumer.host) not taken, likely delivered before (by an earlier start, or a reply was lost; the server drops repeated ids)")
                } else if problems.refused(cause) {
                    logger.warning("\(destination) refused \(tally.failed) of \(tally.total) values for host \"\(consumer.host)\" (\(keys)): does the host exist with trapper items of these keys, enabled, not monitored by a proxy? Values keep flowing and are taken once it does; this is logged once until then")
                }
            } else if problems.accepted(cause) {
                logger.info("\(destination) takes values for host \"\(consumer.host)\" again")
            }
            do {
                try await buffer.acknowledge(consumer: consumer.name, through: through)
            } catch {
                logger.error("buffer: cannot record the delivery to \(destination): \(error)")
            }
        }
    }

    /// Sleeps, waking early for shutdown; false when cancelled.
    private func pause(_ nanoseconds: Int64) async -> Bool {
        var left = nanoseconds
        while left > 0 {
            if isShuttingDown { return true }
            let step = min(left, 100_000_000)
            do { try await Task.sleep(for: .nanoseconds(step)) } catch { return false }
            left -= step
        }
        return true
    }
}
