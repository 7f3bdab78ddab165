import Foundation
import XCTest

@testable import DurableQueue

final class DurableQueueTests: XCTestCase {
    func testRoundTripAcrossReopen() throws {
        let directory = temporaryQueueDirectory()
        let payloads: [[UInt8]] = [[], [1], Array("hello".utf8), samplePayload(7, size: 150)]
        do {
            let queue = try openQueue(directory)
            XCTAssertEqual(try queue.append(payloads, timestamp: fixedNow - 5), [1, 2, 3, 4])
            queue.close()
        }
        let log = EventLog()
        let queue = try openQueue(directory, log: log)
        let records = try queue.read(consumer: "zabbix-1", limit: 10)
        XCTAssertEqual(records.map(\.payload), payloads)
        XCTAssertEqual(records.map(\.sequence), [1, 2, 3, 4])
        XCTAssertEqual(records.map(\.timestamp), Array(repeating: fixedNow - 5, count: 4))
        XCTAssertEqual(log.events, [])
    }

    func testStateAndSequenceContinueAcrossReopen() throws {
        let directory = temporaryQueueDirectory()
        do {
            let queue = try openQueue(directory)
            XCTAssertEqual(try queue.append([[1], [2], [3]]), [1, 2, 3])
            queue.state["session"] = "token-abc"
            queue.state["next-id"] = "42"
            try queue.saveState()
            queue.close()
        }
        do {
            let queue = try openQueue(directory)
            XCTAssertEqual(queue.state, ["session": "token-abc", "next-id": "42"])
            XCTAssertEqual(try queue.append([[4]]), [4])
            XCTAssertEqual(try queue.append([[5]]), [5])
            queue.close()
        }
        let queue = try openQueue(directory)
        XCTAssertEqual(queue.stats.nextSequence, 6)
        XCTAssertEqual(try queue.read(consumer: "a", limit: 10).map(\.payload), [[1], [2], [3], [4], [5]])
    }

    func testSequenceContinuesAfterEverythingIsAcknowledgedAndTheStateFileIsLost() throws {
        let directory = temporaryQueueDirectory()
        do {
            let queue = try openQueue(directory)
            try appendSamples(queue, count: 30)
            XCTAssertGreaterThan(segmentFiles(in: directory).count, 3)
            try queue.acknowledge(consumer: "a", through: 30)
            XCTAssertEqual(segmentFiles(in: directory).count, 1, "only the newest segment stays")
            queue.close()
        }
        do {
            let queue = try openQueue(directory)
            XCTAssertEqual(try queue.read(consumer: "a", limit: 10), [])
            XCTAssertEqual(try queue.append([[31]]), [31])
            queue.close()
        }
        // Both copies of the state gone: the segments' names still carry the counter.
        try FileManager.default.removeItem(atPath: statePath(in: directory))
        try FileManager.default.removeItem(atPath: directory + "/state.copy")
        let log = EventLog()
        let queue = try openQueue(directory, log: log)
        XCTAssertEqual(log.stateRecoveries, [.missing])
        XCTAssertEqual(try queue.append([[32]]), [32])
    }

    func testTwoConsumersAtDifferentPositions() throws {
        let directory = temporaryQueueDirectory()
        let written: [UInt64: [UInt8]]
        do {
            let queue = try openQueue(directory, consumers: ["a", "b"])
            written = try appendSamples(queue, count: 10)
            XCTAssertEqual(try queue.read(consumer: "a", limit: 100).map(\.sequence), Array(1...10))
            try queue.acknowledge(consumer: "a", through: 7)
            XCTAssertEqual(try queue.read(consumer: "b", limit: 3).map(\.sequence), [1, 2, 3])
            try queue.acknowledge(consumer: "b", through: 3)
            XCTAssertEqual(queue.stats.pendingByConsumer, ["a": 3, "b": 7])
            queue.close()
        }
        let queue = try openQueue(directory)
        XCTAssertEqual(queue.stats.pendingByConsumer, ["a": 3, "b": 7])
        let forA = try queue.read(consumer: "a", limit: 100)
        XCTAssertEqual(forA.map(\.sequence), [8, 9, 10])
        XCTAssertEqual(forA.map(\.payload), [written[8]!, written[9]!, written[10]!])
        XCTAssertEqual(try queue.read(consumer: "b", limit: 100).map(\.sequence), Array(4...10))
        try queue.acknowledge(consumer: "a", through: 2)
        XCTAssertEqual(try queue.read(consumer: "a", limit: 100).map(\.sequence), [8, 9, 10], "no going back")
    }

