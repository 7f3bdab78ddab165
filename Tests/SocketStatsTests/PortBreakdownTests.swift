import Glibc
import XCTest
@testable import SocketStats
import TestSupport

final class PortBreakdownTests: XCTestCase {
    let loopback = AddressWords(0x0100_007F, 0, 0, 0)  // 127.0.0.1 as the kernel stores it
    let other = AddressWords(0x0200_007F, 0, 0, 0)

    private func tcp(_ state: TCPState, local: UInt16, remote: UInt16 = 0, remoteAddress: AddressWords? = nil,
                     isIPv6: Bool = false, receiveQueue: UInt32 = 0, sendQueue: UInt32 = 0) -> SocketRecord {
        SocketRecord(transport: .tcp, isIPv6: isIPv6, state: state.rawValue, localPort: local, remotePort: remote,
                     localAddress: loopback, remoteAddress: remoteAddress ?? loopback,
                     receiveQueue: receiveQueue, sendQueue: sendQueue)
    }

    func testListenersOnOnePortAreOneEntryWithSummedQueues() {
        var ports = PortTally(remotePorts: [], ephemeralRange: 32768...60999)
        ports.visit(tcp(.listen, local: 80, receiveQueue: 3, sendQueue: 128))
        ports.visit(tcp(.listen, local: 80, receiveQueue: 1, sendQueue: 128))  // SO_REUSEPORT twin
        ports.visit(tcp(.listen, local: 80, isIPv6: true, sendQueue: 64))
        ports.visit(tcp(.established, local: 80, remote: 40000))
        ports.visit(tcp(.closeWait, local: 80, remote: 40001))
        ports.visit(tcp(.listen, local: 22, sendQueue: 10))
        let listeners = ports.breakdown.listeners
        XCTAssertEqual(listeners.map(\.port), [22, 80])
        let web = listeners[1]
        XCTAssertEqual(web.sockets, 3)
        XCTAssertEqual(web.acceptQueue, 4)
        XCTAssertEqual(web.backlog, 320)
        XCTAssertEqual(web.addresses.count, 2, "IPv4 and IPv6 127.0.0.1-shaped words are different addresses")
        XCTAssertEqual(web.inbound[.established], 1)
        XCTAssertEqual(web.inbound[.closeWait], 1)
        XCTAssertEqual(web.inbound.total, 2)
        XCTAssertEqual(ports.breakdown.counts.tcp.total, 6)
    }

    func testOutboundIsCountedPerWatchedRemotePort() {
        var ports = PortTally(remotePorts: [5432, 6379, 5432], ephemeralRange: 32768...60999)
        XCTAssertEqual(ports.remotePorts, [5432, 6379], "duplicates dropped")
        ports.visit(tcp(.established, local: 40000, remote: 5432))
        ports.visit(tcp(.closeWait, local: 40001, remote: 5432))
        ports.visit(tcp(.timeWait, local: 40002, remote: 6379))
        ports.visit(tcp(.established, local: 40003, remote: 9999))
        XCTAssertEqual(ports.breakdown.outbound[0][.established], 1)
        XCTAssertEqual(ports.breakdown.outbound[0][.closeWait], 1)
        XCTAssertEqual(ports.breakdown.outbound[1][.timeWait], 1)
        XCTAssertEqual(ports.breakdown.outbound[0].total + ports.breakdown.outbound[1].total, 3)
    }

    func testEphemeralPressureIsTheBusiestRemoteEndpoint() {
        var ports = PortTally(remotePorts: [], ephemeralRange: 40000...40999)
        for port in UInt16(40000)..<40005 { ports.visit(tcp(.established, local: port, remote: 5432)) }
        for port in UInt16(40005)..<40008 { ports.visit(tcp(.timeWait, local: port, remote: 5432, remoteAddress: other)) }
        ports.visit(tcp(.established, local: 1234, remote: 5432))  // bound below the range: not ephemeral
        let busiest = ports.breakdown.busiestEphemeral
        XCTAssertEqual(busiest?.sockets, 5)
        XCTAssertEqual(busiest?.remotePort, 5432)
        XCTAssertEqual(busiest?.remoteAddress, loopback)
        XCTAssertEqual(ports.breakdown.ephemeralRangeSize, 1000)
    }

