import Foundation
import TestSupport
import XCTest

@testable import DurableQueue

final class StateRecoveryTests: XCTestCase {
    /// Ten records; consumer a acknowledged 5, b acknowledged 2; a token in the key-value state.
    private func queueWithSavedState() throws -> String {
        let directory = temporaryQueueDirectory()
        let queue = try openQueue(directory, consumers: ["a", "b"])
        try appendSamples(queue, count: 10)
        queue.state["token"] = "abc"
        try queue.acknowledge(consumer: "a", through: 5)
        try queue.acknowledge(consumer: "b", through: 2)
        queue.close()
        return directory
    }

    func testStateFileRoundTripsThroughItsEncoding() {
        let state = PersistedState(
            generation: 9, nextSequence: 77, discardedThrough: 12, droppedRecords: 3, positions: ["a": 40, "ü": 13],
            values: ["token": "abc", "empty": "", "newline": "x\ny"])
        XCTAssertEqual(StateFile.decode(StateFile.encode(state)), .present(state))
    }

    func testCorruptStateFileIsReportedAndPositionsFallBackToTheOldestRecord() throws {
        var generator = SeededGenerator(seed: 5)
        let corruptions: [(name: String, damage: ([UInt8]) -> [UInt8])] = [
            ("garbage", { _ in randomBytes(100, using: &generator) }),
            ("empty", { _ in [] }),
            ("truncated", { Array($0.dropLast(3)) }),
            ("flipped byte", { var bytes = $0; bytes[20] ^= 0x01; return bytes }),
            ("flipped length", { var bytes = $0; bytes[4] ^= 0x01; return bytes }),
            ("huge count", { bytes in
                // A well-checksummed body whose consumer count promises more than it holds.
                var body = [UInt8](repeating: 0, count: 24)
                body.appendLittleEndian(UInt32.max)
                var file: [UInt8] = Array(bytes[..<4])
                file.appendLittleEndian(UInt32(body.count))
                file.appendLittleEndian(CRC32.checksum(body))
                return file + body
            }),
        ]
        for (name, damage) in corruptions {
            let directory = try queueWithSavedState()
            // Both copies damaged: nothing whole is left to recover from.
            for path in [statePath(in: directory), directory + "/state.copy"] {
                try writeBytes(damage(try readBytes(path)), to: path)
            }

            let log = EventLog()
            let queue = try openQueue(directory, consumers: ["a", "b"], log: log)
            XCTAssertEqual(log.stateRecoveries.count, 1, name)
            guard case .corrupt = log.stateRecoveries.first else { XCTFail(name); continue }
            XCTAssertEqual(queue.state, [:], name)
            XCTAssertEqual(try queue.read(consumer: "a", limit: 100).map(\.sequence), Array(1...10), name)
            XCTAssertEqual(try queue.append([[1]]), [11], name)
            XCTAssertEqual(queue.stats.pendingByConsumer, ["a": 11, "b": 11], name)
            try queue.acknowledge(consumer: "a", through: 4)
            queue.close()

            let reopenedLog = EventLog()
            let reopened = try openQueue(directory, log: reopenedLog)
            XCTAssertEqual(reopenedLog.events, [], "\(name): the state file was replaced")
            XCTAssertEqual(try reopened.read(consumer: "a", limit: 1).map(\.sequence), [5], name)
        }
    }

    func testMissingStateFilesAreReported() throws {
        let directory = try queueWithSavedState()
        try FileManager.default.removeItem(atPath: statePath(in: directory))
        try FileManager.default.removeItem(atPath: directory + "/state.copy")
        let log = EventLog()
        let queue = try openQueue(directory, log: log)
        XCTAssertEqual(log.events, [.stateRecovered(path: statePath(in: directory), .missing)])
        XCTAssertEqual(try queue.read(consumer: "b", limit: 100).map(\.sequence), Array(1...10))
        XCTAssertEqual(try queue.append([[1]]), [11])
    }

    func testSavedStateSurvivesAndALeftoverTemporaryFileIsIgnored() throws {
        let directory = try queueWithSavedState()
        try writeBytes([1, 2, 3], to: directory + "/state.tmp")
        let log = EventLog()
        let queue = try openQueue(directory, log: log)
        XCTAssertEqual(log.events, [])
        XCTAssertEqual(queue.state, ["token": "abc"])
        XCTAssertEqual(queue.stats.pendingByConsumer, ["a": 5, "b": 8])
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/state.tmp"))
    }
}

extension StateRecoveryTests {
    /// Buffers written before the state gained its generation and second copy still open whole.
    func testFirstVersionStateFileIsStillRead() {
        let state = PersistedState(nextSequence: 5, discardedThrough: 1, droppedRecords: 0, positions: ["a": 3], values: ["k": "v"])
        let current = StateFile.encode(state)
        let body = Array(current[20...])  // without magic, length, checksum and generation
        var firstVersion: [UInt8] = [0xE2, 0x44, 0x51, 0x53]
        firstVersion.appendLittleEndian(UInt32(body.count))
        firstVersion.appendLittleEndian(CRC32.checksum(body))
        XCTAssertEqual(StateFile.decode(firstVersion + body), .present(state))
    }
}
