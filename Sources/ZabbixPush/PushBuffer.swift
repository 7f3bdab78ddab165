import DurableQueue
import Logging
import ZabbixProtocol


/// The daemon's on-disk buffer of sender values, with the sender session that goes with it: the
/// session token lives in the buffer's state and each value's id is its record's sequence number,
/// so a restarted daemon continues the session and the server can drop what it already has.
///
/// Sequence numbers are never reused, not even when the state file is lost (the segments carry
/// the counter), and they rise in the order values are read and sent: per host and session the
/// ids rise, as the server needs. (A counter kept in the state file restarted at 1 with a new
/// session when that file was lost, while the buffered values kept their old, higher ids: the
/// server then dropped every new value as a repeat until the counter caught up.)
actor PushBuffer {
    private let queue: DurableQueue
    private let logger: Logger
    /// 32 lowercase hex digits, made once per buffer (again if its state file is lost).
    let session: String
    /// Ids at or below this were in the buffer when it was opened: an earlier process may have
    /// sent them already.
    let resumedThrough: UInt64

    init(directory: String, limits: QueueLimits, consumers: [String], logger: Logger) throws {
        self.logger = logger
        queue = try DurableQueue(directory: directory, limits: limits, consumers: consumers, onEvent: { event in
            switch event {
            case .corruptionSkipped(let region):
                logger.warning("buffer: skipped \(region.length) corrupt bytes at \(region.file) offset \(region.offset) (\(region.reason)); the records around them are kept")
            case .stateCopyRepaired(let path, let recovery):
                logger.info("buffer: state copy \(path) \(recovery); the other copy is whole and is used, nothing is lost")
            case .stateRecovered(let path, let recovery):
                logger.warning("buffer: state file \(path) \(recovery); delivery restarts from the oldest buffered value")
            case .recordsDropped(let count, let reason):
                logger.warning("buffer: dropped the \(count) oldest undelivered values (\(reason == .byteLimit ? "buffer full" : "older than the age limit"))")
            }
        })
        session = queue.state["session"] ?? Self.newSessionToken()
        queue.state["session"] = session
        try queue.saveState()
        resumedThrough = queue.stats.nextSequence - 1
    }

    /// Stores `values`; when this returns they survive a crash. Their ids are assigned by `read`.
    func append(_ values: [SenderValue], timestamp: Int64) throws {
        guard !values.isEmpty else { return }
        try queue.append(values.map(BufferedValue.encode), timestamp: timestamp)
    }

    /// Up to `limit` of the oldest values of `host` not yet acknowledged by `consumer`, and the
    /// sequence to acknowledge once they are delivered (it also covers other hosts' values,
    /// which other consumers deliver).
    func read(consumer: String, host: String, limit: Int) throws -> (values: [SenderValue], through: UInt64?) {
        var values: [SenderValue] = []
        var through: UInt64?
        // Other hosts' records are skipped; bound the reads so that a large backlog of theirs
        // is walked in steps, not all at once.
        for _ in 0..<64 {
            let records = try queue.read(consumer: consumer, limit: limit)
            guard let last = records.last else { break }
            for record in records {
                through = record.sequence
                do {
                    var value = try BufferedValue.decode(record.payload)
                    value.id = record.sequence
                    if value.host == host { values.append(value) }
                } catch {
                    logger.warning("buffer: record \(record.sequence) is unreadable (\(error)); skipped")
                }
                if values.count == limit { return (values, through) }
            }
            if !values.isEmpty { break }
            // The position moves in memory even if saving it fails (a full disk): delivery goes on.
            try? queue.acknowledge(consumer: consumer, through: last.sequence)
        }
        return (values, through)
    }

    func acknowledge(consumer: String, through sequence: UInt64) throws {
        try queue.acknowledge(consumer: consumer, through: sequence)
    }

    func pending(consumer: String) -> Int { queue.stats.pendingByConsumer[consumer] ?? 0 }

    func stats() -> QueueStats { queue.stats }

    func forget(consumer: String) throws { try queue.removeConsumer(consumer) }

    func enforceLimits() throws { try queue.enforceLimits() }

    func close() { queue.close() }

    private static func newSessionToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(UInt8.random(in: 0..<16, using: &generator), radix: 16) }.joined()
    }
}