    func testSegmentsAreDeletedOnlyOnceEveryConsumerAcknowledgedThem() throws {
        let directory = temporaryQueueDirectory()
        let queue = try openQueue(directory)
        try appendSamples(queue, count: 20)
        let segmentsAtStart = queue.stats.segmentCount
        XCTAssertEqual(segmentFiles(in: directory).count, segmentsAtStart)
        _ = try queue.read(consumer: "b", limit: 1)
        try queue.acknowledge(consumer: "a", through: 20)
        XCTAssertEqual(queue.stats.segmentCount, segmentsAtStart, "b still needs them")
        try queue.acknowledge(consumer: "b", through: 9)
        XCTAssertLessThan(queue.stats.segmentCount, segmentsAtStart)
        XCTAssertEqual(segmentFiles(in: directory).count, queue.stats.segmentCount)
        XCTAssertEqual(try queue.read(consumer: "b", limit: 100).map(\.sequence), Array(10...20))
        try queue.acknowledge(consumer: "b", through: 20)
        XCTAssertEqual(segmentFiles(in: directory).count, 1)
        XCTAssertEqual(queue.stats.droppedRecords, 0)
        try queue.removeConsumer("a")
        XCTAssertEqual(queue.stats.pendingByConsumer, ["b": 0])
    }

    func testDeclaredConsumerHoldsSegmentsBeforeItsFirstRead() throws {
        let directory = temporaryQueueDirectory()
        let queue = try openQueue(directory, consumers: ["a", "b"])
        try appendSamples(queue, count: 20)
        let segmentsAtStart = segmentFiles(in: directory).count
        try queue.acknowledge(consumer: "a", through: 20)
        XCTAssertEqual(segmentFiles(in: directory).count, segmentsAtStart)
        XCTAssertEqual(try queue.read(consumer: "b", limit: 100).map(\.sequence), Array(1...20))
    }

    func testByteBoundDeletesOldestSegmentsAndCountsUnacknowledgedDrops() throws {
        let directory = temporaryQueueDirectory()
        let limits = QueueLimits(segmentBytes: 512, maxTotalBytes: 2048, maxRecordBytes: 200, maxAgeSeconds: nil)
        let log = EventLog()
        let written: [UInt64: [UInt8]]
        let dropped: UInt64
        do {
            let queue = try openQueue(directory, limits: limits, log: log)
            var all = try appendSamples(queue, count: 2, size: 100)
            _ = try queue.read(consumer: "a", limit: 10)
            try queue.acknowledge(consumer: "a", through: 2)
            for index in 2..<40 {
                let payload = samplePayload(index, size: 100)
                all[try queue.append([payload])[0]] = payload
                XCTAssertLessThanOrEqual(queue.stats.totalBytes, limits.maxTotalBytes)
            }
            written = all
            let records = try queue.read(consumer: "a", limit: 100)
            let firstKept = try XCTUnwrap(records.first?.sequence)
            XCTAssertGreaterThan(firstKept, 3)
            XCTAssertEqual(records.map(\.sequence), Array(firstKept...40))
            XCTAssertEqual(records.map(\.payload), records.map { written[$0.sequence]! })
            dropped = firstKept - 1 - 2
            XCTAssertEqual(queue.stats.droppedRecords, dropped, "records 1 and 2 were acknowledged, not lost")
            XCTAssertEqual(log.drops.reduce(0) { $0 + $1.count }, dropped)
            XCTAssertTrue(log.drops.allSatisfy { $0.reason == .byteLimit })
            XCTAssertEqual(segmentFiles(in: directory).count, queue.stats.segmentCount)
            queue.close()
        }
        let reopenedLog = EventLog()
        let queue = try openQueue(directory, limits: limits, log: reopenedLog)
        XCTAssertEqual(queue.stats.droppedRecords, dropped)
        XCTAssertEqual(reopenedLog.events, [])
        XCTAssertEqual(try queue.read(consumer: "a", limit: 100).last?.sequence, 40)
    }

