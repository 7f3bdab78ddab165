import Foundation
import XCTest
@testable import SocketStats

final class ProcNetParserTests: XCTestCase {
    /// Tables and `ss -Htan` / `ss -Huan` captured at the same moment in a namespace holding
    /// LISTEN, ESTAB, TIME-WAIT, FIN-WAIT-2, CLOSE-WAIT and UDP sockets over IPv4 and IPv6.
    static let mixed = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/mixed").path

    func testFixtureCountsEqualSSCapturedWithIt() throws {
        var counts = SocketCounts()
        try ProcNetCollector.collect(into: &counts, directory: Self.mixed)
        let expected = try SSCapture.counts(tan: Self.mixed + "/ss-tan.txt", uan: Self.mixed + "/ss-uan.txt")
        XCTAssertEqual(counts, expected)
        // The capture holds each of these; a parser that mixed up columns would not see them.
        XCTAssertEqual(counts.tcp[.listen], 17)
        XCTAssertEqual(counts.tcp[.timeWait], 7)
        XCTAssertEqual(counts.tcp4[.closeWait], 3)
        XCTAssertEqual(counts.tcp6[.finWait2], 2)
        XCTAssertEqual(counts.udp.unconn, 9)
        XCTAssertEqual(counts.udp6.established, 1)
    }

    func testAnyChunkingGivesTheSameCounts() throws {
        let table = try Array(Data(contentsOf: URL(fileURLWithPath: Self.mixed + "/tcp6")))
        let whole = try parse(table, isIPv6: true, chunkSizes: [table.count])
        for sizes in [[1], [7], [150, 1, 3], [4096]] {
            XCTAssertEqual(try parse(table, isIPv6: true, chunkSizes: sizes), whole, "chunk sizes \(sizes)")
        }
        XCTAssertEqual(whole.tcp6.total, 18)
    }

    func testLastLineWithoutNewlineCounts() throws {
        let text = Self.header + "\n" + Self.listenLine
        XCTAssertEqual(try parse(Array(text.utf8)).tcp4[.listen], 1)
    }

    func testEmptyFileIsAnError() {
        XCTAssertThrowsError(try parse([])) { error in
            XCTAssertEqual((error as? ProcNetParseError)?.line, 0)
            XCTAssertTrue("\(error)".contains("empty file"), "\(error)")
        }
    }

    func testHeaderOnlyIsZeroSockets() throws {
        XCTAssertEqual(try parse(Array((Self.header + "\n").utf8)), SocketCounts())
    }

    func testWrongHeaderIsRejected() {
        XCTAssertThrowsError(try parse(Array("Inter-|   Receive\n".utf8))) { error in
            XCTAssertEqual((error as? ProcNetParseError)?.line, 1)
        }
    }

    func testLineCutMidwayNamesItsLine() {
        let cut = String(Self.listenLine.prefix(40))
        let text = [Self.header, Self.listenLine, cut].joined(separator: "\n") + "\n"
        XCTAssertThrowsError(try parse(Array(text.utf8))) { error in
            XCTAssertEqual((error as? ProcNetParseError)?.line, 3)
        }
    }

    func testMalformedFieldsAreRejected() {
        let bad = [
            Self.listenLine.replacingOccurrences(of: " 0A ", with: " ZZ "),
            Self.listenLine.replacingOccurrences(of: "0100007F:1F90", with: "0100007F-1F90"),
            Self.listenLine.replacingOccurrences(of: "   0: ", with: "   0 "),
            Self.listenLine.replacingOccurrences(of: "00000000:00000000", with: "00000000"),
            String(repeating: "x", count: 600),
        ]
        for line in bad {
            let text = Self.header + "\n" + line + "\n"
            XCTAssertThrowsError(try parse(Array(text.utf8)), line) { error in
                XCTAssertEqual((error as? ProcNetParseError)?.line, 2, "\(error)")
            }
        }
    }

    func testIPv4LineInIPv6TableIsRejected() {
        let text = Self.header + "\n" + Self.listenLine + "\n"
        XCTAssertThrowsError(try parse(Array(text.utf8), isIPv6: true))
    }

