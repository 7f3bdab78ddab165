import Glibc
import Posix

/// An on-disk FIFO of opaque byte records that loses nothing it acknowledged appending, through
/// kill -9 and power loss, with named consumers that each acknowledge their own position.
///
/// The directory (created with mode 0700; refused if another user owns it or others may write
/// to it) holds:
/// - `<first sequence, 20 digits>.seg`: append-only segment files of records (see `RecordFrame`);
/// - `state` and `state.copy`: consumer positions, the owner's key-value `state` and counters
///   (see `StateFile`).
/// The directory itself is flocked while a queue is open, so two queues never write the same
/// files, and every file is opened relative to it without following links.
///
/// A full or failing disk (ENOSPC, EDQUOT, EIO, a read-only remount) makes `append` throw and
/// leaves what is stored readable; acknowledged records free their space, after a failed append
/// the newest segment's included, so delivery goes on and appends work again once space returns.
///
/// Delivery is at least once: a record is read again until its consumer acknowledges it, and an
/// append that throws after writing may still be found after a restart.
///
/// Not thread-safe: confine an instance to one thread, task or actor.
public final class DurableQueue {
    public let directory: String
    public let limits: QueueLimits
    /// The owner's own strings kept with the buffer (a session token, an id counter). Changes are
    /// written by `saveState()`, `acknowledge`, `removeConsumer` and any drop the bounds cause.
    public var state: [String: String] = [:]

    /// Beyond this many directory entries the queue refuses to open rather than list forever.
    private static let maxDirectoryEntries = 1 << 20
    private static let segmentSuffix = ".seg"
    private static let segmentDigits = 20

    private struct Segment {
        var firstSequence: UInt64
        var name: String
        var path: String
        var size: Int
        /// Readable records above `discardedThrough`, in sequence order.
        var records: [RecordLocation]
        /// Highest valid sequence ever found in the file, dropped or not.
        var lastSequence: UInt64?

        /// Every sequence this segment can hold is at or below this.
        var coversThrough: UInt64 { lastSequence ?? firstSequence - 1 }
    }

    private let clock: () -> Int64
    private let onEvent: (QueueEvent) -> Void
    private var files: QueueDirectory?
    /// Oldest first; appends go to the last one.
    private var segments: [Segment] = []
    /// Set by a failed write: the newest segment's tail is unknown, so the next append starts a new
    /// segment (unless it is empty), and the disk is in trouble, so settled space is freed at once.
    private var lastAppendFailed = false
    private var positions: [String: UInt64] = [:]
    private var nextSequence: UInt64 = 1
    private var discardedThrough: UInt64 = 0
    private var droppedRecords: UInt64 = 0
    private var corruptRegions = 0
    private var corruptBytes = 0
    private var isClosed = false
    private var generation: UInt64 = 0
    /// The owner's values as `state.copy` holds them (nil: not known to be written), and the saves
    /// since it was written.
    private var copiedValues: [String: String]?
    private var savesSinceCopy = 0
    /// `state.copy` is rewritten at least this often (see `StateFile`).
    static let copyInterval = 64

    /// Opens the queue in `directory`, creating it if needed, and recovers whatever a crash left:
    /// corrupt regions are skipped (the newest segment's torn tail is cut off), a bad or missing
    /// state file is replaced, and the bounds are applied. Recoveries are passed to `onEvent`.
    ///
    /// - Parameters:
    ///   - consumers: the consumers the owner will read for (one per destination). Each one not
    ///     known yet starts at the oldest record and holds segments back from deletion before its
    ///     first read; a consumer first seen by `read` only holds back what is still there then.
    ///   - clock: seconds since the Unix epoch, for default timestamps and the age bound.
    ///   - onEvent: called synchronously, during this initialiser too, for everything worth logging.
    public init(
        directory: String,
        limits: QueueLimits = QueueLimits(),
        consumers: [String] = [],
        clock: @escaping () -> Int64 = { Int64(time(nil)) },
        onEvent: @escaping (QueueEvent) -> Void = { _ in }
    ) throws {
        var trimmed = directory
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.directory = trimmed
        self.limits = limits
        self.clock = clock
        self.onEvent = onEvent
        try limits.validate()
        files = try QueueDirectory.open(trimmed)
        // Left by an interrupted save, or by versions that locked a file instead of the directory.
        try openDirectory().remove(StateFile.temporaryName)
        try openDirectory().remove("lock")
        try loadSegments()
        try loadState(declaredConsumers: consumers)
        try deleteCoveredSegments()
        try dropOverByteLimit(incomingBytes: 0)
        try dropExpired()
    }