    func testAgeBoundDropsOldRecordsOnceAndCountsThem() throws {
        let directory = temporaryQueueDirectory()
        let limits = QueueLimits(segmentBytes: 256, maxTotalBytes: 1 << 20, maxRecordBytes: 200, maxAgeSeconds: 100)
        let clock = ManualClock(1009)
        do {
            let log = EventLog()
            let queue = try openQueue(directory, limits: limits, log: log, now: { clock.now })
            for second in Int64(1000)...1009 {
                try queue.append([samplePayload(Int(second))], timestamp: second)
            }
            clock.now = 1105
            XCTAssertEqual(try queue.read(consumer: "a", limit: 100).map(\.sequence), Array(6...10))
            XCTAssertEqual(queue.stats.droppedRecords, 5)
            XCTAssertEqual(log.drops.map(\.count), [5])
            XCTAssertEqual(log.drops.map(\.reason), [.ageLimit])
            queue.close()
        }
        let log = EventLog()
        let queue = try openQueue(directory, limits: limits, log: log, now: { clock.now })
        XCTAssertEqual(log.events, [], "drops are counted once, not again on reopen")
        XCTAssertEqual(queue.stats.droppedRecords, 5)
        XCTAssertEqual(try queue.read(consumer: "a", limit: 100).map(\.sequence), Array(6...10))
        try queue.acknowledge(consumer: "a", through: 7)
        clock.now = 2000
        XCTAssertEqual(try queue.enforceLimits(), 3, "8, 9 and 10 were not acknowledged")
        XCTAssertEqual(queue.stats.droppedRecords, 8)
        XCTAssertEqual(try queue.read(consumer: "a", limit: 100), [])
        XCTAssertEqual(try queue.append([[1]]), [11])
    }

    func testOversizedRecordsAndBatchesAreRefused() throws {
        let queue = try openQueue(temporaryQueueDirectory())
        XCTAssertThrowsError(try queue.append([[UInt8](repeating: 0, count: 201)])) { error in
            XCTAssertEqual(error as? DurableQueueError, .recordTooLarge(bytes: 201, limit: 200))
        }
        let batch = [[UInt8]](repeating: [UInt8](repeating: 1, count: 200), count: 6000)
        XCTAssertThrowsError(try queue.append(batch)) { error in
            guard case .batchTooLarge = error as? DurableQueueError else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try queue.append([[1]]), [1], "refusals consume no sequence numbers")
    }

    func testInvalidLimitsAreRefused() {
        let directory = temporaryQueueDirectory()
        for limits in [
            QueueLimits(segmentBytes: 10),
            QueueLimits(segmentBytes: 1 << 20, maxTotalBytes: 1 << 20),
            QueueLimits(segmentBytes: 1024, maxTotalBytes: 4096, maxRecordBytes: 4096),
            QueueLimits(maxAgeSeconds: 0),
        ] {
            XCTAssertThrowsError(try DurableQueue(directory: directory, limits: limits)) { error in
                guard case .invalidLimits = error as? DurableQueueError else { return XCTFail("\(error)") }
            }
        }
    }

    func testSecondQueueOnTheSameDirectoryIsRefusedUntilTheFirstCloses() throws {
        let directory = temporaryQueueDirectory()
        let first = try openQueue(directory)
        XCTAssertThrowsError(try openQueue(directory)) { error in
            XCTAssertEqual(error as? DurableQueueError, .directoryInUse(path: directory))
        }
        first.close()
        XCTAssertThrowsError(try first.append([[1]])) { error in
            XCTAssertEqual(error as? DurableQueueError, .closed(path: directory))
        }
        XCTAssertNoThrow(try openQueue(directory))
    }

    func testFailedOpenReportsTheErrorAndReleasesTheLock() throws {
        let directory = temporaryQueueDirectory()
        try openQueue(directory).close()
        let state = statePath(in: directory)
        try FileManager.default.removeItem(atPath: state)
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: false)
        XCTAssertThrowsError(try openQueue(directory)) { error in
            XCTAssertEqual(error as? DurableQueueError, .system(operation: "pread", path: state, errno: EISDIR))
        }
        try FileManager.default.removeItem(atPath: state)
        XCTAssertNoThrow(try openQueue(directory))
    }

    func testDirectoryIsCreatedWithMode0700() throws {
        let directory = temporaryQueueDirectory()
        _ = try openQueue(directory)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o700)
    }

    func testSystemErrorsNameThePathAndErrno() {
        let directory = "/nonexistent-\(UUID().uuidString)/queue"
        XCTAssertThrowsError(try DurableQueue(directory: directory)) { error in
            XCTAssertEqual(error as? DurableQueueError, .system(operation: "mkdir", path: directory, errno: ENOENT))
            XCTAssertEqual("\(error)", "mkdir \(directory): ENOENT (No such file or directory)")
        }
    }

    func testAcknowledgingBeyondTheLastAppendedRecordIsRefused() throws {
        let queue = try openQueue(temporaryQueueDirectory())
        try queue.append([[1], [2]])
        XCTAssertThrowsError(try queue.acknowledge(consumer: "a", through: 3)) { error in
            XCTAssertEqual(
                error as? DurableQueueError, .acknowledgementBeyondEnd(consumer: "a", sequence: 3, lastAppended: 2))
        }
    }
}
