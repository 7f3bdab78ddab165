import Foundation
import TestSupport
import XCTest
import Posix

@testable import DurableQueue

/// Children append in a loop and are killed with SIGKILL at random moments; every record a child
/// reported as appended must be there, intact, after the last kill.
final class KillRecoveryTests: XCTestCase {
    private let limits = QueueLimits(segmentBytes: 4096, maxTotalBytes: 64 << 20, maxRecordBytes: 1024, maxAgeSeconds: nil)
    /// One report on the pipe: sequence then tag, little-endian.
    private static let reportBytes = 16

    func testEveryReportedAppendSurvivesKillDashNine() throws {
        let directory = temporaryQueueDirectory()
        try warmUp()
        var generator = SeededGenerator(seed: 0xC0FFEE)
        var reports: [(sequence: UInt64, tag: UInt64)] = []
        var killedMidRun = 0
        for round in 0..<25 {
            var ends: [Int32] = [-1, -1]
            XCTAssertEqual(pipe(&ends), 0)
            let child = fork()
            if child == 0 {
                Glibc.close(ends[0])
                appendUntilKilled(directory: directory, round: UInt64(round), reportTo: ends[1])
            }
            Glibc.close(ends[1])
            XCTAssertGreaterThan(child, 0, "fork: \(describeErrno(errno))")
            usleep(UInt32.random(in: 2_000...60_000, using: &generator))
            kill(child, SIGKILL)
            var status: Int32 = 0
            XCTAssertEqual(waitpid(child, &status, 0), child)
            // Killed by SIGKILL, or (if the parent was slow) finished its bounded loop cleanly.
            XCTAssertTrue(status & 0x7F == SIGKILL || status == 0, "round \(round): child status \(status)")
            if status & 0x7F == SIGKILL { killedMidRun += 1 }
            reports += readReports(from: ends[0])
            Glibc.close(ends[0])
        }
        XCTAssertGreaterThanOrEqual(killedMidRun, 20)
        XCTAssertGreaterThan(reports.count, 25, "children appended too little to mean anything")
        XCTAssertEqual(reports.map(\.sequence), reports.map(\.sequence).sorted(), "sequences rise across restarts")

        let log = EventLog()
        let queue = try openQueue(directory, limits: limits, log: log)
        let records = try queue.read(consumer: "verify", limit: 1_000_000)
        for record in records {
            let tag = record.payload.count >= 8 ? record.payload[..<8].loadLittleEndian(UInt64.self, at: 0) : 0
            XCTAssertEqual(record.payload, Self.payload(tag: tag), "record \(record.sequence) is damaged")
        }
        let tagsBySequence = Dictionary(uniqueKeysWithValues: records.map { ($0.sequence, $0.payload) })
        for report in reports {
            XCTAssertEqual(tagsBySequence[report.sequence], Self.payload(tag: report.tag), "record \(report.sequence) lost")
        }
        XCTAssertEqual(records.map(\.sequence), records.map(\.sequence).sorted())
        XCTAssertTrue(log.stateRecoveries.isEmpty)
    }

    /// Runs the queue's code paths once in this process, so a forked child needs no lazy runtime
    /// set-up that another thread might have held a lock over at fork time.
    private func warmUp() throws {
        let queue = try openQueue(temporaryQueueDirectory(), limits: limits)
        try queue.append([Self.payload(tag: 1)], timestamp: fixedNow)
        _ = try queue.read(consumer: "warm-up", limit: 1)
        try queue.acknowledge(consumer: "warm-up", through: 1)
        queue.close()
        _ = readReports(from: -1)
    }

    /// The child: appends batches of 1 to 3 records and reports each after `append` returns. Never returns.
    private func appendUntilKilled(directory: String, round: UInt64, reportTo descriptor: Int32) -> Never {
        do {
            let queue = try DurableQueue(directory: directory, limits: limits, clock: { fixedNow })
            for counter in UInt64(0)..<100_000 {
                let tags = (0..<counter % 3 + 1).map { round << 40 | counter << 2 | $0 }
                let sequences = try queue.append(tags.map(Self.payload), timestamp: fixedNow)
                var report: [UInt8] = []
                for (sequence, tag) in zip(sequences, tags) {
                    report.appendLittleEndian(sequence)
                    report.appendLittleEndian(tag)
                }
                // At most 48 bytes: below PIPE_BUF, so the write is atomic and never partial.
                guard report.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == report.count else {
                    _exit(4)
                }
            }
            _exit(0)
        } catch {
            _exit(3)
        }
    }

    private func readReports(from descriptor: Int32) -> [(sequence: UInt64, tag: UInt64)] {
        guard descriptor >= 0 else { return [] }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        // The child is dead and the parent closed its write end, so this reaches end of file.
        for _ in 0..<1_000_000 {
            let got = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if got == -1 && errno == EINTR { continue }
            guard got > 0 else { break }
            bytes += chunk[..<got]
        }
        XCTAssertEqual(bytes.count % Self.reportBytes, 0)
        return stride(from: 0, to: bytes.count - bytes.count % Self.reportBytes, by: Self.reportBytes).map { start in
            let report = bytes[start..<start + Self.reportBytes]
            return (report.loadLittleEndian(UInt64.self, at: 0), report.loadLittleEndian(UInt64.self, at: 8))
        }
    }

    /// The tag followed by up to 300 bytes derived from it, so any record can be checked on its own.
    private static func payload(tag: UInt64) -> [UInt8] {
        var generator = SeededGenerator(seed: tag)
        var payload: [UInt8] = []
        payload.appendLittleEndian(tag)
        return payload + randomBytes(Int(tag % 301), using: &generator)
    }
}