    func testBinaryGarbageIsRejected() {
        var generator = SystemRandomNumberGenerator()
        let garbage = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }
        XCTAssertThrowsError(try parse(garbage))
    }

    func testMissingIPv6TablesMeanZeroIPv6() throws {
        let directory = try temporaryDirectory()
        try (Self.header + "\n" + Self.listenLine + "\n").write(toFile: directory + "/tcp", atomically: true, encoding: .utf8)
        try (Self.header + "\n").write(toFile: directory + "/udp", atomically: true, encoding: .utf8)
        var counts = SocketCounts()
        try ProcNetCollector.collect(into: &counts, directory: directory)
        XCTAssertEqual(counts.tcp4[.listen], 1)
        XCTAssertEqual(counts.tcp6.total, 0)
        XCTAssertEqual(counts.udp6.total, 0)
    }

    func testMissingIPv4TableIsAnErrorNamingIt() throws {
        let directory = try temporaryDirectory()
        var counts = SocketCounts()
        XCTAssertThrowsError(try ProcNetCollector.collect(into: &counts, directory: directory)) { error in
            XCTAssertTrue("\(error)".contains(directory + "/tcp"), "\(error)")
        }
    }

    func testMalformedTableErrorNamesFileAndLine() throws {
        let directory = try temporaryDirectory()
        try (Self.header + "\n" + Self.listenLine + "\nnonsense\n").write(toFile: directory + "/tcp", atomically: true, encoding: .utf8)
        var counts = SocketCounts()
        XCTAssertThrowsError(try ProcNetCollector.collect(into: &counts, directory: directory)) { error in
            XCTAssertTrue("\(error)".hasPrefix(directory + "/tcp: line 3:"), "\(error)")
        }
    }

    func testListenersOfBothTablesComeBeforeAnyConnection() throws {
        // An IPv4 connection on port 8080 (0x1F90), listed before the IPv6 table's listener on 8080.
        let directory = try temporaryDirectory()
        let established = "   0: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1"
        let listener6 = "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 100 0 0 10 0"
        try (Self.header + "\n" + established + "\n").write(toFile: directory + "/tcp", atomically: true, encoding: .utf8)
        try (Self.header + "\n" + listener6 + "\n").write(toFile: directory + "/tcp6", atomically: true, encoding: .utf8)
        try (Self.header + "\n").write(toFile: directory + "/udp", atomically: true, encoding: .utf8)
        var tally = PortTally(remotePorts: [], ephemeralRange: 32768...60999)
        try ProcNetCollector.collect(into: &tally, directory: directory)
        let ports = tally.breakdown
        XCTAssertEqual(ports.listeners.map(\.port), [8080])
        XCTAssertEqual(ports.listeners.first?.inbound[.established], 1)
        XCTAssertEqual(ports.counts.tcp.total, 2, "each socket visited once")
    }

    func testListenersOnlyPassStopsAtTheFirstConnection() throws {
        let text = [Self.header, Self.listenLine, Self.listenLine.replacingOccurrences(of: " 0A ", with: " 01 "), "not even a socket line"]
            .joined(separator: "\n") + "\n"
        var parser = ProcNetParser(transport: .tcp, isIPv6: false, selection: .listenersOnly)
        var counts = SocketCounts()
        try Array(text.utf8).withUnsafeBytes { try parser.feed($0, into: &counts) }
        try parser.finish(into: &counts)
        XCTAssertTrue(parser.isFinished)
        XCTAssertEqual(counts.tcp4[.listen], 1)
        XCTAssertEqual(counts.tcp4.total, 1)
    }

    // MARK: helpers

    static let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
    static let listenLine = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0"

    private func parse(_ bytes: [UInt8], isIPv6: Bool = false, chunkSizes: [Int] = [65536]) throws -> SocketCounts {
        var parser = ProcNetParser(transport: .tcp, isIPv6: isIPv6)
        var counts = SocketCounts()
        try bytes.withUnsafeBytes { all in
            var offset = 0
            var turn = 0
            while offset < all.count {
                let size = max(1, chunkSizes[turn % chunkSizes.count])
                let end = min(all.count, offset + size)
                try parser.feed(UnsafeRawBufferPointer(rebasing: all[offset..<end]), into: &counts)
                offset = end
                turn += 1
            }
        }
        try parser.finish(into: &counts)
        return counts
    }

    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "procnet-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }
}

/// Counts from `ss -Htan` / `ss -Huan` text: state in column 1, local address in column 4
/// (IPv6 addresses are bracketed). The oracle the tests compare against.
enum SSCapture {
    static func counts(tan: String, uan: String) throws -> SocketCounts {
        var counts = SocketCounts()
        let ssNames = Dictionary(uniqueKeysWithValues: TCPState.allCases.map { ($0.ssName, $0) })
        for line in try String(contentsOfFile: tan, encoding: .utf8).split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 4, let state = ssNames[String(fields[0])] else { continue }
            if fields[3].hasPrefix("[") { counts.tcp6[state] += 1 } else { counts.tcp4[state] += 1 }
        }
        for line in try String(contentsOfFile: uan, encoding: .utf8).split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 4 else { continue }
            let state: UInt8 = fields[0] == "ESTAB" ? 1 : 7
            if fields[3].hasPrefix("[") { counts.udp6.add(rawState: state) } else { counts.udp4.add(rawState: state) }
        }
        return counts
    }
}