    deinit {
        close()
    }

    /// Appends `payloads` as consecutive records with one write and one fdatasync (plus a directory
    /// fsync when a new segment starts). When it returns, the records survive power loss.
    ///
    /// - Parameter timestamp: seconds since the Unix epoch for every record; defaults to the clock.
    /// - Returns: the records' sequence numbers, in order.
    @discardableResult
    public func append(_ payloads: [[UInt8]], timestamp: Int64? = nil) throws -> [UInt64] {
        try ensureOpen()
        guard !payloads.isEmpty else { return [] }
        var batchBytes = 0
        for payload in payloads {
            guard payload.count <= limits.maxRecordBytes else {
                throw DurableQueueError.recordTooLarge(bytes: payload.count, limit: limits.maxRecordBytes)
            }
            batchBytes += RecordFrame.headerSize + payload.count
        }
        guard batchBytes <= limits.maxBatchBytes else {
            throw DurableQueueError.batchTooLarge(bytes: batchBytes, limit: limits.maxBatchBytes)
        }
        let recordedAt = timestamp ?? clock()
        // Opened per append and closed after: between appends the queue holds no file open for
        // writing, so an admin can remount the filesystem read-only.
        let descriptor = try descriptorForAppend()
        defer { FileIO.close(descriptor) }
        // Bounds first, so an append that returns normally never had its own records dropped and an
        // append that throws here wrote nothing.
        try dropOverByteLimit(incomingBytes: batchBytes)
        try dropExpired()

        let last = segments.count - 1
        let start = segments[last].size
        let firstSequence = nextSequence
        var frames: [UInt8] = []
        frames.reserveCapacity(batchBytes)
        var locations: [RecordLocation] = []
        for (index, payload) in payloads.enumerated() {
            let sequence = firstSequence + UInt64(index)
            locations.append(
                RecordLocation(offset: start + frames.count, length: payload.count, sequence: sequence, timestamp: recordedAt))
            RecordFrame.encode(payload, sequence: sequence, timestamp: recordedAt, into: &frames)
        }
        // Consumed even if the write fails: those bytes may still reach the disk, and a reused
        // number would then appear twice.
        nextSequence = firstSequence + UInt64(payloads.count)
        do {
            try FileIO.write(descriptor, frames, at: start, path: segments[last].path)
            try FileIO.syncData(descriptor, path: segments[last].path)
        } catch {
            // The tail is unknown (the kernel may keep or drop the dirty pages): cut it back as far
            // as possible, and start a new segment for the next append unless this one is empty.
            _ = ftruncate(descriptor, off_t(start))
            lastAppendFailed = true
            throw error
        }
        segments[last].size += frames.count
        segments[last].records += locations
        segments[last].lastSequence = nextSequence - 1
        return Array(firstSequence..<nextSequence)
    }

    /// Up to `limit` of the oldest records `consumer` has not acknowledged, in sequence order.
    /// Reading moves nothing: the same records come back until acknowledged. A consumer seen for
    /// the first time starts at the oldest record held, and from then on holds segments back from
    /// deletion until it acknowledges them.
    public func read(consumer: String, limit: Int) throws -> [QueuedRecord] {
        try ensureOpen()
        guard limit > 0 else { return [] }
        try dropExpired()
        let position = self.position(of: consumer)
        var records: [QueuedRecord] = []
        for index in segments.indices where records.count < limit {
            var next = Self.firstIndex(after: position, in: segments[index].records)
            guard next < segments[index].records.count else { continue }
            let path = segments[index].path
            let descriptor = try openDirectory().openFile(segments[index].name, O_RDONLY)
            defer { FileIO.close(descriptor) }
            var window = FileWindow(descriptor: descriptor, path: path, fileSize: segments[index].size)
            // Each pass either returns a record or removes one from the index.
            while next < segments[index].records.count && records.count < limit {
                let location = segments[index].records[next]
                // Checked again because the file may have been damaged since it was scanned.
                switch try RecordFrame.validate(
                    at: location.offset, in: &window, maxRecordBytes: limits.maxRecordBytes,
                    minimumSequence: location.sequence, sequenceCeiling: location.sequence + 1)
                {
                case .valid(let found, let payload):
                    records.append(
                        QueuedRecord(sequence: found.sequence, timestamp: found.timestamp, payload: Array(payload)))
                    next += 1
                case .invalid(let reason):
                    report(
                        CorruptRegion(
                            file: path, offset: location.offset, length: RecordFrame.headerSize + location.length,
                            reason: reason))
                    segments[index].records.remove(at: next)
                }
            }
        }
        return records
    }