    func testEphemeralBusiestAmongThousandsOfEndpointsEqualsACountByDictionary() {
        // Enough distinct endpoints to make the table grow several times, with uneven counts.
        var ports = PortTally(remotePorts: [], ephemeralRange: 1024...65535)
        var reference: [String: (use: PortBreakdown.EphemeralUse, sockets: UInt64)] = [:]
        var local: UInt16 = 1024
        for i in 0..<20_000 {
            let n = (i &* 7919) % 3001
            let address = AddressWords(UInt32(0x0A00_0000 + n % 211), 0, 0, UInt32(n / 211))
            let isIPv6 = n % 3 == 0
            let remotePort = UInt16(5000 + n % 7)
            ports.visit(tcp(.established, local: local, remote: remotePort, remoteAddress: address, isIPv6: isIPv6))
            local = local == 65535 ? 1024 : local + 1
            let key = "\(address) \(remotePort) \(isIPv6)"
            let use = PortBreakdown.EphemeralUse(remoteAddress: address, remotePort: remotePort, isIPv6: isIPv6, sockets: 0)
            reference[key, default: (use, 0)].sockets += 1
        }
        let most = reference.values.map(\.sockets).max()!
        let tied = reference.values.filter { $0.sockets == most }.map(\.use)
        let expected = tied.min { a, b in
            if a.remotePort != b.remotePort { return a.remotePort < b.remotePort }
            if a.isIPv6 != b.isIPv6 { return !a.isIPv6 }
            return (a.remoteAddress.w0.bigEndian, a.remoteAddress.w3.bigEndian) < (b.remoteAddress.w0.bigEndian, b.remoteAddress.w3.bigEndian)
        }!
        XCTAssertGreaterThan(tied.count, 1, "the population has ties, so the tie rule is exercised")
        XCTAssertEqual(ports.breakdown.busiestEphemeral, PortBreakdown.EphemeralUse(
            remoteAddress: expected.remoteAddress, remotePort: expected.remotePort, isIPv6: expected.isIPv6, sockets: most))
        ports.startOver()
        XCTAssertNil(ports.breakdown.busiestEphemeral)
        ports.visit(tcp(.established, local: 40000, remote: 5432))
        XCTAssertEqual(ports.breakdown.busiestEphemeral?.sockets, 1, "the table works again after starting over")
    }

    func testEndpointsDifferingOnlyInPortOrFamilyAreCountedApart() {
        // The per-port memo compares only address and family on a hit: alternate the endpoints
        // so that each socket misses the memo entry the one before it left.
        var ports = PortTally(remotePorts: [], ephemeralRange: 40000...49999)
        var local: UInt16 = 40000
        let round: [(remote: UInt16, isIPv6: Bool, times: Int)] = [(5432, false, 2), (5432, true, 3), (5433, false, 1)]
        for (remote, isIPv6, times) in round + round + round {
            for _ in 0..<times {
                ports.visit(tcp(.established, local: local, remote: remote, isIPv6: isIPv6))
                local += 1
            }
        }
        XCTAssertEqual(ports.breakdown.busiestEphemeral?.sockets, 9)
        XCTAssertEqual(ports.breakdown.busiestEphemeral?.isIPv6, true)
        XCTAssertEqual(ports.breakdown.busiestEphemeral?.remotePort, 5432)
        for _ in 0..<3 {
            ports.visit(tcp(.established, local: local, remote: 5432))
            local += 1
        }
        XCTAssertEqual(ports.breakdown.busiestEphemeral?.sockets, 9)
        XCTAssertEqual(ports.breakdown.busiestEphemeral?.isIPv6, false, "a tie goes to IPv4")
        XCTAssertEqual(ports.breakdown.counts.tcp[.established], 21)
    }

