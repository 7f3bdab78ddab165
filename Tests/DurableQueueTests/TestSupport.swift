import Foundation
import TestSupport
import XCTest

@testable import DurableQueue

/// The clock every test queue uses unless a test moves time itself.
let fixedNow: Int64 = 1_700_000_000

/// Limits small enough that a few records fill several segments.
let smallSegments = QueueLimits(segmentBytes: 256, maxTotalBytes: 1 << 20, maxRecordBytes: 200, maxAgeSeconds: nil)

extension XCTestCase {
    /// A queue directory path (not yet created) inside a fresh temporary folder removed after the test.
    func temporaryQueueDirectory() -> String {
        let parent = FileManager.default.temporaryDirectory
            .appendingPathComponent("durable-queue-tests-\(UUID().uuidString)").path
        XCTAssertNoThrow(try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: parent) }
        return parent + "/queue"
    }
}

/// Collects what a queue reports.
final class EventLog {
    private(set) var events: [QueueEvent] = []

    func record(_ event: QueueEvent) {
        events.append(event)
    }

    var corruptRegions: [CorruptRegion] {
        events.compactMap { if case .corruptionSkipped(let region) = $0 { region } else { nil } }
    }

    var stateRecoveries: [StateRecovery] {
        events.compactMap { if case .stateRecovered(_, let recovery) = $0 { recovery } else { nil } }
    }

    var drops: [(count: UInt64, reason: DropReason)] {
        events.compactMap { if case .recordsDropped(let count, let reason) = $0 { (count, reason) } else { nil } }
    }
}

/// Holds "now" for a queue's clock so a test can move time.
final class ManualClock {
    var now: Int64

    init(_ now: Int64) {
        self.now = now
    }
}

func openQueue(
    _ directory: String, limits: QueueLimits = smallSegments, consumers: [String] = [], log: EventLog = EventLog(),
    now: @escaping () -> Int64 = { fixedNow }
) throws -> DurableQueue {
    try DurableQueue(directory: directory, limits: limits, consumers: consumers, clock: now, onEvent: log.record)
}

/// Payloads that differ in size and content, so a record mixed up with another is noticed.
func samplePayload(_ index: Int, size: Int = 40) -> [UInt8] {
    var generator = SeededGenerator(seed: UInt64(index) &+ 1)
    return randomBytes(size, using: &generator)
}

func segmentFiles(in directory: String) -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return names.filter { $0.hasSuffix(".seg") }.sorted().map { directory + "/" + $0 }
}

func statePath(in directory: String) -> String {
    directory + "/state"
}

func readBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// Replaces a file's contents without fsync (Foundation's Data.write syncs, which makes the
/// byte-flip test crawl on a busy disk; tests need no durability).
func writeBytes(_ bytes: [UInt8], to path: String) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { throw DurableQueueError.system(operation: "open", path: path, errno: errno) }
    defer { close(descriptor) }
    let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    guard written == bytes.count else { throw DurableQueueError.system(operation: "write", path: path, errno: errno) }
}

/// Where each record of an undamaged segment file sits, read with the documented format.
struct FrameSpan {
    var offset: Int
    var frameLength: Int
    var sequence: UInt64

    var range: Range<Int> { offset..<offset + frameLength }
}

func frameSpans(of segment: [UInt8]) -> [FrameSpan] {
    var spans: [FrameSpan] = []
    var offset = 0
    while offset + RecordFrame.headerSize <= segment.count {
        let header = segment[offset..<offset + RecordFrame.headerSize]
        let length = Int(header.loadLittleEndian(UInt32.self, at: 4))
        let sequence = header.loadLittleEndian(UInt64.self, at: 8)
        spans.append(FrameSpan(offset: offset, frameLength: RecordFrame.headerSize + length, sequence: sequence))
        offset += RecordFrame.headerSize + length
    }
    return spans
}

/// Appends `count` sample payloads one call each and returns them by sequence number.
@discardableResult
func appendSamples(_ queue: DurableQueue, count: Int, size: Int = 40) throws -> [UInt64: [UInt8]] {
    var written: [UInt64: [UInt8]] = [:]
    for index in 0..<count {
        let payload = samplePayload(index, size: size)
        let sequences = try queue.append([payload])
        written[sequences[0]] = payload
    }
    return written
}