    /// Records that `consumer` has processed every record up to `sequence`, saves the state (with
    /// `state`) atomically, and deletes segments every known consumer has acknowledged.
    /// Acknowledging below the current position changes nothing.
    public func acknowledge(consumer: String, through sequence: UInt64) throws {
        try ensureOpen()
        guard sequence < nextSequence else {
            throw DurableQueueError.acknowledgementBeyondEnd(
                consumer: consumer, sequence: sequence, lastAppended: nextSequence - 1)
        }
        positions[consumer] = max(position(of: consumer), sequence)
        // Space first: on a full disk the state cannot be saved until delivered records free some.
        // Deleting before saving loses nothing: a crash in between finds the deleted records'
        // sequence numbers in the newer segments' names and the state's counter.
        try deleteCoveredSegments()
        try freeSettledNewestSegment()
        try saveState()
    }

    /// Forgets a consumer (a server taken out of the configuration) so it no longer holds
    /// segments back, and saves the state.
    public func removeConsumer(_ consumer: String) throws {
        try ensureOpen()
        positions[consumer] = nil
        try deleteCoveredSegments()
        try freeSettledNewestSegment()
        try saveState()
    }

    /// Writes consumer positions, `state` and counters atomically (temp file, fsync, rename,
    /// directory fsync).
    public func saveState() throws {
        try ensureOpen()
        generation += 1
        let persisted = PersistedState(
            generation: generation, nextSequence: nextSequence, discardedThrough: discardedThrough,
            droppedRecords: droppedRecords, positions: positions, values: state)
        // The copy costs two more syncs; most saves only move a position, which may lag in it.
        let withCopy = copiedValues != state || savesSinceCopy + 1 >= Self.copyInterval
        try StateFile.save(persisted, in: openDirectory(), withCopy: withCopy)
        if withCopy {
            copiedValues = state
            savesSinceCopy = 0
        } else {
            savesSinceCopy += 1
        }
    }

    /// Applies the byte and age bounds now; `append` and `read` also do. The age bound needs this
    /// called periodically when nothing is appended or read.
    ///
    /// - Returns: the records dropped that some consumer had not acknowledged.
    @discardableResult
    public func enforceLimits() throws -> UInt64 {
        try ensureOpen()
        return try dropOverByteLimit(incomingBytes: 0) + dropExpired()
    }

    public var stats: QueueStats {
        var pending: [String: Int] = [:]
        for consumer in positions.keys {
            let position = max(positions[consumer] ?? 0, discardedThrough)
            pending[consumer] = segments.reduce(0) { total, segment in
                total + segment.records.count - Self.firstIndex(after: position, in: segment.records)
            }
        }
        return QueueStats(
            pendingByConsumer: pending,
            storedRecords: segments.reduce(0) { $0 + $1.records.count },
            totalBytes: segments.reduce(0) { $0 + $1.size },
            segmentCount: segments.count,
            droppedRecords: droppedRecords,
            corruptRegions: corruptRegions,
            corruptBytes: corruptBytes,
            nextSequence: nextSequence)
    }

