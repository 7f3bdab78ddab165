import Foundation
import XCTest
import CSockDiag
import TestSupport
@testable import SocketStats

/// The unix_diag and /proc/net/unix parsers on bytes captured from a real kernel
/// (Fixtures/unix/capture.py made them, with `ss -xa` in the same namespace at the same moment),
/// on hand-made edge cases, and under seeded fuzzing.
final class UnixParserTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/unix")
    /// The sequence number capture.py sent its request with.
    let capturedSequence: UInt32 = 9

    /// What `ss -xa` printed: per type (u_str, u_seq, u_dgr) and state, and per listening path.
    struct SSView: Equatable {
        var counts: [String: Int] = [:]
        var listeners: [String: (queue: UInt64, backlog: UInt64)] = [:]
        var connections: [String: UInt64] = [:]

        static func == (a: SSView, b: SSView) -> Bool {
            a.counts == b.counts && a.connections == b.connections
                && a.listeners.mapValues { [$0.queue, $0.backlog] } == b.listeners.mapValues { [$0.queue, $0.backlog] }
        }
    }

    func ssView() throws -> SSView {
        let text = try String(contentsOf: Self.fixtures.appendingPathComponent("ss-xa.txt"), encoding: .utf8)
        var view = SSView()
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            view.counts["\(fields[0]) \(fields[1])", default: 0] += 1
            if fields[4] == "*" { continue }
            if fields[1] == "LISTEN" {
                view.listeners[fields[4]] = (UInt64(fields[2])!, UInt64(fields[3])!)
            } else if fields[0] != "u_dgr" {
                view.connections[fields[4], default: 0] += 1
            }
        }
        return view
    }

    /// The same view from our model.
    func view(_ breakdown: UnixBreakdown) -> SSView {
        var view = SSView()
        for (type, netid) in [(UnixSocketType.stream, "u_str"), (.seqpacket, "u_seq"), (.dgram, "u_dgr")] {
            for state in TCPState.allCases where breakdown[type][state] > 0 {
                view.counts["\(netid) \(state.ssName)"] = Int(breakdown[type][state])
            }
            XCTAssertEqual(breakdown[type].total, UInt64(TCPState.allCases.map { breakdown[type][$0] }.reduce(0, +)), "no unknown state")
        }
        for listener in breakdown.listeners {
            view.listeners[listener.path] = (listener.figures.acceptQueue, listener.figures.backlog)
            if listener.figures.connections > 0 { view.connections[listener.path] = listener.figures.connections }
        }
        return view
    }

    func testCapturedDumpEqualsSS() throws {
        let dump = try [UInt8](Data(contentsOf: Self.fixtures.appendingPathComponent("unix_diag.dump")))
        var tally = UnixTally()
        let outcome = try dump.withUnsafeBytes { bytes in
            try UnixDiagParser.parse(bytes, sequence: capturedSequence, into: &tally)
        }
        XCTAssertEqual(outcome, .init(done: true, interrupted: false))
        let breakdown = tally.breakdown(source: .netlink)
        let expected = try ssView()
        XCTAssertEqual(view(breakdown), expected)
        XCTAssertEqual(breakdown.listeners.map(\.path), ["/tmp/cap/sockdir/app.sock", "/tmp/cap/sockdir/seq.sock", "@abstract-test"].sorted())
        XCTAssertEqual(expected.listeners["/tmp/cap/sockdir/app.sock"]?.queue, 5, "the fixture holds a full queue: backlog 4, 5 waiting")
        XCTAssertEqual(breakdown.listeners.first { $0.path == "/tmp/cap/sockdir/seq.sock" }?.figures.connections, 1, "the accepted end")
    }

    func testCapturedProcTableEqualsSSButForBacklogs() throws {
        let table = try [UInt8](Data(contentsOf: Self.fixtures.appendingPathComponent("unix")))
        var tally = UnixTally()
        try table.withUnsafeBytes { bytes in try UnixProcParser.parse(bytes, into: &tally) }
        var expected = try ssView()
        // /proc/net/unix has no backlogs; the queue it shows as the waiting connections themselves.
        expected.listeners = expected.listeners.mapValues { ($0.queue, 0) }
        XCTAssertEqual(view(tally.breakdown(source: .proc)), expected)
    }

    func testNamesAsSSShowsThem() throws {
        var tally = UnixTally()
        let abstract = try XCTUnwrap(UnixName([0] + Array("a".utf8) + [0] + Array("b".utf8)))
        tally.visit(UnixSocketRecord(type: 1, state: TCPState.listen.rawValue, name: abstract, receiveQueue: 1, sendQueue: 10))
        // A path bound with its terminating NUL is the same path as one bound without.
        let withNul = try XCTUnwrap(UnixName(Array("/run/x.sock".utf8) + [0]))
        tally.visit(UnixSocketRecord(type: 5, state: TCPState.listen.rawValue, name: withNul, sendQueue: 5))
        tally.visit(UnixSocketRecord(type: 5, state: TCPState.established.rawValue, name: try XCTUnwrap(UnixName(Array("/run/x.sock".utf8)))))
        tally.visit(UnixSocketRecord(type: 1, state: TCPState.established.rawValue, name: try XCTUnwrap(UnixName([UInt8]()))))
        let breakdown = tally.breakdown(source: .netlink)
        XCTAssertEqual(breakdown.listeners.map(\.path), ["/run/x.sock", "@a@b"])
        XCTAssertEqual(breakdown.listeners[1].figures, .init(listeners: 1, acceptQueue: 1, backlog: 10, connections: 0))
        XCTAssertEqual(breakdown.listeners[0].figures.connections, 1)
        XCTAssertEqual(breakdown.stream.total, 2, "the unnamed socket is counted, never listed")
        XCTAssertNil(UnixName([UInt8](repeating: 65, count: 109)), "longer than sun_path")
    }

    func testAttributeOverrunningItsMessageIsTruncated() {
        var body = unixBody(type: 1, state: 10)
        body += attribute(type: UInt16(UNIX_DIAG_NAME), payload: Array("/x".utf8))
        body[body.count - 8] = 200  // the attribute's length, far past the message
        XCTAssertThrowsError(try parse(message(body))) { error in
            guard case .truncated = error as? NetlinkError else { return XCTFail("\(error)") }
        }
    }

    func testShortQueueAttributeAndLongNameAreRejected() {
        let shortQueue = unixBody(type: 1, state: 10) + attribute(type: UInt16(UNIX_DIAG_RQLEN), payload: [1, 0, 0, 0])
        XCTAssertThrowsError(try parse(message(shortQueue)))
        let longName = unixBody(type: 1, state: 10) + attribute(type: UInt16(UNIX_DIAG_NAME), payload: [UInt8](repeating: 65, count: 120))
        XCTAssertThrowsError(try parse(message(longName)))
    }

    /// Messages of an unnamed socket's size, or starting with its queue attribute, that do
    /// carry a name: they are walked, not taken for unnamed.
    func testNamedMessagesLikeUnnamedOnesAreWalked() throws {
        let queue = attribute(type: UInt16(UNIX_DIAG_RQLEN), payload: [2, 0, 0, 0, 9, 0, 0, 0])
        let shutdown = attribute(type: UInt16(UNIX_DIAG_SHUTDOWN), payload: [0])
        let unnamed = unixBody(type: 1, state: 10) + queue + shutdown
        let nameFirst = unixBody(type: 1, state: 10) + attribute(type: UInt16(UNIX_DIAG_NAME), payload: Array("/run/ab".utf8)) + shutdown
        let queueFirst = unixBody(type: 1, state: 10) + queue + attribute(type: UInt16(UNIX_DIAG_NAME), payload: Array("/cd".utf8))
        XCTAssertEqual(unnamed.count, nameFirst.count)
        XCTAssertEqual(unnamed.count, queueFirst.count)
        let breakdown = try parse(message(unnamed) + message(nameFirst) + message(queueFirst)).breakdown(source: .netlink)
        XCTAssertEqual(breakdown.stream[.listen], 3)
        XCTAssertEqual(breakdown.listeners.map(\.path), ["/cd", "/run/ab"])
        XCTAssertEqual(breakdown.listeners[0].figures, .init(listeners: 1, acceptQueue: 2, backlog: 9, connections: 0))
    }

    func testUnknownAttributesAreSkipped() throws {
        let body = unixBody(type: 2, state: 7) + attribute(type: 42, payload: [1, 2, 3])
            + attribute(type: UInt16(UNIX_DIAG_NAME), payload: Array("/d".utf8))
        let tally = try parse(message(body))
        XCTAssertEqual(tally.breakdown(source: .netlink).dgram[.close], 1)
    }

    func testProcPathWithNewlineContinuesOnTheNextLine() throws {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n"
            + "0000000000000000: 00000002 00000000 00010000 0001 01 100 /run/a\nb.sock\n"
            + "0000000000000000: 00000002 00000000 00000000 0002 01 101\n"
        var tally = UnixTally()
        try Array(table.utf8).withUnsafeBytes { bytes in try UnixProcParser.parse(bytes, into: &tally) }
        let breakdown = tally.breakdown(source: .proc)
        XCTAssertEqual(breakdown.listeners.map(\.path), ["/run/a\nb.sock"])
        XCTAssertEqual(breakdown.dgram[.close], 1)
    }

    func testProcTableErrorsNameTheLine() {
        for (table, line) in [("", 0), ("sl local_address\n", 1),
                              ("Num RefCount Protocol Flags Type St Inode Path\nfoo bar\n", 2),
                              ("Num RefCount Protocol Flags Type St Inode Path\n0000: 2 0 zz 0001 01 5\n", 2)] {
            var tally = UnixTally()
            XCTAssertThrowsError(try Array(table.utf8).withUnsafeBytes { bytes in
                try UnixProcParser.parse(bytes, into: &tally)
            }) { error in
                XCTAssertEqual((error as? ProcNetParseError)?.line, line, "\(table.debugDescription): \(error)")
            }
        }
    }

    /// Mutated captures and random bytes: every input parses or throws, never traps.
    func testSeededFuzzNeverTraps() throws {
        let dump = try [UInt8](Data(contentsOf: Self.fixtures.appendingPathComponent("unix_diag.dump")))
        let table = try [UInt8](Data(contentsOf: Self.fixtures.appendingPathComponent("unix")))
        var generator = SeededGenerator(seed: 0x756E_6978)
        for round in 0..<3_000 {
            for original in [dump, table] {
                var bytes = round % 10 == 0 ? randomBytes(Int.random(in: 0...300, using: &generator), using: &generator) : original
                for _ in 0..<Int.random(in: 1...8, using: &generator) where !bytes.isEmpty {
                    let index = Int.random(in: 0..<bytes.count, using: &generator)
                    switch Int.random(in: 0..<3, using: &generator) {
                    case 0: bytes[index] = UInt8.random(in: 0...255, using: &generator)
                    case 1: bytes.removeSubrange(index...)
                    default: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: index)
                    }
                }
                var tally = UnixTally()
                bytes.withUnsafeBytes { raw in
                    _ = try? UnixDiagParser.parse(raw, sequence: capturedSequence, into: &tally)
                    _ = try? UnixProcParser.parse(raw, into: &tally)
                }
                _ = tally.breakdown(source: .proc)
            }
        }
    }

    // MARK: helpers

    private func parse(_ bytes: [UInt8]) throws -> UnixTally {
        var tally = UnixTally()
        _ = try bytes.withUnsafeBytes { raw in try UnixDiagParser.parse(raw, sequence: 1, into: &tally) }
        return tally
    }

    private func message(_ body: [UInt8]) -> [UInt8] {
        let length = 16 + body.count
        return le(UInt32(length)) + le(UInt16(SOCK_DIAG_BY_FAMILY)) + le(UInt16(NLM_F_MULTI)) + le(UInt32(1)) + le(UInt32(0))
            + body + [UInt8](repeating: 0, count: (4 - length % 4) % 4)
    }

    private func unixBody(type: UInt8, state: UInt8) -> [UInt8] {
        [UInt8(AF_UNIX), type, state, 0] + [UInt8](repeating: 0, count: 12)
    }

    private func attribute(type: UInt16, payload: [UInt8]) -> [UInt8] {
        le(UInt16(4 + payload.count)) + le(type) + payload + [UInt8](repeating: 0, count: (4 - payload.count % 4) % 4)
    }

    private func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    /// Two names that are not UTF-8 print alike ("/run/" and U+FFFD): one listener, figures summed.
    func testNamesPrintingAlikeAreOneListener() throws {
        var tally = UnixTally()
        for last: UInt8 in [0x80, 0x81] {
            let name = try XCTUnwrap(UnixName(Array("/run/".utf8) + [last]))
            tally.visit(UnixSocketRecord(type: 1, state: TCPState.listen.rawValue, name: name, receiveQueue: 1, sendQueue: 5))
        }
        tally.visit(UnixSocketRecord(type: 1, state: TCPState.listen.rawValue, name: try XCTUnwrap(UnixName(Array("/run/a".utf8)))))
        let listeners = tally.breakdown(source: .netlink).listeners
        XCTAssertEqual(listeners.map(\.path), ["/run/a", "/run/\u{FFFD}"])
        XCTAssertEqual(listeners.last?.figures, .init(listeners: 2, acceptQueue: 2, backlog: 10, connections: 0))
    }
}
