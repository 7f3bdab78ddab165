import DurableQueue
import Posix
import Glibc
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals
import ZabbixProtocol
import ZabbixSender

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

/// Where the on-disk buffer lives and how much it may hold.
public struct BufferSettings: Sendable {
    public var directory: String
    /// When full, the oldest values go first.
    public var maxBytes: Int
    /// Values older than this are dropped.
    public var maxAgeSeconds: Int64

    public init(directory: String, maxBytes: Int, maxAgeSeconds: Int64) {
        self.directory = directory
        self.maxBytes = maxBytes
        self.maxAgeSeconds = maxAgeSeconds
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
    /// Reloads requested closer together than this are done once: a flood of SIGHUPs neither
    /// skips collections nor keeps cancelling deliveries.
    static let reloadSpacingNanoseconds: Int64 = 1_000_000_000

    private let initialSettings: PushSettings
    private let buffer: PushBuffer
    private let source: Source
    private let reload: Reload
    private let logger: Logger
    /// How long SIGTERM/SIGINT wait, at most, for pending values to go out before exiting.
    private let shutdownDeadlineSeconds: Int
    /// Set by SIGTERM/SIGINT: the moment by which every wait must end.
    private let shutdownDeadline = Mutex<Int64?>(nil)
    private let reloadRequested = Mutex(false)
    /// The last tick collected, kept across reloads so that none is skipped.
    private let lastTick = Mutex<Int64?>(nil)

    public init(
        settings: PushSettings, buffer bufferSettings: BufferSettings, shutdownDeadlineSeconds: Int = 10,
        logger: Logger, source: @escaping Source, reload: @escaping Reload
    ) throws {
        initialSettings = settings
        self.shutdownDeadlineSeconds = shutdownDeadlineSeconds
        self.logger = logger
        self.source = source
        self.reload = reload
        buffer = try PushBuffer(
            directory: bufferSettings.directory, limits: Self.queueLimits(bufferSettings),
            consumers: Self.consumers(settings).map(\.name), logger: logger)
    }

    /// Segments of 1 MiB, smaller in a small buffer so that one never fills half of it; a value
    /// (one host's stats document) of up to 1 MiB.
    static func queueLimits(_ settings: BufferSettings) -> QueueLimits {
        let segmentBytes = min(1 << 20, settings.maxBytes / 4)
        return QueueLimits(
            segmentBytes: segmentBytes, maxTotalBytes: settings.maxBytes,
            maxRecordBytes: min(1 << 20, settings.maxBytes - segmentBytes - 64), maxAgeSeconds: settings.maxAgeSeconds)
    }

    /// Runs until SIGTERM or SIGINT (then flushes within the deadline) or cancellation.
    public func run() async throws {
        var settings = initialSettings
        logger.info("started: \(settings.hosts.count) host(s), \(settings.destinations.count) destination(s), interval \(Double(settings.schedule.intervalNanoseconds) / 1e9) s, sender session \(buffer.session)")
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup) {
                    self.reloadRequested.withLock { $0 = true }
                }
            }
            while true {
                let reloading = await withGracefulShutdownHandler {
                    await runUntilReload(settings)
                } onGracefulShutdown: {
                    let deadline = WallClock.now().totalNanoseconds + Int64(self.shutdownDeadlineSeconds) * 1_000_000_000
                    self.shutdownDeadline.withLock { $0 = $0 ?? deadline }
                }
                guard reloading, !isShuttingDown else { break }
                settings = await reloaded(settings)
            }
            group.cancelAll()
        }
        let stats = await buffer.stats()
        let undelivered = stats.pendingByConsumer.values.max() ?? 0
        logger.info("stopped: \(undelivered) values not yet delivered, \(stats.droppedRecords) dropped since the buffer was made")
        await buffer.close()
    }

    private var isShuttingDown: Bool { shutdownDeadline.withLock { $0 != nil } }

    private func reloaded(_ settings: PushSettings) async -> PushSettings {
        do {
            let next = try reload()
            let kept = Set(Self.consumers(next).map(\.name))
            for old in Self.consumers(settings) where !kept.contains(old.name) {
                try await buffer.forget(consumer: old.name)
            }
            logger.info("configuration reloaded: \(next.hosts.count) host(s), \(next.destinations.count) destination(s)")
            return next
        } catch {
            logger.error("configuration reload failed, keeping the previous one: \(error)")
            return settings
        }
    }

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

    /// Collects and delivers until a reload is due (returns true), or shutdown (false).
    private func runUntilReload(_ settings: PushSettings) async -> Bool {
        let client = ZabbixSenderClient(timeout: .seconds(Int64(settings.timeoutSeconds)), psk: settings.psk)
        let consumers = Self.consumers(settings)
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.collect(settings) }
            for consumer in consumers {
                group.addTask {
                    await self.deliver(consumer, settings: settings, client: client)
                    return false
                }
            }
            // The collector decides: it returns true for a reload. At shutdown every task ends.
            var reloading = false
            for await result in group where result {
                reloading = true
                group.cancelAll()
            }
            return reloading
        }
    }

    /// Collects on every tick until shutdown (false) or a due reload (true). A tick missed while
    /// reloading is collected late rather than skipped.
    private func collect(_ settings: PushSettings) async -> Bool {
        let interval = settings.schedule.intervalNanoseconds
        let startedAt = WallClock.now().totalNanoseconds
        var failures = RefusalLog()
        var unstored = 0
        while !Task.isCancelled && !isShuttingDown {
            let now = WallClock.now().totalNanoseconds
            // At most one missed tick is caught up; a longer stall (a suspended host) is not replayed.
            let tick = lastTick.withLock { last in
                last.map { max($0 + interval, settings.schedule.nextTick(after: now - interval)) }
            } ?? settings.schedule.nextTick(after: now)
            // Wakes every 100 ms to see a reload request or shutdown; checks once even when behind
            // (a collection slower than the interval), so a reload is never put off for good.
            repeat {
                if isShuttingDown { return false }
                if reloadRequested.withLock({ $0 }) && WallClock.now().totalNanoseconds - startedAt >= Self.reloadSpacingNanoseconds {
                    reloadRequested.withLock { $0 = false }
                    return true
                }
                let left = tick - WallClock.now().totalNanoseconds
                if left <= 0 { break }
                do { try await Task.sleep(for: .nanoseconds(min(left, 100_000_000))) } catch { return false }
            } while true
            lastTick.withLock { $0 = tick }
            let collectedAt = WallClock.now()
            let values = source(settings, collectedAt.seconds, collectedAt.nanoseconds)
            do {
                try await buffer.append(values, timestamp: Int64(collectedAt.seconds))
                if failures.accepted("append") {
                    logger.info("buffer: storing values works again; \(unstored) collection(s) could not be stored meanwhile")
                    unstored = 0
                }
            } catch {
                unstored += 1
                if failures.refused("append") {
                    logger.error("buffer: cannot store the values collected at \(collectedAt.seconds): \(error); collection goes on, values already buffered are still delivered, and this is logged once until storing works again")
                }
            }
        }
        if unstored > 0 { logger.warning("buffer: \(unstored) collection(s) could not be stored (disk full or failing)") }
        return false
    }

    private func deliver(_ consumer: Consumer, settings: PushSettings, client: ZabbixSenderClient) async {
        var cluster = consumer.cluster
        var backoff = RetryBackoff()
        var random = SystemRandomNumberGenerator()
        var problems = RefusalLog()
        // Ids at or below this may have reached the server already: sent by an earlier process,
        // or by this one when the reply was lost.
        var sentThrough = buffer.resumedThrough
        let idle = min(settings.schedule.intervalNanoseconds, 1_000_000_000)
        let destination = cluster.nodes.map(\.description).joined(separator: ";")

        while !Task.isCancelled {
            if shutdownDeadlinePassed {
                await logLeftAtShutdown(consumer, destination: destination, cause: "the shutdown deadline came")
                return
            }
            let batch: (values: [SenderValue], through: UInt64?)
            do {
                batch = try await buffer.read(consumer: consumer.name, host: consumer.host, limit: Self.batchSize)
                if problems.accepted("read") { logger.info("buffer: reading for \(destination) works again") }
            } catch {
                if problems.refused("read") { logger.error("buffer: cannot read for \(destination): \(error)") }
                if !(await pause(backoff.nextDelay(using: &random))) { return }
                continue
            }
            guard let through = batch.through, !batch.values.isEmpty else {
                if isShuttingDown { return }  // everything delivered
                if !(await pause(idle)) { return }
                continue
            }
            let frame: ZBXDFrame
            do {
                frame = try SenderDataRequest(values: batch.values, session: buffer.session).frame()
            } catch {
                logger.error("cannot encode values for \(consumer.host): \(error); dropping them")
                await acknowledge(consumer, through: through, destination: destination, problems: &problems)
                continue
            }
            guard let delivery = await sendBeforeShutdownDeadline(frame, to: cluster, client: client) else {
                await logLeftAtShutdown(consumer, destination: destination, cause: "the shutdown deadline came during a send")
                return
            }
            cluster = delivery.cluster
            let outcome = DeliveryOutcome.judge(
                delivery.result, from: delivery.node, destination: destination,
                mayRepeat: (batch.values.first?.id ?? 0) <= sentThrough)
            sentThrough = max(sentThrough, batch.values.last?.id ?? 0)
            if case .failed(let reason) = outcome {
                if isShuttingDown {
                    await logLeftAtShutdown(consumer, destination: destination, cause: reason)
                    return
                }
                let wait = backoff.nextDelay(using: &random)
                if problems.refused("unreachable") {
                    let waiting = await buffer.pending(consumer: consumer.name)
                    logger.warning("cannot deliver to \(destination): \(reason); retrying with backoff (buffered: \(waiting))")
                } else {
                    logger.debug("still cannot deliver to \(destination): \(reason); next try in \(wait / 1_000_000) ms")
                }
                if !(await pause(wait)) { return }
                continue
            }
            backoff.reset()
            if problems.accepted("unreachable") { logger.info("delivering to \(destination) again") }
            log(outcome, consumer: consumer, destination: destination, keys: batch.values, problems: &problems)
            await acknowledge(consumer, through: through, destination: destination, problems: &problems)
        }
    }

    private func log(
        _ outcome: DeliveryOutcome, consumer: Consumer, destination: String, keys values: [SenderValue],
        problems: inout RefusalLog
    ) {
        switch outcome {
        case .repeatsDropped(let failed, let total):
            logger.info("\(destination): \(failed) of \(total) values for \(consumer.host) not taken, likely delivered before (by an earlier start, or a reply was lost; the server drops repeated ids)")
        case .refused(let failed, let total):
            guard problems.refused("refused") else { return }
            let keys = Set(values.map(\.key)).sorted().joined(separator: ", ")
            logger.warning("\(destination) refused \(failed) of \(total) values for host \"\(consumer.host)\" (\(keys)): does the host exist with trapper items of these keys, enabled, not monitored by a proxy? Values keep flowing and are taken once it does; this is logged once until then")
        case .delivered:
            if problems.accepted("refused") { logger.info("\(destination) takes values for host \"\(consumer.host)\" again") }
        case .failed:
            break
        }
    }

    /// The in-memory position moves even when saving it fails (a full or read-only disk), so
    /// delivery goes on; after a crash the server drops what is sent again, by session and id.
    private func acknowledge(_ consumer: Consumer, through: UInt64, destination: String, problems: inout RefusalLog) async {
        do {
            try await buffer.acknowledge(consumer: consumer.name, through: through)
            if problems.accepted("acknowledge") { logger.info("buffer: recording deliveries works again") }
        } catch {
            if problems.refused("acknowledge") {
                logger.error("buffer: cannot record the delivery to \(destination): \(error); delivery goes on, and after a restart the server drops the repeats")
            }
        }
    }

    private func logLeftAtShutdown(_ consumer: Consumer, destination: String, cause: String) async {
        let left = await buffer.pending(consumer: consumer.name)
        if left > 0 {
            logger.warning("shutdown: \(cause) before \(destination) took everything; \(left) values stay buffered for the next start")
        }
    }

    private var shutdownDeadlinePassed: Bool {
        guard let deadline = shutdownDeadline.withLock({ $0 }) else { return false }
        return WallClock.now().totalNanoseconds >= deadline
    }

    /// Sends, giving up (nil) when the shutdown deadline passes first: a silent server never holds
    /// the exit back longer than --shutdown-seconds, whatever the send's own timeout.
    private func sendBeforeShutdownDeadline(
        _ frame: ZBXDFrame, to cluster: ServerCluster, client: ZabbixSenderClient
    ) async -> ClusterDelivery? {
        await withTaskGroup(of: ClusterDelivery?.self) { group in
            group.addTask { await client.send(frame, to: cluster) }
            group.addTask {
                // Ends by the deadline, or by cancellation once the send is done.
                while !self.shutdownDeadlinePassed {
                    do { try await Task.sleep(for: .milliseconds(50)) } catch { break }
                }
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
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
