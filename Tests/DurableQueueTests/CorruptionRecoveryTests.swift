import Foundation
import TestSupport
import XCTest

@testable import DurableQueue

final class CorruptionRecoveryTests: XCTestCase {
    private let oneSegment = QueueLimits(segmentBytes: 1 << 16, maxTotalBytes: 1 << 20, maxRecordBytes: 200, maxAgeSeconds: nil)

    /// Writes five 40-byte records into one segment and returns the segment's path and the payloads.
    private func fiveRecordSegment(_ directory: String) throws -> (segment: String, payloads: [[UInt8]]) {
        let queue = try openQueue(directory, limits: oneSegment)
        let written = try appendSamples(queue, count: 5)
        queue.close()
        let segments = segmentFiles(in: directory)
        XCTAssertEqual(segments.count, 1)
        return (segments[0], (1...5).map { written[$0]! })
    }

    func testTornLastRecordAtEveryOffsetLosesOnlyThatRecord() throws {
        let directory = temporaryQueueDirectory()
        let (segment, payloads) = try fiveRecordSegment(directory)
        let original = try readBytes(segment)
        let originalState = try readBytes(statePath(in: directory))
        let last = try XCTUnwrap(frameSpans(of: original).last)
        for cut in last.offset + 1..<last.range.upperBound {
            try writeBytes(Array(original[..<cut]), to: segment)
            try writeBytes(originalState, to: statePath(in: directory))
            do {
                let log = EventLog()
                let queue = try openQueue(directory, limits: oneSegment, log: log)
                XCTAssertEqual(
                    log.corruptRegions,
                    [CorruptRegion(file: segment, offset: last.offset, length: cut - last.offset, reason: .truncated)],
                    "cut at \(cut)")
                XCTAssertEqual(try queue.read(consumer: "a", limit: 10).map(\.payload), Array(payloads.prefix(4)))
                XCTAssertEqual(try readBytes(segment).count, last.offset, "the torn tail is cut off")
                XCTAssertEqual(try queue.append([[0xAB]]), [5])
                queue.close()
            }
            let log = EventLog()
            let queue = try openQueue(directory, limits: oneSegment, log: log)
            XCTAssertEqual(log.events, [], "cut at \(cut): nothing left to skip")
            XCTAssertEqual(try queue.read(consumer: "a", limit: 10).map(\.payload), payloads.prefix(4) + [[0xAB]])
            queue.close()
        }
    }

    func testMiddleRecordTornWithLaterRecordsAfterIt() throws {
        let directory = temporaryQueueDirectory()
        let (segment, payloads) = try fiveRecordSegment(directory)
        let original = try readBytes(segment)
        let third = frameSpans(of: original)[2]
        let tornEnd = third.offset + third.frameLength / 2
        try writeBytes(Array(original[..<tornEnd] + original[third.range.upperBound...]), to: segment)

        let log = EventLog()
        let queue = try openQueue(directory, limits: oneSegment, log: log)
        XCTAssertEqual(
            log.corruptRegions,
            [CorruptRegion(file: segment, offset: third.offset, length: tornEnd - third.offset, reason: .checksumMismatch)])
        let records = try queue.read(consumer: "a", limit: 10)
        XCTAssertEqual(records.map(\.sequence), [1, 2, 4, 5])
        XCTAssertEqual(records.map(\.payload), [payloads[0], payloads[1], payloads[3], payloads[4]])
        XCTAssertEqual(queue.stats.corruptRegions, 1)
        XCTAssertEqual(queue.stats.corruptBytes, tornEnd - third.offset)
    }

    func testOlderSegmentTruncatedMidRecordHidesNothingInLaterSegments() throws {
        let directory = temporaryQueueDirectory()
        let written: [UInt64: [UInt8]]
        do {
            let queue = try openQueue(directory)
            written = try appendSamples(queue, count: 12)
            queue.close()
        }
        let segments = segmentFiles(in: directory)
        XCTAssertEqual(segments.count, 3)
        let first = try readBytes(segments[0])
        let third = frameSpans(of: first)[2]
        let cut = third.offset + 30
        try writeBytes(Array(first[..<cut]), to: segments[0])

        let log = EventLog()
        let queue = try openQueue(directory, log: log)
        XCTAssertEqual(
            log.corruptRegions, [CorruptRegion(file: segments[0], offset: third.offset, length: 30, reason: .truncated)])
        let records = try queue.read(consumer: "a", limit: 100)
        XCTAssertEqual(records.map(\.sequence), [1, 2] + Array(5...12))
        XCTAssertEqual(records.map(\.payload), records.map { written[$0.sequence]! })
        XCTAssertEqual(try readBytes(segments[0]).count, cut, "only the newest segment's tail is ever cut")
    }