    func testInboundConnectionsDoNotCountAsEphemeral() {
        var ports = PortTally(remotePorts: [], ephemeralRange: 10000...65535)
        ports.visit(tcp(.listen, local: 45000))
        for client in UInt16(50000)..<50010 { ports.visit(tcp(.established, local: 45000, remote: client)) }
        XCTAssertNil(ports.breakdown.busiestEphemeral)
    }

    func testStartOverForgetsEverything() {
        var ports = PortTally(remotePorts: [5432], ephemeralRange: 32768...60999)
        ports.visit(tcp(.listen, local: 80))
        ports.visit(tcp(.established, local: 40000, remote: 5432))
        ports.startOver()
        XCTAssertEqual(ports.breakdown.listeners, [])
        XCTAssertEqual(ports.breakdown.outbound[0].total, 0)
        XCTAssertNil(ports.breakdown.busiestEphemeral)
        XCTAssertEqual(ports.breakdown.counts, SocketCounts())
        ports.visit(tcp(.established, local: 80, remote: 40000))
        XCTAssertEqual(ports.breakdown.listeners, [], "port 80 no longer listens after starting over")
    }

    func testAddressFormatting() {
        XCTAssertEqual(loopback.formatted(isIPv6: false), "127.0.0.1")
        XCTAssertEqual(AddressWords.zero.formatted(isIPv6: true), "::")
        XCTAssertEqual(AddressWords(0, 0, 0, 0x0100_0000).formatted(isIPv6: true), "::1")
        XCTAssertEqual(AddressWords(0, 0, 0xFFFF_0000, 0x0100_007F).formatted(isIPv6: true), "::ffff:127.0.0.1")
        XCTAssertEqual(AddressWords(0xB80D_0120, 0, 0, 0x0100_0000).formatted(isIPv6: true), "2001:db8::1")
        XCTAssertEqual(AddressWords(0xFFFF_FFFF, 0, 0, 0).formatted(isIPv6: false), "255.255.255.255")
        XCTAssertEqual(AddressWords(0x0A00_000A, 0, 0, 0).formatted(isIPv6: false), "10.0.0.10")
    }

    /// glibc's inet_ntop as the oracle, on random addresses with zero groups in random places
    /// (every run length and position) and the IPv4-mapped form; only the deprecated
    /// IPv4-compatible form (::1.2.3.4), which inet_ntop prints dotted and we print in hex, is left out.
    func testAddressFormattingMatchesInetNtop() {
        var generator = SeededGenerator(seed: 6)
        var checked = 0
        for round in 0..<4000 {
            var groups = (0..<8).map { _ in UInt16.random(in: 0...UInt16.max, using: &generator) }
            for index in groups.indices where Bool.random(using: &generator) { groups[index] = 0 }
            if round % 10 == 0 { groups.replaceSubrange(0..<6, with: [0, 0, 0, 0, 0, 0xFFFF]) }
            if round % 7 == 0 { groups[Int.random(in: 0..<8, using: &generator)] = 0x00AB }
            let isCompatible = groups[0..<6].allSatisfy { $0 == 0 } && groups[6] != 0
            if isCompatible { continue }
            let bytes = groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
            let words = stride(from: 0, to: 16, by: 4).map { start in
                bytes[start..<start + 4].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            }
            let address = AddressWords(words[0], words[1], words[2], words[3])
            XCTAssertEqual(address.formatted(isIPv6: true), inetNtop(AF_INET6, bytes), "groups \(groups)")
            XCTAssertEqual(address.formatted(isIPv6: false), inetNtop(AF_INET, Array(bytes[0..<4])))
            checked += 1
        }
        XCTAssertGreaterThan(checked, 3000)
    }

    private func inetNtop(_ family: Int32, _ bytes: [UInt8]) -> String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let result = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        XCTAssertNotNil(result)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
