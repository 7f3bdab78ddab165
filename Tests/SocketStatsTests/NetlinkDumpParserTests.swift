import XCTest
import CSockDiag
@testable import SocketStats

final class NetlinkDumpParserTests: XCTestCase {
    let sequence: UInt32 = 7

    func testCountsSocketsByFamilyAndState() throws {
        var datagram = message(type: SOCK_DIAG_BY_FAMILY, body: diagBody(family: AF_INET, state: 1))
        datagram += message(type: SOCK_DIAG_BY_FAMILY, body: diagBody(family: AF_INET, state: 10))
        datagram += message(type: SOCK_DIAG_BY_FAMILY, body: diagBody(family: AF_INET6, state: 6))
        var counts = SocketCounts()
        let outcome = try parse(datagram, into: &counts)
        XCTAssertEqual(outcome, .init(done: false, interrupted: false))
        XCTAssertEqual(counts.tcp4[.established], 1)
        XCTAssertEqual(counts.tcp4[.listen], 1)
        XCTAssertEqual(counts.tcp6[.timeWait], 1)
        XCTAssertEqual(counts.tcp.total, 3)
    }

    func testDoneEndsTheDump() throws {
        let datagram = message(type: SOCK_DIAG_BY_FAMILY, body: diagBody(family: AF_INET, state: 1))
            + message(type: NLMSG_DONE, body: [0, 0, 0, 0])
        var counts = SocketCounts()
        XCTAssertEqual(try parse(datagram, into: &counts), .init(done: true, interrupted: false))
    }

    func testInterruptedFlagIsReported() throws {
        let datagram = message(type: SOCK_DIAG_BY_FAMILY, flags: UInt16(NLM_F_MULTI | NLM_F_DUMP_INTR), body: diagBody(family: AF_INET, state: 1))
        var counts = SocketCounts()
        XCTAssertTrue(try parse(datagram, into: &counts).interrupted)
    }

    func testKernelErrorCarriesErrno() {
        let datagram = message(type: NLMSG_ERROR, body: le(Int32(-EPERM)) + [UInt8](repeating: 0, count: 16))
        var counts = SocketCounts()
        XCTAssertThrowsError(try parse(datagram, into: &counts)) { error in
            XCTAssertEqual(error as? NetlinkError, .kernel(errno: EPERM))
            XCTAssertTrue("\(error)".contains("EPERM"), "\(error)")
        }
    }

    func testOtherSequencesAreSkipped() throws {
        let stale = message(type: SOCK_DIAG_BY_FAMILY, sequence: 3, body: diagBody(family: AF_INET, state: 1))
        var counts = SocketCounts()
        _ = try parse(stale, into: &counts)
        XCTAssertEqual(counts, SocketCounts())
    }

    func testLengthBeyondDatagramIsTruncated() {
        var datagram = message(type: SOCK_DIAG_BY_FAMILY, body: diagBody(family: AF_INET, state: 1))
        datagram.removeLast(10)
        var counts = SocketCounts()
        XCTAssertThrowsError(try parse(datagram, into: &counts)) { error in
            guard case .truncated = error as? NetlinkError else { return XCTFail("\(error)") }
        }
    }

    func testShortDiagMessageIsTruncated() {
        let datagram = message(type: SOCK_DIAG_BY_FAMILY, body: [UInt8](repeating: 0, count: 20))
        var counts = SocketCounts()
        XCTAssertThrowsError(try parse(datagram, into: &counts))
    }

    func testLengthSmallerThanHeaderIsTruncated() {
        var datagram = message(type: SOCK_DIAG_BY_FAMILY, body: diagBody(family: AF_INET, state: 1))
        datagram.replaceSubrange(0..<4, with: le(UInt32(8)))
        var counts = SocketCounts()
        XCTAssertThrowsError(try parse(datagram, into: &counts))
    }

    func testTrailingBytesAreTruncated() {
        let datagram = message(type: SOCK_DIAG_BY_FAMILY, body: diagBody(family: AF_INET, state: 1)) + [1, 2, 3]
        var counts = SocketCounts()
        XCTAssertThrowsError(try parse(datagram, into: &counts))
    }

    func testUnknownTypeIsRejected() {
        var counts = SocketCounts()
        XCTAssertThrowsError(try parse(message(type: 99, body: [0, 0, 0, 0]), into: &counts)) { error in
            XCTAssertEqual(error as? NetlinkError, .unexpectedType(99))
        }
    }

    func testCgroupIDAttributeIsReadOnlyForVisitorsThatAsk() throws {
        // A LISTEN message as the kernel sends it: SHUTDOWN (8), SOCKOPT (22), CGROUP_ID (21).
        let attributes = attribute(type: 8, value: [0]) + attribute(type: 22, value: [0, 0])
            + attribute(type: 21, value: le(UInt64(0x1234_5678_9ABC)))
        let datagram = message(type: SOCK_DIAG_BY_FAMILY, body: diagBody(family: AF_INET, state: 10) + attributes)
            + message(type: SOCK_DIAG_BY_FAMILY, body: diagBody(family: AF_INET, state: 6))
        var tally = CgroupTally()
        _ = try datagram.withUnsafeBytes { try NetlinkDumpParser.parse($0, sequence: sequence, transport: .tcp, into: &tally) }
        XCTAssertEqual(tally.byID.map(\.id), [0x1234_5678_9ABC])
        XCTAssertEqual(tally.byID.first?.counts.tcp[.listen], 1)
        XCTAssertEqual(tally.unattributed.tcp[.timeWait], 1, "a TIME_WAIT message has no attribute")
        XCTAssertEqual(tally.fullSocketsWithoutID, 0)
    }