    func testGarbageAtTheStartOfSegmentsIsSkipped() throws {
        let directory = temporaryQueueDirectory()
        let written: [UInt64: [UInt8]]
        do {
            let queue = try openQueue(directory)
            written = try appendSamples(queue, count: 10)
            queue.close()
        }
        let segments = segmentFiles(in: directory)
        var generator = SeededGenerator(seed: 99)
        // Garbage with a false magic inside, so resynchronisation has a candidate to refuse.
        let garbage = [0x00] + randomBytes(36, using: &generator) + RecordFrame.magic + randomBytes(24, using: &generator)
        for segment in [segments[0], segments[segments.count - 1]] {
            try writeBytes(garbage + (try readBytes(segment)), to: segment)
        }

        let log = EventLog()
        let queue = try openQueue(directory, log: log)
        XCTAssertEqual(
            log.corruptRegions,
            [segments[0], segments[segments.count - 1]].map {
                CorruptRegion(file: $0, offset: 0, length: garbage.count, reason: .badMagic)
            })
        let records = try queue.read(consumer: "a", limit: 100)
        XCTAssertEqual(records.map(\.sequence), Array(1...10))
        XCTAssertEqual(records.map(\.payload), records.map { written[$0.sequence]! })
        XCTAssertEqual(try queue.append([[1]]), [11])
    }

    func testDeclaredLengthOverTheLimitIsSkippedWithoutReadingIt() throws {
        let directory = temporaryQueueDirectory()
        let (segment, payloads) = try fiveRecordSegment(directory)
        var header = RecordFrame.magic
        header.appendLittleEndian(UInt32(0xFFFF_FFF0))
        header += [UInt8](repeating: 0, count: RecordFrame.headerSize - header.count)
        try writeBytes(header + (try readBytes(segment)), to: segment)

        let log = EventLog()
        let queue = try openQueue(directory, limits: oneSegment, log: log)
        XCTAssertEqual(
            log.corruptRegions,
            [CorruptRegion(file: segment, offset: 0, length: RecordFrame.headerSize, reason: .lengthOverLimit)])
        XCTAssertEqual(try queue.read(consumer: "a", limit: 10).map(\.payload), payloads)
    }

    func testRecordDamagedAfterOpeningIsSkippedWhenRead() throws {
        let directory = temporaryQueueDirectory()
        let log = EventLog()
        let queue = try openQueue(directory, limits: oneSegment, log: log)
        let written = try appendSamples(queue, count: 5)
        let segment = segmentFiles(in: directory)[0]
        var bytes = try readBytes(segment)
        let third = frameSpans(of: bytes)[2]
        bytes[third.offset + RecordFrame.headerSize + 3] ^= 0x10
        try writeBytes(bytes, to: segment)

        let records = try queue.read(consumer: "a", limit: 10)
        XCTAssertEqual(records.map(\.sequence), [1, 2, 4, 5])
        XCTAssertEqual(records.map(\.payload), records.map { written[$0.sequence]! })
        XCTAssertEqual(
            log.corruptRegions,
            [CorruptRegion(file: segment, offset: third.offset, length: third.frameLength, reason: .checksumMismatch)])
    }

    func testRandomByteFlipsNeverCrashOrReturnAlteredPayloads() throws {
        let directory = temporaryQueueDirectory()
        var generator = SeededGenerator(seed: 0xF1195)
        var written: [UInt64: [UInt8]] = [:]
        do {
            let queue = try openQueue(directory)
            for _ in 0..<80 {
                let payload = randomBytes(Int.random(in: 0...120, using: &generator), using: &generator)
                written[try queue.append([payload])[0]] = payload
            }
            queue.close()
        }
        let segments = segmentFiles(in: directory)
        XCTAssertGreaterThan(segments.count, 10)
        let originals = try segments.map(readBytes)
        let originalState = try readBytes(statePath(in: directory))
        let spans = originals.map(frameSpans)

        for trial in 0..<400 {
            var damaged = originals
            var flipped = [Set<Int>](repeating: [], count: segments.count)
            for _ in 0..<Int.random(in: 1...6, using: &generator) {
                let file = Int.random(in: segments.indices, using: &generator)
                let offset = Int.random(in: damaged[file].indices, using: &generator)
                damaged[file][offset] ^= UInt8.random(in: 1...255, using: &generator)
                flipped[file].insert(offset)
            }
            for (segment, bytes) in zip(segments, damaged) { try writeBytes(bytes, to: segment) }
            try writeBytes(originalState, to: statePath(in: directory))

            let log = EventLog()
            let queue = try openQueue(directory, log: log)
            let records = try queue.read(consumer: "a", limit: 1000)
            queue.close()

            for record in records {
                XCTAssertEqual(record.payload, written[record.sequence], "trial \(trial): altered payload returned")
            }
            let returned = records.map(\.sequence)
            XCTAssertEqual(returned, Array(Set(returned)).sorted(), "trial \(trial): order")
            var untouched: Set<UInt64> = []
            for (file, fileSpans) in spans.enumerated() {
                for span in fileSpans where !flipped[file].contains(where: span.range.contains) {
                    untouched.insert(span.sequence)
                }
            }
            XCTAssertTrue(untouched.isSubset(of: Set(returned)), "trial \(trial): an undamaged record was lost")
            XCTAssertFalse(log.corruptRegions.isEmpty, "trial \(trial): damage went unreported")
        }
    }
}