    /// Releases the files and the directory lock; later calls throw `closed`. Unsaved changes to
    /// `state` are not written.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        files?.close()
        files = nil
    }

    // MARK: - Opening

    private func loadSegments() throws {
        let firstSequences = try openDirectory().list(limit: Self.maxDirectoryEntries)
            .compactMap(Self.firstSequence(ofSegmentNamed:))
            .sorted()
        for (index, firstSequence) in firstSequences.enumerated() {
            let isNewest = index == firstSequences.count - 1
            let name = segmentName(firstSequence: firstSequence)
            let path = path(of: name)
            // A link or other non-file under a segment's name was planted: ELOOP or EISDIR here.
            let descriptor = try openDirectory().openFile(name, isNewest ? O_RDWR : O_RDONLY)
            defer { FileIO.close(descriptor) }
            let scan = try SegmentScan(
                descriptor: descriptor, path: path, firstSequence: firstSequence,
                sequenceCeiling: isNewest ? UInt64.max : firstSequences[index + 1],
                maxRecordBytes: limits.maxRecordBytes)
            scan.corruptRegions.forEach(report)
            var size = scan.fileSize
            if isNewest && scan.validEnd < size {
                // Appends return only after fdatasync, so bytes after the newest segment's last valid
                // record belong to an append that never finished: cut them so appends continue cleanly.
                try FileIO.truncate(descriptor, to: scan.validEnd, path: path)
                try FileIO.syncData(descriptor, path: path)
                size = scan.validEnd
            }
            segments.append(
                Segment(
                    firstSequence: firstSequence, name: name, path: path, size: size, records: scan.records,
                    lastSequence: scan.records.last?.sequence))
        }
    }

    private func loadState(declaredConsumers: [String]) throws {
        var persisted = PersistedState()
        var needsSave = true
        let (loaded, damaged) = try StateFile.load(openDirectory())
        for copy in damaged {
            if case .corrupt(let reason) = copy.problem {
                onEvent(.stateCopyRepaired(path: path(of: copy.name), .corrupt(reason)))
            } else {
                onEvent(.stateCopyRepaired(path: path(of: copy.name), .missing))
            }
        }
        switch loaded {
        case .present(let saved):
            persisted = saved
            needsSave = !damaged.isEmpty
        case .missing where segments.isEmpty:
            break
        case .missing:
            onEvent(.stateRecovered(path: path(of: StateFile.names[0]), .missing))
        case .corrupt(let reason):
            onEvent(.stateRecovered(path: path(of: StateFile.names[0]), .corrupt(reason)))
        }
        generation = persisted.generation
        positions = persisted.positions
        state = persisted.values
        droppedRecords = persisted.droppedRecords
        discardedThrough = persisted.discardedThrough
        // The segments carry the counter too, so losing the state file never reuses a number.
        let highestStored = segments.compactMap(\.lastSequence).max() ?? 0
        nextSequence = max(persisted.nextSequence, highestStored + 1, segments.last?.firstSequence ?? 1)
        let floor = discardedThrough
        for index in segments.indices {
            segments[index].records.removeFirst(Self.firstIndex(after: floor, in: segments[index].records))
        }
        for consumer in declaredConsumers where positions[consumer] == nil {
            positions[consumer] = discardedThrough
            needsSave = true
        }
        if needsSave { try saveState() }
    }

    // MARK: - Appending

    private func descriptorForAppend() throws -> Int32 {
        // An empty newest segment takes appends even after a failure: there is no tail to doubt,
        // and starting another would leave one empty file per failed append.
        if let newest = segments.last, !lastAppendFailed || newest.size == 0, newest.size < limits.segmentBytes {
            let descriptor = try openDirectory().openFile(newest.name, O_WRONLY)
            lastAppendFailed = false
            return descriptor
        }
        return try startSegment()
    }

    /// Starts a new, empty newest segment named after the next sequence number; returns it open
    /// for writing.
    @discardableResult
    private func startSegment() throws -> Int32 {
        let name = segmentName(firstSequence: nextSequence)
        let descriptor = try openDirectory().createFile(name)
        do {
            // The new file's directory entry must be durable before any record in it counts as appended.
            try openDirectory().sync()
        } catch {
            FileIO.close(descriptor)
            try? openDirectory().remove(name)
            throw error
        }
        segments.append(
            Segment(firstSequence: nextSequence, name: name, path: path(of: name), size: 0, records: [], lastSequence: nil))
        lastAppendFailed = false
        return descriptor
    }

    // MARK: - Bounds and deletion

    /// Every record at or below this is acknowledged by all known consumers or dropped; with no
    /// consumers, only dropped records count as settled.
    private var settledThrough: UInt64 {
        max(discardedThrough, positions.values.min() ?? 0)
    }

    /// Where `consumer` stands; a consumer seen for the first time is registered at the oldest record held.
    private func position(of consumer: String) -> UInt64 {
        if let acknowledged = positions[consumer] { return max(acknowledged, discardedThrough) }
        positions[consumer] = discardedThrough
        return discardedThrough
    }

    /// Deletes whole oldest segments until the bytes held plus `incomingBytes` fit the bound.
    @discardableResult
    private func dropOverByteLimit(incomingBytes: Int) throws -> UInt64 {
        var total = segments.reduce(incomingBytes) { $0 + $1.size }
        var doomed = 0
        var floor = discardedThrough
        // The newest segment stays: its name keeps the sequence counter even without the state file.
        while total > limits.maxTotalBytes && doomed < segments.count - 1 {
            total -= segments[doomed].size
            floor = max(floor, segments[doomed].coversThrough)
            doomed += 1
        }
        guard doomed > 0 else { return 0 }
        let dropped = try discard(through: floor, reason: .byteLimit)
        try deleteOldestSegments(doomed)
        return dropped
    }

    /// Drops records older than the age bound from the front of the queue. Only the front: records
    /// leave in sequence order, so one number (`discardedThrough`) describes every drop.
    @discardableResult
    private func dropExpired() throws -> UInt64 {
        guard let maxAgeSeconds = limits.maxAgeSeconds else { return 0 }
        let (cutoff, overflow) = clock().subtractingReportingOverflow(maxAgeSeconds)
        guard !overflow else { return 0 }
        let settled = settledThrough
        var floor = settled
        scan: for segment in segments {
            for record in segment.records[Self.firstIndex(after: settled, in: segment.records)...] {
                guard record.timestamp < cutoff else { break scan }
                floor = record.sequence
            }
        }
        guard floor > settled else { return 0 }
        let dropped = try discard(through: floor, reason: .ageLimit)
        try deleteCoveredSegments()
        return dropped
    }

    /// Moves the drop floor to `floor`, counts the records lost (those some consumer had not
    /// acknowledged) and saves the state before any file goes.
    private func discard(through floor: UInt64, reason: DropReason) throws -> UInt64 {
        guard floor > discardedThrough else { return 0 }
        let settled = settledThrough
        var dropped: UInt64 = 0
        for index in segments.indices {
            let gone = Self.firstIndex(after: floor, in: segments[index].records)
            let settledInSegment = Self.firstIndex(after: settled, in: segments[index].records)
            dropped += UInt64(max(0, gone - settledInSegment))
            segments[index].records.removeFirst(gone)
        }
        discardedThrough = floor
        droppedRecords += dropped
        try saveState()
        if dropped > 0 { onEvent(.recordsDropped(count: dropped, reason: reason)) }
        return dropped
    }

    /// Deletes the oldest segments whose every record is settled, never the newest.
    private func deleteCoveredSegments() throws {
        let settled = settledThrough
        var covered = 0
        while covered < segments.count - 1 && segments[covered].coversThrough <= settled {
            covered += 1
        }
        try deleteOldestSegments(covered)
    }

    private func deleteOldestSegments(_ count: Int) throws {
        guard count > 0 else { return }
        for _ in 0..<count {
            try openDirectory().remove(segments[0].name)
            segments.removeFirst()
        }
        try openDirectory().sync()
    }

    /// After a failed append (a full or failing disk), a newest segment whose every record is
    /// settled is freed too: an empty segment named after the next sequence number replaces it
    /// (creating a file takes no data blocks, so this works on a full disk) and keeps the counter
    /// on disk without the state file. While appends succeed the newest segment stays, so a busy
    /// queue does not create and delete a file per acknowledgement.
    private func freeSettledNewestSegment() throws {
        guard lastAppendFailed, let newest = segments.last, newest.size > 0, newest.coversThrough <= settledThrough else {
            return
        }
        FileIO.close(try startSegment())
        try deleteOldestSegments(segments.count - 1)
    }

    // MARK: - Helpers

    private func report(_ region: CorruptRegion) {
        corruptRegions += 1
        corruptBytes += region.length
        onEvent(.corruptionSkipped(region))
    }

    private func ensureOpen() throws {
        if isClosed { throw DurableQueueError.closed(path: directory) }
    }

    private func path(of name: String) -> String {
        directory + "/" + name
    }

    /// The open directory; only a closed queue has none, and every caller checked `ensureOpen`.
    private func openDirectory() throws -> QueueDirectory {
        guard let files else { throw DurableQueueError.closed(path: directory) }
        return files
    }

    private func segmentName(firstSequence: UInt64) -> String {
        let digits = String(firstSequence)
        let padding = String(repeating: "0", count: max(0, Self.segmentDigits - digits.count))
        return padding + digits + Self.segmentSuffix
    }

    private static func firstSequence(ofSegmentNamed name: String) -> UInt64? {
        guard name.utf8.count == segmentDigits + segmentSuffix.utf8.count, name.hasSuffix(segmentSuffix) else {
            return nil
        }
        let digits = name.prefix(segmentDigits)
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), let sequence = UInt64(digits), sequence > 0 else {
            return nil
        }
        return sequence
    }

    /// Index of the first record with a sequence above `sequence` (binary search).
    private static func firstIndex(after sequence: UInt64, in records: [RecordLocation]) -> Int {
        var low = 0
        var high = records.count
        while low < high {
            let middle = (low + high) / 2
            if records[middle].sequence <= sequence { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
