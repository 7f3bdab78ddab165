import Foundation
import XCTest
@testable import SocketStats

final class KernelCountersTests: XCTestCase {
    func testSNMPPairsKeepWatchedNames() throws {
        let text = """
        Tcp: RtoAlgorithm ActiveOpens PassiveOpens CurrEstab
        Tcp: 1 17 4 3
        Udp: InDatagrams NoPorts RcvbufErrors
        Udp: 9 2 1
        UdpLite: InDatagrams NoPorts RcvbufErrors
        UdpLite: 0 0 5

        """
        let counters = try SNMPCounters.parse(text)
        XCTAssertEqual(counters["Tcp_ActiveOpens"], 17)
        XCTAssertEqual(counters["Tcp_CurrEstab"], 3)
        XCTAssertEqual(counters["Udp_RcvbufErrors"], 1, "UdpLite's field of the same name stays apart")
        XCTAssertNil(counters["Tcp_RtoAlgorithm"], "not watched")
        XCTAssertNil(counters["UdpLite_RcvbufErrors"])
    }

    func testSNMPMismatchedPairIsAnError() {
        XCTAssertThrowsError(try SNMPCounters.parse("Tcp: A B\nTcp: 1\n"))
        XCTAssertThrowsError(try SNMPCounters.parse("Tcp: A B\n"))
        XCTAssertThrowsError(try SNMPCounters.parse("Tcp: ActiveOpens\nTcp: many\n"))
        XCTAssertThrowsError(try SNMPCounters.parse("Tcp: ActiveOpens\nUdp: 1\n"))
    }

    func testSockstat() throws {
        let counters = try Sockstat.parse("sockets: used 122\nTCP: inuse 43 orphan 2 tw 115 alloc 90 mem 7\nUDP: inuse 1 mem 0\n")
        XCTAssertEqual(counters["sockets_used"], 122)
        XCTAssertEqual(counters["TCP_orphan"], 2)
        XCTAssertEqual(counters["TCP_tw"], 115)
        XCTAssertEqual(counters["UDP_inuse"], 1)
        XCTAssertThrowsError(try Sockstat.parse("TCP: inuse\n"))
        XCTAssertThrowsError(try Sockstat.parse("TCP: inuse x\n"))
    }

    func testLimitsFromAProcRoot() throws {
        let root = NSTemporaryDirectory() + "limits-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: root + "/sys/net/ipv4", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/sys/net/core", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "10000\t65535\n".write(toFile: root + "/sys/net/ipv4/ip_local_port_range", atomically: true, encoding: .utf8)
        try "4096\n".write(toFile: root + "/sys/net/core/somaxconn", atomically: true, encoding: .utf8)
        try "1 2 3\n".write(toFile: root + "/sys/net/ipv4/tcp_mem", atomically: true, encoding: .utf8)
        let perNamespace = try SocketLimits.read(SocketLimits.perNamespace, procRoot: root)
        XCTAssertEqual(perNamespace["somaxconn"], 4096)
        XCTAssertNil(perNamespace["nf_conntrack_count"], "absent files are left out")
        XCTAssertEqual(SocketLimits.ephemeralRange(from: perNamespace), 10000...65535)
        let wide = try SocketLimits.read(SocketLimits.kernelWide, procRoot: root)
        XCTAssertEqual(wide["tcp_mem_pressure"], 2)
        try "lots\n".write(toFile: root + "/sys/net/core/somaxconn", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SocketLimits.read(SocketLimits.perNamespace, procRoot: root)) { error in
            XCTAssertTrue("\(error)".contains("somaxconn"), "\(error)")
        }
    }
}