    func testMalformedAttributesGiveNoCgroupID() {
        let body = diagBody(family: AF_INET, state: 1)
        for attributes in [[UInt8(2), 0, 21, 0], le(UInt16(200)) + le(UInt16(21)) + [0, 0, 0, 0], attribute(type: 21, value: [1, 2, 3, 4])] {
            let bytes = body + attributes
            // A remembered offset at, inside or beyond the attributes' end changes nothing.
            for remembered in [0, 4, 8, 1000] {
                var lastOffset = remembered
                let id = bytes.withUnsafeBytes {
                    NetlinkDumpParser.cgroupID(in: $0, from: body.count, to: bytes.count, lastOffset: &lastOffset)
                }
                XCTAssertEqual(id, 0, "\(attributes), remembered offset \(remembered)")
            }
        }
    }

    func testCgroupIDIsFoundWhereverEachMessageHasIt() throws {
        // The kernel sends v6only only for IPv6 LISTEN and CLOSE sockets, and a pad or a
        // sockopt attribute on some kernels: in one datagram the id moves between offsets, and
        // the offset remembered from one message may hold another header in the next.
        let shutdown = attribute(type: 8, value: [0]), mark = attribute(type: 15, value: le(UInt32(0x0015_000C)))
        let v6only = attribute(type: 19, value: [1])
        func id(_ value: UInt64) -> [UInt8] { attribute(type: 21, value: le(value)) }
        let layouts: [(state: UInt8, attributes: [UInt8])] = [
            (1, shutdown + mark + id(101)), (1, shutdown + mark + id(101)),
            (10, shutdown + v6only + mark + id(102)), (1, shutdown + mark + id(101)),
            (1, shutdown + id(103)), (10, shutdown + v6only + mark + id(102)),
            (1, id(104)), (1, shutdown + mark + id(101)), (6, []),
        ]
        let datagram = layouts.flatMap {
            message(type: SOCK_DIAG_BY_FAMILY, body: diagBody(family: AF_INET6, state: $0.state) + $0.attributes)
        }
        var tally = CgroupTally()
        _ = try datagram.withUnsafeBytes { try NetlinkDumpParser.parse($0, sequence: sequence, transport: .tcp, into: &tally) }
        XCTAssertEqual(tally.byID.map(\.id), [101, 102, 103, 104])
        XCTAssertEqual(tally.byID.map { $0.counts.tcp.total }, [4, 2, 1, 1])
        XCTAssertEqual(tally.byID[1].counts.tcp[.listen], 2)
        XCTAssertEqual(tally.unattributed.tcp[.timeWait], 1)
    }

    func testRandomBytesNeverCrash() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let size = Int.random(in: 0...256, using: &generator)
            var bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if size >= 16, Bool.random(using: &generator) {
                // Plausible lengths reach the deeper branches more often.
                bytes.replaceSubrange(0..<4, with: le(UInt32.random(in: 0...UInt32(size), using: &generator)))
                bytes.replaceSubrange(8..<12, with: le(sequence))
            }
            var counts = SocketCounts()
            _ = try? parse(bytes, into: &counts)
            var tally = CgroupTally()
            _ = try? bytes.withUnsafeBytes { try NetlinkDumpParser.parse($0, sequence: sequence, transport: .tcp, into: &tally) }
        }
    }

    // MARK: helpers

    private func parse(_ bytes: [UInt8], into counts: inout SocketCounts) throws -> NetlinkDumpParser.Outcome {
        try bytes.withUnsafeBytes { try NetlinkDumpParser.parse($0, sequence: sequence, transport: .tcp, into: &counts) }
    }

    private func message(type: Int32, flags: UInt16 = UInt16(NLM_F_MULTI), sequence: UInt32? = nil, body: [UInt8]) -> [UInt8] {
        let length = 16 + body.count
        var bytes = le(UInt32(length)) + le(UInt16(type)) + le(flags) + le(sequence ?? self.sequence) + le(UInt32(0))
        bytes += body
        bytes += [UInt8](repeating: 0, count: (4 - length % 4) % 4)
        return bytes
    }

    private func diagBody(family: Int32, state: UInt8) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: MemoryLayout<inet_diag_msg>.size)
        body[0] = UInt8(family)
        body[1] = state
        return body
    }

    private func attribute(type: UInt16, value: [UInt8]) -> [UInt8] {
        let length = 4 + value.count
        return le(UInt16(length)) + le(type) + value + [UInt8](repeating: 0, count: (4 - length % 4) % 4)
    }

    private func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
}
